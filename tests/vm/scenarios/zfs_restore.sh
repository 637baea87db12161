# old-roots lists the old root a keeping rollback retired, with its zfs used and referenced;
# restore copies a directory into a root and a file into its store from that old root (mounted
# read-only, unmounted after), and refuses an existing destination, a path not in it and an
# unknown old root, changing nothing; a hold (the darlings:hold property) skips one boot's
# rollback, yields to darlings.skip=0, and an inherited value is not honoured.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
make_pool
write_config_with 'keep = { count = 3 }'
dirty_root
darlings rollback | sed 's/^/scenario: rollback: /'
[ "$(root_entries)" -eq 0 ] || fail "not rolled back"

out=$(darlings old-roots --json)
echo "$out" | sed 's/^/scenario: old-roots: /'
name=$(echo "$out" | sed -n 's/.*"name": "\([^"]*\)".*/\1/p' | head -n1)
[ -n "$name" ] || fail "old-roots listed no old root"
zfs list -H -o name "tank/root-old/$name" >/dev/null || fail "old-roots named $name, which is not a dataset"
echo "$out" | grep -q '"bytes_counted_by": "zfs used"' || fail "no zfs used size"
used=$(zfs get -H -p -o value used "tank/root-old/$name")
echo "$out" | grep -q "\"bytes\": $used," || fail "bytes is not zfs used ($used)"
darlings old-roots | grep -q "^$name " || fail "old-roots text lacks $name"
say "old-roots: $name, used $used bytes"

# Into a root: tank/root mounted as a running system's would be.
mkdir -p /mnt/live
mount -t zfs tank/root /mnt/live
darlings restore "$name" /etc --root /mnt/live --dry-run | sed 's/^/scenario: dry-run: /'
[ ! -e /mnt/live/etc ] || fail "--dry-run restored"
darlings restore "$name" /etc --root /mnt/live 2>&1 | sed 's/^/scenario: restore: /'
[ "$(cat /mnt/live/etc/hostname)" = hello ] || fail "/etc/hostname not restored"
[ ! -e /mnt/live/.etc.darlings-seed ] || fail "the copy's temporary was left"
expect_refusal "/mnt/live/etc exists" "move it aside" -- darlings restore "$name" /etc --root /mnt/live
expect_refusal "/nope is not in the old root" -- darlings restore "$name" /nope --root /mnt/live
expect_refusal "no old root 20000101T000000Z" "kept old roots: $name" -- darlings restore 20000101T000000Z /etc --root /mnt/live
umount /mnt/live

# Into the store that persists it (/var/log in /persist).
mkdir -p /persist/var/log
darlings restore "$name" /var/log/big --into store | sed 's/^/scenario: restore: /'
mkdir -p /mnt/old
mount -t zfs -o ro "tank/root-old/$name" /mnt/old
[ "$(md5sum </persist/var/log/big)" = "$(md5sum </mnt/old/var/log/big)" ] || fail "the store's copy differs"
umount /mnt/old
if grep -q zfs-diff /proc/self/mountinfo; then fail "restore left its mount"; fi
zfs get -H -o value readonly "tank/root-old/$name" | sed 's/^/scenario: old root readonly property: /'

# hold: a local darlings:hold on the root dataset; the held boot keeps the root, once, and
# darlings.skip=0 on the kernel command line wins over it.
boot_early() {
    darlings boot --stage early --root /tmp/sysroot --work-dir /tmp/bootwork --cmdline /tmp/cmdline \
        >/tmp/boot.out 2>&1 || { cat /tmp/boot.out; fail "darlings boot --stage early failed"; }
}
hold_source() { zfs get -H -o source darlings:hold tank/root; }
mkdir -p /tmp/sysroot /tmp/bootwork
echo quiet >/tmp/cmdline
dirty_root
out=$(darlings hold --dry-run 2>&1) || fail "hold --dry-run: $out"
say "hold: $out"
[ "$(hold_source)" = - ] || fail "hold --dry-run set the property"
out=$(darlings hold 2>&1) || fail "hold: $out"
say "hold: $out"
[ "$(hold_source)" = local ] || fail "no local darlings:hold after hold"
boot_early
grep -qF '"outcome": "held"' /tmp/bootwork/boot.json || { cat /tmp/bootwork/boot.json; fail "the boot was not held"; }
[ "$(root_entries)" -gt 0 ] || fail "a held boot rolled back"
[ "$(hold_source)" = - ] || fail "the held boot left darlings:hold"
darlings --work-dir /tmp/bootwork status | grep 'rollback skipped: held by' | sed 's/^/scenario: status: /'
boot_early
grep -qF '"outcome": "ok"' /tmp/bootwork/boot.json || fail "the boot after the held one did not go clean"
[ "$(root_entries)" -eq 0 ] || fail "the hold held twice"
dirty_root
out=$(darlings hold 2>&1) || fail "hold: $out"
echo "quiet darlings.skip=0" >/tmp/cmdline
boot_early
[ "$(root_entries)" -eq 0 ] || fail "darlings.skip=0 did not win over the hold"
[ "$(hold_source)" = - ] || fail "an overridden hold stayed"
grep -q "overridden by darlings.skip=0" /tmp/boot.out || fail "no word of the override"
out=$(darlings hold 2>&1) || fail "hold: $out"
out=$(darlings hold --cancel 2>&1) || fail "hold --cancel: $out"
[ "$(hold_source)" = - ] || fail "hold --cancel left darlings:hold"
# A value inherited from the pool was not set by darlings hold on this root: not honoured.
echo quiet >/tmp/cmdline
dirty_root
zfs set darlings:hold=planted tank
boot_early
[ "$(root_entries)" -eq 0 ] || fail "an inherited darlings:hold was honoured"
grep -q "not honoured" /tmp/boot.out || fail "no word of the inherited value"
zfs inherit darlings:hold tank
say "hold: held once, overridden by darlings.skip=0, an inherited value ignored"
zpool export tank
say "all old-roots and restore checks passed"
