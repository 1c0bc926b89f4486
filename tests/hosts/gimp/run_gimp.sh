#!/usr/bin/env bash
# Run GIMP 3 headless in a prepared chroot with the packaged plug-in and a driver script.
#
#   run_gimp.sh [--dialogs|--display] PLUGIN_FOLDER JOB_DIR [ENV=VALUE ...]
#
# PLUGIN_FOLDER is the built "paintwire" folder (python plugins/gimp/build.py). JOB_DIR must
# lie inside the chroot ($GIMP_HOST_CHROOT, default /var/cache/paintwire/gimp-trixie: GIMP 3.0)
# and hold driver.py; it becomes the fresh GIMP profile's home, so runs never share state.
# Extra ENV=VALUE pairs reach GIMP, the driver and the plug-in (PAINTWIRE_URL, ...).
# --dialogs runs JOB_DIR/ui_smoke.py with the chroot's Python under Xvfb instead of GIMP.
# --display runs GIMP under Xvfb, so plug-ins can open dialogs; a JOB_DIR/usercustomize.py is
# installed in the profile's user site-packages (the test's dialog auto-responder).
# The exit status is GIMP's; the driver reports its own outcome in files under JOB_DIR.
set -euo pipefail

ROOT="${GIMP_HOST_CHROOT:-/var/cache/paintwire/gimp-trixie}"
GIMP_TIMEOUT="${GIMP_HOST_TIMEOUT:-150}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=mounts.sh
source "$here/mounts.sh"

mode=gimp
case "${1:-}" in
    --dialogs) mode=dialogs; shift ;;
    --display) mode=display; shift ;;
esac
script=driver.py
[[ $mode != dialogs ]] || script=ui_smoke.py
plugin="$(realpath "$1")"
job="$(realpath "$2")"
shift 2
root_real="$(realpath "$ROOT")"
[[ -f "$ROOT/.paintwire-ready" ]] || { echo "GIMP chroot not prepared: run tests/hosts/gimp/setup_chroot.sh" >&2; exit 3; }
[[ "$job" == "$root_real"/* ]] || { echo "JOB_DIR must be inside $ROOT" >&2; exit 2; }
[[ -f "$job/$script" ]] || { echo "no $script in $job" >&2; exit 2; }
inside="${job#"$root_real"}"

# The bind mounts are shared by every run: one run at a time (setup_chroot.sh takes the same lock).
# The application gets the lock's descriptor closed (9>&- below): a helper process it leaves
# behind (a GIMP file plug-in outliving a killed GIMP) must not keep holding the lock.
exec 9>"$ROOT.lock"
flock 9
trap 'unmount_all "$ROOT"' EXIT

# GIMP names its binaries and its profile folder by major.minor (gimp-console-3.2, GIMP/3.2).
console="$(basename "$(readlink -f "$ROOT/usr/bin/gimp-console")")"
version="${console#gimp-console-}"
plugins="$job/home/.config/GIMP/$version/plug-ins"
mkdir -p "$plugins"
rm -rf "${plugins:?}/paintwire"
cp -r "$plugin" "$plugins/paintwire"
chmod +x "$plugins/paintwire/paintwire.py"
if [[ -f "$job/usercustomize.py" ]]; then
    site="$(chroot "$ROOT" /usr/bin/env -i HOME="$inside/home" /usr/bin/python3 -c 'import site; print(site.getusersitepackages())')"
    mkdir -p "$ROOT$site"
    cp "$job/usercustomize.py" "$ROOT$site/usercustomize.py"
fi

mount_all "$ROOT"
set +e
if [[ $mode != dialogs ]]; then
    command=("$console" -i -n --quit --batch-interpreter=python-fu-eval
             -b "exec(open('$inside/driver.py', encoding='utf-8').read())")
    [[ $mode == gimp ]] || command=(xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" "${command[@]}")
else
    command=(xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" python3 "$inside/ui_smoke.py")
fi
chroot "$ROOT" /usr/bin/env -i \
    HOME="$inside/home" LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=/usr/bin:/bin \
    PW_JOB_DIR="$inside" PW_PLUGIN_DIR="$inside/home/.config/GIMP/$version/plug-ins/paintwire" "$@" \
    timeout -k 5 "$GIMP_TIMEOUT" "${command[@]}" 9>&-
status=$?
set -e
unmount_all "$ROOT"
exit $status
