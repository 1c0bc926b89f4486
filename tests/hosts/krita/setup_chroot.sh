#!/usr/bin/env bash
# Prepare a cached Debian chroot with one Krita version that the Krita host test also runs
# on, next to the system's Krita (Debian 12: 5.1). Each version has a root of its own, so
# that no set-up ever disturbs a test running in another (tests/hosts/debian_chroot.sh does
# the work; a few minutes and 1.5 to 2 GB each the first time).
#
#   bash tests/hosts/krita/setup_chroot.sh [VERSION]   # 5.2 (default), 5.3 or 6.0
#   HOST_CHROOTS=/some/dir bash ...                     # another cache folder
#
#   5.2  Debian trixie        Krita 5.2, Qt 5 (what most users ran until 2026)
#   5.3  Debian sid           Krita 5.3, Qt 5, PyQt5
#   6.0  Debian experimental  Krita 6.0, Qt 6, PyQt6 (on top of sid)
set -euo pipefail

VERSION="${1:-5.2}"
# python3-pyqt5/6: Krita's Python plug-ins import PyQt (a Recommends, not a Depends, in Debian).
# qt6-svg-plugins: Krita 6 draws its icons from SVG, and Qt 6 reads SVG only with the plug-in.
case "$VERSION" in
    5.2) SUITE=trixie; PACKAGES="krita python3-pyqt5 xvfb xauth" ;;
    5.3) SUITE=sid; PACKAGES="krita python3-pyqt5" ;;
    6.0) SUITE=experimental; PACKAGES="krita python3-pyqt6 qt6-svg-plugins" ;;
    *) echo "setup_chroot.sh: unknown Krita version $VERSION (5.2, 5.3 or 6.0)" >&2; exit 2 ;;
esac
ROOT="${HOST_CHROOTS:-/var/cache/paintwire}/krita-$SUITE"
MIRROR="${HOST_CHROOT_MIRROR:-http://deb.debian.org/debian}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2086
exec bash "$here/../debian_chroot.sh" "$SUITE" "$ROOT" "$MIRROR" "paintwire-krita-chroot v1: $PACKAGES" \
    "Krita $VERSION" "dpkg-query -W krita" $PACKAGES
