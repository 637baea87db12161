//! `darlings restore`: copies paths back out of a kept old root (mounted read-only at a private
//! directory) into the running root or into the store that persists them, with seed-from-blank's
//! copier. Every path is checked before anything is copied, and nothing that exists is ever
//! replaced: an existing destination is refused, to be moved aside by a person.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::{Backend, BackendError};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::config::Kind;
use crate::paths::AbsPath;
use crate::plan::{Plan, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Into {
    /// The running root (--root).
    Root,
    /// The store whose entry persists the path.
    Store,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("restore refused, nothing was copied:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("cannot restore {path}{}", already(.done))]
    Copy {
        path: String,
        /// The paths copied before this one failed: they stay.
        done: Vec<String>,
        #[source]
        source: Box<crate::apply::ApplyError>,
    },
}

fn already(done: &[String]) -> String {
    if done.is_empty() {
        String::new()
    } else {
        format!(
            " (already restored, and left in place: {})",
            done.join(", ")
        )
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

fn open_dir(dir: BorrowedFd<'_>, rel: &[u8]) -> Result<OwnedFd, Errno> {
    if rel.is_empty() {
        return fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        );
    }
    fs::openat2(
        dir,
        OsStr::from_bytes(rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// `/a/b/c` as (`a/b`, `c`).
fn split(p: &AbsPath) -> (&[u8], &[u8]) {
    let rel = p.relative();
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[][..], rel),
    }
}

fn why(e: Errno) -> String {
    match e {
        Errno::NOENT => "does not exist".into(),
        Errno::LOOP | Errno::XDEV => "is or passes through a symlink (never followed)".into(),
        Errno::NOTDIR => "passes through something that is not a directory".into(),
        e => e.to_string(),
    }
}

/// One checked copy, ready to go.
struct Job {
    path: AbsPath,
    kind: Kind,
    src: OwnedFd,
    dst_dir: OwnedFd,
    name: Vec<u8>,
    /// The destination as the running system sees it.
    shown: Vec<u8>,
}

/// Where `path` goes with `--into store`: the store of the entry that persists it, and the path
/// inside that store.
fn store_of<'a>(plan: &'a Plan, path: &AbsPath) -> Option<&'a AbsPath> {
    plan.steps.iter().find_map(|s| match s {
        Step::Bind(b)
            if &b.target == path || (b.kind == Kind::Dir && path.is_inside(&b.target)) =>
        {
            Some(&b.store)
        }
        _ => None,
    })
}

fn check(
    old: BorrowedFd<'_>,
    old_shown: &str,
    rootfd: BorrowedFd<'_>,
    root: &Path,
    plan: &Plan,
    into: Into,
    path: &AbsPath,
) -> Result<Job, String> {
    if path.is_root() {
        return Err("/ cannot be restored whole; name the paths inside it".into());
    }
    let (parent, name) = split(path);
    let pdir = open_dir(old, parent).map_err(|e| {
        format!(
            "{path} is not in the old root {old_shown}: its directory {}",
            why(e)
        )
    })?;
    let st = fs::statat(&pdir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| format!("{path} is not in the old root {old_shown}: it {}", why(e)))?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => {
            return Err(format!(
                "{path} is a symlink in the old root {old_shown}; restore the directory holding it"
            ))
        }
        _ => {
            return Err(format!(
                "{path} in the old root {old_shown} is not a file or directory; copy it by hand"
            ))
        }
    };
    let flags = match kind {
        Kind::Dir => OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Kind::File => OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
    };
    let src = fs::openat(&pdir, OsStr::from_bytes(name), flags, Mode::empty())
        .map_err(|e| format!("cannot open {path} in the old root {old_shown}: {e}"))?;
    let (dest, base_shown) = match into {
        Into::Root => (path.clone(), root.display().to_string()),
        Into::Store => {
            let store = store_of(plan, path).ok_or_else(|| {
                format!("no entry of the config persists {path}, so no store is its home; use --into root")
            })?;
            (path.under(store), root.display().to_string())
        }
    };
    let mut shown = base_shown.trim_end_matches('/').as_bytes().to_vec();
    shown.extend_from_slice(dest.as_bytes());
    let shown_s = darlings_backends::bytes::Show(&shown).to_string();
    let (dparent, dname) = split(&dest);
    let dst_dir = open_dir(rootfd, dparent)
        .map_err(|e| format!("the directory of {shown_s} {}; create it first", why(e)))?;
    match fs::statat(&dst_dir, OsStr::from_bytes(dname), AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => {}
        Ok(_) => {
            return Err(format!(
                "{shown_s} exists; restore never replaces anything: move it aside (mv {shown_s} {shown_s}.before-restore) and run again"
            ))
        }
        Err(e) => return Err(format!("cannot stat {shown_s}: {e}")),
    }
    Ok(Job {
        path: path.clone(),
        kind,
        src,
        dst_dir,
        name: dname.to_vec(),
        shown,
    })
}

/// Checks every path, then (unless `dry_run`) copies each; one line per path.
pub fn restore(
    b: &dyn Backend,
    old: &str,
    paths: &[AbsPath],
    root: &Path,
    plan: &Plan,
    into: Into,
    dry_run: bool,
) -> Result<Vec<String>, RestoreError> {
    let tree = b.open_old_root(old)?;
    let rootfd = fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        RestoreError::Refused(vec![format!("cannot open root {}: {e}", root.display())])
    })?;
    let shown = tree.shown();
    let mut jobs = Vec::new();
    let mut refused = Vec::new();
    for p in paths {
        match check(tree.dir(), &shown, rootfd.as_fd(), root, plan, into, p) {
            Ok(j) => {
                if jobs.iter().any(|o: &Job| o.shown == j.shown) {
                    refused.push(format!("{p} is named twice"));
                } else {
                    jobs.push(j);
                }
            }
            Err(m) => refused.push(m),
        }
    }
    if !refused.is_empty() {
        return Err(RestoreError::Refused(refused));
    }
    let mut lines = Vec::new();
    for j in &jobs {
        let dest = darlings_backends::bytes::Show(&j.shown).to_string();
        if dry_run {
            lines.push(format!(
                "would: copy {} {} from the old root {old} to {dest}",
                j.kind.as_str(),
                j.path
            ));
            continue;
        }
        let c = crate::seed::copy_into_store(
            j.src.as_fd(),
            j.kind,
            j.dst_dir.as_fd(),
            &j.name,
            &j.shown,
        )
        .map_err(|e| RestoreError::Copy {
            path: j.path.to_string(),
            done: jobs
                .iter()
                .take_while(|o| o.shown != j.shown)
                .map(|o| o.path.to_string())
                .collect(),
            source: Box::new(e),
        })?;
        lines.push(format!(
            "restored {} from the old root {old} to {dest}: {} entr{}, {} byte(s){}",
            j.path,
            c.entries,
            if c.entries == 1 { "y" } else { "ies" },
            c.bytes,
            if c.skipped.is_empty() {
                String::new()
            } else {
                format!("; left out: {}", c.skipped.join(", "))
            }
        ));
    }
    Ok(lines)
}
