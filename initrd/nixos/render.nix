# Turns the darlings.* options of initrd/nixos/module.nix into the attribute set that becomes
# /etc/darlings.toml (the keys of README.md's config reference). Builtins only, no nixpkgs lib, so
# that tests/initrd-check can evaluate it with a bare nix-instantiate and feed the result to
# `darlings plan`, which validates it exactly as the initrd will.
#
# It accepts the evaluated option values and also raw, partly written ones (missing attributes
# take the option defaults; entries may still be strings), which is what the check passes.
cfg:
let
  inherit (builtins) attrNames filter isString listToAttrs map;

  # Options left at null are left out, so darlings' own defaults apply and the TOML stays short.
  compact =
    attrs:
    listToAttrs (
      map (name: {
        inherit name;
        value = attrs.${name};
      }) (filter (name: attrs.${name} != null) (attrNames attrs))
    );
  get = attrs: name: attrs.${name} or null;

  backend = cfg.root.backend;
  root = cfg.root;
  keep = root.keep or { };
  # Only the keys of the chosen backend: darlings refuses a key that belongs to another one.
  keepTable =
    let
      t = compact {
        count = get keep "count";
        days = get keep "days";
      };
    in
    if t == { } then null else t;
  rootTable =
    {
      inherit backend;
    }
    // compact (
      if backend == "tmpfs" then
        { size = get root "size"; }
      else if backend == "btrfs" then
        {
          device = get root "device";
          subvolume = get root "subvolume";
          blank = get root "blank";
          old-roots = get root "oldRoots";
          keep = keepTable;
        }
      else if backend == "zfs" then
        {
          dataset = get root "dataset";
          blank = get root "blank";
          destroy-newer-snapshots = get root "destroyNewerSnapshots";
          keep = keepTable;
        }
      else
        throw "darlings.root.backend = \"${backend}\" is not a backend; use \"tmpfs\", \"btrfs\" or \"zfs\""
    );

  diff = cfg.diff or { };
  diffTable = compact {
    on-boot = diff.onBoot or false;
    report-dir = get diff "reportDir";
    ignore = diff.ignore or [ ];
    max-entries = get diff "maxEntries";
    time-budget = get diff "timeBudget";
    keep-reports = get diff "keepReports";
  };

  # An entry as impermanence spells it: a string, or { directory | file | path; user; group;
  # mode; parentDirectory = { user; group; mode; }; }. Every entry becomes a table, even a plain
  # path: TOML writers differ on arrays that mix strings and tables, and darlings reads both forms.
  entryPath =
    key: e:
    if isString e then
      e
    else if get e key != null then
      e.${key}
    else if get e "path" != null then
      e.path
    else
      throw "darlings: an entry has neither `${key}` nor `path`: ${builtins.toJSON e}";
  entry =
    key: e:
    if isString e then
      { path = e; }
    else
      let
        parent = if get e "parentDirectory" == null then { } else compact e.parentDirectory;
      in
      compact {
        path = entryPath key e;
        user = get e "user";
        group = get e "group";
        mode = get e "mode";
        parent = if parent == { } then null else parent;
      };

  userTable =
    u:
    compact {
      home = get u "home";
      directories = map (entry "directory") (u.directories or [ ]);
      files = map (entry "file") (u.files or [ ]);
    };

  enabled = name: (cfg.persistence.${name}.enable or true);
  store =
    name:
    let
      s = cfg.persistence.${name};
      users = s.users or { };
    in
    compact {
      store = name;
      hide-mounts = s.hideMounts or false;
      nosuid = get s "nosuid";
      nodev = get s "nodev";
      directories = map (entry "directory") (s.directories or [ ]);
      files = map (entry "file") (s.files or [ ]);
      users = if users == { } then null else builtins.mapAttrs (_: userTable) users;
    };
in
{
  root = rootTable;
  boot.on-failure = cfg.onFailure or "boot-old-root";
  diff = diffTable;
  persist = map store (filter enabled (attrNames (cfg.persistence or { })));
}
