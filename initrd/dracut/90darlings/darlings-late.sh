#!/bin/sh
# dracut pre-pivot hook (dracut without systemd): darlings' late stage, once the root is mounted at
# $NEWROOT with the stores beneath it (list them in /etc/fstab.sys so dracut mounts them here),
# before switch_root. Sourced by dracut's init with dracut-lib.sh loaded (`die`, $NEWROOT).
# Exit status as in darlings-early.sh: 1, or a status darlings never returns, stops the boot.
# shellcheck source=/dev/null # dracut's library, only inside the initramfs
type die >/dev/null 2>&1 || . /lib/dracut-lib.sh

darlings_status=0
/usr/bin/darlings --log kmsg boot --stage late --root "${NEWROOT:-/sysroot}" || darlings_status=$?
if [ "$darlings_status" -eq 1 ]; then
    die "darlings: the late stage failed and on-failure is \"halt\": not switching to the new root (the error is in the kernel log and /run/darlings/failed)"
elif [ "$darlings_status" -ne 0 ]; then
    die "darlings: the late stage ended with status $darlings_status, which darlings never returns (did it crash?): not switching to the new root"
fi
unset darlings_status
