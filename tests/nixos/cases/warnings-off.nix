# enableWarnings = false silences darlings' warnings for that store.
{
  about = "enableWarnings = false";
  forms = [ "store:enableWarnings-off" ];
  module =
    { ... }:
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
      users.users.hank.isNormalUser = true;
      darlings.enable = true;
      darlings.root.backend = "tmpfs";
      darlings.persistence."/persist" = {
        enableWarnings = false;
        directories = [ "/var/log" ];
      };
    };
  expect.noWarnings = [ "darlings:" ];
}
