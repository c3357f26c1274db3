#!/usr/bin/env bash
# docker/build_base_image.sh [--force] [--tag NAME]: a Debian bookworm base image (python3 3.11, venv, tini)
# made with debootstrap from the host's own apt mirror and imported into docker; the CPU image builds FROM it.
set -euo pipefail

REPOSITORY="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="sentiment-base:bookworm"
SUITE="bookworm"
ROOTFS="$REPOSITORY/build/base-rootfs"
# What the image's two stages need from Debian: the interpreter, venv (the builder stage makes one),
# certificates (boto3 to S3), tini (PID 1: forwards SIGTERM, reaps children), nginx (in front of gunicorn).
PACKAGES="python3,python3-venv,ca-certificates,tini,nginx"
FORCE=0

step() { echo "build_base_image: $*"; }
fail() {
    echo "build_base_image: error: $*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
    --force) FORCE=1 ;;
    --tag)
        TAG="${2:?--tag needs a name}"
        shift
        ;;
    -h | --help)
        sed -n '2,3p' "$0"
        exit 0
        ;;
    *) fail "unknown argument $1 (usage: $0 [--force] [--tag NAME])" ;;
    esac
    shift
done

# The mirror serving $SUITE in the host's apt sources (deb822 .sources files or one-line .list files),
# so the image comes from wherever this machine gets its packages; DEBIAN_MIRROR overrides it.
host_mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) types = substr($i, 7)
                    if ($i ~ /^URIs:/) uris = substr($i, 6)
                    if ($i ~ /^Suites:/) suites = substr($i, 8)
                }
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
                    split(uris, list, " "); for (j in list) if (list[j] != "") { print list[j]; exit }
                }
            }' "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        awk -v suite="$SUITE" \
            '$1 == "deb" { sub(/^deb +(\[[^]]*\] +)?/, ""); if ($2 == suite) { print $1; exit } }' "$file"
    done
}

step "checking the docker engine"
docker info >/dev/null 2>&1 || fail "no docker engine answers (start dockerd first; see docker/README.md)"

# An image (and a root file system) made with another package list is out of date: the list is kept with each.
if ((!FORCE)) && docker image inspect "$TAG" >/dev/null 2>&1; then
    made_with="$(docker image inspect -f '{{index .Config.Labels "sentiment.packages"}}' "$TAG")"
    if [[ "$made_with" == "$PACKAGES" ]]; then
        step "$TAG exists already; nothing to do (--force rebuilds it)"
        exit 0
    fi
    step "$TAG was made with packages '${made_with:-unknown}', not '$PACKAGES': making it again"
fi

command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install -y debootstrap)"
((EUID == 0)) || fail "debootstrap needs root"

MIRROR="${DEBIAN_MIRROR:-$(host_mirror | head -n 1)}"
[[ -n "$MIRROR" ]] || fail "no '$SUITE' mirror in /etc/apt/sources.list{,.d/*}; set DEBIAN_MIRROR=URL"
step "mirror $MIRROR (from the host's apt sources), suite $SUITE, packages $PACKAGES"

if ((FORCE)) || [[ ! -f "$ROOTFS/.complete" || "$(cat "$ROOTFS/.complete")" != "$PACKAGES" ]]; then
    step "debootstrap --variant=minbase into $ROOTFS (about 2 minutes)"
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 ||
        fail "debootstrap failed; its log: $ROOTFS.log"

    step "security and point-release updates from the host's sources"
    # The host's own sources (bookworm, -updates, -security), then nothing of apt's state left behind.
    rm -f "$ROOTFS/etc/apt/sources.list"
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        cp /etc/apt/sources.list.d/*.sources "$ROOTFS/etc/apt/sources.list.d/"
    fi
    if [[ -f /etc/apt/sources.list ]]; then cp /etc/apt/sources.list "$ROOTFS/etc/apt/sources.list"; fi
    chroot "$ROOTFS" apt-get update -qq >>"$ROOTFS.log" 2>&1 ||
        fail "apt-get update in the new root failed; its log: $ROOTFS.log"
    DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" apt-get upgrade -y -qq >>"$ROOTFS.log" 2>&1 ||
        fail "apt-get upgrade in the new root failed; its log: $ROOTFS.log"
    chroot "$ROOTFS" apt-get clean
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/*.log
    : >"$ROOTFS/etc/resolv.conf" # the host's; docker supplies the container's own
    echo localhost >"$ROOTFS/etc/hostname"
    chroot "$ROOTFS" python3 -c 'import sys, venv, ssl; assert sys.version_info >= (3, 11), sys.version' ||
        fail "the new root's python3 is not a usable 3.11 or newer"
    echo "$PACKAGES" >"$ROOTFS/.complete"
else
    step "reusing the root file system in $ROOTFS (--force makes a new one)"
fi

step "importing $ROOTFS as $TAG"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
tar --exclude=./.complete -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with python3 (debootstrap)\"" \
    --change "LABEL org.opencontainers.image.created=$created" \
    --change "LABEL sentiment.packages=$PACKAGES" \
    - "$TAG" >/dev/null
size="$(docker image inspect -f '{{.Size}}' "$TAG")"
step "$TAG: $(docker run --rm "$TAG" python3 --version), $((size / 1000000)) MB"
