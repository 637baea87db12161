# Rollback erases everything written since @blank, leaves the store untouched and is a no-op the
# second time; every preflight refusal changes nothing (a newer snapshot, a mounted root, a
# missing blank, a pool not imported), and destroy-newer-snapshots lifts the first.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
make_pool
echo keep-me >/persist/important
dd if=/dev/urandom of=/persist/blob bs=64k count=2 2>/dev/null
before=$(store_sum)
dirty_root
[ "$(root_entries)" -gt 0 ] || fail "the root should hold files before the rollback"

darlings rollback --dry-run | sed 's/^/scenario: dry-run: /'
[ "$(root_entries)" -gt 0 ] || fail "--dry-run changed the root"
darlings rollback | sed 's/^/scenario: rollback: /'
[ "$(root_entries)" -eq 0 ] || fail "the root is not empty after the rollback"
[ "$(store_sum)" = "$before" ] || fail "the store changed"
say "rollback erased the root; store checksum unchanged"
out=$(darlings rollback)
echo "$out" | grep -q "already at tank/root@blank" || fail "second run was not a no-op: $out"
[ "$(zfs list -H -t snapshot -o name | tr '\n' ' ')" = "tank/root@blank " ] || fail "snapshots changed"
say "second run: $out"

# A newer snapshot: refused (and nothing changes), then destroyed atomically when allowed.
dirty_root
zfs snapshot tank/root@newer
expect_refusal "tank/root@newer" "destroy-newer-snapshots = true" -- darlings rollback
zfs list tank/root@newer >/dev/null || fail "the refusal destroyed the snapshot"
[ "$(root_entries)" -gt 0 ] || fail "the refusal rolled back"
write_config_with 'destroy-newer-snapshots = true'
darlings rollback | sed 's/^/scenario: rollback: /'
if zfs list tank/root@newer >/dev/null 2>&1; then fail "tank/root@newer survived"; fi
[ "$(root_entries)" -eq 0 ] || fail "not rolled back with destroy-newer-snapshots"
write_config

# Mounted root.
dirty_root
mkdir -p /mnt/live && mount -t zfs tank/root /mnt/live
expect_refusal "tank/root is mounted at /mnt/live" "umount" -- darlings rollback
umount /mnt/live
[ "$(root_entries)" -gt 0 ] || fail "the refusal (mounted) rolled back"

# The store on the root dataset.
zfs create tank/root/store
mkdir -p /mnt/store && mount -t zfs tank/root/store /mnt/store
sed -i 's|^store = "/persist"|store = "/mnt/store"|' /etc/darlings.toml
expect_refusal "store /mnt/store is on the root's filesystem (zfs dataset tank/root/store is below the root dataset tank/root)" -- darlings rollback
umount /mnt/store && zfs destroy tank/root/store
write_config

# Missing blank.
zfs rename tank/root@blank tank/root@was-blank
expect_refusal "blank snapshot tank/root@blank not found; create it with darlings init" -- darlings rollback
zfs rename tank/root@was-blank tank/root@blank
[ "$(root_entries)" -gt 0 ] || fail "a refusal rolled back"

# Missing dataset.
write_config
sed -i 's|tank/root"|tank/nope"|' /etc/darlings.toml
expect_refusal "dataset tank/nope not found" -- darlings rollback
write_config

# Pool not imported: darlings must not import it.
zpool export tank
expect_refusal "pool tank is not imported" "zpool import -N tank" -- darlings rollback
if zpool list tank >/dev/null 2>&1; then fail "darlings imported the pool"; fi
zpool import -N tank
[ "$(root_entries)" -gt 0 ] || fail "a refusal rolled back"
darlings check --root /tmp | sed 's/^/scenario: check: /' || true
darlings rollback >/dev/null
[ "$(root_entries)" -eq 0 ] || fail "final rollback"
zpool export tank
say "all rollback and refusal checks passed"
