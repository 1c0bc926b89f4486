#!/usr/bin/env bash
# Prepare every Debian chroot the host tests run in, side by side (downloads and unpacking
# overlap; each suite is debootstrapped once and shared by its chroots): Krita 5.2 (trixie),
# 5.3 (sid) and 6.0 (experimental), GIMP 3.0 (trixie) and 3.2 (sid). Cached: a second run
# takes about a second. A chroot that cannot be prepared is reported, and its tests skip.
#
#   bash tests/hosts/setup_chroots.sh          # as root; HOST_CHROOTS picks the cache folder
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets=("krita 5.2" "krita 5.3" "krita 6.0" "gimp 3.0" "gimp 3.2")
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
pids=()
for target in "${targets[@]}"; do
    read -r app version <<< "$target"
    (
        start=$SECONDS
        bash "$here/$app/setup_chroot.sh" "$version" > "$logs/$app-$version.log" 2>&1
        status=$?
        echo $(( SECONDS - start )) > "$logs/$app-$version.time"
        exit $status
    ) &
    pids+=("$!")
done
failed=0
for i in "${!targets[@]}"; do
    read -r app version <<< "${targets[$i]}"
    if wait "${pids[$i]}"; then
        cat "$logs/$app-$version.log"
        echo "  ($app $version: $(cat "$logs/$app-$version.time") s)"
    else
        cat "$logs/$app-$version.log" >&2
        echo "$app $version chroot not prepared; its host tests will skip" >&2
        failed=1
    fi
done
exit $failed
