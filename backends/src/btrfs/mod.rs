//! The Btrfs backend: rollback by the exchange protocol on the top-level subvolume, old-root
//! retention, `init`, and a diff from the send stream (`NO_FILE_DATA`, parent = the blank).

pub(crate) mod ancestry;
mod compare;
pub(crate) mod diff;
mod inode;
pub(crate) mod kept;
pub(crate) mod resolve;
pub(crate) mod rollback;
mod send;
pub(crate) mod stream;
mod subvol;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::{
    Backend, BackendError, DiffLimits, DiffOutput, HoldOp, HoldState, MountSpec, OldRoot, OpenTree,
    Preflight, RollbackAt, RollbackOpts, RollbackOutcome,
};

pub use crate::Keep;

/// A btrfs root: a subvolume in the top level, rolled back to a read-only blank snapshot beside
/// it. The binary builds one from `[root]`; tests fill the fields directly.
#[derive(Debug, Clone)]
pub struct Btrfs {
    /// The block device holding the filesystem.
    pub device: PathBuf,
    /// The root subvolume's name in the top level (subvolid=5), e.g. `root`.
    pub subvolume: Vec<u8>,
    /// The read-only blank snapshot's name in the top level, e.g. `root-blank`.
    pub blank: Vec<u8>,
    /// Directory in the top level that holds old roots, e.g. `old-roots`.
    pub old_roots: Vec<u8>,
    /// `None`: old roots are deleted, not kept.
    pub keep: Option<Keep>,
    /// "Now" for old-root names and age-based retention: a parameter so tests set the clock.
    pub now: SystemTime,
    /// Where the top level is mounted (privately, in a fresh directory) while darlings works.
    pub work_dir: PathBuf,
    /// Crash tests only (the `failpoints` feature): stop right after this protocol step, as a
    /// power cut would.
    #[cfg(feature = "failpoints")]
    pub failpoint: Option<crate::Failpoint>,
}

impl Btrfs {
    /// The step to stop after; never one in a build without the `failpoints` feature.
    pub(crate) fn failpoint(&self) -> Option<crate::Failpoint> {
        #[cfg(feature = "failpoints")]
        {
            self.failpoint
        }
        #[cfg(not(feature = "failpoints"))]
        {
            None
        }
    }
}

impl Backend for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn init(&self, dry_run: bool) -> Result<Option<Vec<String>>, BackendError> {
        Btrfs::init(self, dry_run).map(Some)
    }

    fn rollback_at(&self) -> RollbackAt {
        RollbackAt::BeforeRootMount
    }

    fn fresh_root_mount(&self) -> Option<MountSpec> {
        let mut data = b"subvol=".to_vec();
        data.extend_from_slice(&self.subvolume);
        Some(MountSpec {
            source: self.device.clone(),
            fstype: "btrfs",
            data,
        })
    }

    fn preflight(&self) -> Result<Preflight, BackendError> {
        rollback::preflight(self)
    }

    fn diff(&self, limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
        diff::diff(self, limits)
    }

    fn rollback(&self, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
        rollback::rollback(self, opts)
    }

    fn hold(&self, op: HoldOp) -> Result<HoldState, BackendError> {
        kept::hold(self, op)
    }

    fn old_roots(&self) -> Result<Vec<OldRoot>, BackendError> {
        kept::list(self)
    }

    fn open_old_root(&self, name: &str) -> Result<Box<dyn OpenTree>, BackendError> {
        Ok(Box::new(kept::open(self, name.as_bytes())?))
    }
}
