//! The lost-state report: a backend's change list classified against the config (lost,
//! persisted, ignored), rendered as text that fits one screen whatever its size, or as JSON with
//! a stable, documented schema.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use darlings_backends::bytes::Show;
use darlings_backends::{Change, ChangeKind, DiffOutput, Truncation};
use serde_json::{json, Map, Value};

use crate::config::{Config, Kind};
use crate::glob::Glob;
use crate::paths::AbsPath;

/// Puts a byte path into a JSON object: `name` as a string (lossy when the bytes are not UTF-8),
/// plus `name_bytes`, the exact bytes, only when they are not UTF-8. Consumers that care about
/// exotic names read `_bytes` when present.
pub fn path_fields(obj: &mut Value, name: &str, bytes: &[u8]) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            map.insert(name.to_string(), Value::String(s.to_string()));
        }
        Err(_) => {
            map.insert(
                name.to_string(),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            );
            map.insert(format!("{name}_bytes"), Value::from(bytes.to_vec()));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Lost,
    Persisted,
    Ignored,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Lost => "lost",
            Class::Persisted => "persisted",
            Class::Ignored => "ignored",
        }
    }
}

/// What the classifier needs from the config: persisted paths (with their kind) and the globs.
pub struct Classifier {
    persisted: Vec<(AbsPath, Kind)>,
    ignore: Vec<Glob>,
}

impl Classifier {
    /// Per-user entries whose home comes from passwd are not known here; pass the resolved plan's
    /// targets through `with_targets` when they matter.
    pub fn new(config: &Config) -> Classifier {
        let mut persisted = Vec::new();
        for s in &config.stores {
            persisted.extend(s.entries.iter().map(|e| (e.path.clone(), e.kind)));
            for u in &s.users {
                if let Some(home) = &u.home {
                    persisted.extend(u.entries.iter().map(|e| (home.join(&e.path), e.kind)));
                }
            }
        }
        Classifier {
            persisted,
            ignore: config.diff.ignore.clone(),
        }
    }

    pub fn with_targets(
        mut self,
        targets: impl IntoIterator<Item = (AbsPath, Kind)>,
    ) -> Classifier {
        for t in targets {
            if !self.persisted.contains(&t) {
                self.persisted.push(t);
            }
        }
        self
    }

    /// Persisted wins over ignored: a persisted path is never lost, whatever the globs say.
    /// Directories on the way to a persisted path count as persisted: apply recreates them.
    pub fn classify(&self, path: &[u8]) -> Class {
        let p = AbsPath::from_normal_bytes(path.to_vec());
        for (t, kind) in &self.persisted {
            if p == *t || (*kind == Kind::Dir && p.is_inside(t)) || t.is_inside(&p) {
                return Class::Persisted;
            }
        }
        if self.ignore.iter().any(|g| g.is_match(path)) {
            return Class::Ignored;
        }
        Class::Lost
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub change: Change,
    pub class: Class,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub entries: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, c: &Change) {
        self.entries += 1;
        self.bytes += c.size.unwrap_or(0);
    }
}

/// A classified diff, sorted by path.
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: String,
    pub root: Vec<u8>,
    pub generated: String,
    pub entries: Vec<Entry>,
    pub truncated: Option<Truncation>,
}

impl Report {
    pub fn new(backend: &str, root: &[u8], out: DiffOutput, classifier: &Classifier) -> Report {
        let mut entries: Vec<Entry> = out
            .changes
            .into_iter()
            .map(|change| {
                let class = classifier.classify(&change.path);
                Entry { change, class }
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.change.path.cmp(&b.change.path));
        Report {
            backend: backend.to_string(),
            root: root.to_vec(),
            generated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            entries,
            truncated: out.truncated,
        }
    }

    pub fn tally(&self, class: Class) -> Tally {
        let mut t = Tally::default();
        for e in self.entries.iter().filter(|e| e.class == class) {
            t.add(&e.change);
        }
        t
    }

    /// The `--json` form, schema `darlings.diff/1` (documented in README.md).
    pub fn to_json(&self) -> Value {
        let mut summary = Map::new();
        for c in [Class::Lost, Class::Persisted, Class::Ignored] {
            let t = self.tally(c);
            summary.insert(
                c.as_str().into(),
                json!({ "entries": t.entries, "bytes": t.bytes }),
            );
        }
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let mut v = json!({
                    "kind": e.change.kind.as_str(),
                    "type": e.change.file_type.as_str(),
                    "size": e.change.size,
                    "class": e.class.as_str(),
                });
                path_fields(&mut v, "path", &e.change.path);
                if let ChangeKind::Renamed { from } = &e.change.kind {
                    path_fields(&mut v, "from", from);
                }
                v
            })
            .collect();
        let truncated = match self.truncated {
            None => Value::Null,
            Some(Truncation::MaxEntries(n)) => json!({ "reason": "max-entries", "limit": n }),
            Some(Truncation::TimeBudget(d)) => {
                json!({ "reason": "time-budget", "limit_ms": d.as_millis() as u64 })
            }
        };
        let mut v = json!({
            "schema": "darlings.diff/1",
            "backend": self.backend,
            "generated": self.generated,
            "truncated": truncated,
            "summary": summary,
            "entries": entries,
        });
        path_fields(&mut v, "root", &self.root);
        v
    }

    /// Text for people: totals per class, then the lost entries grouped by directory so that at
    /// most `max_lines` groups are shown, the biggest groups broken down first.
    pub fn to_text(&self, max_lines: usize) -> String {
        let mut s = String::new();
        let lost = self.tally(Class::Lost);
        let kept = self.tally(Class::Persisted);
        let ign = self.tally(Class::Ignored);
        let _ = writeln!(
            s,
            "darlings diff: {} root {}",
            self.backend,
            Show(&self.root)
        );
        let _ = writeln!(
            s,
            "  lost       {:>9} entries {:>10}",
            lost.entries,
            human(lost.bytes)
        );
        let _ = writeln!(
            s,
            "  persisted  {:>9} entries {:>10}",
            kept.entries,
            human(kept.bytes)
        );
        let _ = writeln!(
            s,
            "  ignored    {:>9} entries {:>10}",
            ign.entries,
            human(ign.bytes)
        );
        match self.truncated {
            Some(Truncation::MaxEntries(n)) => {
                let _ = writeln!(
                    s,
                    "  (stopped after {n} entries: the limit; the real diff is larger)"
                );
            }
            Some(Truncation::TimeBudget(d)) => {
                let _ = writeln!(
                    s,
                    "  (stopped after {} ms: the time budget; the real diff is larger)",
                    d.as_millis()
                );
            }
            None => {}
        }
        if lost.entries == 0 {
            let _ = writeln!(s, "\nnothing would be lost.");
            return s;
        }
        let _ = writeln!(s, "\nwould be lost at the next rollback:");
        let lost_paths: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.class == Class::Lost)
            .collect();
        for line in group_lines(&lost_paths, max_lines) {
            let _ = writeln!(s, "{line}");
        }
        s
    }
}

/// A directory and everything lost under it.
#[derive(Default)]
struct Node {
    tally: Tally,
    /// Set when the node itself is a lost entry (not only a parent of some).
    own: Option<(Kind2, u64)>,
    children: BTreeMap<Vec<u8>, Node>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind2 {
    Dir,
    Other,
}

fn group_lines(entries: &[&Entry], max_lines: usize) -> Vec<String> {
    let mut root = Node::default();
    for e in entries {
        let mut node = &mut root;
        node.tally.add(&e.change);
        for comp in e
            .change
            .path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
        {
            node = node.children.entry(comp.to_vec()).or_default();
            node.tally.add(&e.change);
        }
        let k = if e.change.file_type == darlings_backends::FileType::Dir {
            Kind2::Dir
        } else {
            Kind2::Other
        };
        node.own = Some((k, e.change.size.unwrap_or(0)));
    }
    // Start with the top-level groups; repeatedly open the biggest still-closed directory while
    // its children fit in the line budget.
    let mut open: Vec<Vec<u8>> = vec![Vec::new()];
    loop {
        let shown = visible(&root, &open);
        let mut best: Option<(u64, Vec<u8>, usize)> = None;
        for (path, node) in &shown {
            if node.children.is_empty() || open.contains(path) {
                continue;
            }
            let extra = node.children.len() + usize::from(node.own.is_some());
            if shown.len() - 1 + extra > max_lines {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(n, _, _)| node.tally.entries > *n)
            {
                best = Some((node.tally.entries, path.clone(), extra));
            }
        }
        match best {
            Some((_, p, _)) => open.push(p),
            None => break,
        }
    }
    visible(&root, &open)
        .into_iter()
        .map(|(path, node)| {
            let mut shown = b"/".to_vec();
            shown.extend_from_slice(&path);
            let closed_dir = !node.children.is_empty() && !open.contains(&path);
            if closed_dir {
                shown.extend_from_slice(b"/");
                format!(
                    "  {:>9} entries {:>10}  {}",
                    node.tally.entries,
                    human(node.tally.bytes),
                    Show(&shown)
                )
            } else {
                let (k, size) = node.own.unwrap_or((Kind2::Dir, 0));
                let label = if k == Kind2::Dir { "(dir)" } else { "" };
                format!(
                    "  {:>17} {:>10}  {}{}",
                    label,
                    if k == Kind2::Dir {
                        String::new()
                    } else {
                        human(size)
                    },
                    Show(&shown),
                    if k == Kind2::Dir { "/" } else { "" }
                )
            }
        })
        .collect()
}

/// The lines shown for a set of opened directories: the children of every opened directory,
/// plus an opened directory's own entry when it is itself lost. Paths are relative, `/`-joined.
fn visible<'a>(root: &'a Node, open: &[Vec<u8>]) -> Vec<(Vec<u8>, &'a Node)> {
    let mut out = Vec::new();
    fn rec<'a>(
        node: &'a Node,
        path: Vec<u8>,
        open: &[Vec<u8>],
        out: &mut Vec<(Vec<u8>, &'a Node)>,
    ) {
        if !open.contains(&path) {
            out.push((path, node));
            return;
        }
        if node.own.is_some() && !path.is_empty() {
            out.push((path.clone(), node));
        }
        for (name, child) in &node.children {
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            rec(child, p, open, out);
        }
    }
    rec(root, Vec::new(), open, &mut out);
    out
}

/// Sizes for people, powers of 1024.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darlings_backends::FileType;

    fn cfg() -> Config {
        crate::config::parse(
            "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/var/cache/**\", \"/tmp/*\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\nfiles = [\"/etc/machine-id\"]\n",
            "t.toml",
        )
        .unwrap()
    }

    fn added(p: &[u8], ft: FileType, size: Option<u64>) -> Change {
        Change {
            path: p.to_vec(),
            kind: ChangeKind::Added,
            file_type: ft,
            size,
        }
    }

    #[test]
    fn classification_table() {
        let c = Classifier::new(&cfg());
        let cases: &[(&[u8], Class)] = &[
            (b"/var/log", Class::Persisted),
            (b"/var/log/syslog", Class::Persisted),
            (b"/var", Class::Persisted),
            (b"/etc", Class::Persisted),
            (b"/etc/machine-id", Class::Persisted),
            (b"/etc/machine-id.old", Class::Lost),
            (b"/etc/hostname", Class::Lost),
            (b"/var/cache", Class::Ignored),
            (b"/var/cache/apt/x", Class::Ignored),
            (b"/tmp/a", Class::Ignored),
            (b"/tmp/a/b", Class::Lost),
            (b"/var/logs", Class::Lost),
            (b"/home/alice/\xff", Class::Lost),
        ];
        for (p, want) in cases {
            assert_eq!(c.classify(p), *want, "{}", Show(p));
        }
    }

    #[test]
    fn json_has_summary_and_exact_bytes() {
        let out = DiffOutput {
            changes: vec![
                added(b"/home/a/\xffbad", FileType::File, Some(10)),
                added(b"/var/log/x", FileType::File, Some(5)),
                added(b"/var/cache/y", FileType::File, Some(7)),
            ],
            truncated: None,
        };
        let r = Report::new("tmpfs", b"/sysroot", out, &Classifier::new(&cfg()));
        let v = r.to_json();
        assert_eq!(v["schema"], "darlings.diff/1");
        assert_eq!(v["summary"]["lost"]["entries"], 1);
        assert_eq!(v["summary"]["lost"]["bytes"], 10);
        assert_eq!(v["summary"]["persisted"]["bytes"], 5);
        assert_eq!(v["summary"]["ignored"]["entries"], 1);
        assert_eq!(
            v["entries"][0]["path_bytes"],
            json!(b"/home/a/\xffbad".to_vec())
        );
        assert_eq!(v["entries"][0]["class"], "lost");
        assert!(v["entries"][1].get("path_bytes").is_none());
        assert_eq!(v["truncated"], Value::Null);
    }

    #[test]
    fn fifty_thousand_entries_fit_one_screen() {
        let mut changes = Vec::new();
        for i in 0..50_000u32 {
            changes.push(added(
                format!("/home/alice/cache/{}/f{i}", i % 100).as_bytes(),
                FileType::File,
                Some(100),
            ));
        }
        changes.push(added(b"/etc/hostname", FileType::File, Some(6)));
        changes.push(added(b"/root/.bash_history", FileType::File, Some(60)));
        let r = Report::new(
            "tmpfs",
            b"/",
            DiffOutput {
                changes,
                truncated: None,
            },
            &Classifier::new(&cfg()),
        );
        let text = r.to_text(30);
        let lines = text.lines().count();
        assert!(lines <= 30 + 8, "{lines} lines:\n{text}");
        assert!(text.contains("50002 entries"), "{text}");
        assert!(text.contains("/etc/hostname"), "{text}");
        assert!(text.contains("/home/alice/cache/"), "{text}");
        assert!(text.contains("/root/.bash_history"), "{text}");
    }

    #[test]
    fn small_diffs_list_every_path() {
        let out = DiffOutput {
            changes: vec![
                added(b"/a", FileType::Dir, None),
                added(b"/a/b", FileType::File, Some(1)),
                added(b"/c", FileType::File, Some(2048)),
            ],
            truncated: Some(Truncation::MaxEntries(3)),
        };
        let text = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg())).to_text(40);
        assert!(text.contains("/a/b"), "{text}");
        assert!(text.contains("2.0 KiB  /c"), "{text}");
        assert!(text.contains("stopped after 3 entries"), "{text}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
