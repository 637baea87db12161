# For users without flakes: `nix-build` builds the package; `import ./. { }` gives it, and
# `(import ./. { }).module` is the NixOS module (whose darlings.package defaults to this package).
{
  pkgs ? import <nixpkgs> { },
}:
let
  package = pkgs.callPackage ./package.nix { };
in
package
// {
  module = ./initrd/nixos/module.nix;
  homeManagerModule = ./initrd/nixos/home-manager.nix;
}
