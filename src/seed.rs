//! `seed-from-blank`'s copy: when the store lacks a persisted path that the root (just rolled
//! back, so the blank's content) has, that content is copied into the store before the bind, so
//! the first bind shows what the blank had instead of an empty directory. A whole-OS blank
//! (Debian's `/var/log`, `/etc/ssh`) needs it; NixOS's empty blank never does.
//!
//! The copy is made under a temporary name beside the target in the store and renamed into place
//! (`RENAME_NOREPLACE`) only when complete, so an interrupted copy is never bound as if it were
//! the store's. It keeps owners, modes, times, symlinks (as symlinks, never followed) and fifos;
//! it leaves out what a copy cannot carry or should not: sockets, device nodes, other
//! filesystems mounted beneath, extended attributes and ACLs, and hard links (copied as separate
//! files). Every name comes from readdir and is opened relative to its directory's fd with
//! `O_NOFOLLOW`, so nothing outside the two trees is reached.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use darlings_backends::bytes::Show;
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;

use crate::apply::ApplyError;
use crate::config::Kind;

/// What a seed copy did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub entries: u64,
    pub bytes: u64,
    /// What was left out, one line each ("socket /var/log/x").
    pub skipped: Vec<String>,
}

fn err(what: String, e: Errno) -> ApplyError {
    ApplyError::Io {
        what,
        source: e.into(),
    }
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
/// `dst_dir` as `name`. `shown` is the store path, for messages.
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
    let st = fs::fstat(src)
        .map_err(|e| err(format!("cannot stat the root's copy of {}", Show(shown)), e))?;
    let mut out = Copied::default();
    match kind {
        Kind::File => {
            copy_file(src, &st, dst_dir, &tmp, &tmp_shown, &mut out)?;
        }
        Kind::Dir => {
            fs::mkdirat(dst_dir, tmp.as_slice(), Mode::from_raw_mode(0o700))
                .map_err(|e| err(format!("cannot create {}", Show(&tmp_shown)), e))?;
            let dst = open_dir(dst_dir, &tmp, &tmp_shown)?;
            copy_dir(src, st.st_dev, dst.as_fd(), &tmp_shown, &mut out)?;
            finish(dst.as_fd(), &st, &tmp_shown)?;
            fs::fsync(&dst).map_err(|e| err(format!("cannot sync {}", Show(&tmp_shown)), e))?;
            out.entries += 1;
        }
    }
    match fs::renameat_with(
        dst_dir,
        tmp.as_slice(),
        dst_dir,
        name,
        RenameFlags::NOREPLACE,
    ) {
        // ZFS before 2.2 refuses renameat2 flags with EINVAL (openzfs/zfs#2256, fixed by #14070);
        // a directory cannot be hard-linked as reports.rs does, so look, then rename plainly.
        Err(Errno::INVAL) => match fs::statat(dst_dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => fs::renameat(dst_dir, tmp.as_slice(), dst_dir, name),
            Ok(_) => Err(Errno::EXIST),
            Err(e) => Err(e),
        },
        r => r,
    }
    .map_err(|e| {
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

fn open_dir(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<OwnedFd, ApplyError> {
    fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(format!("cannot open {}", Show(shown)), e))
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Owner, mode and times of the copy `fd` from the original's `st`.
fn finish(fd: BorrowedFd<'_>, st: &Stat, shown: &[u8]) -> Result<(), ApplyError> {
    fs::fchown(
        fd,
        Some(fs::Uid::from_raw(st.st_uid)),
        Some(fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(|e| err(format!("cannot chown {}", Show(shown)), e))?;
    fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| err(format!("cannot chmod {}", Show(shown)), e))?;
    fs::futimens(fd, &times(st))
        .map_err(|e| err(format!("cannot set the times of {}", Show(shown)), e))
}

fn copy_file(
    src: BorrowedFd<'_>,
    st: &Stat,
    dst_dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
    out: &mut Copied,
) -> Result<(), ApplyError> {
    let dst = fs::openat(
        dst_dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| err(format!("cannot create {}", Show(shown)), e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    loop {
        let n = rustix::io::pread(src, &mut buf, offset)
            .map_err(|e| err(format!("cannot read the root's copy of {}", Show(shown)), e))?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            done += rustix::io::write(&dst, &buf[done..n])
                .map_err(|e| err(format!("cannot write {}", Show(shown)), e))?;
        }
        offset += n as u64;
    }
    finish(dst.as_fd(), st, shown)?;
    fs::fsync(&dst).map_err(|e| err(format!("cannot sync {}", Show(shown)), e))?;
    out.entries += 1;
    out.bytes += offset;
    Ok(())
}

fn copy_dir(
    src: BorrowedFd<'_>,
    dev: u64,
    dst: BorrowedFd<'_>,
    shown: &[u8],
    out: &mut Copied,
) -> Result<(), ApplyError> {
    let dir = fs::Dir::read_from(src)
        .map_err(|e| err(format!("cannot read the root's copy of {}", Show(shown)), e))?;
    for entry in dir {
        let entry =
            entry.map_err(|e| err(format!("cannot read the root's copy of {}", Show(shown)), e))?;
        let name: &CStr = entry.file_name();
        let nb = name.to_bytes();
        if nb == b"." || nb == b".." {
            continue;
        }
        let path = join(shown, nb);
        let st = fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(format!("cannot stat the root's copy of {}", Show(&path)), e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if st.st_dev != dev {
                    out.skipped
                        .push(format!("another filesystem mounted at {}", Show(&path)));
                    continue;
                }
                let from = open_dir(src, nb, &path)?;
                fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| err(format!("cannot create {}", Show(&path)), e))?;
                let to = open_dir(dst, nb, &path)?;
                copy_dir(from.as_fd(), dev, to.as_fd(), &path, out)?;
                finish(to.as_fd(), &st, &path)?;
                out.entries += 1;
            }
            FileType::RegularFile => {
                let from = fs::openat(
                    src,
                    name,
                    OFlags::RDONLY
                        | OFlags::NOFOLLOW
                        | OFlags::NONBLOCK
                        | OFlags::NOCTTY
                        | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| err(format!("cannot open the root's copy of {}", Show(&path)), e))?;
                copy_file(from.as_fd(), &st, dst, nb, &path, out)?;
            }
            FileType::Symlink => {
                let target = fs::readlinkat(src, name, Vec::new())
                    .map_err(|e| err(format!("cannot read the symlink {}", Show(&path)), e))?;
                fs::symlinkat(target.as_c_str(), dst, name)
                    .map_err(|e| err(format!("cannot create the symlink {}", Show(&path)), e))?;
                chown_nofollow(dst, name, &st, "symlink", &path)?;
                fs::utimensat(dst, name, &times(&st), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                    err(
                        format!("cannot set the times of the symlink {}", Show(&path)),
                        e,
                    )
                })?;
                out.entries += 1;
            }
            FileType::Fifo => {
                fs::mknodat(dst, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|e| err(format!("cannot create the fifo {}", Show(&path)), e))?;
                chown_nofollow(dst, name, &st, "fifo", &path)?;
                fs::chmodat(
                    dst,
                    name,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                )
                .map_err(|e| err(format!("cannot chmod the fifo {}", Show(&path)), e))?;
                out.entries += 1;
            }
            FileType::Socket => out.skipped.push(format!("socket {}", Show(&path))),
            FileType::CharacterDevice | FileType::BlockDevice => {
                out.skipped.push(format!("device node {}", Show(&path)))
            }
            FileType::Unknown => out
                .skipped
                .push(format!("unknown file type {}", Show(&path))),
        }
    }
    Ok(())
}

/// Gives `name` in `dst` the owner of the root's copy, without following it (a symlink's own).
fn chown_nofollow(
    dst: BorrowedFd<'_>,
    name: &CStr,
    st: &Stat,
    what: &str,
    path: &[u8],
) -> Result<(), ApplyError> {
    fs::chownat(
        dst,
        name,
        Some(fs::Uid::from_raw(st.st_uid)),
        Some(fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| err(format!("cannot chown the {what} {}", Show(path)), e))
}

/// Removes `name` in `dir` and everything beneath it, if it exists; only ever called on a seed
/// temporary, whose name no one else uses.
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<(), ApplyError> {
    let st = match fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(err(format!("cannot stat {}", Show(shown)), e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = open_dir(dir, name, shown)?;
        let names: Vec<Vec<u8>> = fs::Dir::read_from(&sub)
            .map_err(|e| err(format!("cannot read {}", Show(shown)), e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n.as_slice() != b"." && n.as_slice() != b"..")
            .collect();
        for n in names {
            remove_tree(sub.as_fd(), &n, &join(shown, &n))?;
        }
        fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .map_err(|e| err(format!("cannot remove {}", Show(shown)), e))
    } else {
        fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| err(format!("cannot remove {}", Show(shown)), e))
    }
}
