#!/bin/bash
# A dracut module of the distribution tier (tests/distro/run), not of darlings: it puts the NixOS
# module's own initrd units, as tests/distro/nixos-units.nix rendered them from a NixOS 24.05
# system, into a dracut systemd initrd, with darlings at the /nix/store path their ExecStart
# names (the file `bin` beside this one) and the links NixOS makes for requiredBy/wantedBy (the
# file `links`: one "DIRECTORY UNIT" per line, e.g. "sysroot.mount.requires darlings-early.service").
# shellcheck disable=SC2154 # moddir, initdir, systemdsystemunitdir are dracut's

check() {
    return 255
}

depends() {
    echo systemd
}

install() {
    local bin dir unit
    bin=$(cat "$moddir/bin")
    inst_binary "$(command -v darlings || echo /usr/local/bin/darlings)" "$bin"
    inst_simple /etc/darlings.toml
    for unit in darlings-early.service darlings-late.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
    done
    while read -r dir unit; do
        mkdir -p "$initdir$systemdsystemunitdir/$dir"
        ln -sf "../$unit" "$initdir$systemdsystemunitdir/$dir/$unit"
    done <"$moddir/links"
}
