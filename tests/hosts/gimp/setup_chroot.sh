#!/usr/bin/env bash
# Prepare the cached Debian trixie chroot with GIMP 3 that the GIMP host test runs in
# (tests/hosts/trixie_chroot.sh does the work; about 70 s + 40 s the first time).
#
#   bash tests/hosts/gimp/setup_chroot.sh            # prepare (or check) the chroot
#   GIMP_HOST_CHROOT=/some/dir bash ...              # another cache location
set -euo pipefail

ROOT="${GIMP_HOST_CHROOT:-/var/cache/paintwire/gimp-trixie}"
MIRROR="${GIMP_HOST_MIRROR:-http://deb.debian.org/debian}"
# The marker records the package list: a chroot made with another list gets the missing
# packages installed (no rebuild). xvfb runs the dialog smoke test.
PACKAGES="gimp gir1.2-gimp-3.0 python3-gi gir1.2-gegl-0.4 python3-websockets python3-msgpack xvfb xauth"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2086
exec bash "$here/../trixie_chroot.sh" "$ROOT" "$MIRROR" "paintwire-gimp-chroot v1: $PACKAGES" GIMP "gimp-console-3.0 --version" $PACKAGES
