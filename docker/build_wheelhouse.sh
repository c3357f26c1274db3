#!/usr/bin/env bash
# docker/build_wheelhouse.sh [--cuda] [--force]: every wheel the image installs (container/pyproject.toml's pins, torch,
# setuptools to build the package) for linux x86_64 CPython 3.11, for offline builds: torch's CPU build in
# build/wheelhouse/, or with --cuda PyPI's CUDA build of torch and its NVIDIA wheels in build/wheelhouse-cuda/.
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELHOUSE="$REPOSITORY/build/wheelhouse"
CUDA=0
PYPROJECT="$REPOSITORY/container/pyproject.toml"
PYTHON="${PYTHON:-python3}"
# The image's interpreter: Debian 12's python3. Packages check Requires-Python against its patch level too.
TARGET_PYTHON="${TARGET_PYTHON:-3.11.2}"
FORCE=0

step() { echo "build_wheelhouse: $*"; }
fail() {
    echo "build_wheelhouse: error: $*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
    --cuda)
        CUDA=1
        WHEELHOUSE="$REPOSITORY/build/wheelhouse-cuda"
        ;;
    --force) FORCE=1 ;;
    -h | --help)
        sed -n '2,4p' "$0"
        exit 0
        ;;
    *) fail "unknown argument $1 (usage: $0 [--cuda] [--force])" ;;
    esac
    shift
done

# The image's Python is Debian bookworm's 3.11: wheels built here must carry its tag (cp311).
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    fail "$PYTHON is $("$PYTHON" --version 2>&1), not 3.11 (the image's); set PYTHON=python3.11"
[[ "$(uname -m)" == x86_64 ]] || fail "this machine is $(uname -m); the wheelhouse is for x86_64"

mkdir -p "$WHEELHOUSE"
requirements="$WHEELHOUSE/requirements.txt"
step "requirements from $PYPROJECT (its dependencies and build requirements)"
"$PYTHON" - "$PYPROJECT" >"$requirements.new" <<'EOF'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)
for requirement in [*project["project"]["dependencies"], *project["build-system"]["requires"]]:
    print(requirement)
EOF
echo "# for Python $TARGET_PYTHON" >>"$requirements.new"
mv "$requirements.new" "$requirements"

stamp="$WHEELHOUSE/.complete"
if ((!FORCE)) && [[ -f "$stamp" ]] && cmp -s "$stamp" "$requirements"; then
    step "$WHEELHOUSE already holds these requirements' wheels; nothing to do (--force fetches them again)"
    exit 0
fi
rm -f "$stamp"
if ((FORCE)); then
    step "--force: removing the wheels in $WHEELHOUSE"
    rm -f "$WHEELHOUSE"/*.whl
fi

# 1. `pip wheel` with this Python: wheels as they are, and the few sdists (sagemaker-training's C helper) built
#    here, so the image's builder stage needs no compiler. pip's configuration says where torch's CPU wheel is.
# 2. `pip download` for the image's Python: wheels only (step 1's included), chosen against Requires-Python of
#    $TARGET_PYTHON, which may take older versions than step 1 (soupsieve 4.1 needs 3.11.5, for one).
# (pip's warnings about index folders lacking a package come from this machine's pip configuration: hidden.)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
step "1/2: pip wheel into $WHEELHOUSE with $("$PYTHON" --version) (torch: about 190 MB, CUDA build 2.7 GB with its NVIDIA wheels)"
quiet "$PYTHON" -m pip wheel --quiet --wheel-dir "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$requirements" ||
    fail "pip wheel failed (see above)"
step "2/2: pip download the wheels Python $TARGET_PYTHON resolves to"
quiet "$PYTHON" -m pip download --quiet --only-binary=:all: --python-version "$TARGET_PYTHON" \
    --dest "$WHEELHOUSE" --find-links "$WHEELHOUSE" -r "$requirements" ||
    fail "pip download for Python $TARGET_PYTHON failed (see above)"

torch_wheels=("$WHEELHOUSE"/torch-*.whl)
[[ -f "${torch_wheels[0]}" ]] || fail "no torch wheel in $WHEELHOUSE"
((${#torch_wheels[@]} == 1)) || fail "more than one torch wheel in $WHEELHOUSE; run again with --force"
nvidia_wheels() { compgen -G "$WHEELHOUSE/nvidia_*.whl" >/dev/null || compgen -G "$WHEELHOUSE/cuda_*.whl" >/dev/null; }
torch_wheel="$(basename "${torch_wheels[0]}")"
if ((CUDA)); then
    # A local version (+cpu, +cu126) sorts above the plain one, so a CPU wheel that pip's configuration offers wins.
    [[ "$torch_wheel" != *+cpu-* ]] || fail "pip chose $torch_wheel, torch's CPU build, from its configuration" \
        "(find-links or an extra index); run again with that source hidden, e.g. PIP_CONFIG_FILE=/dev/null" \
        "PIP_FIND_LINKS= $0 --cuda --force"
    nvidia_wheels || fail "$torch_wheel came without NVIDIA wheels: it is not a CUDA build of torch"
else
    [[ "$torch_wheel" == *+cpu-* ]] || fail "$torch_wheel is not torch's CPU build; point pip at one" \
        "(PIP_FIND_LINKS=DIR holding torch-VERSION+cpu-cp311-...whl, or PyTorch's CPU index in PIP_EXTRA_INDEX_URL)" \
        "and run again with --force"
    ! nvidia_wheels || fail "CUDA wheels in $WHEELHOUSE: the CPU image must not carry them; run again with --force"
fi

cp "$requirements" "$stamp"
step "$(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1) in $WHEELHOUSE"
