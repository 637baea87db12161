# The NixOS module's own initrd units, as a whole NixOS 24.05 system renders them, for the
# distribution tier (tests/distro/run), which boots them inside a dracut systemd initrd (NixOS's
# own initrd cannot be built here: no binary cache). The system matches the tier's Debian guest:
# a Btrfs disk labelled "darlings" with root, root-blank and persist.
# nix-instantiate --eval --strict --json --arg nixpkgs NIXPKGS --arg module initrd/nixos/module.nix
{ nixpkgs, module }:
let
  system = import (nixpkgs + "/nixos/lib/eval-config.nix") {
    system = "x86_64-linux";
    modules = [
      module
      {
        boot.initrd.systemd.enable = true;
        boot.loader.grub.enable = false;
        system.stateVersion = "24.05";
        fileSystems."/" = {
          device = "/dev/disk/by-label/darlings";
          fsType = "btrfs";
          options = [ "subvol=root" ];
        };
        fileSystems."/persist" = {
          device = "/dev/disk/by-label/darlings";
          fsType = "btrfs";
          options = [ "subvol=persist" ];
          neededForBoot = true;
        };
        darlings = {
          enable = true;
          # Only its path matters here: the tier puts its own binary there.
          package = derivation {
            name = "darlings";
            system = "x86_64-linux";
            builder = "/bin/sh";
          };
          root = {
            backend = "btrfs";
            device = "/dev/disk/by-label/darlings";
          };
          persistence."/persist".directories = [ "/var/lib/keep" ];
        };
      }
    ];
  };
  cfg = system.config;
  unit = name: {
    text = cfg.boot.initrd.systemd.units."${name}.service".text;
    requiredBy = cfg.boot.initrd.systemd.services.${name}.requiredBy;
    wantedBy = cfg.boot.initrd.systemd.services.${name}.wantedBy;
  };
in
{
  bin = "${cfg.darlings.package}/bin/darlings";
  early = unit "darlings-early";
  late = unit "darlings-late";
}
