//! The ZFS diff: `zfs diff -H -F` of the blank against the root, mounted privately and
//! read-only when it is not mounted already, parsed as it streams (`diff_parse`).

use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::diff_parse::DiffParser;
use super::rollback::{mounted_at, refuse, Names};
use super::{lzc, Zfs};
use crate::error::IoContext;
use crate::{BackendError, DiffLimits, DiffOutput, Truncation};

/// A private read-only mount of the dataset under `work_dir`, unmounted and removed on drop.
pub(crate) struct TempMount {
    pub(crate) dir: PathBuf,
}

impl TempMount {
    pub(crate) fn new(work_dir: &Path, dataset: &str) -> Result<TempMount, BackendError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(work_dir)
            .ctx(|| format!("cannot create work directory {}", work_dir.display()))?;
        let dir = work_dir.join(format!("zfs-diff.{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .ctx(|| format!("cannot create {}; remove it if it is stale", dir.display()))?;
        let mounted = rustix::mount::mount(
            dataset,
            &dir,
            "zfs",
            rustix::mount::MountFlags::RDONLY
                | rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV,
            None,
        );
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(&dir);
            return Err(BackendError::io(
                format!(
                    "cannot mount dataset {dataset} read-only at {} for the diff",
                    dir.display()
                ),
                e.into(),
            ));
        }
        Ok(TempMount { dir })
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(&self.dir, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!("cannot unmount {}: {e}", self.dir.display());
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

pub(crate) fn diff(z: &Zfs, limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
    let n = Names::of(z)?;
    n.require_pool("to diff its root")?;
    n.require_dataset("check [root] dataset in the config")?;
    if !lzc::exists(&n.blank)? {
        return refuse(format!(
            "blank snapshot {} not found; create it with darlings init",
            n.blank
        ));
    }
    let mounts = crate::mountinfo::read()?;
    let (_guard, mountpoint) = match mounted_at(&mounts, &n.ds) {
        Some(mp) => (None, mp.to_vec()),
        None => {
            let m = TempMount::new(&z.work_dir, &n.ds)?;
            let mp = m.dir.as_os_str().as_bytes().to_vec();
            (Some(m), mp)
        }
    };
    run_zfs_diff(&n, &mountpoint, limits)
}

fn run_zfs_diff(
    n: &Names,
    mountpoint: &[u8],
    limits: &DiffLimits,
) -> Result<DiffOutput, BackendError> {
    let start = Instant::now();
    let mut child = Command::new("zfs")
        // `--`: names are validated (crate::names), but a name must never be able to read as an
        // option, whatever a later rule change lets through.
        .args(["diff", "-H", "-F", "--", &n.blank, &n.ds])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| "cannot run zfs diff; is the zfs command on PATH?".to_string())?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Lines come through a channel so a time budget holds even while zfs prints nothing.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4096);
    let reader = std::thread::spawn(move || {
        let Some(out) = stdout else { return };
        for line in BufReader::with_capacity(1 << 16, out).split(b'\n') {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_end(&mut e, &mut buf);
        }
        buf
    });
    let mut parser = DiffParser::new(mountpoint);
    let mut truncated = None;
    let mut failure = None;
    loop {
        if parser.len() >= limits.max_entries {
            truncated = Some(Truncation::MaxEntries(limits.max_entries));
            break;
        }
        let next = match limits.time_budget {
            Some(budget) => match budget.checked_sub(start.elapsed()) {
                Some(left) => match rx.recv_timeout(left) {
                    Ok(l) => Some(l),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        truncated = Some(Truncation::TimeBudget(budget));
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                },
                None => {
                    truncated = Some(Truncation::TimeBudget(budget));
                    break;
                }
            },
            None => rx.recv().ok(),
        };
        let Some(line) = next else { break };
        match line {
            Ok(l) => {
                if let Err(e) = parser.push_line(&l) {
                    failure = Some(e);
                    break;
                }
            }
            Err(e) => {
                failure = Some(BackendError::io("cannot read zfs diff's output", e));
                break;
            }
        }
    }
    let stopped_early = truncated.is_some() || failure.is_some();
    if stopped_early {
        let _ = child.kill();
    }
    drop(rx);
    let status = child
        .wait()
        .ctx(|| "cannot wait for zfs diff".to_string())?;
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    if stopped_early {
        // A killed zfs diff leaves its temporary snapshot behind, which would then block the
        // rollback as a "newer snapshot": remove it.
        let tmp = format!("{}@zfs-diff-{pid}", n.ds);
        if lzc::exists(&tmp).unwrap_or(false) {
            lzc::destroy_snaps(&[tmp])?;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if !stopped_early && !status.success() {
        return refuse(format!(
            "zfs diff {} {} failed ({status}): {}",
            n.blank,
            n.ds,
            String::from_utf8_lossy(&stderr).trim()
        ));
    }
    let (changes, unlisted) = super::diff_parse::past_path_max(parser.finish());
    Ok(DiffOutput {
        changes,
        truncated,
        unlisted,
    })
}
