# The zfs machine's disk, made on the first boot (the host has no ZFS): pool tank on /dev/vda1,
# tank/root with the tiny OS and its @blank, tank/persist; both legacy-mounted, as NixOS's
# fileSystems entries mount them. Exported afterwards so stage 1 imports it like any boot.
# shellcheck shell=sh
set -eu
zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs create -o mountpoint=legacy tank/persist
mkdir -p /tmp/r
mount -t zfs tank/root /tmp/r
sh /tiny-os /tmp/r
umount /tmp/r
zfs snapshot tank/root@blank
zpool export tank
echo "DARLINGS-VM: prepared pool tank"
