# A whole system: systemd initrd with a ZFS root. darlings-early must come after the pool
# import unit nixpkgs' ZFS module generates for the initrd, and before sysroot.mount.
{
  about = "systemd initrd + ZFS, neededForBoot store, user with directories and files";
  forms = [ "full:systemd-zfs" ];
  full = true;
  module =
    { ... }:
    {
      boot.initrd.systemd.enable = true;
      boot.supportedFilesystems = [ "zfs" ];
      networking.hostId = "8425e349";
      fileSystems."/" = {
        device = "rpool/local/root";
        fsType = "zfs";
      };
      fileSystems."/nix" = {
        device = "rpool/local/nix";
        fsType = "zfs";
      };
      fileSystems."/persist" = {
        device = "rpool/safe/persist";
        fsType = "zfs";
        neededForBoot = true;
      };
      users.users.dave = {
        isNormalUser = true;
        uid = 1002;
      };
      darlings = {
        enable = true;
        onFailure = "halt";
        root = {
          backend = "zfs";
          dataset = "rpool/local/root";
          destroyNewerSnapshots = true;
        };
        persistence."/persist" = {
          hideMounts = true;
          directories = [
            "/var/log"
            "/var/lib/nixos"
          ];
          files = [ "/etc/adjtime" ];
          users.dave = {
            directories = [ "Downloads" ];
            files = [ ".gitconfig" ];
          };
        };
      };
    };
  expect = {
    settings = [ ''.root == {backend: "zfs", dataset: "rpool/local/root", "destroy-newer-snapshots": true}'' ];
    plan = [ ''any(.steps[]; .target == "/home/dave/Downloads" and .op == "bind" and .uid == 1002)'' ];
    units = [ "systemd-ordering" "zfs-import-before-darlings" ];
  };
}
