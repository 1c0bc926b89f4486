#!/bin/sh
# Install the browser the page's tests drive: Debian's chromium (Playwright comes
# from pip, pinned in pyproject.toml, and never downloads a browser of its own).
# Idempotent: does nothing when chromium is already installed.
set -eu
PACKAGES="chromium fonts-dejavu-core"
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "browser tests: not a Debian-like system; install Chromium (or set PAINTWIRE_CHROMIUM), or the tests skip"
    exit 0
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "browser tests: all packages present"
    exit 0
fi
echo "browser tests: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES
