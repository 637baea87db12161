# tests/nixos/run's evaluation of the test configurations (cases/*.nix) inside real NixOS, from
# a nixpkgs tree (the vendored 24.05): each case is a whole NixOS system with darlings' module,
# evaluated by nixos/lib/eval-config.nix. Reports, per case, what the checks in check.py look at:
# the assertions that failed, the warnings, the settings and the exact JSON nixpkgs' TOML writer
# is given, what the case's `inspect` picks from the system, and for the cases marked `full` the system's drvPath, the initrd's units (systemd) or
# stage-1 script (scripted), and the stage-2 override of systemd-machine-id-commit.service.
{
  nixpkgs,
  names ? null,
}:
let
  lib = import (nixpkgs + "/lib");
  all = map (f: lib.removeSuffix ".nix" f) (
    lib.filter (lib.hasSuffix ".nix") (lib.attrNames (builtins.readDir ./cases))
  );
  selected = if names == null then all else names;

  # What nixpkgs' substituteAll does to stage-1-init.sh, for the attributes the order check
  # looks for; the text between the markers is what the system's stage 1 runs.
  stage1Script =
    drv:
    let
      template = builtins.readFile drv.src;
      keys = lib.filter (k: lib.isString (drv.${k} or null) && lib.hasInfix "@${k}@" template) (
        lib.attrNames drv
      );
    in
    builtins.replaceStrings (map (k: "@${k}@") keys) (map (k: drv.${k}) keys) template;

  report =
    name:
    let
      case = import (./cases + "/${name}.nix");
      sys = import (nixpkgs + "/nixos/lib/eval-config.nix") {
        system = null;
        modules = [
          ./common.nix
          {
            _file = ./cases + "/${name}.nix";
            imports = [ case.module ];
          }
        ];
      };
      c = sys.config;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
      ok = failed == [ ];
      systemdInitrd = c.boot.initrd.systemd.enable;
      source = c.environment.etc."darlings.toml".source;
      # 24.05's pkgs.formats.toml hands json2toml the settings as this attribute.
      writerInput = (source.unchecked or source).value;
      unitTexts = units: lib.mapAttrs (_: u: u.text or null) units;
      darlingsUnits = lib.filterAttrs (n: _: lib.hasPrefix "darlings-" n);
    in
    {
      inherit (case) about forms;
      full = case.full or false;
      expect = {
        failures = case.expect.failures or [ ];
        warnings = case.expect.warnings or [ ];
        noWarnings = case.expect.noWarnings or [ ];
        settings = case.expect.settings or [ ];
        plan = case.expect.plan or [ ];
        units = case.expect.units or [ ];
        inspect = case.expect.inspect or [ ];
        allPresets = case.expect.allPresets or null;
        crossCheck = case.expect.crossCheck or null;
      };
      inherit failed;
      warnings = if ok then c.warnings else [ ];
    }
    // lib.optionalAttrs ok (
      {
        enabled = c.darlings.enable;
        settings = c.darlings.settings;
        # What a case wants to see of the rest of the system (e.g. logrotate's arguments).
        inspected = if case ? inspect then case.inspect sys else null;
      }
      // lib.optionalAttrs c.darlings.enable {
        inherit writerInput;
        writerInputIsSettings = writerInput == builtins.toJSON c.darlings.settings;
        checked = source ? unchecked;
        systemdInitrd = systemdInitrd;
        suppressedUnits = c.boot.initrd.systemd.suppressedUnits;
        machineIdCommit = c.systemd.services.systemd-machine-id-commit.unitConfig or { };
      }
      // lib.optionalAttrs (c.darlings.enable && (case.full or false)) (
        {
          toplevel = c.system.build.toplevel.drvPath;
          fileSystems = lib.mapAttrs (_: fs: {
            inherit (fs) mountPoint fsType neededForBoot;
            device = fs.device or null;
          }) c.fileSystems;
          stage2Units = unitTexts (
            lib.filterAttrs (
              n: _: n == "systemd-machine-id-commit.service" || lib.hasPrefix "darlings-" n
            ) c.systemd.units
          );
        }
        // (
          if systemdInitrd then
            {
              initrdUnits = unitTexts c.boot.initrd.systemd.units;
              initrdServices = lib.mapAttrs (_: s: {
                inherit (s)
                  requiredBy
                  wantedBy
                  after
                  before
                  wants
                  requires
                  ;
              }) (darlingsUnits c.boot.initrd.systemd.services);
              initrdStorePaths = map toString c.boot.initrd.systemd.storePaths;
              initrdContents = lib.attrNames c.boot.initrd.systemd.contents;
            }
          else
            {
              stage1 = stage1Script c.system.build.bootStage1;
              extraUtilsCommands = c.boot.initrd.extraUtilsCommands;
              extraFiles = lib.attrNames c.boot.initrd.extraFiles;
            }
        )
      )
    );
in
lib.genAttrs selected report
