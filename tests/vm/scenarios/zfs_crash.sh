# Crash safety: for each step of the rollback and of the keep-old-roots protocol, darlings stops
# right after it (DARLINGS_FAILPOINT) and the VM powers off without syncing; the next boot
# imports the pool, checks that the state is one darlings knows, lets darlings repair it, and
# checks the result: a blank root, the old root's files kept (keep modes), a no-op second run, an
# untouched store. Then it sets up the next step on a fresh pool. One boot per step, plus one.
set -eu
. /zfs_common.inc
steps="rollback destroy-newer create-container clone rename-old rename-new promote prune"
keep='keep = { count = 1 }'

nth() { i=0; for s in $steps; do [ $i -eq "$1" ] && { echo "$s"; return; }; i=$((i + 1)); done; }

crash() { echo "DARLINGS-VM: REBOOT $1"; echo o >/proc/sysrq-trigger; sleep 10; }

# The config of step $1 (/etc is in the initramfs: written again at every boot).
config_for() {
    case $1 in
        rollback) write_config ;;
        destroy-newer) write_config "$keep" 'destroy-newer-snapshots = true' ;;
        *) write_config "$keep" ;;
    esac
}

# Sets up step $1 on a fresh pool and runs darlings with the failpoint.
arm() {
    step=$1
    zpool destroy tank 2>/dev/null || true
    make_pool
    config_for "$step"
    echo keep-me >/persist/important
    store_sum >/persist/.sum-expected
    if [ "$step" = prune ]; then
        # One old root already, so retention (count = 1) has one to destroy.
        dirty_root
        darlings rollback >/dev/null
    fi
    dirty_root
    [ "$step" = destroy-newer ] && zfs snapshot tank/root@newer
    if DARLINGS_FAILPOINT=$step darlings rollback >/tmp/out 2>/tmp/err; then
        fail "$step: the failpoint was not hit"
    fi
    grep -q "failpoint $step hit" /tmp/err || { cat /tmp/err; fail "$step: unexpected error"; }
    say "armed $step: crashing"
}

# What the pool holds after the crash, in a word.
state() {
    if ! zfs list tank/root >/dev/null 2>&1; then
        zfs list tank/root-old/next >/dev/null 2>&1 && { echo "no-root+clone"; return; }
        echo "NO-ROOT"; return
    fi
    o=$(zfs get -H -o value origin tank/root)
    if ! zfs list tank/root@blank >/dev/null 2>&1; then
        [ "$o" != - ] && { echo "clone-root"; return; }
        echo "NO-BLANK"; return
    fi
    zfs list tank/root-old/next >/dev/null 2>&1 && { echo "root+stray-clone"; return; }
    if [ "$(root_entries)" -eq 0 ]; then echo "blank-root"; else echo "dirty-root"; fi
}

verify() {
    step=$1
    zpool import -N tank || fail "$step: pool does not import after the crash"
    zfs mount tank/persist
    config_for "$step"
    st=$(state)
    case $st in NO-*) fail "$step: invalid state after the crash: $st" ;; esac
    darlings rollback >/tmp/out 2>&1 || { cat /tmp/out; fail "$step: darlings did not repair ($st)"; }
    [ "$(state)" = blank-root ] || fail "$step: after repair: $(state)"
    [ "$(zfs get -H -o value origin tank/root)" = - ] || fail "$step: root still a clone"
    if zfs list tank/root-old/next >/dev/null 2>&1; then fail "$step: stray clone left"; fi
    out=$(darlings rollback)
    echo "$out" | grep -q "already at" || fail "$step: second run not a no-op: $out"
    [ "$(store_sum)" = "$(cat /persist/.sum-expected)" ] || fail "$step: store changed"
    olds=0
    if [ "$step" != rollback ]; then
        olds=$(zfs list -H -o name -r tank/root-old | grep -c '^tank/root-old/2' || true)
        [ "$olds" -eq 1 ] || fail "$step: $olds old roots, expected 1 (count = 1)"
        newest=$(zfs list -H -o name -r tank/root-old | grep '^tank/root-old/2' | tail -n1)
        mkdir -p /mnt/o && mount -t zfs -o ro "$newest" /mnt/o
        [ "$(cat /mnt/o/etc/hostname)" = hello ] || fail "$step: the old root lost its files"
        umount /mnt/o
    fi
    zfs umount tank/persist
    say "matrix: $(printf '%-17s' "$step") after crash: $(printf '%-17s' "$st") repaired: blank root, $olds old root(s) kept, second run no-op, store intact"
}

if [ "${VM_ARG:--}" = - ]; then
    arm "$(nth 0)"
    crash 0
fi
i=$VM_ARG
verify "$(nth "$i")"
i=$((i + 1))
next=$(nth "$i")
if [ -n "$next" ]; then
    arm "$next"
    crash "$i"
fi
zpool export tank
say "every crash point was repaired"
