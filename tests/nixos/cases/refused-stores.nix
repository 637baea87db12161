# Stores darlings cannot bind from at boot, each refused at evaluation with what to do: one on
# the root's filesystem (erased at every boot), one on a filesystem the initrd does not mount,
# and an entry on a filesystem stage 2 mounts over the bind.
{
  about = "assertions: store on the root fs, store on a non-neededForBoot fs, target on a late fs";
  forms = [
    "refused:store-on-root"
    "refused:store-not-neededForBoot"
    "refused:target-on-late-fs"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "btrfs";
        options = [ "subvol=root" ];
      };
      fileSystems."/data" = {
        device = "/dev/disk/by-label/data";
        fsType = "ext4";
      };
      fileSystems."/persist" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "btrfs";
        options = [ "subvol=persist" ];
        neededForBoot = true;
      };
      fileSystems."/home" = {
        device = "/dev/disk/by-label/home";
        fsType = "ext4";
      };
      users.users.mia = {
        isNormalUser = true;
        uid = 1008;
      };
      darlings.enable = true;
      darlings.root = {
        backend = "btrfs";
        device = "/dev/disk/by-label/nixos";
      };
      darlings.persistence."/state".directories = [ "/var/lib/nixos" ];
      darlings.persistence."/data/keep".directories = [ "/var/lib/postgresql" ];
      darlings.persistence."/persist".users.mia.directories = [ "Documents" ];
    };
  expect.failures = [
    "darlings: store /state is on the root filesystem, which darlings erases at every boot"
    "darlings: store /data/keep is on fileSystems.\"/data\", which the initrd does not mount, so there is nothing to bind from at boot; set fileSystems.\"/data\".neededForBoot = true"
    "darlings: directory /home/mia/Documents (store /persist) is on fileSystems.\"/home\", which is mounted only after darlings binds"
  ];
}
