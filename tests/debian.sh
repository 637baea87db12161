# shellcheck shell=bash
# Shared by the chroot tiers (tests/fresh-machine, tests/distro/run), sourced: this machine's
# Debian mirror and sources, the date of the bookworm release apt knows (the caches' key), and a
# chroot with /proc, /sys and /dev that vanishes with its private mount namespace.

# The mirror of this machine's own apt sources: what a fresh machine of its kind uses.
debian_mirror() {
    local m
    m=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
    echo "${m:-http://deb.debian.org/debian}"
}

# debian_copy_sources TREE: this machine's sources (main, updates, security) in place of
# debootstrap's one-line main, so the tree gets the same packages, security fixes included.
debian_copy_sources() {
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        rm -f "$1/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$1/etc/apt/sources.list.d/debian.sources"
    fi
}

# The Date of the bookworm Release file apt last fetched, as YYYYMMDD: changes with each point
# release, so trees cached under it are rebuilt when Debian moves on.
debian_release_date() {
    local release
    release=$(find /var/lib/apt/lists -maxdepth 1 -name '*_dists_bookworm_InRelease' | head -n1)
    if [[ -z $release ]]; then
        apt-get update -qq
        release=$(find /var/lib/apt/lists -maxdepth 1 -name '*_dists_bookworm_InRelease' | head -n1)
    fi
    [[ -n $release ]] || { echo "no bookworm Release file after apt-get update; check /etc/apt/sources.list.d" >&2; return 1; }
    date -u -d "$(sed -n 's/^Date: //p' "$release" | head -n1)" +%Y%m%d
}

# Installs host packages, waiting for dpkg's lock: other jobs on this machine (a dkms build) may
# hold it for minutes.
debian_host_install() {
    (($#)) || return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=1200 -y -qq \
        --no-install-recommends "$@" >&2 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=1200 -y -qq \
            --no-install-recommends "$@" >&2
    }
}

# debian_chroot TREE COMMAND...: runs COMMAND in TREE with /proc, /sys, /dev and a fresh /tmp,
# in a private mount namespace (nothing stays mounted), with a clean environment.
debian_chroot() {
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare --mount --propagation private bash -euc '
        tree=$1
        shift
        mount -t proc proc "$tree/proc"
        mount -t sysfs sysfs "$tree/sys"
        mount --rbind /dev "$tree/dev"
        mount -t tmpfs tmpfs "$tree/tmp"
        exec chroot "$tree" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
            DEBIAN_FRONTEND=noninteractive PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' debian_chroot "$@"
}
