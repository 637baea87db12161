//! `darlings orphans`: what the stores hold that no entry of the config covers any more (an
//! entry removed from the config leaves its data behind), with sizes and last change times, and
//! their removal, only ever on an explicit answer or list. Every walk is beneath the store's fd,
//! never follows a symlink and never crosses a mount point.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::bytes::Show;
use rustix::fs::{
    self, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxAttributes, StatxFlags,
};
use rustix::io::Errno;
use serde_json::{json, Value};

use crate::config::Config;
use crate::paths::AbsPath;
use crate::plan::{Plan, Step};
use crate::show::path_fields;

pub const SCHEMA: &str = "darlings.orphans/1";

/// The shared pair: a failed call on a named path, or a refusal saying what to do.
pub type OrphanError = crate::error::BackendError;

fn io(what: String, e: Errno) -> OrphanError {
    OrphanError::io(what, e.into())
}

/// Bytes and the newest change in a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the sizes of everything but directories (apparent sizes, as `du -b` counts).
    pub bytes: u64,
    pub entries: u64,
    /// Newest mtime or ctime in it, seconds since the epoch.
    pub newest: i64,
    /// A mount point found inside (first one), which no walk crosses.
    pub mount: Option<Vec<u8>>,
}

/// One orphan: the highest uncovered path of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub store: AbsPath,
    /// The path as the booted system sees it: the store path and the path inside it.
    pub path: AbsPath,
    pub kind: &'static str,
    pub usage: Usage,
}

#[derive(Debug, Default)]
pub struct Orphans {
    pub orphans: Vec<Orphan>,
    /// What the walk left alone and why (unresolved users, mount points).
    pub notes: Vec<String>,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &[u8]) -> Result<OwnedFd, Errno> {
    fs::openat2(
        dir,
        OsStr::from_bytes(rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

fn is_mount_root(dir: BorrowedFd<'_>, name: &[u8]) -> bool {
    fs::statx(
        dir,
        OsStr::from_bytes(name),
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|s| s.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

fn kind_of(t: FileType) -> &'static str {
    match t {
        FileType::Directory => "dir",
        FileType::RegularFile => "file",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice | FileType::BlockDevice => "device",
        FileType::Unknown => "unknown",
    }
}

/// Adds `name` in `dir` (and, for a directory, everything beneath it) to `u`.
fn add_usage(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8], u: &mut Usage) {
    let Ok(st) = fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) else {
        return;
    };
    u.entries += 1;
    u.newest = u.newest.max(st.st_mtime).max(st.st_ctime);
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        u.bytes += st.st_size as u64;
        return;
    }
    if is_mount_root(dir, name) {
        u.mount.get_or_insert_with(|| shown.to_vec());
        return;
    }
    let Ok(sub) = open_dir_beneath(dir, name) else {
        return;
    };
    for n in names(sub.as_fd()) {
        add_usage(sub.as_fd(), &n, &join(shown, &n), u);
    }
}

/// Bytes and newest change of the tree at `dir` (itself included).
pub fn usage_of_dir(dir: BorrowedFd<'_>) -> Usage {
    let mut u = Usage::default();
    if let Ok(st) = fs::fstat(dir) {
        u.newest = st.st_mtime.max(st.st_ctime);
    }
    for n in names(dir) {
        add_usage(dir, &n, &n, &mut u);
    }
    u
}

fn names(dir: BorrowedFd<'_>) -> Vec<Vec<u8>> {
    let Ok(d) = fs::Dir::read_from(dir) else {
        return Vec::new();
    };
    let mut v: Vec<Vec<u8>> = d
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n.as_slice() != b"." && n.as_slice() != b"..")
        .collect();
    v.sort();
    v
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    darlings_backends::bytes::join(a, b)
}

/// What covers a store's tree: entry sources (whole subtrees), the directories on the way to
/// them, and names taken for homes of users whose home is not known.
#[derive(Default)]
struct Cover {
    entries: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    unknown_users: Vec<String>,
}

impl Cover {
    fn add(&mut self, inside: &AbsPath) {
        for a in inside.ancestors() {
            self.ancestors.insert(a.as_bytes().to_vec());
        }
        self.entries.insert(inside.as_bytes().to_vec());
    }
}

fn covers(config: &Config, plan: &Plan, store: &AbsPath) -> Cover {
    let mut c = Cover::default();
    for step in &plan.steps {
        match step {
            Step::Bind(b) if &b.store == store => c.add(&b.target),
            Step::Deferred(d) if &d.store == store => match AbsPath::parse(&d.target) {
                Ok(p) => c.add(&p),
                // `~alice/Documents`: the home is not known, so no path of the store can be
                // said not to be it.
                Err(_) => {
                    let user = d
                        .target
                        .strip_prefix('~')
                        .and_then(|t| t.split('/').next())
                        .unwrap_or_default()
                        .to_string();
                    if !c.unknown_users.contains(&user) {
                        c.unknown_users.push(user);
                    }
                }
            },
            _ => {}
        }
    }
    // darlings' own files: the saved reports.
    if let Some(dir) = &config.diff.report_dir {
        if let Some(rel) = inside(dir, store) {
            c.add(&rel);
        }
    }
    // Another store nested in this one is that store's, not an orphan of this one.
    for other in &config.stores {
        if &other.path != store {
            if let Some(rel) = inside(&other.path, store) {
                c.add(&rel);
            }
        }
    }
    c
}

/// `path` seen from inside `store` (`/persist/var/log` in `/persist` is `/var/log`).
fn inside(path: &AbsPath, store: &AbsPath) -> Option<AbsPath> {
    if !path.is_inside(store) {
        return None;
    }
    let rest = if store.is_root() {
        path.as_bytes()
    } else {
        &path.as_bytes()[store.as_bytes().len()..]
    };
    Some(AbsPath::from_normal_bytes(rest.to_vec()))
}

fn open_root(root: &Path) -> Result<OwnedFd, OrphanError> {
    fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(format!("cannot open root {}", root.display()), e))
}

fn open_store(
    rootfd: BorrowedFd<'_>,
    root: &Path,
    store: &AbsPath,
) -> Result<OwnedFd, OrphanError> {
    open_dir_beneath(rootfd, store.relative()).map_err(|e| match e {
        Errno::NOENT => OrphanError::Refused(format!(
            "store {}{store} does not exist; mount the persistent filesystem there",
            root.display().to_string().trim_end_matches('/')
        )),
        Errno::LOOP | Errno::XDEV => OrphanError::Refused(format!(
            "store {}{store} is or passes through a symlink; darlings never follows symlinks in a root or store",
            root.display().to_string().trim_end_matches('/')
        )),
        e => io(format!("cannot open store {store}"), e),
    })
}

/// Lists the orphans of every store of `config` beneath `root`.
pub fn find(config: &Config, plan: &Plan, root: &Path) -> Result<Orphans, OrphanError> {
    let rootfd = open_root(root)?;
    let mut out = Orphans::default();
    for s in &config.stores {
        let storefd = open_store(rootfd.as_fd(), root, &s.path)?;
        let cover = covers(config, plan, &s.path);
        for u in &cover.unknown_users {
            out.notes.push(format!(
                "store {}: user {u}'s home is not known (not in the root's etc/passwd, no home in the config): every directory named {u} is taken for it and left alone",
                s.path
            ));
        }
        walk(storefd.as_fd(), b"/", &s.path, &cover, &mut out);
    }
    Ok(out)
}

fn walk(dir: BorrowedFd<'_>, rel: &[u8], store: &AbsPath, cover: &Cover, out: &mut Orphans) {
    for n in names(dir) {
        let child = join(rel, &n);
        let shown = AbsPath::from_normal_bytes(child.clone()).under(store);
        if cover.entries.contains(&child) {
            continue;
        }
        // A seed-from-blank copy cut short: darlings' own, replaced by the next seed.
        if n.starts_with(b".") && n.ends_with(b".darlings-seed") {
            continue;
        }
        let Ok(st) = fs::statat(dir, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW) else {
            out.notes
                .push(format!("{shown}: cannot stat it; left alone"));
            continue;
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Directory && is_mount_root(dir, &n) {
            out.notes.push(format!(
                "{shown}: another filesystem is mounted there; not walked"
            ));
            continue;
        }
        // A directory that may hold an unknown user's home is walked, not taken whole.
        let may_hold_home = ft == FileType::Directory
            && !cover.unknown_users.is_empty()
            && open_dir_beneath(dir, &n)
                .is_ok_and(|sub| holds_dir_named(sub.as_fd(), &cover.unknown_users, 0));
        if cover.ancestors.contains(&child) || may_hold_home {
            if ft == FileType::Directory {
                if let Ok(sub) = open_dir_beneath(dir, &n) {
                    walk(sub.as_fd(), &child, store, cover, out);
                }
            }
            continue;
        }
        if ft == FileType::Directory
            && cover
                .unknown_users
                .iter()
                .any(|u| u.as_bytes() == n.as_slice())
        {
            continue;
        }
        let mut u = Usage::default();
        add_usage(dir, &n, shown.as_bytes(), &mut u);
        out.orphans.push(Orphan {
            store: store.clone(),
            path: shown,
            kind: kind_of(ft),
            usage: u,
        });
    }
}

/// Whether a directory named after one of `users` lies anywhere in `dir` (mount points and
/// symlinks aside).
fn holds_dir_named(dir: BorrowedFd<'_>, users: &[String], depth: usize) -> bool {
    if depth > 64 {
        // Deeper than any home: a path that long is not one, but say yes to stay on the safe side.
        return true;
    }
    for n in names(dir) {
        let Ok(st) = fs::statat(dir, OsStr::from_bytes(&n), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory || is_mount_root(dir, &n) {
            continue;
        }
        if users.iter().any(|u| u.as_bytes() == n.as_slice()) {
            return true;
        }
        if let Ok(sub) = open_dir_beneath(dir, &n) {
            if holds_dir_named(sub.as_fd(), users, depth + 1) {
                return true;
            }
        }
    }
    false
}

/// RFC 3339 UTC for seconds since the epoch.
pub fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("@{secs}"))
}

impl Orphans {
    pub fn to_json(&self) -> Value {
        let list: Vec<Value> = self
            .orphans
            .iter()
            .map(|o| {
                let mut v = json!({
                    "store": o.store.to_string(),
                    "kind": o.kind,
                    "bytes": o.usage.bytes,
                    "entries": o.usage.entries,
                    "changed": utc(o.usage.newest),
                });
                path_fields(&mut v, "path", o.path.as_bytes());
                if let Some(m) = &o.usage.mount {
                    path_fields(&mut v, "mount_inside", m);
                }
                v
            })
            .collect();
        json!({ "schema": SCHEMA, "orphans": list, "notes": self.notes })
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.orphans.is_empty() {
            s.push_str("no orphans: every path in the stores is covered by an entry\n");
        }
        for o in &self.orphans {
            s.push_str(&format!(
                "{:>10}  {}  {:<7} {}{}\n",
                crate::show::human(o.usage.bytes),
                utc(o.usage.newest),
                o.kind,
                o.path,
                o.usage
                    .mount
                    .as_ref()
                    .map(|m| format!("  (holds a mount point at {}: not removable)", Show(m)))
                    .unwrap_or_default()
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }

    /// The orphans named in `paths` (each must be one listed; otherwise nothing is chosen).
    pub fn select(&self, paths: &[AbsPath]) -> Result<Vec<&Orphan>, OrphanError> {
        let mut chosen = Vec::new();
        let mut bad = Vec::new();
        for p in paths {
            match self.orphans.iter().find(|o| &o.path == p) {
                Some(o) => chosen.push(o),
                None => bad.push(p.to_string()),
            }
        }
        if !bad.is_empty() {
            return Err(OrphanError::Refused(format!(
                "not an orphan: {}; only paths `darlings orphans` lists can be removed (nothing was removed)",
                bad.join(", ")
            )));
        }
        Ok(chosen)
    }
}

/// Removes `o` from its store beneath `root`: never follows a symlink, never crosses into
/// another filesystem (a mount point inside refuses the whole orphan before anything goes).
pub fn remove(root: &Path, o: &Orphan) -> Result<(), OrphanError> {
    if let Some(m) = &o.usage.mount {
        return Err(OrphanError::Refused(format!(
            "{} holds a mount point at {}; unmount it first",
            o.path,
            Show(m)
        )));
    }
    let rootfd = open_root(root)?;
    let storefd = open_store(rootfd.as_fd(), root, &o.store)?;
    let rel = inside(&o.path, &o.store)
        .ok_or_else(|| OrphanError::Refused(format!("{} is not inside {}", o.path, o.store)))?;
    let (parent, name) = match rel.as_bytes().iter().rposition(|&b| b == b'/') {
        Some(0) | None => (None, &rel.as_bytes()[1..]),
        Some(i) => (Some(&rel.as_bytes()[1..i]), &rel.as_bytes()[i + 1..]),
    };
    let dir = match parent {
        Some(p) => open_dir_beneath(storefd.as_fd(), p)
            .map_err(|e| io(format!("cannot open the directory of {}", o.path), e))?,
        None => storefd,
    };
    let dev = fs::fstat(&dir)
        .map_err(|e| io(format!("cannot stat the directory of {}", o.path), e))?
        .st_dev;
    remove_tree(dir.as_fd(), name, o.path.as_bytes(), dev)
}

fn remove_tree(
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
    dev: u64,
) -> Result<(), OrphanError> {
    let n = OsStr::from_bytes(name);
    let st = match fs::statat(dir, n, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io(format!("cannot stat {}", Show(shown)), e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return fs::unlinkat(dir, n, AtFlags::empty())
            .map_err(|e| io(format!("cannot remove {}", Show(shown)), e));
    }
    if st.st_dev != dev || is_mount_root(dir, name) {
        return Err(OrphanError::Refused(format!(
            "{} is another filesystem or subvolume; remove it yourself",
            Show(shown)
        )));
    }
    let sub =
        open_dir_beneath(dir, name).map_err(|e| io(format!("cannot open {}", Show(shown)), e))?;
    for c in names(sub.as_fd()) {
        remove_tree(sub.as_fd(), &c, &join(shown, &c), dev)?;
    }
    fs::unlinkat(dir, n, AtFlags::REMOVEDIR)
        .map_err(|e| io(format!("cannot remove {}", Show(shown)), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_a_store() {
        let p = |s: &str| AbsPath::parse(s).unwrap();
        assert_eq!(
            inside(&p("/persist/var/log"), &p("/persist")),
            Some(p("/var/log"))
        );
        assert_eq!(inside(&p("/persist"), &p("/persist")), None);
        assert_eq!(inside(&p("/persistx/a"), &p("/persist")), None);
    }
}
