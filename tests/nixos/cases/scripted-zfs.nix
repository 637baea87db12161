# A whole system: scripted stage 1, ZFS root rolled back to @blank, a neededForBoot dataset as
# the store, a declared user with a fixed uid and one without (whose entries wait for the
# root's passwd). The stage-1 script nixpkgs generates is checked for the hook order. A marker
# in postResumeCommands at normal priority stands for the ZFS import as NixOS 24.11+ writes it
# there (24.05, this tree, still imports in postDeviceCommands): darlings must follow both.
{
  about = "scripted stage 1 + ZFS, neededForBoot store, users with directories and files";
  forms = [
    "full:scripted-zfs"
    "users:from-users.users"
    "users:deferred"
  ];
  full = true;
  module =
    { ... }:
    {
      boot.initrd.systemd.enable = false;
      boot.supportedFilesystems = [ "zfs" ];
      networking.hostId = "8425e349";
      boot.initrd.postResumeCommands = ''
        echo ZFS-IMPORT-AS-IN-NIXOS-24.11
      '';
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
      users.users.bob = {
        isNormalUser = true;
        uid = 1001;
      };
      users.users.carol.isNormalUser = true;
      darlings = {
        enable = true;
        root = {
          backend = "zfs";
          dataset = "rpool/local/root";
          keep.count = 5;
        };
        diff = {
          onBoot = true;
          reportDir = "/persist/var/log/darlings";
          ignore = [ "/var/cache/**" ];
          timeBudget = "10s";
        };
        persistence."/persist" = {
          directories = [
            "/var/log"
            "/var/lib/nixos"
            "/etc/NetworkManager/system-connections"
          ];
          files = [ "/etc/machine-id" ];
          users.bob = {
            directories = [
              "src"
              {
                directory = ".gnupg";
                mode = "u=rwx,g=,o=";
              }
            ];
            files = [ ".zsh_history" ];
          };
          users.carol = {
            directories = [ "Music" ];
            files = [ ".profile" ];
          };
        };
      };
    };
  expect = {
    settings = [
      ''.persist[0].users.bob | .uid == 1001 and .gid == 100 and .home == "/home/bob"''
      ''.persist[0].users.carol | has("uid") | not''
      ''.persist[0].users.carol.home == "/home/carol"''
    ];
    plan = [
      ''any(.steps[]; .op == "bind" and .target == "/home/bob/.gnupg" and .mode == "0700")''
      ''[.steps[] | select(.op == "deferred" and (.target | test("carol")))] | length == 2''
    ];
    units = [ "stage1-order" "machine-id-commit" ];
  };
}
