# tests/nixos/run's evaluation of flake.nix without flakes: Debian's Nix 2.8 has them only as an
# experimental feature (and no network for inputs), so this imports flake.nix and calls its
# `outputs` the way Nix would, with the vendored nixpkgs 24.05's own flake outputs as the
# `nixpkgs` input (its legacyPackages given the one overlay a whole system needs from this tree:
# see common.nix). Reports the drvPaths CI instantiates: the package, the overlay's package, a
# NixOS system built with nixosModules.default, each NixOS test in `checks`, and default.nix.
{ nixpkgs }:
let
  # nixpkgs as a flake input: the tree's flake.nix outputs, with the facts about the tree that
  # Nix would put in `self` (vendor/README.md: branch nixos-24.05 at 689fed12).
  nixpkgsInput =
    let
      outputs = (import (nixpkgs + "/flake.nix")).outputs { self = input; };
      input =
        outputs
        // {
          outPath = nixpkgs;
          rev = "689fed12a013f56d4c4d3f612489634267d86529";
          shortRev = "689fed1";
          lastModified = 1731628800;
          lastModifiedDate = "20241115000000";
          legacyPackages = outputs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
            system:
            import nixpkgs {
              inherit system;
              overlays = standIn;
            }
          );
        };
    in
    input;
  standIn = [ (import ./stand-in-overlay.nix) ];

  flake = import ../../flake.nix;
  self = flake.outputs { inherit self; nixpkgs = nixpkgsInput; } // {
    outPath = ../..;
  };
  inherit (nixpkgsInput) lib;

  system = nixpkgsInput.lib.nixosSystem {
    modules = [
      self.nixosModules.default
      (
        { ... }:
        {
          nixpkgs.hostPlatform = "x86_64-linux";
          nixpkgs.overlays = standIn;
          # Left on, nixosSystem's registry entry would copy the whole 365 MB tree into the
          # store at every run; it is nixpkgs', not darlings' concern.
          nixpkgs.flake.setNixPath = false;
          nixpkgs.flake.setFlakeRegistry = false;
          system.stateVersion = "24.05";
          boot.loader.grub.enable = false;
          fileSystems."/" = {
            device = "none";
            fsType = "tmpfs";
          };
          fileSystems."/persist" = {
            device = "/dev/disk/by-label/persist";
            fsType = "ext4";
            neededForBoot = true;
          };
          darlings = {
            enable = true;
            root.backend = "tmpfs";
            persistence."/persist".directories = [ "/var/lib/nixos" ];
          };
        }
      )
    ];
  };
  overlaid = import nixpkgs {
    system = "x86_64-linux";
    overlays = standIn ++ [ self.overlays.default ];
  };
in
{
  description = flake.description;
  package = self.packages.x86_64-linux.default.drvPath;
  packageName = self.packages.x86_64-linux.default.name;
  packageAarch64 = self.packages.aarch64-linux.default.drvPath;
  overlayPackage = overlaid.darlings.drvPath;
  defaultNix = (import ../../default.nix { pkgs = overlaid; }).drvPath;
  moduleDefaultPackage = system.config.darlings.package.drvPath;
  systemToplevel = system.config.system.build.toplevel.drvPath;
  homeManagerModule = toString self.homeManagerModules.default;
  checks = lib.mapAttrs (_: t: t.drvPath) self.checks.x86_64-linux;
  # The binary embeds presets/presets.toml (include_str!): package.nix's source must carry it.
  packageSrcHasPresets = builtins.pathExists (
    self.packages.x86_64-linux.default.src + "/presets/presets.toml"
  );
}
