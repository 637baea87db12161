# Performance, figures side by side from one run (3 alternating rounds, medians):
# darlings rollback vs zfs rollback -r on the same dataset and the same writes (target ratio
# <= 1.1), and darlings diff --json (its own read-only mount included) vs zfs diff -H -F alone on
# 1,000 changes over a 100,000-file dataset (1,000 directories of 100; target <= 1.2).
set -eu
. /zfs_common.inc
zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs create -o mountpoint=/persist tank/persist
write_config
mkdir -p /mnt/r /tmp/acct
now_ms() { t=$(gnudate +%s%N); echo $((t / 1000000)); }
median() { sort -n | sed -n 2p; }

darlings init >/dev/null
dirty() {
    mount -t zfs tank/root /mnt/r
    mkdir -p /mnt/r/d
    (cd /mnt/r/d && seq 1 1000 | sed 's/^/f/' | xargs touch)
    dd if=/dev/urandom of=/mnt/r/blob bs=1M count=8 2>/dev/null
    umount /mnt/r
}
: >/tmp/rd; : >/tmp/rz
for round in 1 2 3; do
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

# 100,000 files in the blank, then 1,000 changes.
zfs destroy tank/root@blank
mount -t zfs tank/root /mnt/r
a=$(now_ms)
# Directories of 100: zfs diff's cost is the changed objects times their directories' size.
for d in $(seq 1 1000); do
    mkdir /mnt/r/d$d
    (cd /mnt/r/d$d && seq 1 100 | sed 's/^/f/' | xargs touch)
done
b=$(now_ms)
say "made $(find /mnt/r -type f | wc -l) files in $((b - a)) ms"
umount /mnt/r
zfs snapshot tank/root@blank
mount -t zfs tank/root /mnt/r
for d in $(seq 1 1000); do echo x >"/mnt/r/d$d/f50"; done
umount /mnt/r
: >/tmp/dd; : >/tmp/dz
say "1,000 files changed; timing the diffs"
for round in 1 2 3; do
    a=$(now_ms); darlings diff --json --root /tmp/acct >/tmp/d.json; b=$(now_ms)
    echo $((b - a)) >>/tmp/dd
    mount -t zfs -o ro tank/root /mnt/r
    a=$(now_ms); zfs diff -H -F tank/root@blank tank/root >/tmp/z.txt; b=$(now_ms)
    umount /mnt/r
    echo $((b - a)) >>/tmp/dz
done
n=$(sed 's/},{/}\n{/g' /tmp/d.json | grep -c '"kind":"modified"' || true)
[ "$(wc -l </tmp/z.txt)" -ge 1000 ] || fail "zfs diff saw $(wc -l </tmp/z.txt) lines"
[ "$n" -ge 1000 ] || fail "darlings diff saw $n modified entries"
dd_=$(median </tmp/dd); dz=$(median </tmp/dz)
say "perf: diff ($n modified of 100,000 files): darlings $dd_ ms, zfs diff -H -F $dz ms, ratio $(awk "BEGIN{printf \"%.2f\", $dd_/$dz}") (rounds: darlings $(tr '\n' ' ' </tmp/dd)/ zfs $(tr '\n' ' ' </tmp/dz))"
zpool export tank
