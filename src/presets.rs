//! The preset table (`presets/presets.toml`, embedded in the binary): what each service keeps,
//! at which persistence level, and why. The config expands the presets it names (config/
//! presets.rs), the diff's hints look lost paths up here, and the NixOS module reads the same file.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use crate::config::doc::{self, Node, Scalar, Table};
use crate::config::Kind;
use crate::paths::AbsPath;

/// The table as shipped; `darlings presets` prints it.
pub const DATA: &str = include_str!("../presets/presets.toml");

/// How much a piece of state is worth keeping, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// All state, caches included.
    Transient,
    /// Settings and data one could recover, with tedium.
    Normal,
    /// State that cannot easily be recovered: databases and the like.
    Important,
    /// Important and confidential.
    Secret,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Transient,
        Level::Normal,
        Level::Important,
        Level::Secret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Transient => "transient",
            Level::Normal => "normal",
            Level::Important => "important",
            Level::Secret => "secret",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The level whose store this one uses when it has none of its own (nixos-impermanence's
    /// rule: normal from transient, important and secret both from normal).
    pub fn inherits_from(self) -> Option<Level> {
        match self {
            Level::Transient => None,
            Level::Normal => Some(Level::Transient),
            Level::Important | Level::Secret => Some(Level::Normal),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an entry came from, when a preset gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub preset: String,
    pub level: Level,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "preset {}, level {}", self.preset, self.level)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: String,
    pub about: String,
    /// The `<module>.persistence` option the NixOS module declares for it.
    pub nixos_option: Option<String>,
    /// What turns it on in NixOS: a boolean option's path, `always`, or only `darlings.presets`.
    pub nixos_when: Option<String>,
    pub entries: Vec<PresetEntry>,
}

/// One entry of a preset, as written in the data file (strings: the config validates them the
/// same way as its own entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetEntry {
    pub level: Level,
    pub kind: Kind,
    pub path: String,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub method: Option<String>,
    pub why: String,
}

impl PresetEntry {
    /// Whether this entry keeps `path` (itself, or inside it when it is a directory).
    pub fn covers(&self, path: &AbsPath) -> bool {
        let Ok(own) = AbsPath::parse(&self.path) else {
            return false;
        };
        *path == own || (self.kind == Kind::Dir && path.starts_with(&own))
    }
}

/// The embedded table, parsed once. An error is a bug in the shipped file, which the tests
/// rule out; it is still reported, never a panic.
pub fn all() -> Result<&'static [Preset], String> {
    static PARSED: OnceLock<Result<Vec<Preset>, String>> = OnceLock::new();
    PARSED
        .get_or_init(|| parse(DATA))
        .as_ref()
        .map(|v| v.as_slice())
        .map_err(|e| format!("the embedded preset table is invalid: {e}"))
}

pub fn find(name: &str) -> Option<&'static Preset> {
    all().ok()?.iter().find(|p| p.name == name)
}

/// The preset entries that would keep `path`, in table order.
pub fn covering(path: &AbsPath) -> Vec<(&'static Preset, &'static PresetEntry)> {
    let Ok(presets) = all() else {
        return Vec::new();
    };
    presets
        .iter()
        .flat_map(|p| p.entries.iter().map(move |e| (p, e)))
        .filter(|(_, e)| e.covers(path))
        .collect()
}

/// The preset entries by path, for looking up every lost path of a diff cheaply: a lookup
/// hashes the path, and its directory once per run of siblings, instead of comparing it with
/// every entry of the table, which a 50,000-entry diff felt.
pub struct Index {
    by_path: HashMap<&'static [u8], (Kind, &'static Preset, &'static PresetEntry)>,
}

impl Index {
    /// The index of the embedded table (empty if it were invalid, which the tests rule out).
    pub fn get() -> &'static Index {
        static INDEX: OnceLock<Index> = OnceLock::new();
        INDEX.get_or_init(|| Index::of(all().unwrap_or_default()))
    }

    fn of(presets: &'static [Preset]) -> Index {
        let mut by_path = HashMap::new();
        for p in presets {
            for e in &p.entries {
                // No two presets overlap (a test holds the table to it): the first is the one.
                by_path.entry(e.path.as_bytes()).or_insert((e.kind, p, e));
            }
        }
        Index { by_path }
    }

    /// The preset entry that keeps `path` (itself, or inside a preset's directory); the tests'
    /// reference for `lookup_near`.
    #[cfg(test)]
    pub fn lookup(&self, path: &[u8]) -> Option<(&'static Preset, &'static PresetEntry)> {
        self.lookup_near(path, &mut Siblings::default())
    }

    /// `lookup` for a run of paths in the diff's order, where siblings follow each other: what
    /// covers their directory is looked up once per directory, not once per entry.
    pub fn lookup_near(
        &self,
        path: &[u8],
        near: &mut Siblings,
    ) -> Option<(&'static Preset, &'static PresetEntry)> {
        if let Some(&(_, p, e)) = self.by_path.get(path) {
            return Some((p, e));
        }
        let dir = match path.iter().rposition(|&b| b == b'/') {
            Some(0) | None => return None,
            Some(i) => &path[..i],
        };
        if near.dir.as_deref() != Some(dir) {
            near.dir = Some(dir.to_vec());
            near.hit = self.covering_dir(dir);
        }
        near.hit
    }

    /// The preset directory that is `dir` or holds it.
    fn covering_dir(&self, dir: &[u8]) -> Option<(&'static Preset, &'static PresetEntry)> {
        let mut at = dir.len();
        loop {
            if let Some(&(Kind::Dir, p, e)) = self.by_path.get(&dir[..at]) {
                return Some((p, e));
            }
            match dir[..at].iter().rposition(|&b| b == b'/') {
                Some(0) | None => return None,
                Some(i) => at = i,
            }
        }
    }
}

/// The directory `Index::lookup_near` looked up last, and what covers it.
#[derive(Debug, Default)]
pub struct Siblings {
    dir: Option<Vec<u8>>,
    hit: Option<(&'static Preset, &'static PresetEntry)>,
}

/// Parses a preset table; split from the embedded copy so that tests can feed it broken ones.
pub fn parse(text: &str) -> Result<Vec<Preset>, String> {
    let document = doc::parse(text).map_err(|e| e.message)?;
    let top = doc::top(&document);
    for (k, _) in top.keys() {
        if k != "presets" {
            return Err(format!("unknown top-level key `{k}`"));
        }
    }
    let Some(Node::Table(presets)) = top.get("presets") else {
        return Err("no [presets] table".into());
    };
    let mut out = Vec::new();
    for (name, _) in presets.keys() {
        let Some(Node::Table(t)) = presets.get(&name) else {
            return Err(format!("presets.{name} is not a table"));
        };
        out.push(preset(&name, &t)?);
    }
    Ok(out)
}

fn string(t: &Table<'_>, key: &str) -> Result<Option<String>, String> {
    match t.get(key) {
        None => Ok(None),
        Some(Node::Scalar(s)) => match s.v {
            Scalar::Str(v) => Ok(Some(v)),
            other => Err(format!(
                "{}.{key} must be a string, not a {}",
                t.name,
                other.type_str()
            )),
        },
        Some(other) => Err(format!(
            "{}.{key} must be a string, not a {}",
            t.name,
            other.type_str()
        )),
    }
}

fn only(t: &Table<'_>, allowed: &[&str]) -> Result<(), String> {
    for (k, _) in t.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(format!("unknown key `{k}` in {}", t.name));
        }
    }
    Ok(())
}

fn preset(name: &str, t: &Table<'_>) -> Result<Preset, String> {
    only(t, &["about", "nixos", "entries"])?;
    let about = string(t, "about")?.ok_or_else(|| format!("preset {name} has no about"))?;
    let (nixos_option, nixos_when) = match t.get("nixos") {
        None => (None, None),
        Some(Node::Table(n)) => {
            only(&n, &["option", "when"])?;
            (string(&n, "option")?, string(&n, "when")?)
        }
        Some(_) => return Err(format!("presets.{name}.nixos must be a table")),
    };
    let Some(Node::Array(items, _)) = t.get("entries") else {
        return Err(format!("preset {name} has no entries"));
    };
    let mut entries = Vec::new();
    for item in items {
        let Node::Table(e) = item else {
            return Err(format!("presets.{name}.entries must hold tables"));
        };
        only(
            &e,
            &[
                "level",
                "directory",
                "file",
                "user",
                "group",
                "mode",
                "method",
                "why",
            ],
        )?;
        let level = string(&e, "level")?
            .and_then(|l| Level::parse(&l))
            .ok_or_else(|| {
                format!(
                    "an entry of preset {name} has no level transient, normal, important or secret"
                )
            })?;
        let (kind, path) = match (string(&e, "directory")?, string(&e, "file")?) {
            (Some(d), None) => (Kind::Dir, d),
            (None, Some(f)) => (Kind::File, f),
            _ => {
                return Err(format!(
                    "an entry of preset {name} needs exactly one of directory and file"
                ))
            }
        };
        let method = string(&e, "method")?;
        if method.is_some() && kind == Kind::Dir {
            return Err(format!(
                "preset {name}: directory {path} cannot have a method"
            ));
        }
        let why = string(&e, "why")?
            .filter(|w| !w.trim().is_empty())
            .ok_or_else(|| format!("preset {name}: {path} has no why"))?;
        entries.push(PresetEntry {
            level,
            kind,
            path,
            user: string(&e, "user")?,
            group: string(&e, "group")?,
            mode: string(&e, "mode")?,
            method,
            why,
        });
    }
    Ok(Preset {
        name: name.to_string(),
        about,
        nixos_option,
        nixos_when,
        entries,
    })
}

/// `darlings presets --json` (schema `darlings.presets/1`).
pub fn to_json(presets: &[Preset]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = presets
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "about": p.about,
                "nixos": { "option": p.nixos_option, "when": p.nixos_when },
                "entries": p.entries.iter().map(|e| serde_json::json!({
                    "level": e.level.as_str(),
                    "kind": e.kind.as_str(),
                    "path": e.path,
                    "user": e.user,
                    "group": e.group,
                    "mode": e.mode,
                    "method": e.method,
                    "why": e.why,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "schema": "darlings.presets/1", "presets": list })
}

/// The README's table: one row per entry, generated so that the two never disagree (a test
/// compares them).
pub fn markdown(presets: &[Preset]) -> String {
    let mut out = String::from("| preset | level | path | kind | mode | NixOS option (on when) | why |\n|---|---|---|---|---|---|---|\n");
    for p in presets {
        for e in &p.entries {
            let nixos = match (&p.nixos_option, &p.nixos_when) {
                (Some(o), Some(w)) => format!("`{o}` ({w})"),
                (Some(o), None) => format!("`{o}` (darlings.presets)"),
                (None, _) => "darlings.presets".to_string(),
            };
            let mode = e
                .mode
                .clone()
                .unwrap_or_else(|| if e.kind == Kind::Dir { "0755" } else { "0644" }.to_string());
            let kind = match (e.kind, e.method.as_deref()) {
                (Kind::File, Some("symlink")) => "file (symlink)",
                (k, _) => k.as_str(),
            };
            out.push_str(&format!(
                "| {} | {} | `{}` | {kind} | {mode} | {nixos} | {} |\n",
                p.name, e.level, e.path, e.why
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_names_are_unique() {
        let presets = all().unwrap();
        assert!(presets.len() >= 20, "{} presets", presets.len());
        let mut names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), presets.len());
        for required in [
            "openssh",
            "networkmanager",
            "bluetooth",
            "machine-id",
            "systemd-coredump",
            "logrotate",
            "sudo",
            "tailscale",
            "nixos-ids",
            "docker",
            "podman",
            "libvirt",
            "fwupd",
            "cups",
            "chrony",
            "timesyncd",
            "journald",
        ] {
            assert!(find(required).is_some(), "{required}");
        }
    }

    #[test]
    fn no_two_presets_keep_the_same_or_nested_paths() {
        let presets = all().unwrap();
        let entries: Vec<(&str, &PresetEntry)> = presets
            .iter()
            .flat_map(|p| p.entries.iter().map(move |e| (p.name.as_str(), e)))
            .collect();
        for (i, (a, ea)) in entries.iter().enumerate() {
            let pa = AbsPath::parse(&ea.path).unwrap();
            for (b, eb) in &entries[i + 1..] {
                let pb = AbsPath::parse(&eb.path).unwrap();
                assert!(
                    !ea.covers(&pb) && !eb.covers(&pa),
                    "{a} {} and {b} {} overlap",
                    ea.path,
                    eb.path
                );
            }
        }
    }

    #[test]
    fn levels_inherit_as_nixos_impermanence_does() {
        assert_eq!(Level::Transient.inherits_from(), None);
        assert_eq!(Level::Normal.inherits_from(), Some(Level::Transient));
        assert_eq!(Level::Important.inherits_from(), Some(Level::Normal));
        assert_eq!(Level::Secret.inherits_from(), Some(Level::Normal));
    }

    #[test]
    fn broken_tables_are_refused_with_the_reason() {
        let cases = [
            ("[presets.a]\nabout = \"x\"\n", "no entries"),
            (
                "[presets.a]\nabout = \"x\"\n[[presets.a.entries]]\nlevel = \"normal\"\ndirectory = \"/a\"\n",
                "no why",
            ),
            (
                "[presets.a]\nabout = \"x\"\n[[presets.a.entries]]\nlevel = \"high\"\ndirectory = \"/a\"\nwhy = \"w\"\n",
                "no level",
            ),
            (
                "[presets.a]\nabout = \"x\"\n[[presets.a.entries]]\nlevel = \"normal\"\ndirectory = \"/a\"\nfile = \"/b\"\nwhy = \"w\"\n",
                "exactly one",
            ),
            (
                "[presets.a]\nabout = \"x\"\n[[presets.a.entries]]\nlevel = \"normal\"\ndirectory = \"/a\"\nmethod = \"symlink\"\nwhy = \"w\"\n",
                "cannot have a method",
            ),
            (
                "[presets.a]\nabout = \"x\"\ncolour = 1\n[[presets.a.entries]]\nlevel = \"normal\"\ndirectory = \"/a\"\nwhy = \"w\"\n",
                "unknown key `colour`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_index_finds_paths_in_and_at_preset_entries() {
        let ix = Index::get();
        let hit = |p: &[u8]| ix.lookup(p).map(|(p, e)| (p.name.as_str(), e.level));
        assert_eq!(
            hit(b"/var/lib/bluetooth"),
            Some(("bluetooth", Level::Normal))
        );
        assert_eq!(
            hit(b"/var/lib/bluetooth/00:11/info"),
            Some(("bluetooth", Level::Normal))
        );
        assert_eq!(
            hit(b"/etc/ssh/ssh_host_rsa_key"),
            Some(("openssh", Level::Secret))
        );
        assert_eq!(hit(b"/etc/ssh/ssh_host_rsa_key.bak"), None);
        assert_eq!(hit(b"/var/lib/bluetoothd"), None);
        assert_eq!(hit(b"/var/lib"), None);
    }

    #[test]
    fn the_index_agrees_with_the_linear_rule_for_every_entry() {
        let ix = Index::get();
        let mut probes: Vec<String> = Vec::new();
        for p in all().unwrap() {
            for e in &p.entries {
                let own = e.path.to_string();
                probes.extend([
                    own.clone(),
                    format!("{own}/x"),
                    format!("{own}/x/y"),
                    format!("{own}x"),
                    format!("{own}.new"),
                ]);
                if let Some((parent, _)) = own.rsplit_once('/') {
                    probes.push(parent.to_string());
                }
            }
        }
        probes.sort();
        let mut near = Siblings::default();
        for probe in probes {
            let Ok(abs) = AbsPath::parse(&probe) else {
                continue;
            };
            let cached = ix
                .lookup_near(probe.as_bytes(), &mut near)
                .map(|(p, e)| (p.name.as_str(), e.path.to_string()));
            let want = covering(&abs)
                .first()
                .map(|(p, e)| (p.name.as_str(), e.path.to_string()));
            let got = ix
                .lookup(probe.as_bytes())
                .map(|(p, e)| (p.name.as_str(), e.path.to_string()));
            assert_eq!(got, want, "{probe}");
            assert_eq!(cached, want, "{probe} (after its sibling)");
        }
    }

    #[test]
    fn covers_is_the_path_or_inside_a_directory() {
        let nm = find("networkmanager").unwrap();
        let dir = &nm.entries[0];
        assert!(dir.covers(&AbsPath::parse("/var/lib/NetworkManager").unwrap()));
        assert!(dir.covers(&AbsPath::parse("/var/lib/NetworkManager/x/y").unwrap()));
        assert!(!dir.covers(&AbsPath::parse("/var/lib/NetworkManagerX").unwrap()));
        assert!(!dir.covers(&AbsPath::parse("/var/lib").unwrap()));
        let key = &find("openssh").unwrap().entries[0];
        assert!(!key.covers(&AbsPath::parse("/etc/ssh/ssh_host_ed25519_key/x").unwrap()));
    }
}
