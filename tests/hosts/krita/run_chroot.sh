#!/usr/bin/env bash
# Run Krita from a prepared Debian chroot (tests/hosts/krita/setup_chroot.sh VERSION), for the
# Krita host test.
#
#   run_chroot.sh PROFILE_DIR DISPLAY TIMEOUT [ENV=VALUE ...]
#
# PROFILE_DIR must lie inside the chroot ($KRITA_HOST_CHROOT, set by krita_harness.py; default
# /var/cache/paintwire/krita-trixie, Krita 5.2); it holds the profile made by krita_harness.make_profile
# (home, config, data, cache, runtime). DISPLAY is an X server of the host (Xvfb): the chroot
# shares the host's network namespace, so Xlib reaches it through its abstract socket.
# Extra ENV=VALUE pairs reach Krita and the plug-ins (paths as seen inside the chroot).
# The exit status is Krita's (124 when it ran past TIMEOUT seconds).
set -euo pipefail

ROOT="${KRITA_HOST_CHROOT:-/var/cache/paintwire/krita-trixie}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../gimp/mounts.sh
source "$here/../gimp/mounts.sh"

profile="$(realpath "$1")"
display="$2"
limit="$3"
shift 3
root_real="$(realpath "$ROOT")"
[[ -f "$ROOT/.paintwire-ready" ]] || { echo "Krita chroot not prepared: run tests/hosts/krita/setup_chroot.sh" >&2; exit 3; }
[[ "$profile" == "$root_real"/* ]] || { echo "PROFILE_DIR must be inside $ROOT" >&2; exit 2; }
inside="${profile#"$root_real"}"

# The bind mounts are shared by every run: one run at a time (setup_chroot.sh takes the same lock).
# The application gets the lock's descriptor closed (9>&- below): a helper process it leaves
# behind (a GIMP file plug-in outliving a killed GIMP) must not keep holding the lock.
exec 9>"$ROOT.lock"
flock 9
trap 'unmount_all "$ROOT"' EXIT
mount_all "$ROOT"
set +e
chroot "$ROOT" /usr/bin/env -i \
    HOME="$inside/home" XDG_CONFIG_HOME="$inside/config" XDG_DATA_HOME="$inside/data" \
    XDG_CACHE_HOME="$inside/cache" XDG_RUNTIME_DIR="$inside/runtime" \
    PATH=/usr/local/bin:/usr/bin:/bin DISPLAY="$display" LC_ALL=C.UTF-8 KDE_DEBUG=1 PYTHONDONTWRITEBYTECODE=1 "$@" \
    timeout -k 5 "$limit" /bin/sh -c "cd '$inside/home' && exec krita --nosplash" 9>&-
status=$?
set -e
unmount_all "$ROOT"
exit $status
