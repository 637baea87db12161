# The NixOS wiki's impermanence example, renamed: environment.persistence became
# darlings.persistence, nothing else changed. The store is /nix/persist/system on a
# neededForBoot /nix; the modes are symbolic, one on a file's parent directory.
{
  about = "the NixOS wiki's example after the one rename";
  forms = [
    "migration:wiki"
    "mode:symbolic"
    "mode:symbolic-parent"
    "store:directory-on-needed-fs"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "none";
        fsType = "tmpfs";
        options = [
          "defaults"
          "size=2G"
          "mode=755"
        ];
      };
      fileSystems."/nix" = {
        device = "/dev/disk/by-label/nix";
        fsType = "ext4";
        neededForBoot = true;
      };
      darlings.enable = true;
      darlings.root.backend = "tmpfs";
      darlings.persistence."/nix/persist/system" = {
        hideMounts = true;
        directories = [
          "/var/log"
          "/var/lib/bluetooth"
          "/var/lib/nixos"
          "/var/lib/systemd/coredump"
          "/etc/NetworkManager/system-connections"
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
            file = "/etc/nix/id_rsa";
            parentDirectory = {
              mode = "u=rwx,g=,o=";
            };
          }
        ];
      };
    };
  expect = {
    settings = [
      ''.persist[0].files[1] == {path: "/etc/nix/id_rsa", parent: {mode: "u=rwx,g=,o="}}''
    ];
    plan = [
      ''any(.steps[]; .target == "/etc/nix/id_rsa" and (.parents | last | .mode) == "0700")''
      ''any(.steps[]; .target == "/var/lib/colord" and .op == "deferred")''
    ];
  };
}
