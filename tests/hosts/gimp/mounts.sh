# Bind mounts for the GIMP chroot, sourced by setup_chroot.sh and run_gimp.sh.
#
# The one rule: nothing under the chroot is deleted while anything is mounted inside it,
# because rm -rf follows a bind mount into the host's /dev, /proc or /sys.

MOUNT_POINTS=(proc sys dev)

mounts_under() {
    # Every mount point at or below $1, deepest first (so nested mounts go before parents).
    local root
    root="$(realpath -m "$1")"
    awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

mount_all() {
    local root="$1" m
    for m in "${MOUNT_POINTS[@]}"; do
        mkdir -p "$root/$m"
        if ! mountpoint -q "$root/$m"; then
            mount --bind "/$m" "$root/$m"
        fi
    done
}

unmount_all() {
    local root="$1" m
    [[ -d "$root" ]] || return 0
    # Nested mounts (dev/pts, dev/shm) exist only if something mounted them inside; take
    # whatever is there, deepest first. Lazy unmount is the fallback for a busy one.
    while read -r m; do
        [[ -n "$m" ]] || continue
        umount "$m" 2>/dev/null || umount -l "$m" || true
    done < <(mounts_under "$root")
    if [[ -n "$(mounts_under "$root")" ]]; then
        echo "Still mounted under $root:" >&2
        mounts_under "$root" >&2
        return 1
    fi
}

remove_root() {
    local root="$1"
    unmount_all "$root" || { echo "Refusing to delete $root while bind mounts remain" >&2; return 1; }
    rm -rf --one-file-system "$root"
}
