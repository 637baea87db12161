//! The Btrfs diff when the send stream cannot give it: the root's read-only snapshot and the
//! blank walked side by side, name by name, through directory descriptors.
//!
//! `btrfs send` fails as a whole on the first path longer than PATH_MAX ("File name too long"),
//! and any user can make one (17 names of 250 bytes under /tmp). The diff must still report what
//! it can, so this walk takes over: it never builds a path for a system call (every lookup is
//! relative to its directory's descriptor), lists everything up to PATH_MAX, and names each
//! subtree past it as not listed.
//!
//! It compares by path, the way the report reads. A snapshot keeps its source's inode numbers,
//! so an entry with the same inode number at the same path is the blank's entry, changed or
//! not, and one whose change time (which nobody can set) and size are the blank's is unchanged. For the
//! others it compares what a user would call a change: type, content (the size, then the bytes,
//! in bounded memory), symlink target, device number, mode, owner and extended attributes; not
//! times. A renamed entry shows as removed at its old path and added at its new one.

use std::collections::HashSet;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::fs::{self, AtFlags, Mode, OFlags, Statx, StatxFlags};
use rustix::io::Errno;

use crate::bytes::join;
use crate::{
    BackendError, Change, ChangeKind, DiffLimits, DiffOutput, FileType, Truncation, Unlisted,
    PATH_MAX,
};

/// Compares the snapshot open at `root` with the blank open at `blank`. `skip` holds the
/// nested subvolumes, reported on their own; `start` is when the diff began.
pub(crate) fn compare(
    root: &OwnedFd,
    blank: &OwnedFd,
    skip: &HashSet<Vec<u8>>,
    limits: &DiffLimits,
    start: Instant,
) -> Result<DiffOutput, BackendError> {
    crate::raise_open_file_limit();
    let mut w = Walk {
        limits,
        start,
        skip,
        out: DiffOutput::default(),
        seen: 0,
    };
    let what = |e: Errno| BackendError::io("cannot compare the root with the blank", e.into());
    let rs = stat_fd(root.as_fd()).map_err(what)?;
    let bs = stat_fd(blank.as_fd()).map_err(what)?;
    if !same_time(&rs.stx_ctime, &bs.stx_ctime)
        && w.meta_differs(root.as_fd(), blank.as_fd(), &rs, &bs)
    {
        w.push(b"/", ChangeKind::Metadata, FileType::Dir, None);
    }
    let first = Frame::read(
        b"/".to_vec(),
        Some(dup(root).map_err(what)?),
        Some(dup(blank).map_err(what)?),
        same_time(&rs.stx_ctime, &bs.stx_ctime),
    )
    .map_err(what)?;
    let mut stack = vec![first];
    while let Some(frame) = stack.last_mut() {
        let Some(item) = frame.items.get(frame.pos).cloned() else {
            stack.pop();
            continue;
        };
        frame.pos += 1;
        if let Some(cut) = w.over_limits() {
            w.out.truncated = Some(cut);
            break;
        }
        let path = join(&frame.path, &item.name);
        if path.len() >= PATH_MAX {
            if !frame.cut {
                frame.cut = true;
                let at = frame.path.clone();
                w.unlisted(at, format!("path too long (past {PATH_MAX} bytes)"));
            }
            continue;
        }
        let mut item = item;
        if w.skip.contains(&path) {
            // A nested subvolume, reported whole on its own. What the blank had at its path
            // is gone all the same: walk that side alone.
            item.in_root = false;
            if !item.in_blank {
                continue;
            }
        }
        let (r_dir, b_dir) = (
            frame.root.as_ref().map(|f| f.as_fd()),
            frame.blank.as_ref().map(|f| f.as_fd()),
        );
        match w.entry(&path, &item, r_dir, b_dir) {
            Ok(Some(next)) => stack.push(next),
            Ok(None) => {}
            Err(e) => w.unlisted(path, e),
        }
    }
    Ok(w.out)
}

/// One name of a directory pair: where it exists.
#[derive(Clone)]
struct Item {
    name: Vec<u8>,
    in_root: bool,
    in_blank: bool,
}

/// A directory of the root and (or) the blank at the same path, with the union of their names.
struct Frame {
    path: Vec<u8>,
    root: Option<OwnedFd>,
    blank: Option<OwnedFd>,
    items: Vec<Item>,
    pos: usize,
    /// The subtree past PATH_MAX was noted already.
    cut: bool,
}

impl Frame {
    /// `same`: both directories are one unchanged directory (same inode, same change time), so
    /// their names are the same and one side is read.
    fn read(
        path: Vec<u8>,
        root: Option<OwnedFd>,
        blank: Option<OwnedFd>,
        same: bool,
    ) -> rustix::io::Result<Frame> {
        let mut items: Vec<Item> = Vec::new();
        let r = match &root {
            Some(fd) => names(fd)?,
            None => Vec::new(),
        };
        let b = match (&blank, same) {
            (Some(_), true) => r.clone(),
            (Some(fd), false) => names(fd)?,
            (None, _) => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < r.len() || j < b.len() {
            let ord = match (r.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (name, in_root, in_blank) = match ord {
                std::cmp::Ordering::Less => (&r[i], true, false),
                std::cmp::Ordering::Greater => (&b[j], false, true),
                std::cmp::Ordering::Equal => (&r[i], true, true),
            };
            items.push(Item {
                name: name.clone(),
                in_root,
                in_blank,
            });
            if in_root {
                i += 1;
            }
            if in_blank {
                j += 1;
            }
        }
        Ok(Frame {
            path,
            root,
            blank,
            items,
            pos: 0,
            cut: false,
        })
    }
}

/// The names in a directory, sorted, without `.` and `..`.
fn names(fd: &OwnedFd) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for entry in fs::Dir::new(dup(fd)?)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(name.to_vec());
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn dup(fd: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    fs::openat(
        fd,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn stat_fd(fd: BorrowedFd<'_>) -> rustix::io::Result<Statx> {
    fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
}

fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<Statx> {
    fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
}

fn same_time(a: &fs::StatxTimestamp, b: &fs::StatxTimestamp) -> bool {
    (a.tv_sec, a.tv_nsec) == (b.tv_sec, b.tv_nsec)
}

fn type_of(st: &Statx) -> FileType {
    super::diff::type_of(u32::from(st.stx_mode))
}

fn open_path(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

struct Walk<'a> {
    limits: &'a DiffLimits,
    start: Instant,
    skip: &'a HashSet<Vec<u8>>,
    out: DiffOutput,
    seen: usize,
}

impl Walk<'_> {
    fn over_limits(&mut self) -> Option<Truncation> {
        let n = self.out.changes.len() + self.out.unlisted.len();
        if n >= self.limits.max_entries {
            return Some(Truncation::MaxEntries(self.limits.max_entries));
        }
        self.seen += 1;
        if self.seen % 256 == 0 {
            return self.out_of_time();
        }
        None
    }

    fn out_of_time(&self) -> Option<Truncation> {
        self.limits
            .time_budget
            .filter(|b| self.start.elapsed() > *b)
            .map(Truncation::TimeBudget)
    }

    fn push(&mut self, path: &[u8], kind: ChangeKind, file_type: FileType, size: Option<u64>) {
        self.out.changes.push(Change {
            path: path.to_vec(),
            kind,
            file_type,
            size,
        });
    }

    fn unlisted(&mut self, path: Vec<u8>, reason: String) {
        self.out.unlisted.push(Unlisted { path, reason });
    }

    /// Compares one name; returns the directory pair to descend into, if any.
    fn entry(
        &mut self,
        path: &[u8],
        item: &Item,
        r_dir: Option<BorrowedFd<'_>>,
        b_dir: Option<BorrowedFd<'_>>,
    ) -> Result<Option<Frame>, String> {
        let cname = std::ffi::CString::new(item.name.clone())
            .map_err(|_| "a name with a NUL byte".to_string())?;
        let stat = |dir: Option<BorrowedFd<'_>>, present: bool| -> Result<Option<Statx>, String> {
            match dir {
                Some(d) if present => match stat_at(d, &cname) {
                    Ok(st) => Ok(Some(st)),
                    Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(format!("cannot stat it: {e}")),
                },
                _ => Ok(None),
            }
        };
        let rs = stat(r_dir, item.in_root)?;
        let bs = stat(b_dir, item.in_blank)?;
        let size = |st: &Statx| (type_of(st) == FileType::File).then_some(st.stx_size);
        let open =
            |dir: Option<BorrowedFd<'_>>, st: Option<&Statx>| -> Result<Option<OwnedFd>, String> {
                match (dir, st) {
                    (Some(d), Some(st)) if type_of(st) == FileType::Dir => open_dir(d, &cname)
                        .map(Some)
                        .map_err(|e| format!("cannot open the directory: {e}")),
                    _ => Ok(None),
                }
            };
        let descend = |r: Option<OwnedFd>, b: Option<OwnedFd>, same: bool| {
            if r.is_none() && b.is_none() {
                return Ok(None);
            }
            Frame::read(path.to_vec(), r, b, same)
                .map(Some)
                .map_err(|e| format!("cannot read the directory: {e}"))
        };
        match (rs, bs) {
            (None, None) => Ok(None),
            (Some(r), None) => {
                self.push(path, ChangeKind::Added, type_of(&r), size(&r));
                let sub = open(r_dir, Some(&r))?;
                descend(sub, None, false)
            }
            (None, Some(b)) => {
                self.push(path, ChangeKind::Removed, type_of(&b), None);
                let sub = open(b_dir, Some(&b))?;
                descend(None, sub, false)
            }
            (Some(r), Some(b)) => {
                let (rt, bt) = (type_of(&r), type_of(&b));
                if r.stx_ino != b.stx_ino || rt != bt {
                    // Another entry at the same path: replaced, its content is new.
                    self.push(path, ChangeKind::Modified, rt, size(&r));
                    let rsub = open(r_dir, Some(&r))?;
                    let bsub = open(b_dir, Some(&b))?;
                    return descend(rsub, bsub, false);
                }
                // The change time moves at the kernel's coarse clock (a tick, 1 to 10 ms): a
                // write in the same tick as the blank's snapshot keeps it equal. The size is
                // checked too, which such a write nearly always moves (an append did, in a CI
                // run of a_directory_chain_past_path_max_stopped_the_rollback_with_a_populated_blank).
                let unchanged = same_time(&r.stx_ctime, &b.stx_ctime) && r.stx_size == b.stx_size;
                let (Some(rd), Some(bd)) = (r_dir, b_dir) else {
                    return Ok(None);
                };
                if rt == FileType::Dir {
                    if !unchanged {
                        let (rp, bp) = (open_path(rd, &cname), open_path(bd, &cname));
                        let differs = match (rp, bp) {
                            (Ok(rp), Ok(bp)) => self.meta_differs(rp.as_fd(), bp.as_fd(), &r, &b),
                            _ => true,
                        };
                        if differs {
                            self.push(path, ChangeKind::Metadata, rt, None);
                        }
                    }
                    let rsub = open(r_dir, Some(&r))?;
                    let bsub = open(b_dir, Some(&b))?;
                    return descend(rsub, bsub, unchanged);
                }
                if unchanged {
                    return Ok(None);
                }
                if self.content_differs(rd, bd, &cname, &r, &b) {
                    self.push(path, ChangeKind::Modified, rt, size(&r));
                } else {
                    let differs = match (open_path(rd, &cname), open_path(bd, &cname)) {
                        (Ok(rp), Ok(bp)) => self.meta_differs(rp.as_fd(), bp.as_fd(), &r, &b),
                        _ => true,
                    };
                    if differs {
                        self.push(path, ChangeKind::Metadata, rt, size(&r));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Mode, owner or extended attributes. What cannot be read counts as changed: the report
    /// had better name an entry too many than one too few.
    fn meta_differs(&self, r: BorrowedFd<'_>, b: BorrowedFd<'_>, rs: &Statx, bs: &Statx) -> bool {
        if (rs.stx_mode & 0o7777, rs.stx_uid, rs.stx_gid)
            != (bs.stx_mode & 0o7777, bs.stx_uid, bs.stx_gid)
        {
            return true;
        }
        match (crate::xattr::all(r), crate::xattr::all(b)) {
            (Ok(x), Ok(y)) => x != y,
            _ => true,
        }
    }

    /// Content of two non-directories of one type and inode, whose change times differ.
    fn content_differs(
        &self,
        rd: BorrowedFd<'_>,
        bd: BorrowedFd<'_>,
        name: &CStr,
        r: &Statx,
        b: &Statx,
    ) -> bool {
        match type_of(r) {
            // Not the modification time: a time alone is not a change (it is settable, and
            // the send stream's diff does not report it either).
            FileType::File => {
                r.stx_size != b.stx_size || self.bytes_differ(rd, bd, name).unwrap_or(true)
            }
            FileType::Symlink => {
                let target = |d| fs::readlinkat(d, name, Vec::new());
                match (target(rd), target(bd)) {
                    (Ok(x), Ok(y)) => x != y,
                    _ => true,
                }
            }
            FileType::BlockDevice | FileType::CharDevice => {
                (r.stx_rdev_major, r.stx_rdev_minor) != (b.stx_rdev_major, b.stx_rdev_minor)
            }
            _ => false,
        }
    }

    /// Reads both files side by side, 64 KiB at a time; gives up (as changed) at the budget.
    fn bytes_differ(
        &self,
        rd: BorrowedFd<'_>,
        bd: BorrowedFd<'_>,
        name: &CStr,
    ) -> io::Result<bool> {
        let open = |d| {
            fs::openat(
                d,
                name,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        let (fr, fb) = (open(rd)?, open(bd)?);
        let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
        let mut chunks = 0u32;
        loop {
            let n = read_full(&fr, &mut x)?;
            let m = read_full(&fb, &mut y)?;
            if n != m || x[..n] != y[..m] {
                return Ok(true);
            }
            if n == 0 {
                return Ok(false);
            }
            chunks += 1;
            if chunks % 16 == 0 && self.out_of_time().is_some() {
                return Ok(true);
            }
        }
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}
