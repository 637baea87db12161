//! What the top level keeps besides the root: the old roots a rollback retired (listed with their
//! sizes, opened read-only for `darlings restore`), and `darlings hold`'s flag file, which must
//! live there because the early stage reads it before anything else of the disk is mounted.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libbtrfsutil::FS_TREE_OBJECTID;
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::rollback::parse_ts;
use super::subvol::{check_name, Top};
use super::Btrfs;
use crate::bytes::Show;
use crate::error::IoContext;
use crate::{BackendError, HoldOp, HoldState, OldRoot, OpenTree};

/// The flag's name in the top level: beside the root, the blank and old-roots, on a filesystem
/// that outlives the boot (the work dir under /run does not).
pub const HOLD_FILE: &str = "darlings-hold";
const HOLD_TMP: &str = ".darlings-hold.tmp";

/// The old roots in `<old-roots>/`, newest first: subvolumes whose parent is the top level,
/// in the old-roots directory, named as retention names them (what `prune` would select).
pub fn list(b: &Btrfs) -> Result<Vec<OldRoot>, BackendError> {
    check_name("old-roots directory", &b.old_roots)?;
    let top = Top::mount(&b.device, &b.work_dir, true)?;
    let Some(dir_ino) = top.dir_ino(&b.old_roots)? else {
        top.close()?;
        return Ok(Vec::new());
    };
    let qgroups = qgroup_dir(&b.device);
    let mut prefix = b.old_roots.clone();
    prefix.push(b'/');
    let mut out = Vec::new();
    for s in top.all_subvols()? {
        let Some(name) = s.path.strip_prefix(prefix.as_slice()) else {
            continue;
        };
        if s.parent_id != FS_TREE_OBJECTID || s.dir_id != dir_ino || name.contains(&b'/') {
            continue;
        }
        let Some((secs, _)) = parse_ts(name) else {
            continue;
        };
        let q = |what: &str| {
            let d = qgroups.as_ref()?;
            let t = std::fs::read_to_string(d.join(format!("0_{}", s.id)).join(what)).ok()?;
            t.trim().parse().ok()
        };
        out.push(OldRoot {
            name: String::from_utf8_lossy(name).into_owned(),
            secs,
            exclusive: q("exclusive"),
            referenced: q("referenced"),
        });
    }
    top.close()?;
    out.sort_by(|a, b| b.secs.cmp(&a.secs).then_with(|| b.name.cmp(&a.name)));
    Ok(out)
}

/// `/sys/fs/btrfs/<fsid>/qgroups` of the filesystem on `device`, if quotas are on there (the
/// kernel lists a filesystem's devices by name under `devices/`).
fn qgroup_dir(device: &Path) -> Option<std::path::PathBuf> {
    let dev = std::fs::canonicalize(device).ok()?;
    let name = dev.file_name()?;
    for fsid in std::fs::read_dir("/sys/fs/btrfs").ok()?.flatten() {
        if fsid.path().join("devices").join(name).exists() {
            let q = fsid.path().join("qgroups");
            return q.is_dir().then_some(q);
        }
    }
    None
}

/// An old root opened read-only: the top level mounted read-only at a private directory of
/// the work dir, and the old root's directory. Dropping it unmounts.
pub struct OpenOldRoot {
    dir: OwnedFd,
    /// Kept for its mount: dropped after `dir`, it unmounts.
    _top: Top,
    shown: String,
}

impl OpenTree for OpenOldRoot {
    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    fn shown(&self) -> String {
        self.shown.clone()
    }
}

/// Opens the old root `name` (one of [`list`]'s names) read-only.
pub fn open(b: &Btrfs, name: &[u8]) -> Result<OpenOldRoot, BackendError> {
    let known = list(b)?;
    if !known.iter().any(|o| o.name.as_bytes() == name) {
        let names: Vec<String> = known.iter().map(|o| o.name.clone()).collect();
        return Err(BackendError::Refused(format!(
            "no old root {} in {} on {}; kept old roots: {} (see darlings old-roots)",
            Show(name),
            Show(&b.old_roots),
            b.device.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let top = Top::mount(&b.device, &b.work_dir, true)?;
    let mut rel = b.old_roots.clone();
    rel.push(b'/');
    rel.extend_from_slice(name);
    let dir = fs::openat2(
        top.fd()?,
        OsStr::from_bytes(&rel),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .ctx(|| {
        format!(
            "cannot open the old root {} on {}",
            Show(&rel),
            b.device.display()
        )
    })?;
    let shown = format!("{} on {}", Show(&rel), b.device.display());
    Ok(OpenOldRoot {
        dir,
        _top: top,
        shown,
    })
}

/// `darlings hold` on btrfs: the flag is a regular file in the top level holding the time it
/// was asked for. Anything else at its name is refused and never followed.
pub(crate) fn hold(b: &Btrfs, op: HoldOp) -> Result<HoldState, BackendError> {
    let read_only = match &op {
        HoldOp::Read => true,
        HoldOp::Take { dry_run } | HoldOp::Set { dry_run, .. } | HoldOp::Cancel { dry_run } => {
            *dry_run
        }
    };
    let top = Top::mount(&b.device, &b.work_dir, read_only)?;
    let r = hold_in(&top, b, op);
    top.close()?;
    r
}

fn hold_in(top: &Top, b: &Btrfs, op: HoldOp) -> Result<HoldState, BackendError> {
    let dev = b.device.display();
    let fd = top.fd()?;
    let state = read_flag(fd, &dev.to_string())?;
    match op {
        HoldOp::Read | HoldOp::Take { dry_run: true } => Ok(state),
        HoldOp::Take { dry_run: false } => {
            // Only a flag darlings wrote is consumed; anything else stays for a person to look at.
            if let HoldState::Held { .. } = state {
                fs::unlinkat(fd, HOLD_FILE, AtFlags::empty())
                    .ctx(|| format!("cannot remove the hold flag {HOLD_FILE} on {dev}"))?;
                fs::syncfs(fd).ctx(|| format!("cannot syncfs the top level of {dev}"))?;
            }
            Ok(state)
        }
        HoldOp::Set { at, dry_run } => {
            if let HoldState::Bad { why } = &state {
                return Err(BackendError::Refused(format!(
                    "{why}; remove it (darlings hold --cancel) and hold again"
                )));
            }
            if dry_run {
                return Ok(HoldState::Held { at });
            }
            let _ = fs::unlinkat(fd, HOLD_TMP, AtFlags::empty());
            let f = fs::openat(
                fd,
                HOLD_TMP,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .ctx(|| format!("cannot create {HOLD_TMP} in the top level of {dev}"))?;
            let line = format!("{at}\n");
            let mut done = 0;
            while done < line.len() {
                done += rustix::io::write(&f, &line.as_bytes()[done..])
                    .ctx(|| format!("cannot write {HOLD_TMP} on {dev}"))?;
            }
            fs::fsync(&f).ctx(|| format!("cannot sync {HOLD_TMP} on {dev}"))?;
            // Replaces only a flag (checked above): a second hold moves its time forward.
            fs::renameat(fd, HOLD_TMP, fd, HOLD_FILE)
                .ctx(|| format!("cannot rename {HOLD_TMP} to {HOLD_FILE} on {dev}"))?;
            fs::syncfs(fd).ctx(|| format!("cannot syncfs the top level of {dev}"))?;
            Ok(HoldState::Held { at })
        }
        HoldOp::Cancel { dry_run } => {
            let what = match fs::statat(fd, HOLD_FILE, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => return Ok(HoldState::None),
                Err(e) => {
                    return Err(BackendError::io(
                        format!("cannot stat {HOLD_FILE} in the top level of {dev}"),
                        e.into(),
                    ))
                }
                Ok(st) => FileType::from_raw_mode(st.st_mode),
            };
            if what == FileType::Directory {
                return Err(BackendError::Refused(format!(
                    "{HOLD_FILE} in the top level of {dev} is a directory, not darlings' flag; move it away yourself"
                )));
            }
            if !dry_run {
                // unlinkat removes a symlink itself, never what it points at.
                fs::unlinkat(fd, HOLD_FILE, AtFlags::empty())
                    .ctx(|| format!("cannot remove {HOLD_FILE} on {dev}"))?;
                fs::syncfs(fd).ctx(|| format!("cannot syncfs the top level of {dev}"))?;
            }
            Ok(state)
        }
    }
}

fn read_flag(fd: BorrowedFd<'_>, dev: &str) -> Result<HoldState, BackendError> {
    let f = match fs::openat(
        fd,
        HOLD_FILE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::NOENT) => return Ok(HoldState::None),
        Err(Errno::LOOP) => {
            return Ok(HoldState::Bad {
                why: format!("{HOLD_FILE} in the top level of {dev} is a symlink, not darlings' flag (not followed, not honoured)"),
            })
        }
        Err(e) => {
            return Ok(HoldState::Bad {
                why: format!("cannot open {HOLD_FILE} in the top level of {dev}: {e}"),
            })
        }
        Ok(f) => f,
    };
    let st = fs::fstat(&f).ctx(|| format!("cannot stat {HOLD_FILE} on {dev}"))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(HoldState::Bad {
            why: format!(
                "{HOLD_FILE} in the top level of {dev} is not a regular file, not darlings' flag (not honoured)"
            ),
        });
    }
    let mut buf = [0u8; 128];
    let n = match rustix::io::read(&f, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            return Ok(HoldState::Bad {
                why: format!("cannot read {HOLD_FILE} in the top level of {dev}: {e}"),
            })
        }
    };
    let text = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    Ok(HoldState::Held {
        at: if text.is_empty() {
            "an unknown time".into()
        } else {
            text
        },
    })
}
