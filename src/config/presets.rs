//! `[levels]` and `presets`: the presets a config names become ordinary entries of the stores
//! their levels map to, before validation, so that every rule an entry obeys applies to them
//! too. What a preset gives up to the config's own entries, or for want of a store, becomes a
//! note that `darlings plan` and `darlings check` print.

use std::collections::HashMap;

use super::doc::{Scalar, Sp};
use super::raw::{RawConfig, RawEntry, RawPersist, RawPresetValue, RawPresets};
use super::{Kind, Problems};
use crate::paths::AbsPath;
use crate::presets::{self, Level, Preset};

/// One entry a preset gives, before placement.
struct Given {
    level: Level,
    kind: Kind,
    entry: RawEntry,
}

/// What expansion tells the validated config.
#[derive(Default)]
pub(super) struct Expanded {
    /// What was left out, and why.
    pub notes: Vec<String>,
    /// The presets the config turns on (listed, or given entries), sorted.
    pub used: Vec<String>,
}

/// Expands the presets into `raw.persist`.
pub(super) fn expand(raw: &mut RawConfig, p: &mut Problems) -> Expanded {
    let mut out = Expanded::default();
    let stores = level_stores(raw, p);
    let Some(chosen) = chosen(raw, p) else {
        return out;
    };
    let table = match presets::all() {
        Ok(t) => t,
        Err(e) => {
            p.nowhere(e);
            return out;
        }
    };
    let notes = &mut out.notes;
    // The config's own entries, which win over any preset's: the same path, or a directory
    // that already holds the preset's.
    let own: Vec<(AbsPath, Kind, String)> = raw
        .persist
        .iter()
        .flat_map(|s| {
            let store = s.store.as_ref().map(|v| v.v.clone()).unwrap_or_default();
            s.directories
                .iter()
                .map(|e| (e, Kind::Dir))
                .chain(s.files.iter().map(|e| (e, Kind::File)))
                .filter(|(e, _)| e.preset.is_none())
                .filter_map(move |(e, k)| {
                    AbsPath::parse(&e.path.v)
                        .ok()
                        .map(|path| (path, k, store.clone()))
                })
        })
        .collect();
    for (name, value) in chosen {
        let Some(preset) = table.iter().find(|t| t.name == name.v) else {
            let names: Vec<&str> = table.iter().map(|t| t.name.as_str()).collect();
            p.at(
                name.span.clone(),
                format!(
                    "unknown preset {:?}; the presets are {} (see `darlings presets`)",
                    name.v,
                    names.join(", ")
                ),
            );
            continue;
        };
        if !matches!(value, Chosen::Off) {
            out.used.push(preset.name.clone());
        }
        let given = match value {
            Chosen::Default => defaults(preset, &name),
            Chosen::Off => continue,
            Chosen::Levels(levels) => {
                let mut out = Vec::new();
                for l in levels {
                    let Some(level) = Level::parse(&l.level.v) else {
                        p.at(
                            l.level.span.clone(),
                            format!("presets.{}.{} is not a level; write transient, normal, important or secret", name.v, l.level.v),
                        );
                        continue;
                    };
                    for (list, kind) in [(l.directories, Kind::Dir), (l.files, Kind::File)] {
                        for entry in list {
                            out.push(Given { level, kind, entry });
                        }
                    }
                }
                out
            }
        };
        let mut skipped: HashMap<Level, usize> = HashMap::new();
        for mut g in given {
            let Some(store) = store_for(&stores, g.level) else {
                *skipped.entry(g.level).or_default() += 1;
                continue;
            };
            if let Ok(path) = AbsPath::parse(&g.entry.path.v) {
                if let Some((o, _, s)) = own
                    .iter()
                    .find(|(o, k, _)| *o == path || (*k == Kind::Dir && path.starts_with(o)))
                {
                    notes.push(format!(
                        "preset {}: {} {} is left to the config's own entry {o} (store {s})",
                        preset.name,
                        g.kind.as_str(),
                        path
                    ));
                    continue;
                }
            }
            g.entry.preset = Some(Sp {
                v: preset.name.clone(),
                span: name.span.clone(),
            });
            g.entry.level = Some(Sp {
                v: g.level.as_str().to_string(),
                span: name.span.clone(),
            });
            let persist = persist_for(&mut raw.persist, store);
            match g.kind {
                Kind::Dir => persist.directories.push(g.entry),
                Kind::File => persist.files.push(g.entry),
            }
        }
        let mut skipped: Vec<(Level, usize)> = skipped.into_iter().collect();
        skipped.sort();
        for (level, n) in skipped {
            notes.push(format!(
                "preset {}: {n} entr{} at level {level} left out: no store for level {level}; set it in [levels] ({})",
                preset.name,
                if n == 1 { "y" } else { "ies" },
                inheritance(level)
            ));
        }
    }
    out.used.sort();
    out
}

/// How a level finds its store, for the note that says none was found.
fn inheritance(level: Level) -> String {
    let mut chain = vec![level.as_str()];
    let mut l = level;
    while let Some(up) = l.inherits_from() {
        chain.push(up.as_str());
        l = up;
    }
    if chain.len() == 1 {
        "transient inherits from no other level".to_string()
    } else {
        format!("{level} is looked up as {}", chain.join(", then "))
    }
}

enum Chosen {
    Default,
    Off,
    Levels(Vec<super::raw::RawPresetLevel>),
}

fn chosen(raw: &mut RawConfig, p: &mut Problems) -> Option<Vec<(Sp<String>, Chosen)>> {
    let list = match raw.presets.take()? {
        RawPresets::List(names) => names.into_iter().map(|n| (n, Chosen::Default)).collect(),
        RawPresets::Table(items) => items
            .into_iter()
            .map(|(n, v)| {
                let c = match v {
                    RawPresetValue::Default => Chosen::Default,
                    RawPresetValue::Off => Chosen::Off,
                    RawPresetValue::Levels(l) => Chosen::Levels(l),
                };
                (n, c)
            })
            .collect::<Vec<_>>(),
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (n, c) in list {
        if !seen.insert(n.v.clone()) {
            p.at(
                n.span.clone(),
                format!("preset {:?} is named twice; keep one", n.v),
            );
            continue;
        }
        out.push((n, c));
    }
    if raw.levels.is_none() && !out.is_empty() {
        if let Some((n, _)) = out.first() {
            p.at(
                n.span.clone(),
                "presets need stores for their levels; add [levels] with normal = \"/persist\" (and transient, important or secret where they differ)",
            );
        }
    }
    Some(out)
}

/// The store each level maps to, before inheritance.
fn level_stores(raw: &RawConfig, p: &mut Problems) -> HashMap<Level, Sp<String>> {
    let mut out = HashMap::new();
    let Some(levels) = &raw.levels else {
        return out;
    };
    for (key, value) in &levels.values {
        match Level::parse(&key.v) {
            Some(l) => match AbsPath::parse(&value.v) {
                Ok(_) => {
                    out.insert(l, value.clone());
                }
                Err(e) => p.at(
                    value.span.clone(),
                    format!("levels.{} {:?} {e}; give the store's absolute path, e.g. \"/persist\"", key.v, value.v),
                ),
            },
            None => p.at(
                key.span.clone(),
                format!(
                    "unknown level {:?} in [levels]; the levels are transient, normal, important and secret",
                    key.v
                ),
            ),
        }
    }
    out
}

fn store_for(stores: &HashMap<Level, Sp<String>>, level: Level) -> Option<&Sp<String>> {
    let mut l = level;
    loop {
        if let Some(s) = stores.get(&l) {
            return Some(s);
        }
        l = l.inherits_from()?;
    }
}

/// The `[[persist]]` table for a store, matched by the path it means (so `/persist/` written
/// in one place and `/persist` in another still meet), or a new one with default options.
fn persist_for<'a>(persist: &'a mut Vec<RawPersist>, store: &Sp<String>) -> &'a mut RawPersist {
    let want = AbsPath::parse(&store.v).ok();
    let same = |s: &RawPersist| {
        s.store.as_ref().is_some_and(|v| {
            v.v == store.v || (want.is_some() && AbsPath::parse(&v.v).ok() == want)
        })
    };
    let i = match persist.iter().position(same) {
        Some(i) => i,
        None => {
            persist.push(RawPersist {
                span: store.span.clone(),
                store: Some(store.clone()),
                hide_mounts: None,
                allow_trash: None,
                nosuid: None,
                nodev: None,
                directories: Vec::new(),
                files: Vec::new(),
                users: Vec::new(),
            });
            persist.len() - 1
        }
    };
    &mut persist[i]
}

/// A preset's own entries as raw entries, every value pointing at the preset's name in the
/// config (so a problem with one still has a line and a column).
fn defaults(preset: &Preset, name: &Sp<String>) -> Vec<Given> {
    let sp = |v: &str| Sp {
        v: v.to_string(),
        span: name.span.clone(),
    };
    let scalar = |v: &Option<String>| {
        v.as_ref().map(|s| Sp {
            v: Scalar::Str(s.clone()),
            span: name.span.clone(),
        })
    };
    preset
        .entries
        .iter()
        .map(|e| Given {
            level: e.level,
            kind: e.kind,
            entry: RawEntry {
                span: name.span.clone(),
                path: sp(&e.path),
                user: scalar(&e.user),
                group: scalar(&e.group),
                mode: scalar(&e.mode),
                method: e.method.as_deref().map(sp),
                ..RawEntry::default()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Config, Kind};
    use crate::presets::{self, Level, Origin};

    const HEAD: &str = "[root]\nbackend = \"tmpfs\"\n";

    fn ok(body: &str) -> Config {
        match parse(&format!("{body}\n{HEAD}"), "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("refused:\n{body}\n=> {e}"),
        }
    }

    /// (store, path, kind, origin) of one entry.
    type Row = (String, String, Kind, Option<(String, Level)>);

    /// Every entry, in store order.
    fn entries(c: &Config) -> Vec<Row> {
        c.stores
            .iter()
            .flat_map(|s| {
                s.entries.iter().map(|e| {
                    (
                        s.path.to_string(),
                        e.path.to_string(),
                        e.kind,
                        e.origin.as_ref().map(|o| (o.preset.clone(), o.level)),
                    )
                })
            })
            .collect()
    }

    fn origin(p: &str, l: Level) -> Option<(String, Level)> {
        Some((p.to_string(), l))
    }

    #[test]
    fn the_seeds_example_in_toml() {
        // nixos-impermanence's README example, as darlings.toml says it.
        let c = ok(r#"
[levels]
normal = "/persistence"

[presets]
machine-id = {}
networkmanager = { normal.directories = ["/var/lib/NetworkManager"] }

[[persist]]
store = "/persistent"
hide-mounts = true
directories = ["/var/log"]
"#);
        assert_eq!(
            entries(&c),
            [
                ("/persistent".into(), "/var/log".into(), Kind::Dir, None),
                (
                    "/persistence".into(),
                    "/var/lib/NetworkManager".into(),
                    Kind::Dir,
                    origin("networkmanager", Level::Normal)
                ),
            ]
        );
        assert!(c.stores[0].hide_mounts);
        assert!(!c.stores[1].hide_mounts, "a level's new store has defaults");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn two_levels_two_stores_and_inheritance() {
        let c = ok(r#"
presets = ["openssh", "nixos-ids", "networkmanager"]
[levels]
normal = "/persist"
secret = "/persist/secret"
"#);
        let got = entries(&c);
        let keys: Vec<&Row> = got
            .iter()
            .filter(|e| e.1.starts_with("/etc/ssh/"))
            .collect();
        assert_eq!(keys.len(), 4);
        assert!(keys
            .iter()
            .all(|e| e.0 == "/persist/secret" && e.3 == origin("openssh", Level::Secret)));
        assert!(got.contains(&(
            "/persist".into(),
            "/var/lib/nixos".into(),
            Kind::Dir,
            origin("nixos-ids", Level::Important)
        )));
        assert!(got.contains(&(
            "/persist/secret".into(),
            "/etc/NetworkManager/system-connections".into(),
            Kind::Dir,
            origin("networkmanager", Level::Secret)
        )));
        // transient has no store and inherits from none: NetworkManager's leases are left out.
        assert!(!got.iter().any(|e| e.1 == "/var/lib/NetworkManager"));
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        assert!(
            c.notes[0].contains("preset networkmanager: 1 entry at level transient left out: no store for level transient"),
            "{}",
            c.notes[0]
        );
        let key = c
            .stores
            .iter()
            .flat_map(|s| &s.entries)
            .find(|e| e.path.to_string() == "/etc/ssh/ssh_host_ed25519_key")
            .unwrap();
        assert_eq!(key.mode, 0o600);
        assert_eq!(key.method, crate::config::Method::Symlink);
    }

    #[test]
    fn a_transient_store_serves_every_level() {
        let c = ok(
            "presets = [\"networkmanager\", \"postgresql\"]\n[levels]\ntransient = \"/persist\"\n",
        );
        let got = entries(&c);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|e| e.0 == "/persist"));
        assert!(c.notes.is_empty());
    }

    #[test]
    fn the_configs_own_entries_win() {
        let c = ok(r#"
presets = ["networkmanager", "journald"]
[levels]
transient = "/cache"
normal = "/persist"
[[persist]]
store = "/persist"
directories = ["/var/log", { path = "/var/lib/NetworkManager", mode = "0700" }]
"#);
        let got = entries(&c);
        assert!(got.contains(&(
            "/persist".into(),
            "/var/lib/NetworkManager".into(),
            Kind::Dir,
            None
        )));
        assert!(!got.iter().any(|e| e.1 == "/var/log/journal"));
        assert!(!got.iter().any(|e| e.0 == "/cache"), "{got:?}");
        assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
        assert!(c.notes.iter().any(|n| n.contains("journald: directory /var/log/journal is left to the config's own entry /var/log (store /persist)")));
        let own = c.stores[0]
            .entries
            .iter()
            .find(|e| e.path.to_string() == "/var/lib/NetworkManager")
            .unwrap();
        assert_eq!(own.mode, 0o700);
    }

    #[test]
    fn an_override_replaces_the_defaults_and_false_or_empty_mean_none() {
        let c = ok(r#"
[levels]
normal = "/persist"
[presets]
bluetooth = false
sudo = {}
machine-id = true
docker.normal.directories = [{ path = "/var/lib/docker/volumes", mode = "0701" }]
"#);
        let got = entries(&c);
        assert_eq!(
            got,
            [
                (
                    "/persist".into(),
                    "/var/lib/docker/volumes".into(),
                    Kind::Dir,
                    origin("docker", Level::Normal)
                ),
                (
                    "/persist".into(),
                    "/etc/machine-id".into(),
                    Kind::File,
                    origin("machine-id", Level::Normal)
                ),
            ]
        );
        assert_eq!(c.stores[0].entries[0].mode, 0o701);
    }

    #[test]
    fn every_preset_entry_passes_validation() {
        let names: Vec<String> = presets::all()
            .unwrap()
            .iter()
            .map(|p| format!("{:?}", p.name))
            .collect();
        let c = ok(&format!(
            "presets = [{}]\n[levels]\ntransient = \"/cache\"\nnormal = \"/persist\"\nimportant = \"/safe\"\nsecret = \"/secret\"\n",
            names.join(", ")
        ));
        let total: usize = presets::all()
            .unwrap()
            .iter()
            .map(|p| p.entries.len())
            .sum();
        assert_eq!(entries(&c).len(), total);
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        for s in &c.stores {
            for e in &s.entries {
                let o = e.origin.as_ref().unwrap();
                let want = match o.level {
                    Level::Transient => "/cache",
                    Level::Normal => "/persist",
                    Level::Important => "/safe",
                    Level::Secret => "/secret",
                };
                assert_eq!(s.path.to_string(), want, "{}", e.path);
            }
        }
    }

    #[test]
    fn entries_carry_the_origin_the_nixos_module_writes() {
        let c = ok(r#"
[[persist]]
store = "/persist"
directories = [{ path = "/var/lib/bluetooth", preset = "bluetooth", level = "normal" }]
"#);
        assert_eq!(
            c.stores[0].entries[0].origin,
            Some(Origin {
                preset: "bluetooth".into(),
                level: Level::Normal
            })
        );
    }

    #[test]
    fn bad_preset_configs_name_the_place_and_the_fix() {
        let cases: &[(&str, &str)] = &[
            ("presets = [\"opensshd\"]\n[levels]\nnormal = \"/p\"\n", "t.toml:1:12: unknown preset \"opensshd\"; the presets are machine-id, openssh,"),
            ("presets = [\"openssh\"]\n", "t.toml:1:12: presets need stores for their levels; add [levels] with normal = \"/persist\""),
            ("[levels]\nnormall = \"/p\"\n", "t.toml:2:1: unknown level \"normall\" in [levels]; the levels are transient, normal, important and secret"),
            ("[levels]\nnormal = 1\n", "levels.normal must be a store path string"),
            ("[levels]\nnormal = \"persist\"\n", "levels.normal \"persist\" "),
            ("presets = [\"sudo\", \"sudo\"]\n[levels]\nnormal = \"/p\"\n", "t.toml:1:20: preset \"sudo\" is named twice; keep one"),
            ("presets = \"sudo\"\n", "presets must be a list of preset names"),
            ("[levels]\nnormal = \"/p\"\n[presets]\nsudo.high.directories = [\"/x\"]\n", "presets.sudo.high is not a level"),
            ("[levels]\nnormal = \"/p\"\n[presets]\nsudo = 3\n", "presets.sudo must be true (its own entries), false or {} (none)"),
            ("[levels]\nnormal = \"/p\"\n[presets]\nsudo.normal.dirs = [\"/x\"]\n", "unknown key `dirs` in [presets.sudo.normal]"),
            ("[[persist]]\nstore = \"/p\"\ndirectories = [{ path = \"/x\", preset = \"nope\", level = \"normal\" }]\n", "preset \"nope\" is not a preset darlings knows"),
            ("[[persist]]\nstore = \"/p\"\ndirectories = [{ path = \"/x\", preset = \"sudo\" }]\n", "an entry with preset also needs level"),
            ("[[persist]]\nstore = \"/p\"\ndirectories = [{ path = \"/x\", preset = \"sudo\", level = \"hi\" }]\n", "level \"hi\" is not a level"),
            ("[[persist]]\nstore = \"/p\"\nusers.alice.directories = [{ path = \"x\", preset = \"sudo\", level = \"normal\" }]\n", "user alice: preset and level are for the system entries presets give"),
            // A preset's entry inside the config's own store is refused by the usual rule.
            ("presets = [\"journald\"]\n[levels]\nnormal = \"/var/log\"\n", "directory /var/log/journal is inside store /var/log"),
        ];
        for (body, want) in cases {
            let err = match parse(&format!("{body}\n{HEAD}"), "t.toml") {
                Ok(c) => panic!("accepted:\n{body}\n=> {c:?}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{body}\nwant: {want}\ngot: {err}");
        }
    }
}
