//! The ZFS backend: atomic rollback to `@blank` with a channel program, old roots kept as
//! datasets, `init`, and a diff from `zfs diff -H -F` (parsed in `diff_parse`).

mod diff;
pub(crate) mod diff_parse;
mod kept;
mod lzc;
mod oldroots;
mod program;
pub(crate) mod rollback;

use std::path::PathBuf;
use std::time::SystemTime;

use crate::{
    Backend, BackendError, DiffLimits, DiffOutput, HoldOp, HoldState, Keep, MountSpec, OldRoot,
    OpenTree, Preflight, RollbackAt, RollbackOpts, RollbackOutcome,
};

/// A ZFS root: a dataset reset to its blank snapshot, in place or (keeping old roots) by a clone
/// of the blank taking its name. The binary builds one from `[root]`; tests fill the fields.
#[derive(Debug, Clone)]
pub struct Zfs {
    /// The root dataset, e.g. `rpool/local/root`.
    pub dataset: String,
    /// The blank snapshot's name (after the `@`), e.g. `blank`.
    pub blank: String,
    /// Destroy snapshots newer than the blank (atomically, with the rollback) instead of refusing.
    pub destroy_newer_snapshots: bool,
    /// `None`: the old root's state is discarded by the rollback; `Some`: kept as datasets.
    pub keep: Option<Keep>,
    /// "Now" for old-root names and age-based retention: a parameter so tests set the clock.
    pub now: SystemTime,
    /// Where the dataset is mounted read-only (privately, in a fresh directory) for a diff.
    pub work_dir: PathBuf,
    /// The stores' mount points as this mount namespace sees them: preflight refuses a dataset
    /// that is a store's dataset or an ancestor of it.
    pub stores: Vec<PathBuf>,
    /// Crash tests only (the `failpoints` feature): stop right after this protocol step, as a
    /// power cut would.
    #[cfg(feature = "failpoints")]
    pub failpoint: Option<crate::Failpoint>,
}

impl Zfs {
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

impl Backend for Zfs {
    fn name(&self) -> &'static str {
        "zfs"
    }

    fn init(&self, dry_run: bool) -> Result<Option<Vec<String>>, BackendError> {
        Zfs::init(self, dry_run).map(Some)
    }

    fn rollback_at(&self) -> RollbackAt {
        RollbackAt::BeforeRootMount
    }

    fn fresh_root_mount(&self) -> Option<MountSpec> {
        Some(MountSpec {
            source: PathBuf::from(&self.dataset),
            fstype: "zfs",
            data: Vec::new(),
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

    fn old_roots(&self) -> Result<Vec<OldRoot>, BackendError> {
        kept::list(self)
    }

    fn open_old_root(&self, name: &str) -> Result<Box<dyn OpenTree>, BackendError> {
        Ok(Box::new(kept::open(self, name)?))
    }

    fn hold(&self, op: HoldOp) -> Result<HoldState, BackendError> {
        kept::hold(self, op)
    }
}
