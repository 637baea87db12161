//! Validation: the raw config (raw.rs) into `Config`, each problem recorded with the span of the
//! value it is about and a fix, and all of them found in one pass.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use darlings_backends::names::{
    btrfs_clash, btrfs_name_ok, zfs_component_ok, zfs_dataset_ok, BtrfsClash,
};

use super::doc::{Scalar, Sp};
use super::raw::{
    RawConfig, RawDiff, RawEntry, RawKeep, RawParent, RawPersist, RawReport, RawRoot,
};
use super::{
    conflicts, mode, parse_duration, BootConfig, Config, DiffConfig, Entry, Keep, Kind, Method,
    OnFailure, ParentSpec, Problems, ReportConfig, RootConfig, Store, Target, UserEntry, UserHome,
    DENIED,
};
use crate::glob::Glob;
use crate::owners::{valid_name, Who};
use crate::paths::{AbsPath, RelPath, PATH_MAX};
use crate::presets::{Level, Origin};

impl Problems {
    fn abs(&mut self, what: &str, s: &Sp<String>) -> Option<AbsPath> {
        match AbsPath::parse(&s.v) {
            Ok(p) => Some(p),
            Err(e) => {
                self.at(s.span.clone(), format!("{what} {:?} {e}", s.v));
                None
            }
        }
    }

    /// A mode: octal or symbolic, whose `+`/`-` clauses start from `base`.
    fn mode(&mut self, what: &str, v: &Sp<Scalar>, base: u32, is_dir: bool) -> Option<u32> {
        let fix =
            "write it as an octal string such as \"0750\" or as symbols such as \"u=rwx,g=rx,o=\"";
        match &v.v {
            Scalar::Str(s) => match mode::parse(s, base, is_dir) {
                Ok(m) => Some(m),
                Err(why) => {
                    self.at(
                        v.span.clone(),
                        format!("{what} {s:?} is not a file mode: it {why}; {fix}"),
                    );
                    None
                }
            },
            Scalar::Int(i) => {
                self.at(
                    v.span.clone(),
                    format!("{what} {i} is a number, which TOML reads as decimal; {fix}"),
                );
                None
            }
            other => {
                self.at(
                    v.span.clone(),
                    format!("{what} must be a string, not a {}; {fix}", other.type_str()),
                );
                None
            }
        }
    }

    /// A numeric id, written as a number or as a string of digits; u32::MAX is `(uid_t)-1`,
    /// which chown reads as "leave unchanged", so it is refused in both spellings.
    fn id(&mut self, what: &str, v: &Sp<Scalar>) -> Option<u32> {
        let n = match &v.v {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Some(s.parse::<i64>().unwrap_or(i64::MAX))
            }
            _ => None,
        };
        match n.map(u32::try_from) {
            Some(Ok(id)) if id != u32::MAX => Some(id),
            Some(_) => {
                let shown = match &v.v {
                    Scalar::Str(s) => format!("{s:?}"),
                    Scalar::Int(i) => i.to_string(),
                    _ => String::new(),
                };
                self.at(
                    v.span.clone(),
                    format!("{what} {shown} is out of range; ids are 0 to 4294967294"),
                );
                None
            }
            None => {
                self.at(
                    v.span.clone(),
                    format!("{what} must be a numeric id, not a {}", v.v.type_str()),
                );
                None
            }
        }
    }

    fn who(&mut self, what: &str, v: &Sp<Scalar>) -> Option<Who> {
        match &v.v {
            Scalar::Str(s) if valid_name(s) => Some(Who::Name(s.clone())),
            Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                self.id(what, v).map(Who::Id)
            }
            Scalar::Int(_) => self.id(what, v).map(Who::Id),
            Scalar::Str(s) => {
                self.at(
                    v.span.clone(),
                    format!("{what} {s:?} is not a valid user or group name; use letters, digits, '_', '-' or '.', or a numeric id"),
                );
                None
            }
            other => {
                self.at(
                    v.span.clone(),
                    format!(
                        "{what} must be a name or a number, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn parent(&mut self, p: &Option<RawParent>, default: &ParentSpec) -> ParentSpec {
        let mut out = default.clone();
        if let Some(p) = p {
            if let Some(u) = p.user.as_ref().and_then(|u| self.who("parent user", u)) {
                out.user = u;
            }
            if let Some(g) = p.group.as_ref().and_then(|g| self.who("parent group", g)) {
                out.group = g;
            }
            if let Some(m) = p
                .mode
                .as_ref()
                .and_then(|m| self.mode("parent mode", m, default.mode, true))
            {
                out.mode = m;
            }
        }
        out
    }

    fn method(&mut self, kind: Kind, m: &Option<Sp<String>>) -> Method {
        match m {
            None => Method::Bind,
            Some(m) => match m.v.as_str() {
                "auto" | "bind" => Method::Bind,
                "symlink" if kind == Kind::File => Method::Symlink,
                other => {
                    self.at(
                        m.span.clone(),
                        format!("method {other:?} is not a way to persist a file; write \"auto\" (a bind mount) or \"symlink\" (a link into the store)"),
                    );
                    Method::Bind
                }
            },
        }
    }
}

pub(super) fn validate(raw: RawConfig, c: &mut Problems) -> Option<Config> {
    let root = match &raw.root {
        None => {
            c.nowhere("no [root] table; add one, e.g. [root] backend = \"tmpfs\"");
            None
        }
        Some(r) => validate_root(r, c),
    };

    let mut stores: Vec<Store> = Vec::new();
    let mut targets = Vec::new();
    for p in &raw.persist {
        if let Some(s) = validate_store(p, c, &mut targets) {
            if stores.iter().any(|q| q.path == s.path) {
                let span = p.store.as_ref().map_or(p.span.clone(), |s| s.span.clone());
                c.at(
                    span,
                    format!(
                        "store {} is listed twice; merge the two [[persist]] tables",
                        s.path
                    ),
                );
            }
            stores.push(s);
        }
    }
    check_conflicts(&stores, &targets, c);

    let diff = validate_diff(raw.diff.as_ref(), &stores, c);
    let mut boot = BootConfig::default();
    if let Some(f) = raw.boot.as_ref().and_then(|b| b.on_failure.as_ref()) {
        match OnFailure::parse(&f.v) {
            Some(p) => boot.on_failure = p,
            None => c.at(
                f.span.clone(),
                format!(
                    "on-failure {:?} is not a policy; write \"boot-old-root\" (boot the untouched root) or \"halt\" (stop the boot)",
                    f.v
                ),
            ),
        }
    }
    let report = validate_report(raw.report.as_ref(), c);
    Some(Config {
        root: root?,
        diff,
        boot,
        report,
        stores,
        notes: Vec::new(),
        presets: Vec::new(),
    })
}

fn validate_report(raw: Option<&RawReport>, c: &mut Problems) -> ReportConfig {
    let mut out = ReportConfig::default();
    let Some(raw) = raw else { return out };
    if let Some(j) = &raw.journald {
        out.journald = j.v;
    }
    if let Some(p) = &raw.prometheus {
        if let Some(path) = c.abs("report.prometheus", p) {
            // node_exporter's textfile collector reads `*.prom` only: another name is a file
            // nobody would ever scrape.
            if !path.as_bytes().ends_with(b".prom") || path.as_bytes().ends_with(b"/.prom") {
                c.at(p.span.clone(), format!("report.prometheus {path} is not a .prom file, and node_exporter's textfile collector reads only those; write e.g. \"/var/lib/prometheus/node-exporter/darlings.prom\""));
            } else if let Some(d) = ["/proc", "/sys", "/dev"]
                .iter()
                .find(|d| path.as_bytes().starts_with(format!("{d}/").as_bytes()))
            {
                c.at(p.span.clone(), format!("report.prometheus {path} is inside {d}, a kernel filesystem; put it in node_exporter's textfile directory, e.g. /var/lib/prometheus/node-exporter"));
            } else {
                out.prometheus = Some(path);
            }
        }
    }
    out
}

/// A `[root]` key, where it was written, and the backends it belongs to.
type ForeignKey<'a> = (&'a str, Option<Range<usize>>, &'a [&'a str]);

fn span_of<T>(v: &Option<Sp<T>>) -> Option<Range<usize>> {
    v.as_ref().map(|v| v.span.clone())
}

fn validate_root(r: &RawRoot, c: &mut Problems) -> Option<RootConfig> {
    let Some(backend_sp) = &r.backend else {
        c.at(
            r.span.clone(),
            "[root] has no backend; add backend = \"tmpfs\", \"btrfs\" or \"zfs\"",
        );
        return None;
    };
    let backend = backend_sp.v.as_str();
    let backend_span = backend_sp.span.clone();
    // Keys that belong to another backend are mistakes worth naming, not silently ignored.
    let foreign: &[ForeignKey] = &[
        ("size", span_of(&r.size), &["tmpfs"]),
        ("device", span_of(&r.device), &["btrfs"]),
        ("subvolume", span_of(&r.subvolume), &["btrfs"]),
        ("old-roots", span_of(&r.old_roots), &["btrfs"]),
        ("blank", span_of(&r.blank), &["btrfs", "zfs"]),
        ("keep", span_of(&r.keep), &["btrfs", "zfs"]),
        ("dataset", span_of(&r.dataset), &["zfs"]),
        (
            "destroy-newer-snapshots",
            span_of(&r.destroy_newer_snapshots),
            &["zfs"],
        ),
        #[cfg(test)]
        ("fake-root", span_of(&r.fake_root), &["fake"]),
        #[cfg(test)]
        ("fake-blank", span_of(&r.fake_blank), &["fake"]),
        #[cfg(test)]
        (
            "fake-fail-rollback",
            span_of(&r.fake_fail_rollback),
            &["fake"],
        ),
    ];
    if crate::backends::known(backend) {
        for (key, span, owners) in foreign {
            if let Some(span) = span {
                if !owners.contains(&backend) {
                    let names: Vec<String> = owners.iter().map(|o| format!("\"{o}\"")).collect();
                    c.at(
                        span.clone(),
                        format!(
                            "root.{key} applies only to backend {}, not \"{backend}\"; remove it",
                            names.join(" or ")
                        ),
                    );
                }
            }
        }
    }
    match backend {
        "tmpfs" => {
            let size = match &r.size {
                None => None,
                Some(s) if valid_size(&s.v) => Some(s.v.clone()),
                Some(s) => {
                    c.at(s.span.clone(), format!("root size {:?} is not a tmpfs size; write a number with an optional k, m, g or % suffix, e.g. \"2G\" or \"25%\"", s.v));
                    None
                }
            };
            Some(RootConfig::Tmpfs { size })
        }
        "btrfs" => {
            let device = match &r.device {
                Some(d) => c.abs("root.device", d),
                None => {
                    c.at(backend_span.clone(), "backend \"btrfs\" needs root.device, the block device of the filesystem, e.g. device = \"/dev/disk/by-label/nixos\"");
                    None
                }
            };
            let mut name = |key: &str, v: &Option<Sp<String>>, default: &str| -> Option<String> {
                let Some(v) = v else {
                    return Some(default.to_string());
                };
                let n = &v.v;
                // The backend's own rule (crate::names), so a valid config is never refused
                // at preflight for its names.
                if !btrfs_name_ok(n.as_bytes()) {
                    c.at(v.span.clone(), format!("root.{key} {n:?} must be one name in the top-level subvolume (no \"/\", at most 255 bytes), e.g. \"{default}\""));
                    return None;
                }
                Some(n.clone())
            };
            let subvolume = name("subvolume", &r.subvolume, "root");
            let blank = name("blank", &r.blank, "root-blank");
            let old_roots = name("old-roots", &r.old_roots, "old-roots");
            if let (Some(s), Some(b), Some(o)) = (&subvolume, &blank, &old_roots) {
                let at = |key: &Option<Sp<String>>| span_of(key).unwrap_or(backend_span.clone());
                match btrfs_clash(s.as_bytes(), b.as_bytes(), o.as_bytes()) {
                    None => {}
                    Some(BtrfsClash::BlankIsRoot) => c.at(at(&r.blank), format!("root.blank {b:?} is the root subvolume itself; name the read-only blank snapshot, e.g. \"{s}-blank\"")),
                    Some(BtrfsClash::IsRootNew) => {
                        let (key, name, raw, eg) = if *b == format!("{s}.new") {
                            ("blank", b, &r.blank, "root-blank")
                        } else {
                            ("old-roots", o, &r.old_roots, "old-roots")
                        };
                        c.at(at(raw), format!("root.{key} {name:?} is where rollback snapshots the blank to (the root subvolume's name and .new); pick another, e.g. \"{eg}\""));
                    }
                    Some(BtrfsClash::OldRootsCollide) => c.at(at(&r.old_roots), format!("root.old-roots {o:?} collides with the root or blank name; pick another, e.g. \"old-roots\"")),
                }
            }
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Btrfs {
                device: device?,
                subvolume: subvolume?,
                blank: blank?,
                old_roots: old_roots?,
                keep,
            })
        }
        "zfs" => {
            let dataset = match &r.dataset {
                Some(d) if zfs_dataset_ok(&d.v) => Some(d.v.clone()),
                Some(d) => {
                    c.at(d.span.clone(), format!("root.dataset {:?} is not a ZFS dataset name darlings accepts; write pool/path with letters, digits and _-.: (no component \".\", \"..\" or starting with \"-\"), e.g. \"rpool/local/root\"", d.v));
                    None
                }
                None => {
                    c.at(backend_span.clone(), "backend \"zfs\" needs root.dataset, the root's dataset, e.g. dataset = \"rpool/local/root\"");
                    None
                }
            };
            let blank = match &r.blank {
                None => Some("blank".to_string()),
                Some(b) if zfs_component_ok(&b.v) => Some(b.v.clone()),
                Some(b) => {
                    c.at(b.span.clone(), format!("root.blank {:?} is not a snapshot name; write the part after the @, e.g. \"blank\"", b.v));
                    None
                }
            };
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Zfs {
                dataset: dataset?,
                blank: blank?,
                destroy_newer_snapshots: r.destroy_newer_snapshots.as_ref().is_some_and(|v| v.v),
                keep,
            })
        }
        #[cfg(test)]
        "fake" => {
            let mut dir = |key: &str, v: &Option<Sp<String>>| match v {
                Some(v) => c.abs(&format!("root.{key}"), v),
                None => {
                    c.at(
                        backend_span.clone(),
                        format!("backend \"fake\" needs root.{key}"),
                    );
                    None
                }
            };
            let root = dir("fake-root", &r.fake_root);
            let blank = dir("fake-blank", &r.fake_blank);
            Some(RootConfig::Fake {
                root: root?,
                blank: blank?,
                fail_rollback: r.fake_fail_rollback.as_ref().is_some_and(|v| v.v),
            })
        }
        other => {
            c.at(
                backend_span,
                format!("unknown backend {other:?}; use one of \"tmpfs\", \"btrfs\", \"zfs\""),
            );
            None
        }
    }
}

fn validate_keep(k: &Option<Sp<RawKeep>>, c: &mut Problems) -> Option<Keep> {
    let k = k.as_ref()?;
    let raw = &k.v;
    let mut bound = |what: &str, v: &Option<Sp<i64>>| match v {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n.v) => u32::try_from(n.v).ok(),
        Some(n) => {
            c.at(
                n.span.clone(),
                format!("root.keep.{what} {} must be a positive number", n.v),
            );
            None
        }
    };
    let (count, days) = (bound("count", &raw.count), bound("days", &raw.days));
    if raw.count.is_none() && raw.days.is_none() {
        c.at(k.span.clone(), "root.keep is empty; give count = N and/or days = D, or remove keep to discard old roots");
    }
    Some(Keep { count, days })
}

fn valid_size(s: &str) -> bool {
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T', '%']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Why a path may not be persisted, be a store or a home, if it touches a denied one.
fn denied_overlap(path: &AbsPath) -> Option<String> {
    for d in DENIED {
        let Ok(denied) = AbsPath::parse(d) else {
            continue;
        };
        if path.starts_with(&denied) {
            return Some(format!(
                "is {}{d}, which darlings never persists",
                if *path == denied { "" } else { "inside " }
            ));
        }
        if denied.is_inside(path) {
            return Some(format!("contains {d}, which darlings never persists"));
        }
    }
    None
}

/// The rule every home obeys, from the config or from passwd: absolute, normal, not `/`, and
/// clear of the denied paths (a home of `/proc` or `/run/user/1000` would plan binds there).
pub fn home_problem(home: &AbsPath) -> Option<String> {
    if home.is_root() {
        return Some(
            "is the whole root; per-user entries need a home directory such as \"/home/alice\""
                .into(),
        );
    }
    denied_overlap(home)
        .map(|d| format!("{d}; per-user entries need a home directory such as \"/home/alice\""))
}

/// The whole path an entry's copy has in its store, checked against PATH_MAX so that the booted
/// system can open both sides.
fn check_source_len(c: &mut Problems, span: &Range<usize>, store: &AbsPath, path: &AbsPath) {
    let len = path.under(store).as_bytes().len();
    if len > PATH_MAX {
        c.at(
            span.clone(),
            format!("{path} is {len} bytes long in store {store}, longer than Linux paths may be ({PATH_MAX}); shorten it"),
        );
    }
}

fn validate_store(
    p: &RawPersist,
    c: &mut Problems,
    targets: &mut Vec<(Target, Range<usize>)>,
) -> Option<Store> {
    let store = p.store.as_ref()?;
    let path = c.abs("store", store);
    if let Some(path) = &path {
        if path.is_root() {
            c.at(store.span.clone(), "store \"/\" is the root itself, which is erased at every boot; use the mount point of persistent storage, e.g. \"/persist\"");
        } else if let Some(d) = denied_overlap(path) {
            c.at(store.span.clone(), format!("store {path} {d}; use the mount point of persistent storage, e.g. \"/persist\""));
        }
    }
    let hide_mounts = p.hide_mounts.as_ref().is_some_and(|v| v.v);
    let allow_trash = p.allow_trash.as_ref().is_some_and(|v| v.v);
    let flags = StoreFlags {
        hide: hide_mounts,
        trash: allow_trash,
    };
    let mut entries = Vec::new();
    for (list, kind) in [(&p.directories, Kind::Dir), (&p.files, Kind::File)] {
        for e in list {
            if let Some(entry) = validate_entry(e, kind, flags, c) {
                if let Some(store) = &path {
                    check_source_len(c, &e.span, store, &entry.path);
                    targets.push((
                        Target {
                            path: entry.path.clone(),
                            kind,
                            store: store.clone(),
                        },
                        e.span.clone(),
                    ));
                }
                entries.push(entry);
            }
        }
    }
    let mut users = Vec::new();
    for (name, u) in &p.users {
        let name_span = name.span.clone();
        let name = &name.v;
        if !valid_name(name) {
            c.at(name_span, format!("persist.users key {name:?} is not a valid user name; use the user's login name"));
            continue;
        }
        let home = u
            .home
            .as_ref()
            .and_then(|h| c.abs(&format!("home of user {name}"), h));
        if let (Some(h), Some(sp)) = (&home, &u.home) {
            if let Some(why) = home_problem(h) {
                c.at(sp.span.clone(), format!("home of user {name} {h} {why}"));
            }
        }
        let uid = u
            .uid
            .as_ref()
            .and_then(|v| c.id(&format!("uid of user {name}"), v));
        let gid = u
            .gid
            .as_ref()
            .and_then(|v| c.id(&format!("gid of user {name}"), v));
        let mut list = Vec::new();
        for (src, kind) in [(&u.directories, Kind::Dir), (&u.files, Kind::File)] {
            for e in src {
                if let Some(ue) = validate_user_entry(name, e, kind, flags, c) {
                    list.push((ue, e.span.clone()));
                }
            }
        }
        let mut seen = HashSet::new();
        for (e, span) in &list {
            if !seen.insert(e.path.clone()) {
                c.at(
                    span.clone(),
                    format!(
                        "user {name}: path {:?} is listed twice; keep one",
                        String::from_utf8_lossy(e.path.as_bytes())
                    ),
                );
            }
        }
        if let (Some(home), Some(store)) = (&home, &path) {
            for (e, span) in &list {
                let target = home.join(&e.path);
                check_source_len(c, span, store, &target);
                targets.push((
                    Target {
                        path: target,
                        kind: e.kind,
                        store: store.clone(),
                    },
                    span.clone(),
                ));
            }
        }
        users.push(UserHome {
            name: name.clone(),
            home,
            uid,
            gid,
            entries: list.into_iter().map(|(e, _)| e).collect(),
        });
    }
    // A table's keys have no order in TOML: the config must not depend on how a writer sorted
    // them.
    users.sort_by(|a: &UserHome, b: &UserHome| a.name.cmp(&b.name));
    Some(Store {
        path: path?,
        hide_mounts,
        allow_trash,
        nosuid: p.nosuid.as_ref().is_none_or(|v| v.v),
        nodev: p.nodev.as_ref().is_none_or(|v| v.v),
        entries,
        users,
    })
}

/// A store's defaults for its entries' userspace mount options.
#[derive(Clone, Copy)]
struct StoreFlags {
    hide: bool,
    trash: bool,
}

fn validate_entry(e: &RawEntry, kind: Kind, store: StoreFlags, c: &mut Problems) -> Option<Entry> {
    let what = kind.as_str();
    let path = match AbsPath::parse(&e.path.v) {
        Ok(p) => p,
        Err(err) => {
            c.at(e.path.span.clone(), format!("{what} {:?} {err}", e.path.v));
            return None;
        }
    };
    if path.is_root() {
        c.at(e.path.span.clone(), format!("{what} \"/\" is the whole root; persist the directories under it that you need instead"));
        return None;
    }
    if let Some(d) = denied_overlap(&path) {
        c.at(
            e.path.span.clone(),
            format!("{what} {path} {d}; remove the entry"),
        );
        return None;
    }
    let is_dir = kind == Kind::Dir;
    let default_mode = if is_dir { 0o755 } else { 0o644 };
    let user = e
        .user
        .as_ref()
        .and_then(|u| c.who("user", u))
        .unwrap_or(Who::Id(0));
    let group = e
        .group
        .as_ref()
        .and_then(|g| c.who("group", g))
        .unwrap_or(Who::Id(0));
    let mode = e
        .mode
        .as_ref()
        .and_then(|m| c.mode("mode", m, default_mode, is_dir))
        .unwrap_or(default_mode);
    let parent = c.parent(&e.parent, &ParentSpec::default());
    let method = c.method(kind, &e.method);
    let seed_from_blank = seed_from_blank(e, &path, method, c);
    let origin = origin(e, c);
    Some(Entry {
        path,
        kind,
        user,
        group,
        mode,
        parent,
        hide: e.hide_mount.as_ref().map_or(store.hide, |h| h.v),
        trash: e.allow_trash.as_ref().map_or(store.trash, |t| t.v),
        method,
        seed_from_blank,
        origin,
    })
}

/// `preset` and `level` on an entry: both or neither, a known preset and a level.
fn origin(e: &RawEntry, c: &mut Problems) -> Option<Origin> {
    match (&e.preset, &e.level) {
        (None, None) => None,
        (Some(p), Some(l)) => {
            let Some(level) = Level::parse(&l.v) else {
                c.at(
                    l.span.clone(),
                    format!(
                        "level {:?} is not a level; write transient, normal, important or secret",
                        l.v
                    ),
                );
                return None;
            };
            if crate::presets::find(&p.v).is_none() {
                c.at(p.span.clone(), format!("preset {:?} is not a preset darlings knows (see `darlings presets`); remove preset and level from the entry", p.v));
                return None;
            }
            Some(Origin {
                preset: p.v.clone(),
                level,
            })
        }
        (Some(p), None) => {
            c.at(
                p.span.clone(),
                "an entry with preset also needs level (transient, normal, important or secret)",
            );
            None
        }
        (None, Some(l)) => {
            c.at(
                l.span.clone(),
                "an entry with level also needs preset, the preset that gave it",
            );
            None
        }
    }
}

/// Package databases: the record a whole-OS blank keeps of what it has installed. Persisted, a
/// copy stops matching the files the next rollback brings back.
const PACKAGE_DATABASES: &[&str] = &[
    "/var/lib/dpkg",
    "/var/lib/rpm",
    "/usr/lib/sysimage/rpm",
    "/var/lib/pacman",
];

/// `seed-from-blank`, refused where it cannot mean what it says.
fn seed_from_blank(e: &RawEntry, path: &AbsPath, method: Method, c: &mut Problems) -> bool {
    let Some(seed) = &e.seed_from_blank else {
        return false;
    };
    if !seed.v {
        return false;
    }
    if method == Method::Symlink {
        c.at(seed.span.clone(), format!("{path}: seed-from-blank binds the store's copy over the blank's, which a symlink cannot do; remove seed-from-blank or method = \"symlink\""));
        return false;
    }
    for db in PACKAGE_DATABASES {
        let db = AbsPath::parse(db).unwrap_or_else(|_| path.clone());
        if db.starts_with(path) || path.starts_with(&db) {
            c.at(seed.span.clone(), format!("{path}: seed-from-blank refuses {db}, the package database of the OS the blank holds: a persisted copy would stop matching the packages the blank brings back at every rollback (listing what the root lacks, or missing what it has); install packages into the blank instead, and persist data rather than the system's record of itself"));
            return false;
        }
    }
    true
}

fn validate_user_entry(
    name: &str,
    e: &RawEntry,
    kind: Kind,
    store: StoreFlags,
    c: &mut Problems,
) -> Option<UserEntry> {
    if let Some(seed) = &e.seed_from_blank {
        c.at(seed.span.clone(), format!("user {name}: seed-from-blank is for system paths that a whole-OS blank fills (/var/log, /etc/ssh); copy what the home needs into the store instead, and remove it"));
    }
    if let Some(p) = e.preset.as_ref().or(e.level.as_ref()) {
        c.at(p.span.clone(), format!("user {name}: preset and level are for the system entries presets give; remove them"));
    }
    if e.parent.is_some() {
        c.at(e.span.clone(), format!("user {name}: parent has no meaning here (directories up to the home belong to {name}, mode 0700); remove it"));
    }
    let path = match RelPath::parse(&e.path.v) {
        Ok(p) => p,
        Err(err) => {
            c.at(
                e.path.span.clone(),
                format!("user {name}: {} {:?} {err}", kind.as_str(), e.path.v),
            );
            return None;
        }
    };
    let user = e.user.as_ref().and_then(|u| c.who("user", u));
    let group = e.group.as_ref().and_then(|g| c.who("group", g));
    let is_dir = kind == Kind::Dir;
    let default_mode = if is_dir { 0o700 } else { 0o600 };
    let mode = e
        .mode
        .as_ref()
        .and_then(|m| c.mode("mode", m, default_mode, is_dir))
        .unwrap_or(default_mode);
    Some(UserEntry {
        path,
        kind,
        user,
        group,
        mode,
        hide: e.hide_mount.as_ref().map_or(store.hide, |h| h.v),
        trash: e.allow_trash.as_ref().map_or(store.trash, |t| t.v),
        method: c.method(kind, &e.method),
    })
}

fn check_conflicts(stores: &[Store], targets: &[(Target, Range<usize>)], c: &mut Problems) {
    let (targets, spans): (Vec<Target>, Vec<Range<usize>>) = targets.iter().cloned().unzip();
    let store_paths: Vec<AbsPath> = stores.iter().map(|s| s.path.clone()).collect();
    for (i, msg) in conflicts(&targets, &store_paths) {
        c.at(spans[i].clone(), msg);
    }
}

fn validate_diff(raw: Option<&RawDiff>, stores: &[Store], c: &mut Problems) -> DiffConfig {
    let mut out = DiffConfig {
        on_boot: false,
        report_dir: None,
        ignore: Vec::new(),
        max_entries: 100_000,
        time_budget: Duration::from_secs(10),
        keep_reports: 30,
    };
    let Some(raw) = raw else { return out };
    out.on_boot = raw.on_boot.as_ref().is_some_and(|v| v.v);
    if let Some(rd) = &raw.report_dir {
        if let Some(p) = c.abs("report-dir", rd) {
            if !stores.iter().any(|s| p.is_inside(&s.path)) {
                let names: Vec<String> = stores.iter().map(|s| s.path.to_string()).collect();
                c.at(
                    rd.span.clone(),
                    format!(
                        "report-dir {p} is not inside a store, so reports would be erased at the next boot; put it under {}",
                        if names.is_empty() { "a [[persist]] store".to_string() } else { names.join(" or ") }
                    ),
                );
            }
            out.report_dir = Some(p);
        }
    } else if out.on_boot {
        c.nowhere("diff.on-boot is true but diff.report-dir is not set; add report-dir = \"/persist/var/log/darlings\" (inside a store)");
    }
    for g in &raw.ignore {
        match Glob::parse(&g.v) {
            Ok(glob) => out.ignore.push(glob),
            Err(e) => c.at(g.span.clone(), format!("ignore pattern {:?} {e}", g.v)),
        }
    }
    if let Some(k) = &raw.keep_reports {
        match usize::try_from(k.v) {
            Ok(n) if n > 0 => out.keep_reports = n,
            _ => c.at(
                k.span.clone(),
                format!(
                    "keep-reports {} must be a positive number of reports, e.g. 30",
                    k.v
                ),
            ),
        }
    }
    if let Some(m) = &raw.max_entries {
        match usize::try_from(m.v) {
            Ok(n) if n > 0 => out.max_entries = n,
            _ => c.at(
                m.span.clone(),
                format!("max-entries {} must be a positive number, e.g. 100000", m.v),
            ),
        }
    }
    if let Some(t) = &raw.time_budget {
        match parse_duration(&t.v) {
            Some(d) if d.is_zero() => c.at(
                t.span.clone(),
                format!(
                    "time-budget {:?} leaves the diff no time at all; give it some, e.g. \"10s\", or set on-boot = false",
                    t.v
                ),
            ),
            Some(d) => out.time_budget = d,
            None => c.at(
                t.span.clone(),
                format!(
                    "time-budget {:?} is not a duration; write e.g. \"10s\" or \"500ms\"",
                    t.v
                ),
            ),
        }
    }
    out
}
