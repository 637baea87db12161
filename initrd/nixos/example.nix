# Example: a NixOS configuration whose root is a ZFS dataset that darlings rolls back to @blank at
# every boot, keeping what /persist lists. A snippet to merge into configuration.nix; the pool was
# made like this (mountpoint=legacy everywhere, so NixOS mounts the datasets from fileSystems):
#
#   zpool create -o ashift=12 -O mountpoint=none -O acltype=posixacl -O xattr=sa rpool /dev/disk/by-id/...
#   zfs create -o mountpoint=legacy rpool/local/root
#   zfs create -o mountpoint=legacy rpool/local/nix
#   zfs create -o mountpoint=legacy rpool/safe/persist
#   darlings --config /etc/darlings.toml init     # takes rpool/local/root@blank while it is empty
#
# tests/nixos/run evaluates it inside a whole NixOS 24.05 system (tests/nixos/cases/example.nix)
# and has darlings check the TOML both of nixpkgs' TOML writers make of it. With the flake, import
# darlings.nixosModules.default instead of the file.
{ ... }:
{
  imports = [ ./module.nix ]; # from a checkout: /path/to/darlings/initrd/nixos/module.nix

  # ZFS wants a host id; any 8 hex digits, fixed per machine.
  networking.hostId = "8425e349";
  boot.supportedFilesystems = [ "zfs" ];
  # With the systemd initrd (the default from NixOS 26.05) darlings runs as two initrd services;
  # with the scripted stage 1 in postResumeCommands and postMountCommands. Both work.
  boot.initrd.systemd.enable = true;

  fileSystems."/" = {
    device = "rpool/local/root";
    fsType = "zfs";
  };
  fileSystems."/nix" = {
    device = "rpool/local/nix";
    fsType = "zfs";
  };
  # The store must be mounted by the initrd: darlings binds from it before stage 2 starts.
  fileSystems."/persist" = {
    device = "rpool/safe/persist";
    fsType = "zfs";
    neededForBoot = true;
  };

  darlings = {
    enable = true;
    # darlings.package defaults to this repository's package.nix (the flake's module: its
    # packages.default).

    root = {
      backend = "zfs";
      dataset = "rpool/local/root";
      # Keep the last five roots as datasets, to copy a forgotten file back out of.
      keep.count = 5;
    };

    diff = {
      onBoot = true;
      reportDir = "/persist/var/log/darlings";
      ignore = [
        "/var/cache/**"
        "/etc/.clean"
      ];
      timeBudget = "10s";
    };

    # Keep booting on a failure (the default); "halt" stops the boot instead.
    onFailure = "boot-old-root";

    persistence."/persist" = {
      hideMounts = true;
      directories = [
        "/var/log"
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
          file = "/etc/ssh/ssh_host_ed25519_key";
          mode = "0600";
          parentDirectory.mode = "0755";
        }
        "/etc/ssh/ssh_host_ed25519_key.pub"
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
}
