#!/bin/sh
# Install the browser the page's tests drive: Debian's chromium (Playwright comes
# from pip, pinned in pyproject.toml, and never downloads a browser of its own).
# Idempotent. Elsewhere, install Chromium and set PAINTWIRE_CHROMIUM if it is not on PATH.
exec sh "$(dirname "$0")/../apt_install.sh" "browser tests" chromium fonts-dejavu-core
