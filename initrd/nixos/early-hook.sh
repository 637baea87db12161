# darlings' early stage in NixOS's scripted stage 1 (stage-1-init.sh, run by busybox ash).
# shellcheck shell=sh
# initrd/nixos/module.nix inlines this file into boot.initrd.postResumeCommands: it runs after udev,
# LVM and LUKS made the devices, after the ZFS module imported the root pools (nixpkgs imports them
# in postResumeCommands since 24.11), and after the resume attempt, so a hibernated system has
# already been resumed by the kernel and never reaches this line.
#
# Placeholders, replaced by the module (builtins.replaceStrings) and by the VM test (sed) alike;
# once replaced, these two lines name the values used:
#   @darlings@ is the darlings binary in the initrd (module: darlings, found on stage 1's PATH)
#   @config@ is the config file in the initrd (module: /etc/darlings.toml, from boot.initrd.extraFiles)
#
# This is a fragment of stage-1-init.sh, not a script of its own: it must not exit, its variables
# carry a darlings_ prefix, and it calls stage 1's `fail` (a test that sources it defines one).
# darlings exits 0 when the boot may go on, including after a failure under on-failure =
# "boot-old-root" (logged to the kernel log, recorded in /run/darlings/failed); 1 when a phase
# failed under "halt". Any other status means darlings itself broke (a crash, a binary without
# `boot`): its policy was not applied, so that stops the boot too rather than guess.
darlings_status=0
@darlings@ --config @config@ boot --stage early || darlings_status=$?
if [ "$darlings_status" -ne 0 ]; then
    if [ "$darlings_status" -eq 1 ]; then
        echo "darlings: the early stage failed and on-failure is \"halt\": stopping before the root is mounted (the error is above and in /run/darlings/failed)"
    else
        echo "darlings: the early stage ended with status $darlings_status, which darlings never returns (did it crash?): stopping before the root is mounted"
    fi
    fail
fi
unset darlings_status
