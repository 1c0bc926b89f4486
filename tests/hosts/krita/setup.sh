#!/bin/sh
# Install Krita and what the Krita host test needs (Debian 12). Idempotent:
# does nothing when every package is already installed.
set -eu
PACKAGES="krita python3-pyqt5 python3-sip python3-pyqt5.qtwebsockets xvfb xauth"
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "krita host test: not a Debian-like system; install Krita and Xvfb yourself, or the test skips"
    exit 0
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "krita host test: all packages present"
    exit 0
fi
echo "krita host test: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES
