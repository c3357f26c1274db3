#!/usr/bin/env bash
# docker/build_image.sh [--cpu | --cuda [--offline]] [--platform P] [--tag NAME] [--force] [--no-cache]: builds
# docker/Dockerfile, the SageMaker train/serve image for P (linux/amd64 unless told): CUDA (default; pulls its base and
# wheels; --offline: the local Debian base and build/wheelhouse-cuda instead) or --cpu (always offline).
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTEXT="$REPOSITORY/build/image-context"
MODE=cuda
OFFLINE=0
TAG=""
FORCE=0
CACHE=()
# SageMaker's training instances and most of its hosting ones are x86_64: an image built on an Apple-silicon
# laptop without this is arm64 and fails there with "exec format error". linux/arm64 is for Graviton (ml.*g.*).
PLATFORM=linux/amd64

step() { echo "build_image: $*"; }
fail() {
    echo "build_image: error: $*" >&2
    exit 1
}
usage() {
    echo "usage: docker/build_image.sh [--cpu | --cuda [--offline]] [--platform linux/amd64|linux/arm64]" \
        "[--tag NAME] [--force] [--no-cache]"
}

while (($#)); do
    case "$1" in
    --cpu) MODE=cpu ;;
    --cuda) MODE=cuda ;;
    --offline) OFFLINE=1 ;;
    --tag)
        TAG="${2:?--tag needs a name}"
        shift
        ;;
    --platform)
        PLATFORM="${2:?--platform needs linux/amd64 or linux/arm64}"
        shift
        ;;
    --force) FORCE=1 ;;
    --no-cache)
        CACHE=(--no-cache)
        FORCE=1
        ;;
    -h | --help)
        usage
        sed -n '2,4p' "$0" | sed 's/^# //'
        exit 0
        ;;
    *) fail "unknown argument $1 ($(usage))" ;;
    esac
    shift
done
TAG="${TAG:-sentiment:$MODE}"
case "$PLATFORM" in
linux/amd64 | linux/arm64) ;;
*) fail "--platform must be linux/amd64 or linux/arm64 (what SageMaker's instances run), not $PLATFORM" ;;
esac

step "checking the docker engine"
docker info >/dev/null 2>&1 || fail "no docker engine answers (start dockerd first; see docker/README.md)"

BUILD_ARGS=()
WHEELHOUSE=""
if [[ "$MODE" == cpu ]] || ((OFFLINE)); then
    # The offline base and wheels are this machine's own architecture: no other platform can come of them.
    case "$(uname -m)" in
    x86_64 | amd64) host_platform=linux/amd64 ;;
    aarch64 | arm64) host_platform=linux/arm64 ;;
    *) host_platform="linux/$(uname -m)" ;;
    esac
    [[ "$host_platform" == "$PLATFORM" ]] ||
        fail "an offline build makes a $host_platform image on this machine, not $PLATFORM: build on a $PLATFORM" \
            "machine, or build the CUDA image online (docker/build_image.sh --platform $PLATFORM)"
    # Offline: a Debian base made here, and wheels fetched beforehand on this machine (both skip when done). The
    # CUDA build of torch brings its CUDA libraries as wheels, so the Debian base serves the CUDA image too.
    "$REPOSITORY/docker/build_base_image.sh"
    if [[ "$MODE" == cpu ]]; then
        "$REPOSITORY/docker/build_wheelhouse.sh"
        WHEELHOUSE="$REPOSITORY/build/wheelhouse"
    else
        "$REPOSITORY/docker/build_wheelhouse.sh" --cuda
        WHEELHOUSE="$REPOSITORY/build/wheelhouse-cuda"
    fi
    BUILD_ARGS=(
        --build-arg BASE_IMAGE=sentiment-base:bookworm
        --build-arg SYSTEM_PACKAGES=
        --build-arg BUILD_PACKAGES=
        --build-arg WHEELS=wheelhouse
    )
fi
# CUDA: the Dockerfile's defaults (NVIDIA's base, pip's index). PIP_ARGS passes extra pip options through.
BUILD_ARGS+=(--build-arg "PIP_ARGS=${PIP_ARGS:-}")

step "staging the build context in $CONTEXT"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/container" "$CONTEXT/docker" "$CONTEXT/wheelhouse"
tar -C "$REPOSITORY/container" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=./build -c . |
    tar -C "$CONTEXT/container" -x
cp "$REPOSITORY/docker/entrypoint.sh" "$REPOSITORY/docker/healthcheck.py" "$CONTEXT/docker/"
if [[ -n "$WHEELHOUSE" ]]; then
    # Hard links: the wheelhouse enters the context without a second copy on disk.
    cp -l "$WHEELHOUSE"/*.whl "$CONTEXT/wheelhouse/" 2>/dev/null || cp "$WHEELHOUSE"/*.whl "$CONTEXT/wheelhouse/"
fi

# What the image is made from: the context's files, the Dockerfile and the build arguments. An image with this
# tag and the same hash is up to date, so CI and the tests build once and reuse it.
source_hash="$(
    {
        (cd "$CONTEXT" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
        sha256sum <"$REPOSITORY/docker/Dockerfile"
        printf '%s\n' "${BUILD_ARGS[@]}" "$PLATFORM"
    } | sha256sum | cut -c1-16
)"
built_from="$(docker image inspect -f '{{index .Config.Labels "sentiment.source-hash"}}' "$TAG" 2>/dev/null || true)"
if ((!FORCE)) && [[ "$built_from" == "$source_hash" ]]; then
    step "$TAG is up to date with the source (hash $source_hash); nothing to build (--force rebuilds)"
else
    revision="$(git -C "$REPOSITORY" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$REPOSITORY" status --porcelain 2>/dev/null)" ]]; then revision="$revision-dirty"; fi
    step "docker build $TAG ($MODE$( ((OFFLINE)) && echo ", offline"), revision $revision, source hash $source_hash)"
    started=$SECONDS
    docker build "${CACHE[@]}" \
        --platform "$PLATFORM" \
        --file "$REPOSITORY/docker/Dockerfile" \
        "${BUILD_ARGS[@]}" \
        --build-arg "REVISION=$revision" \
        --label "sentiment.source-hash=$source_hash" \
        --tag "$TAG" \
        "$CONTEXT" || fail "docker build failed (see above)"
    step "built $TAG in $((SECONDS - started)) s"
fi
size="$(docker image inspect -f '{{.Size}}' "$TAG")"
built_for="$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$TAG")"
[[ "$built_for" == "$PLATFORM" ]] || fail "$TAG came out $built_for, not $PLATFORM (is the base image $PLATFORM?)"
step "$TAG: $built_for, $((size / 1000000)) MB ($size bytes)"
