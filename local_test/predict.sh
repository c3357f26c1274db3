#!/usr/bin/env bash
# local_test/predict.sh FILE [CONTENT_TYPE]: POST FILE to /invocations as SageMaker's InvokeEndpoint would and print
# the answer (Accept from $ACCEPT, server from $SERVE_URL, default http://localhost:${PORT:-8080}).
set -euo pipefail

SERVE_URL="${SERVE_URL:-http://localhost:${PORT:-8080}}"

step() { echo "predict: $*" >&2; }
fail() {
    echo "predict: error: $*" >&2
    exit 1
}

(($# >= 1 && $# <= 2)) ||
    fail "usage: $0 FILE [CONTENT_TYPE] (text/plain, application/json, application/jsonlines, text/csv)"
file="$1"
[[ -f "$file" ]] || fail "no such file: $file"
if (($# == 2)); then
    content_type="$2"
else
    case "$file" in
    *.txt) content_type=text/plain ;;
    *.json) content_type=application/json ;;
    *.jsonl) content_type=application/jsonlines ;;
    *.csv) content_type=text/csv ;;
    *) fail "cannot tell the content type of $file from its name: give it as the second argument" ;;
    esac
fi
accept="${ACCEPT:-*/*}"

step "POST $file ($(wc -c <"$file") bytes) to $SERVE_URL/invocations, Content-Type $content_type, Accept $accept"
# --fail-with-body: a 4xx/5xx answer's JSON error is shown, and the exit status is non-zero.
status=0
answer="$(curl --silent --show-error --fail-with-body \
    --header "Content-Type: $content_type" --header "Accept: $accept" \
    --data-binary "@$file" "$SERVE_URL/invocations")" || status=$?
case "$status" in
0) printf '%s\n' "$answer" ;;
7) fail "nothing answers at $SERVE_URL: start a server (local_test/serve_local.sh IMAGE)" ;;
22)
    printf '%s\n' "$answer" >&2
    fail "the server refused the request (above)"
    ;;
*) fail "curl failed with exit status $status" ;;
esac
