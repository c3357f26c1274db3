#!/usr/bin/env bash
# local_test/batch_local.sh FILE [CONTENT_TYPE] [--max-records N] [--max-payload-mb MB]: score FILE as Batch Transform
# would (SplitType=Line, BatchStrategy=MultiRecord, AssembleWith=Line): FILE.out, one prediction per line, in order.
set -euo pipefail

# Each scored batch is kept in FILE.out.parts/ until FILE.out is complete, so a rerun after an interruption or a
# refused batch sends only the batches not yet scored by the same model (kept answers are named by their batch's
# bytes, content type, Accept and the model's version: a changed line or another model is scored afresh).

SERVE_URL="${SERVE_URL:-http://localhost:${PORT:-8080}}"
MAX_PAYLOAD_MB=6 # the server's limit and Batch Transform's default MaxPayloadInMB
MAX_RECORDS=0    # 0: as many lines as fit in the payload

step() { echo "batch_local: $*" >&2; }
fail() {
    echo "batch_local: error: $*" >&2
    exit 1
}
usage="usage: $0 FILE [CONTENT_TYPE] [--max-records N] [--max-payload-mb MB] (application/jsonlines or text/csv)"

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
[[ "$MAX_RECORDS" =~ ^[0-9]+$ ]] || fail "--max-records must be a whole number, not $MAX_RECORDS"
[[ "$MAX_PAYLOAD_MB" =~ ^[1-9][0-9]*$ ]] || fail "--max-payload-mb must be a whole number of MB, not $MAX_PAYLOAD_MB"
file="${positional[0]}"
[[ -f "$file" ]] || fail "no such file: $file"
if ((${#positional[@]} == 2)); then
    content_type="${positional[1]}"
else
    case "$file" in
    *.jsonl) content_type=application/jsonlines ;;
    *.csv) content_type=text/csv ;;
    *) fail "cannot tell the content type of $file from its name: give it (application/jsonlines or text/csv)" ;;
    esac
fi
case "$content_type" in
application/jsonlines | text/csv) ;;
text/plain) fail "text/plain is one review per request; a batch needs application/jsonlines or text/csv" ;;
*) fail "a line-split batch must be application/jsonlines or text/csv, not $content_type" ;;
esac
# Batch Transform's Accept: the same line-per-record format back, so the outputs assemble line by line.
accept="${ACCEPT:-$content_type}"
output="$file.out"
max_bytes=$((MAX_PAYLOAD_MB * 1024 * 1024))

records="$(awk 'END { print NR }' "$file")"
((records > 0)) || fail "$file is empty"
too_long="$(LC_ALL=C awk -v max="$max_bytes" 'length($0) + 1 > max { print NR; exit }' "$file")"
[[ -z "$too_long" ]] || fail "line $too_long of $file is over the $MAX_PAYLOAD_MB MB payload limit on its own"

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
step "$file: $records records in ${#batches[@]} batch(es) of $limit each," \
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
    ((answered == lines)) || fail "batch $number: $lines records in, $answered predictions out"
    # Into place in one rename, beside its final name: an interruption leaves no half-written answer.
    { cp "$work/answer" "$kept.partial" && mv "$kept.partial" "$kept"; } || fail "cannot keep batch $number in $parts"
    cat "$work/answer" >>"$work/out"
    step "batch $number/${#batches[@]}: $lines records, $(wc -c <"$batch") bytes: ok"
done

{ cp "$work/out" "$output.partial" && mv "$output.partial" "$output"; } || fail "cannot write $output (the scored batches stay in $parts)"
rm -rf "$parts"
if ((resumed > 0)); then step "resumed: $resumed of ${#batches[@]} batch(es) were scored before"; fi
step "$output: $(awk 'END { print NR }' "$output") predictions for $records records"
