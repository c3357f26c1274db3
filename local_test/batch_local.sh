#!/usr/bin/env bash
# local_test/batch_local.sh FILE [CONTENT_TYPE] [--max-records N] [--max-payload-mb MB]: score FILE as Batch Transform
# would (SplitType=Line, AssembleWith=Line, the BatchStrategy and MaxPayloadInMB that the server's
# /execution-parameters advertises): FILE.out, one prediction per line, in order.
set -euo pipefail

# The server should run as Batch Transform runs it (SAGEMAKER_BATCH=true: serve_local.sh --batch), where text/plain
# is one record per line; outside it a text/plain body is one review, and the answer count check below fails loudly.

# Each scored batch is kept in FILE.out.parts/ until FILE.out is complete, so a rerun after an interruption or a
# refused batch sends only the batches not yet scored by the same model (kept answers are named by their batch's
# bytes, content type, Accept and the model's version: a changed line or another model is scored afresh).

SERVE_URL="${SERVE_URL:-http://localhost:${PORT:-8080}}"
MAX_PAYLOAD_MB="" # "": what /execution-parameters advertises (the server's limit; Batch Transform's default is 6)
MAX_RECORDS=""    # "": 1 when /execution-parameters says SINGLE_RECORD, else as many lines as fit (0)

step() { echo "batch_local: $*" >&2; }
fail() {
    echo "batch_local: error: $*" >&2
    exit 1
}
usage="usage: $0 FILE [CONTENT_TYPE] [--max-records N] [--max-payload-mb MB] (application/jsonlines, text/csv, text/plain)"

positional=()
while (($#)); do
    case "$1" in
    --max-records)
        MAX_RECORDS="${2:?--max-records needs a number}"
        shift
        ;;
    --max-payload-mb)
        MAX_PAYLOAD_MB="${2:?--max-payload-mb needs a number}"
        shift
        ;;
    -h | --help)
        echo "$usage"
        exit 0
        ;;
    -*) fail "unknown option $1 ($usage)" ;;
    *) positional+=("$1") ;;
    esac
    shift
done
((${#positional[@]} >= 1 && ${#positional[@]} <= 2)) || fail "$usage"
[[ -z "$MAX_RECORDS" || "$MAX_RECORDS" =~ ^[0-9]+$ ]] || fail "--max-records must be a whole number, not $MAX_RECORDS"
[[ -z "$MAX_PAYLOAD_MB" || "$MAX_PAYLOAD_MB" =~ ^[1-9][0-9]*$ ]] ||
    fail "--max-payload-mb must be a whole number of MB, not $MAX_PAYLOAD_MB"
file="${positional[0]}"
[[ -f "$file" ]] || fail "no such file: $file"
if ((${#positional[@]} == 2)); then
    content_type="${positional[1]}"
else
    case "$file" in
    *.jsonl) content_type=application/jsonlines ;;
    *.csv) content_type=text/csv ;;
    *.txt) content_type=text/plain ;;
    *) fail "cannot tell the content type of $file from its name: give it (application/jsonlines, text/csv, text/plain)" ;;
    esac
fi
case "$content_type" in
application/jsonlines | text/csv) accept="${ACCEPT:-$content_type}" ;;
text/plain) accept="${ACCEPT:-application/jsonlines}" ;;
*) fail "a line-split batch must be application/jsonlines, text/csv or text/plain, not $content_type" ;;
esac
# Batch Transform's Accept: a line-per-record format back, so the outputs assemble line by line.
output="$file.out"

records="$(awk 'END { print NR }' "$file")"
((records > 0)) || fail "$file is empty"

# A record over the payload limit cannot be sent at all (Batch Transform fails the same way).
check_line_lengths() {
    local too_long
    too_long="$(LC_ALL=C awk -v max="$(($1 * 1024 * 1024))" 'length($0) + 1 > max { print NR; exit }' "$file")"
    [[ -z "$too_long" ]] || fail "line $too_long of $file is over the $1 MB payload limit on its own"
}
if [[ -n "$MAX_PAYLOAD_MB" ]]; then check_line_lengths "$MAX_PAYLOAD_MB"; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/batch_local.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The model that answers: kept answers of another model are not reused. A server still loading its model
# answers 503 for a few seconds: wait for it, as Batch Transform waits for /ping.
READY_SECONDS="${READY_SECONDS:-120}"
waited=0
while :; do
    ping_status=0
    curl --silent --show-error --fail "$SERVE_URL/ping" >"$work/ping" 2>"$work/ping-error" || ping_status=$?
    case "$ping_status" in
    0) break ;;
    7) fail "nothing answers at $SERVE_URL: start a server (local_test/serve_local.sh IMAGE)" ;;
    22) ((waited < READY_SECONDS)) || fail "$SERVE_URL/ping: not ready after ${READY_SECONDS} s ($(cat "$work/ping-error"))" ;;
    *) fail "$SERVE_URL/ping failed ($(cat "$work/ping-error"))" ;;
    esac
    if ((waited == 0)); then step "waiting for $SERVE_URL/ping (the model is loading)"; fi
    sleep 1
    waited=$((waited + 1))
done
model="$(sed -n 's/.*"model": *"\([^"]*\)".*/\1/p' "$work/ping")"
[[ -n "$model" ]] || fail "$SERVE_URL/ping did not name its model: is this the sentiment server?"

# What Batch Transform asks the container before a job that leaves BatchStrategy and MaxPayloadInMB unset.
curl --silent --show-error --fail "$SERVE_URL/execution-parameters" >"$work/parameters" 2>"$work/parameters-error" ||
    fail "$SERVE_URL/execution-parameters failed ($(cat "$work/parameters-error"))"
strategy="$(sed -n 's/.*"BatchStrategy": *"\([A-Z_]*\)".*/\1/p' "$work/parameters")"
advertised_mb="$(sed -n 's/.*"MaxPayloadInMB": *\([0-9]*\).*/\1/p' "$work/parameters")"
[[ "$strategy" =~ ^(MULTI|SINGLE)_RECORD$ && "$advertised_mb" =~ ^[1-9][0-9]*$ ]] ||
    fail "$SERVE_URL/execution-parameters is not Batch Transform's shape: $(cat "$work/parameters")"
if [[ -z "$MAX_PAYLOAD_MB" ]]; then
    MAX_PAYLOAD_MB="$advertised_mb"
    check_line_lengths "$MAX_PAYLOAD_MB"
fi
if [[ -z "$MAX_RECORDS" ]]; then
    if [[ "$strategy" == SINGLE_RECORD ]]; then MAX_RECORDS=1; else MAX_RECORDS=0; fi
fi
max_bytes=$((MAX_PAYLOAD_MB * 1024 * 1024))
parts="$output.parts"
mkdir -p "$parts"

# Whole lines only: first at most MAX_RECORDS lines per batch, then at most max_bytes per batch.
if ((MAX_RECORDS > 0)); then
    split --lines="$MAX_RECORDS" --numeric-suffixes --suffix-length=6 "$file" "$work/records-"
else
    cp "$file" "$work/records-000000"
fi
for part in "$work"/records-*; do
    split --line-bytes="$max_bytes" --numeric-suffixes --suffix-length=6 "$part" "$part-batch-"
    rm "$part"
done
batches=("$work"/records-*-batch-*)
limit="at most $MAX_PAYLOAD_MB MB"
if ((MAX_RECORDS > 0)); then limit="$limit and $MAX_RECORDS records"; fi
step "$file: $records records in ${#batches[@]} batch(es) of $limit each ($strategy)," \
    "to $SERVE_URL/invocations as $content_type, Accept $accept"

: >"$work/out"
number=0
resumed=0
for batch in "${batches[@]}"; do
    number=$((number + 1))
    # A last line without a line break still is a record: the server gets it whole.
    lines="$(awk 'END { print NR }' "$batch")"
    key="$({ printf '%s\n' "$model" "$content_type" "$accept"; cat "$batch"; } | sha256sum | cut -c1-64)"
    kept="$parts/$key.out"
    if [[ -f "$kept" && "$(awk 'END { print NR }' "$kept")" == "$lines" ]]; then
        cat "$kept" >>"$work/out"
        resumed=$((resumed + 1))
        step "batch $number/${#batches[@]}: $lines records: scored before, kept answer used"
        continue
    fi
    status=0
    curl --silent --show-error --fail-with-body \
        --header "Content-Type: $content_type" --header "Accept: $accept" \
        --data-binary "@$batch" "$SERVE_URL/invocations" >"$work/answer" || status=$?
    case "$status" in
    0) ;;
    7) fail "nothing answers at $SERVE_URL: start a server (local_test/serve_local.sh IMAGE)" ;;
    *)
        cat "$work/answer" >&2 && echo >&2
        from_line=$(($(wc -l <"$work/out") + 1))
        fail "batch $number (records from line $from_line) was refused (curl exit status $status);" \
            "the $((number - 1)) batch(es) before it are kept in $parts: a rerun sends only the rest"
        ;;
    esac
    if [[ -n "$(tail -c 1 "$work/answer")" ]]; then echo >>"$work/answer"; fi
    answered="$(awk 'END { print NR }' "$work/answer")"
    ((answered == lines)) || fail "batch $number: $lines records in, $answered predictions out" \
        "(a server outside Batch Transform reads a text/plain body as one review: serve_local.sh --batch)"
    # Into place in one rename, beside its final name: an interruption leaves no half-written answer.
    { cp "$work/answer" "$kept.partial" && mv "$kept.partial" "$kept"; } || fail "cannot keep batch $number in $parts"
    cat "$work/answer" >>"$work/out"
    step "batch $number/${#batches[@]}: $lines records, $(wc -c <"$batch") bytes: ok"
done

{ cp "$work/out" "$output.partial" && mv "$output.partial" "$output"; } || fail "cannot write $output (the scored batches stay in $parts)"
rm -rf "$parts"
if ((resumed > 0)); then step "resumed: $resumed of ${#batches[@]} batch(es) were scored before"; fi
step "$output: $(awk 'END { print NR }' "$output") predictions for $records records"
