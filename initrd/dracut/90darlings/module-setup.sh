#!/bin/bash
# dracut module that puts darlings into the initramfs: the binary, /etc/darlings.toml, and either
# the two systemd units (systemd-based dracut) or the pre-mount / pre-pivot hooks (the rest).
# Install this directory as /usr/lib/dracut/modules.d/90darlings/, with darlings-early.service and
# darlings-late.service from initrd/systemd/ copied beside this file; enable it with
# add_dracutmodules+=" darlings " in /etc/dracut.conf.d/darlings.conf. See initrd/README.md.
# dracut sources this file and calls the functions; it provides inst_*, dracut_module_included,
# $moddir, $initdir, $systemdsystemunitdir and $SYSTEMCTL.
# shellcheck disable=SC2154 # those variables are dracut's, set before it calls install()

# dracut runs modules with a PATH that lacks /usr/local/bin, where the README's quick start
# installs darlings: look where an install may have put it instead.
darlings_dirs="/usr/local/bin /usr/local/sbin /usr/bin /usr/sbin"
darlings_binary() {
    local dir
    for dir in $darlings_dirs; do
        if [[ -x $dracutsysrootdir$dir/darlings ]]; then
            echo "$dir/darlings"
            return 0
        fi
    done
    return 1
}

check() {
    # 255: only when asked for by name. Merely having darlings installed must never make the next
    # initramfs start erasing the root. A missing binary is install()'s to report: dracut skips a
    # module whose check fails with one line and builds the image anyway, and an image without
    # darlings would boot a root the user expects to be erased.
    return 255
}

depends() {
    return 0
}

install() {
    if [[ ! -f /etc/darlings.toml ]]; then
        dfatal "darlings: /etc/darlings.toml is missing; write the config (see README.md) before building the initramfs"
        return 1
    fi
    local darlings
    if ! darlings=$(darlings_binary); then
        dfatal "darlings: no darlings binary in $darlings_dirs; install it there (e.g. install -m 0755 target/release/darlings /usr/local/bin/)"
        return 1
    fi
    # /usr/bin/darlings is the path the units and hooks call, wherever the host keeps it.
    inst_binary "$darlings" /usr/bin/darlings
    inst_simple /etc/darlings.toml

    if dracut_module_included "systemd"; then
        local unit
        for unit in darlings-early.service darlings-late.service; do
            if [[ ! -f "$moddir/$unit" ]]; then
                dfatal "darlings: $moddir/$unit is missing; copy it there from initrd/systemd/ in the darlings repository"
                return 1
            fi
            inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
        done
        # Follows the units' [Install] sections: sysroot.mount requires the early stage,
        # initrd.target the late one.
        $SYSTEMCTL -q --root "$initdir" enable darlings-early.service darlings-late.service
    else
        # pre-mount: the root device exists (and a hibernated system resumed: dracut's resume
        # module acts in the initqueue, before pre-mount); 95 runs after other modules' 90s.
        inst_hook pre-mount 95 "$moddir/darlings-early.sh"
        # pre-pivot: $NEWROOT and the /etc/fstab.sys filesystems (95fstab-sys mounts them at
        # pre-pivot 00) are mounted; switch_root has not happened yet.
        inst_hook pre-pivot 95 "$moddir/darlings-late.sh"
    fi
}
