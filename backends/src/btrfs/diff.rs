//! Btrfs diff from the send stream (being written).

use super::Btrfs;
use crate::{BackendError, DiffLimits, DiffOutput};

pub(crate) fn diff(_b: &Btrfs, _limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
    Err(BackendError::Refused(
        "the btrfs backend's diff is not written yet".into(),
    ))
}
