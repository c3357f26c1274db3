#!/usr/bin/env bash
# local_test/train_local.sh IMAGE [DOCKER_RUN_OPTION...]: run IMAGE's `train` on test_dir/ mounted as /opt/ml, as a
# SageMaker training job would (hostname algo-1, fresh model/ and output/); e.g. `--gpus all` for the CUDA image.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEST_DIR="${TEST_DIR:-$HERE/test_dir}"

step() { echo "train_local: $*"; }
fail() {
    echo "train_local: error: $*" >&2
    exit 1
}

(($# >= 1)) || fail "usage: $0 IMAGE [DOCKER_RUN_OPTION...] (e.g. sentiment:cpu)"
image="$1"
shift
docker image inspect "$image" >/dev/null 2>&1 ||
    fail "no image $image in the local docker engine (build it: docker/build_image.sh --cpu)"

if [[ ! -f "$TEST_DIR/input/config/hyperparameters.json" ]]; then
    step "no $TEST_DIR yet: making one with made-up reviews"
    python3 "$HERE/make_test_dir.py" --output "$TEST_DIR"
fi
TEST_DIR="$(cd "$TEST_DIR" && pwd)"

# A SageMaker job starts with empty model/ and output/ and no checkpoints unless it is told to resume.
step "emptying $TEST_DIR/{model,output,checkpoints}"
rm -rf "$TEST_DIR/model" "$TEST_DIR/output" "$TEST_DIR/checkpoints"
mkdir -p "$TEST_DIR/model" "$TEST_DIR/output"

step "hyperparameters $(tr -d '\n ' <"$TEST_DIR/input/config/hyperparameters.json")"
step "docker run --rm --hostname algo-1 -v $TEST_DIR:/opt/ml ${*:+$* }$image train"
started=$SECONDS
status=0
docker run --rm --hostname algo-1 -v "$TEST_DIR:/opt/ml" "$@" "$image" train || status=$?
elapsed=$((SECONDS - started))

if ((status != 0)); then
    if [[ -f "$TEST_DIR/output/failure" ]]; then
        echo "train_local: training failed after $elapsed s (exit status $status); output/failure says:" >&2
        sed 's/^/    /' "$TEST_DIR/output/failure" >&2
    else
        echo "train_local: training failed after $elapsed s (exit status $status), with no output/failure" >&2
    fi
    exit "$status"
fi
[[ -f "$TEST_DIR/model/model.json" ]] || fail "train exited 0 but wrote no model/model.json"
step "trained in $elapsed s; the model in $TEST_DIR/model:"
ls -l "$TEST_DIR/model"
step "serve it: local_test/serve_local.sh $image"
