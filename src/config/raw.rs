//! The config as written: read from the span-carrying document (doc.rs) into plain structs whose
//! every value keeps its span. Unknown keys and wrong types are problems collected with the rest,
//! so one run lists everything wrong with a file.

use std::ops::Range;

use super::doc::{Node, Scalar, Sp, Table};
use super::Problems;

pub struct RawConfig {
    pub root: Option<RawRoot>,
    pub diff: Option<RawDiff>,
    pub boot: Option<RawBoot>,
    pub report: Option<RawReport>,
    pub persist: Vec<RawPersist>,
    pub levels: Option<RawLevels>,
    pub presets: Option<RawPresets>,
}

/// `[levels]`: a store per persistence level.
pub struct RawLevels {
    pub values: Vec<(Sp<String>, Sp<String>)>,
}

/// `presets = ["openssh", ...]`, or a table of names to `true`, `false` or their own entries by
/// level (`{}`: none at all).
pub enum RawPresets {
    List(Vec<Sp<String>>),
    Table(Vec<(Sp<String>, RawPresetValue)>),
}

pub enum RawPresetValue {
    Default,
    Off,
    Levels(Vec<RawPresetLevel>),
}

/// `networkmanager.normal = { directories = [...], files = [...] }`.
pub struct RawPresetLevel {
    pub level: Sp<String>,
    pub directories: Vec<RawEntry>,
    pub files: Vec<RawEntry>,
}

pub struct RawReport {
    pub prometheus: Option<Sp<String>>,
    pub journald: Option<Sp<bool>>,
}

pub struct RawBoot {
    pub on_failure: Option<Sp<String>>,
}

pub struct RawRoot {
    pub span: Range<usize>,
    pub backend: Option<Sp<String>>,
    pub size: Option<Sp<String>>,
    pub device: Option<Sp<String>>,
    pub subvolume: Option<Sp<String>>,
    pub blank: Option<Sp<String>>,
    pub keep: Option<Sp<RawKeep>>,
    pub old_roots: Option<Sp<String>>,
    pub dataset: Option<Sp<String>>,
    pub destroy_newer_snapshots: Option<Sp<bool>>,
    #[cfg(test)]
    pub fake_root: Option<Sp<String>>,
    #[cfg(test)]
    pub fake_blank: Option<Sp<String>>,
    #[cfg(test)]
    pub fake_fail_rollback: Option<Sp<bool>>,
}

pub struct RawKeep {
    pub count: Option<Sp<i64>>,
    pub days: Option<Sp<i64>>,
}

pub struct RawDiff {
    pub on_boot: Option<Sp<bool>>,
    pub report_dir: Option<Sp<String>>,
    pub ignore: Vec<Sp<String>>,
    pub max_entries: Option<Sp<i64>>,
    pub time_budget: Option<Sp<String>>,
    pub keep_reports: Option<Sp<i64>>,
}

pub struct RawPersist {
    pub span: Range<usize>,
    pub store: Option<Sp<String>>,
    pub hide_mounts: Option<Sp<bool>>,
    pub allow_trash: Option<Sp<bool>>,
    pub nosuid: Option<Sp<bool>>,
    pub nodev: Option<Sp<bool>>,
    pub directories: Vec<RawEntry>,
    pub files: Vec<RawEntry>,
    pub users: Vec<(Sp<String>, RawUser)>,
}

pub struct RawUser {
    pub home: Option<Sp<String>>,
    pub uid: Option<Sp<Scalar>>,
    pub gid: Option<Sp<Scalar>>,
    pub directories: Vec<RawEntry>,
    pub files: Vec<RawEntry>,
}

/// An entry: a bare path string, or a table.
#[derive(Default)]
pub struct RawEntry {
    pub span: Range<usize>,
    pub path: Sp<String>,
    pub user: Option<Sp<Scalar>>,
    pub group: Option<Sp<Scalar>>,
    pub mode: Option<Sp<Scalar>>,
    pub parent: Option<RawParent>,
    pub hide_mount: Option<Sp<bool>>,
    pub allow_trash: Option<Sp<bool>>,
    pub method: Option<Sp<String>>,
    pub seed_from_blank: Option<Sp<bool>>,
    /// `preset` and `level`: where the entry came from (the NixOS module writes them for the
    /// entries its presets gave; the config's own presets set them when they expand).
    pub preset: Option<Sp<String>>,
    pub level: Option<Sp<String>>,
}

impl Default for Sp<String> {
    fn default() -> Self {
        Sp {
            v: String::new(),
            span: 0..0,
        }
    }
}

pub struct RawParent {
    pub user: Option<Sp<Scalar>>,
    pub group: Option<Sp<Scalar>>,
    pub mode: Option<Sp<Scalar>>,
}

/// Reads one table's keys, refusing the ones it does not know.
struct Keys<'t, 'a> {
    table: &'t Table<'a>,
    allowed: &'static [&'static str],
}

impl<'t, 'a> Keys<'t, 'a> {
    fn new(table: &'t Table<'a>, allowed: &'static [&'static str], p: &mut Problems) -> Self {
        for (key, span) in table.keys() {
            if !allowed.contains(&key.as_str()) {
                p.at(span, unknown_key(&key, &table.shown(), allowed));
            }
        }
        Keys { table, allowed }
    }

    fn node(&self, key: &str) -> Option<Node<'a>> {
        debug_assert!(self.allowed.contains(&key));
        self.table.get(key)
    }

    fn scalar(&self, key: &str) -> Option<Sp<Scalar>> {
        match self.node(key)? {
            Node::Scalar(s) => Some(s),
            other => Some(Sp {
                v: Scalar::Other(other.type_str()),
                span: other.span(),
            }),
        }
    }

    fn string(&self, key: &str, p: &mut Problems) -> Option<Sp<String>> {
        let s = self.scalar(key)?;
        match s.v {
            Scalar::Str(v) => Some(Sp { v, span: s.span }),
            other => {
                p.at(
                    s.span,
                    format!(
                        "{} must be a string, not a {}",
                        self.what(key),
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn bool(&self, key: &str, p: &mut Problems) -> Option<Sp<bool>> {
        let s = self.scalar(key)?;
        match s.v {
            Scalar::Bool(v) => Some(Sp { v, span: s.span }),
            other => {
                p.at(
                    s.span,
                    format!(
                        "{} must be true or false, not a {}",
                        self.what(key),
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn int(&self, key: &str, p: &mut Problems) -> Option<Sp<i64>> {
        let s = self.scalar(key)?;
        match s.v {
            Scalar::Int(v) => Some(Sp { v, span: s.span }),
            other => {
                p.at(
                    s.span,
                    format!(
                        "{} must be a number, not a {}",
                        self.what(key),
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn table(&self, key: &str, p: &mut Problems) -> Option<Table<'a>> {
        match self.node(key)? {
            Node::Table(t) => Some(t),
            other => {
                p.at(
                    other.span(),
                    format!(
                        "{} must be a table, not a {}",
                        self.what(key),
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn array(&self, key: &str, p: &mut Problems) -> Vec<Node<'a>> {
        match self.node(key) {
            None => Vec::new(),
            Some(Node::Array(items, _)) => items,
            Some(other) => {
                p.at(
                    other.span(),
                    format!(
                        "{} must be an array, not a {}",
                        self.what(key),
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn strings(&self, key: &str, p: &mut Problems) -> Vec<Sp<String>> {
        let what = self.what(key);
        self.array(key, p)
            .into_iter()
            .filter_map(|n| match n {
                Node::Scalar(Sp {
                    v: Scalar::Str(v),
                    span,
                }) => Some(Sp { v, span }),
                other => {
                    p.at(
                        other.span(),
                        format!("{what} must hold strings, not a {}", other.type_str()),
                    );
                    None
                }
            })
            .collect()
    }

    /// `persist.hide-mounts` for messages.
    fn what(&self, key: &str) -> String {
        if self.table.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.table.name)
        }
    }
}

/// The message for an unknown key, with the likely intended spelling when there is one: the
/// NixOS module's camelCase names, and impermanence's `directory` / `file` for `path`.
fn unknown_key(key: &str, table: &str, allowed: &[&str]) -> String {
    let kebab: String = key
        .chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['-', c.to_ascii_lowercase()]
            } else if c == '_' {
                vec!['-']
            } else {
                vec![c]
            }
        })
        .collect();
    let hint = if kebab != key && allowed.contains(&kebab.as_str()) {
        format!("; did you mean `{kebab}`?")
    } else if matches!(key, "directory" | "file") && allowed.contains(&"path") {
        "; darlings spells it `path`".to_string()
    } else if key == "parentDirectory" && allowed.contains(&"parent") {
        "; darlings spells it `parent`".to_string()
    } else {
        let names: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
        format!("; the keys here are {}", names.join(", "))
    };
    format!("unknown key `{key}` in {table}{hint}")
}

const TOP: &[&str] = &[
    "root", "diff", "boot", "report", "persist", "levels", "presets",
];
const ROOT: &[&str] = &[
    "backend",
    "size",
    "device",
    "subvolume",
    "blank",
    "keep",
    "old-roots",
    "dataset",
    "destroy-newer-snapshots",
    #[cfg(test)]
    "fake-root",
    #[cfg(test)]
    "fake-blank",
    #[cfg(test)]
    "fake-fail-rollback",
];
const KEEP: &[&str] = &["count", "days"];
const DIFF: &[&str] = &[
    "on-boot",
    "report-dir",
    "ignore",
    "max-entries",
    "time-budget",
    "keep-reports",
];
const BOOT: &[&str] = &["on-failure"];
const REPORT: &[&str] = &["prometheus", "journald"];
const PERSIST: &[&str] = &[
    "store",
    "hide-mounts",
    "allow-trash",
    "nosuid",
    "nodev",
    "directories",
    "files",
    "users",
];
const USER: &[&str] = &["home", "uid", "gid", "directories", "files"];
const DIR_ENTRY: &[&str] = &[
    "path",
    "user",
    "group",
    "mode",
    "parent",
    "hide-mount",
    "allow-trash",
    "seed-from-blank",
    "preset",
    "level",
];
const FILE_ENTRY: &[&str] = &[
    "path",
    "user",
    "group",
    "mode",
    "parent",
    "method",
    "seed-from-blank",
    "preset",
    "level",
];
const PARENT: &[&str] = &["user", "group", "mode"];

pub fn read(doc: &Table<'_>, p: &mut Problems) -> RawConfig {
    let top = Keys::new(doc, TOP, p);
    let root = top.table("root", p).map(|t| read_root(&t, p));
    let diff = top.table("diff", p).map(|t| {
        let k = Keys::new(&t, DIFF, p);
        RawDiff {
            on_boot: k.bool("on-boot", p),
            report_dir: k.string("report-dir", p),
            ignore: k.strings("ignore", p),
            max_entries: k.int("max-entries", p),
            time_budget: k.string("time-budget", p),
            keep_reports: k.int("keep-reports", p),
        }
    });
    let boot = top.table("boot", p).map(|t| {
        let k = Keys::new(&t, BOOT, p);
        RawBoot {
            on_failure: k.string("on-failure", p),
        }
    });
    let report = top.table("report", p).map(|t| {
        let k = Keys::new(&t, REPORT, p);
        RawReport {
            prometheus: k.string("prometheus", p),
            journald: k.bool("journald", p),
        }
    });
    let persist = match top.node("persist") {
        None => Vec::new(),
        Some(Node::Array(items, _)) => items
            .into_iter()
            .filter_map(|n| match n {
                Node::Table(t) => Some(read_persist(&t, p)),
                other => {
                    p.at(
                        other.span(),
                        format!(
                            "persist must hold tables (one [[persist]] per store), not a {}",
                            other.type_str()
                        ),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            p.at(other.span(), format!("persist must be an array of tables, one per store, not a {}; write [[persist]] (two brackets) above each store", other.type_str()));
            Vec::new()
        }
    };
    let levels = top.table("levels", p).map(|t| read_levels(&t, p));
    let presets = read_presets(&top, p);
    RawConfig {
        root,
        diff,
        boot,
        report,
        persist,
        levels,
        presets,
    }
}

fn read_levels(t: &Table<'_>, p: &mut Problems) -> RawLevels {
    let mut values = Vec::new();
    for (key, span) in t.keys() {
        match t.get(&key) {
            Some(Node::Scalar(Sp {
                v: Scalar::Str(v),
                span: vspan,
            })) => values.push((Sp { v: key, span }, Sp { v, span: vspan })),
            Some(other) => p.at(
                other.span(),
                format!(
                    "levels.{key} must be a store path string such as \"/persist\", not a {}",
                    other.type_str()
                ),
            ),
            None => {}
        }
    }
    RawLevels { values }
}

const PRESET_LEVEL: &[&str] = &["directories", "files"];

fn read_presets(top: &Keys<'_, '_>, p: &mut Problems) -> Option<RawPresets> {
    match top.node("presets")? {
        Node::Array(..) => Some(RawPresets::List(top.strings("presets", p))),
        Node::Table(t) => {
            let mut out = Vec::new();
            for (name, span) in t.keys() {
                let value = match t.get(&name) {
                    Some(Node::Scalar(Sp {
                        v: Scalar::Bool(true),
                        ..
                    })) => RawPresetValue::Default,
                    Some(Node::Scalar(Sp {
                        v: Scalar::Bool(false),
                        ..
                    })) => RawPresetValue::Off,
                    Some(Node::Table(levels)) => {
                        let mut list = Vec::new();
                        for (level, lspan) in levels.keys() {
                            match levels.get(&level) {
                                Some(Node::Table(lt)) => {
                                    let k = Keys::new(&lt, PRESET_LEVEL, p);
                                    list.push(RawPresetLevel {
                                        level: Sp { v: level, span: lspan },
                                        directories: entries(&k, "directories", DIR_ENTRY, p),
                                        files: entries(&k, "files", FILE_ENTRY, p),
                                    });
                                }
                                Some(other) => p.at(
                                    other.span(),
                                    format!("presets.{name}.{level} must be a table such as {{ directories = [\"/var/lib/x\"] }}, not a {}", other.type_str()),
                                ),
                                None => {}
                            }
                        }
                        RawPresetValue::Levels(list)
                    }
                    Some(other) => {
                        p.at(
                            other.span(),
                            format!("presets.{name} must be true (its own entries), false or {{}} (none), or a table of entries by level, not a {}", other.type_str()),
                        );
                        continue;
                    }
                    None => continue,
                };
                out.push((Sp { v: name, span }, value));
            }
            Some(RawPresets::Table(out))
        }
        other => {
            p.at(
                other.span(),
                format!(
                    "presets must be a list of preset names such as [\"openssh\"], or a table, not a {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn read_root(t: &Table<'_>, p: &mut Problems) -> RawRoot {
    let k = Keys::new(t, ROOT, p);
    let keep = k.table("keep", p).map(|kt| {
        let kk = Keys::new(&kt, KEEP, p);
        Sp {
            v: RawKeep {
                count: kk.int("count", p),
                days: kk.int("days", p),
            },
            span: kt.span.clone(),
        }
    });
    RawRoot {
        span: t.span.clone(),
        backend: k.string("backend", p),
        size: k.string("size", p),
        device: k.string("device", p),
        subvolume: k.string("subvolume", p),
        blank: k.string("blank", p),
        keep,
        old_roots: k.string("old-roots", p),
        dataset: k.string("dataset", p),
        destroy_newer_snapshots: k.bool("destroy-newer-snapshots", p),
        #[cfg(test)]
        fake_root: k.string("fake-root", p),
        #[cfg(test)]
        fake_blank: k.string("fake-blank", p),
        #[cfg(test)]
        fake_fail_rollback: k.bool("fake-fail-rollback", p),
    }
}

fn read_persist(t: &Table<'_>, p: &mut Problems) -> RawPersist {
    let k = Keys::new(t, PERSIST, p);
    let store = k.string("store", p);
    if store.is_none() && k.node("store").is_none() {
        p.at(
            t.span.clone(),
            "a [[persist]] table has no store; add store = \"/persist\" (where the persistent filesystem is mounted)",
        );
    }
    let mut users = Vec::new();
    if let Some(ut) = k.table("users", p) {
        for (name, span) in ut.keys() {
            match ut.get(&name) {
                Some(Node::Table(u)) => users.push((Sp { v: name, span }, read_user(&u, p))),
                Some(other) => p.at(
                    other.span(),
                    format!(
                        "persist.users.{name} must be a table of the user's entries, not a {}",
                        other.type_str()
                    ),
                ),
                None => {}
            }
        }
    }
    RawPersist {
        span: t.span.clone(),
        store,
        hide_mounts: k.bool("hide-mounts", p),
        allow_trash: k.bool("allow-trash", p),
        nosuid: k.bool("nosuid", p),
        nodev: k.bool("nodev", p),
        directories: entries(&k, "directories", DIR_ENTRY, p),
        files: entries(&k, "files", FILE_ENTRY, p),
        users,
    }
}

fn read_user(t: &Table<'_>, p: &mut Problems) -> RawUser {
    let k = Keys::new(t, USER, p);
    RawUser {
        home: k.string("home", p),
        uid: k.scalar("uid"),
        gid: k.scalar("gid"),
        directories: entries(&k, "directories", DIR_ENTRY, p),
        files: entries(&k, "files", FILE_ENTRY, p),
    }
}

fn entries(
    k: &Keys<'_, '_>,
    key: &str,
    allowed: &'static [&'static str],
    p: &mut Problems,
) -> Vec<RawEntry> {
    let what = k.what(key);
    k.array(key, p)
        .into_iter()
        .filter_map(|n| match n {
            Node::Scalar(Sp {
                v: Scalar::Str(path),
                span,
            }) => Some(RawEntry {
                span: span.clone(),
                path: Sp { v: path, span },
                ..RawEntry::default()
            }),
            Node::Table(t) => read_entry(&t, allowed, p),
            other => {
                p.at(
                    other.span(),
                    format!(
                        "{what} must hold path strings or tables like {{ path = \"/var/lib/x\", mode = \"0750\" }}, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        })
        .collect()
}

fn read_entry(
    t: &Table<'_>,
    allowed: &'static [&'static str],
    p: &mut Problems,
) -> Option<RawEntry> {
    let k = Keys::new(t, allowed, p);
    let parent = k.table("parent", p).map(|pt| {
        let pk = Keys::new(&pt, PARENT, p);
        RawParent {
            user: pk.scalar("user"),
            group: pk.scalar("group"),
            mode: pk.scalar("mode"),
        }
    });
    let Some(path) = k.string("path", p) else {
        if k.node("path").is_none() {
            p.at(
                t.span.clone(),
                "an entry table has no path; add path = \"/var/lib/x\"",
            );
        }
        return None;
    };
    Some(RawEntry {
        span: t.span.clone(),
        path,
        user: k.scalar("user"),
        group: k.scalar("group"),
        mode: k.scalar("mode"),
        parent,
        hide_mount: allowed
            .contains(&"hide-mount")
            .then(|| k.bool("hide-mount", p))
            .flatten(),
        allow_trash: allowed
            .contains(&"allow-trash")
            .then(|| k.bool("allow-trash", p))
            .flatten(),
        method: allowed
            .contains(&"method")
            .then(|| k.string("method", p))
            .flatten(),
        seed_from_blank: allowed
            .contains(&"seed-from-blank")
            .then(|| k.bool("seed-from-blank", p))
            .flatten(),
        preset: allowed
            .contains(&"preset")
            .then(|| k.string("preset", p))
            .flatten(),
        level: allowed
            .contains(&"level")
            .then(|| k.string("level", p))
            .flatten(),
    })
}
