#!/usr/bin/env bash
# local_test/serve_local.sh IMAGE [--bundled] [--batch] [DOCKER_RUN_OPTION...]: run IMAGE's `serve` as SageMaker
# hosting would (or, with --batch, as Batch Transform would), on the model trained into test_dir/model (or the bundled
# one), at http://localhost:${PORT:-8080}; Ctrl+C stops it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEST_DIR="${TEST_DIR:-$HERE/test_dir}"
PORT="${PORT:-8080}"

step() { echo "serve_local: $*"; }
fail() {
    echo "serve_local: error: $*" >&2
    exit 1
}

(($# >= 1)) || fail "usage: $0 IMAGE [--bundled] [--batch] [DOCKER_RUN_OPTION...] (e.g. sentiment:cpu)"
image="$1"
shift
docker image inspect "$image" >/dev/null 2>&1 ||
    fail "no image $image in the local docker engine (build it: docker/build_image.sh --cpu)"

bundled=0
batch=()
while [[ "${1:-}" == --bundled || "${1:-}" == --batch ]]; do
    if [[ "$1" == --bundled ]]; then bundled=1; fi
    if [[ "$1" == --batch ]]; then
        # What Batch Transform sets in the container for a MultiRecord job with the default payload limit.
        batch=(-e SAGEMAKER_BATCH=true -e SAGEMAKER_BATCH_STRATEGY=MULTI_RECORD -e SAGEMAKER_MAX_PAYLOAD_IN_MB=6
            -e SAGEMAKER_MAX_CONCURRENT_TRANSFORMS=1)
        step "as Batch Transform runs it: ${batch[*]}"
    fi
    shift
done

if ((bundled)); then
    step "serving the bundled default model"
    model=(-e USE_BUNDLED_MODEL=1)
elif [[ -f "$TEST_DIR/model/model.json" || -f "$TEST_DIR/model/model.tar.gz" ]]; then
    TEST_DIR="$(cd "$TEST_DIR" && pwd)"
    step "serving the model in $TEST_DIR/model"
    model=(-v "$TEST_DIR/model:/opt/ml/model:ro")
else
    fail "no model in $TEST_DIR/model: train one (local_test/train_local.sh $image) or pass --bundled"
fi

step "docker run --rm -p 127.0.0.1:$PORT:8080 ${model[*]} ${batch[*]:+${batch[*]} }${*:+$* }$image serve"
step "then, in another shell: local_test/predict.sh local_test/payloads/review.txt"
exec docker run --rm -p "127.0.0.1:$PORT:8080" "${model[@]}" ${batch[@]+"${batch[@]}"} "$@" "$image" serve
