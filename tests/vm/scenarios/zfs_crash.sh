# Crash safety: for each step of the rollback and of the keep-old-roots protocol, darlings stops
# right after it (DARLINGS_FAILPOINT) and the VM powers off without syncing; the next boot
# imports the pool, checks that the state is one darlings knows, lets darlings repair it, and
# checks the result: a blank root, the old root's files kept (keep modes), a no-op second run, an
# untouched store.
#
# Two boots in all: the first arms every step, each on its own root dataset tank/r-<step> (its
# own config /etc/darlings-<step>.toml, blank and old-roots container tank/r-<step>-old) in one
# pool, then cuts the power once; the second repairs and checks every root. Each step is a ZFS
# sync task (or a channel program, which runs as one), and its txg is on disk before the ioctl
# returns, so what a root holds at the power cut is what a cut right after its step would have
# left, whatever ran on the other roots afterwards. The roots cannot meet: they are siblings
# (no root is inside another, so keep's child check and each protocol's renames stay within
# tank/r-<step> and tank/r-<step>-old), no step is named <other step>-old, so no root is another
# root's container, and the one store, tank/persist at /persist, is outside every root.
set -eu
# The guest has it at /; shellcheck checks it on its own.
# shellcheck source=/dev/null
. /zfs_common.inc
steps="rollback destroy-newer create-container clone rename-old rename-new promote prune"
keep='keep = { count = 1 }'

# The root dataset and config file of step $1 (/etc is in the initramfs: written at every boot).
ds_of() { echo "tank/r-$1"; }
conf_of() { echo "/etc/darlings-$1.toml"; }
config_for() {
    case $1 in
        rollback) write_config_at "$(conf_of "$1")" "$(ds_of "$1")" ;;
        destroy-newer) write_config_at "$(conf_of "$1")" "$(ds_of "$1")" "$keep" 'destroy-newer-snapshots = true' ;;
        *) write_config_at "$(conf_of "$1")" "$(ds_of "$1")" "$keep" ;;
    esac
}

# Sets up step $1 on its own root and runs darlings with the failpoint.
arm() {
    step=$1 ds=$(ds_of "$1") conf=$(conf_of "$1")
    zfs create -o mountpoint=legacy "$ds"
    config_for "$step"
    darlings --config "$conf" init >/dev/null
    if [ "$step" = prune ]; then
        # One old root already, so retention (count = 1) has one to destroy.
        dirty_ds "$ds"
        darlings --config "$conf" rollback >/dev/null
    fi
    dirty_ds "$ds"
    [ "$step" = destroy-newer ] && zfs snapshot "$ds@newer"
    if DARLINGS_FAILPOINT=$step darlings --config "$conf" rollback >/tmp/out 2>/tmp/err; then
        fail "$step: the failpoint was not hit"
    fi
    grep -q "failpoint $step hit" /tmp/err || { cat /tmp/err; fail "$step: unexpected error"; }
    say "armed $step on $ds"
}

# What root $1 holds after the crash, in a word.
state() {
    if ! zfs list "$1" >/dev/null 2>&1; then
        zfs list "$1-old/next" >/dev/null 2>&1 && { echo "no-root+clone"; return; }
        echo "NO-ROOT"; return
    fi
    o=$(zfs get -H -o value origin "$1")
    if ! zfs list "$1@blank" >/dev/null 2>&1; then
        [ "$o" != - ] && { echo "clone-root"; return; }
        echo "NO-BLANK"; return
    fi
    zfs list "$1-old/next" >/dev/null 2>&1 && { echo "root+stray-clone"; return; }
    if [ "$(entries_of "$1")" -eq 0 ]; then echo "blank-root"; else echo "dirty-root"; fi
}

verify() {
    step=$1 ds=$(ds_of "$1") conf=$(conf_of "$1")
    config_for "$step"
    st=$(state "$ds")
    case $st in NO-*) fail "$step: invalid state after the crash: $st" ;; esac
    darlings --config "$conf" rollback >/tmp/out 2>&1 || { cat /tmp/out; fail "$step: darlings did not repair ($st)"; }
    [ "$(state "$ds")" = blank-root ] || fail "$step: after repair: $(state "$ds")"
    [ "$(zfs get -H -o value origin "$ds")" = - ] || fail "$step: root still a clone"
    if zfs list "$ds-old/next" >/dev/null 2>&1; then fail "$step: stray clone left"; fi
    out=$(darlings --config "$conf" rollback)
    echo "$out" | grep -q "already at" || fail "$step: second run not a no-op: $out"
    [ "$(store_sum)" = "$(cat /persist/.sum-expected)" ] || fail "$step: store changed"
    olds=0
    if [ "$step" != rollback ]; then
        olds=$(zfs list -H -o name -r "$ds-old" | grep -c "^$ds-old/2" || true)
        [ "$olds" -eq 1 ] || fail "$step: $olds old roots, expected 1 (count = 1)"
        newest=$(zfs list -H -o name -r "$ds-old" | grep "^$ds-old/2" | tail -n1)
        mkdir -p /mnt/o && mount -t zfs -o ro "$newest" /mnt/o
        [ "$(cat /mnt/o/etc/hostname)" = hello ] || fail "$step: the old root lost its files"
        umount /mnt/o
    fi
    say "matrix: $(printf '%-17s' "$step") after crash: $(printf '%-17s' "$st") repaired: blank root, $olds old root(s) kept, second run no-op, store intact"
}

if [ "${VM_ARG:--}" = - ]; then
    zpool create -f -o cachefile=none -O mountpoint=none tank /dev/vda1
    zfs create -o mountpoint=/persist tank/persist
    echo keep-me >/persist/important
    store_sum >/persist/.sum-expected
    for s in $steps; do arm "$s"; done
    say "every step armed: crashing"
    echo "DARLINGS-VM: REBOOT armed"
    echo o >/proc/sysrq-trigger
    sleep 10
    fail "the power-off did not happen"
fi
[ "$VM_ARG" = armed ] || fail "unexpected boot argument $VM_ARG"
zpool import -N tank || fail "pool does not import after the crash"
zfs mount tank/persist
for s in $steps; do verify "$s"; done
# Each root's repair touched nothing of the others: no protocol clone is left anywhere.
strays=$(zfs list -H -o name -r tank | grep '/next$' || true)
[ -z "$strays" ] || fail "protocol clones left: $strays"
zfs umount tank/persist
zpool export tank
say "every crash point was repaired"
