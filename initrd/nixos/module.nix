# NixOS module for darlings: renders the darlings.* options to /etc/darlings.toml and runs
# `darlings boot` in the initrd, in the scripted stage 1 and in the systemd initrd alike. Every
# decision lives in the darlings binary; this module only places the calls. See initrd/README.md.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    mkAfter
    types
    ;

  cfg = config.darlings;
  scripted = !config.boot.initrd.systemd.enable;

  settings = import ./render.nix cfg;
  configFile = (pkgs.formats.toml { }).generate "darlings.toml" settings;
  bin = "${cfg.package}/bin/darlings";

  # Where the config sits inside the initrd (both kinds) and on the live system.
  initrdConfig = "/etc/darlings.toml";

  # The scripted stage 1's hooks live in plain files that tests/vm sources with the same
  # substitutions (by sed), so the VM runs exactly the text rendered here.
  hook =
    file:
    builtins.replaceStrings [ "@darlings@" "@config@" ] [ "darlings" initrdConfig ] (
      builtins.readFile file
    );

  stores = lib.attrNames (lib.filterAttrs (_: s: s.enable) cfg.persistence);

  # ---- option types ----------------------------------------------------------------------

  ownerType = types.nullOr (types.either types.str types.ints.unsigned);
  permOptions = what: {
    user = mkOption {
      type = ownerType;
      default = null;
      example = "colord";
      description = "Owner (a name or a numeric id) darlings gives the ${what} it creates. Null: root (for entries under users.<name>: that user).";
    };
    group = mkOption {
      type = ownerType;
      default = null;
      example = "colord";
      description = "Group (a name or a numeric id) darlings gives the ${what} it creates. Null: root (for entries under users.<name>: the user's primary group).";
    };
    mode = mkOption {
      type = types.nullOr (types.strMatching "[0-7]{3,4}");
      default = null;
      example = "0750";
      description = "Mode, an octal string, of the ${what} darlings creates. It never changes an existing one.";
    };
  };

  # An entry is a path string or an attribute set, as in impermanence; `path` is darlings' own
  # spelling and is accepted in place of `directory` / `file`.
  entryType =
    key:
    types.coercedTo types.str (p: { ${key} = p; }) (
      types.submodule {
        options = {
          ${key} = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The absolute path (relative to the home under users.<name>).";
          };
          path = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The same as `${key}`: set one of the two.";
          };
          parentDirectory = mkOption {
            type = types.submodule { options = permOptions "missing parent directories"; };
            default = { };
            description = "Owner and mode of the parent directories darlings creates on the way (not under users.<name>, where they belong to the user, mode 0700).";
          };
        }
        // permOptions (if key == "directory" then "directory" else "file");
      }
    );

  entriesOption =
    key: example:
    mkOption {
      type = types.listOf (entryType key);
      default = [ ];
      inherit example;
      description = "${if key == "directory" then "Directories" else "Files"} to keep in the store and bind-mount into the root at every boot.";
    };

  userType = types.submodule {
    options = {
      home = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "The user's home directory. Null: read from the root's etc/passwd.";
      };
      directories = entriesOption "directory" [
        "Documents"
        {
          directory = ".ssh";
          mode = "0700";
        }
      ];
      files = entriesOption "file" [ ".bash_history" ];
    };
  };

  storeType = types.submodule {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to use this store.";
      };
      hideMounts = mkOption {
        type = types.bool;
        default = false;
        description = "Mark the bind mounts x-gvfs-hide, so file managers do not list them.";
      };
      nosuid = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Mount the binds nosuid. Null: darlings' default (true).";
      };
      nodev = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Mount the binds nodev. Null: darlings' default (true).";
      };
      directories = entriesOption "directory" [
        "/var/log"
        {
          directory = "/var/lib/colord";
          user = "colord";
          group = "colord";
          mode = "0750";
        }
      ];
      files = entriesOption "file" [ "/etc/machine-id" ];
      users = mkOption {
        type = types.attrsOf userType;
        default = { };
        description = "Per-user entries, relative to the user's home and owned by the user.";
      };
    };
  };

  nullOrStr =
    description:
    mkOption {
      type = types.nullOr types.str;
      default = null;
      inherit description;
    };

  # ---- assertions --------------------------------------------------------------------------

  # Root keys each backend understands; darlings refuses the others, better said at evaluation.
  backendKeys = {
    tmpfs = [ "size" ];
    btrfs = [
      "device"
      "subvolume"
      "blank"
      "oldRoots"
      "keep"
    ];
    zfs = [
      "dataset"
      "blank"
      "destroyNewerSnapshots"
      "keep"
    ];
  };
  rootKeySet =
    k:
    if k == "keep" then
      cfg.root.keep.count != null || cfg.root.keep.days != null
    else
      cfg.root.${k} != null;
  strayRootKeys = lib.filter (k: rootKeySet k && !lib.elem k backendKeys.${cfg.root.backend}) (
    lib.unique (lib.concatLists (lib.attrValues backendKeys))
  );

  entryProblems =
    where: key: underHome: e:
    let
      named = e.${key} != null;
      aliased = e.path != null;
      p = e.parentDirectory;
    in
    lib.optional (named == aliased) "${where}: an entry must set exactly one of `${key}` and `path` (it sets ${
      if named then "both" else "neither"
    })"
    ++ lib.optional (
      underHome && (p.user != null || p.group != null || p.mode != null)
    ) "${where}: entry ${toString (if named then e.${key} else e.path)} sets parentDirectory, which has no meaning under users.<name> (the directories up to the home belong to the user, mode 0700); remove it";

  storeProblems =
    name:
    let
      s = cfg.persistence.${name};
      at = "darlings.persistence.\"${name}\"";
      mounts = lib.filter (fs: fs.mountPoint == name) (lib.attrValues config.fileSystems);
    in
    lib.concatMap (entryProblems "${at}.directories" "directory" false) s.directories
    ++ lib.concatMap (entryProblems "${at}.files" "file" false) s.files
    ++ lib.concatLists (
      lib.mapAttrsToList (
        user: u:
        lib.concatMap (entryProblems "${at}.users.${user}.directories" "directory" true) u.directories
        ++ lib.concatMap (entryProblems "${at}.users.${user}.files" "file" true) u.files
      ) s.users
    )
    # darlings binds from the store in the initrd, so the initrd must mount it there.
    ++ lib.optional (
      mounts == [ ] || !(lib.any utils.fsNeededForBoot mounts)
    ) "${at}: the store must be a filesystem the initrd mounts: declare fileSystems.\"${name}\" with neededForBoot = true";

  rootFs = config.fileSystems."/" or null;
  rootProblems =
    map (
      k: "darlings.root.${k} has no meaning for backend \"${cfg.root.backend}\"; remove it"
    ) strayRootKeys
    ++ lib.optional (
      cfg.root.backend == "btrfs" && cfg.root.device == null
    ) "darlings.root.device must name the btrfs filesystem's block device, e.g. \"/dev/disk/by-label/nixos\""
    ++ lib.optional (
      cfg.root.backend == "zfs" && cfg.root.dataset == null
    ) "darlings.root.dataset must name the root dataset, e.g. \"rpool/local/root\""
    ++ lib.optional (rootFs == null) "darlings: fileSystems.\"/\" is not declared; darlings needs the root the initrd mounts"
    ++ lib.optional (
      rootFs != null && rootFs.fsType != cfg.root.backend
    ) "darlings.root.backend is \"${cfg.root.backend}\" but fileSystems.\"/\".fsType is \"${rootFs.fsType}\"; make them agree"
    ++ lib.optional (
      rootFs != null
      && cfg.root.backend == "zfs"
      && cfg.root.dataset != null
      && rootFs.device != cfg.root.dataset
    ) "darlings.root.dataset is \"${cfg.root.dataset}\" but fileSystems.\"/\" mounts \"${toString rootFs.device}\"; darlings would roll back a dataset that is not the root";

  problems = rootProblems ++ lib.concatMap storeProblems stores;

  # Unit ordering for the systemd initrd; guarded so that a missing dataset or device reaches
  # the assertions above instead of an evaluation error here.
  zfsImport = lib.optional (
    cfg.root.backend == "zfs" && cfg.root.dataset != null
  ) "zfs-import-${lib.head (lib.splitString "/" cfg.root.dataset)}.service";
  btrfsDevice = lib.optional (
    cfg.root.backend == "btrfs" && cfg.root.device != null
  ) "${utils.escapeSystemdPath cfg.root.device}.device";
in
{
  options.darlings = {
    enable = mkEnableOption "darlings, which returns the root to blank at every boot and bind-mounts the persisted state back";

    package = mkOption {
      type = types.package;
      description = "The darlings package; its bin/darlings goes into the initrd and the system.";
    };

    root = {
      backend = mkOption {
        type = types.enum [
          "tmpfs"
          "btrfs"
          "zfs"
        ];
        description = "How the root is made blank: a fresh tmpfs, a blank btrfs snapshot, or a ZFS dataset's blank snapshot.";
      };
      size = nullOrStr "tmpfs: the size= option, e.g. \"25%\" or \"2g\".";
      device = nullOrStr "btrfs: the filesystem's block device.";
      subvolume = nullOrStr "btrfs: the root subvolume in the top level (darlings' default: \"root\").";
      blank = nullOrStr "btrfs: the read-only blank snapshot beside the root (default \"root-blank\"); zfs: the snapshot name after the @ (default \"blank\").";
      oldRoots = nullOrStr "btrfs: the top-level directory that keeps old roots (default \"old-roots\").";
      dataset = nullOrStr "zfs: the root dataset, e.g. \"rpool/local/root\".";
      destroyNewerSnapshots = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "zfs: destroy snapshots newer than the blank in the rollback's transaction (true) or refuse (false, darlings' default).";
      };
      keep = {
        count = mkOption {
          type = types.nullOr types.ints.unsigned;
          default = null;
          description = "btrfs, zfs: old roots to keep. Both null: old roots are deleted.";
        };
        days = mkOption {
          type = types.nullOr types.ints.unsigned;
          default = null;
          description = "btrfs, zfs: keep old roots younger than this many days.";
        };
      };
    };

    diff = {
      onBoot = mkOption {
        type = types.bool;
        default = false;
        description = "Report the state about to be lost at every boot, into reportDir (tmpfs roots: at every shutdown, as the state is gone after power-off).";
      };
      reportDir = nullOrStr "Where reports go, seen from the root; must be inside a store, e.g. \"/persist/var/log/darlings\".";
      ignore = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "/var/cache/**" ];
        description = "Globs of paths never reported as lost.";
      };
      maxEntries = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Bound on the entries the boot-time diff reads.";
      };
      timeBudget = nullOrStr "Bound on the boot-time diff's duration, e.g. \"10s\".";
      keepReports = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Saved lost-state reports to keep (one per boot; darlings' default: 30).";
      };
    };

    onFailure = mkOption {
      type = types.enum [
        "boot-old-root"
        "halt"
      ];
      default = "boot-old-root";
      description = ''
        What a failed phase does to the boot. "boot-old-root": nothing destructive happens, the
        untouched root boots, the error goes to the kernel log and `darlings status` shows it.
        "halt": the boot stops (stage 1's fail prompt, or the systemd initrd's emergency target).
        The kernel parameter darlings.on-failure= overrides it.
      '';
    };

    persistence = mkOption {
      type = types.attrsOf storeType;
      default = { };
      description = "Stores, by mount point, and what each keeps; shaped like impermanence's environment.persistence.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = map (message: {
        assertion = false;
        inherit message;
      }) problems;

      environment.etc."darlings.toml".source = configFile;
      environment.systemPackages = [ cfg.package ];

      # Entries owned by named users are deferred in the initrd (a blank root has no etc/passwd);
      # once the accounts exist, this binds them. A second apply changes nothing, so running on
      # every activation (switch included) is safe and picks up entries added to the config.
      system.activationScripts.darlings = lib.stringAfter [ "users" "groups" ] ''
        if ! ${bin} --config ${configFile} apply --root /; then
          echo "darlings: apply --root / failed: the entries it names above are not bound; fix what it says and run it again" >&2
        fi
      '';
    }

    # A tmpfs root's state is gone after power-off: write its report on the way down instead.
    (mkIf (cfg.root.backend == "tmpfs" && cfg.diff.onBoot) {
      systemd.services.darlings-save-diff = {
        description = "darlings: report the state this shutdown loses";
        wantedBy = [ "multi-user.target" ];
        after = [ "local-fs.target" ];
        before = [ "shutdown.target" ];
        conflicts = [ "shutdown.target" ];
        # Stopped before the stores unmount, since it started after they were mounted.
        unitConfig = {
          DefaultDependencies = "no";
          RequiresMountsFor = stores;
        };
        # A switch must not restart it: stopping it is what writes a report.
        restartIfChanged = false;
        stopIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStop = "${bin} --config ${configFile} diff --save";
          TimeoutStopSec = "2min";
        };
      };
    })

    # ---- scripted stage 1 (stage-1-init.sh) ----
    (mkIf scripted {
      boot.initrd.extraUtilsCommands = ''
        copy_bin_and_libs ${bin}
      '';
      boot.initrd.extraUtilsCommandsTest = ''
        $out/bin/darlings --version >/dev/null
      '';
      boot.initrd.extraFiles.${initrdConfig}.source = configFile;

      # postResumeCommands, not postDeviceCommands: stage-1-init.sh runs postDeviceCommands, then
      # attempts the resume from hibernation, then postResumeCommands, then mounts /mnt-root.
      # Rolling back in postDeviceCommands would change the root under a hibernated system about
      # to be resumed and corrupt it (impermanence#250). The ZFS module imports the root pools in
      # postResumeCommands too (since NixOS 24.11; older write-ups say postDeviceCommands), at
      # normal priority, so mkAfter puts this after the import.
      boot.initrd.postResumeCommands = mkAfter (hook ./early-hook.sh);
      # After every filesystem is mounted under /mnt-root, stores included.
      boot.initrd.postMountCommands = mkAfter (hook ./late-hook.sh);
    })

    # ---- systemd initrd ----
    (mkIf (!scripted) {
      boot.initrd.systemd.storePaths = [ bin ];
      boot.initrd.systemd.contents.${initrdConfig}.source = configFile;

      boot.initrd.systemd.services.darlings-early = {
        description = "darlings: roll the root back to blank";
        # sysroot.mount requires it: under "halt" a failure leaves the root unmounted and the
        # failed mount sends initrd-root-fs.target to the emergency target.
        requiredBy = [ "sysroot.mount" ];
        wantedBy = [ "initrd-root-fs.target" ];
        # The device (or the imported pool) is there, and a hibernated system has resumed: the
        # resume unit (systemd-hibernate-resume.service, or the @<device> template before
        # systemd 255) is ordered before local-fs-pre.target.
        after = [
          "initrd-root-device.target"
          "systemd-hibernate-resume.service"
          "local-fs-pre.target"
        ]
        ++ zfsImport
        ++ btrfsDevice;
        # Wanted, not required: a missing device is for darlings' preflight to report under the
        # configured policy, not a dependency failure that always stops the boot.
        wants = btrfsDevice;
        before = [
          "sysroot.mount"
          "initrd-root-fs.target"
          "shutdown.target"
        ];
        conflicts = [ "shutdown.target" ];
        unitConfig = {
          DefaultDependencies = "no";
          OnFailure = "emergency.target";
          OnFailureJobMode = "replace-irreversibly";
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${bin} --config ${initrdConfig} boot --stage early";
        };
      };

      boot.initrd.systemd.services.darlings-late = {
        description = "darlings: bind the persisted state into the new root";
        # initrd.target requires it: under "halt" a failure keeps the initrd from switching root.
        requiredBy = [ "initrd.target" ];
        after = [
          "initrd-fs.target"
          "darlings-early.service"
        ];
        # Before NixOS activates the new root in the initrd, so it sees the persisted files.
        before = [
          "initrd.target"
          "initrd-nixos-activation.service"
          "initrd-cleanup.service"
          "initrd-switch-root.target"
          "shutdown.target"
        ];
        conflicts = [ "shutdown.target" ];
        unitConfig = {
          DefaultDependencies = "no";
          RequiresMountsFor = map (s: "/sysroot${s}") stores;
          OnFailure = "emergency.target";
          OnFailureJobMode = "replace-irreversibly";
        };
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${bin} --config ${initrdConfig} boot --stage late --root /sysroot";
        };
      };
    })
  ]);
}
