# Turns the evaluated darlings.* options of initrd/nixos/module.nix into the attribute set that
# becomes /etc/darlings.toml (the keys of README.md's config reference), plus what the module's
# assertions and warnings need. Entries go into the [[persist]] table of their effective store
# (the entry's persistentStoragePath), so several darlings.persistence attributes, users and
# Home Manager users that name one path make one table, as impermanence merges them.
{ lib }:
cfg:
let
  inherit (lib)
    filter
    filterAttrs
    attrNames
    mapAttrs
    mapAttrsToList
    concatLists
    concatMap
    unique
    ;

  # Options left at null are left out, so darlings' own defaults apply and the TOML stays short.
  compact = filterAttrs (_: v: v != null);
  nonEmpty = xs: if xs == [ ] then null else xs;

  backend = cfg.root.backend;
  root = cfg.root;
  keepTable =
    let
      t = compact { inherit (root.keep) count days; };
    in
    if t == { } then null else t;
  # Only the keys of the chosen backend: darlings refuses a key that belongs to another one.
  rootTable = {
    inherit backend;
  }
  // compact (
    if backend == "tmpfs" then
      { inherit (root) size; }
    else if backend == "btrfs" then
      {
        inherit (root) device subvolume blank;
        old-roots = root.oldRoots;
        keep = keepTable;
      }
    else
      {
        inherit (root) dataset blank;
        destroy-newer-snapshots = root.destroyNewerSnapshots;
        keep = keepTable;
      }
  );

  # Only what differs from darlings' defaults, so that a config without fleet reports renders
  # as before.
  reportTable = compact {
    inherit (cfg.report) prometheus;
    journald = if cfg.report.journald then null else false;
  };

  diffTable = compact {
    on-boot = cfg.diff.onBoot;
    report-dir = cfg.diff.reportDir;
    inherit (cfg.diff) ignore;
    max-entries = cfg.diff.maxEntries;
    time-budget = cfg.diff.timeBudget;
    keep-reports = cfg.diff.keepReports;
  };

  # ---- entries, flattened ------------------------------------------------------------------

  pathOf = key: e: if e.${key} != null then e.${key} else e.path;
  parentTable =
    p:
    let
      t = compact { inherit (p) user group mode; };
    in
    if t == { } then null else t;

  # One record per entry: its effective store, where it lands in the root (null while the
  # user's home is unknown), the TOML table without the per-table parts, and what the checks
  # need. Every entry becomes a table, even a plain path: TOML writers differ on arrays that mix
  # strings and tables, and darlings reads both forms.
  record =
    {
      attr,
      s,
      user ? null,
      u ? null,
    }:
    kind: e:
    let
      key = kind;
      given = pathOf key e;
      home = if u == null then null else u.home;
      # users.<name>.directories = [ "." ] keeps the whole home (a form public configurations
      # use): that is a directory of the system's, the home itself, owned by the user.
      wholeHome = user != null && kind == "directory" && lib.elem given [ "" "." ];
      homeEntry = wholeHome && home != null;
      path = if homeEntry then home else given;
      owner = if e.user != null then e.user else if u.uid != null then u.uid else user;
      ownerGroup =
        if e.group != null then
          e.group
        else if u.gid != null then
          u.gid
        else if u.group != "" then
          u.group
        else
          null;
    in
    {
      inherit kind path;
      user = if homeEntry then null else user;
      store = e.persistentStoragePath;
      inherit attr;
      inherit (e) preset level;
      inherit (s) hideMounts nosuid nodev;
      hide = if kind == "directory" then e.hideMount else null;
      trash = if kind == "directory" then e.allowTrash else null;
      problem =
        if wholeHome && home == null then
          "darlings.persistence.\"${attr}\".users.${user}: the entry \"${given}\" keeps the whole home, which needs the home's path: declare users.users.${user} or set users.${user}.home"
        else if (e.${key} == null) == (e.path == null) then
          "darlings.persistence.\"${attr}\"${
            lib.optionalString (user != null) ".users.${user}"
          }: an entry must set exactly one of `${key}` and `path` (it sets ${
            if e.${key} == null then "neither" else "both"
          })"
        else
          null;
      target =
        if path == null then
          null
        else if user == null || homeEntry then
          path
        else if home == null then
          null
        else if home == "/" then
          "/${path}"
        else
          "${home}/${path}";
      parentIgnored = user != null && kind == "file" && parentTable e.parentDirectory != null;
      userInfo = if u == null || homeEntry then null else { inherit (u) home uid gid; };
      table = compact (
        (
          if homeEntry then
            {
              inherit path;
              user = owner;
              group = ownerGroup;
              mode = if e.mode != null then e.mode else "0700";
            }
          else
            {
              inherit path;
              inherit (e) user group mode;
            }
        )
        // lib.optionalAttrs (user == null) {
          parent = parentTable e.parentDirectory;
          inherit (e) preset level;
        }
        // lib.optionalAttrs (kind == "file" && e.method != "auto") {
          inherit (e) method;
        }
      );
    };

  enabled = filterAttrs (_: s: s.enable) cfg.persistence;
  entries = concatLists (
    mapAttrsToList (
      attr: s:
      map (record { inherit attr s; } "directory") s.directories
      ++ map (record { inherit attr s; } "file") s.files
      ++ concatLists (
        mapAttrsToList (
          user: u:
          map (record { inherit attr s user u; } "directory") u.directories
          ++ map (record { inherit attr s user u; } "file") u.files
        ) s.users
      )
    ) enabled
  );
  valid = filter (e: e.problem == null) entries;

  # ---- presets: the user's own entries win -------------------------------------------------

  # A preset entry the user keeps already (the same path, in any store) or that lies inside one
  # of the user's directories is dropped: the user's entry covers it. A user's entry inside a
  # preset's directory is refused instead: darlings would refuse the nesting at boot, and only
  # the user knows which of the two is meant.
  inside = dir: p: dir == "/" || lib.hasPrefix "${dir}/" p;
  own = filter (e: e.preset == null && e.target != null) valid;
  ownDirs = filter (e: e.kind == "directory") own;
  covered =
    e:
    e.preset != null
    && e.target != null
    && (lib.any (u: u.target == e.target) own || lib.any (d: inside d.target e.target) ownDirs);
  # A preset's entries take the flags of the user's own attributes of their store, as
  # darlings.toml's take those of their store's [[persist]] table: presets.nix places them in the
  # attribute named by the store path, which need not be the one the user wrote.
  ownAttrsOf = store: unique (map (e: e.attr) (filter (e: e.store == store) own));
  adopt =
    e:
    let
      attrs = map (a: cfg.persistence.${a}) (ownAttrsOf e.store);
      hide = lib.all (s: s.hideMounts) attrs;
      trash = lib.all (s: s.allowTrash) attrs;
    in
    if e.preset == null || attrs == [ ] then
      e
    else
      e
      // {
        hideMounts = hide;
      }
      // lib.optionalAttrs (e.kind == "directory") { inherit hide trash; };
  good = map adopt (filter (e: !covered e) valid);
  presetDirs = filter (e: e.preset != null && e.kind == "directory" && e.target != null) good;
  presetOption = name: (lib.importTOML ../../presets/presets.toml).presets.${name}.nixos.option or null;
  nestedInPresets = concatMap (
    u:
    map (
      p:
      "darlings: ${u.kind} ${u.target} (darlings.persistence.\"${u.attr}\") lies inside ${p.target}, which preset ${p.preset} keeps at level ${p.level}; keep one of the two: remove your entry (the preset's directory keeps it already), or ${
        if presetOption p.preset == null then
          "remove ${p.preset} from darlings.presets"
        else
          "set ${presetOption p.preset} to the entries you want without ${p.target} (`{ }` for none)"
      }"
    ) (filter (p: inside p.target u.target) presetDirs)
  ) own;

  # ---- one [[persist]] table per store path ------------------------------------------------

  # The user's own entries first, then the presets': which of the two the module system merges
  # first differs between nixpkgs' libs, and the TOML should not.
  byStore = lib.groupBy (e: e.store) (
    filter (e: e.preset == null) good ++ filter (e: e.preset != null) good
  );
  agreed = values: unique (filter (v: v != null) values);

  table =
    store: es:
    let
      # The table hides its binds when every directory in it is hidden (without directories:
      # when every attribute contributing says hideMounts); a directory that differs says so
      # itself (hide-mount). Files follow the table: impermanence hides no file bind at all.
      dirs = filter (e: e.kind == "directory") es;
      hide = if dirs == [ ] then lib.all (e: e.hideMounts) es else lib.all (e: e.hide) dirs;
      # allowTrash is a directory's option in impermanence (files have none): likewise.
      trash = dirs != [ ] && lib.all (e: e.trash) dirs;
      nosuid = agreed (map (e: e.nosuid) es);
      nodev = agreed (map (e: e.nodev) es);
      withFlags =
        e:
        e.table
        // lib.optionalAttrs (e.kind == "directory" && e.hide != hide) { hide-mount = e.hide; }
        // lib.optionalAttrs (e.kind == "directory" && e.trash != trash) { allow-trash = e.trash; };
      tablesOf = kind: xs: nonEmpty (map withFlags (filter (e: e.kind == kind) xs));
      system = filter (e: e.user == null) es;
      users = lib.groupBy (e: e.user) (filter (e: e.user != null) es);
      userTable =
        name: ues:
        let
          infos = map (e: e.userInfo) ues;
          one = field: lib.findFirst (v: v != null) null (map (i: i.${field}) infos);
        in
        compact {
          home = one "home";
          uid = one "uid";
          gid = one "gid";
          directories = tablesOf "directory" ues;
          files = tablesOf "file" ues;
        };
    in
    {
      settings = compact {
        inherit store;
        hide-mounts = hide;
        allow-trash = if trash then true else null;
        nosuid = if nosuid == [ ] then null else lib.head nosuid;
        nodev = if nodev == [ ] then null else lib.head nodev;
        directories = tablesOf "directory" system;
        files = tablesOf "file" system;
        users = if users == { } then null else mapAttrs userTable users;
      };
      problems =
        lib.optional (lib.length nosuid > 1) "darlings: the darlings.persistence attributes that make store ${store} disagree on nosuid; set it the same in each"
        ++ lib.optional (lib.length nodev > 1) "darlings: the darlings.persistence attributes that make store ${store} disagree on nodev; set it the same in each"
        ++ concatLists (
          mapAttrsToList (
            name: ues:
            concatMap (
              field:
              let
                vs = agreed (map (e: e.userInfo.${field}) ues);
              in
              lib.optional (lib.length vs > 1) "darlings: store ${store} users.${name}: the attributes that name this store give ${field} as ${
                lib.concatMapStringsSep " and " toString vs
              }; give one"
            ) [ "home" "uid" "gid" ]
          ) users
        );
    };
  tables = mapAttrs table byStore;

  # The same target twice: darlings refuses it too, at boot, where refusing means binding nothing.
  targets = filter (t: t != null) (map (e: e.target) good);
  duplicates = unique (filter (t: lib.count (x: x == t) targets > 1) targets);
in
{
  settings = {
    root = rootTable;
    boot.on-failure = cfg.onFailure;
    diff = diffTable;
    persist = map (store: tables.${store}.settings) (attrNames tables);
  }
  // lib.optionalAttrs (reportTable != { }) { report = reportTable; };
  entries = good;
  storePaths = attrNames tables;
  ignoredParents = filter (e: e.parentIgnored) good;
  problems =
    filter (p: p != null) (map (e: e.problem) entries)
    ++ nestedInPresets
    ++ concatMap (store: tables.${store}.problems) (attrNames tables)
    ++ map (
      t: "darlings: ${t} is persisted twice (in the same store or in two); keep one entry"
    ) duplicates;
}
