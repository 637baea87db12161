//! `darlings diff --suggest`: from the lost entries of a report, the config entries that would
//! keep them, grouped by where state usually lives and ranked by what would be lost, checked
//! against the config's own rules before they are shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{self, Config, Kind, Target};
use crate::paths::{AbsPath, RelPath};
use crate::presets::Level;
use crate::report::{Class, Report};
use crate::show::human;
use darlings_backends::FileType;

/// What a suggestion would add to the config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum What {
    /// Turn a preset on (it keeps the lost paths at its level).
    Preset { name: String, level: Level },
    /// A system entry of the store.
    Entry { path: AbsPath, kind: Kind },
    /// An entry under `[persist.users.<user>]`.
    User {
        user: String,
        path: RelPath,
        kind: Kind,
    },
}

#[derive(Debug, Clone)]
pub struct Suggestion {
    pub what: What,
    /// Lost entries it would keep, and their bytes.
    pub entries: u64,
    pub bytes: u64,
    pub reason: &'static str,
}

/// A candidate refused by the config's own rules, with the rule's words.
#[derive(Debug, Clone)]
pub struct Refused {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Default)]
pub struct Suggestions {
    pub list: Vec<Suggestion>,
    pub refused: Vec<Refused>,
    /// Lost entries no rule proposes anything for (caches, scratch space, symlinks NixOS makes).
    pub unplaced: u64,
    pub lost: u64,
}

/// Users' homes, longest first, from the root's passwd (plus `/root` and `/home/<name>` when
/// passwd does not say).
pub fn homes_of(acc: &crate::owners::Accounts) -> Vec<(AbsPath, String)> {
    let mut out: Vec<(AbsPath, String)> = Vec::new();
    if let Some(users) = &acc.users {
        for (name, pw) in users {
            let Ok(home) = AbsPath::parse_bytes(&pw.home) else {
                continue;
            };
            // System accounts' homes (`/`, `/var/empty`, `/nonexistent`) hold no user state.
            if config::home_problem(&home).is_some()
                || !(home.starts_with(&abs("/home")) || home == abs("/root"))
            {
                continue;
            }
            out.push((home, name.clone()));
        }
    }
    out.sort_by(|a, b| {
        b.0.as_bytes()
            .len()
            .cmp(&a.0.as_bytes().len())
            .then(a.1.cmp(&b.1))
    });
    out
}

fn abs(s: &str) -> AbsPath {
    AbsPath::from_normal_bytes(s.as_bytes().to_vec())
}

/// Files NixOS activation and systemd write into `/etc` at every boot: keeping them would pin
/// one generation's copy over the next.
const ETC_REGENERATED: &[&str] = &[
    ".clean",
    ".updated",
    ".pwd.lock",
    "NIXOS",
    "static",
    "passwd",
    "passwd-",
    "group",
    "group-",
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "subuid",
    "subgid",
    "resolv.conf",
    "mtab",
    "ld.so.cache",
    "hostname",
    "localtime",
];

/// Top-level directories whose content is scratch or belongs to the kernel.
const SCRATCH: &[&str] = &[
    "tmp",
    "run",
    "proc",
    "sys",
    "dev",
    "nix",
    "boot",
    "lost+found",
];

/// `/var` subdirectories that hold caches and scratch state.
const VAR_SCRATCH: &[&str] = &["cache", "tmp", "run", "lock", "empty"];

/// Where a lost path would be kept: the key of its group, or `None` to propose nothing.
fn place(path: &[u8], homes: &[(AbsPath, String)]) -> Option<(Key, &'static str)> {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let first = *comps.first()?;
    let joined = |n: usize| -> Vec<u8> {
        let mut v = Vec::new();
        for c in &comps[..n] {
            v.push(b'/');
            v.extend_from_slice(c);
        }
        v
    };
    for (home, user) in homes {
        let hb = home.as_bytes();
        if path.len() > hb.len() && path.starts_with(hb) && path[hb.len()] == b'/' {
            let rel: Vec<&[u8]> = path[hb.len() + 1..]
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            let depth = match rel.first().copied() {
                None => return None,
                Some(b".cache") => return None,
                Some(b".config") | Some(b".var") => 2,
                Some(b".local") => match rel.get(1).copied() {
                    Some(b"share") | Some(b"state") => 3,
                    _ => 2,
                },
                Some(_) => 1,
            };
            if rel.len() < depth {
                // `.config` itself, or `.local/share`: only what is inside them is proposed.
                return None;
            }
            let r = rel[..depth].join(&b'/');
            return Some((Key::User(user.clone(), r), "in the user's home"));
        }
    }
    if SCRATCH.contains(&std::str::from_utf8(first).unwrap_or("")) {
        return None;
    }
    match first {
        b"var" => {
            let second = *comps.get(1)?;
            if VAR_SCRATCH.contains(&std::str::from_utf8(second).unwrap_or("")) {
                return None;
            }
            match second {
                b"log" => Some((Key::Sys(joined(2)), "logs (/var/log)")),
                b"lib" | b"db" | b"spool" => {
                    comps.get(2)?;
                    Some((Key::Sys(joined(3)), "a service's state (/var/lib/<name>)"))
                }
                _ => Some((Key::Sys(joined(2)), "state under /var")),
            }
        }
        b"etc" => {
            let second = *comps.get(1)?;
            if ETC_REGENERATED.contains(&std::str::from_utf8(second).unwrap_or("")) {
                return None;
            }
            Some((
                Key::Sys(joined(2)),
                "configuration written at run time (/etc)",
            ))
        }
        b"home" => {
            // A home passwd does not name: /home/<name> as the user's.
            let name = std::str::from_utf8(comps.get(1)?).ok()?.to_string();
            if !crate::owners::valid_name(&name) || comps.len() < 3 {
                return None;
            }
            Some((Key::User(name, comps[2].to_vec()), "in the user's home"))
        }
        _ => {
            // A top-level directory itself is on the way to what is in it; a file right in
            // `/` is not something a bind should keep either.
            comps.get(1)?;
            Some((Key::Sys(joined(2)), "data outside the usual places"))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Sys(Vec<u8>),
    User(String, Vec<u8>),
}

#[derive(Default)]
struct Group {
    entries: u64,
    bytes: u64,
    /// The type of the lost entry at the group's own path, if the diff listed it.
    own: Option<FileType>,
    /// Entries below the group's path: it is a directory.
    below: bool,
    reason: &'static str,
}

/// Files the diff shows replaced by rename: the target of a rename, or a file with a sibling
/// named like the temporary its program writes first (`.new`, `.tmp`, `~`).
/// Also returns those temporaries, which are not state of their own.
type PathSet = std::collections::HashSet<Vec<u8>>;

fn renamed_files(report: &Report) -> (PathSet, PathSet) {
    let all: std::collections::HashSet<&[u8]> =
        report.entries().map(|e| e.change.path.as_slice()).collect();
    let mut renamed = PathSet::new();
    let mut temps = PathSet::new();
    for e in report.entries() {
        let p = &e.change.path;
        if e.change.file_type != FileType::File {
            continue;
        }
        if matches!(e.change.kind, darlings_backends::ChangeKind::Renamed { .. }) {
            renamed.insert(p.clone());
        }
        for suffix in [&b".new"[..], b".tmp", b"~"] {
            let mut q = p.clone();
            q.extend_from_slice(suffix);
            if all.contains(q.as_slice()) {
                renamed.insert(p.clone());
                temps.insert(q);
            }
        }
    }
    (renamed, temps)
}

/// The whole path of a group's key.
fn own_path_of(key: &Key, homes: &[(AbsPath, String)]) -> Vec<u8> {
    match key {
        Key::Sys(p) => p.clone(),
        Key::User(user, rel) => {
            let home = homes
                .iter()
                .find(|(_, u)| u == user)
                .map(|(h, _)| h.as_bytes().to_vec())
                .unwrap_or_else(|| format!("/home/{user}").into_bytes());
            darlings_backends::bytes::join(&home, rel)
        }
    }
}

/// The directory that would keep a renamed file instead, if it is narrower than the places
/// whose children are grouped (`/etc`, `/var/lib`, a home, `.config`).
fn parent_key(key: &Key) -> Option<Key> {
    let cut = |p: &[u8]| p.iter().rposition(|&b| b == b'/').map(|i| p[..i].to_vec());
    match key {
        Key::Sys(p) => {
            let parent = cut(p)?;
            let n = parent
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .count();
            let wide = [
                &b"/etc"[..],
                b"/var/lib",
                b"/var/db",
                b"/var/spool",
                b"/var",
            ]
            .contains(&parent.as_slice());
            (n >= 2 && !wide).then_some(Key::Sys(parent))
        }
        Key::User(user, rel) => {
            let parent = cut(rel)?;
            let wide = [
                &b".config"[..],
                b".local",
                b".local/share",
                b".local/state",
                b".var",
            ]
            .contains(&parent.as_slice());
            (!parent.is_empty() && !wide).then(|| Key::User(user.clone(), parent))
        }
    }
}

/// The suggestions for a report's lost entries, given the config that produced it.
pub fn suggest(report: &Report, config: &Config, homes: &[(AbsPath, String)]) -> Suggestions {
    let mut out = Suggestions::default();
    let (renamed, temps) = renamed_files(report);
    let mut presets: BTreeMap<(String, Level), (u64, u64)> = BTreeMap::new();
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut near = crate::presets::Siblings::default();
    for e in report.entries() {
        // Lost under a persisted path is a problem of that entry, not a missing one; persisted
        // and ignored entries are kept or unwanted.
        if e.class != Class::Lost || e.why.is_some() {
            continue;
        }
        out.lost += 1;
        if temps.contains(&e.change.path) {
            out.unplaced += 1;
            continue;
        }
        let size = e.change.size.unwrap_or(0);
        if let Some(h) = report.preset_hint(&e.change.path, &mut near) {
            let slot = presets.entry((h.preset.to_string(), h.level)).or_default();
            slot.0 += 1;
            slot.1 += size;
            continue;
        }
        let Some((key, reason)) = place(&e.change.path, homes) else {
            out.unplaced += 1;
            continue;
        };
        let own_path = own_path_of(&key, homes);
        let g = groups.entry(key).or_default();
        g.entries += 1;
        g.bytes += size;
        g.reason = reason;
        if e.change.path == own_path {
            g.own = Some(e.change.file_type);
        } else {
            g.below = true;
        }
    }
    for ((name, level), (entries, bytes)) in presets {
        let reason = crate::presets::find(&name).map_or("a preset", |p| p.about.as_str());
        out.list.push(Suggestion {
            what: What::Preset { name, level },
            entries,
            bytes,
            reason,
        });
    }
    // A file its program replaces by renaming a new one over it cannot be bound (EBUSY,
    // impermanence#175, #197): its directory is kept instead, where that is narrow enough.
    let mut merged: BTreeMap<Key, Group> = BTreeMap::new();
    for (key, g) in groups {
        let file = !g.below && g.own == Some(FileType::File);
        let full = own_path_of(&key, homes);
        if file && renamed.contains(&full) {
            match parent_key(&key) {
                Some(parent) => {
                    let p = merged.entry(parent).or_default();
                    p.entries += g.entries;
                    p.bytes += g.bytes;
                    p.below = true;
                    p.reason = "a file replaced by rename, kept as its directory";
                }
                None => out.refused.push(Refused {
                    path: String::from_utf8_lossy(&full).into_owned(),
                    why: "its program replaces it by renaming a new file over it, which a bind refuses (EBUSY), and its directory is too wide to keep; point the program at a file in a persisted directory".into(),
                }),
            }
            continue;
        }
        let m = merged.entry(key).or_default();
        m.entries += g.entries;
        m.bytes += g.bytes;
        m.below |= g.below;
        m.own = m.own.or(g.own);
        if m.reason.is_empty() {
            m.reason = g.reason;
        }
    }
    for (key, g) in merged {
        let kind = if g.below || g.own == Some(FileType::Dir) {
            Kind::Dir
        } else if g.own == Some(FileType::File) {
            Kind::File
        } else {
            // A symlink or a special file: the programs that made it make it again, or it is
            // not state one can bind.
            out.unplaced += g.entries;
            continue;
        };
        let what = match key {
            Key::Sys(p) => What::Entry {
                path: AbsPath::from_normal_bytes(p),
                kind,
            },
            Key::User(user, rel) => match std::str::from_utf8(&rel)
                .ok()
                .and_then(|r| RelPath::parse(r).ok())
            {
                Some(path) => What::User { user, path, kind },
                None => {
                    out.unplaced += g.entries;
                    continue;
                }
            },
        };
        out.list.push(Suggestion {
            what,
            entries: g.entries,
            bytes: g.bytes,
            reason: g.reason,
        });
    }
    check(&mut out, config, homes);
    // Presets first (one line keeps a service's state the way it needs), then by what would
    // be lost.
    out.list.sort_by(|a, b| {
        let preset = |s: &Suggestion| !matches!(s.what, What::Preset { .. });
        preset(a)
            .cmp(&preset(b))
            .then(b.bytes.cmp(&a.bytes))
            .then(b.entries.cmp(&a.entries))
            .then(a.what.cmp(&b.what))
    });
    out
}

/// Drops what the config's own rules would refuse: denied paths, paths in or around a store,
/// inside a persisted directory or around a persisted entry.
fn check(out: &mut Suggestions, config: &Config, homes: &[(AbsPath, String)]) {
    let mut targets: Vec<Target> = Vec::new();
    for s in &config.stores {
        for e in &s.entries {
            targets.push(Target {
                path: e.path.clone(),
                kind: e.kind,
                store: s.path.clone(),
            });
        }
        for u in &s.users {
            let home = u.home.clone().or_else(|| {
                homes
                    .iter()
                    .find(|(_, n)| *n == u.name)
                    .map(|(h, _)| h.clone())
            });
            if let Some(home) = home {
                for e in &u.entries {
                    targets.push(Target {
                        path: home.join(&e.path),
                        kind: e.kind,
                        store: s.path.clone(),
                    });
                }
            }
        }
    }
    let existing = targets.len();
    let store = config
        .stores
        .first()
        .map(|s| s.path.clone())
        .unwrap_or_else(|| abs("/persist"));
    let stores: Vec<AbsPath> = config.stores.iter().map(|s| s.path.clone()).collect();
    let mut keep = Vec::new();
    let list = std::mem::take(&mut out.list);
    for s in list {
        let path = match &s.what {
            What::Preset { .. } => {
                keep.push(s);
                continue;
            }
            What::Entry { path, .. } => path.clone(),
            What::User { user, path, .. } => {
                let home = homes
                    .iter()
                    .find(|(_, u)| u == user)
                    .map(|(h, _)| h.clone())
                    .unwrap_or_else(|| abs(&format!("/home/{user}")));
                home.join(path)
            }
        };
        let kind = match &s.what {
            What::Entry { kind, .. } | What::User { kind, .. } => *kind,
            What::Preset { .. } => Kind::Dir,
        };
        if let Some(d) = config::DENIED.iter().find(|d| {
            let d = abs(d);
            path.starts_with(&d) || d.is_inside(&path)
        }) {
            out.refused.push(Refused {
                path: path.to_string(),
                why: format!("touches {d}, which darlings never persists"),
            });
            continue;
        }
        let mut with = targets[..existing].to_vec();
        with.push(Target {
            path: path.clone(),
            kind,
            store: store.clone(),
        });
        let problems: Vec<String> = config::conflicts(&with, &stores)
            .into_iter()
            .filter(|(i, _)| *i == existing)
            .map(|(_, m)| m)
            .collect();
        // The inner one is the one named, so a suggestion around an existing entry shows up
        // as that entry's problem: look for those too.
        let around = targets[..existing]
            .iter()
            .find(|t| t.path.is_inside(&path) && kind == Kind::Dir);
        if let Some(first) = problems.first() {
            out.refused.push(Refused {
                path: path.to_string(),
                why: first.clone(),
            });
        } else if let Some(t) = around {
            out.refused.push(Refused {
                path: path.to_string(),
                why: format!(
                    "contains {} {}, which is persisted already; persist what is beside it instead",
                    t.kind.as_str(),
                    t.path
                ),
            });
        } else {
            keep.push(s);
        }
    }
    out.list = keep;
}

fn comment(s: &Suggestion) -> String {
    format!(
        "{} entr{}, {}: {}",
        s.entries,
        if s.entries == 1 { "y" } else { "ies" },
        human(s.bytes),
        s.reason
    )
}

fn quote(s: &str) -> String {
    // TOML and Nix basic strings: escape what either would read specially.
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push('$'),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn nix_quote(s: &str) -> String {
    quote(s).replace("${", "\\${")
}

/// Suggestions laid out for rendering: (path as shown, suggestion) per list.
#[derive(Default)]
struct Grouped<'a> {
    presets: Vec<(&'a String, Level, &'a Suggestion)>,
    dirs: Vec<(String, &'a Suggestion)>,
    files: Vec<(String, &'a Suggestion)>,
    /// Per user: directories, then files.
    users: BTreeMap<&'a str, EntryLists<'a>>,
}

type EntryLists<'a> = (Vec<(String, &'a Suggestion)>, Vec<(String, &'a Suggestion)>);

impl Suggestions {
    fn header(&self) -> String {
        let bytes: u64 = self.list.iter().map(|s| s.bytes).sum();
        let kept: u64 = self.list.iter().map(|s| s.entries).sum();
        format!(
            "darlings diff --suggest: {} suggestion{} keeping {kept} of {} lost entries ({}); {} left (caches, scratch, links the system makes again)",
            self.list.len(),
            if self.list.len() == 1 { "" } else { "s" },
            self.lost,
            human(bytes),
            self.unplaced
        )
    }

    /// The suggestions sorted the way both renderers lay them out: presets, the store's own
    /// directories and files, then each user's.
    fn grouped(&self) -> Grouped<'_> {
        let mut g = Grouped::default();
        for x in &self.list {
            match &x.what {
                What::Preset { name, level } => g.presets.push((name, *level, x)),
                What::Entry { path, kind } => {
                    let list = if *kind == Kind::Dir {
                        &mut g.dirs
                    } else {
                        &mut g.files
                    };
                    list.push((path.to_string(), x));
                }
                What::User { user, path, kind } => {
                    let (dirs, files) = g.users.entry(user.as_str()).or_default();
                    let list = if *kind == Kind::Dir { dirs } else { files };
                    list.push((String::from_utf8_lossy(path.as_bytes()).into_owned(), x));
                }
            }
        }
        g
    }

    /// The header comment and the refusals, shared by both forms.
    fn preamble(&self, s: &mut String) -> bool {
        let _ = writeln!(s, "# {}", self.header());
        for r in &self.refused {
            let _ = writeln!(s, "# not suggested: {}: {}", r.path, r.why);
        }
        if self.list.is_empty() {
            let _ = writeln!(s, "# nothing to suggest");
        }
        !self.list.is_empty()
    }

    /// The entries to add, as darlings.toml says them.
    pub fn to_toml(&self, store: &AbsPath) -> String {
        let mut s = String::new();
        if !self.preamble(&mut s) {
            return s;
        }
        let g = self.grouped();
        if !g.presets.is_empty() {
            let _ = writeln!(s, "\n# add to presets (top level, before any table), with a store for each level in [levels]:");
            let _ = writeln!(s, "presets = [");
            for (name, level, x) in &g.presets {
                let _ = writeln!(s, "  {},  # level {level}; {}", quote(name), comment(x));
            }
            let _ = writeln!(s, "]");
        }
        if g.dirs.is_empty() && g.files.is_empty() && g.users.is_empty() {
            return s;
        }
        let _ = writeln!(
            s,
            "\n# into the [[persist]] table of store {store} (merge with yours):"
        );
        let _ = writeln!(s, "[[persist]]\nstore = {}", quote(&store.to_string()));
        let list = |s: &mut String, key: &str, items: &[(String, &Suggestion)]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(s, "{key} = [");
            for (path, x) in items {
                let _ = writeln!(s, "  {},  # {}", quote(path), comment(x));
            }
            let _ = writeln!(s, "]");
        };
        list(&mut s, "directories", &g.dirs);
        list(&mut s, "files", &g.files);
        for (user, (dirs, files)) in &g.users {
            let _ = writeln!(s, "[persist.users.{user}]");
            list(&mut s, "directories", dirs);
            list(&mut s, "files", files);
        }
        s
    }

    /// The same for the NixOS module.
    pub fn to_nix(&self, store: &AbsPath) -> String {
        let mut s = String::new();
        if !self.preamble(&mut s) {
            return s;
        }
        let g = self.grouped();
        if !g.presets.is_empty() {
            let _ = writeln!(
                s,
                "# each level needs darlings.automaticPersistence.<level>.path"
            );
            let _ = writeln!(s, "darlings.presets = [");
            for (name, level, x) in &g.presets {
                let _ = writeln!(s, "  {}  # level {level}; {}", nix_quote(name), comment(x));
            }
            let _ = writeln!(s, "];");
        }
        if g.dirs.is_empty() && g.files.is_empty() && g.users.is_empty() {
            return s;
        }
        let list = |s: &mut String, indent: &str, key: &str, items: &[(String, &Suggestion)]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(s, "{indent}{key} = [");
            for (path, x) in items {
                let _ = writeln!(s, "{indent}  {}  # {}", nix_quote(path), comment(x));
            }
            let _ = writeln!(s, "{indent}];");
        };
        let _ = writeln!(
            s,
            "darlings.persistence.{} = {{",
            nix_quote(&store.to_string())
        );
        list(&mut s, "  ", "directories", &g.dirs);
        list(&mut s, "  ", "files", &g.files);
        for (user, (dirs, files)) in &g.users {
            let _ = writeln!(s, "  users.{} = {{", nix_quote(user));
            list(&mut s, "    ", "directories", dirs);
            list(&mut s, "    ", "files", files);
            let _ = writeln!(s, "  }};");
        }
        let _ = writeln!(s, "}};");
        s
    }

    /// `diff --suggest --json`, schema `darlings.suggest/1`.
    pub fn to_json(&self, store: &AbsPath) -> Value {
        let list: Vec<Value> = self
            .list
            .iter()
            .map(|x| {
                let mut v = match &x.what {
                    What::Preset { name, level } => {
                        json!({ "kind": "preset", "preset": name, "level": level.as_str() })
                    }
                    What::Entry { path, kind } => json!({
                        "kind": kind.as_str(), "path": path.to_string(), "store": store.to_string(),
                    }),
                    What::User { user, path, kind } => json!({
                        "kind": kind.as_str(), "user": user,
                        "path": String::from_utf8_lossy(path.as_bytes()), "store": store.to_string(),
                    }),
                };
                v["entries"] = json!(x.entries);
                v["bytes"] = json!(x.bytes);
                v["reason"] = json!(x.reason);
                v
            })
            .collect();
        let refused: Vec<Value> = self
            .refused
            .iter()
            .map(|r| json!({ "path": r.path, "why": r.why }))
            .collect();
        json!({
            "schema": "darlings.suggest/1",
            "lost": self.lost,
            "unplaced": self.unplaced,
            "suggestions": list,
            "refused": refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Classifier;
    use darlings_backends::{Change, ChangeKind, DiffOutput};

    fn homes() -> Vec<(AbsPath, String)> {
        vec![
            (abs("/home/alice"), "alice".into()),
            (abs("/root"), "root".into()),
        ]
    }

    #[test]
    fn where_each_lost_path_would_be_kept() {
        let user = |u: &str, r: &str| Some(Key::User(u.into(), r.as_bytes().to_vec()));
        let sys = |p: &str| Some(Key::Sys(p.as_bytes().to_vec()));
        let cases: &[(&str, Option<Key>)] = &[
            ("/var/lib/foo", sys("/var/lib/foo")),
            ("/var/lib/foo/a/b", sys("/var/lib/foo")),
            ("/var/lib", None),
            ("/var/log/nginx/access.log", sys("/var/log")),
            ("/var/cache/man/x", None),
            ("/var/tmp/x", None),
            ("/var/spool/cron/root", sys("/var/spool/cron")),
            ("/var/mail/alice", sys("/var/mail")),
            ("/etc/adjtime", sys("/etc/adjtime")),
            ("/etc/NetworkManager/conf.d/x", sys("/etc/NetworkManager")),
            ("/etc/passwd", None),
            ("/etc/static/x", None),
            ("/etc/.clean", None),
            ("/tmp/x", None),
            ("/run/x", None),
            ("/nix/var/nix/db", None),
            ("/srv", None),
            ("/srv/www/index.html", sys("/srv/www")),
            ("/home/alice/.bash_history", user("alice", ".bash_history")),
            (
                "/home/alice/.config/fish/config.fish",
                user("alice", ".config/fish"),
            ),
            ("/home/alice/.config", None),
            (
                "/home/alice/.local/share/fish/fish_history",
                user("alice", ".local/share/fish"),
            ),
            ("/home/alice/.local/bin/x", user("alice", ".local/bin")),
            ("/home/alice/.cache/x/y", None),
            ("/home/alice/src/project/main.rs", user("alice", "src")),
            ("/home/alice", None),
            ("/root/.ssh/known_hosts", user("root", ".ssh")),
            // A home passwd does not list is taken as /home/<name>.
            ("/home/bob/notes", user("bob", "notes")),
            ("/home/bob", None),
        ];
        for (path, want) in cases {
            let got = place(path.as_bytes(), &homes()).map(|(k, _)| k);
            assert_eq!(&got, want, "{path}");
        }
    }

    fn change(p: &str, ft: FileType, size: u64) -> Change {
        Change {
            path: p.as_bytes().to_vec(),
            kind: ChangeKind::Added,
            file_type: ft,
            size: Some(size),
        }
    }

    fn report(config: &Config, changes: Vec<Change>) -> Report {
        let out = DiffOutput {
            changes,
            truncated: None,
            unlisted: Vec::new(),
        };
        Report::new("tmpfs", b"/", out, &Classifier::new(config))
    }

    fn cfg(body: &str) -> Config {
        crate::config::parse(&format!("[root]\nbackend = \"tmpfs\"\n{body}"), "t.toml").unwrap()
    }

    #[test]
    fn ranked_grouped_and_never_what_is_kept_ignored_or_refused() {
        use FileType::{Dir, File, Symlink};
        let config = cfg("[diff]\nignore = [\"/var/lib/junk/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\", \"/var/lib/app/data\"]\n");
        let r = report(
            &config,
            vec![
                change("/var/lib/foo", Dir, 0),
                change("/var/lib/foo/big", File, 5000),
                change("/var/lib/small", Dir, 0),
                change("/var/lib/small/x", File, 10),
                change("/var/lib/bluetooth", Dir, 0),
                change("/var/lib/bluetooth/AA/info", File, 3),
                change("/var/log/old", File, 7), // under persisted /var/log
                change("/var/lib/junk/x", File, 99), // ignored
                change("/var/lib/app/other", File, 1), // beside a persisted entry: /var/lib/app would contain it
                change("/etc/foo", Symlink, 0),        // NixOS makes it again
                change("/home/alice/.config/app/s", File, 4),
                change("/home/alice/.bash_history", File, 2),
            ],
        );
        let s = suggest(&r, &config, &homes());
        let whats: Vec<String> = s
            .list
            .iter()
            .map(|x| match &x.what {
                What::Preset { name, level } => format!("preset {name} {level}"),
                What::Entry { path, kind } => format!("{} {path}", kind.as_str()),
                What::User { user, path, kind } => format!(
                    "{} ~{user}/{}",
                    kind.as_str(),
                    String::from_utf8_lossy(path.as_bytes())
                ),
            })
            .collect();
        assert_eq!(
            whats,
            [
                "preset bluetooth normal",
                "directory /var/lib/foo",
                "directory /var/lib/small",
                "directory ~alice/.config/app",
                "file ~alice/.bash_history",
            ]
        );
        assert_eq!(s.list[1].bytes, 5000);
        assert_eq!(s.refused.len(), 1, "{:?}", s.refused);
        assert!(
            s.refused[0].path == "/var/lib/app"
                && s.refused[0]
                    .why
                    .contains("contains directory /var/lib/app/data"),
            "{:?}",
            s.refused
        );
    }

    #[test]
    fn a_file_replaced_by_rename_becomes_its_directory_or_is_refused() {
        use FileType::{Dir, File};
        let config = cfg("");
        let mut renamed = change("/srv/app/state.json", File, 10);
        renamed.kind = ChangeKind::Renamed {
            from: b"/srv/app/state.json.tmp".to_vec(),
        };
        let r = report(
            &config,
            vec![
                change("/srv/app", Dir, 0),
                renamed,
                change("/home/alice/.zsh_history", File, 10),
                change("/home/alice/.zsh_history.new", File, 10),
                change("/etc/app.conf", File, 1),
                change("/etc/app.conf~", File, 1),
            ],
        );
        let s = suggest(&r, &config, &homes());
        let whats: Vec<&What> = s.list.iter().map(|x| &x.what).collect();
        assert_eq!(
            whats,
            [&What::Entry {
                path: abs("/srv/app"),
                kind: Kind::Dir
            }]
        );
        let refused: Vec<&str> = s.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(refused, ["/etc/app.conf", "/home/alice/.zsh_history"]);
        assert!(s.refused[0].why.contains("renaming a new file over it"));
    }

    #[test]
    fn suggestions_render_as_toml_the_config_accepts_and_as_nix() {
        use FileType::{Dir, File};
        let config = cfg("[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n");
        let r = report(
            &config,
            vec![
                change("/var/lib/foo", Dir, 0),
                change("/var/lib/foo/x", File, 1),
                change("/var/lib/bluetooth/x", File, 1),
                change("/etc/adjtime", File, 1),
                change("/home/alice/.config/a b\"c/x", File, 1),
                change("/home/alice/.profile", File, 1),
            ],
        );
        let s = suggest(&r, &config, &homes());
        let toml = s.to_toml(&abs("/persist2"));
        // The snippet, with a level for its preset, next to the config it came from.
        let merged = format!("{toml}\n[levels]\nnormal = \"/persist2\"\n[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n");
        let c = crate::config::parse(&merged, "merged.toml")
            .unwrap_or_else(|e| panic!("{e}\n{merged}"));
        let p2 = c
            .stores
            .iter()
            .find(|s| s.path.to_string() == "/persist2")
            .unwrap();
        let paths: Vec<String> = p2.entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(
            paths,
            ["/var/lib/foo", "/var/lib/bluetooth", "/etc/adjtime"]
        );
        assert_eq!(p2.users[0].entries.len(), 2);
        let nix = s.to_nix(&abs("/persist"));
        assert!(
            nix.contains("darlings.presets = [\n  \"bluetooth\"  # level normal"),
            "{nix}"
        );
        assert!(
            nix.contains(
                "darlings.persistence.\"/persist\" = {\n  directories = [\n    \"/var/lib/foo\""
            ),
            "{nix}"
        );
        assert!(nix.contains("users.\"alice\" = {"), "{nix}");
        assert!(nix.contains("\".config/a b\\\"c\""), "{nix}");
        let v = s.to_json(&abs("/persist"));
        assert_eq!(v["schema"], "darlings.suggest/1");
        assert_eq!(v["suggestions"][0]["kind"], "preset");
    }

    #[test]
    fn nothing_lost_nothing_suggested() {
        let config = cfg("");
        let s = suggest(&report(&config, vec![]), &config, &homes());
        assert!(s.list.is_empty());
        assert!(s.to_toml(&abs("/persist")).contains("# nothing to suggest"));
    }
}
