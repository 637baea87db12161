//! Btrfs rollback, preflight and init (being written).

use super::Btrfs;
use crate::{BackendError, Preflight, RollbackOpts, RollbackOutcome};

pub(crate) fn preflight(_b: &Btrfs) -> Result<Preflight, BackendError> {
    Err(BackendError::Refused(
        "the btrfs backend's preflight is not written yet".into(),
    ))
}

pub(crate) fn rollback(_b: &Btrfs, _opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
    Err(BackendError::Refused(
        "the btrfs backend's rollback is not written yet".into(),
    ))
}

impl Btrfs {
    /// For a new install: makes the read-only blank from an empty root subvolume.
    pub fn init(&self, _dry_run: bool) -> Result<Vec<String>, BackendError> {
        Err(BackendError::Refused(
            "darlings init for btrfs is not written yet".into(),
        ))
    }
}
