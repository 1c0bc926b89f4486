#!/bin/sh
# Install Debian packages for a group of tests, idempotently: does nothing when
# every package is already installed, and says so where apt is not there.
#   sh tests/apt_install.sh "WHAT (for messages)" PACKAGE...
set -eu
what=$1
shift
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "$what: not a Debian-like system; install $* yourself, or the tests skip"
    exit 0
fi
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "$what: all packages present"
    exit 0
fi
echo "$what: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086  # the list is split on purpose
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
