//! The lost-state report: a backend's change list classified against the config (lost,
//! persisted, ignored), rendered as text that fits one screen whatever its size, or as JSON with
//! a stable, documented schema.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use darlings_backends::bytes::Show;
use darlings_backends::{
    Backend, BackendError, Change, ChangeKind, DiffLimits, DiffOutput, FileType, Truncation,
    Unlisted,
};
use serde_json::{json, Map, Value};

use crate::config::{Config, Kind, Method};
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

/// Why an entry is lost although a persisted path concerns it: the report says so, since a user
/// reading "persisted /var/lib/app" next to it would otherwise believe it safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Beneath a persisted directory (or a store's mount point) on the root's own filesystem:
    /// written there before the bind existed, or hidden beneath it. The store never holds it.
    UnderPersisted(Arc<[u8]>),
    /// At a persisted path, or on the way to one, but not what apply binds or walks through
    /// there (a file where a directory is persisted, `/etc` replaced by a file): apply refuses
    /// it, and the rollback erases it.
    WrongType {
        at: Arc<[u8]>,
        persisted: Arc<[u8]>,
        want: &'static str,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::UnderPersisted(m) => write!(
                f,
                "under persisted {}, but on the root, not in the store",
                Show(m)
            ),
            Why::WrongType {
                at,
                persisted,
                want,
            } if at == persisted => write!(
                f,
                "at persisted {}, but not a {want}: apply refuses it",
                Show(persisted)
            ),
            Why::WrongType {
                persisted, want, ..
            } => write!(
                f,
                "on the way to persisted {}, but not a {want}: apply refuses it",
                Show(persisted)
            ),
        }
    }
}

/// One name in the tree of persisted paths.
#[derive(Default)]
struct Node {
    children: HashMap<Box<[u8]>, u32>,
    /// A mount point darlings binds here: its kind and its path.
    mount: Option<(Kind, Arc<[u8]>)>,
    /// A file persisted with `method = "symlink"`: what belongs here on the root is the link
    /// apply makes into the store, which it makes again at every boot.
    link: bool,
    /// A persisted path at or below this node, for messages.
    example: Option<Arc<[u8]>>,
}

/// What the classifier needs from the config: the persisted paths (with their kind) as a tree
/// of names, and the globs. A check walks the tree once along the path, so it costs O(length
/// of the path) whatever the number of entries or the depth.
///
/// The rule (README, "Safety"): a diff compares the root's own filesystem with the blank, so
/// everything it reports is on the root, never in a store. Persisted are only the mount points
/// themselves (a directory where a directory is persisted, a regular file where a file is) and
/// the directories on the way to them, which apply walks through or recreates. An entry beneath
/// a persisted directory is lost; so is an entry at a persisted path, or on the way to one, of
/// another type. Then ignored if a glob matches, else lost.
pub struct Classifier {
    nodes: Vec<Node>,
    ignore: Vec<Glob>,
    /// Presets the config uses: a lost path one of them would keep is then left out by the
    /// config (its level has no store, or the preset was overridden), not a preset to add.
    presets_in_use: Vec<String>,
}

impl Classifier {
    /// Per-user entries whose home comes from passwd are not known here; pass the resolved plan's
    /// targets through `with_targets` when they matter.
    pub fn new(config: &Config) -> Classifier {
        // Named in the config, or given entries by the NixOS module.
        let mut presets_in_use: Vec<String> = config
            .stores
            .iter()
            .flat_map(|s| s.entries.iter().filter_map(|e| e.origin.as_ref()))
            .map(|o| o.preset.clone())
            .chain(config.presets.iter().cloned())
            .collect();
        presets_in_use.sort();
        presets_in_use.dedup();
        let mut c = Classifier {
            nodes: vec![Node::default()],
            ignore: config.diff.ignore.clone(),
            presets_in_use,
        };
        for s in &config.stores {
            // The store's mount point lives in the root too (the initrd makes it each boot);
            // what the diff sees beneath it is on the root, hidden under the store.
            c.add(&s.path, Kind::Dir, Method::Bind);
            for e in &s.entries {
                c.add(&e.path, e.kind, e.method);
            }
            for u in &s.users {
                if let Some(home) = &u.home {
                    for e in &u.entries {
                        c.add(&home.join(&e.path), e.kind, e.method);
                    }
                }
            }
        }
        c
    }

    fn add(&mut self, path: &AbsPath, kind: Kind, method: Method) {
        let bytes: Arc<[u8]> = Arc::from(path.as_bytes());
        let mut at = 0usize;
        for name in components(&bytes) {
            self.nodes[at].example.get_or_insert_with(|| bytes.clone());
            at = match self.nodes[at].children.get(name) {
                Some(&c) => c as usize,
                None => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(name.into(), id as u32);
                    id
                }
            };
        }
        let node = &mut self.nodes[at];
        node.example.get_or_insert_with(|| bytes.clone());
        // Config validation refuses duplicates; the first one stands.
        if node.mount.is_none() {
            node.link = method == Method::Symlink;
        }
        node.mount.get_or_insert((kind, bytes));
    }

    /// The config's persisted paths and the plan's targets (homes named only in passwd
    /// included): what `darlings diff` and `darlings boot` classify against.
    pub fn of_plan(config: &Config, plan: &crate::plan::Plan) -> Classifier {
        Classifier::new(config)
            .with_targets(plan.binds().map(|b| (b.target.clone(), b.kind, b.method)))
    }

    pub fn with_targets(
        mut self,
        targets: impl IntoIterator<Item = (AbsPath, Kind, Method)>,
    ) -> Classifier {
        for (path, kind, method) in targets {
            self.add(&path, kind, method);
        }
        self
    }

    /// The class of an entry of type `file_type` at `path`, and why it is lost when a
    /// persisted path concerns it. Persisted wins over ignored.
    pub fn classify_entry(&self, path: &[u8], file_type: FileType) -> (Class, Option<Why>) {
        let mut at = 0usize;
        for name in components(path) {
            if let Some((_, m)) = &self.nodes[at].mount {
                return (self.unpersisted(path), Some(Why::UnderPersisted(m.clone())));
            }
            match self.nodes[at].children.get(name) {
                Some(&c) => at = c as usize,
                None => return (self.unpersisted(path), None),
            }
        }
        let node = &self.nodes[at];
        let (want, ok) = match &node.mount {
            Some((Kind::Dir, _)) => ("directory", file_type == FileType::Dir),
            // A regular file there means a program replaced the link by rename: its data is on
            // the root, not in the store (impermanence#175).
            Some((Kind::File, _)) if node.link => {
                ("symlink into the store", file_type == FileType::Symlink)
            }
            Some((Kind::File, _)) => ("regular file", file_type == FileType::File),
            // On the way to a persisted path (`/` is on the way to every one of them).
            None if !node.children.is_empty() => ("directory", file_type == FileType::Dir),
            None => return (self.unpersisted(path), None),
        };
        if ok {
            return (Class::Persisted, None);
        }
        let persisted = match (&node.mount, &node.example) {
            (Some((_, m)), _) | (None, Some(m)) => m.clone(),
            (None, None) => Arc::from(path),
        };
        let why = Why::WrongType {
            at: Arc::from(path),
            persisted,
            want,
        };
        (self.unpersisted(path), Some(why))
    }

    /// The class of what lies beneath `path` when the diff could not list it: beneath a
    /// persisted directory it is on the root, not in the store; on the way to persisted paths it
    /// holds lost entries beside them. Ignored only when a glob covers everything beneath it
    /// (`/tmp/**`), tested with names no real entry has.
    pub fn classify_subtree(&self, path: &[u8]) -> (Class, Option<Why>) {
        let mut probe = path.to_vec();
        if probe.last() != Some(&b'/') {
            probe.push(b'/');
        }
        probe.push(0);
        let (_, why) = self.classify_entry(&probe, FileType::Unknown);
        let mut deeper = probe.clone();
        deeper.extend_from_slice(b"/\0");
        let ignored = self
            .ignore
            .iter()
            .any(|g| g.is_match(&probe) && g.is_match(&deeper));
        let why = match why {
            Some(Why::UnderPersisted(m)) => Some(Why::UnderPersisted(m)),
            _ => None,
        };
        let class = if ignored { Class::Ignored } else { Class::Lost };
        (class, why)
    }

    fn unpersisted(&self, path: &[u8]) -> Class {
        if self.ignore.iter().any(|g| g.is_match(path)) {
            Class::Ignored
        } else {
            Class::Lost
        }
    }
}

/// The names of an absolute path, `/` having none.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|n| !n.is_empty())
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub change: Change,
    pub class: Class,
    pub why: Option<Why>,
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

/// A subtree the diff could not list, classified as a whole.
#[derive(Debug, Clone)]
pub struct UnlistedEntry {
    pub unlisted: Unlisted,
    pub class: Class,
    pub why: Option<Why>,
}

/// A classified diff, in the backend's order (JSON output sorts by path; text groups).
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: String,
    pub root: Vec<u8>,
    pub generated: String,
    pub entries: Vec<Entry>,
    pub truncated: Option<Truncation>,
    pub unlisted: Vec<UnlistedEntry>,
    /// The presets the config uses, for the hints on lost paths a preset would keep.
    pub presets_in_use: Vec<String>,
}

/// What the diff says of a lost path that a preset would keep.
pub struct PresetHint {
    pub preset: &'static str,
    /// The preset's entry (the lost path itself, or the directory it is in).
    pub entry: &'static str,
    pub level: crate::presets::Level,
    pub text: String,
}

/// The lost-state report of `backend`'s root, the one `darlings diff` prints and `darlings boot`
/// saves: the diff and its classification under one time budget, so that neither can hold up
/// a boot whatever the root holds.
pub fn lost_state(
    backend: &dyn Backend,
    root: &[u8],
    limits: &DiffLimits,
    classifier: &Classifier,
) -> Result<Report, BackendError> {
    let start = Instant::now();
    let out = backend.diff(limits)?;
    let deadline = limits.time_budget.map(|b| (start, b));
    Ok(Report::classified(
        backend.name(),
        root,
        out,
        classifier,
        deadline,
    ))
}

/// How often classification looks at the clock.
const CLOCK_EVERY: usize = 256;

impl Report {
    pub fn new(backend: &str, root: &[u8], out: DiffOutput, classifier: &Classifier) -> Report {
        Report::classified(backend, root, out, classifier, None)
    }

    /// The report of a diff that could not run at all: nothing listed, the whole root marked
    /// as not listed with the reason, so the saved report says what happened.
    pub fn failed(backend: &str, root: &[u8], reason: String) -> Report {
        Report {
            backend: backend.to_string(),
            root: root.to_vec(),
            generated: now(),
            entries: Vec::new(),
            truncated: None,
            unlisted: vec![UnlistedEntry {
                unlisted: Unlisted {
                    path: b"/".to_vec(),
                    reason,
                },
                class: Class::Lost,
                why: None,
            }],
            presets_in_use: Vec::new(),
        }
    }

    /// Classifies every entry, or those it reaches before `deadline` (start, budget) passes:
    /// the rest is dropped and the report says it stopped at its time budget.
    fn classified(
        backend: &str,
        root: &[u8],
        out: DiffOutput,
        classifier: &Classifier,
        deadline: Option<(Instant, Duration)>,
    ) -> Report {
        let mut truncated = out.truncated;
        let unlisted = out
            .unlisted
            .into_iter()
            .map(|u| {
                let (class, why) = classifier.classify_subtree(&u.path);
                UnlistedEntry {
                    unlisted: u,
                    class,
                    why,
                }
            })
            .collect();
        let mut entries = Vec::with_capacity(out.changes.len());
        for (i, change) in out.changes.into_iter().enumerate() {
            if i % CLOCK_EVERY == 0 {
                if let Some((start, budget)) = deadline {
                    if start.elapsed() > budget {
                        truncated.get_or_insert(Truncation::TimeBudget(budget));
                        break;
                    }
                }
            }
            let (class, why) = classifier.classify_entry(&change.path, change.file_type);
            entries.push(Entry { change, class, why });
        }
        Report {
            backend: backend.to_string(),
            root: root.to_vec(),
            generated: now(),
            entries,
            truncated,
            unlisted,
            presets_in_use: classifier.presets_in_use.clone(),
        }
    }

    /// The hint for a lost path that a preset would keep.
    pub fn preset_hint(&self, path: &[u8]) -> Option<PresetHint> {
        let (p, e) = crate::presets::Index::get().lookup(path)?;
        let text = if self.presets_in_use.contains(&p.name) {
            format!("would be kept by preset {} at level {}, which this config leaves out: give level {} a store in [levels], or restore the entry in presets.{}", p.name, e.level, e.level, p.name)
        } else {
            format!(
                "would be kept by preset {} at level {}: add it to presets",
                p.name, e.level
            )
        };
        Some(PresetHint {
            preset: &p.name,
            entry: &e.path,
            level: e.level,
            text,
        })
    }

    /// Subtrees not listed that are lost (not ignored as a whole).
    pub fn unlisted_lost(&self) -> usize {
        self.unlisted
            .iter()
            .filter(|u| u.class == Class::Lost)
            .count()
    }

    pub fn tally(&self, class: Class) -> Tally {
        let mut t = Tally::default();
        for e in self.entries.iter().filter(|e| e.class == class) {
            t.add(&e.change);
        }
        t
    }

    /// The same JSON as `to_json`, written entry by entry so that a huge diff never exists as
    /// one JSON tree in memory.
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let head = serde_json::to_string(&self.header_json())?;
        // The header is an object: reopen it to append the entries as its last member.
        let head = head.strip_suffix('}').unwrap_or(&head);
        let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
        w.write_all(head.as_bytes())?;
        w.write_all(if head.ends_with('{') {
            b"\"entries\":["
        } else {
            b",\"entries\":["
        })?;
        for (i, e) in self.sorted().into_iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut w, &self.entry_json(e))?;
        }
        w.write_all(b"]}\n")?;
        w.flush()
    }

    /// The `--json` form, schema `darlings.diff/1` (documented in README.md).
    pub fn to_json(&self) -> Value {
        let mut v = self.header_json();
        v["entries"] = Value::Array(
            self.sorted()
                .into_iter()
                .map(|e| self.entry_json(e))
                .collect(),
        );
        v
    }

    fn entry_json(&self, e: &Entry) -> Value {
        let mut v = entry_json(e);
        if e.class == Class::Lost && e.why.is_none() {
            if let Some(h) = self.preset_hint(&e.change.path) {
                v["preset"] =
                    json!({ "name": h.preset, "level": h.level.as_str(), "hint": h.text });
            }
        }
        v
    }

    fn sorted(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_unstable_by(|a, b| a.change.path.cmp(&b.change.path));
        v
    }

    fn header_json(&self) -> Value {
        let mut summary = Map::new();
        for c in [Class::Lost, Class::Persisted, Class::Ignored] {
            let t = self.tally(c);
            summary.insert(
                c.as_str().into(),
                json!({ "entries": t.entries, "bytes": t.bytes }),
            );
        }
        let truncated = match self.truncated {
            None => Value::Null,
            Some(Truncation::MaxEntries(n)) => json!({ "reason": "max-entries", "limit": n }),
            Some(Truncation::TimeBudget(d)) => {
                json!({ "reason": "time-budget", "limit_ms": d.as_millis() as u64 })
            }
        };
        summary.insert(
            "unlisted".into(),
            json!({ "subtrees": self.unlisted.len(), "lost": self.unlisted_lost() }),
        );
        let unlisted: Vec<Value> = self
            .unlisted
            .iter()
            .map(|u| {
                let mut v = json!({ "reason": u.unlisted.reason, "class": u.class.as_str() });
                path_fields(&mut v, "path", &u.unlisted.path);
                if let Some(why) = &u.why {
                    v["why"] = Value::String(why.to_string());
                }
                v
            })
            .collect();
        let mut v = json!({
            "schema": "darlings.diff/1",
            "backend": self.backend,
            "generated": self.generated,
            "truncated": truncated,
            "summary": summary,
            "unlisted": unlisted,
        });
        path_fields(&mut v, "root", &self.root);
        v
    }

    /// Text for people: totals per class, then the lost entries grouped by directory so that at
    /// most `max_lines` groups are shown, the biggest groups broken down first.
    pub fn to_text(&self, max_lines: usize) -> String {
        self.render_text(
            max_lines,
            "nothing would be lost.",
            "would be lost at the next rollback:",
        )
    }

    /// Text for a saved report (the store's `<stamp>.txt`): the same, told in the past, since
    /// by the time anyone reads it the rollback (or the tmpfs root's shutdown) has happened.
    /// `when` says which, e.g. "lost at the rollback of the boot that saved this report".
    pub fn to_text_saved(&self, max_lines: usize, when: &str) -> String {
        self.render_text(max_lines, "nothing was lost.", &format!("{when}:"))
    }

    fn render_text(&self, max_lines: usize, nothing: &str, heading: &str) -> String {
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
        if !self.unlisted.is_empty() {
            let _ = writeln!(
                s,
                "  not listed {:>9} subtree(s), {} lost with the root (see below)",
                self.unlisted.len(),
                self.unlisted_lost()
            );
        }
        if lost.entries == 0 && self.unlisted_lost() == 0 {
            let _ = writeln!(s, "\n{nothing}");
            return s;
        }
        if lost.entries > 0 {
            let _ = writeln!(s, "\n{heading}");
            let lost_paths: Vec<&Entry> = self
                .entries
                .iter()
                .filter(|e| e.class == Class::Lost)
                .collect();
            for line in group_lines(&lost_paths, max_lines) {
                let _ = writeln!(s, "{line}");
            }
        }
        self.why_lines(&mut s, max_lines);
        self.preset_lines(&mut s, max_lines);
        if !self.unlisted.is_empty() {
            let _ = writeln!(
                s,
                "\nnot listed (what they hold is on the root and goes with it):"
            );
            for u in self.unlisted.iter().take(max_lines.max(1)) {
                let _ = writeln!(
                    s,
                    "  {:<9}  {}: {}",
                    u.class.as_str(),
                    Long(&u.unlisted.path),
                    u.unlisted.reason
                );
            }
            if self.unlisted.len() > max_lines.max(1) {
                let _ = writeln!(
                    s,
                    "  ... and {} more (--json lists them all)",
                    self.unlisted.len() - max_lines.max(1)
                );
            }
        }
        s
    }

    /// Lost entries a preset would keep, one line per preset entry.
    fn preset_lines(&self, s: &mut String, max_lines: usize) {
        let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
        for e in &self.entries {
            // Under a persisted path already: its own line says why it is lost.
            if e.class != Class::Lost || e.why.is_some() {
                continue;
            }
            if let Some(h) = self.preset_hint(&e.change.path) {
                groups
                    .entry(format!("{}: {}", h.entry, h.text))
                    .or_default()
                    .add(&e.change);
            }
        }
        if groups.is_empty() {
            return;
        }
        let _ = writeln!(s, "\nlost, but a preset would keep them:");
        for (text, t) in groups.iter().take(max_lines.max(1)) {
            let _ = writeln!(
                s,
                "  {:>9} entries {:>10}  {text}",
                t.entries,
                human(t.bytes)
            );
        }
        if groups.len() > max_lines.max(1) {
            let _ = writeln!(
                s,
                "  ... and {} more (--json has a preset for each entry)",
                groups.len() - max_lines.max(1)
            );
        }
    }

    /// The lost entries a persisted path concerns, one line per reason: a user who persisted
    /// /var/lib/app must not read its name and believe what the root holds there is safe.
    fn why_lines(&self, s: &mut String, max_lines: usize) {
        let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
        for e in &self.entries {
            if let (Class::Lost, Some(why)) = (e.class, &e.why) {
                let key = match why {
                    Why::UnderPersisted(_) => why.to_string(),
                    Why::WrongType { at, .. } => format!("{}: {why}", Long(at)),
                };
                groups.entry(key).or_default().add(&e.change);
            }
        }
        if groups.is_empty() {
            return;
        }
        let _ = writeln!(s, "\nlost although a persisted path names them:");
        let n = groups.len();
        for (text, t) in groups.iter().take(max_lines.max(1)) {
            let _ = writeln!(
                s,
                "  {:>9} entries {:>10}  {text}",
                t.entries,
                human(t.bytes)
            );
        }
        if n > max_lines.max(1) {
            let _ = writeln!(
                s,
                "  ... and {} more (--json has a why for each entry)",
                n - max_lines.max(1)
            );
        }
    }
}

fn entry_json(e: &Entry) -> Value {
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
    if let Some(why) = &e.why {
        v["why"] = Value::String(why.to_string());
    }
    v
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A directory in the grouping tree: its subtree's tally, its direct children, and whether it
/// is itself a lost entry.
struct Dir {
    path: Vec<u8>,
    tally: Tally,
    parent: usize,
    own: Option<u64>,
    subdirs: BTreeMap<Vec<u8>, usize>,
    /// Indices (into the entries) of direct children that are not directories.
    files: Vec<usize>,
}

impl Dir {
    fn lines_when_open(&self) -> usize {
        self.subdirs.len() + self.files.len() + usize::from(self.own.is_some())
    }
}

fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"",
        Some(i) => &path[..i],
    }
}

/// Groups lost entries by directory: opens the biggest directories first while the lines fit
/// in `max_lines`. Costs one hash lookup per entry (with a cache for runs of siblings), so a
/// 100,000-entry diff groups in milliseconds.
fn group_lines(entries: &[&Entry], max_lines: usize) -> Vec<String> {
    let mut dirs = vec![Dir {
        path: Vec::new(),
        tally: Tally::default(),
        parent: 0,
        own: None,
        subdirs: BTreeMap::new(),
        files: Vec::new(),
    }];
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    index.insert(Vec::new(), 0);
    fn node(dirs: &mut Vec<Dir>, index: &mut HashMap<Vec<u8>, usize>, path: &[u8]) -> usize {
        if let Some(&i) = index.get(path) {
            return i;
        }
        let parent = node(dirs, index, parent_of(path));
        let i = dirs.len();
        let name = path[parent_of(path).len() + 1..].to_vec();
        dirs.push(Dir {
            path: path.to_vec(),
            tally: Tally::default(),
            parent,
            own: None,
            subdirs: BTreeMap::new(),
            files: Vec::new(),
        });
        dirs[parent].subdirs.insert(name, i);
        index.insert(path.to_vec(), i);
        i
    }
    let mut last: (Vec<u8>, usize) = (Vec::new(), 0);
    for (ei, e) in entries.iter().enumerate() {
        let path = e.change.path.as_slice();
        let parent = parent_of(path);
        let p = if parent == last.0.as_slice() {
            last.1
        } else {
            let p = node(&mut dirs, &mut index, parent);
            last = (parent.to_vec(), p);
            p
        };
        // The root directory itself (its mode or owner changed) is node 0, not a child of it.
        let at = if path == b"/" {
            dirs[0].own = Some(0);
            0
        } else if e.change.file_type == darlings_backends::FileType::Dir {
            let d = node(&mut dirs, &mut index, path);
            dirs[d].own = Some(0);
            d
        } else {
            dirs[p].files.push(ei);
            p
        };
        // Count the entry in its own node (for a directory) and every directory above it.
        let mut i = at;
        loop {
            dirs[i].tally.add(&e.change);
            if i == 0 {
                break;
            }
            i = dirs[i].parent;
        }
    }
    let mut open = vec![false; dirs.len()];
    open[0] = true;
    let mut lines = dirs[0].lines_when_open();
    loop {
        // Candidates: closed directories whose parent is open.
        let best = (1..dirs.len())
            .filter(|&i| !open[i] && open[dirs[i].parent])
            .filter(|&i| {
                lines - 1 + dirs[i].lines_when_open() <= max_lines
                    && !(dirs[i].subdirs.is_empty() && dirs[i].files.is_empty())
            })
            .max_by_key(|&i| dirs[i].tally.entries);
        match best {
            Some(i) => {
                open[i] = true;
                lines = lines - 1 + dirs[i].lines_when_open();
            }
            None => break,
        }
    }
    let mut out = Vec::new();
    render(&dirs, &open, entries, 0, max_lines, &mut out);
    out
}

/// `cap` only bites at the top, the one directory that is open whatever its size: its smallest
/// groups are folded into one line.
fn render(
    dirs: &[Dir],
    open: &[bool],
    entries: &[&Entry],
    i: usize,
    cap: usize,
    out: &mut Vec<String>,
) {
    let d = &dirs[i];
    if !open[i] {
        let mut shown = d.path.clone();
        shown.push(b'/');
        if d.subdirs.is_empty() && d.files.is_empty() {
            out.push(format!("  {:>17} {:>10}  {}", "(dir)", "", Long(&shown)));
        } else {
            out.push(format!(
                "  {:>9} entries {:>10}  {}",
                d.tally.entries,
                human(d.tally.bytes),
                Long(&shown)
            ));
        }
        return;
    }
    if d.own.is_some() {
        let mut shown = d.path.clone();
        shown.push(b'/');
        out.push(format!("  {:>17} {:>10}  {}", "(dir)", "", Long(&shown)));
    }
    // Subdirectories and files, merged in name order.
    let mut items: Vec<(&[u8], Result<usize, usize>)> = d
        .subdirs
        .iter()
        .map(|(n, &c)| (n.as_slice(), Ok(c)))
        .collect();
    for &f in &d.files {
        let p = &entries[f].change.path;
        items.push((&p[parent_of(p).len() + 1..], Err(f)));
    }
    let weight = |item: &Result<usize, usize>| match item {
        Ok(c) => dirs[*c].tally.entries,
        Err(_) => 1,
    };
    let mut folded = Tally::default();
    if items.len() > cap.max(2) {
        items.sort_unstable_by_key(|(_, it)| std::cmp::Reverse(weight(it)));
        for (_, it) in items.drain(cap.max(2) - 1..) {
            match it {
                Ok(c) => {
                    folded.entries += dirs[c].tally.entries;
                    folded.bytes += dirs[c].tally.bytes;
                }
                Err(f) => folded.add(&entries[f].change),
            }
        }
    }
    items.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, item) in items {
        match item {
            Ok(c) => render(dirs, open, entries, c, usize::MAX, out),
            Err(f) => {
                let c = &entries[f].change;
                let size = c.size.map(human).unwrap_or_default();
                out.push(format!("  {:>17} {:>10}  {}", "", size, Long(&c.path)));
            }
        }
    }
    if folded.entries > 0 {
        out.push(format!(
            "  {:>9} entries {:>10}  (in smaller groups not shown; --lines N shows more)",
            folded.entries,
            human(folded.bytes)
        ));
    }
}

/// A path for a terminal: one past `LONG` bytes (a user can make them up to PATH_MAX and past)
/// keeps its start and its end around a count; `--json` has every byte.
pub(crate) struct Long<'a>(pub(crate) &'a [u8]);

const LONG: usize = 160;

impl std::fmt::Display for Long<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.0;
        if p.len() <= LONG {
            return write!(f, "{}", Show(p));
        }
        let keep = LONG / 2 - 16;
        write!(
            f,
            "{}…[{} bytes in all]…{}",
            Show(&p[..keep]),
            p.len(),
            Show(&p[p.len() - keep..])
        )
    }
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
    fn a_symlinked_file_is_persisted_as_the_link_and_lost_as_a_file() {
        let c = Classifier::new(
            &crate::config::parse(
                "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nfiles = [{ path = \"/etc/app.json\", method = \"symlink\" }]\n",
                "t.toml",
            )
            .unwrap(),
        );
        assert_eq!(
            c.classify_entry(b"/etc/app.json", FileType::Symlink).0,
            Class::Persisted
        );
        // A program replaced the link by rename: its data is on the root.
        let (class, why) = c.classify_entry(b"/etc/app.json", FileType::File);
        assert_eq!(class, Class::Lost);
        assert!(why.is_some());
    }

    #[test]
    fn classification_table() {
        use FileType::{Dir, File, Symlink};
        let c = Classifier::new(&cfg());
        let cases: &[(&[u8], FileType, Class)] = &[
            (b"/var/log", Dir, Class::Persisted),
            (b"/var/log/syslog", File, Class::Lost),
            (b"/var", Dir, Class::Persisted),
            (b"/", Dir, Class::Persisted),
            (b"/etc", Dir, Class::Persisted),
            (b"/etc/machine-id", File, Class::Persisted),
            (b"/etc/machine-id", Symlink, Class::Lost),
            (b"/etc/machine-id", Dir, Class::Lost),
            (b"/var/log", File, Class::Lost),
            (b"/etc/machine-id.old", File, Class::Lost),
            (b"/etc/hostname", File, Class::Lost),
            (b"/var/cache", Dir, Class::Ignored),
            (b"/var/cache/apt/x", File, Class::Ignored),
            (b"/tmp/a", File, Class::Ignored),
            (b"/tmp/a/b", File, Class::Lost),
            (b"/var/logs", File, Class::Lost),
            (b"/home/alice/\xff", File, Class::Lost),
            (b"/persist", Dir, Class::Persisted),
            (b"/persist/var/log/x", File, Class::Lost),
        ];
        for (p, ft, want) in cases {
            assert_eq!(c.classify_entry(p, *ft).0, *want, "{} ({ft:?})", Show(p));
        }
    }

    /// Regression (issue 10): a file on the root beneath a persisted directory (written before
    /// the bind existed, or hidden beneath it) was classed persisted, and "nothing would be
    /// lost" was printed; the next boot erased it.
    #[test]
    fn root_only_files_under_a_persisted_directory_were_classed_persisted() {
        let config = crate::config::parse(
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/x\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/app\"]\n",
            "t.toml",
        )
        .unwrap();
        let c = Classifier::new(&config);
        let out = DiffOutput {
            changes: vec![
                added(b"/var/lib/app", FileType::Dir, None),
                added(b"/var/lib/app/db", FileType::File, Some(4096)),
                added(b"/persist/hidden", FileType::File, Some(1)),
            ],
            ..DiffOutput::default()
        };
        let r = Report::new("btrfs", b"/", out, &c);
        let class = |p: &[u8]| {
            r.entries
                .iter()
                .find(|e| e.change.path == p)
                .map(|e| e.class)
        };
        assert_eq!(class(b"/var/lib/app"), Some(Class::Persisted));
        assert_eq!(class(b"/var/lib/app/db"), Some(Class::Lost));
        assert_eq!(class(b"/persist/hidden"), Some(Class::Lost));
        let text = r.to_text(40);
        assert!(!text.contains("nothing would be lost"), "{text}");
        assert!(
            text.contains("under persisted /var/lib/app, but on the root, not in the store"),
            "{text}"
        );
        let v = r.to_json();
        let db = v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/var/lib/app/db")
            .unwrap()
            .clone();
        assert_eq!(db["class"], "lost");
        assert_eq!(
            db["why"],
            "under persisted /var/lib/app, but on the root, not in the store"
        );
        assert_eq!(v["summary"]["lost"]["entries"], 2);
    }

    /// Regression (issue 10): `/etc` replaced by a file on the way to persisted
    /// `/etc/machine-id` was classed persisted, though apply refuses it and the rollback
    /// erases it.
    #[test]
    fn a_non_directory_on_the_way_to_a_persisted_path_was_classed_persisted() {
        let c = Classifier::new(&cfg());
        let (class, why) = c.classify_entry(b"/etc", FileType::File);
        assert_eq!(class, Class::Lost);
        assert_eq!(
            why.unwrap().to_string(),
            "on the way to persisted /etc/machine-id, but not a directory: apply refuses it"
        );
        let (class, why) = c.classify_entry(b"/var/log", FileType::Symlink);
        assert_eq!(class, Class::Lost);
        assert_eq!(
            why.unwrap().to_string(),
            "at persisted /var/log, but not a directory: apply refuses it"
        );
        // Removed at a persisted path: the blank's entry comes back and is bound over.
        let (class, _) = c.classify_entry(b"/etc", FileType::Dir);
        assert_eq!(class, Class::Persisted);
    }

    #[test]
    fn unlisted_subtrees_are_lost_unless_a_glob_covers_all_of_them() {
        let c = Classifier::new(&cfg());
        assert_eq!(
            c.classify_subtree(b"/tmp/deep").0,
            Class::Lost,
            "/tmp/* covers one level"
        );
        assert_eq!(c.classify_subtree(b"/var/cache/x").0, Class::Ignored);
        let (class, why) = c.classify_subtree(b"/var/log/deep");
        assert_eq!(class, Class::Lost);
        assert!(matches!(why, Some(Why::UnderPersisted(_))));
        assert_eq!(
            c.classify_subtree(b"/var").0,
            Class::Lost,
            "beside /var/log"
        );
        let out = DiffOutput {
            changes: vec![added(b"/tmp/x", FileType::File, Some(1))],
            unlisted: vec![Unlisted {
                path: b"/home/u/deep".to_vec(),
                reason: "path too long (past 4096 bytes)".into(),
            }],
            ..DiffOutput::default()
        };
        let r = Report::new("btrfs", b"/", out, &c);
        let text = r.to_text(40);
        assert!(!text.contains("nothing would be lost"), "{text}");
        assert!(
            text.contains("/home/u/deep: path too long (past 4096 bytes)"),
            "{text}"
        );
        let v = r.to_json();
        assert_eq!(v["summary"]["unlisted"]["lost"], 1);
        assert_eq!(v["unlisted"][0]["class"], "lost");
        assert_eq!(v["unlisted"][0]["path"], "/home/u/deep");
    }

    /// The time budget covers classification: past it, the rest is dropped and the report
    /// says it stopped at its budget.
    #[test]
    fn classification_stops_at_the_time_budget() {
        let changes: Vec<Change> = (0..10_000)
            .map(|i| added(format!("/f{i}").as_bytes(), FileType::File, None))
            .collect();
        let out = DiffOutput {
            changes,
            ..DiffOutput::default()
        };
        let started = Instant::now() - Duration::from_secs(5);
        let r = Report::classified(
            "tmpfs",
            b"/",
            out,
            &Classifier::new(&cfg()),
            Some((started, Duration::from_secs(1))),
        );
        assert!(r.entries.is_empty(), "{}", r.entries.len());
        assert_eq!(
            r.truncated,
            Some(Truncation::TimeBudget(Duration::from_secs(1)))
        );
    }

    #[test]
    fn a_failed_diff_makes_a_report_that_says_so() {
        let r = Report::failed("btrfs", b"/", "the diff failed: boom".into());
        let text = r.to_text(40);
        assert!(text.contains("/: the diff failed: boom"), "{text}");
        assert!(!text.contains("nothing would be lost"), "{text}");
    }

    #[test]
    fn json_has_summary_and_exact_bytes() {
        let out = DiffOutput {
            changes: vec![
                added(b"/home/a/\xffbad", FileType::File, Some(10)),
                added(b"/etc/machine-id", FileType::File, Some(5)),
                added(b"/var/cache/y", FileType::File, Some(7)),
            ],
            truncated: None,
            unlisted: Vec::new(),
        };
        let r = Report::new("tmpfs", b"/sysroot", out, &Classifier::new(&cfg()));
        let v = r.to_json();
        assert_eq!(v["schema"], "darlings.diff/1");
        assert_eq!(v["summary"]["lost"]["entries"], 1);
        assert_eq!(v["summary"]["lost"]["bytes"], 10);
        assert_eq!(v["summary"]["persisted"]["bytes"], 5);
        assert_eq!(v["summary"]["ignored"]["entries"], 1);
        assert_eq!(
            v["entries"][1]["path_bytes"],
            json!(b"/home/a/\xffbad".to_vec())
        );
        assert_eq!(v["entries"][1]["class"], "lost");
        assert!(v["entries"][0].get("path_bytes").is_none());
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
                ..DiffOutput::default()
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
    fn saved_report_is_not_headed_would_be_lost_at_the_next_rollback() {
        let out = || DiffOutput {
            changes: vec![added(b"/etc/hostname", FileType::File, Some(6))],
            truncated: None,
            unlisted: Vec::new(),
        };
        let r = Report::new("btrfs", b"/", out(), &Classifier::new(&cfg()));
        let saved = r.to_text_saved(
            20,
            "lost at the rollback of the boot that saved this report",
        );
        assert!(
            saved.contains("\nlost at the rollback of the boot that saved this report:\n"),
            "{saved}"
        );
        assert!(!saved.contains("would be lost"), "{saved}");
        assert!(saved.contains("/etc/hostname"), "{saved}");
        // The live diff still speaks of the rollback to come.
        assert!(r
            .to_text(20)
            .contains("would be lost at the next rollback:"));
        let empty = Report::new(
            "btrfs",
            b"/",
            DiffOutput {
                changes: vec![],
                truncated: None,
                unlisted: Vec::new(),
            },
            &Classifier::new(&cfg()),
        );
        assert!(empty
            .to_text_saved(20, "lost")
            .contains("nothing was lost."));
    }

    #[test]
    fn a_wide_top_level_is_folded() {
        let changes: Vec<Change> = (0..200)
            .map(|i| added(format!("/d{i:03}/f").as_bytes(), FileType::File, Some(1)))
            .collect();
        let text = Report::new(
            "tmpfs",
            b"/",
            DiffOutput {
                changes,
                ..DiffOutput::default()
            },
            &Classifier::new(&cfg()),
        )
        .to_text(20);
        let groups = text.lines().filter(|l| l.contains("/d")).count();
        assert_eq!(groups, 19, "{text}");
        assert!(text.contains("181 entries"), "{text}");
    }

    /// Regression: a change of the root directory itself was shown as "//".
    #[test]
    fn root_directory_change_is_shown_as_slash() {
        let out = DiffOutput {
            changes: vec![
                Change {
                    path: b"/".to_vec(),
                    kind: ChangeKind::Metadata,
                    file_type: FileType::Dir,
                    size: None,
                },
                added(b"/etc/hostname", FileType::File, Some(4)),
            ],
            truncated: None,
            unlisted: Vec::new(),
        };
        // Nothing persisted, so `/` itself is lost and listed.
        let nothing_kept = crate::config::parse("[root]\nbackend = \"tmpfs\"\n", "t.toml").unwrap();
        let text = Report::new("btrfs", b"/", out, &Classifier::new(&nothing_kept)).to_text(40);
        assert!(!text.contains("//"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.trim_end().ends_with("(dir)             /")
                    || l.trim() == "(dir)             /"
                    || (l.contains("(dir)") && l.trim_end().ends_with(" /"))),
            "{text}"
        );
        assert!(text.contains("/etc/hostname"), "{text}");
    }

    /// Regression: on ZFS, `zfs diff` reports `M /` when a top-level entry appears, and `/` was
    /// classed as lost although it is on the way to every persisted path (the VM reboot test saw
    /// "6 lost" for 5 darlings).
    #[test]
    fn root_directory_is_persisted_when_anything_is() {
        let c = Classifier::new(&cfg());
        assert_eq!(c.classify_entry(b"/", FileType::Dir).0, Class::Persisted);
        let nothing_kept = crate::config::parse("[root]\nbackend = \"tmpfs\"\n", "t.toml").unwrap();
        assert_eq!(
            Classifier::new(&nothing_kept)
                .classify_entry(b"/", FileType::Dir)
                .0,
            Class::Lost
        );
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
            unlisted: Vec::new(),
        };
        let text = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg())).to_text(40);
        assert!(text.contains("/a/b"), "{text}");
        assert!(text.contains("2.0 KiB  /c"), "{text}");
        assert!(text.contains("stopped after 3 entries"), "{text}");
    }

    #[test]
    fn streamed_json_equals_the_tree() {
        let out = DiffOutput {
            changes: vec![
                added(b"/a", FileType::Dir, None),
                added(b"/a/\xff", FileType::File, Some(3)),
            ],
            truncated: None,
            unlisted: Vec::new(),
        };
        let r = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg()));
        let mut buf = Vec::new();
        r.write_json(&mut buf).unwrap();
        let parsed: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(parsed, r.to_json());
    }

    #[test]
    fn lost_paths_a_preset_would_keep_say_so() {
        let out = DiffOutput {
            changes: vec![
                added(b"/var/lib/NetworkManager", FileType::Dir, None),
                added(
                    b"/var/lib/NetworkManager/timestamps",
                    FileType::File,
                    Some(10),
                ),
                added(b"/var/lib/bluetooth/AA/info", FileType::File, Some(5)),
                added(b"/var/log/journal/x", FileType::File, Some(5)),
                added(b"/srv/x", FileType::File, Some(1)),
            ],
            truncated: None,
            unlisted: Vec::new(),
        };
        // bluetooth in use, but its level has no store; networkmanager not in use at all.
        let config = crate::config::parse(
            "presets = [\"bluetooth\"]\n[levels]\nsecret = \"/vault\"\n[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n",
            "t.toml",
        )
        .unwrap();
        let r = Report::new("tmpfs", b"/r", out, &Classifier::new(&config));
        let text = r.to_text(40);
        assert!(
            text.contains("lost, but a preset would keep them:"),
            "{text}"
        );
        assert!(text.contains("2 entries       10 B  /var/lib/NetworkManager: would be kept by preset networkmanager at level transient: add it to presets"), "{text}");
        assert!(text.contains("/var/lib/bluetooth: would be kept by preset bluetooth at level normal, which this config leaves out"), "{text}");
        let v = r.to_json();
        let by_path = |p: &str| {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["path"] == p)
                .unwrap()
                .clone()
        };
        assert_eq!(
            by_path("/var/lib/NetworkManager/timestamps")["preset"]["name"],
            "networkmanager"
        );
        assert_eq!(
            by_path("/var/lib/NetworkManager/timestamps")["preset"]["level"],
            "transient"
        );
        assert!(by_path("/srv/x").get("preset").is_none());
        // Under persisted /var/log: its why says what is wrong, not a preset.
        assert!(by_path("/var/log/journal/x")["why"].is_string());
        assert!(by_path("/var/log/journal/x").get("preset").is_none());
        assert!(!text.contains("/var/log/journal: would be kept"), "{text}");
        let mut buf = Vec::new();
        r.write_json(&mut buf).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&buf).unwrap(), v);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
