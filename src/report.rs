//! The lost-state report: a backend's change list classified against the config (lost,
//! persisted, ignored), rendered as text that fits one screen whatever its size, or as JSON with
//! a stable, documented schema.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;

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

/// What the classifier needs from the config: persisted paths (with their kind) and the globs,
/// in hash sets so that a check costs O(depth of the path), not O(number of entries).
pub struct Classifier {
    exact: HashSet<Vec<u8>>,
    dirs: HashSet<Vec<u8>>,
    /// Every directory on the way to a persisted path.
    ancestors: HashSet<Vec<u8>>,
    ignore: Vec<Glob>,
}

impl Classifier {
    /// Per-user entries whose home comes from passwd are not known here; pass the resolved plan's
    /// targets through `with_targets` when they matter.
    pub fn new(config: &Config) -> Classifier {
        let mut c = Classifier {
            exact: HashSet::new(),
            dirs: HashSet::new(),
            ancestors: HashSet::new(),
            ignore: config.diff.ignore.clone(),
        };
        for s in &config.stores {
            // The store's mount point lives in the root too (the initrd makes it each boot);
            // what is under it is the store itself, never lost.
            c.add(&s.path, Kind::Dir);
            for e in &s.entries {
                c.add(&e.path, e.kind);
            }
            for u in &s.users {
                if let Some(home) = &u.home {
                    for e in &u.entries {
                        c.add(&home.join(&e.path), e.kind);
                    }
                }
            }
        }
        c
    }

    fn add(&mut self, path: &AbsPath, kind: Kind) {
        self.exact.insert(path.as_bytes().to_vec());
        if kind == Kind::Dir {
            self.dirs.insert(path.as_bytes().to_vec());
        }
        // `/` is on the way to every persisted path (zfs diff reports it as modified whenever
        // a top-level entry appears).
        self.ancestors.insert(b"/".to_vec());
        for a in path.ancestors() {
            self.ancestors.insert(a.as_bytes().to_vec());
        }
    }

    pub fn with_targets(
        mut self,
        targets: impl IntoIterator<Item = (AbsPath, Kind)>,
    ) -> Classifier {
        for (path, kind) in targets {
            self.add(&path, kind);
        }
        self
    }

    /// Persisted wins over ignored: a persisted path is never lost, whatever the globs say.
    /// Directories on the way to a persisted path count as persisted: apply recreates them.
    pub fn classify(&self, path: &[u8]) -> Class {
        if !self.exact.is_empty() {
            if self.exact.contains(path) || self.ancestors.contains(path) {
                return Class::Persisted;
            }
            let inside = path
                .iter()
                .enumerate()
                .skip(1)
                .any(|(i, &b)| b == b'/' && self.dirs.contains(&path[..i]));
            if inside {
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

/// A classified diff, in the backend's order (JSON output sorts by path; text groups).
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
        let entries: Vec<Entry> = out
            .changes
            .into_iter()
            .map(|change| {
                let class = classifier.classify(&change.path);
                Entry { change, class }
            })
            .collect();
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
            serde_json::to_writer(&mut w, &entry_json(e))?;
        }
        w.write_all(b"]}\n")?;
        w.flush()
    }

    /// The `--json` form, schema `darlings.diff/1` (documented in README.md).
    pub fn to_json(&self) -> Value {
        let mut v = self.header_json();
        v["entries"] = Value::Array(self.sorted().into_iter().map(entry_json).collect());
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
        let mut v = json!({
            "schema": "darlings.diff/1",
            "backend": self.backend,
            "generated": self.generated,
            "truncated": truncated,
            "summary": summary,
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
        if lost.entries == 0 {
            let _ = writeln!(s, "\n{nothing}");
            return s;
        }
        let _ = writeln!(s, "\n{heading}");
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
    v
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
            out.push(format!("  {:>17} {:>10}  {}", "(dir)", "", Show(&shown)));
        } else {
            out.push(format!(
                "  {:>9} entries {:>10}  {}",
                d.tally.entries,
                human(d.tally.bytes),
                Show(&shown)
            ));
        }
        return;
    }
    if d.own.is_some() {
        let mut shown = d.path.clone();
        shown.push(b'/');
        out.push(format!("  {:>17} {:>10}  {}", "(dir)", "", Show(&shown)));
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
                out.push(format!("  {:>17} {:>10}  {}", "", size, Show(&c.path)));
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
            (b"/persist", Class::Persisted),
            (b"/persist/var/log/x", Class::Persisted),
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
    fn saved_report_is_not_headed_would_be_lost_at_the_next_rollback() {
        let out = || DiffOutput {
            changes: vec![added(b"/etc/hostname", FileType::File, Some(6))],
            truncated: None,
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
                truncated: None,
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
        assert_eq!(c.classify(b"/"), Class::Persisted);
        let nothing_kept = crate::config::parse("[root]\nbackend = \"tmpfs\"\n", "t.toml").unwrap();
        assert_eq!(Classifier::new(&nothing_kept).classify(b"/"), Class::Lost);
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
    fn streamed_json_equals_the_tree() {
        let out = DiffOutput {
            changes: vec![
                added(b"/a", FileType::Dir, None),
                added(b"/a/\xff", FileType::File, Some(3)),
            ],
            truncated: None,
        };
        let r = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg()));
        let mut buf = Vec::new();
        r.write_json(&mut buf).unwrap();
        let parsed: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(parsed, r.to_json());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
