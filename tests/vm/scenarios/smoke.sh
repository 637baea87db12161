# The VM tier's smoke test: the ZFS module loads, a pool and datasets work, and the darlings
# binary runs inside a bare initramfs (no libraries but the ones ldd named).
set -eu
echo "scenario: $(uname -r), zfs $(cat /sys/module/zfs/version)"
zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs snapshot tank/root@blank
zfs list -H -t all -o name | sed 's/^/scenario: /'
darlings --version | sed 's/^/scenario: /'
zpool export tank
