# tests/nixos/run's evaluation of the same test configurations with nixpkgs' lib/ from 2026 (the
# vendored 26.11pre tree has no NixOS modules): the real module system of 2026 (types,
# submodules, coercions, mkIf/mkMerge/mkAfter, option priorities, assertions) runs darlings'
# modules, while the NixOS options they touch are declared here, loosely: fileSystems,
# users.users/groups, the boot.initrd hooks and units, systemd.services, environment.etc, and a
# free-form rest for what the cases set without darlings reading it. utils' fsNeededForBoot and
# escapeSystemdPath are nixpkgs 24.05's own, applied to the 2026 lib. check.py then requires the
# settings, failed assertions and warnings to be what real NixOS 24.05 gave.
{
  lib2026,
  nixpkgs2405,
  names ? null,
}:
let
  lib = import lib2026;
  inherit (lib) mkOption types;
  all = map (f: lib.removeSuffix ".nix" f) (
    lib.filter (lib.hasSuffix ".nix") (lib.attrNames (builtins.readDir ./cases))
  );
  selected = if names == null then all else names;

  fake = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    formats.toml = _: {
      generate = name: value: {
        type = "derivation";
        inherit name;
        outPath = fake name;
        value = builtins.toJSON value;
      };
    };
    runCommand =
      name: attrs: _:
      (attrs.passthru or { })
      // {
        type = "derivation";
        inherit name;
        outPath = fake name;
      };
    callPackage = _: _: {
      type = "derivation";
      name = "darlings";
      outPath = fake "darlings";
    };
    stdenv.buildPlatform.canExecute = _: true;
    stdenv.hostPlatform = { };
  };

  nixosStandIn =
    { config, ... }:
    let
      any = default: mkOption {
        type = types.anything;
        inherit default;
      };
      lines = mkOption {
        type = types.lines;
        default = "";
      };
      list = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
    in
    {
      freeformType = types.lazyAttrsOf types.anything;
      options = {
        assertions = list;
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        environment.etc = any { };
        environment.systemPackages = list;
        system.activationScripts = mkOption {
          type = types.attrsOf types.unspecified;
          default = { };
        };
        systemd.services = any { };
        users.users = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { name, config, ... }:
              {
                options = {
                  name = mkOption {
                    type = types.str;
                    default = name;
                  };
                  isNormalUser = mkOption {
                    type = types.bool;
                    default = false;
                  };
                  uid = mkOption {
                    type = types.nullOr types.int;
                    default = null;
                  };
                  group = mkOption {
                    type = types.str;
                    default = "";
                  };
                  home = mkOption {
                    type = types.str;
                    default = "/var/empty";
                  };
                };
                # As NixOS's users-groups.nix does for normal users.
                config = lib.mkIf config.isNormalUser {
                  group = lib.mkDefault "users";
                  home = lib.mkDefault "/home/${name}";
                };
              }
            )
          );
        };
        users.groups = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options.gid = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
            }
          );
        };
        fileSystems = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { name, ... }:
              {
                freeformType = types.attrsOf types.anything;
                options = {
                  mountPoint = mkOption {
                    type = types.str;
                    default = name;
                  };
                  device = mkOption {
                    type = types.nullOr types.str;
                    default = null;
                  };
                  fsType = mkOption {
                    type = types.str;
                    default = "auto";
                  };
                  neededForBoot = mkOption {
                    type = types.bool;
                    default = false;
                  };
                };
              }
            )
          );
        };
        boot.initrd = {
          systemd.enable = mkOption {
            type = types.bool;
            default = false;
          };
          systemd.storePaths = list;
          systemd.suppressedUnits = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          systemd.contents = any { };
          systemd.services = any { };
          extraFiles = any { };
          extraUtilsCommands = lines;
          extraUtilsCommandsTest = lines;
          postDeviceCommands = lines;
          postResumeCommands = lines;
          postMountCommands = lines;
        };
      };
      # As NixOS declares it (ids.nix).
      config.users.groups.users.gid = 100;
    };

  utils = import (nixpkgs2405 + "/nixos/lib/utils.nix") {
    inherit lib pkgs;
    config = { };
  };

  report =
    name:
    let
      case = import (./cases + "/${name}.nix");
      c =
        (lib.evalModules {
          modules = [
            nixosStandIn
            ../../initrd/nixos/module.nix
            {
              _file = ./cases + "/${name}.nix";
              imports = [ case.module ];
            }
          ];
          specialArgs = {
            inherit pkgs utils;
          };
        }).config;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
    in
    {
      inherit failed;
    }
    // lib.optionalAttrs (failed == [ ]) {
      inherit (c) warnings;
      settings = c.darlings.settings;
    };
in
{
  lib = lib.trivial.version;
  cases = lib.genAttrs selected report;
}
