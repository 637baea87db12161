//! ZFS preflight, rollback, init and diff: not in this version yet; every call refuses, so a
//! zfs config fails loudly instead of doing anything half-way.

use super::Zfs;
use crate::{BackendError, DiffLimits, DiffOutput, Preflight, RollbackOpts, RollbackOutcome};

fn not_yet(what: &str) -> BackendError {
    BackendError::Refused(format!(
        "the zfs backend's {what} is not in this version of darlings yet; use backend \"btrfs\" or \"tmpfs\""
    ))
}

pub(crate) fn preflight(_z: &Zfs) -> Result<Preflight, BackendError> {
    Err(not_yet("preflight"))
}

pub(crate) fn rollback(_z: &Zfs, _opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
    Err(not_yet("rollback"))
}

pub(crate) fn diff(_z: &Zfs, _limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
    Err(not_yet("diff"))
}

impl Zfs {
    /// For a new install: creates `@blank` from the empty dataset.
    pub fn init(&self, _dry_run: bool) -> Result<Vec<String>, BackendError> {
        Err(not_yet("init"))
    }
}
