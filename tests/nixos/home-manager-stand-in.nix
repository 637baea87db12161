# The smallest honest stand-in for Home Manager's NixOS module (home-manager's nixos/), which CI
# cannot fetch (no GitHub here): only what darlings' modules use. home-manager.sharedModules;
# home-manager.users.<name>, a submodule built from those shared modules plus the options Home
# Manager itself sets per user (home.username, home.homeDirectory from users.users.<name>, as
# Home Manager's nixos/common.nix does), assertions and warnings, which Home Manager forwards to
# NixOS's prefixed with "<user> profile: ". Nothing of Home Manager's own behaviour beyond that
# is checked here.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  hm = config.home-manager;
  perUser =
    { name, ... }:
    {
      options = {
        home.username = mkOption {
          type = types.str;
          default = name;
        };
        home.homeDirectory = mkOption {
          type = types.str;
          default = config.users.users.${name}.home;
        };
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
      };
    };
  forward =
    f: lib.concatLists (lib.mapAttrsToList (user: u: map (f user) (u.assertions or [ ])) hm.users);
in
{
  options.home-manager = {
    sharedModules = mkOption {
      type = types.listOf types.raw;
      default = [ ];
    };
    users = mkOption {
      type = types.attrsOf (
        types.submoduleWith {
          modules = [ perUser ] ++ hm.sharedModules;
          specialArgs = {
            inherit pkgs;
            osConfig = config;
          };
        }
      );
      default = { };
    };
  };
  config = {
    assertions = forward (
      user: a: {
        inherit (a) assertion;
        message = "${user} profile: ${a.message}";
      }
    );
    warnings = lib.concatLists (
      lib.mapAttrsToList (user: u: map (w: "${user} profile: ${w}") u.warnings) hm.users
    );
  };
}
