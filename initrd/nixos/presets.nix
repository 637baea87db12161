# Persistence levels and presets for the NixOS module: reads presets/presets.toml (the one table
# of what each service keeps, shared with the darlings binary), declares each preset's
# `<module>.persistence` option and adds the entries of the active presets to
# darlings.persistence, each under the store its level maps to (darlings.automaticPersistence).
# The shape is rehno-lindeque/nixos-impermanence's, renamed; render.nix drops the preset entries
# a user's own entries already keep.
{
  config,
  lib,
  options,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.darlings;
  o = import ./options.nix { inherit lib; };
  data = (lib.importTOML ../../presets/presets.toml).presets;
  names = lib.attrNames data;

  # Lowest to highest; a level without a store inherits from the one named here.
  levels = [
    "transient"
    "normal"
    "important"
    "secret"
  ];
  inheritsFrom = {
    transient = null;
    normal = "transient";
    important = "normal";
    secret = "normal";
  };
  given =
    l:
    let
      v = cfg.automaticPersistence.${l} or null;
    in
    if v == null || v.path == null then null else v.path;
  storeOf = lib.fix (
    self:
    lib.genAttrs levels (
      l:
      if given l != null then
        given l
      else if inheritsFrom.${l} == null then
        null
      else
        self.${inheritsFrom.${l}}
    )
  );

  optionPath = p: lib.splitString "." p.nixos.option;
  quote = lib.concatMapStringsSep "." (
    c: if builtins.match "[A-Za-z_][A-Za-z0-9_'-]*" c != null then c else "\"${c}\""
  );

  # The data's entries in impermanence's shape: { normal.directories = [ ... ]; ... }, with
  # the keys darlings.persistence entries take (`why` goes to the option's description).
  entryOf =
    e:
    let
      kind = if e ? directory then "directory" else "file";
    in
    {
      ${kind} = e.${kind};
    }
    // lib.filterAttrs (k: _: lib.elem k [ "user" "group" "mode" "method" ]) e;
  defaultOf =
    p:
    lib.mapAttrs (
      _: es:
      let
        of = kind: map entryOf (lib.filter (e: e ? ${kind}) es);
      in
      {
        directories = of "directory";
        files = of "file";
      }
    ) (lib.groupBy (e: e.level) p.entries);
  describe =
    p:
    "${p.about}. Each level's entries go to the store `darlings.automaticPersistence.<level>.path` names (a level without one inherits; entries at a level without a store are dropped). Setting this replaces the default; `{ }` keeps nothing.\n\n"
    + lib.concatMapStrings (
      e: "- `${e.directory or e.file}` (${e.level}): ${e.why}\n"
    ) p.entries;

  entriesType = types.listOf (types.either types.str (types.attrsOf types.anything));
  levelType = types.submodule {
    options = {
      directories = mkOption {
        type = entriesType;
        default = [ ];
        description = "Directories kept at this level: paths, or sets as darlings.persistence takes them (`directory`, `user`, `group`, `mode`).";
      };
      files = mkOption {
        type = entriesType;
        default = [ ];
        description = "Files kept at this level: paths, or sets as darlings.persistence takes them (`file`, `user`, `group`, `mode`, `method`).";
      };
    };
  };

  withOption = lib.filterAttrs (_: p: p ? nixos.option) data;
  optionValue =
    name: p:
    if p ? nixos.option then lib.attrByPath (optionPath p) { } config else defaultOf p;

  # Presets whose `when` option is true (a missing option counts as false: the NixOS in use may
  # not have that module), "always", or listed in darlings.presets.
  when = p: p.nixos.when or null;
  active =
    name: p:
    lib.elem name cfg.presets
    || when p == "always"
    || (when p != null && lib.attrByPath (lib.splitString "." (when p)) false config == true);
  activePresets = lib.filterAttrs active data;

  # One preset's entries, level by level, as darlings.persistence definitions: each entry
  # carries its origin, and impermanence's method = "reconcile" (the seed's file method) becomes
  # darlings' default bind, with a warning.
  at = name: p: if p ? nixos.option then quote (optionPath p) else "preset ${name}";
  mark =
    name: level: kind: e:
    let
      set = if lib.isString e then { ${kind} = e; } else e;
      reconcile = set.method or null == "reconcile";
    in
    removeAttrs set (lib.optional reconcile "method")
    // {
      preset = name;
      inherit level;
    };
  reconciled =
    name: p:
    lib.concatLists (
      lib.mapAttrsToList (
        level: v:
        map (e: {
          inherit level;
          path = toString (e.file or e.path or "(without a path)");
        }) (lib.filter (e: lib.isAttrs e && (e.method or null) == "reconcile") v.files)
      ) (optionValue name p)
    );
  placed =
    name: p:
    lib.mapAttrsToList (level: v: {
      ${storeOf.${level}} = {
        directories = map (mark name level "directory") v.directories;
        files = map (mark name level "file") v.files;
      };
    }) (lib.filterAttrs (level: _: lib.elem level levels && storeOf.${level} != null) (optionValue name p));

  unknownLevels = lib.filter (l: !lib.elem l levels) (lib.attrNames cfg.automaticPersistence);
  unknownPresets = lib.filter (n: !lib.elem n names) cfg.presets;
  badLevels = lib.concatLists (
    lib.mapAttrsToList (
      name: p:
      map (l: {
        inherit name l;
      }) (lib.filter (l: !lib.elem l levels) (lib.attrNames (optionValue name p)))
    ) activePresets
  );
  levelList = "transient, normal, important and secret";

  # A preset without a NixOS switch whose option is set but which darlings.presets does not
  # list: the setting does nothing, which is worth a sentence.
  setButOff = lib.attrNames (
    lib.filterAttrs (
      name: p:
      p ? nixos.option
      && when p == null
      && !lib.elem name cfg.presets
      && (lib.attrByPath (optionPath p) { highestPrio = 1500; } options).highestPrio < 1500
    ) data
  );

  logrotateKept =
    activePresets ? logrotate
    && lib.any (s: lib.any (d: (d.directory or d.path or null) == "/var/lib/logrotate") s.directories) (
      lib.concatMap lib.attrValues (placed "logrotate" data.logrotate)
    );
in
{
  options = lib.foldl' lib.recursiveUpdate {
    darlings.automaticPersistence = mkOption {
      type = types.attrsOf (
        types.nullOr (
          types.submodule {
            options.path = mkOption {
              type = types.nullOr types.str;
              default = null;
              apply = p: if p == null then null else o.normalise p;
              description = "The store this level's preset entries go to (a darlings.persistence store path, e.g. \"/persist\").";
            };
          }
        )
      );
      default = { };
      example = {
        normal.path = "/persist";
        secret.path = "/persist/secret";
      };
      description = ''
        The store each persistence level's preset entries go to. Levels, lowest to highest:
        `transient` (all state, caches included), `normal` (settings you could recover with
        tedium), `important` (databases and the like), `secret` (important and confidential).
        A level left unset (or null) inherits: normal from transient, important and secret from
        normal. Entries at a level without a store are dropped.
      '';
    };
    darlings.presets = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "journald"
        "nixos-ids"
      ];
      description = "Presets to turn on whatever their NixOS option says (the known ones: ${lib.concatStringsSep ", " names}); presets without a NixOS option are on only when listed here.";
    };
  } (
    lib.mapAttrsToList (
      name: p:
      lib.setAttrByPath (optionPath p) (mkOption {
        type = types.attrsOf levelType;
        default = defaultOf p;
        description = describe p;
      })
    ) withOption
  );

  config = lib.mkMerge [
    {
      darlings.persistence = lib.mkMerge (
        lib.concatLists (lib.mapAttrsToList placed activePresets)
      );
    }

    (lib.mkIf cfg.enable {
      assertions =
        map (l: {
          assertion = false;
          message = "darlings.automaticPersistence.${l} is not a persistence level; the levels are ${levelList}";
        }) unknownLevels
        ++ map (n: {
          assertion = false;
          message = "darlings.presets names \"${n}\", which is not a preset; the presets are ${lib.concatStringsSep ", " names}";
        }) unknownPresets
        ++ map (b: {
          assertion = false;
          message = "${at b.name data.${b.name}}.${b.l} is not a persistence level; the levels are ${levelList}";
        }) badLevels;
      warnings =
        map (
          name: "darlings: ${at name data.${name}} is set, but preset ${name} is on only when darlings.presets lists it; add \"${name}\" to darlings.presets"
        ) setButOff
        ++ lib.concatLists (
          lib.mapAttrsToList (
            name: p:
            map (
              r: "darlings: ${at name p}.${r.level} file ${r.path} sets method = \"reconcile\", which darlings does not have: it is bind-mounted (darlings' method = \"auto\"); set method = \"auto\", or \"symlink\" for a file that programs replace by rename"
            ) (reconciled name p)
          ) activePresets
        );
    })

    # logrotate writes its status file as a new one renamed over the old; the preset keeps its
    # directory, so the status file moves into it.
    (lib.optionalAttrs (options ? services.logrotate.extraArgs) {
      services.logrotate.extraArgs = lib.mkIf (cfg.enable && logrotateKept) [
        "--state"
        "/var/lib/logrotate/status"
      ];
    })
  ];
}
