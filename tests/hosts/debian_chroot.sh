#!/usr/bin/env bash
# Prepare a cached Debian chroot with the given packages: the one recipe behind every
# tests/hosts/*/setup_chroot*.sh (each application version has a root of its own).
#
#   debian_chroot.sh SUITE ROOT MIRROR MARKER_TEXT LABEL CHECK PACKAGE...
#
# SUITE is a Debian suite (trixie, sid) or "experimental": a sid chroot with experimental
# added, the packages installed with `-t experimental` (experimental alone is not a
# complete suite). sid's and experimental's Release files are often past their Valid-Until
# date between mirror pushes, so those chroots do not check it.
#
# Idempotent: a complete chroot carries a marker file holding MARKER_TEXT and is left
# alone. A partial one (an interrupted earlier run) is unmounted and rebuilt. A chroot made
# with another MARKER_TEXT gets the packages installed again (no rebuild). CHECK is a command
# run inside the finished chroot (it prints the application's version). Needs root,
# debootstrap (installed with apt-get when missing) and Debian's package servers.
#
# The bare debootstrap of each suite is kept beside the roots (base-SUITE, never mounted and
# never run in) and copied into every new root of that suite: debootstrap runs once a suite.
#
# Safety: proc, dev and sys are bind-mounted while apt runs inside. `rm -rf` through a live
# bind mount deletes the HOST's files, so every deletion below goes through remove_root,
# which unmounts first and refuses to delete while anything under the root is still mounted.
set -euo pipefail

SUITE="$1"
ROOT="$2"
MIRROR="$3"
MARKER_TEXT="$4"
LABEL="$5"
CHECK="$6"
shift 6
PACKAGES="$*"
MARKER="$ROOT/.paintwire-ready"
BASE_MARKER="$ROOT/.paintwire-debootstrap-done"
case "$SUITE" in
    experimental) DIST=sid; TARGET=(-t experimental) ;;
    *) DIST="$SUITE"; TARGET=() ;;
esac
BASE="$(dirname "$ROOT")/base-$DIST"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=gimp/mounts.sh
source "$here/gimp/mounts.sh"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_TEXT" ]]; then
    echo "$LABEL chroot ready at $ROOT"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "debian_chroot.sh: must run as root (debootstrap, chroot and mount need it)" >&2
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

make_base() {
    # The bare debootstrap of $DIST, once; several set-ups may ask for it at the same time.
    exec 8>"$BASE.lock"
    flock 8
    if [[ ! -f "$BASE/.paintwire-debootstrap-done" ]]; then
        [[ ! -e "$BASE" ]] || remove_root "$BASE"
        echo "debootstrap $DIST into $BASE"
        local t0
        t0=$(date +%s)
        debootstrap --variant=minbase "$DIST" "$BASE" "$MIRROR" > "$BASE.debootstrap.log" 2>&1 || {
            tail -n 30 "$BASE.debootstrap.log" >&2
            exit 1
        }
        touch "$BASE/.paintwire-debootstrap-done"
        echo "  debootstrap took $(( $(date +%s) - t0 )) s"
    fi
    exec 8>&-
}

start=$(date +%s)
if [[ ! -f "$BASE_MARKER" ]]; then
    if [[ -e "$ROOT" ]]; then
        echo "Removing the incomplete chroot at $ROOT"
        remove_root "$ROOT"
    fi
    make_base
    # Copied without the marker, which is written last: an interrupted copy is rebuilt.
    mkdir -p "$ROOT"
    (cd "$BASE" && tar --one-file-system --exclude=./.paintwire-debootstrap-done -cf - .) | tar -C "$ROOT" -xpf -
    touch "$BASE_MARKER"
fi
rm -f "$MARKER"

if [[ "$DIST" == sid ]]; then
    echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99paintwire-valid-until"
fi
if [[ "$SUITE" == experimental ]]; then
    echo "deb $MIRROR experimental main" > "$ROOT/etc/apt/sources.list.d/experimental.list"
fi
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
mount_all "$ROOT"
step=$(date +%s)
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 apt-get update -qq
# shellcheck disable=SC2086
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    apt-get install -y -qq --no-install-recommends "${TARGET[@]}" $PACKAGES > "$ROOT.apt.log" 2>&1 || {
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
