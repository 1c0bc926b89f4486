#!/usr/bin/env bash
# Prepare a cached Debian chroot with one GIMP 3 version that the GIMP host test runs in.
# Each version has a root of its own (tests/hosts/debian_chroot.sh does the work; a few
# minutes and about 1 GB each the first time).
#
#   bash tests/hosts/gimp/setup_chroot.sh [VERSION]   # 3.0 (default) or 3.2
#   HOST_CHROOTS=/some/dir bash ...                    # another cache folder
#
#   3.0  Debian trixie   GIMP 3.0
#   3.2  Debian sid      GIMP 3.2
set -euo pipefail

VERSION="${1:-3.0}"
case "$VERSION" in
    3.0) SUITE=trixie ;;
    3.2) SUITE=sid ;;
    *) echo "setup_chroot.sh: unknown GIMP version $VERSION (3.0 or 3.2)" >&2; exit 2 ;;
esac
ROOT="${HOST_CHROOTS:-/var/cache/paintwire}/gimp-$SUITE"
MIRROR="${HOST_CHROOT_MIRROR:-http://deb.debian.org/debian}"
# The marker records the package list: a chroot made with another list gets the missing
# packages installed (no rebuild). xvfb runs the dialog smoke test. GIMP 3.x keeps the
# plug-in API of 3.0 (gir1.2-gimp-3.0) and names its binaries by minor version.
PACKAGES="gimp gir1.2-gimp-3.0 python3-gi gir1.2-gegl-0.4 python3-websockets python3-msgpack xvfb xauth"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2086
exec bash "$here/../debian_chroot.sh" "$SUITE" "$ROOT" "$MIRROR" "paintwire-gimp-chroot v1: $PACKAGES" \
    "GIMP $VERSION" "gimp-console --version" $PACKAGES
