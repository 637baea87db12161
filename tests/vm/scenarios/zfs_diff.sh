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
zpool export tank
say "diff matches ground truth"
