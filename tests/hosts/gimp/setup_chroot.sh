#!/usr/bin/env bash
# Prepare the cached Debian trixie chroot with GIMP 3 that the GIMP host test runs in.
#
# Idempotent: a complete chroot carries a marker file and is left alone. A partial one
# (an interrupted earlier run) is unmounted and rebuilt. Needs root, debootstrap (installed
# with apt-get when missing) and Debian's package servers; about 70 s + 40 s the first time.
#
#   bash tests/hosts/gimp/setup_chroot.sh            # prepare (or check) the chroot
#   GIMP_HOST_CHROOT=/some/dir bash ...         # another cache location
#
# Safety: proc, dev and sys are bind-mounted while apt runs inside. `rm -rf` through a live
# bind mount deletes the HOST's files, so every deletion below goes through remove_root,
# which unmounts first and refuses to delete while anything under the root is still mounted.
set -euo pipefail

ROOT="${GIMP_HOST_CHROOT:-/var/cache/paintwire/gimp-trixie}"
SUITE=trixie
MIRROR="${GIMP_HOST_MIRROR:-http://deb.debian.org/debian}"
# The marker records the package list: a chroot made with another list gets the missing
# packages installed (no rebuild). xvfb runs the dialog smoke test.
PACKAGES="gimp gir1.2-gimp-3.0 python3-gi gir1.2-gegl-0.4 python3-websockets python3-msgpack xvfb xauth"
MARKER_TEXT="paintwire-gimp-chroot v1: $PACKAGES"
MARKER="$ROOT/.paintwire-ready"
BASE_MARKER="$ROOT/.paintwire-debootstrap-done"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=mounts.sh
source "$here/mounts.sh"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "GIMP chroot ready at $ROOT"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "setup_chroot.sh: must run as root (debootstrap, chroot and mount need it)" >&2
    exit 2
fi

mkdir -p "$(dirname "$ROOT")"
# run_gimp.sh takes the same lock: never rebuild under a running test.
exec 9>"$ROOT.lock"
flock 9
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "GIMP chroot ready at $ROOT"
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
chroot "$ROOT" gimp-console-3.0 --version
unmount_all "$ROOT"

echo "$MARKER_TEXT" > "$MARKER"
echo "GIMP chroot ready at $ROOT after $(( $(date +%s) - start )) s"
