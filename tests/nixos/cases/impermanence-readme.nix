# impermanence's README example (NixOS module), renamed, with the user declared as it would be
# in a real configuration: the entries under users.bird bind in the initrd.
{
  about = "impermanence's README example after the one rename";
  forms = [
    "migration:impermanence-readme"
    "store:enable"
    "mode:symbolic"
    "mode:octal"
  ];
  module =
    { ... }:
    {
      fileSystems."/" = {
        device = "/dev/root_vg/root";
        fsType = "btrfs";
        options = [ "subvol=root" ];
      };
      fileSystems."/persistent" = {
        device = "/dev/root_vg/root";
        neededForBoot = true;
        fsType = "btrfs";
        options = [ "subvol=persistent" ];
      };
      fileSystems."/nix" = {
        device = "/dev/root_vg/root";
        fsType = "btrfs";
        options = [ "subvol=nix" ];
      };
      users.users.bird = {
        isNormalUser = true;
        uid = 1000;
      };
      darlings.enable = true;
      darlings.root = {
        backend = "btrfs";
        device = "/dev/root_vg/root";
        keep.days = 30;
      };
      darlings.persistence."/persistent" = {
        enable = true;
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
            file = "/var/keys/secret_file";
            parentDirectory = {
              mode = "u=rwx,g=,o=";
            };
          }
        ];
        users.bird = {
          directories = [
            "Downloads"
            "Music"
            "Pictures"
            "Documents"
            "Videos"
            "VirtualBox VMs"
            {
              directory = ".gnupg";
              mode = "0700";
            }
            {
              directory = ".ssh";
              mode = "0700";
            }
            {
              directory = ".nixops";
              mode = "0700";
            }
            {
              directory = ".local/share/keyrings";
              mode = "0700";
            }
            ".local/share/direnv"
          ];
          files = [ ".screenrc" ];
        };
      };
    };
  expect = {
    plan = [
      ''[.steps[] | select(.op == "bind" and (.target | startswith("/home/bird/")))] | length == 12''
      ''any(.steps[]; .target == "/home/bird/VirtualBox VMs")''
    ];
  };
}
