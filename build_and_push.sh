#!/usr/bin/env bash
# build_and_push.sh IMAGE_NAME [TAG]: build the image, create its ECR repository if missing, log in,
# tag and push. The Dockerfile it builds arrives with the serving issue; until then it refuses to run.
set -euo pipefail
echo "build_and_push.sh: the image (docker/Dockerfile) does not exist yet; nothing to build or push" >&2
exit 2
