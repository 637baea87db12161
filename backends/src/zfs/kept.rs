//! Kept old roots on ZFS: `<dataset>-old/<time>` datasets listed with their `used` and
//! `referenced` properties, and mounted read-only at a private directory for `darlings restore`;
//! and `darlings hold`'s flag, a user property of the root dataset.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;

use rustix::fs::{self, Mode, OFlags};

use super::diff::TempMount;
use super::oldroots;
use super::Zfs;
use crate::error::IoContext;
use crate::{BackendError, HoldOp, HoldState, OldRoot, OpenTree};

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

/// The user property that holds `darlings hold`'s flag on the root dataset: it lives in the
/// pool, which outlives the boot, and the early stage reads it with the pool imported.
pub const HOLD_PROPERTY: &str = "darlings:hold";

fn zfs(args: &[&str]) -> Result<String, BackendError> {
    let out = Command::new("zfs")
        .args(args)
        .output()
        .ctx(|| "cannot run zfs; is zfsutils installed?".to_string())?;
    if !out.status.success() {
        return Err(BackendError::Refused(format!(
            "zfs {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `darlings hold` on zfs: the property set locally on the root dataset. A value inherited from
/// an ancestor was not set by darlings on this root: never honoured.
pub(crate) fn hold(z: &Zfs, op: HoldOp) -> Result<HoldState, BackendError> {
    super::program::valid_dataset(&z.dataset)?;
    let ds = z.dataset.as_str();
    let got = zfs(&[
        "get",
        "-H",
        "-p",
        "-o",
        "value,source",
        HOLD_PROPERTY,
        "--",
        ds,
    ])?;
    let (value, source) = got.trim_end().split_once('\t').unwrap_or(("-", "-"));
    let state = match source {
        "local" => HoldState::Held {
            at: value.to_string(),
        },
        "-" => HoldState::None,
        other => HoldState::Bad {
            why: format!(
                "{HOLD_PROPERTY} on {ds} comes from {other}, not from darlings hold on this dataset (not honoured)"
            ),
        },
    };
    let clear = || zfs(&["inherit", HOLD_PROPERTY, ds]).map(|_| ());
    match op {
        HoldOp::Read | HoldOp::Take { dry_run: true } => Ok(state),
        HoldOp::Take { dry_run: false } => {
            if let HoldState::Held { .. } = state {
                clear()?;
            }
            Ok(state)
        }
        HoldOp::Set { at, dry_run } => {
            if !dry_run {
                // `zfs set` takes no `--`; the name was checked (no leading `-`) above.
                zfs(&["set", &format!("{HOLD_PROPERTY}={at}"), ds])?;
            }
            Ok(HoldState::Held { at })
        }
        HoldOp::Cancel { dry_run } => {
            // Only a local value is this dataset's to remove; an inherited one is its ancestor's.
            if !dry_run && matches!(state, HoldState::Held { .. }) {
                clear()?;
            }
            Ok(state)
        }
    }
}
