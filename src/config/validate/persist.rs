//! The [[persist]] stores, their entries and users' entries, and the conflicts between them.

use super::*;

/// Why a path may not be persisted, be a store or a home, if it touches a denied one.
pub(super) fn denied_overlap(path: &AbsPath) -> Option<String> {
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
pub(super) fn check_source_len(
    c: &mut Problems,
    span: &Range<usize>,
    store: &AbsPath,
    path: &AbsPath,
) {
    let len = path.under(store).as_bytes().len();
    if len > PATH_MAX {
        c.at(
            span.clone(),
            format!("{path} is {len} bytes long in store {store}, longer than Linux paths may be ({PATH_MAX}); shorten it"),
        );
    }
}

pub(super) fn validate_store(
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
pub(super) struct StoreFlags {
    hide: bool,
    trash: bool,
}

pub(super) fn validate_entry(
    e: &RawEntry,
    kind: Kind,
    store: StoreFlags,
    c: &mut Problems,
) -> Option<Entry> {
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
pub(super) fn origin(e: &RawEntry, c: &mut Problems) -> Option<Origin> {
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
pub(super) fn seed_from_blank(
    e: &RawEntry,
    path: &AbsPath,
    method: Method,
    c: &mut Problems,
) -> bool {
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

pub(super) fn validate_user_entry(
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

pub(super) fn check_conflicts(
    stores: &[Store],
    targets: &[(Target, Range<usize>)],
    c: &mut Problems,
) {
    let (targets, spans): (Vec<Target>, Vec<Range<usize>>) = targets.iter().cloned().unzip();
    let store_paths: Vec<AbsPath> = stores.iter().map(|s| s.path.clone()).collect();
    for (i, msg) in conflicts(&targets, &store_paths) {
        c.at(spans[i].clone(), msg);
    }
}
