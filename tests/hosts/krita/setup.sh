#!/bin/sh
# Install Krita and what the Krita host test needs (Debian 12). Idempotent:
# does nothing when every package is already installed.
exec sh "$(dirname "$0")/../../apt_install.sh" "krita host test" krita python3-pyqt5 python3-sip python3-pyqt5.qtwebsockets xvfb xauth
