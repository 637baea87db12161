# Performance, figures side by side from one run: darlings rollback vs zfs rollback -r on the
# same dataset and the same writes (7 alternating rounds, medians; target ratio <= 1.1), and
# darlings diff --json (its own read-only mount included) vs zfs diff -H -F alone (2 alternating
# rounds, 1 at full size, the faster of each; target <= 1.2).
#
# The issue's diff size is 1,000 changes over 100,000 files. zfs diff's time here is not a fixed
# cost (a diff with no change takes under a second, its temporary snapshot 0.1 s): the kernel
# reports every dnode of each changed 16 KiB dnode block (32 of them) as in use, and zfs diff
# stats each on both sides (ZFS_IOC_OBJ_TO_STATS, whose path lookup searches the parent
# directory linearly) to find 31 of the 32 unchanged: 64 ioctls per changed file spread like
# these, about 7 ms each under TCG. So the default size is 1/10 (100 directories, 100 changes,
# about 45 s a diff, within the tier's time); the first boot argument "full" (tests/vm/run's
# VM_ARG=full) runs the issue's size, with one diff round each (about 8 minutes a diff: give
# the boot VM_TIMEOUT=2400). The ratio is what is compared.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs create -o mountpoint=/persist tank/persist
write_config
mkdir -p /mnt/r /tmp/acct
case ${VM_ARG:--} in
    full) dirs=1000 rounds=1 ;;
    *) dirs=100 rounds=2 ;;
esac
now_ms() { t=$(gnudate +%s%N); echo $((t / 1000000)); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

darlings init >/dev/null
dirty() {
    mount -t zfs tank/root /mnt/r
    mkdir -p /mnt/r/d
    (cd /mnt/r/d && seq 1 1000 | sed 's/^/f/' | xargs touch)
    dd if=/dev/urandom of=/mnt/r/blob bs=1M count=8 2>/dev/null
    umount /mnt/r
}
: >/tmp/rd; : >/tmp/rz
for _ in 1 2 3 4 5 6 7; do
    dirty
    a=$(now_ms); darlings rollback >/dev/null; b=$(now_ms)
    echo $((b - a)) >>/tmp/rd
    [ "$(root_entries)" -eq 0 ] || fail "darlings rollback left files"
    dirty
    a=$(now_ms); zfs rollback -r tank/root@blank; b=$(now_ms)
    echo $((b - a)) >>/tmp/rz
done
rd=$(median </tmp/rd); rz=$(median </tmp/rz)
say "perf: rollback: darlings $rd ms, zfs rollback -r $rz ms, ratio $(awk "BEGIN{printf \"%.2f\", $rd/$rz}") (rounds: darlings $(tr '\n' ' ' </tmp/rd)/ zfs $(tr '\n' ' ' </tmp/rz))"

# $dirs directories of 100 files in the blank, then one change in each.
zfs destroy tank/root@blank
mount -t zfs tank/root /mnt/r
a=$(now_ms)
# Directories of 100 files, one change in each: every change lands in a dnode block of its own,
# the case that costs zfs diff most (above).
for d in $(seq 1 "$dirs"); do
    mkdir "/mnt/r/d$d"
    (cd "/mnt/r/d$d" && seq 1 100 | sed 's/^/f/' | xargs touch)
done
b=$(now_ms)
say "made $(find /mnt/r -type f | wc -l) files in $((b - a)) ms"
umount /mnt/r
zfs snapshot tank/root@blank
mount -t zfs tank/root /mnt/r
for d in $(seq 1 "$dirs"); do echo x >"/mnt/r/d$d/f50"; done
umount /mnt/r
: >/tmp/dd; : >/tmp/dz
say "$dirs files changed; timing the diffs"
# Both sides start cold: export and import empty the pool's caches (the ARC), so neither finds
# the other's metadata in memory (the first full-size run measured whichever went second warm).
cold() { zpool export tank && zpool import -N -o cachefile=none -d /dev/vda1 tank; }
for _ in $(seq 1 "$rounds"); do
    cold
    a=$(now_ms); darlings diff --json --root /tmp/acct >/tmp/d.json; b=$(now_ms)
    echo $((b - a)) >>/tmp/dd
    cold
    mount -t zfs -o ro tank/root /mnt/r
    a=$(now_ms); zfs diff -H -F tank/root@blank tank/root >/tmp/z.txt; b=$(now_ms)
    umount /mnt/r
    echo $((b - a)) >>/tmp/dz
done
n=$(sed 's/},{/}\n{/g' /tmp/d.json | grep -c '"kind":"modified"' || true)
[ "$(wc -l </tmp/z.txt)" -ge "$dirs" ] || fail "zfs diff saw $(wc -l </tmp/z.txt) lines"
[ "$n" -ge "$dirs" ] || fail "darlings diff saw $n modified entries"
dd_=$(sort -n /tmp/dd | head -n1); dz=$(sort -n /tmp/dz | head -n1)
say "perf: diff ($n modified of $((dirs * 100)) files): darlings $dd_ ms, zfs diff -H -F $dz ms, ratio $(awk "BEGIN{printf \"%.2f\", $dd_/$dz}") (rounds: darlings $(tr '\n' ' ' </tmp/dd)/ zfs $(tr '\n' ' ' </tmp/dz))"
zpool export tank
