# What every test configuration shares in the real NixOS evaluation (tests/nixos/eval.nix):
# darlings' module, a system that needs no boot loader, and stand-in-overlay.nix. darlings.package
# stays the real package.nix; the option docs are left out (they add time, not coverage of
# darlings: the module's options are evaluated by every case anyway).
{ lib, ... }:
{
  imports = [ ../../initrd/nixos/module.nix ];
  system.stateVersion = "24.05";
  boot.loader.grub.enable = false;
  nixpkgs.hostPlatform = "x86_64-linux";
  nixpkgs.overlays = [ (import ./stand-in-overlay.nix) ];
  documentation.nixos.enable = lib.mkDefault false;
}
