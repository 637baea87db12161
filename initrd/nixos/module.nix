# NixOS module for darlings: renders the darlings.* options to /etc/darlings.toml and runs
# `darlings boot` in the initrd, in the scripted stage 1 and in the systemd initrd alike. Every
# decision lives in the darlings binary; this module only places the calls and catches at
# evaluation what darlings would refuse at boot. darlings.persistence takes impermanence v2's
# environment.persistence as it is (see README.md, "Migrating from impermanence").
{
  config,
  lib,
  pkgs,
  utils,
  options,
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

  nixos = config;
  cfg = config.darlings;
  o = import ./options.nix { inherit lib; };
  rendered = import ./render.nix { inherit lib; } cfg;
  scripted = !config.boot.initrd.systemd.enable;
  bin = "${cfg.package}/bin/darlings";

  # Where the config sits inside the initrd (both kinds) and on the live system.
  initrdConfig = "/etc/darlings.toml";

  # What nixpkgs' TOML writer makes of the settings, then (where the build machine can run the
  # package) checked by darlings itself at build time: a config darlings would refuse at boot
  # fails the build instead of booting with nothing bound.
  rawConfig = (pkgs.formats.toml { }).generate "darlings.toml" rendered.settings;
  configFile =
    if cfg.checkConfig then
      pkgs.runCommand "darlings.toml"
        {
          nativeBuildInputs = [ cfg.package ];
          preferLocalBuild = true;
          passthru.unchecked = rawConfig;
        }
        ''
          darlings --config ${rawConfig} check --config-only
          cp ${rawConfig} "$out"
        ''
    else
      rawConfig;

  # The scripted stage 1's hooks live in plain files that tests/vm sources with the same
  # substitutions (by sed), so the VM runs exactly the text rendered here.
  hook =
    file:
    builtins.replaceStrings [ "@darlings@" "@config@" ] [ "darlings" initrdConfig ] (
      builtins.readFile file
    );

  stores = rendered.storePaths;

  # ---- option types ----------------------------------------------------------------------

  # users.<name> of a store: home, uid and primary gid come from users.users.<name> when NixOS
  # declares the user, so darlings can bind the entries in the initrd instead of deferring them
  # until the root's passwd exists.
  userModule =
    store: storeAt:
    { name, ... }:
    let
      declared = nixos.users.users.${name} or null;
      group = if declared == null then "" else declared.group;
    in
    {
      options = {
        home = mkOption {
          type = types.nullOr types.str;
          default = if declared == null then null else declared.home;
          defaultText = lib.literalMD "`users.users.<name>.home` when the user is declared, else null";
          apply = p: if p == null then null else o.normalise p;
          description = "The user's home directory. Null: read from the root's etc/passwd at boot (the entries wait until the accounts exist).";
        };
        uid = mkOption {
          type = types.nullOr types.ints.unsigned;
          default = if declared == null then null else declared.uid;
          defaultText = lib.literalMD "`users.users.<name>.uid`";
          description = "The user's numeric id, when fixed. With it and `home`, nothing has to be read from the root's passwd.";
        };
        gid = mkOption {
          type = types.nullOr types.ints.unsigned;
          default = nixos.users.groups.${group}.gid or null;
          defaultText = lib.literalMD "the gid of `users.users.<name>.group`";
          description = "The numeric id of the user's primary group, when fixed.";
        };
        group = mkOption {
          type = types.str;
          default = group;
          internal = true;
          description = "The user's primary group (`users.users.<name>.group`), for a home persisted as a whole.";
        };
        directories = o.entriesOption {
          kind = "directory";
          inherit store;
          at = "${storeAt}.users.${name}";
          underHome = true;
        };
        files = o.entriesOption {
          kind = "file";
          inherit store;
          at = "${storeAt}.users.${name}";
          underHome = true;
        };
        assertions = o.assertionsOption;
      };
    };

  storeModule =
    { name, config, ... }:
    let
      at = "darlings.persistence.\"${name}\"";
    in
    {
      imports = o.removedStoreOptions at;
      options =
        o.storeOptions {
          inherit name config at;
          underHome = false;
        }
        // {
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
          users = mkOption {
            type = types.attrsOf (types.submodule (userModule config at));
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

  # ---- Home Manager ----------------------------------------------------------------------

  # home.persistence."<store>" of every Home Manager user, forwarded as
  # darlings.persistence."<store>".users.<user>. Each entry carries its resolved store path and
  # flags, so the Home Manager store's own settings hold whatever the NixOS attribute says.
  hmUsers = if options ? home-manager.users then config.home-manager.users else { };
  hmEntryPath = key: e: if e.${key} != null then e.${key} else e.path;
  hmDir = e: {
    directory = hmEntryPath "directory" e;
    inherit (e)
      persistentStoragePath
      user
      group
      mode
      hideMount
      allowTrash
      ;
  };
  hmFile = e: {
    file = hmEntryPath "file" e;
    inherit (e)
      persistentStoragePath
      user
      group
      mode
      method
      parentDirectory
      ;
  };
  forwarded = lib.concatLists (
    lib.mapAttrsToList (
      user: hm:
      lib.mapAttrsToList (store: s: {
        ${store}.users.${user} = {
          directories = map hmDir s.directories;
          files = map hmFile s.files;
        };
      }) (lib.filterAttrs (_: s: s.enable) (hm.home.persistence or { }))
    ) hmUsers
  );

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

  # The filesystem a path lives on: the longest fileSystems mount point that contains it.
  fileSystems = map (fs: fs // { mountPoint = o.normalise fs.mountPoint; }) (
    lib.attrValues config.fileSystems
  );
  contains = mp: p: mp == "/" || p == mp || lib.hasPrefix "${mp}/" p;
  fsOf =
    p:
    lib.foldl' (
      best: fs:
      if
        contains fs.mountPoint p
        && (best == null || lib.stringLength fs.mountPoint > lib.stringLength best.mountPoint)
      then
        fs
      else
        best
    ) null fileSystems;

  # darlings binds from the store in the initrd: the store must be on a filesystem the initrd
  # mounts, and not on the root's, which darlings erases. A directory on such a filesystem is
  # enough (/nix/persist/system on a neededForBoot /nix); it need not be a mount point.
  storeProblem =
    store:
    let
      fs = fsOf store;
    in
    if fs == null || fs.mountPoint == "/" then
      "darlings: store ${store} is on the root filesystem, which darlings erases at every boot; put it on another filesystem and declare that one in fileSystems with neededForBoot = true (e.g. fileSystems.\"/persist\")"
    else if !utils.fsNeededForBoot fs then
      "darlings: store ${store} is on fileSystems.\"${fs.mountPoint}\", which the initrd does not mount, so there is nothing to bind from at boot; set fileSystems.\"${fs.mountPoint}\".neededForBoot = true"
    else
      null;

  # A bind into a filesystem that stage 2 mounts later would be hidden under that mount.
  targetProblem =
    e:
    let
      fs = fsOf e.target;
    in
    if e.target == null || fs == null || fs.mountPoint == "/" || utils.fsNeededForBoot fs then
      null
    else
      "darlings: ${e.kind} ${e.target} (store ${e.store}) is on fileSystems.\"${fs.mountPoint}\", which is mounted only after darlings binds, hiding the bind; set fileSystems.\"${fs.mountPoint}\".neededForBoot = true";

  # Assertions the submodules gathered (the impermanence options darlings does not have).
  submoduleAssertions = lib.concatLists (
    lib.mapAttrsToList (
      _: s:
      s.assertions
      ++ lib.concatMap (e: e.assertions) (s.directories ++ s.files)
      ++ lib.concatLists (
        lib.mapAttrsToList (
          _: u: u.assertions ++ lib.concatMap (e: e.assertions) (u.directories ++ u.files)
        ) s.users
      )
    ) cfg.persistence
  );

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

  problems =
    rootProblems
    ++ rendered.problems
    ++ lib.filter (p: p != null) (map storeProblem stores ++ map targetProblem rendered.entries);

  # ---- warnings ----------------------------------------------------------------------------

  warn = lib.any (s: s.enable && s.enableWarnings) (lib.attrValues cfg.persistence);
  # Users and groups without fixed ids get theirs from /var/lib/nixos, which the erased root
  # loses: they would be renumbered at the next boot and own someone else's persisted files.
  varLibNixos = [
    "/var"
    "/var/lib"
    "/var/lib/nixos"
  ];
  varLibNixosKept =
    lib.any (e: e.kind == "directory" && lib.elem e.target varLibNixos) rendered.entries
    || lib.any (fs: lib.elem fs.mountPoint varLibNixos) fileSystems;
  usersWithoutUid = lib.attrNames (lib.filterAttrs (_: u: u.uid == null) config.users.users);
  groupsWithoutGid = lib.attrNames (lib.filterAttrs (_: g: g.gid == null) config.users.groups);
  warnings =
    lib.optional (!varLibNixosKept && (usersWithoutUid != [ ] || groupsWithoutGid != [ ])) (
      "darlings: /var/lib/nixos is not persisted, so the users and groups without a fixed id get new ids at every boot and may no longer own their persisted files; add \"/var/lib/nixos\" to a store's directories, or give them ids"
      + lib.optionalString (usersWithoutUid != [ ]) " (users without uid: ${lib.concatStringsSep ", " usersWithoutUid})"
      + lib.optionalString (groupsWithoutGid != [ ]) " (groups without gid: ${lib.concatStringsSep ", " groupsWithoutGid})"
    )
    ++ map (
      e: "darlings: ${e.store} users.${e.user} file ${e.path} sets parentDirectory, which darlings ignores under a home (the directories from the home down belong to the user, mode 0700); remove it"
    ) rendered.ignoredParents;

  # /etc/machine-id bound from the store: systemd-machine-id-commit.service would try to commit
  # the id over the bind at every boot and fail. Run it only on the first boot, when darlings
  # has seeded "uninitialized" and the id is new, and never in the initrd (impermanence#229,
  # impermanence#242).
  machineIdPersisted = lib.any (e: e.target == "/etc/machine-id") rendered.entries;

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
  # Persistence levels and the presets of presets/presets.toml: they add to darlings.persistence.
  imports = [ ./presets.nix ];

  options.darlings = {
    enable = mkEnableOption "darlings, which returns the root to blank at every boot and bind-mounts the persisted state back";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../../package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage <darlings>/package.nix { } (the flake's module: its packages.default)";
      description = "The darlings package; its bin/darlings goes into the initrd and the system.";
    };

    checkConfig = mkOption {
      type = types.bool;
      default = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
      defaultText = lib.literalExpression "pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform";
      description = "Check /etc/darlings.toml with `darlings check --config-only` when it is built, so that a config darlings would refuse at boot fails the build.";
    };

    settings = mkOption {
      type = types.attrsOf types.unspecified;
      internal = true;
      readOnly = true;
      description = "The settings /etc/darlings.toml is written from (for tests and debugging).";
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

    report = {
      prometheus = nullOrStr "node_exporter's textfile collector file darlings rewrites after each boot and each `diff --save` (the boot's outcome, phase times, lost-state summary), seen from the root, e.g. \"/var/lib/prometheus-node-exporter-text-files/darlings.prom\" (services.prometheus.exporters.node with the textfile collector's directory).";
      journald = mkOption {
        type = types.bool;
        default = true;
        description = "Send the boot's outcome and the lost-state summary to journald as structured entries (MESSAGE_ID and DARLINGS_* fields, README's Fleet reports), when its socket exists.";
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
      type = types.attrsOf (types.submodule storeModule);
      default = { };
      example = lib.literalExpression ''
        {
          "/persist" = {
            hideMounts = true;
            directories = [ "/var/log" "/var/lib/nixos" { directory = "/var/lib/colord"; user = "colord"; group = "colord"; mode = "u=rwx,g=rx,o="; } ];
            files = [ "/etc/machine-id" ];
            users.alice.directories = [ "Documents" { directory = ".ssh"; mode = "0700"; } ];
          };
        }
      '';
      description = "Stores and what each keeps, by name (the store's path unless persistentStoragePath says otherwise); impermanence's environment.persistence, renamed.";
    };
  };

  config = mkMerge [
    # Home Manager's home.persistence, in every Home Manager user, whether or not darlings is
    # enabled (an option must exist where a shared configuration sets it).
    (lib.optionalAttrs (options ? home-manager.sharedModules) {
      home-manager.sharedModules = [
        ./home-manager.nix
        { home.darlings.nixosModuleImported = true; }
      ];
    })
    { darlings.persistence = mkMerge forwarded; }
    { darlings.settings = rendered.settings; }

    (mkIf cfg.enable (mkMerge [
      {
        assertions =
          map (message: {
            assertion = false;
            inherit message;
          }) problems
          ++ submoduleAssertions;
        warnings = lib.optionals warn warnings;

        environment.etc."darlings.toml".source = configFile;
        environment.systemPackages = [ cfg.package ];

        # Entries owned by named users are deferred in the initrd (a blank root has no
        # etc/passwd); once the accounts exist, this binds them. A second apply changes nothing,
        # so running on every activation (switch included) is safe and picks up entries added
        # to the config.
        system.activationScripts.darlings = lib.stringAfter [ "users" "groups" ] ''
          if ! ${bin} --config ${configFile} apply --root /; then
            echo "darlings: apply --root / failed: the entries it names above are not bound; fix what it says and run it again" >&2
          fi
        '';
      }

      (mkIf machineIdPersisted {
        boot.initrd.systemd.suppressedUnits = [ "systemd-machine-id-commit.service" ];
        systemd.services.systemd-machine-id-commit.unitConfig.ConditionFirstBoot = true;
      })

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

        # postResumeCommands, not postDeviceCommands: stage-1-init.sh runs postDeviceCommands,
        # then attempts the resume from hibernation, then postResumeCommands, then mounts
        # /mnt-root. Rolling back in postDeviceCommands would change the root under a hibernated
        # system about to be resumed and corrupt it (impermanence#250). The ZFS module imports
        # the root pools in postDeviceCommands up to NixOS 24.05 and in postResumeCommands (at
        # normal priority) since 24.11; mkAfter puts this after the import in both.
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
          # The device (or the imported pool) is there, and a hibernated system has resumed:
          # the resume unit (systemd-hibernate-resume.service, or the @<device> template before
          # systemd 255) is ordered before local-fs-pre.target.
          after = [
            "initrd-root-device.target"
            "systemd-hibernate-resume.service"
            "local-fs-pre.target"
          ]
          ++ zfsImport
          ++ btrfsDevice;
          # Wanted, not required: a missing device is for darlings' preflight to report under
          # the configured policy, not a dependency failure that always stops the boot.
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
          # initrd.target requires it: under "halt" a failure keeps the initrd from switching
          # root.
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
            # Every filesystem up to each store (for /nix/persist/system: /sysroot/nix).
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
    ]))
  ];
}
