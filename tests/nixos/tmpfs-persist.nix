# The layout most test configurations share, so that each says only what it is about: a tmpfs
# root (darlings' tmpfs backend) and the store /persist, an ext4 filesystem the initrd mounts.
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
  darlings.enable = true;
  darlings.root.backend = "tmpfs";
}
