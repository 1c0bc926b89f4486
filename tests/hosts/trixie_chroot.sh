#!/usr/bin/env bash
# Prepare a cached Debian trixie chroot with the given packages: the one recipe behind
# gimp/setup_chroot.sh and krita/setup_chroot.sh (each host has a root of its own).
#
#   trixie_chroot.sh ROOT MIRROR MARKER_TEXT LABEL CHECK PACKAGE...
#
# Idempotent: a complete chroot carries a marker file holding MARKER_TEXT and is left
# alone. A partial one (an interrupted earlier run) is unmounted and rebuilt. A chroot made
# with another MARKER_TEXT gets the packages installed again (no rebuild). CHECK is a command
# run inside the finished chroot (it prints the application's version). Needs root,
# debootstrap (installed with apt-get when missing) and Debian's package servers.
#
# Safety: proc, dev and sys are bind-mounted while apt runs inside. `rm -rf` through a live
# bind mount deletes the HOST's files, so every deletion below goes through remove_root,
# which unmounts first and refuses to delete while anything under the root is still mounted.
set -euo pipefail

ROOT="$1"
MIRROR="$2"
MARKER_TEXT="$3"
LABEL="$4"
CHECK="$5"
shift 5
PACKAGES="$*"
SUITE=trixie
MARKER="$ROOT/.paintwire-ready"
BASE_MARKER="$ROOT/.paintwire-debootstrap-done"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gimp/mounts.sh
source "$here/gimp/mounts.sh"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "$LABEL chroot ready at $ROOT"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "setup_chroot.sh: must run as root (debootstrap, chroot and mount need it)" >&2
    exit 2
fi

mkdir -p "$(dirname "$ROOT")"
# The host tests take the same lock while they run in the chroot: never rebuild under one.
exec 9>"$ROOT.lock"
flock 9
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "$LABEL chroot ready at $ROOT"
    exit 0
fi
trap 'unmount_all "$ROOT"' EXIT

if ! command -v debootstrap >/dev/null; then
    echo "Installing debootstrap on the host"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap
fi

start=$(date +%s)
if [[ ! -f "$BASE_MARKER" ]]; then
    if [[ -e "$ROOT" ]]; then
        echo "Removing the incomplete chroot at $ROOT"
        remove_root "$ROOT"
    fi
    mkdir -p "$(dirname "$ROOT")"
    echo "debootstrap $SUITE into $ROOT"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 || {
        tail -n 30 "$ROOT.debootstrap.log" >&2
        exit 1
    }
    touch "$BASE_MARKER"
    echo "  debootstrap took $(( $(date +%s) - start )) s"
fi
rm -f "$MARKER"

cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mount_all "$ROOT"
step=$(date +%s)
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 apt-get update -qq
# shellcheck disable=SC2086
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    apt-get install -y -qq --no-install-recommends $PACKAGES > "$ROOT.apt.log" 2>&1 || {
    tail -n 30 "$ROOT.apt.log" >&2
    exit 1
}
chroot "$ROOT" apt-get clean
echo "  apt-get install took $(( $(date +%s) - step )) s"
# shellcheck disable=SC2086
chroot "$ROOT" $CHECK
unmount_all "$ROOT"

echo "$MARKER_TEXT" > "$MARKER"
echo "$LABEL chroot ready at $ROOT after $(( $(date +%s) - start )) s"
