#!/bin/sh
# dracut pre-mount hook (dracut without systemd): darlings' early stage, before dracut mounts the
# root. Sourced by dracut's init with dracut-lib.sh loaded, so `die` is in scope.
# darlings exits 0 when the boot may go on (also after a failure under on-failure =
# "boot-old-root", which it logs to the kernel log and records in /run/darlings/failed), 1 when a
# phase failed under "halt"; any other status means darlings itself broke, and stops the boot too.
# shellcheck source=/dev/null # dracut's library, only inside the initramfs
type die >/dev/null 2>&1 || . /lib/dracut-lib.sh

darlings_status=0
/usr/bin/darlings --log kmsg boot --stage early || darlings_status=$?
if [ "$darlings_status" -eq 1 ]; then
    die "darlings: the early stage failed and on-failure is \"halt\": the root is not mounted (the error is in the kernel log and /run/darlings/failed)"
elif [ "$darlings_status" -ne 0 ]; then
    die "darlings: the early stage ended with status $darlings_status, which darlings never returns (did it crash?): the root is not mounted"
fi
unset darlings_status
