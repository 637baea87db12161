# darlings diff against ground truth: every kind of change made to the root after its blank
# (odd names included) is reported with the expected kind and path; the root is mounted
# read-only privately for the diff and unmounted after; --max-entries stops zfs diff early and
# leaves no temporary snapshot behind.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs create -o mountpoint=/persist tank/persist
write_config
mkdir -p /mnt/r /tmp/acct
mount -t zfs tank/root /mnt/r
cd /mnt/r
mkdir -p dir keep
for f in del ren-a chm cho xat hl-src trunc; do echo "content of $f" >"$f"; done
echo same >keep/untouched
cd /
umount /mnt/r
zfs snapshot tank/root@blank

mount -t zfs tank/root /mnt/r
cd /mnt/r
echo new >new
rm del
mv ren-a ren-b
chmod 600 chm
chown 1234:1234 cho
if command -v setfattr >/dev/null; then setfattr -n user.darlings -v 1 xat; else fail "setfattr missing"; fi
ln -s /etc/hostname sym
ln hl-src hl-new
mkfifo fifo
: >empty
: >trunc
mkdir -p dir/sub && echo x >dir/sub/file
echo a >"sp ace"
echo a >"$(printf 'new\nline')"
echo a >'back\slash'
echo a >"$(printf 'bad\377')"
echo a >"$(printf 'caf\303\251')"
cd /
umount /mnt/r

darlings diff --json --root /tmp/acct >/tmp/diff.json
grep -qs . /tmp/diff.json || fail "no json"
if grep -q ' /run/darlings' /proc/self/mountinfo; then fail "the diff left a mount"; fi
sed 's/},{/}\n{/g' /tmp/diff.json >/tmp/entries
bad=0
expect() {
    if grep -qF -- "$1" /tmp/entries; then say "ok: $1"; else say "MISSING: $1"; bad=1; fi
}
expect '"kind":"added","path":"/new",'
expect '"kind":"removed","path":"/del",'
expect '"from":"/ren-a","kind":"renamed","path":"/ren-b",'
expect '"kind":"modified","path":"/chm",'
expect '"kind":"modified","path":"/cho",'
expect '"path":"/xat",'
expect '"kind":"added","path":"/sym",'
expect '"kind":"modified","path":"/hl-src",'
expect '"kind":"added","path":"/fifo","size":null,"type":"fifo"'
expect '"kind":"added","path":"/empty",'
expect '"kind":"modified","path":"/trunc",'
expect '"kind":"added","path":"/dir/sub/file",'
expect '"kind":"added","path":"/sp ace",'
expect '"kind":"added","path":"/new\nline",'
expect '"kind":"added","path":"/back\\slash",'
expect '"path_bytes":[47,98,97,100,255]'
expect "$(printf '"kind":"added","path":"/caf\303\251",')"
expect '"path":"/sym","size":null,"type":"symlink"'
if grep -qF '"/keep/untouched"' /tmp/entries; then say "WRONG: untouched file reported"; bad=1; fi
if [ $bad -ne 0 ]; then sed 's/^/scenario: entry: /' /tmp/entries; fail "diff misses changes"; fi

darlings diff --json --root /tmp/acct --max-entries 3 >/tmp/trunc.json
grep -qF '"truncated":{"limit":3,"reason":"max-entries"}' /tmp/trunc.json || { cat /tmp/trunc.json; fail "no truncation"; }
[ "$(zfs list -H -t snapshot -o name -r tank/root | tr '\n' ' ')" = "tank/root@blank " ] \
    || fail "snapshots left behind: $(zfs list -H -t snapshot -o name)"
say "truncated diff stopped early and left no temporary snapshot"
darlings diff --root /tmp/acct | head -n 12 | sed 's/^/scenario: text: /'

# Hostile roots (issue 10). A file written on the root beneath the persisted /var/log is on the
# root, not in the store: lost, and the report says why. A chain of directories past PATH_MAX
# (built in two halves and moved together: each call's path stays under PATH_MAX, as a user's
# mkdir and mv would) must not keep the root from being erased.
mount -t zfs tank/root /mnt/r
mkdir -p /mnt/r/var/log
echo db >/mnt/r/var/log/on-root
n=$(printf '%0250d' 0 | tr 0 a)
half="$n/$n/$n/$n/$n/$n/$n/$n"
mkdir -p "/mnt/r/tmp/deep/$half" "/mnt/r/c1/$half/$n"
echo leaf >"/mnt/r/c1/$half/$n/leaf"
mv /mnt/r/c1 "/mnt/r/tmp/deep/$half/"
set +e
zfs diff -H -F tank/root@blank tank/root >/tmp/zdiff.out 2>/tmp/zdiff.err
zrc=$?
set -e
umount /mnt/r
longest=$(awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }' /tmp/zdiff.out)
say "zfs diff with a chain past PATH_MAX: exit $zrc, $(wc -l </tmp/zdiff.out) lines, longest $longest bytes, stderr: $(head -c 300 /tmp/zdiff.err | tr '\n' ' ')"
awk -F '\t' '/deep/ { p = $NF; print length(p), substr(p, 1, 40) "..." substr(p, length(p) - 30) }' /tmp/zdiff.out \
    | sort -n | tail -n 4 | sed 's/^/scenario: zfs diff line: /'

if darlings diff --json --root /tmp/acct >/tmp/hostile.json 2>/tmp/hostile.err; then
    sed 's/},{/}\n{/g' /tmp/hostile.json >/tmp/hostile
    grep -qF '"path":"/var/log/on-root",' /tmp/hostile || fail "the root's file under /var/log is not reported"
    grep -F '"path":"/var/log/on-root",' /tmp/hostile | grep -qF '"class":"lost"' \
        || fail "a file on the root under persisted /var/log is not lost: $(grep -F on-root /tmp/hostile)"
    grep -F '"path":"/var/log/on-root",' /tmp/hostile \
        | grep -qF '"why":"under persisted /var/log, but on the root, not in the store"' \
        || fail "no reason for the lost /var/log/on-root"
    say "a file on the root under persisted /var/log is lost, with its reason"
    # zfs prints the entries past PATH_MAX under paths cut at 4095 bytes: darlings names their
    # directory as not listed instead of reporting paths that are not there.
    grep -qF '"unlisted":{"lost":1,"subtrees":1}' /tmp/hostile.json \
        || fail "the chain past PATH_MAX is not named as not listed: $(grep -o '"unlisted":[^]]*]' /tmp/hostile.json | head -c 300)"
    # The chain: /tmp/deep, 8 + 1 + 8 directories within PATH_MAX, then 2 entries past it.
    sed 's/.*"entries":\[//; s/},{/}\n{/g' /tmp/hostile.json >/tmp/hostile.entries
    listed=$(grep -c '"path":"/tmp/deep' /tmp/hostile.entries)
    [ "$listed" -eq 18 ] || fail "$listed entries of the chain listed, expected the 18 within PATH_MAX"
    say "darlings diff lists the 18 entries of the chain within PATH_MAX and names the rest as not listed"
else
    fail "darlings diff with the chain failed: $(tr '\n' ' ' </tmp/hostile.err | head -c 400)"
fi
# The boot: diff on, and whatever the diff made of the chain, the rollback happens.
cat >>/etc/darlings.toml <<'TOML'

[diff]
on-boot = true
report-dir = "/persist/var/log/darlings"

[report]
prometheus = "/var/lib/prometheus/node-exporter/darlings.prom"
TOML
mkdir -p /tmp/sysroot /tmp/bootwork
echo quiet >/tmp/cmdline
darlings boot --stage early --root /tmp/sysroot --work-dir /tmp/bootwork --cmdline /tmp/cmdline \
    >/tmp/boot.out 2>&1 || { cat /tmp/boot.out; fail "darlings boot --stage early failed"; }
grep -qF '"outcome": "ok"' /tmp/bootwork/boot.json || { cat /tmp/bootwork/boot.json; fail "the boot did not go clean"; }
mount -t zfs -o ro tank/root /mnt/r
if [ -e /mnt/r/tmp/deep ] || [ -e /mnt/r/var/log/on-root ]; then fail "the chain or the root's file survived the rollback"; fi
umount /mnt/r
grep -o '"detail": "[^"]*"' /tmp/bootwork/boot.json | sed 's/^/scenario: boot: /'
say "a chain past PATH_MAX did not stop the rollback"
# The late stage on the rolled-back root, the store beneath it: the node_exporter textfile.
mount -t zfs tank/root /tmp/sysroot
mkdir -p /tmp/sysroot/persist && mount --bind /persist /tmp/sysroot/persist
darlings boot --stage late --root /tmp/sysroot --work-dir /tmp/bootwork --cmdline /tmp/cmdline \
    --utab /tmp/utab >/tmp/boot.out 2>&1 || { cat /tmp/boot.out; fail "darlings boot --stage late failed"; }
prom=/tmp/sysroot/var/lib/prometheus/node-exporter/darlings.prom
[ -f "$prom" ] || { cat /tmp/boot.out; fail "no textfile at $prom"; }
lost=$(sed -n 's/.*"lost": \([0-9]*\),.*/\1/p' /tmp/bootwork/boot.json | head -n1)
for want in 'darlings_boot_outcome{outcome="ok"} 1' 'darlings_info{backend="zfs",' \
    "darlings_lost_entries{class=\"lost\"} $lost" 'darlings_last_rollback_success_timestamp_seconds '; do
    grep -qF "$want" "$prom" || { cat "$prom"; fail "the textfile lacks $want"; }
done
say "late stage: textfile written on the zfs root ($(wc -c <"$prom") bytes, $lost lost)"
# Busybox's umount has no -R: the bind apply made, the store, the root.
umount /tmp/sysroot/var/log /tmp/sysroot/persist /tmp/sysroot
write_config
zpool export tank
say "diff matches ground truth"
