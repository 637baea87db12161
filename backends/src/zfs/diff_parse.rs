//! Parser of `zfs diff -H -F [-t]` output: turns what `zfs diff <dataset>@blank <dataset>` prints
//! into the backend-neutral change list, without running anything itself.
//!
//! # Line forms
//!
//! Fields are tab-separated; `[...]` is present only with `-t` (ctime) or `-F` (file type):
//!
//! ```text
//! [<sec>.<nsec>\t]<T>\t[<F>\t]<path>              T is + - M
//! [<sec>.<nsec>\t]M\t[<F>\t]<path>\t(+N)          link count changed by N (or (-N))
//! [<sec>.<nsec>\t]R\t[<F>\t]<old path>\t<new path>
//! ```
//!
//! Whether `-t` and `-F` were given is read from each line, not passed in: a change type is one
//! byte while a timestamp never is, and once the type is known the field count tells the forms
//! apart. The only overlap, `M\t<F>\t<path>` against `M\t<path>\t(+N)`, is settled by the last
//! field, since a path (mountpoint first, so `/`-led, or `(on_delete_queue)`) never looks like
//! `(+N)`. The timestamp is checked and dropped: [`Change`] has nowhere to keep it.
//!
//! Paths are the mountpoint followed by the path inside the dataset, escaped (see
//! [`unescape_inner`]). zfs drops a mountpoint of `/` entirely (so the root dataset prints
//! `/etc`, not `//etc`) and prints the dataset root itself as `<mountpoint>/`. Both become paths
//! from the dataset root: `/etc/foo`, and `/` for the root directory.
//!
//! # Decisions
//!
//! - `M` becomes [`ChangeKind::Modified`], never `Metadata`: zfs prints `M` whenever an object's
//!   ctime moved, whether its data or only its mode, owner or times changed, and under-reporting a
//!   content change is the worse mistake for a tool that is about to throw the root away.
//! - A link-count line (`M ... (+1)`) becomes `Modified` for the path it names rather than being
//!   skipped: zfs prints it *instead of* the plain `M` line for that object, so its data may have
//!   changed too. The new link's own name is not in zfs's output at all (it names a surviving
//!   link), so a new hard link shows only as this entry plus an `M` of its directory.
//! - A path both removed and added (a file re-created, or a name now held by another object;
//!   zfs prints `-` then `+`) is folded by [`DiffParser`] into one `Modified` entry at the place
//!   of the first, typed after the added side: to someone deciding what to keep it is one path
//!   whose content differs from the blank, and the file type shown is what is there now.
//! - A path with a `<xattrdir>` component is an object inside a file's extended-attribute
//!   directory (`xattr=dir`); it becomes `Metadata` of the owning file (the part before
//!   `<xattrdir>`), of type `Unknown` since the line's type is that of the attribute object.
//!   [`DiffParser`] drops such an entry when the owner has an entry of its own (it already says
//!   more) and reports each owner once. A real file named `<xattrdir>` is indistinguishable in
//!   zfs's output and is reported the same way, which still names its parent directory.
//! - `(on_delete_queue)` stands for an object that is unlinked but still open: it has no name in
//!   the root and disappears with it, so a line that only names it yields nothing. A rename to it
//!   means the old name was unlinked (reported as `Removed` of the old path); a rename from it
//!   means an unlinked object got a name (an `O_TMPFILE` linked in, reported as `Added`).
//! - `size` is always `None`: zfs diff does not print sizes.
//! - Bytes outside escapes are taken as they are, so a stray raw byte is not an error; only
//!   malformed escapes are.

use std::collections::{HashMap, HashSet};

use crate::bytes::Show;
use crate::{BackendError, Change, ChangeKind, FileType};

/// The component zfs uses for a file's extended-attribute directory.
const XATTR_DIR: &[u8] = b"<xattrdir>";
/// What zfs prints, after the mountpoint, in place of an unlinked-but-open object's path.
const DELETE_QUEUE: &[u8] = b"(on_delete_queue)";

/// [`unescape_inner`] with the backend's error type, for the tests.
#[cfg(test)]
pub fn unescape(field: &[u8]) -> Result<Vec<u8>, BackendError> {
    unescape_inner(field).map_err(BackendError::Malformed)
}

/// Decodes a field of `zfs diff` output: `\` followed by exactly four octal digits is one byte
/// (`\0040` is a space, `\0134` a backslash); every other byte stands for itself.
fn unescape_inner(field: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    let mut offset = 0;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'\\' {
            out.push(byte);
            rest = tail;
            offset += 1;
            continue;
        }
        let digits = tail
            .get(..4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        let Some(digits) = digits else {
            let seen = tail.get(..4).unwrap_or(tail);
            return Err(format!(
                "bad escape at offset {offset}: '\\' must be followed by four octal digits, \
                 found '\\{}'",
                Show(seen)
            ));
        };
        let value = digits
            .iter()
            .fold(0u16, |acc, d| acc * 8 + u16::from(d - b'0'));
        let Ok(value) = u8::try_from(value) else {
            return Err(format!(
                "bad escape at offset {offset}: '\\{}' is above \\0377 and does not fit a byte",
                Show(digits)
            ));
        };
        out.push(value);
        rest = tail.get(4..).unwrap_or_default();
        offset += 5;
    }
    Ok(out)
}

/// Parses one line (without its `\n`) on its own. `line_no` (1-based) is only used in error
/// messages; `mountpoint` is where the dataset is mounted, as raw bytes (`/` or `/mnt/x`).
///
/// `Ok(None)` is a line that names no path in the root (`(on_delete_queue)`). Unlike [`parse`],
/// this does not fold re-created paths or repeated extended-attribute entries together.
#[cfg(test)]
pub fn parse_line(
    line: &[u8],
    line_no: usize,
    mountpoint: &[u8],
) -> Result<Option<Change>, BackendError> {
    Ok(parse_entry(line, line_no, mount_prefix(mountpoint))?.map(|entry| entry.change))
}

/// Parses the whole of `zfs diff -H -F [-t]` output (lines end with `\n`; a final `\n` is
/// optional), folding entries together as described in the module documentation. The diff
/// runner feeds [`DiffParser`] line by line instead; this is the tests' way in.
#[cfg(test)]
pub fn parse(output: &[u8], mountpoint: &[u8]) -> Result<Vec<Change>, BackendError> {
    if output.is_empty() {
        return Ok(Vec::new());
    }
    let mut parser = DiffParser::new(mountpoint);
    // The last line's `\n` ends it rather than starting an empty line.
    let body = output.strip_suffix(b"\n").unwrap_or(output);
    for line in body.split(|&b| b == b'\n') {
        parser.push_line(line)?;
    }
    Ok(parser.finish())
}

/// Takes out the entries whose path zfs may have cut short. `zfs diff` builds each path with
/// `ZFS_IOC_OBJ_TO_PATH` into a MAXPATHLEN buffer: a path past it comes out cut at 4095 bytes,
/// naming something that is not there (two entries of a chain past PATH_MAX printed the same cut
/// path in the VM test). Such an entry becomes its directory, named as not listed; the part of
/// the path before its last `/` is intact.
pub fn past_path_max(changes: Vec<Change>) -> (Vec<Change>, Vec<crate::Unlisted>) {
    let suspect = |p: &[u8]| p.len() >= crate::PATH_MAX - 1;
    let mut unlisted: Vec<crate::Unlisted> = Vec::new();
    let mut note = |p: &[u8]| {
        let dir = match p.iter().rposition(|&b| b == b'/') {
            Some(0) | None => b"/".as_slice(),
            Some(i) => &p[..i],
        };
        if !unlisted.iter().any(|u| u.path == dir) {
            unlisted.push(crate::Unlisted {
                path: dir.to_vec(),
                reason: format!("path too long (past {} bytes)", crate::PATH_MAX),
            });
        }
    };
    let mut out = Vec::with_capacity(changes.len());
    for mut c in changes {
        if suspect(&c.path) {
            note(&c.path);
            continue;
        }
        if let ChangeKind::Renamed { from } = &c.kind {
            if suspect(from) {
                note(from);
                c.kind = ChangeKind::Added;
            }
        }
        out.push(c);
    }
    (out, unlisted)
}

/// The parser of the whole output, a line at a time, so a caller reading from a running
/// `zfs diff` can stop early (a limit on entries or time) without holding the whole output.
#[derive(Debug, Clone)]
pub struct DiffParser {
    prefix: Vec<u8>,
    line_no: usize,
    entries: Vec<Entry>,
    /// For each path seen as `+` or `-` and not yet paired with the other, its index in
    /// `entries`, so the pair can become one `Modified` wherever in the output its half appears.
    unpaired: HashMap<Vec<u8>, usize>,
}

#[derive(Debug, Clone)]
struct Entry {
    change: Change,
    /// Derived from a line about an extended attribute, and so only kept if the owner has no
    /// entry of its own.
    xattr: bool,
}

impl DiffParser {
    /// `mountpoint`: where the dataset is mounted, as raw bytes (`/` or `/mnt/x`).
    pub fn new(mountpoint: &[u8]) -> Self {
        DiffParser {
            prefix: mount_prefix(mountpoint).to_vec(),
            line_no: 0,
            entries: Vec::new(),
            unpaired: HashMap::new(),
        }
    }

    /// Parses the next line (without its `\n`); an empty line is an error.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), BackendError> {
        self.line_no += 1;
        let Some(entry) = parse_entry(line, self.line_no, &self.prefix)? else {
            return Ok(());
        };
        if !entry.xattr && matches!(entry.change.kind, ChangeKind::Added | ChangeKind::Removed) {
            if let Some(&index) = self.unpaired.get(&entry.change.path) {
                if let Some(earlier) = self.entries.get_mut(index) {
                    if earlier.change.kind != entry.change.kind {
                        if entry.change.kind == ChangeKind::Added {
                            earlier.change.file_type = entry.change.file_type;
                        }
                        earlier.change.kind = ChangeKind::Modified;
                        self.unpaired.remove(&entry.change.path);
                        return Ok(());
                    }
                }
            } else {
                self.unpaired
                    .insert(entry.change.path.clone(), self.entries.len());
            }
        }
        self.entries.push(entry);
        Ok(())
    }

    /// How many entries are held so far; [`finish`](Self::finish) returns at most this many.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The changes, in the order their paths first appeared.
    pub fn finish(self) -> Vec<Change> {
        let keep: Vec<bool> = {
            // A rename's old path counts as covered too: the rename already reports it.
            let covered: HashSet<&[u8]> = self
                .entries
                .iter()
                .filter(|e| !e.xattr)
                .flat_map(|e| {
                    let from = match &e.change.kind {
                        ChangeKind::Renamed { from } => Some(from.as_slice()),
                        _ => None,
                    };
                    std::iter::once(e.change.path.as_slice()).chain(from)
                })
                .collect();
            let mut reported = HashSet::new();
            self.entries
                .iter()
                .map(|e| {
                    let path = e.change.path.as_slice();
                    !e.xattr || (!covered.contains(path) && reported.insert(path))
                })
                .collect()
        };
        self.entries
            .into_iter()
            .zip(keep)
            .filter_map(|(entry, keep)| keep.then_some(entry.change))
            .collect()
    }
}

/// The mountpoint as zfs prints it in front of paths: without trailing `/`, so `/` is empty.
fn mount_prefix(mountpoint: &[u8]) -> &[u8] {
    let mut prefix = mountpoint;
    while let Some(shorter) = prefix.strip_suffix(b"/") {
        prefix = shorter;
    }
    prefix
}

fn parse_entry(line: &[u8], line_no: usize, prefix: &[u8]) -> Result<Option<Entry>, BackendError> {
    let fail =
        |what: String| BackendError::Malformed(format!("zfs diff output line {line_no}: {what}"));
    if line.is_empty() {
        return Err(fail("empty line".into()));
    }
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    let (mut kind, mut rest) = match fields.split_first() {
        Some((first, rest)) => (*first, rest),
        None => return Err(fail("empty line".into())),
    };
    if kind.len() != 1 && kind.iter().any(u8::is_ascii_digit) {
        if !is_timestamp(kind) {
            return Err(fail(format!(
                "bad timestamp '{}' (expected <seconds>.<9-digit nanoseconds>)",
                Show(kind)
            )));
        }
        (kind, rest) = match rest.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(fail("missing change type after the timestamp".into())),
        };
    }
    let wrong_count = |expected: &str| {
        fail(format!(
            "'{}' line has {} field(s) after the change type, expected {expected}",
            Show(kind),
            rest.len()
        ))
    };
    let file_type = |field: Option<&[u8]>| match field {
        None => Ok(FileType::Unknown),
        Some(field) => {
            file_type_of(field).ok_or_else(|| fail(format!("unknown file type '{}'", Show(field))))
        }
    };
    let resolve = |field: &[u8], what: &str| -> Result<Located, BackendError> {
        let path = unescape_inner(field).map_err(|e| fail(format!("{what}: {e}")))?;
        locate(&path, prefix).ok_or_else(|| {
            let mount: &[u8] = if prefix.is_empty() { b"/" } else { prefix };
            fail(format!(
                "path '{}' is not under the mountpoint '{}'",
                Show(&path),
                Show(mount)
            ))
        })
    };

    match kind {
        b"+" | b"-" => {
            let (ftype, path) = match rest {
                [path] => (None, *path),
                [ftype, path] => (Some(*ftype), *path),
                _ => return Err(wrong_count("1 or 2 ([<file type>] <path>)")),
            };
            let ftype = file_type(ftype)?;
            let change = if kind == b"+" {
                ChangeKind::Added
            } else {
                ChangeKind::Removed
            };
            Ok(named(resolve(path, "path")?, change, ftype))
        }
        b"M" => {
            let (ftype, path, delta) = match rest {
                [path] => (None, *path, None),
                [path, delta] if is_link_delta(delta) => (None, *path, Some(*delta)),
                [ftype, path] => (Some(*ftype), *path, None),
                [ftype, path, delta] => (Some(*ftype), *path, Some(*delta)),
                _ => return Err(wrong_count("1 to 3 ([<file type>] <path> [(+N)])")),
            };
            if let Some(delta) = delta.filter(|d| !is_link_delta(d)) {
                return Err(fail(format!(
                    "bad link count change '{}' (expected (+N) or (-N))",
                    Show(delta)
                )));
            }
            let ftype = file_type(ftype)?;
            Ok(named(resolve(path, "path")?, ChangeKind::Modified, ftype))
        }
        b"R" => {
            let (ftype, old, new) = match rest {
                [old, new] => (None, *old, *new),
                [ftype, old, new] => (Some(*ftype), *old, *new),
                _ => return Err(wrong_count("2 or 3 ([<file type>] <old path> <new path>)")),
            };
            let ftype = file_type(ftype)?;
            let old = resolve(old, "old path")?;
            let new = resolve(new, "new path")?;
            Ok(renamed(old, new, ftype))
        }
        _ => Err(fail(format!("unknown change type '{}'", Show(kind)))),
    }
}

/// Where a printed path points once the mountpoint is taken off.
enum Located {
    /// A path from the dataset root, `/`-led.
    Path(Vec<u8>),
    /// An unlinked object with no path.
    DeleteQueue,
}

fn locate(path: &[u8], prefix: &[u8]) -> Option<Located> {
    let rest = path.strip_prefix(prefix)?;
    if rest == DELETE_QUEUE {
        return Some(Located::DeleteQueue);
    }
    if rest.is_empty() || rest == b"/" {
        return Some(Located::Path(b"/".to_vec()));
    }
    rest.starts_with(b"/").then(|| Located::Path(rest.to_vec()))
}

/// The change for a line naming one path, redirected to the owner for extended attributes.
fn named(located: Located, kind: ChangeKind, file_type: FileType) -> Option<Entry> {
    let Located::Path(path) = located else {
        return None;
    };
    Some(match xattr_owner(&path) {
        Some(owner) => xattr_entry(owner),
        None => Entry {
            change: Change {
                path,
                kind,
                file_type,
                size: None,
            },
            xattr: false,
        },
    })
}

fn renamed(old: Located, new: Located, file_type: FileType) -> Option<Entry> {
    match (old, new) {
        (Located::DeleteQueue, Located::DeleteQueue) => None,
        (old @ Located::Path(_), Located::DeleteQueue) => {
            named(old, ChangeKind::Removed, file_type)
        }
        (Located::DeleteQueue, new @ Located::Path(_)) => named(new, ChangeKind::Added, file_type),
        (Located::Path(old), Located::Path(new)) => {
            // Attribute objects cannot really be renamed; whatever zfs meant, the owner changed.
            if let Some(owner) = xattr_owner(&new).or_else(|| xattr_owner(&old)) {
                return Some(xattr_entry(owner));
            }
            let change = Change {
                path: new,
                kind: ChangeKind::Renamed { from: old },
                file_type,
                size: None,
            };
            Some(Entry {
                change,
                xattr: false,
            })
        }
    }
}

fn xattr_entry(owner: Vec<u8>) -> Entry {
    let change = Change {
        path: owner,
        kind: ChangeKind::Metadata,
        file_type: FileType::Unknown,
        size: None,
    };
    Entry {
        change,
        xattr: true,
    }
}

/// The file whose extended-attribute directory `path` is in or is, if it is one.
fn xattr_owner(path: &[u8]) -> Option<Vec<u8>> {
    let mut owner = Vec::new();
    for component in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if component == XATTR_DIR {
            return Some(if owner.is_empty() {
                b"/".to_vec()
            } else {
                owner
            });
        }
        owner.push(b'/');
        owner.extend_from_slice(component);
    }
    None
}

/// zfs's `%c` for a mode; door (`>`) and event port (`P`) exist only on illumos.
fn file_type_of(field: &[u8]) -> Option<FileType> {
    Some(match field {
        b"B" => FileType::BlockDevice,
        b"C" => FileType::CharDevice,
        b"/" => FileType::Dir,
        b"|" => FileType::Fifo,
        b"@" => FileType::Symlink,
        b"=" => FileType::Socket,
        b"F" => FileType::File,
        b">" | b"P" | b"?" => FileType::Unknown,
        _ => return None,
    })
}

/// `<seconds>.<9-digit nanoseconds>`; zfs pads the seconds to ten columns with spaces and, being
/// a signed `%lld`, a ctime before 1970 would carry a `-`.
fn is_timestamp(field: &[u8]) -> bool {
    let field = field.trim_ascii_start();
    let field = field.strip_prefix(b"-").unwrap_or(field);
    let mut parts = field.splitn(2, |&b| b == b'.');
    let (Some(seconds), Some(nanos)) = (parts.next(), parts.next()) else {
        return false;
    };
    !seconds.is_empty()
        && seconds.iter().all(u8::is_ascii_digit)
        && nanos.len() == 9
        && nanos.iter().all(u8::is_ascii_digit)
}

/// `(+N)` or `(-N)`, as zfs prints a link-count change.
fn is_link_delta(field: &[u8]) -> bool {
    let Some(inner) = field.strip_prefix(b"(").and_then(|f| f.strip_suffix(b")")) else {
        return false;
    };
    let Some(digits) = inner
        .strip_prefix(b"+")
        .or_else(|| inner.strip_prefix(b"-"))
    else {
        return false;
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Escapes as zfs does, to check `unescape` against the rules rather than against itself.
    fn escape(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in raw {
            if b <= 0x20 || b >= 0x7f || b == b'\\' {
                out.extend_from_slice(format!("\\{b:04o}").as_bytes());
            } else {
                out.push(b);
            }
        }
        out
    }

    fn change(path: &[u8], kind: ChangeKind, file_type: FileType) -> Change {
        Change {
            path: path.to_vec(),
            kind,
            file_type,
            size: None,
        }
    }

    fn renamed_from(from: &[u8]) -> ChangeKind {
        ChangeKind::Renamed {
            from: from.to_vec(),
        }
    }

    fn message(err: BackendError) -> String {
        match err {
            BackendError::Malformed(msg) => msg,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn unescape_decodes_four_digit_octal() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"/plain/path", b"/plain/path"),
            (b"a\\0040b", b"a b"),
            (b"tab\\0011", b"tab\t"),
            (b"new\\0012line", b"new\nline"),
            (b"back\\0134slash", b"back\\slash"),
            (b"caf\\0303\\0251", "caf\u{e9}".as_bytes()),
            (b"\\0377\\0376", b"\xff\xfe"),
            (b"\\0000", b"\0"),
            (b"del\\0177", b"del\x7f"),
            // Digits after a complete escape are ordinary text.
            (b"\\00401", b" 1"),
            // Raw bytes are taken as they come.
            (b"raw \xff", b"raw \xff"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input).unwrap(), *want, "input {}", Show(input));
        }
    }

    #[test]
    fn unescape_rejects_malformed_escapes() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"\\",
                "bad escape at offset 0: '\\' must be followed by four octal digits",
            ),
            (
                b"ab\\004",
                "bad escape at offset 2: '\\' must be followed by four octal digits",
            ),
            (
                b"\\0049",
                "bad escape at offset 0: '\\' must be followed by four octal digits",
            ),
            (b"x\\n", "bad escape at offset 1"),
            (b"\\0040\\abcd", "bad escape at offset 5"),
            (
                b"\\0400",
                "bad escape at offset 0: '\\0400' is above \\0377",
            ),
            (
                b"ok\\7777",
                "bad escape at offset 2: '\\7777' is above \\0377",
            ),
        ];
        for (input, want) in cases {
            let msg = message(unescape(input).unwrap_err());
            assert!(
                msg.contains(want),
                "input {}: {msg:?} lacks {want:?}",
                Show(input)
            );
        }
    }

    /// Name, line, mountpoint, expected result.
    type LineCase = (&'static str, &'static [u8], &'static [u8], Option<Change>);

    #[test]
    fn parse_line_reads_every_form() {
        use ChangeKind::*;
        use FileType::*;
        let m = b"/mnt/x";
        let cases: &[LineCase] = &[
            // Each change type, with -F, under a non-root mountpoint.
            (
                "added -F",
                b"+\tF\t/mnt/x/etc/foo",
                m,
                Some(change(b"/etc/foo", Added, File)),
            ),
            (
                "removed -F",
                b"-\t@\t/mnt/x/etc/l",
                m,
                Some(change(b"/etc/l", Removed, Symlink)),
            ),
            (
                "modified -F",
                b"M\t/\t/mnt/x/etc",
                m,
                Some(change(b"/etc", Modified, Dir)),
            ),
            (
                "renamed -F",
                b"R\tF\t/mnt/x/a\t/mnt/x/d/b",
                m,
                Some(change(b"/d/b", renamed_from(b"/a"), File)),
            ),
            // Without -F.
            (
                "added",
                b"+\t/mnt/x/etc/foo",
                m,
                Some(change(b"/etc/foo", Added, Unknown)),
            ),
            (
                "removed",
                b"-\t/mnt/x/etc/foo",
                m,
                Some(change(b"/etc/foo", Removed, Unknown)),
            ),
            (
                "modified",
                b"M\t/mnt/x/etc",
                m,
                Some(change(b"/etc", Modified, Unknown)),
            ),
            (
                "renamed",
                b"R\t/mnt/x/a\t/mnt/x/b",
                m,
                Some(change(b"/b", renamed_from(b"/a"), Unknown)),
            ),
            // With -t, with and without -F; zfs pads seconds to ten columns.
            (
                "added -t -F",
                b"1700000000.123456789\t+\tF\t/mnt/x/a",
                m,
                Some(change(b"/a", Added, File)),
            ),
            (
                "removed -t",
                b"1700000000.000000000\t-\t/mnt/x/a",
                m,
                Some(change(b"/a", Removed, Unknown)),
            ),
            (
                "modified -t padded",
                b"         5.000000001\tM\t|\t/mnt/x/p",
                m,
                Some(change(b"/p", Modified, Fifo)),
            ),
            (
                "negative -t",
                b"        -1.000000000\tM\t/mnt/x/p",
                m,
                Some(change(b"/p", Modified, Unknown)),
            ),
            (
                "renamed -t -F",
                b"1700000000.000000000\tR\t@\t/mnt/x/a\t/mnt/x/b",
                m,
                Some(change(b"/b", renamed_from(b"/a"), Symlink)),
            ),
            (
                "renamed -t",
                b"1700000000.000000000\tR\t/mnt/x/a\t/mnt/x/b",
                m,
                Some(change(b"/b", renamed_from(b"/a"), Unknown)),
            ),
            // Link-count changes.
            (
                "link +1 -F",
                b"M\tF\t/mnt/x/a\t(+1)",
                m,
                Some(change(b"/a", Modified, File)),
            ),
            (
                "link -2",
                b"M\t/mnt/x/a\t(-2)",
                m,
                Some(change(b"/a", Modified, Unknown)),
            ),
            (
                "link -t -F",
                b"1700000000.123456789\tM\tF\t/mnt/x/a\t(+12)",
                m,
                Some(change(b"/a", Modified, File)),
            ),
            (
                "link -t",
                b"1700000000.123456789\tM\t/mnt/x/a\t(-1)",
                m,
                Some(change(b"/a", Modified, Unknown)),
            ),
            // The dataset root, under either kind of mountpoint.
            (
                "root dir",
                b"M\t/\t/mnt/x/",
                m,
                Some(change(b"/", Modified, Dir)),
            ),
            (
                "root dir, bare",
                b"M\t/\t/mnt/x",
                m,
                Some(change(b"/", Modified, Dir)),
            ),
            (
                "root dir, / mounted",
                b"M\t/\t/",
                b"/",
                Some(change(b"/", Modified, Dir)),
            ),
            (
                "/ mounted",
                b"+\tF\t/etc/foo",
                b"/",
                Some(change(b"/etc/foo", Added, File)),
            ),
            (
                "/ mounted rename",
                b"R\t/a\t/b",
                b"/",
                Some(change(b"/b", renamed_from(b"/a"), Unknown)),
            ),
            (
                "trailing / on mountpoint",
                b"+\tF\t/mnt/x/a",
                b"/mnt/x/",
                Some(change(b"/a", Added, File)),
            ),
            // Every file-type character.
            (
                "type B",
                b"+\tB\t/mnt/x/b",
                m,
                Some(change(b"/b", Added, BlockDevice)),
            ),
            (
                "type C",
                b"+\tC\t/mnt/x/c",
                m,
                Some(change(b"/c", Added, CharDevice)),
            ),
            (
                "type /",
                b"+\t/\t/mnt/x/d",
                m,
                Some(change(b"/d", Added, Dir)),
            ),
            (
                "type >",
                b"+\t>\t/mnt/x/d",
                m,
                Some(change(b"/d", Added, Unknown)),
            ),
            (
                "type |",
                b"+\t|\t/mnt/x/p",
                m,
                Some(change(b"/p", Added, Fifo)),
            ),
            (
                "type @",
                b"+\t@\t/mnt/x/l",
                m,
                Some(change(b"/l", Added, Symlink)),
            ),
            (
                "type P",
                b"+\tP\t/mnt/x/e",
                m,
                Some(change(b"/e", Added, Unknown)),
            ),
            (
                "type =",
                b"+\t=\t/mnt/x/s",
                m,
                Some(change(b"/s", Added, Socket)),
            ),
            (
                "type F",
                b"+\tF\t/mnt/x/f",
                m,
                Some(change(b"/f", Added, File)),
            ),
            (
                "type ?",
                b"+\t?\t/mnt/x/u",
                m,
                Some(change(b"/u", Added, Unknown)),
            ),
            // Escaped names.
            (
                "space",
                b"+\tF\t/mnt/x/a\\0040b",
                m,
                Some(change(b"/a b", Added, File)),
            ),
            (
                "tab",
                b"+\tF\t/mnt/x/a\\0011b",
                m,
                Some(change(b"/a\tb", Added, File)),
            ),
            (
                "newline",
                b"+\tF\t/mnt/x/a\\0012b",
                m,
                Some(change(b"/a\nb", Added, File)),
            ),
            (
                "backslash",
                b"+\tF\t/mnt/x/a\\0134b",
                m,
                Some(change(b"/a\\b", Added, File)),
            ),
            (
                "e acute",
                b"+\tF\t/mnt/x/caf\\0303\\0251",
                m,
                Some(change("/caf\u{e9}".as_bytes(), Added, File)),
            ),
            (
                "invalid utf-8",
                b"+\tF\t/mnt/x/\\0377\\0376",
                m,
                Some(change(b"/\xff\xfe", Added, File)),
            ),
            (
                "escaped tab in link line",
                b"M\tF\t/mnt/x/a\\0011(+1)\t(+1)",
                m,
                Some(change(b"/a\t(+1)", Modified, File)),
            ),
            (
                "rename with spaces",
                b"R\tF\t/mnt/x/old\\0040name\t/mnt/x/new\\0040name",
                m,
                Some(change(b"/new name", renamed_from(b"/old name"), File)),
            ),
            (
                "mountpoint with a space",
                b"+\tF\t/mnt/my\\0040disk/a",
                b"/mnt/my disk",
                Some(change(b"/a", Added, File)),
            ),
            // Extended attributes: the owner's metadata changed.
            (
                "xattr file added",
                b"+\tF\t/mnt/x/etc/foo/<xattrdir>/user.x",
                m,
                Some(change(b"/etc/foo", Metadata, Unknown)),
            ),
            (
                "xattr file removed",
                b"-\tF\t/mnt/x/etc/foo/<xattrdir>/user.x",
                m,
                Some(change(b"/etc/foo", Metadata, Unknown)),
            ),
            (
                "xattr dir",
                b"M\t/\t/mnt/x/etc/foo/<xattrdir>",
                m,
                Some(change(b"/etc/foo", Metadata, Unknown)),
            ),
            (
                "xattr of root",
                b"+\tF\t/<xattrdir>/user.x",
                b"/",
                Some(change(b"/", Metadata, Unknown)),
            ),
            (
                "xattr link change",
                b"M\tF\t/mnt/x/a/<xattrdir>/user.x\t(+1)",
                m,
                Some(change(b"/a", Metadata, Unknown)),
            ),
            (
                "xattr rename",
                b"R\tF\t/mnt/x/a/<xattrdir>/user.x\t/mnt/x/a/<xattrdir>/user.y",
                m,
                Some(change(b"/a", Metadata, Unknown)),
            ),
            // Objects on the delete queue have no name.
            (
                "delete queue added",
                b"+\tF\t/mnt/x(on_delete_queue)",
                m,
                None,
            ),
            (
                "delete queue modified",
                b"M\tF\t/mnt/x(on_delete_queue)",
                m,
                None,
            ),
            (
                "delete queue, / mounted",
                b"M\tF\t(on_delete_queue)",
                b"/",
                None,
            ),
            (
                "delete queue -t",
                b"1700000000.000000000\t+\t(on_delete_queue)",
                b"/",
                None,
            ),
            (
                "renamed to delete queue",
                b"R\tF\t/mnt/x/a\t/mnt/x(on_delete_queue)",
                m,
                Some(change(b"/a", Removed, File)),
            ),
            (
                "renamed from delete queue",
                b"R\tF\t(on_delete_queue)\t/tmpfile",
                b"/",
                Some(change(b"/tmpfile", Added, File)),
            ),
            (
                "both delete queue",
                b"R\t(on_delete_queue)\t(on_delete_queue)",
                b"/",
                None,
            ),
            (
                "file named (on_delete_queue)",
                b"+\tF\t/mnt/x/(on_delete_queue)",
                m,
                Some(change(b"/(on_delete_queue)", Added, File)),
            ),
        ];
        for (name, line, mountpoint, want) in cases {
            let got = parse_line(line, 1, mountpoint);
            match got {
                Ok(got) => assert_eq!(got, *want, "case {name}"),
                Err(e) => panic!("case {name}: {e}"),
            }
        }
    }

    #[test]
    fn parse_line_rejects_malformed_lines() {
        let m = b"/mnt/x";
        let cases: &[(&[u8], &[u8], &str)] = &[
            (b"", m, "line 4: empty line"),
            (b"X\tF\t/mnt/x/a", m, "line 4: unknown change type 'X'"),
            (b"MM\t/mnt/x/a", m, "line 4: unknown change type 'MM'"),
            (b"\t/mnt/x/a", m, "line 4: unknown change type ''"),
            (b"+\tZ\t/mnt/x/a", m, "line 4: unknown file type 'Z'"),
            (b"+\tFF\t/mnt/x/a", m, "line 4: unknown file type 'FF'"),
            (b"+\t\t/mnt/x/a", m, "line 4: unknown file type ''"),
            (
                b"R\t#\t/mnt/x/a\t/mnt/x/b",
                m,
                "line 4: unknown file type '#'",
            ),
            (
                b"+",
                m,
                "line 4: '+' line has 0 field(s) after the change type, expected 1 or 2",
            ),
            (
                b"-\tF\t/mnt/x/a\t/mnt/x/b",
                m,
                "line 4: '-' line has 3 field(s)",
            ),
            (b"M", m, "line 4: 'M' line has 0 field(s)"),
            (
                b"M\tF\t/mnt/x/a\t(+1)\tx",
                m,
                "line 4: 'M' line has 4 field(s)",
            ),
            (b"R\t/mnt/x/a", m, "line 4: 'R' line has 1 field(s)"),
            (
                b"R\tF\t/mnt/x/a\t/mnt/x/b\t/mnt/x/c",
                m,
                "line 4: 'R' line has 4 field(s)",
            ),
            (
                b"M\tF\t/mnt/x/a\t(x1)",
                m,
                "line 4: bad link count change '(x1)'",
            ),
            (
                b"M\tF\t/mnt/x/a\t(+)",
                m,
                "line 4: bad link count change '(+)'",
            ),
            (
                b"+\tF\t/mnt/x/a\\0400",
                m,
                "line 4: path: bad escape at offset 8",
            ),
            (
                b"+\tF\t/mnt/x/a\\01",
                m,
                "line 4: path: bad escape at offset 8",
            ),
            (
                b"R\tF\t/mnt/x/a\\9999\t/mnt/x/b",
                m,
                "line 4: old path: bad escape",
            ),
            (
                b"R\tF\t/mnt/x/a\t/mnt/x/b\\",
                m,
                "line 4: new path: bad escape",
            ),
            (
                b"17000.12\t+\tF\t/mnt/x/a",
                m,
                "line 4: bad timestamp '17000.12'",
            ),
            (
                b"1700000000\t+\tF\t/mnt/x/a",
                m,
                "line 4: bad timestamp '1700000000'",
            ),
            (
                b"1700000000.1234567890\t+\t/mnt/x/a",
                m,
                "line 4: bad timestamp",
            ),
            (
                b"1x00000000.123456789\t+\t/mnt/x/a",
                m,
                "line 4: bad timestamp",
            ),
            (
                b"1700000000.123456789",
                m,
                "line 4: missing change type after the timestamp",
            ),
            (
                b"1700000000.123456789\tQ\t/mnt/x/a",
                m,
                "line 4: unknown change type 'Q'",
            ),
            (
                b"+\tF\t/other/a",
                m,
                "line 4: path '/other/a' is not under the mountpoint '/mnt/x'",
            ),
            (
                b"+\tF\t/mnt/xy/a",
                m,
                "line 4: path '/mnt/xy/a' is not under the mountpoint",
            ),
            (
                b"+\tF\tetc/a",
                b"/",
                "line 4: path 'etc/a' is not under the mountpoint '/'",
            ),
            (
                b"+\tF\t/mnt/x\\0012/a",
                m,
                "line 4: path '/mnt/x\\n/a' is not under",
            ),
            (
                b"R\tF\t/other/a\t/mnt/x/b",
                m,
                "line 4: path '/other/a' is not under",
            ),
        ];
        for (line, mountpoint, want) in cases {
            let msg = message(parse_line(line, 4, mountpoint).unwrap_err());
            assert!(msg.starts_with("zfs diff output "), "{msg:?}");
            assert!(
                msg.contains(want),
                "line {}: {msg:?} lacks {want:?}",
                Show(line)
            );
        }
    }

    #[test]
    fn parse_reads_whole_output() {
        use ChangeKind::*;
        use FileType::*;
        let output = b"M\t/\t/mnt/x/\n+\tF\t/mnt/x/a\n-\t@\t/mnt/x/b\nR\tF\t/mnt/x/c\t/mnt/x/d\n";
        let want = vec![
            change(b"/", Modified, Dir),
            change(b"/a", Added, File),
            change(b"/b", Removed, Symlink),
            change(b"/d", renamed_from(b"/c"), File),
        ];
        assert_eq!(parse(output, b"/mnt/x").unwrap(), want);
        let unterminated = output.strip_suffix(b"\n").unwrap();
        assert_eq!(parse(unterminated, b"/mnt/x").unwrap(), want);
        assert_eq!(parse(b"", b"/mnt/x").unwrap(), vec![]);
    }

    #[test]
    fn parse_names_the_failing_line() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"+\tF\t/a\n\n+\tF\t/b\n",
                "zfs diff output line 2: empty line",
            ),
            (b"\n", "zfs diff output line 1: empty line"),
            (b"+\tF\t/a\n\n", "zfs diff output line 2: empty line"),
            (
                b"+\tF\t/1\n+\tF\t/2\n+\tF\t/3\n+\tF\t/4\n+\tF\t/5\n+\tF\t/6\nX\tF\t/7\n",
                "zfs diff output line 7: unknown change type 'X'",
            ),
            (
                b"+\tF\t/a\r\n+\tF\tb\n",
                "zfs diff output line 2: path 'b' is not under",
            ),
        ];
        for (output, want) in cases {
            let msg = message(parse(output, b"/").unwrap_err());
            assert_eq!(
                msg.get(..want.len()),
                Some(*want),
                "output {}",
                Show(output)
            );
        }
    }

    #[test]
    fn parse_folds_recreated_paths_into_modified() {
        use ChangeKind::*;
        use FileType::*;
        let cases: &[(&str, &[u8], Vec<Change>)] = &[
            (
                "adjacent, type changed",
                b"-\tF\t/a\n+\t@\t/a\n",
                vec![change(b"/a", Modified, Symlink)],
            ),
            (
                "apart, at the first's place",
                b"-\tF\t/a\nM\t/\t/\n+\tF\t/a\n",
                vec![change(b"/a", Modified, File), change(b"/", Modified, Dir)],
            ),
            (
                "added first, typed after the added side",
                b"+\t/\t/a\n-\tF\t/a\n",
                vec![change(b"/a", Modified, Dir)],
            ),
            (
                "different paths stay apart",
                b"-\tF\t/a\n+\tF\t/b\n",
                vec![change(b"/a", Removed, File), change(b"/b", Added, File)],
            ),
            (
                "a second pair folds on its own",
                b"-\tF\t/a\n+\tF\t/a\n-\tF\t/a\n+\tF\t/a\n",
                vec![change(b"/a", Modified, File), change(b"/a", Modified, File)],
            ),
            (
                "same sign twice is not a pair",
                b"+\tF\t/a\n+\tF\t/a\n",
                vec![change(b"/a", Added, File), change(b"/a", Added, File)],
            ),
        ];
        for (name, output, want) in cases {
            assert_eq!(parse(output, b"/").unwrap(), *want, "case {name}");
        }
    }

    #[test]
    fn parse_reports_an_xattr_owner_once_and_only_without_its_own_entry() {
        use ChangeKind::*;
        use FileType::*;
        let cases: &[(&str, &[u8], Vec<Change>)] = &[
            (
                "several attributes, one entry",
                b"M\t/\t/f/<xattrdir>\n+\tF\t/f/<xattrdir>/user.a\n-\tF\t/f/<xattrdir>/user.b\n",
                vec![change(b"/f", Metadata, Unknown)],
            ),
            (
                "owner modified",
                b"+\tF\t/f/<xattrdir>/user.a\nM\tF\t/f\n",
                vec![change(b"/f", Modified, File)],
            ),
            (
                "owner removed",
                b"-\tF\t/f/<xattrdir>/user.a\n-\tF\t/f\n-\t/\t/f/<xattrdir>\n",
                vec![change(b"/f", Removed, File)],
            ),
            (
                "owner renamed away",
                b"R\tF\t/f\t/g\n-\tF\t/f/<xattrdir>/user.a\n+\tF\t/g/<xattrdir>/user.a\n",
                vec![change(b"/g", renamed_from(b"/f"), File)],
            ),
            (
                "different owners",
                b"+\tF\t/f/<xattrdir>/user.a\n+\tF\t/g/<xattrdir>/user.a\n",
                vec![
                    change(b"/f", Metadata, Unknown),
                    change(b"/g", Metadata, Unknown),
                ],
            ),
            (
                "delete queue skipped",
                b"+\tF\t(on_delete_queue)\nM\tF\t/a\n",
                vec![change(b"/a", Modified, File)],
            ),
        ];
        for (name, output, want) in cases {
            assert_eq!(parse(output, b"/").unwrap(), *want, "case {name}");
        }
    }

    #[test]
    fn diff_parser_counts_entries_as_it_goes() {
        let mut parser = DiffParser::new(b"/mnt/x");
        assert!(parser.is_empty());
        parser.push_line(b"-\tF\t/mnt/x/a").unwrap();
        parser.push_line(b"+\tF\t/mnt/x/a").unwrap();
        assert_eq!(parser.len(), 1);
        let msg = message(parser.push_line(b"?\t/mnt/x/b").unwrap_err());
        assert!(msg.starts_with("zfs diff output line 3: "), "{msg:?}");
        assert_eq!(
            parser.finish(),
            vec![change(b"/a", ChangeKind::Modified, FileType::File)]
        );
    }

    /// Path components as Linux allows them (any byte but `/` and NUL), and not the special ones.
    /// Regression (issue 10): a chain past PATH_MAX came out of `zfs diff` under paths cut at
    /// 4095 bytes, two entries under one cut path.
    #[test]
    fn paths_zfs_may_have_cut_are_named_as_not_listed() {
        let mut long = b"/tmp/deep".to_vec();
        while long.len() < 4095 {
            long.extend_from_slice(b"/aaaaaaaaaa");
        }
        long.truncate(4095);
        let dir = long[..long.iter().rposition(|&b| b == b'/').unwrap()].to_vec();
        let ch = |p: &[u8], kind| Change {
            path: p.to_vec(),
            kind,
            file_type: FileType::Dir,
            size: None,
        };
        let (kept, unlisted) = past_path_max(vec![
            ch(b"/tmp/deep", ChangeKind::Added),
            ch(&long, ChangeKind::Added),
            ch(&long, ChangeKind::Added),
            ch(b"/moved", ChangeKind::Renamed { from: long.clone() }),
        ]);
        assert_eq!(
            kept,
            vec![
                ch(b"/tmp/deep", ChangeKind::Added),
                ch(b"/moved", ChangeKind::Added)
            ]
        );
        assert_eq!(unlisted.len(), 1);
        assert_eq!(unlisted[0].path, dir);
        assert!(unlisted[0].reason.starts_with("path too long"));
    }

    fn component() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(1u8..=255, 1..12).prop_filter("not special", |c| {
            !c.contains(&b'/') && c != XATTR_DIR && c != b"." && c != b".."
        })
    }

    proptest! {
        #[test]
        fn unescape_inverts_escape(raw in prop::collection::vec(any::<u8>(), 0..128)) {
            let escaped = escape(&raw);
            prop_assert!(escaped.iter().all(|&b| b > 0x20 && b < 0x7f && b != b'\t' && b != b'\n'));
            prop_assert_eq!(unescape(&escaped).unwrap(), raw);
        }

        #[test]
        fn unescape_never_panics(raw in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = unescape(&raw);
        }

        #[test]
        fn unescape_never_panics_near_escapes(
            raw in prop::collection::vec(prop::sample::select(b"\\01378a".to_vec()), 0..32)
        ) {
            let _ = unescape(&raw);
        }

        #[test]
        fn parse_never_panics(
            raw in prop::collection::vec(
                prop_oneof![any::<u8>(), prop::sample::select(b"\t\n+-MR/F(@)<>".to_vec())],
                0..96,
            )
        ) {
            let _ = parse(&raw, b"/");
            let _ = parse(&raw, b"/mnt/x");
        }

        #[test]
        fn escaped_paths_come_back_from_the_dataset_root(
            components in prop::collection::vec(component(), 0..5),
            mountpoint in prop::sample::select(vec![&b"/"[..], b"/mnt/x", b"/mnt/my disk", b"/\xc3\xa9"]),
        ) {
            let mut path = Vec::new();
            for c in &components {
                path.push(b'/');
                path.extend_from_slice(c);
            }
            if path.is_empty() {
                path.push(b'/');
            }
            let printed = escape(&[mount_prefix(mountpoint), &path[..]].concat());
            let line = [&b"+\tF\t"[..], &printed].concat();
            let got = parse_line(&line, 1, mountpoint).unwrap();
            prop_assert_eq!(got, Some(change(&path, ChangeKind::Added, FileType::File)));
        }
    }
}
