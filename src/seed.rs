//! The tree copier of `seed-from-blank` and `adopt`: copies a directory or file into a store
//! keeping what a persisted copy must keep, scans a tree before a copy, and compares two trees.
//!
//! `seed-from-blank` (apply): when the store lacks a persisted path that the root (just rolled
//! back, so the blank's content) has, that content is copied into the store before the bind, so
//! the first bind shows what the blank had instead of an empty directory. A whole-OS blank
//! (Debian's `/var/log`, `/etc/ssh`) needs it; NixOS's empty blank never does. `adopt` copies
//! the live root's state into a store the same way, then verifies the copy with `compare`.
//!
//! The seed copy is made under a temporary name beside the target in the store and renamed into
//! place (`RENAME_NOREPLACE`) only when complete, so an interrupted copy is never bound as if it
//! were the store's (adopt stages its copy in a directory of its own, `adopt.rs`). A copy keeps
//! owners, modes, times, extended attributes of directories and regular files (POSIX ACLs are
//! the `system.posix_acl_*` ones), hard links within the tree (one inode stays one inode),
//! holes of sparse files (`SEEK_DATA`/`SEEK_HOLE`), symlinks (as symlinks, never followed),
//! fifos and device nodes; every file and directory it makes is fsynced. It leaves out sockets
//! (a program makes its own when it starts), and a mount beneath the top: skipped for a seed,
//! refused for an adopt. Every name comes from readdir and is opened relative to its
//! directory's fd with `O_NOFOLLOW`, so nothing outside the two trees is reached.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::BackendError;
use darlings_backends::bytes::Show;
use rustix::fs::{
    self, AtFlags, FileType, Mode, OFlags, RenameFlags, SeekFrom, Statx, StatxFlags, Timespec,
    Timestamps, XattrFlags,
};
use rustix::io::Errno;

use crate::apply::ApplyError;
use crate::config::Kind;

/// What a copy did.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct Copied {
    pub entries: u64,
    /// Regular files' sizes (holes included), each inode once.
    pub bytes: u64,
    /// What was left out, one line each ("socket /var/log/x").
    pub skipped: Vec<String>,
}

/// A mount beneath the top of a copy: seed-from-blank leaves it out, adopt refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mounts {
    Skip,
    Refuse,
}

/// How a copy runs; `progress` is called after each entry with the running totals.
pub struct CopyOptions<'a> {
    pub mounts: Mounts,
    pub progress: Option<&'a mut dyn FnMut(&Copied)>,
}

impl CopyOptions<'_> {
    /// seed-from-blank's: mounts beneath are left out.
    pub fn seed() -> CopyOptions<'static> {
        CopyOptions {
            mounts: Mounts::Skip,
            progress: None,
        }
    }
}

fn err(what: String, e: Errno) -> ApplyError {
    BackendError::io(what, e.into()).into()
}

fn join(shown: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = shown.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The temporary name of a seed copy of `name`, in the same store directory.
pub fn temp_name(name: &[u8]) -> Vec<u8> {
    let mut t = b".".to_vec();
    t.extend_from_slice(name);
    t.extend_from_slice(b".darlings-seed");
    t
}

/// Copies `src` (the root's directory or file, opened read-only) into the store directory
/// `dst_dir` as `name`, through a temporary renamed into place. `shown` is the store path, for
/// messages.
pub fn copy_into_store(
    src: BorrowedFd<'_>,
    kind: Kind,
    dst_dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
) -> Result<Copied, ApplyError> {
    let tmp = temp_name(name);
    let tmp_shown = {
        let mut p = shown.to_vec();
        if let Some(i) = p.iter().rposition(|&c| c == b'/') {
            p.truncate(i + 1);
        }
        p.extend_from_slice(&tmp);
        p
    };
    // A temporary left by an interrupted boot is ours (the name says so) and incomplete.
    remove_tree(dst_dir, &tmp, &tmp_shown)?;
    let out = copy_entry(
        src,
        kind,
        dst_dir,
        &tmp,
        &tmp_shown,
        &mut CopyOptions::seed(),
    )?;
    rename_noreplace(dst_dir, &tmp, dst_dir, name, kind).map_err(|e| {
        err(
            format!(
                "cannot rename the seed copy {} to {}",
                Show(&tmp_shown),
                Show(shown)
            ),
            e,
        )
    })?;
    fs::fsync(dst_dir)
        .map_err(|e| err(format!("cannot sync the directory of {}", Show(shown)), e))?;
    Ok(out)
}

/// Renames `from` (in `from_dir`) to `to` (in `to_dir`, the same filesystem) without replacing
/// anything at `to`. ZFS before 2.2 refuses renameat2's flags with EINVAL (openzfs/zfs#2256,
/// fixed by #14070): a file is then hard-linked, which refuses an existing name the same way,
/// and its old name removed; a directory is renamed plainly once `to` was found missing, and
/// rename(2) never replaces a non-empty directory or a non-directory with one, so at most an
/// empty directory made in between could be replaced.
pub fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &[u8],
    to_dir: BorrowedFd<'_>,
    to: &[u8],
    kind: Kind,
) -> rustix::io::Result<()> {
    match fs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL) => match kind {
            Kind::File => {
                fs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
                fs::unlinkat(from_dir, from, AtFlags::empty())
            }
            Kind::Dir => match fs::statat(to_dir, to, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => fs::renameat(from_dir, from, to_dir, to),
                Ok(_) => Err(Errno::EXIST),
                Err(e) => Err(e),
            },
        },
        r => r,
    }
}

/// Copies `src` into `dst_dir` as `name`, which must not exist; no temporary, no rename (the
/// caller stages). `shown` is the new copy's path, for messages.
pub fn copy_entry(
    src: BorrowedFd<'_>,
    kind: Kind,
    dst_dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
    opts: &mut CopyOptions<'_>,
) -> Result<Copied, ApplyError> {
    let st = fstatx(src, shown)?;
    let mut c = Copier {
        mnt_id: st.stx_mnt_id,
        links: HashMap::new(),
        out: Copied::default(),
        opts,
    };
    match kind {
        Kind::File => {
            c.copy_file(src, &st, dst_dir, name, &[], shown)?;
        }
        Kind::Dir => {
            fs::mkdirat(dst_dir, name, Mode::from_raw_mode(0o700))
                .map_err(|e| err(format!("cannot create {}", Show(shown)), e))?;
            let dst = open_dir(dst_dir, name, shown)?;
            c.copy_dir(src, dst.as_fd(), &[], shown)?;
            finish(src, dst.as_fd(), &st, shown)?;
            fs::fsync(&dst).map_err(|e| err(format!("cannot sync {}", Show(shown)), e))?;
            c.out.entries += 1;
        }
    }
    fs::fsync(dst_dir)
        .map_err(|e| err(format!("cannot sync the directory of {}", Show(shown)), e))?;
    Ok(c.out)
}

const STATX: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::MNT_ID);

fn fstatx(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<Statx, ApplyError> {
    fs::statx(fd, "", AtFlags::EMPTY_PATH, STATX)
        .map_err(|e| err(format!("cannot stat {}", Show(shown)), e))
}

/// The entry `name` in `dir` itself (a symlink's own), or what is mounted on it.
fn statx_at(dir: BorrowedFd<'_>, name: &CStr, shown: &[u8]) -> Result<Statx, ApplyError> {
    fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX)
        .map_err(|e| err(format!("cannot stat {}", Show(shown)), e))
}

fn file_type(st: &Statx) -> FileType {
    FileType::from_raw_mode(u32::from(st.stx_mode))
}

fn perm(st: &Statx) -> u32 {
    u32::from(st.stx_mode) & 0o7777
}

fn open_dir(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<OwnedFd, ApplyError> {
    fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(format!("cannot open {}", Show(shown)), e))
}

fn open_file(dir: BorrowedFd<'_>, name: &CStr, shown: &[u8]) -> Result<OwnedFd, ApplyError> {
    fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(format!("cannot open {}", Show(shown)), e))
}

fn times(st: &Statx) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.stx_atime.tv_sec,
            tv_nsec: st.stx_atime.tv_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.stx_mtime.tv_sec,
            tv_nsec: st.stx_mtime.tv_nsec as _,
        },
    }
}

/// The names of a directory, sorted, without `.` and `..`.
fn names(dir: BorrowedFd<'_>, shown: &[u8]) -> Result<Vec<std::ffi::CString>, ApplyError> {
    let d = fs::Dir::read_from(dir).map_err(|e| err(format!("cannot read {}", Show(shown)), e))?;
    let mut out = Vec::new();
    for entry in d {
        let entry = entry.map_err(|e| err(format!("cannot read {}", Show(shown)), e))?;
        let n = entry.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            out.push(n.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Extended attributes as (name, value) pairs, sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The extended attributes of `fd` (a directory or regular file).
pub fn xattrs(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<Xattrs, ApplyError> {
    let what = || format!("cannot list the extended attributes of {}", Show(shown));
    let len = match fs::flistxattr_query(fd) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(err(what(), e)),
    };
    let mut list = vec![0u8; len];
    let n = fs::flistxattr(fd, &mut list[..]).map_err(|e| err(what(), e))?;
    list.truncate(n);
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let what = || {
            format!(
                "cannot read the extended attribute {} of {}",
                Show(name),
                Show(shown)
            )
        };
        let len = match fs::fgetxattr_query(fd, name) {
            Ok(n) => n,
            // Removed between the list and the read.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(err(what(), e)),
        };
        let mut value = vec![0u8; len];
        let n = fs::fgetxattr(fd, name, &mut value[..]).map_err(|e| err(what(), e))?;
        value.truncate(n);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Owner, extended attributes, mode and times of the copy `dst` from the original `src`
/// (`st`). In this order: chown clears set-id bits and file capabilities, and an ACL written
/// after the chmod would change the group bits again.
fn finish(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    st: &Statx,
    shown: &[u8],
) -> Result<(), ApplyError> {
    fs::fchown(
        dst,
        Some(fs::Uid::from_raw(st.stx_uid)),
        Some(fs::Gid::from_raw(st.stx_gid)),
    )
    .map_err(|e| err(format!("cannot chown {}", Show(shown)), e))?;
    for (name, value) in xattrs(src, shown)? {
        fs::fsetxattr(dst, name.as_slice(), &value, XattrFlags::empty()).map_err(|e| {
            err(
                format!(
                    "cannot set the extended attribute {} on {} (does the store's filesystem support it?)",
                    Show(&name),
                    Show(shown)
                ),
                e,
            )
        })?;
    }
    fs::fchmod(dst, Mode::from_raw_mode(perm(st)))
        .map_err(|e| err(format!("cannot chmod {}", Show(shown)), e))?;
    fs::futimens(dst, &times(st))
        .map_err(|e| err(format!("cannot set the times of {}", Show(shown)), e))
}

/// Copies the bytes from `off` to `end` of `src` to the same offsets in `dst` (fewer when the
/// file shrank meanwhile), telling `on_chunk` each chunk's length.
fn copy_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    mut off: u64,
    end: u64,
    buf: &mut [u8],
    shown: &[u8],
    on_chunk: &mut dyn FnMut(u64),
) -> Result<(), ApplyError> {
    while off < end {
        let want = buf.len().min((end - off) as usize);
        let n = rustix::io::pread(src, &mut buf[..want], off)
            .map_err(|e| err(format!("cannot read the original of {}", Show(shown)), e))?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::pwrite(dst, &buf[done..n], off + done as u64)
                .map_err(|e| err(format!("cannot write {}", Show(shown)), e))?;
        }
        off += n as u64;
        on_chunk(n as u64);
    }
    Ok(())
}

/// Copies a file's data extents only, so holes stay holes; a filesystem without
/// `SEEK_DATA` gets every byte.
fn copy_data(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    size: u64,
    shown: &[u8],
    done: &mut dyn FnMut(u64),
) -> Result<(), ApplyError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut off = 0u64;
    while off < size {
        let data = match fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            // Nothing but a hole from `off` to the end.
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL) | Err(Errno::NOTSUP) => {
                copy_range(src, dst, off, size, &mut buf, shown, done)?;
                break;
            }
            Err(e) => {
                return Err(err(
                    format!("cannot seek in the original of {}", Show(shown)),
                    e,
                ))
            }
        };
        let hole = fs::seek(src, SeekFrom::Hole(data))
            .map_err(|e| err(format!("cannot seek in the original of {}", Show(shown)), e))?;
        copy_range(src, dst, data, hole.min(size), &mut buf, shown, done)?;
        off = hole;
    }
    fs::ftruncate(dst, size).map_err(|e| err(format!("cannot size {}", Show(shown)), e))
}

/// Device (major, minor) and inode number.
type Inode = (u32, u32, u64);

struct Copier<'o, 'p> {
    mnt_id: u64,
    /// Regular files with more than one link: the first copy's parent (relative to the top of
    /// the copy, components) and name, for the next name of the same inode.
    links: HashMap<Inode, (Vec<Vec<u8>>, Vec<u8>)>,
    out: Copied,
    opts: &'o mut CopyOptions<'p>,
}

impl Copier<'_, '_> {
    fn tick(&mut self) {
        if let Some(p) = self.opts.progress.as_mut() {
            p(&self.out);
        }
    }

    /// `rel`: the components of `dst_dir` below the top of the copy.
    fn copy_file(
        &mut self,
        src: BorrowedFd<'_>,
        st: &Statx,
        dst_dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[Vec<u8>],
        shown: &[u8],
    ) -> Result<(), ApplyError> {
        let id = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
        if st.stx_nlink > 1 {
            if let Some((parent, first)) = self.links.get(&id) {
                let dir = self.reopen_parent(dst_dir, rel, parent, shown)?;
                fs::linkat(
                    dir.as_fd(),
                    first.as_slice(),
                    dst_dir,
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| err(format!("cannot hard-link {}", Show(shown)), e))?;
                self.out.entries += 1;
                self.tick();
                return Ok(());
            }
        }
        let dst = fs::openat(
            dst_dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| err(format!("cannot create {}", Show(shown)), e))?;
        // The running byte count grows as data is copied, for a progress bar on a big file;
        // holes count once the file is done.
        let before = self.out.bytes;
        {
            let (out, progress) = (&mut self.out, &mut self.opts.progress);
            copy_data(src, dst.as_fd(), st.stx_size, shown, &mut |n| {
                out.bytes += n;
                if let Some(p) = progress.as_mut() {
                    p(out);
                }
            })?;
        }
        self.out.bytes = before;
        finish(src, dst.as_fd(), st, shown)?;
        fs::fsync(&dst).map_err(|e| err(format!("cannot sync {}", Show(shown)), e))?;
        if st.stx_nlink > 1 {
            self.links.insert(id, (rel.to_vec(), name.to_vec()));
        }
        self.out.entries += 1;
        self.out.bytes += st.stx_size;
        self.tick();
        Ok(())
    }

    /// The directory `parent` (components below the top of the copy), opened again from `here`
    /// (the directory at `rel`): up by `..` to the top, then down; every directory on the way
    /// was made by this copy.
    fn reopen_parent(
        &self,
        here: BorrowedFd<'_>,
        rel: &[Vec<u8>],
        parent: &[Vec<u8>],
        shown: &[u8],
    ) -> Result<OwnedFd, ApplyError> {
        let mut dir = fs::openat(
            here,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format!("cannot open the directory of {}", Show(shown)), e))?;
        for _ in rel {
            dir = open_dir(dir.as_fd(), b"..", shown)?;
        }
        for c in parent {
            dir = open_dir(dir.as_fd(), c, shown)?;
        }
        Ok(dir)
    }

    fn copy_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &[Vec<u8>],
        shown: &[u8],
    ) -> Result<(), ApplyError> {
        for name in names(src, shown)? {
            let nb = name.to_bytes();
            let path = join(shown, nb);
            let st = statx_at(src, &name, &path)?;
            if st.stx_mnt_id != self.mnt_id {
                match self.opts.mounts {
                    Mounts::Skip => {
                        self.out
                            .skipped
                            .push(format!("another filesystem mounted at {}", Show(&path)));
                        continue;
                    }
                    Mounts::Refuse => {
                        return Err(ApplyError::Step(format!(
                            "{} is a mount point, and a copy would cross into it; unmount it, or adopt what is beneath it on its own",
                            Show(&path)
                        )))
                    }
                }
            }
            match file_type(&st) {
                FileType::Directory => {
                    let from = open_dir(src, nb, &path)?;
                    fs::mkdirat(dst, name.as_c_str(), Mode::from_raw_mode(0o700))
                        .map_err(|e| err(format!("cannot create {}", Show(&path)), e))?;
                    let to = open_dir(dst, nb, &path)?;
                    let mut sub = rel.to_vec();
                    sub.push(nb.to_vec());
                    self.copy_dir(from.as_fd(), to.as_fd(), &sub, &path)?;
                    finish(from.as_fd(), to.as_fd(), &st, &path)?;
                    fs::fsync(&to).map_err(|e| err(format!("cannot sync {}", Show(&path)), e))?;
                    self.out.entries += 1;
                    self.tick();
                }
                FileType::RegularFile => {
                    let from = open_file(src, &name, &path)?;
                    self.copy_file(from.as_fd(), &st, dst, nb, rel, &path)?;
                }
                FileType::Symlink => {
                    let target = fs::readlinkat(src, name.as_c_str(), Vec::new())
                        .map_err(|e| err(format!("cannot read the symlink {}", Show(&path)), e))?;
                    fs::symlinkat(target.as_c_str(), dst, name.as_c_str()).map_err(|e| {
                        err(format!("cannot create the symlink {}", Show(&path)), e)
                    })?;
                    chown_nofollow(dst, &name, &st, "symlink", &path)?;
                    self.special_done(dst, &name, &st, "symlink", &path)?;
                }
                t @ (FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice) => {
                    let (what, dev) = match t {
                        FileType::Fifo => ("fifo", 0),
                        _ => (
                            "device node",
                            fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
                        ),
                    };
                    fs::mknodat(dst, name.as_c_str(), t, Mode::from_raw_mode(0o600), dev)
                        .map_err(|e| err(format!("cannot create the {what} {}", Show(&path)), e))?;
                    chown_nofollow(dst, &name, &st, what, &path)?;
                    fs::chmodat(
                        dst,
                        name.as_c_str(),
                        Mode::from_raw_mode(perm(&st)),
                        AtFlags::empty(),
                    )
                    .map_err(|e| err(format!("cannot chmod the {what} {}", Show(&path)), e))?;
                    self.special_done(dst, &name, &st, what, &path)?;
                }
                FileType::Socket => self.out.skipped.push(format!("socket {}", Show(&path))),
                FileType::Unknown => self
                    .out
                    .skipped
                    .push(format!("unknown file type {}", Show(&path))),
            }
        }
        Ok(())
    }

    /// Times of a symlink or special file, set without following it.
    fn special_done(
        &mut self,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &Statx,
        what: &str,
        path: &[u8],
    ) -> Result<(), ApplyError> {
        fs::utimensat(dst, name, &times(st), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
            err(
                format!("cannot set the times of the {what} {}", Show(path)),
                e,
            )
        })?;
        self.out.entries += 1;
        self.tick();
        Ok(())
    }
}

/// Gives `name` in `dst` the owner of the original, without following it (a symlink's own).
fn chown_nofollow(
    dst: BorrowedFd<'_>,
    name: &CStr,
    st: &Statx,
    what: &str,
    path: &[u8],
) -> Result<(), ApplyError> {
    fs::chownat(
        dst,
        name,
        Some(fs::Uid::from_raw(st.stx_uid)),
        Some(fs::Gid::from_raw(st.stx_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("cannot chown the {what} {}", Show(path)), e))
}

/// Removes `name` in `dir` and everything beneath it, if it exists; only ever called on a
/// temporary whose name no one else uses (a seed's, or an adopt's staging directory).
pub fn remove_tree(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<(), ApplyError> {
    let st = match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(format!("cannot stat {}", Show(shown)), e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = open_dir(dir, name, shown)?;
        for n in names(sub.as_fd(), shown)? {
            let n = n.to_bytes();
            remove_tree(sub.as_fd(), n, &join(shown, n))?;
        }
        fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| err(format!("cannot remove {}", Show(shown)), e))
    } else {
        fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| err(format!("cannot remove {}", Show(shown)), e))
    }
}

/// What a copy of a tree would be, from a read-only walk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Entries a copy makes (the top included).
    pub entries: u64,
    /// Regular files' sizes, each inode once.
    pub bytes: u64,
    /// Mounts beneath the top (a copy would cross them).
    pub mounts: Vec<String>,
    /// What a copy leaves out (sockets).
    pub skipped: Vec<String>,
}

/// Walks `src` (a directory or file, opened read-only) as a copy would, changing nothing.
pub fn scan(src: BorrowedFd<'_>, shown: &[u8]) -> Result<Scan, ApplyError> {
    let st = fstatx(src, shown)?;
    let mut s = Scan::default();
    let mut seen = std::collections::HashSet::new();
    let mut count = |st: &Statx, s: &mut Scan| {
        s.entries += 1;
        if file_type(st) == FileType::RegularFile
            && (st.stx_nlink < 2 || seen.insert((st.stx_dev_major, st.stx_dev_minor, st.stx_ino)))
        {
            s.bytes += st.stx_size;
        }
    };
    count(&st, &mut s);
    if file_type(&st) != FileType::Directory {
        return Ok(s);
    }
    let mut stack = vec![(
        fs::openat(
            src,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format!("cannot open {}", Show(shown)), e))?,
        shown.to_vec(),
    )];
    while let Some((dir, path)) = stack.pop() {
        for name in names(dir.as_fd(), &path)? {
            let p = join(&path, name.to_bytes());
            let est = statx_at(dir.as_fd(), &name, &p)?;
            if est.stx_mnt_id != st.stx_mnt_id {
                s.mounts.push(Show(&p).to_string());
                continue;
            }
            match file_type(&est) {
                FileType::Socket => {
                    s.skipped.push(format!("socket {}", Show(&p)));
                    continue;
                }
                FileType::Unknown => {
                    s.skipped.push(format!("unknown file type {}", Show(&p)));
                    continue;
                }
                FileType::Directory => {
                    let sub = open_dir(dir.as_fd(), name.to_bytes(), &p)?;
                    stack.push((sub, p));
                }
                _ => {}
            }
            count(&est, &mut s);
        }
    }
    Ok(s)
}

/// How strictly `compare` looks: a fresh copy must match in times and hard links too; a store's
/// existing copy only in what a program reads (type, size, content, owner, mode, link target,
/// device number, extended attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Content,
    Copy,
}

struct Comparer {
    strict: Strictness,
    limit: usize,
    diffs: Vec<String>,
    /// Hard links: the first inode in `b` seen for each inode of `a`.
    links: HashMap<Inode, Inode>,
}

/// Compares the tree `a` (the root's: `a_dir`/`a_name`) with `b` (the store's), both shown as
/// `shown` (the persisted path). Returns up to `limit` differences, one line each naming the
/// path and what differs; none means equal. Sockets are left out on both sides, as a copy
/// leaves them out.
pub fn compare(
    a: (BorrowedFd<'_>, &[u8]),
    b: (BorrowedFd<'_>, &[u8]),
    shown: &[u8],
    strict: Strictness,
    limit: usize,
) -> Result<Vec<String>, ApplyError> {
    let mut c = Comparer {
        strict,
        limit,
        diffs: Vec::new(),
        links: HashMap::new(),
    };
    let an = std::ffi::CString::new(a.1).map_err(|_| ApplyError::Step("NUL in a path".into()))?;
    let bn = std::ffi::CString::new(b.1).map_err(|_| ApplyError::Step("NUL in a path".into()))?;
    let top = fs::statx(a.0, an.as_c_str(), AtFlags::SYMLINK_NOFOLLOW, STATX)
        .map_err(|e| err(format!("cannot stat {}", Show(shown)), e))?;
    c.entry((a.0, &an), (b.0, &bn), shown, top.stx_mnt_id)?;
    Ok(c.diffs)
}

impl Comparer {
    fn full(&self) -> bool {
        self.diffs.len() >= self.limit
    }

    fn differs(&mut self, path: &[u8], what: String) {
        if !self.full() {
            self.diffs.push(format!("{}: {what}", Show(path)));
        }
    }

    fn entry(
        &mut self,
        a: (BorrowedFd<'_>, &CStr),
        b: (BorrowedFd<'_>, &CStr),
        path: &[u8],
        mnt_id: u64,
    ) -> Result<(), ApplyError> {
        if self.full() {
            return Ok(());
        }
        let sa = statx_at(a.0, a.1, path)?;
        let sb = match fs::statx(b.0, b.1, AtFlags::SYMLINK_NOFOLLOW, STATX) {
            Ok(s) => s,
            Err(Errno::NOENT) => {
                if file_type(&sa) != FileType::Socket {
                    self.differs(path, "only in the root".into());
                }
                return Ok(());
            }
            Err(e) => return Err(err(format!("cannot stat the store's {}", Show(path)), e)),
        };
        let (ta, tb) = (file_type(&sa), file_type(&sb));
        if ta != tb {
            self.differs(
                path,
                format!("{} in the root, {} in the store", kind(ta), kind(tb)),
            );
            return Ok(());
        }
        if sa.stx_mnt_id != mnt_id {
            self.differs(path, "a mount point in the root".into());
            return Ok(());
        }
        let mut what = Vec::new();
        if (sa.stx_uid, sa.stx_gid) != (sb.stx_uid, sb.stx_gid) {
            what.push(format!(
                "owner {}:{} in the root, {}:{} in the store",
                sa.stx_uid, sa.stx_gid, sb.stx_uid, sb.stx_gid
            ));
        }
        if perm(&sa) != perm(&sb) && ta != FileType::Symlink {
            what.push(format!(
                "mode {:04o} in the root, {:04o} in the store",
                perm(&sa),
                perm(&sb)
            ));
        }
        if self.strict == Strictness::Copy
            && ta != FileType::Directory
            && (sa.stx_mtime.tv_sec, sa.stx_mtime.tv_nsec)
                != (sb.stx_mtime.tv_sec, sb.stx_mtime.tv_nsec)
        {
            what.push("modification time".into());
        }
        match ta {
            FileType::RegularFile => {
                if sa.stx_size != sb.stx_size {
                    what.push(format!(
                        "size {} in the root, {} in the store",
                        sa.stx_size, sb.stx_size
                    ));
                } else if !crate::apply::same_content(
                    (a.0, a.1.to_bytes(), path),
                    (b.0, b.1.to_bytes(), path),
                )? {
                    what.push("content".into());
                }
                if self.strict == Strictness::Copy && sa.stx_nlink > 1 {
                    let ia = (sa.stx_dev_major, sa.stx_dev_minor, sa.stx_ino);
                    let ib = (sb.stx_dev_major, sb.stx_dev_minor, sb.stx_ino);
                    if *self.links.entry(ia).or_insert(ib) != ib {
                        what.push("a hard link in the root, a separate file in the store".into());
                    }
                }
            }
            FileType::Symlink => {
                let la = fs::readlinkat(a.0, a.1, Vec::new())
                    .map_err(|e| err(format!("cannot read the symlink {}", Show(path)), e))?;
                let lb = fs::readlinkat(b.0, b.1, Vec::new()).map_err(|e| {
                    err(format!("cannot read the store's symlink {}", Show(path)), e)
                })?;
                if la != lb {
                    what.push(format!(
                        "links to {} in the root, to {} in the store",
                        Show(la.as_bytes()),
                        Show(lb.as_bytes())
                    ));
                }
            }
            FileType::CharacterDevice | FileType::BlockDevice
                if (sa.stx_rdev_major, sa.stx_rdev_minor)
                    != (sb.stx_rdev_major, sb.stx_rdev_minor) =>
            {
                what.push("device number".into());
            }
            _ => {}
        }
        let opened = match ta {
            FileType::Directory => Some((
                open_dir(a.0, a.1.to_bytes(), path)?,
                open_dir(b.0, b.1.to_bytes(), path)?,
            )),
            FileType::RegularFile => Some((open_file(a.0, a.1, path)?, open_file(b.0, b.1, path)?)),
            _ => None,
        };
        if let Some((fa, fb)) = &opened {
            if xattrs(fa.as_fd(), path)? != xattrs(fb.as_fd(), path)? {
                what.push("extended attributes (ACLs among them)".into());
            }
        }
        if !what.is_empty() {
            self.differs(path, what.join(", "));
        }
        if let (FileType::Directory, Some((da, db))) = (ta, opened) {
            let na = names(da.as_fd(), path)?;
            let nb = names(db.as_fd(), path)?;
            for n in &na {
                self.entry(
                    (da.as_fd(), n),
                    (db.as_fd(), n),
                    &join(path, n.to_bytes()),
                    mnt_id,
                )?;
            }
            for n in nb.iter().filter(|n| na.binary_search(n).is_err()) {
                let p = join(path, n.to_bytes());
                let st = statx_at(db.as_fd(), n, &p)?;
                if file_type(&st) != FileType::Socket {
                    self.differs(&p, "only in the store".into());
                }
            }
        }
        Ok(())
    }
}

fn kind(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a fifo",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of unknown type",
    }
}
