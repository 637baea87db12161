# The layout the preset test configurations share: a tmpfs root and the stores /persist,
# /persistent and /persistence on filesystems the initrd mounts, with the services NixOS turns
# on by default (sudo, systemd-coredump, logrotate, timesyncd) set off, so that each case names
# the presets it is about (the 2026-lib evaluation's stand-in NixOS has none of those defaults).
{ lib, ... }:
{
  fileSystems."/" = {
    device = "none";
    fsType = "tmpfs";
  };
  fileSystems."/persist" = {
    device = "/dev/disk/by-label/persist";
    fsType = "ext4";
    neededForBoot = true;
  };
  fileSystems."/persistent" = {
    device = "/dev/disk/by-label/persistent";
    fsType = "ext4";
    neededForBoot = true;
  };
  fileSystems."/persistence" = {
    device = "/dev/disk/by-label/persistence";
    fsType = "ext4";
    neededForBoot = true;
  };
  darlings.enable = true;
  darlings.root.backend = "tmpfs";
  security.sudo.enable = lib.mkDefault false;
  systemd.coredump.enable = lib.mkDefault false;
  services.logrotate.enable = lib.mkDefault false;
  services.timesyncd.enable = lib.mkDefault false;
  # A user without a fixed uid, so that both evaluations (real NixOS, whose system users have
  # none, and the 2026 lib's stand-in, which has no system users) warn alike about
  # /var/lib/nixos where a case does not keep it.
  users.users.pat.isNormalUser = true;
}
