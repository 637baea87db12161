//! `darlings hold`: asks the next boot, once, to skip its rollback (and its diff), so that a
//! machine can be rebooted without losing what its root holds now. The flag lives where the
//! backend keeps its own state on the disk (btrfs: a file in the top level; zfs: a user property
//! of the root dataset); the early stage consumes it.

use darlings_backends::{Backend, BackendError, HoldOp, HoldState};

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("cannot hold the next boot's rollback")]
    Backend(#[source] BackendError),
}

/// Sets (or with `cancel`, removes) the hold; one line saying what was (or would be) done.
pub fn hold(b: &dyn Backend, cancel: bool, dry_run: bool) -> Result<String, HoldError> {
    let would = if dry_run { "would: " } else { "" };
    if cancel {
        let was = b
            .hold(HoldOp::Cancel { dry_run })
            .map_err(HoldError::Backend)?;
        return Ok(match was {
            HoldState::None => "no hold to cancel: the next boot rolls back as usual".into(),
            HoldState::Held { at } => {
                format!("{would}cancel the hold asked at {at}: the next boot rolls back as usual")
            }
            HoldState::Bad { why } => format!("{would}remove what was there ({why})"),
        });
    }
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let state = b
        .hold(HoldOp::Set { at, dry_run })
        .map_err(HoldError::Backend)?;
    Ok(match state {
        HoldState::Held { at } => format!(
            "{would}hold the next boot's rollback (asked at {at}): that boot keeps the root as it is, once; `darlings hold --cancel` undoes this, darlings.skip=0 on the kernel command line overrides it"
        ),
        other => format!("{would}hold: {other:?}"),
    })
}
