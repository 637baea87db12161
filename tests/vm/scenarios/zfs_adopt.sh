# darlings adopt on a ZFS root, end to end: state on the running root (tank/root mounted at
# /mnt/r) is copied into a store dataset beside it (hard link, sparse file, ACL, owner, mode)
# and bound; a second adopt is a no-op; after a rollback to the empty blank (the "reboot") apply
# brings the adopted state back from the store.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
zpool create -f -o cachefile=none -O mountpoint=none -O acltype=posixacl -O xattr=sa tank /dev/vda1
zfs create -o mountpoint=legacy tank/root
zfs snapshot tank/root@blank
zfs create -o mountpoint=legacy tank/store
cat >/etc/darlings.toml <<'EOF'
# the VM's config
[root]
backend = "zfs"
dataset = "tank/root"

[[persist]]
store = "/persist"   # tank/store
directories = [
  "/var/lib/app",
]
EOF
mount_all() {
    mkdir -p /mnt/r
    mount -t zfs tank/root /mnt/r
    mkdir -p /mnt/r/persist
    mount -t zfs tank/store /mnt/r/persist
}
mount_all
a=/mnt/r/var/lib/app
mkdir -p $a/db $a/opt
echo rows >$a/db/data
ln $a/db/data $a/db/same
truncate -s 64M $a/sparse.img
echo conf >$a/app.conf
chown 1234:5678 $a/db/data
chmod 0640 $a/db/data
ln -s db/data $a/current
mkfifo $a/fifo
if command -v setfattr >/dev/null; then
    # user::rw- user:1000:r-- group::r-- mask::r-- other::r-- in the kernel's xattr layout.
    setfattr -n system.posix_acl_access -v 0sAgAAAAEABgD/////AgAEAOgDAAAEAAQA/////xAABAD/////IAAEAP////8= $a/app.conf
    acl=$(getfattr -e base64 -n system.posix_acl_access $a/app.conf | grep '=')
fi

darlings adopt --root /mnt/r --dry-run /var/lib/app | sed 's/^/scenario: dry-run: /'
[ ! -e /mnt/r/persist/var/lib/app ] || fail "the dry run copied"
darlings adopt --root /mnt/r --utab /tmp/utab /var/lib/app | sed 's/^/scenario: adopt: /'
s=/mnt/r/persist/var/lib/app
[ "$(stat -c %i $s/db/data)" = "$(stat -c %i $s/db/same)" ] || fail "the hard link became two files"
[ "$(stat -c '%u:%g %a' $s/db/data)" = "1234:5678 640" ] || fail "owner/mode not kept: $(stat -c '%u:%g %a' $s/db/data)"
[ "$(stat -c %s $s/sparse.img)" = 67108864 ] || fail "sparse.img size"
blocks=$(stat -c %b $s/sparse.img)
[ "$blocks" -lt 64 ] || fail "sparse.img is not sparse in the store: $blocks blocks"
[ "$(readlink $s/current)" = db/data ] || fail "the symlink"
[ -p $s/fifo ] || fail "the fifo"
if [ -n "${acl:-}" ]; then
    [ "$(getfattr -e base64 -n system.posix_acl_access $s/app.conf | grep '=')" = "$acl" ] || fail "the ACL was not copied"
    say "ACL copied: $acl"
fi
grep -q " /mnt/r/var/lib/app " /proc/self/mountinfo || fail "/var/lib/app is not bound"
[ ! -e /mnt/r/persist/var/lib/.darlings-adopt-app.partial ] || fail "the staging directory is left"
say "adopt copied the tree (hard link, holes, owner, mode, symlink, fifo) and bound it"
out=$(darlings adopt --root /mnt/r --utab /tmp/utab /var/lib/app)
echo "$out" | grep -q "already adopted: /var/lib/app" || fail "second adopt: $out"
say "second adopt: $out"

# The reboot: unmount, roll back to the empty blank, mount again, apply.
umount /mnt/r/var/lib/app
umount /mnt/r/persist
umount /mnt/r
darlings rollback | sed 's/^/scenario: rollback: /'
mount_all
[ ! -e /mnt/r/var/lib/app/db ] || fail "the rollback kept the root's copy"
darlings apply --root /mnt/r --utab /tmp/utab | sed 's/^/scenario: apply: /'
[ "$(cat /mnt/r/var/lib/app/db/data)" = rows ] || fail "the adopted state is not back after the rollback"
say "after the rollback, apply brought the adopted state back from the store"
umount /mnt/r/var/lib/app
umount /mnt/r/persist
umount /mnt/r
zpool export tank
say "all adopt checks passed"
