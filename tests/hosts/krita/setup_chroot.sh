#!/usr/bin/env bash
# Prepare the cached Debian trixie chroot with Krita 5.2 that the Krita host test also runs
# in (Debian 12's own Krita is 5.1; most users run 5.2). A root of its own, apart from the
# GIMP chroot, so that neither set-up ever disturbs a test running in the other
# (tests/hosts/trixie_chroot.sh does the work; a few minutes and about 1.5 GB the first time).
#
#   bash tests/hosts/krita/setup_chroot.sh            # prepare (or check) the chroot
#   KRITA_HOST_CHROOT=/some/dir bash ...              # another cache location
set -euo pipefail

ROOT="${KRITA_HOST_CHROOT:-/var/cache/paintwire/krita-trixie}"
MIRROR="${KRITA_HOST_MIRROR:-http://deb.debian.org/debian}"
# python3-pyqt5: Krita's Python plug-ins import PyQt5 (a Recommends, not a Depends, in Debian).
PACKAGES="krita python3-pyqt5 xvfb xauth"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2086
exec bash "$here/../trixie_chroot.sh" "$ROOT" "$MIRROR" "paintwire-krita-chroot v1: $PACKAGES" Krita "dpkg-query -W krita" $PACKAGES
