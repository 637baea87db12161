//! Property test: a valid config means the same however TOML lays it out. Random configs are
//! written by the toml crate (compact and pretty), rearranged node by node into every layout
//! TOML allows (header tables, implicit tables, dotted keys, inline tables, arrays of tables, any
//! key order), and by remarshal's json2toml, the writer nixpkgs' `pkgs.formats.toml` ran up to
//! 25.11; every rendering must parse to the same validated config.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::{json, Map, Value};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use super::{parse, Config};

/// Names with the bytes TOML writers must escape or quote: spaces, quotes, backslashes, `#`,
/// `=`, dots and brackets (which a bare key cannot hold), non-ASCII.
fn name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z][a-z0-9 ._#=\\[\\]\"\\\\é-]{0,12}")
        .expect("regex")
        .prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn mode() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("0750")),
        Just(json!("700")),
        Just(json!("0o755")),
        Just(json!("u=rwx,g=rx,o=")),
        Just(json!("u=rw,go=r")),
        Just(json!("a+rX")),
    ]
}

fn who() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("root")),
        Just(json!("colord")),
        Just(json!(1001)),
        Just(json!("1002")),
    ]
}

/// An entry: a bare path, or a table with some of the optional keys.
fn entry(path: String, dir: bool, home: bool) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        proptest::option::of(who()),
        proptest::option::of(who()),
        proptest::option::of(mode()),
        proptest::option::of((proptest::option::of(who()), proptest::option::of(mode()))),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(move |(bare, user, group, mode, parent, flag)| {
            if bare {
                return json!(path.clone());
            }
            let mut t = Map::new();
            t.insert("path".into(), json!(path.clone()));
            if let Some(u) = user {
                t.insert("user".into(), u);
            }
            if let Some(g) = group {
                t.insert("group".into(), g);
            }
            if let Some(m) = mode {
                t.insert("mode".into(), m);
            }
            if let Some((pu, pm)) = parent.filter(|_| !home) {
                let mut p = Map::new();
                if let Some(u) = pu {
                    p.insert("user".into(), u);
                }
                if let Some(m) = pm {
                    p.insert("mode".into(), m);
                }
                t.insert("parent".into(), Value::Object(p));
            }
            if let Some(f) = flag {
                if dir {
                    t.insert("hide-mount".into(), json!(f));
                    t.insert("allow-trash".into(), json!(!f));
                } else {
                    t.insert("method".into(), json!(if f { "symlink" } else { "auto" }));
                }
            }
            Value::Object(t)
        })
}

/// Entries under distinct top-level names, so that no two nest.
fn entries(prefix: &'static str, abs: bool, dir: bool) -> impl Strategy<Value = Vec<Value>> {
    proptest::collection::btree_set(name(), 0..4).prop_flat_map(move |names| {
        names
            .into_iter()
            .map(|n| {
                let p = if abs {
                    format!("/{prefix}{n}")
                } else {
                    format!("{prefix}{n}")
                };
                entry(p, dir, !abs).boxed()
            })
            .collect::<Vec<_>>()
    })
}

fn user() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(Just(json!("/home/u"))),
        proptest::option::of(0u32..70000),
        proptest::option::of(0u32..70000),
        entries("d ", false, true),
        entries("f ", false, false),
    )
        .prop_map(|(home, uid, gid, dirs, files)| {
            let mut t = Map::new();
            if let Some(h) = home {
                t.insert("home".into(), h);
            }
            if let Some(u) = uid {
                t.insert("uid".into(), json!(u));
            }
            if let Some(g) = gid {
                t.insert("gid".into(), json!(g));
            }
            if !dirs.is_empty() {
                t.insert("directories".into(), Value::Array(dirs));
            }
            if !files.is_empty() {
                t.insert("files".into(), Value::Array(files));
            }
            Value::Object(t)
        })
}

fn store(path: &'static str, prefix: &'static str) -> impl Strategy<Value = Value> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        entries(prefix, true, true),
        entries(
            if prefix == "a" {
                "a-file"
            } else if prefix == "b" {
                "b-file"
            } else {
                "c-file"
            },
            true,
            false,
        ),
        proptest::collection::btree_map(
            prop_oneof![Just("alice"), Just("bob"), Just("carol.x")],
            user(),
            0..3,
        ),
    )
        .prop_map(move |(hide, trash, nosuid, dirs, files, users)| {
            let mut t = Map::new();
            t.insert("store".into(), json!(path));
            if let Some(h) = hide {
                t.insert("hide-mounts".into(), json!(h));
            }
            if let Some(x) = trash {
                t.insert("allow-trash".into(), json!(x));
            }
            if let Some(x) = nosuid {
                t.insert("nosuid".into(), json!(x));
            }
            if !dirs.is_empty() {
                t.insert("directories".into(), Value::Array(dirs));
            }
            if !files.is_empty() {
                t.insert("files".into(), Value::Array(files));
            }
            if !users.is_empty() {
                // Home-relative entries must not collide across stores: only the first store
                // (the one with prefix "a") keeps users.
                // Two users sharing a home would list the same file twice (a real conflict the
                // validator rightly refuses), so each user's home is its own.
                if prefix == "a" {
                    let users = users.into_iter().map(|(k, mut v)| {
                        if let Some(h) = v.get_mut("home") {
                            *h = json!(format!("/home/{k}"));
                        }
                        (k.to_string(), v)
                    });
                    t.insert("users".into(), Value::Object(users.collect()));
                }
            }
            Value::Object(t)
        })
}

fn root() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::option::of(Just("25%")).prop_map(|size| match size {
            Some(s) => json!({ "backend": "tmpfs", "size": s }),
            None => json!({ "backend": "tmpfs" }),
        }),
        (any::<bool>(), proptest::option::of(1u32..9)).prop_map(|(named, count)| {
            let mut t = json!({ "backend": "btrfs", "device": "/dev/disk/by-label/nixos" });
            if named {
                t["subvolume"] = json!("root");
                t["blank"] = json!("root-blank");
            }
            if let Some(c) = count {
                t["keep"] = json!({ "count": c, "days": 30 });
            }
            t
        }),
        any::<bool>().prop_map(|destroy| json!({
            "backend": "zfs",
            "dataset": "rpool/local/root",
            "destroy-newer-snapshots": destroy,
            "keep": { "count": 3 },
        })),
    ]
}

/// A whole valid config as the JSON a NixOS module would hand its TOML writer.
fn config() -> impl Strategy<Value = Value> {
    (
        root(),
        any::<bool>(),
        proptest::option::of(Just("halt")),
        store("/persist", "a"),
        proptest::option::of(store("/persist/cache", "b")),
        proptest::option::of(store("/nix/persist/system", "c")),
    )
        .prop_map(|(root, diff, on_failure, a, b, c)| {
            let mut t = Map::new();
            t.insert("root".into(), root);
            if diff {
                t.insert(
                    "diff".into(),
                    json!({
                        "on-boot": true,
                        "report-dir": "/persist/var/log/darlings",
                        "ignore": ["/tmp/**", "/var/cache/*.log"],
                        "max-entries": 5000,
                        "time-budget": "3s",
                    }),
                );
            }
            if let Some(f) = on_failure {
                t.insert("boot".into(), json!({ "on-failure": f }));
            }
            let stores: Vec<Value> = [Some(a), b, c].into_iter().flatten().collect();
            t.insert("persist".into(), Value::Array(stores));
            Value::Object(t)
        })
}

// ---- rendering: one JSON value, many TOML layouts ------------------------------------------

/// A table's rendering.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `[a.b]` with its own header.
    Header,
    /// No header of its own when it holds only subtables (an implicit table).
    Implicit,
    /// `a.b.c = ...` inside its parent.
    Dotted,
    /// `a = { ... }`.
    Inline,
}

/// Decides each node's style from a stream of choices, so that one seed gives one layout.
struct Chooser<'a> {
    choices: &'a [u8],
    next: usize,
}

impl Chooser<'_> {
    fn pick(&mut self, n: u8) -> u8 {
        let c = self
            .choices
            .get(self.next % self.choices.len().max(1))
            .copied()
            .unwrap_or(0);
        self.next += 1;
        c % n
    }

    fn style(&mut self) -> Style {
        match self.pick(4) {
            0 => Style::Header,
            1 => Style::Implicit,
            2 => Style::Dotted,
            _ => Style::Inline,
        }
    }
}

fn scalar(v: &Value) -> toml_edit::Value {
    match v {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => n.as_i64().unwrap_or_default().into(),
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => {
            let mut arr = Array::new();
            for e in a {
                arr.push(scalar(e));
            }
            toml_edit::Value::Array(arr)
        }
        Value::Object(o) => {
            let mut t = InlineTable::new();
            for (k, v) in o {
                t.insert(k, scalar(v));
            }
            toml_edit::Value::InlineTable(t)
        }
        Value::Null => "".into(),
    }
}

fn shuffled<'v>(o: &'v Map<String, Value>, ch: &mut Chooser) -> Vec<(&'v String, &'v Value)> {
    let mut kv: Vec<_> = o.iter().collect();
    for i in (1..kv.len()).rev() {
        let j = usize::from(ch.pick(u8::try_from(i + 1).unwrap_or(u8::MAX)));
        kv.swap(i, j.min(i));
    }
    kv
}

/// Builds a non-inline table, choosing a style for every subtable and array of tables.
fn table(o: &Map<String, Value>, ch: &mut Chooser, dotted: bool) -> Table {
    let mut t = Table::new();
    t.set_dotted(dotted);
    for (k, v) in shuffled(o, ch) {
        match v {
            Value::Object(sub) => {
                // An empty table can only be written inline: as a dotted or implicit table it
                // would vanish from the document.
                let style = if sub.is_empty() {
                    Style::Inline
                } else if dotted {
                    pick_dotted(ch)
                } else {
                    ch.style()
                };
                match style {
                    Style::Inline => {
                        t.insert(k, Item::Value(scalar(v)));
                    }
                    Style::Dotted => {
                        t.insert(k, Item::Table(table(sub, ch, true)));
                    }
                    Style::Header | Style::Implicit => {
                        let mut st = table(sub, ch, false);
                        st.set_implicit(matches!(style, Style::Implicit));
                        t.insert(k, Item::Table(st));
                    }
                }
            }
            Value::Array(a)
                if !dotted
                    && !a.is_empty()
                    && a.iter().all(Value::is_object)
                    && ch.pick(2) == 0 =>
            {
                let mut aot = ArrayOfTables::new();
                for e in a {
                    if let Value::Object(eo) = e {
                        aot.push(table(eo, ch, false));
                    }
                }
                t.insert(k, Item::ArrayOfTables(aot));
            }
            other => {
                t.insert(k, Item::Value(scalar(other)));
            }
        }
    }
    t
}

/// Inside a dotted table only dotted or inline subtables can follow.
fn pick_dotted(ch: &mut Chooser) -> Style {
    if ch.pick(2) == 0 {
        Style::Dotted
    } else {
        Style::Inline
    }
}

fn render(v: &Value, choices: &[u8]) -> String {
    let Value::Object(o) = v else {
        return String::new();
    };
    let mut ch = Chooser { choices, next: 0 };
    let mut doc = DocumentMut::new();
    let top = table(o, &mut ch, false);
    for (k, item) in top.iter() {
        doc.insert(k, item.clone());
    }
    doc.to_string()
}

fn json_of_toml(text: &str) -> Result<Value, String> {
    let v: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn parsed(text: &str, what: &str) -> Result<Config, TestCaseError> {
    parse(text, what).map_err(|e| TestCaseError::fail(format!("{what} refused:\n{text}\n{e}")))
}

#[test]
fn every_layout_parses_to_the_same_config() {
    let mut runner = TestRunner::new(PropConfig {
        cases: 400,
        ..PropConfig::default()
    });
    let strategy = (config(), proptest::collection::vec(any::<u8>(), 1..64));
    runner
        .run(&strategy, |(value, choices)| {
            let compact =
                toml::to_string(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = parsed(&compact, "toml::to_string")?;
            let pretty =
                toml::to_string_pretty(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&parsed(&pretty, "toml::to_string_pretty")?, &want);
            for (i, rot) in [0usize, 7, 19, 31].iter().enumerate() {
                let mut c = choices.clone();
                let n = c.len();
                c.rotate_left(rot % n);
                let text = render(&value, &c);
                // The layout must mean the same document, or the test would prove nothing.
                prop_assert_eq!(
                    json_of_toml(&text).map_err(TestCaseError::fail)?,
                    value.clone(),
                    "layout {} is not the same document:\n{}",
                    i,
                    text
                );
                prop_assert_eq!(&parsed(&text, "a rearranged layout")?, &want, "{}", text);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The layouts the issue names, written out: each must parse, and the same way.
#[test]
fn the_layouts_writers_emit_parse_alike() {
    let texts = [
        // Implicit tables: no [persist.users.alice] header (pkgs.formats.toml, json2toml).
        "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/p\"\n[[persist.users.alice.directories]]\npath = \"d\"\nmode = \"0700\"\n",
        // Dotted keys.
        "root.backend = \"tmpfs\"\npersist = [{ store = \"/p\", users.alice.directories = [{ path = \"d\", mode = \"0700\" }] }]\n",
        // Inline tables only.
        "root = { backend = \"tmpfs\" }\npersist = [{ store = \"/p\", users = { alice = { directories = [{ path = \"d\", mode = \"0700\" }] } } }]\n",
        // Headers for everything, keys in another order.
        "[[persist]]\nstore = \"/p\"\n[persist.users.alice]\ndirectories = [{ mode = \"0700\", path = \"d\" }]\n[root]\nbackend = \"tmpfs\"\n",
    ];
    let first = parse(texts[0], "t.toml").unwrap();
    for t in &texts[1..] {
        assert_eq!(parse(t, "t.toml").unwrap(), first, "{t}");
    }
    assert_eq!(first.stores[0].users[0].entries[0].mode, 0o700);
}

/// remarshal 0.17.1's json2toml, which nixpkgs' pkgs.formats.toml ran up to 25.11. tests/setup
/// installs it; without it this test fails and says so, unless DARLINGS_SKIP_REMARSHAL=1.
#[test]
fn remarshal_json2toml_output_parses_to_the_same_config() {
    let python = std::env::var_os("DARLINGS_REMARSHAL_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/cache/darlings-test/remarshal-0.17.1/bin/python".into());
    if !python.exists() {
        if std::env::var_os("DARLINGS_SKIP_REMARSHAL").is_some() {
            eprintln!("SKIPPED (DARLINGS_SKIP_REMARSHAL): remarshal's json2toml layouts");
            return;
        }
        panic!(
            "{} not found: run tests/setup, which installs remarshal 0.17.1 there (or set DARLINGS_REMARSHAL_PYTHON, or DARLINGS_SKIP_REMARSHAL=1 to skip this test)",
            python.display()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(PropConfig {
        cases: 100,
        ..PropConfig::default()
    });
    let mut values = Vec::new();
    for i in 0..100 {
        let v = config().new_tree(&mut runner).unwrap().current();
        std::fs::write(
            dir.path().join(format!("{i}.json")),
            serde_json::to_vec(&v).unwrap(),
        )
        .unwrap();
        values.push(v);
    }
    // One interpreter for all cases, through json2toml's own entry point (run with its argv).
    let script = "import sys, remarshal\nfor p in sys.argv[1:]:\n    remarshal.run(['json2toml', p, p[:-5] + '.toml'])\n";
    let files: Vec<_> = (0..values.len())
        .map(|i| dir.path().join(format!("{i}.json")))
        .collect();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remarshal failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut implicit = 0;
    for (i, v) in values.iter().enumerate() {
        let text = std::fs::read_to_string(dir.path().join(format!("{i}.toml"))).unwrap();
        assert_eq!(
            json_of_toml(&text).unwrap(),
            *v,
            "json2toml changed the document:\n{text}"
        );
        let want = parse(&toml::to_string(v).unwrap(), "toml").unwrap();
        match parse(&text, "json2toml") {
            Ok(got) => assert_eq!(got, want, "{text}"),
            Err(e) => panic!("json2toml output refused:\n{text}\n{e}"),
        }
        if text.contains("[[persist.users.") {
            implicit += 1;
        }
    }
    // The case that broke in the field must be among the samples.
    assert!(
        implicit > 0,
        "no sample had a [[persist.users.*]] array of tables"
    );
}
