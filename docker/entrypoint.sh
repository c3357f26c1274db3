#!/usr/bin/env bash
# docker/entrypoint.sh, the image's entry point under tini: SageMaker runs `docker run IMAGE train` (the toolkit,
# as root) or `docker run IMAGE serve` (gunicorn, as the unprivileged user `sentiment`); anything else is exec'd.
set -euo pipefail

command="${1:-serve}"
(($#)) && shift

# CUDA forward compatibility, as SageMaker advises for images newer than the host's driver: when the image
# carries compat libraries (nvidia/cuda bases do) newer than the driver, load libcuda from them.
if [[ -d /usr/local/cuda/compat ]] && command -v nvidia-smi >/dev/null 2>&1; then
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null || true)"
    driver="${driver%%$'\n'*}"
    libraries=(/usr/local/cuda/compat/libcuda.so.*.*)
    compat="${libraries[0]##*/libcuda.so.}" # e.g. 580.65.06; '*.*' when there is none
    sorted="$(printf '%s\n%s\n' "$driver" "$compat" | sort -V)"
    if [[ -n "$driver" && "$compat" != '*.*' && "$sorted" != "$compat"* ]]; then
        echo "entrypoint: driver $driver is older than CUDA's compat library $compat: using /usr/local/cuda/compat"
        export LD_LIBRARY_PATH="/usr/local/cuda/compat${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
fi

case "$command" in
train)
    # SageMaker keeps the image's /opt/ml/code; `docker run -v DIR:/opt/ml` (local tests) hides it.
    code_dir="${SAGEMAKER_BASE_DIR:-/opt/ml}/code"
    program="${SAGEMAKER_PROGRAM:?SAGEMAKER_PROGRAM is not set}"
    if [[ ! -f "$code_dir/$program" && -f "/opt/program/$program" ]]; then
        echo "entrypoint: $code_dir/$program is hidden by a mount; copying the image's copy there"
        mkdir -p "$code_dir"
        cp "/opt/program/$program" "$code_dir/$program"
    fi
    exec train "$@"
    ;;
serve)
    # SageMaker starts containers as root; the server needs no privilege, so it drops it
    # (SENTIMENT_SERVE_USER=root keeps it, for a model whose files only root can read).
    user="${SENTIMENT_SERVE_USER:-sentiment}"
    if ((EUID == 0)) && [[ "$user" != root ]]; then
        home="$(getent passwd "$user" | cut -d: -f6)"
        [[ -n "$home" ]] || {
            echo "entrypoint: no user '$user' in this image (SENTIMENT_SERVE_USER)" >&2
            exit 1
        }
        HOME="$home" exec setpriv --reuid="$user" --regid="$user" --init-groups serve "$@"
    fi
    exec serve "$@"
    ;;
*)
    exec "$command" "$@"
    ;;
esac
