# darlings as a flake: the package, the NixOS and Home Manager modules, an overlay, and NixOS
# VM tests as checks. Through nixosModules.default, darlings.package defaults to packages.default.
{
  description = "Erase your darlings: roll the root back to blank on every boot and bind what you chose to keep";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { darlings = final.callPackage ./package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        darlings = pkgs.callPackage ./package.nix { };
        default = darlings;
      });

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./initrd/nixos/module.nix ];
          darlings.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.darlings = self.nixosModules.default;

      # The NixOS module adds it to every Home Manager user itself (home-manager.sharedModules);
      # importing it again is harmless (the module system imports a file once).
      homeManagerModules.default = ./initrd/nixos/home-manager.nix;

      checks = forAllSystems (
        pkgs:
        import ./tests/nixos/checks.nix {
          inherit pkgs;
          module = self.nixosModules.default;
        }
      );
    };
}
