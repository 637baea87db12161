# Home Manager module for darlings: home.persistence."<store>" in home-manager.users.<name>, as
# in impermanence v2. It only declares the options; darlings' NixOS module (module.nix) adds this
# module to every Home Manager user through home-manager.sharedModules and forwards each entry to
# darlings.persistence."<store>".users.<name>, so the binds happen in the initrd with the rest.
# Paths are relative to the home. Standalone Home Manager (no NixOS) cannot use it: darlings runs
# in the initrd, which only the NixOS configuration builds.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  o = import ./options.nix { inherit lib; };
  cfg = config.home.persistence;
  home = config.home.homeDirectory;

  storeModule =
    { name, config, ... }:
    let
      at = "home.persistence.\"${name}\"";
    in
    {
      imports = o.removedStoreOptions at;
      options = o.storeOptions {
        inherit name config at;
        underHome = true;
      };
    };
in
{
  options.home = {
    persistence = mkOption {
      type = types.attrsOf (types.submodule storeModule);
      default = { };
      example = lib.literalExpression ''
        {
          "/persist" = {
            directories = [ "Documents" { directory = ".ssh"; mode = "0700"; } ];
            files = [ ".screenrc" ];
          };
        }
      '';
      description = "Stores and what each keeps of this user's home, relative to it; forwarded to the NixOS option darlings.persistence.\"<store>\".users.<user>.";
    };
    darlings.nixosModuleImported = mkOption {
      type = types.bool;
      default = false;
      internal = true;
      description = "Set by darlings' NixOS module, which is what makes home.persistence do anything.";
    };
  };

  config.assertions =
    [
      {
        assertion = cfg == { } || config.home.darlings.nixosModuleImported;
        message = "home.persistence: darlings binds in the initrd, so this needs darlings' NixOS module: import it (nixosModules.default, or initrd/nixos/module.nix) in the NixOS configuration, which adds this Home Manager module by itself, and use Home Manager as a NixOS module; remove any import of the Home Manager module itself";
      }
    ]
    # impermanence v1 took the store path with the home in it ("/persist/home/alice"); v2 and
    # darlings add the home themselves.
    ++ lib.mapAttrsToList (name: s: {
      assertion = !(lib.hasSuffix home s.persistentStoragePath || lib.hasInfix "${home}/" s.persistentStoragePath);
      message = "home.persistence.\"${name}\": persistentStoragePath ${s.persistentStoragePath} contains the home directory ${home}; give the store itself (e.g. \"/persist\"): the home is added to every path";
    }) cfg
    ++ lib.concatLists (
      lib.mapAttrsToList (
        _: s: s.assertions ++ lib.concatMap (e: e.assertions) (s.directories ++ s.files)
      ) cfg
    );
}
