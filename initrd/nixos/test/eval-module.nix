# tests/initrd-check's second Nix tier: evaluates module.nix with nixpkgs' module system (lib only:
# pass the path of a nixpkgs lib directory as nixpkgsLib) against stand-ins for the NixOS options
# it sets, and reports what each case produced as JSON. It catches what parsing cannot: option
# types and coercions, defaults, the mkIf/mkMerge structure, the assertions, the hook text, the
# systemd units, and the TOML rendered from evaluated (not hand-written) values. It does not
# build anything or run NixOS's own modules (stage-1.nix, zfs.nix, systemd's unit generator):
# those are replaced by the declarations below, so a renamed NixOS option would go unnoticed.
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  inherit (lib) mkOption types;
  toTOML = import ./toml.nix;

  any = default: mkOption { type = types.anything; inherit default; };
  lines = mkOption {
    type = types.lines;
    default = "";
  };

  # The NixOS options module.nix and example.nix set, declared loosely.
  nixosStandIn = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      environment.etc = any { };
      environment.systemPackages = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      system.activationScripts = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      systemd.services = any { };
      networking.hostId = any null;
      boot.supportedFilesystems = any [ ];
      fileSystems = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule (
            { name, ... }:
            {
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
                options = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
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
        systemd.storePaths = mkOption {
          type = types.listOf types.unspecified;
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
    # What nixpkgs' zfs.nix puts in postResumeCommands (at normal priority) for the root pools;
    # the darlings hook must come after it.
    config.boot.initrd.postResumeCommands = "ZFS-IMPORT-STAND-IN";
  };

  fakeStorePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    formats.toml = _: {
      generate = name: _: fakeStorePath name;
    };
    darlings = {
      type = "derivation";
      name = "darlings";
      outPath = fakeStorePath "darlings";
    };
  };
  utils = {
    # Close enough to nixpkgs' for the paths used here.
    escapeSystemdPath =
      s: builtins.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (lib.removePrefix "/" s);
    fsNeededForBoot =
      fs:
      fs.neededForBoot
      || lib.elem fs.mountPoint [
        "/"
        "/nix"
        "/nix/store"
        "/var"
        "/var/log"
        "/var/lib"
        "/etc"
        "/usr"
      ];
  };

  eval =
    modules:
    lib.evalModules {
      modules = [ nixosStandIn ] ++ modules;
      specialArgs = { inherit pkgs utils; };
    };

  # What the check looks at, per case. Failed assertions first: where a case expects some, the
  # rest may not evaluate (that is what assertions are for), so it is reported only when none fail.
  report =
    modules:
    let
      c = (eval modules).config;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
    in
    {
      inherit failed;
    }
    // lib.optionalAttrs (failed == [ ]) {
      toml = toTOML (import ../render.nix c.darlings);
      inherit (c.boot.initrd)
        extraUtilsCommands
        extraFiles
        postResumeCommands
        postMountCommands
        ;
      initrdServices = c.boot.initrd.systemd.services;
      initrdStorePaths = c.boot.initrd.systemd.storePaths;
      initrdContents = c.boot.initrd.systemd.contents;
      services = c.systemd.services;
      etc = c.environment.etc;
      activation = c.system.activationScripts.darlings or null;
    };

  example = ../example.nix;
  scripted = {
    boot.initrd.systemd.enable = lib.mkForce false;
  };
  systemdInitrd = {
    boot.initrd.systemd.enable = true;
  };
  tmpfsRoot = {
    imports = [ ../module.nix ];
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
      package = pkgs.darlings;
      root.backend = "tmpfs";
      diff.onBoot = true;
      diff.reportDir = "/persist/var/log/darlings";
      persistence."/persist".directories = [ "/var/log" ];
    };
  };
  btrfsRoot = {
    imports = [ ../module.nix ];
    fileSystems."/" = {
      device = "/dev/disk/by-label/nixos";
      fsType = "btrfs";
      options = [ "subvol=root" ];
    };
    fileSystems."/persist" = {
      device = "/dev/disk/by-label/nixos";
      fsType = "btrfs";
      options = [ "subvol=persist" ];
      neededForBoot = true;
    };
    darlings = {
      enable = true;
      package = pkgs.darlings;
      onFailure = "halt";
      root = {
        backend = "btrfs";
        device = "/dev/disk/by-label/nixos";
        keep.days = 14;
      };
      persistence."/persist" = {
        directories = [
          {
            path = "/var/lib/private";
            mode = "0700";
            parentDirectory.mode = "0755";
          }
        ];
        files = [
          {
            file = "/etc/adjtime";
            user = 0;
          }
        ];
        users.alice.directories = [ "Documents" ];
      };
    };
  };

  case = modules: expect: report modules // { inherit expect; };
  noFailures = ".failed == []";
in
# Per case: the report, and `expect`, jq conditions over that report that tests/initrd-check
# requires to be true. (The check also compares the scripted hooks with the files by sed.)
{
  example-systemd = case [ example ] [
    noFailures
    ''.initrdServices["darlings-early"] | .requiredBy == ["sysroot.mount"] and (.after | index("zfs-import-rpool.service") and index("systemd-hibernate-resume.service") and index("local-fs-pre.target")) and (.before | index("sysroot.mount")) and (.serviceConfig.ExecStart | endswith("/bin/darlings --config /etc/darlings.toml boot --stage early"))''
    ''.initrdServices["darlings-late"] | .requiredBy == ["initrd.target"] and .unitConfig.RequiresMountsFor == ["/sysroot/persist"] and (.after | index("initrd-fs.target")) and (.serviceConfig.ExecStart | endswith("boot --stage late --root /sysroot"))''
    ''.initrdStorePaths == ["/nix/store/00000000000000000000000000000000-darlings/bin/darlings"] and (.initrdContents | has("/etc/darlings.toml"))''
    ''.postResumeCommands == "ZFS-IMPORT-STAND-IN" and .postMountCommands == "" and .extraUtilsCommands == "" and .extraFiles == {}''
    ''.etc["darlings.toml"].source != null and (.activation.deps == ["users", "groups"]) and (.activation.text | contains("apply --root /"))''
    ''.services == {}''
  ];
  example-scripted = case [ example scripted ] [
    noFailures
    ''.postResumeCommands | startswith("ZFS-IMPORT-STAND-IN\n")''
    ''.extraUtilsCommands | contains("copy_bin_and_libs /nix/store/00000000000000000000000000000000-darlings/bin/darlings")''
    ''.extraFiles["/etc/darlings.toml"].source != null and .initrdServices == {} and .initrdStorePaths == []''
  ];
  tmpfs-systemd = case [ tmpfsRoot systemdInitrd ] [
    noFailures
    ''.services["darlings-save-diff"] | .restartIfChanged == false and .unitConfig.RequiresMountsFor == ["/persist"] and (.serviceConfig.ExecStop | endswith("diff --save"))''
    ''.initrdServices["darlings-early"].after | index("zfs-import-rpool.service") | not''
  ];
  btrfs-scripted = case [ btrfsRoot scripted ] [
    noFailures
    ''.postResumeCommands | contains("boot --stage early")''
    ''.postMountCommands | contains("boot --stage late --root /mnt-root")''
  ];
  btrfs-systemd = case [ btrfsRoot systemdInitrd ] [
    noFailures
    ''.initrdServices["darlings-early"] | (.after | index("dev-disk-by\\x2dlabel-nixos.device")) and .wants == ["dev-disk-by\\x2dlabel-nixos.device"]''
    ''.services == {}''
  ];
  disabled = case [ example { darlings.enable = lib.mkForce false; } ] [
    noFailures
    ''.initrdServices == {} and .extraFiles == {} and .etc == {} and .activation == null and .postMountCommands == ""''
  ];

  # Each of these must fail with exactly the assertions named.
  bad-zfs = case [
    example
    {
      darlings.root.dataset = lib.mkForce "rpool/other";
      darlings.root.size = "1g";
      fileSystems."/persist".neededForBoot = lib.mkForce false;
    }
  ] [
    ''.failed | length == 3''
    ''.failed | any(contains("darlings.root.size has no meaning for backend \"zfs\""))''
    ''.failed | any(contains("darlings.root.dataset is \"rpool/other\" but fileSystems.\"/\" mounts \"rpool/local/root\""))''
    ''.failed | any(contains("declare fileSystems.\"/persist\" with neededForBoot = true"))''
  ];
  bad-entries = case [
    example
    {
      darlings.persistence."/persist".directories = [
        {
          directory = "/srv";
          path = "/srv";
        }
        { mode = "0700"; }
      ];
      darlings.persistence."/persist".users.alice.files = [
        {
          file = ".netrc";
          parentDirectory.mode = "0700";
        }
      ];
    }
  ] [
    ''.failed | length == 3''
    ''.failed | any(contains("exactly one of `directory` and `path` (it sets both)"))''
    ''.failed | any(contains("exactly one of `directory` and `path` (it sets neither)"))''
    ''.failed | any(contains("users.alice.files: entry .netrc sets parentDirectory"))''
  ];
  bad-btrfs = case [
    btrfsRoot
    {
      darlings.root.device = lib.mkForce null;
      fileSystems."/".fsType = lib.mkForce "ext4";
    }
  ] [
    ''.failed | length == 2''
    ''.failed | any(contains("darlings.root.device must name"))''
    ''.failed | any(contains("fileSystems.\"/\".fsType is \"ext4\""))''
  ];
}
