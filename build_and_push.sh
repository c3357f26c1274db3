#!/usr/bin/env bash
# build_and_push.sh IMAGE_NAME [TAG] [--cpu | --offline] [--instance-type T | --platform P] [--dry-run] [--skip-build]
# [--no-push]: build the image, create its ECR repository if missing, log in, tag ACCOUNT.dkr.ecr.REGION/IMAGE:TAG, push.
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ECR=("${PYTHON:-}" "$REPOSITORY/docker/ecr.py")
VARIANT="" # --cpu, --offline (the CUDA image without a registry) or "" (the CUDA image)
DRY_RUN=0
SKIP_BUILD=0
NO_PUSH=0
PLATFORM=""      # linux/amd64 unless --platform or --instance-type says otherwise
INSTANCE_TYPE="" # the SageMaker instance type the image is for: Graviton types (ml.c7g.xlarge...) run linux/arm64
POSITIONAL=()

step() { echo "build_and_push: $*"; }
fail() {
    echo "build_and_push: error: $*" >&2
    exit 1
}
usage() {
    cat <<'EOF'
usage: build_and_push.sh IMAGE_NAME [TAG] [--cpu | --offline] [--instance-type T | --platform P] [--dry-run]
                         [--skip-build] [--no-push]
Builds the image (docker/build_image.sh), creates the ECR repository IMAGE_NAME if missing, logs in, tags
ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE_NAME:TAG (TAG defaults to latest) and pushes it.
  --cpu         build the CPU image (offline, from build/wheelhouse) instead of the CUDA one
  --offline     build the CUDA image without a registry: local Debian base, build/wheelhouse-cuda
  --platform P  linux/amd64 (default: SageMaker's training and most hosting instances) or linux/arm64
  --instance-type T
                the SageMaker instance type the image will run on (ml.m5.xlarge, ml.c7g.large...): its
                platform (Graviton types, ml.*g*.*, run linux/arm64); a push of an image it cannot run is refused
  --dry-run     print every step without doing it (the registry is still looked up: STS, read only)
  --skip-build  push IMAGE_NAME:TAG as it is in the local docker engine
  --no-push     stop once the ECR repository exists: no login, tag or push
Region and account come from the AWS environment (AWS_REGION or AWS_DEFAULT_REGION, STS); AWS_ENDPOINT_URL is
honoured (tests point it at moto). PYTHON names a Python with boto3 (default: .venv/bin/python, else python3).
EOF
}

while (($#)); do
    case "$1" in
    --cpu | --offline)
        [[ -z "$VARIANT" || "$VARIANT" == "$1" ]] ||
            fail "--cpu and --offline exclude each other (the CPU image is always built offline)"
        VARIANT="$1"
        ;;
    --platform)
        PLATFORM="${2:?--platform needs linux/amd64 or linux/arm64}"
        shift
        ;;
    --instance-type)
        INSTANCE_TYPE="${2:?--instance-type needs a SageMaker instance type, e.g. ml.m5.xlarge}"
        shift
        ;;
    --dry-run) DRY_RUN=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    --no-push) NO_PUSH=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*) fail "unknown option $1 (see --help)" ;;
    *) POSITIONAL+=("$1") ;;
    esac
    shift
done
((${#POSITIONAL[@]} >= 1 && ${#POSITIONAL[@]} <= 2)) || {
    usage >&2
    exit 2
}
case "$VARIANT" in
--cpu) BUILD=(--cpu) ;;
--offline) BUILD=(--cuda --offline) ;;
*) BUILD=(--cuda) ;;
esac
NAME="${POSITIONAL[0]}"
TAG="${POSITIONAL[1]:-latest}"
# ECR's own rules for repository names and tags, checked before anything is built.
[[ "$NAME" =~ ^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$ ]] ||
    fail "'$NAME' is not a valid ECR repository name (lowercase letters, digits, . _ - and / between parts)"
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || fail "'$TAG' is not a valid image tag"

# The platform the chosen instance runs: Graviton instance families end in g (ml.c7g, ml.m6g, ml.r7gd...).
if [[ -n "$INSTANCE_TYPE" ]]; then
    [[ "$INSTANCE_TYPE" =~ ^ml\.([a-z0-9-]+)\.[a-z0-9]+$ ]] ||
        fail "'$INSTANCE_TYPE' is not a SageMaker instance type (ml.FAMILY.SIZE, e.g. ml.m5.xlarge)"
    if [[ "${BASH_REMATCH[1]}" =~ ^[a-z]+[0-9]+g[a-z]*$ ]]; then needed=linux/arm64; else needed=linux/amd64; fi
    [[ -z "$PLATFORM" || "$PLATFORM" == "$needed" ]] ||
        fail "--platform $PLATFORM cannot run on $INSTANCE_TYPE, which runs $needed images"
    PLATFORM="$needed"
fi
PLATFORM="${PLATFORM:-linux/amd64}"
case "$PLATFORM" in
linux/amd64 | linux/arm64) ;;
*) fail "--platform must be linux/amd64 or linux/arm64 (what SageMaker's instances run), not $PLATFORM" ;;
esac
runs_on="$INSTANCE_TYPE"
if [[ -z "$runs_on" ]]; then runs_on="SageMaker's x86_64 instances"; fi

if [[ -z "${ECR[0]}" ]]; then
    if [[ -x "$REPOSITORY/.venv/bin/python" ]]; then ECR[0]="$REPOSITORY/.venv/bin/python"; else ECR[0]=python3; fi
fi
"${ECR[0]}" -c 'import boto3' 2>/dev/null ||
    fail "${ECR[0]} cannot import boto3: run 'make run' (creates .venv) or set PYTHON to a Python with boto3"

# Each step is printed; --dry-run prints it and stops there.
run() {
    if ((DRY_RUN)); then
        step "would run: $*"
    else
        step "running: $*"
        "$@"
    fi
}

step "looking up the registry (STS get-caller-identity, region from the environment)"
registry="$("${ECR[@]}" registry)" || fail "cannot tell the registry: are AWS credentials and a region set?"
local_image="$NAME:$TAG"
remote_image="$registry/$NAME:$TAG"
step "registry $registry; $local_image -> $remote_image"

if ((SKIP_BUILD)); then
    step "skipping the build (--skip-build): pushing $local_image as it is"
else
    run "$REPOSITORY/docker/build_image.sh" "${BUILD[@]}" --platform "$PLATFORM" --tag "$local_image"
fi

dry=()
if ((DRY_RUN)); then dry=(--dry-run); fi
step "ensuring the ECR repository $NAME exists"
answer="$("${ECR[@]}" ensure-repository "$NAME" "${dry[@]}")" || fail "cannot create or find the ECR repository $NAME"
step "$answer"

if ((NO_PUSH)); then
    step "stopping before login, tag and push (--no-push)"
    exit 0
fi

# Before anything reaches the registry: an image of another architecture would fail on SageMaker with
# "exec format error" (CannotStartContainerError), after the job or endpoint had been paid for.
if docker image inspect "$local_image" >/dev/null 2>&1; then
    image_platform="$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$local_image")"
    [[ "$image_platform" == "$PLATFORM" ]] ||
        fail "$local_image is $image_platform, but $runs_on run $PLATFORM images: SageMaker would fail with" \
            "'exec format error'. Rebuild it (without --skip-build) for --platform $PLATFORM"
    step "$local_image is $image_platform: runs on $runs_on"
elif ((DRY_RUN)); then
    step "would check that $local_image is $PLATFORM (for $runs_on) before pushing"
else
    fail "no image $local_image in the local docker engine"
fi

if ((DRY_RUN)); then
    step "would run: ${ECR[*]} login-password | docker login --username AWS --password-stdin $registry"
else
    step "running: ${ECR[*]} login-password | docker login --username AWS --password-stdin $registry"
    "${ECR[@]}" login-password | docker login --username AWS --password-stdin "$registry" ||
        fail "docker login to $registry failed"
fi
run docker tag "$local_image" "$remote_image"
run docker push "$remote_image"
if ((DRY_RUN)); then
    step "dry run: nothing was built, created or pushed"
else
    step "pushed $remote_image"
fi
