#!/usr/bin/env bash
# build_and_push.sh IMAGE_NAME [TAG] [--cpu | --offline] [--dry-run] [--skip-build] [--no-push]: build the image (docker/),
# create its ECR repository if missing, log in, tag ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE_NAME:TAG and push it.
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ECR=("${PYTHON:-}" "$REPOSITORY/docker/ecr.py")
VARIANT="" # --cpu, --offline (the CUDA image without a registry) or "" (the CUDA image)
DRY_RUN=0
SKIP_BUILD=0
NO_PUSH=0
POSITIONAL=()

step() { echo "build_and_push: $*"; }
fail() {
    echo "build_and_push: error: $*" >&2
    exit 1
}
usage() {
    cat <<'EOF'
usage: build_and_push.sh IMAGE_NAME [TAG] [--cpu | --offline] [--dry-run] [--skip-build] [--no-push]
Builds the image (docker/build_image.sh), creates the ECR repository IMAGE_NAME if missing, logs in, tags
ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE_NAME:TAG (TAG defaults to latest) and pushes it.
  --cpu         build the CPU image (offline, from build/wheelhouse) instead of the CUDA one
  --offline     build the CUDA image without a registry: local Debian base, build/wheelhouse-cuda
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
    run "$REPOSITORY/docker/build_image.sh" "${BUILD[@]}" --tag "$local_image"
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
