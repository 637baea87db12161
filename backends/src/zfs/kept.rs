//! Kept old roots on ZFS: `<dataset>-old/<time>` datasets listed with their `used` and
//! `referenced` properties, and mounted read-only at a private directory for `darlings restore`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;

use rustix::fs::{self, Mode, OFlags};

use super::oldroots;
use super::rollback::TempMount;
use super::Zfs;
use crate::error::IoContext;
use crate::{BackendError, OldRoot, OpenTree};

/// The container's children named as retention names them, newest first.
pub(crate) fn list(z: &Zfs) -> Result<Vec<OldRoot>, BackendError> {
    super::program::valid_dataset(&z.dataset)?;
    let container = oldroots::container(&z.dataset);
    let out = Command::new("zfs")
        .args([
            "list",
            "-H",
            "-p",
            "-o",
            "name,used,referenced",
            "-t",
            "filesystem",
        ])
        .args(["-r", "-d", "1", "--", &container])
        .output()
        .ctx(|| "cannot run zfs list; is zfsutils installed?".to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("does not exist") {
            return Ok(Vec::new());
        }
        return Err(BackendError::Refused(format!(
            "zfs list {container} failed: {}",
            err.trim()
        )));
    }
    let prefix = format!("{container}/");
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, used, referenced] = f[..] else {
            return Err(BackendError::Malformed(format!(
                "zfs list printed {line:?}, not name, used, referenced"
            )));
        };
        let Some(leaf) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((secs, _)) = oldroots::parse(leaf) else {
            continue;
        };
        v.push(OldRoot {
            name: leaf.to_string(),
            secs,
            exclusive: used.parse().ok(),
            referenced: referenced.parse().ok(),
        });
    }
    v.sort_by(|a, b| b.secs.cmp(&a.secs).then_with(|| b.name.cmp(&a.name)));
    Ok(v)
}

pub(crate) struct Opened {
    dir: OwnedFd,
    /// Kept for its mount: dropped after `dir`, it unmounts.
    _mount: TempMount,
    shown: String,
}

impl OpenTree for Opened {
    fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
    fn shown(&self) -> String {
        self.shown.clone()
    }
}

pub(crate) fn open(z: &Zfs, name: &str) -> Result<Opened, BackendError> {
    let known = list(z)?;
    if !known.iter().any(|o| o.name == name) {
        let names: Vec<String> = known.iter().map(|o| o.name.clone()).collect();
        return Err(BackendError::Refused(format!(
            "no old root {name} in {}; kept old roots: {} (see darlings old-roots)",
            oldroots::container(&z.dataset),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    }
    let ds = format!("{}/{name}", oldroots::container(&z.dataset));
    let m = TempMount::new(&z.work_dir, &ds)?;
    let dir = fs::open(
        &m.dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("cannot open {}", m.dir.display()))?;
    Ok(Opened {
        dir,
        shown: format!("dataset {ds} (read-only at {})", m.dir.display()),
        _mount: m,
    })
}
