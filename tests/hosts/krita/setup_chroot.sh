#!/usr/bin/env bash
# Prepare the cached Debian trixie chroot with Krita 5.2 that the Krita host test also runs
# in (Debian 12's own Krita is 5.1; most users run 5.2).
#
# Idempotent: a complete chroot carries a marker file and is left alone. A partial one (an
# interrupted earlier run) is unmounted and rebuilt. Needs root, debootstrap (installed with
# apt-get when missing) and Debian's package servers; a few minutes and about 1.5 GB the
# first time. A root of its own, apart from the GIMP chroot, so that neither set-up ever
# disturbs a test running in the other.
#
#   bash tests/hosts/krita/setup_chroot.sh            # prepare (or check) the chroot
#   KRITA_HOST_CHROOT=/some/dir bash ...              # another cache location
#
# Safety: the same bind-mount rules as the GIMP chroot (tests/hosts/gimp/mounts.sh): every
# deletion goes through remove_root, which unmounts first and refuses while anything under
# the root is still mounted.
set -euo pipefail

ROOT="${KRITA_HOST_CHROOT:-/var/cache/paintwire/krita-trixie}"
SUITE=trixie
MIRROR="${KRITA_HOST_MIRROR:-http://deb.debian.org/debian}"
# python3-pyqt5: Krita's Python plug-ins import PyQt5 (a Recommends, not a Depends, in Debian).
PACKAGES="krita python3-pyqt5 xvfb xauth"
MARKER_TEXT="paintwire-krita-chroot v1: $PACKAGES"
MARKER="$ROOT/.paintwire-ready"
BASE_MARKER="$ROOT/.paintwire-debootstrap-done"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../gimp/mounts.sh
source "$here/../gimp/mounts.sh"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "Krita chroot ready at $ROOT"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "setup_chroot.sh: must run as root (debootstrap, chroot and mount need it)" >&2
    exit 2
fi

mkdir -p "$(dirname "$ROOT")"
# The Krita host test takes the same lock while it runs in the chroot.
exec 9>"$ROOT.lock"
flock 9
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "Krita chroot ready at $ROOT"
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
chroot "$ROOT" dpkg-query -W krita
unmount_all "$ROOT"

echo "$MARKER_TEXT" > "$MARKER"
echo "Krita chroot ready at $ROOT after $(( $(date +%s) - start )) s"
