# A whole system: systemd initrd, Btrfs root rolled back to a blank snapshot, a store on a
# neededForBoot subvolume, a declared user with directories and files (bound in the initrd,
# not deferred), symbolic and octal modes, and the machine id persisted.
{
  about = "systemd initrd + Btrfs, neededForBoot store, user with directories and files";
  forms = [
    "full:systemd-btrfs"
    "mode:symbolic"
    "mode:octal"
    "users:from-users.users"
    "machine-id"
  ];
  full = true;
  module =
    { ... }:
    {
      boot.initrd.systemd.enable = true;
      fileSystems."/" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "btrfs";
        options = [ "subvol=root" ];
      };
      fileSystems."/nix" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "btrfs";
        options = [ "subvol=nix" ];
      };
      fileSystems."/persist" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "btrfs";
        options = [ "subvol=persist" ];
        neededForBoot = true;
      };
      users.users.alice = {
        isNormalUser = true;
        uid = 1000;
      };
      darlings = {
        enable = true;
        onFailure = "halt";
        root = {
          backend = "btrfs";
          device = "/dev/disk/by-label/nixos";
          keep.days = 14;
        };
        persistence."/persist" = {
          hideMounts = true;
          directories = [
            "/var/log"
            "/var/lib/nixos"
            {
              directory = "/var/lib/colord";
              user = "colord";
              group = "colord";
              mode = "u=rwx,g=rx,o=";
            }
          ];
          files = [
            "/etc/machine-id"
            {
              file = "/etc/ssh/ssh_host_ed25519_key";
              mode = "0600";
            }
          ];
          users.alice = {
            directories = [
              "Documents"
              {
                directory = ".ssh";
                mode = "0700";
              }
            ];
            files = [ ".bash_history" ];
          };
        };
      };
    };
  expect = {
    settings = [
      ''.persist[0].users.alice == {home: "/home/alice", uid: 1000, gid: 100, directories: [{path: "Documents"}, {path: ".ssh", mode: "0700"}], files: [{path: ".bash_history"}]}''
      ''.persist[0].directories[2].mode == "u=rwx,g=rx,o="''
    ];
    plan = [
      ''[.steps[] | select(.op == "deferred" and (.target | startswith("/home/alice")))] | length == 0''
      ''any(.steps[]; .target == "/home/alice/.ssh" and .uid == 1000 and .gid == 100 and .mode == "0700")''
      ''any(.steps[]; .target == "/var/lib/colord" and .op == "deferred")''
    ];
    units = [ "systemd-ordering" "machine-id-commit" ];
  };
}
