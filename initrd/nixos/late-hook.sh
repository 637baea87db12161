# darlings' late stage in NixOS's scripted stage 1 (stage-1-init.sh, run by busybox ash).
# shellcheck shell=sh
# initrd/nixos/module.nix inlines this file into boot.initrd.postMountCommands: stage 1 has mounted
# the new root at /mnt-root and every neededForBoot filesystem beneath it (the stores, e.g.
# /mnt-root/persist). darlings writes the pending lost-state report into the store, mounts or
# checks a tmpfs root, and bind-mounts the persisted paths into /mnt-root before stage 2 starts.
#
# Placeholders, replaced by the module (builtins.replaceStrings) and by the VM test (sed) alike;
# once replaced, these two lines name the values used:
#   @darlings@ is the darlings binary in the initrd (module: darlings, found on stage 1's PATH)
#   @config@ is the config file in the initrd (module: /etc/darlings.toml, from boot.initrd.extraFiles)
#
# A fragment of stage-1-init.sh like early-hook.sh: no exit, darlings_ variables, stage 1's `fail`.
# Exit status 1 (on-failure = "halt") and any status darlings never returns stop the boot; 0 goes on.
darlings_status=0
@darlings@ --config @config@ boot --stage late --root /mnt-root || darlings_status=$?
if [ "$darlings_status" -ne 0 ]; then
    if [ "$darlings_status" -eq 1 ]; then
        echo "darlings: the late stage failed and on-failure is \"halt\": stopping before stage 2 (the error is above and in /run/darlings/failed)"
    else
        echo "darlings: the late stage ended with status $darlings_status, which darlings never returns (did it crash?): stopping before stage 2"
    fi
    fail
fi
unset darlings_status
