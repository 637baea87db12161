# The persistence option types shared by the NixOS module (darlings.persistence, module.nix) and
# the Home Manager module (home.persistence, home-manager.nix), shaped like
# nix-community/impermanence v2's so that renaming environment.persistence to darlings.persistence
# is the whole migration. Only types and defaults live here; rendering is render.nix's.
{ lib }:
let
  inherit (lib) mkOption types;

  # impermanence joins paths component-wise, so "/var/log/" and "/var//log" mean "/var/log";
  # darlings refuses both, so they are normalised here, at evaluation.
  normalise =
    p:
    let
      parts = lib.filter (c: c != "") (lib.splitString "/" p);
      lead = lib.optionalString (lib.hasPrefix "/" p) "/";
    in
    if parts == [ ] then lead else lead + lib.concatStringsSep "/" parts;
  # Entries under a home are relative to it; impermanence accepts "/Documents" there too.
  relative = p: lib.removePrefix "/" (normalise p);

  # Octal ("0750", "750", "0o750") or chmod-style symbolic ("u=rwx,g=rx,o="), as darlings reads
  # them (toml-schema.md); anything else fails here rather than in the initrd.
  modeType =
    types.strMatching "(0o)?[0-7]{1,4}|[ugoa]*([-+=][rwxXst]*)+(,[ugoa]*([-+=][rwxXst]*)+)*"
    // {
      description = "file mode, octal (\"0750\") or symbolic (\"u=rwx,g=rx,o=\")";
    };
  ownerType = types.nullOr (types.either types.str types.ints.unsigned);

  perm = what: default: {
    user = mkOption {
      type = ownerType;
      default = null;
      example = "colord";
      description = "Owner (a name or a numeric id) darlings gives the ${what} it creates. Null: ${default.user}.";
    };
    group = mkOption {
      type = ownerType;
      default = null;
      example = "colord";
      description = "Group (a name or a numeric id) darlings gives the ${what} it creates. Null: ${default.group}.";
    };
    mode = mkOption {
      type = types.nullOr modeType;
      default = null;
      example = "u=rwx,g=rx,o=";
      description = "Mode of the ${what} darlings creates, octal or symbolic. Null: ${default.mode}. It never changes an existing one.";
    };
  };
  systemDefaults = kind: {
    user = "root";
    group = "root";
    mode = if kind == "directory" then "0755" else "0644";
  };
  homeDefaults = kind: {
    user = "the user";
    group = "the user's primary group";
    mode = if kind == "directory" then "0700" else "0600";
  };

  # impermanence options darlings has no use for. Declared so that setting one fails with what
  # to do instead of "does not exist"; each submodule gathers these into its `assertions`.
  removed =
    at: name: fix:
    { options, ... }:
    {
      options.${name} = mkOption {
        type = types.unspecified;
        visible = false;
        description = "Removed: ${fix}";
      };
      config.assertions = [
        {
          assertion = !options.${name}.isDefined;
          message = "${at}.${name} (set in ${lib.showFiles options.${name}.files}) is an impermanence option that darlings does not have: ${fix}";
        }
      ];
    };
  assertionsOption = mkOption {
    type = types.listOf types.unspecified;
    internal = true;
    default = [ ];
  };

  # One directory or file entry. `store` is the enclosing store's config (for the defaults of
  # persistentStoragePath, hideMount, allowTrash); `at` names it in messages.
  entryModule =
    {
      kind,
      store,
      at,
      underHome,
    }:
    { config, ... }:
    let
      key = kind;
      norm = p: if p == null then null else if underHome then relative p else normalise p;
      defaults = if underHome then homeDefaults kind else systemDefaults kind;
      shown = toString (if config.${key} != null then config.${key} else config.path);
    in
    {
      imports = lib.optional (kind == "directory") (
        removed "${at}.directories entry ${shown}" "method" "directories are always bind-mounted; remove `method` (a file entry takes method = \"auto\" or \"symlink\")"
      );
      options = {
        ${key} = mkOption {
          type = types.nullOr types.str;
          default = null;
          apply = norm;
          description = "The ${kind}'s path (relative to the home under users.<name> and in home.persistence). Trailing slashes are dropped.";
        };
        path = mkOption {
          type = types.nullOr types.str;
          default = null;
          apply = norm;
          description = "darlings' own spelling of `${key}`: set one of the two.";
        };
        persistentStoragePath = mkOption {
          type = types.str;
          default = store.persistentStoragePath;
          defaultText = lib.literalMD "the store's `persistentStoragePath`";
          apply = normalise;
          description = "The store this entry is kept in. Entries of every attribute that resolve to the same path form one store.";
        };
        enableDebugging = mkOption {
          type = types.bool;
          default = false;
          internal = true;
          description = "Accepted for impermanence's configurations; darlings logs to the kernel log either way.";
        };
        # Set by presets.nix on the entries a preset adds, so the rendered TOML says where each
        # came from and render.nix can let the user's own entries win over them.
        preset = mkOption {
          type = types.nullOr types.str;
          default = null;
          internal = true;
          description = "The preset this entry came from (presets/presets.toml).";
        };
        level = mkOption {
          type = types.nullOr (
            types.enum [
              "transient"
              "normal"
              "important"
              "secret"
            ]
          );
          default = null;
          internal = true;
          description = "The persistence level the preset entry was placed at.";
        };
        assertions = assertionsOption;
      }
      // perm kind defaults
      // lib.optionalAttrs (kind == "directory") {
        hideMount = mkOption {
          type = types.bool;
          default = store.hideMounts;
          defaultText = lib.literalMD "the store's `hideMounts`";
          description = "Mark this bind mount x-gvfs-hide, so file managers do not list it.";
        };
        allowTrash = mkOption {
          type = types.bool;
          default = store.allowTrash;
          defaultText = lib.literalMD "the store's `allowTrash`";
          description = "Mark this bind mount x-gvfs-trash, so GIO programs may move files in it to the trash.";
        };
      }
      // lib.optionalAttrs (kind == "file") {
        method = mkOption {
          type = types.enum [
            "auto"
            "symlink"
          ];
          default = "auto";
          description = ''
            "auto": bind-mount the file from the store. "symlink": the root gets a symlink into
            the store instead, for files that programs replace by renaming a new one over them
            (which fails across a bind mount; impermanence#175, #197).
          '';
        };
      }
      // {
        parentDirectory = mkOption {
          type = types.submodule {
            options = perm "missing parent directories" (systemDefaults "directory");
          };
          default = { };
          description =
            if underHome then
              "Accepted for impermanence's configurations and ignored (with a warning): the directories from the home down belong to the user, mode 0700."
            else
              "Owner and mode of the parent directories darlings creates on the way.";
        };
      };
    };

  entriesOption =
    args:
    mkOption {
      type = types.listOf (
        types.coercedTo types.str (p: { ${args.kind} = p; }) (types.submodule (entryModule args))
      );
      default = [ ];
      example =
        if args.kind == "directory" then
          [
            "/var/log"
            {
              directory = "/var/lib/colord";
              user = "colord";
              group = "colord";
              mode = "u=rwx,g=rx,o=";
            }
          ]
        else
          [
            "/etc/machine-id"
            {
              file = "/etc/nix/id_rsa";
              parentDirectory.mode = "u=rwx,g=,o=";
            }
          ];
      description = "${
        if args.kind == "directory" then "Directories" else "Files"
      } to keep in the store and bind into the root at every boot.";
    };

  # The options every store has, in darlings.persistence and in home.persistence.
  storeOptions =
    {
      name,
      config,
      at,
      underHome,
    }:
    {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to use this store.";
      };
      persistentStoragePath = mkOption {
        type = types.str;
        default = name;
        defaultText = lib.literalMD "the attribute name";
        apply = normalise;
        description = "Where the store is, seen from the booted system: any directory on a filesystem the initrd mounts other than the root's (a mount point such as /persist, or a directory such as /nix/persist/system on a neededForBoot /nix).";
      };
      hideMounts = mkOption {
        type = types.bool;
        default = false;
        description = "Mark the bind mounts x-gvfs-hide, so file managers do not list them.";
      };
      allowTrash = mkOption {
        type = types.bool;
        default = false;
        description = "Mark the bind mounts x-gvfs-trash, so GIO programs may move files in them to the trash.";
      };
      enableWarnings = mkOption {
        type = types.bool;
        default = true;
        description = "Warn about configurations that work but probably do not do what was meant (e.g. /var/lib/nixos not persisted).";
      };
      enableDebugging = mkOption {
        type = types.bool;
        default = false;
        internal = true;
        description = "Accepted for impermanence's configurations; darlings logs to the kernel log either way.";
      };
      directories = entriesOption {
        kind = "directory";
        store = config;
        inherit at underHome;
      };
      files = entriesOption {
        kind = "file";
        store = config;
        inherit at underHome;
      };
      assertions = assertionsOption;
    };

  removedStoreOptions = at: [
    (removed at "allowOther" "darlings binds with kernel bind mounts, not FUSE, so every user reaches the files as their own permissions allow; remove allowOther")
    (removed at "removePrefixDirectory" "darlings keeps each path at its own place in the store (<store>/<path>); remove removePrefixDirectory and move those files in the store out of their prefix directory")
    (removed at "defaultDirectoryMethod" "darlings always bind-mounts directories; remove defaultDirectoryMethod")
  ];
in
{
  inherit
    normalise
    relative
    modeType
    ownerType
    storeOptions
    removedStoreOptions
    entriesOption
    assertionsOption
    ;
}
