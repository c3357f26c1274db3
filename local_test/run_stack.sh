#!/usr/bin/env bash
# local_test/run_stack.sh [--port 8080]: the visitor's whole path on this machine: `serve` (bundled model) behind
# local_test/gateway.py (API Gateway stand-in: web/ at /, POST /predict to lambda/handler.py); one Ctrl+C stops it all.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
SERVE="$ROOT/.venv/bin/serve"
PORT="${PORT:-8080}"

step() { echo "run_stack: $*"; }
fail() {
    echo "run_stack: error: $*" >&2
    exit 1
}

while (($# > 0)); do
    case "$1" in
    --port)
        (($# >= 2)) || fail "--port needs a number"
        PORT="$2"
        shift 2
        ;;
    --port=*)
        PORT="${1#--port=}"
        shift
        ;;
    -h | --help)
        sed -n 2,3p "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) fail "unknown option $1 (usage: $0 [--port 8080])" ;;
    esac
done
if ! [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
    fail "--port must be a number from 1 to 65535, not '$PORT'"
fi
PORT=$((10#$PORT)) # "08080" would otherwise reach Python as an invalid literal
[[ -x "$PYTHON" && -x "$SERVE" ]] || fail "no $SERVE: create the virtualenv first (make run)"
# Checked before serve starts, so a taken port costs a clear message rather than a model load and a traceback.
"$PYTHON" -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' \
    "$PORT" 2>/dev/null || fail "port $PORT is already in use on 127.0.0.1: pick another with --port"

# Each background job gets its own process group (job control), so one kill reaches gunicorn's workers too,
# and the caller's group (a terminal, or a test runner) is never signalled by us. The flip side: a closed terminal's
# SIGHUP reaches only this script, hence the HUP trap.
set -m
pids=()
# shellcheck disable=SC2317  # called from the traps below
stop_all() {
    trap - INT TERM HUP EXIT
    trap '' PIPE # a closed stdout (a pipe to head, a gone terminal) must not cut the shutdown short
    if ((${#pids[@]} > 0)); then
        for pid in "${pids[@]}"; do
            kill -TERM -- "-$pid" 2>/dev/null || true
        done
        step "stopping (${pids[*]})" || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all; exit 129' HUP
trap stop_all EXIT

serve_port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
step "starting serve (bundled model, 1 worker) on http://127.0.0.1:$serve_port"
USE_BUNDLED_MODEL=1 SENTIMENT_BIND_HOST=127.0.0.1 SAGEMAKER_BIND_TO_PORT="$serve_port" MODEL_SERVER_WORKERS=1 \
    "$SERVE" &
serve_pid=$!
pids+=("$serve_pid")

step "waiting for http://127.0.0.1:$serve_port/ping"
# In the background, so that Ctrl+C interrupts `wait` at once instead of waiting for the poller to finish.
"$PYTHON" - "$serve_port" "$serve_pid" <<'PY' &
import os, sys, time, urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
PY
pids+=("$!")
wait "$!" || fail "serve did not become ready within 60 s (see its output above)"
pids=("$serve_pid")

step "starting the gateway on http://127.0.0.1:$PORT"
"$PYTHON" "$HERE/gateway.py" --port "$PORT" --serve-url "http://127.0.0.1:$serve_port" &
pids+=("$!")

step "open http://127.0.0.1:$PORT/ (Ctrl+C stops everything)"
status=0
wait -n "${pids[@]}" || status=$?
fail "a process of the stack exited (status $status); stopping the rest"
