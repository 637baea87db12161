//! The lost-state report for people (grouped text that fits one screen whatever the diff's size)
//! and for programs (the `darlings.report/1` JSON, streamed entry by entry).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;

use darlings_backends::bytes::Show;
use darlings_backends::{Change, ChangeKind, Truncation};
use serde_json::{json, Map, Value};

use super::{Class, Entry, Report, Tally, Why};
use crate::presets::Siblings;
use crate::show::{human, path_fields, Long};

impl Report {
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
        let mut near = Siblings::default();
        for (i, e) in self.sorted().into_iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut w, &self.entry_json(&e, &mut near))?;
        }
        w.write_all(b"]}\n")?;
        w.flush()
    }

    /// The `--json` form, schema `darlings.diff/1` (documented in README.md).
    pub fn to_json(&self) -> Value {
        let mut v = self.header_json();
        let mut near = Siblings::default();
        v["entries"] = Value::Array(
            self.sorted()
                .into_iter()
                .map(|e| self.entry_json(&e, &mut near))
                .collect(),
        );
        v
    }

    fn entry_json(&self, e: &Entry, near: &mut Siblings) -> Value {
        let mut v = entry_json(e);
        if e.class == Class::Lost && e.why.is_none() {
            if let Some(h) = self.preset_hint(&e.change.path, near) {
                v["preset"] =
                    json!({ "name": h.preset, "level": h.level.as_str(), "hint": h.text });
            }
        }
        v
    }

    fn sorted(&self) -> Vec<Entry<'_>> {
        let mut v: Vec<Entry> = self.entries().collect();
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
            let lost_paths: Vec<&Change> = self
                .entries()
                .filter(|e| e.class == Class::Lost)
                .map(|e| e.change)
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
        let mut near = Siblings::default();
        for e in self.entries() {
            // Under a persisted path already: its own line says why it is lost.
            if e.class != Class::Lost || e.why.is_some() {
                continue;
            }
            if let Some(h) = self.preset_hint(&e.change.path, &mut near) {
                groups
                    .entry(format!("{}: {}", h.entry, h.text))
                    .or_default()
                    .add(e.change);
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
        for e in self.entries() {
            if let (Class::Lost, Some(why)) = (e.class, &e.why) {
                let key = match why {
                    Why::UnderPersisted(_) => why.to_string(),
                    Why::WrongType { at, .. } => format!("{}: {why}", Long(at)),
                };
                groups.entry(key).or_default().add(e.change);
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
fn group_lines(entries: &[&Change], max_lines: usize) -> Vec<String> {
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
        let path = e.path.as_slice();
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
        } else if e.file_type == darlings_backends::FileType::Dir {
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
            dirs[i].tally.add(e);
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
    entries: &[&Change],
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
        let p = &entries[f].path;
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
                Err(f) => folded.add(entries[f]),
            }
        }
    }
    items.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, item) in items {
        match item {
            Ok(c) => render(dirs, open, entries, c, usize::MAX, out),
            Err(f) => {
                let c = entries[f];
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
