//! The names of every step a crash test may stop at (`DARLINGS_FAILPOINT=<step>`): the btrfs
//! and ZFS protocol steps as their actions log them, the btrfs diff, the boot's own panic and
//! adopt's mid-copy stop. The protocol actions are named by these values whether or not the
//! `failpoints` feature is on; only with it does a backend carry one to stop at.

use std::fmt;
use std::str::FromStr;

/// One step's name; a misspelt one does not parse, so a scenario cannot silently never fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failpoint {
    // btrfs rollback
    /// btrfs: the old-roots directory is created (the first rollback that keeps one).
    MakeOldRoots,
    /// btrfs: a `<root>.new` left by an interrupted rollback is deleted or retired.
    RemoveStray,
    /// btrfs: the blank is snapshotted to `<root>.new`.
    Snapshot,
    /// btrfs: `rename_exchange` swaps the fresh snapshot and the root, the commit point.
    Exchange,
    /// btrfs: the old root, now at `<root>.new`, is moved into old-roots or deleted.
    RetireOld,
    /// btrfs: syncfs of the top level, after which the rollback is durable.
    Sync,
    /// btrfs, zfs: retention removes old roots beyond `keep` (the one non-fatal step).
    Prune,
    /// A nested subvolume's deletion before its old root's.
    DeleteNested,
    // btrfs diff
    /// btrfs: the diff fails outright after its snapshot, for the boot that must still roll back.
    Diff,
    // zfs rollback
    /// zfs: the one channel program that rolls the root back to the blank.
    Rollback,
    /// zfs: the snapshots newer than the blank are destroyed (`destroy_newer_snapshots`).
    DestroyNewer,
    /// zfs: the container of old roots is created (the first rollback that keeps one).
    CreateContainer,
    /// zfs: the blank is cloned to the fresh root's temporary name.
    Clone,
    /// zfs: the old root is renamed into the container.
    RenameOld,
    /// zfs: the clone is renamed to the root's name.
    RenameNew,
    /// zfs: the clone is promoted, taking the blank over from the old root.
    Promote,
    /// zfs: a clone left by an interrupted rollback is destroyed.
    UndoClone,
    // darlings boot
    /// darlings boot panics in its early stage, for the tests that a crash still gets the
    /// failure policy.
    BootPanic,
    /// darlings adopt stops itself mid-copy, for the interrupted-adopt test.
    AdoptStop,
}

impl Failpoint {
    /// Every one, in the order the refusal of an unknown name lists them.
    pub const ALL: &'static [Failpoint] = &[
        Failpoint::MakeOldRoots,
        Failpoint::RemoveStray,
        Failpoint::Snapshot,
        Failpoint::Exchange,
        Failpoint::RetireOld,
        Failpoint::Sync,
        Failpoint::Prune,
        Failpoint::DeleteNested,
        Failpoint::Diff,
        Failpoint::Rollback,
        Failpoint::DestroyNewer,
        Failpoint::CreateContainer,
        Failpoint::Clone,
        Failpoint::RenameOld,
        Failpoint::RenameNew,
        Failpoint::Promote,
        Failpoint::UndoClone,
        Failpoint::BootPanic,
        Failpoint::AdoptStop,
    ];

    /// The name a protocol logs and `DARLINGS_FAILPOINT` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Failpoint::MakeOldRoots => "make-old-roots",
            Failpoint::RemoveStray => "remove-stray",
            Failpoint::Snapshot => "snapshot",
            Failpoint::Exchange => "exchange",
            Failpoint::RetireOld => "retire-old",
            Failpoint::Sync => "sync",
            Failpoint::Prune => "prune",
            Failpoint::DeleteNested => "delete-nested",
            Failpoint::Diff => "diff",
            Failpoint::Rollback => "rollback",
            Failpoint::DestroyNewer => "destroy-newer",
            Failpoint::CreateContainer => "create-container",
            Failpoint::Clone => "clone",
            Failpoint::RenameOld => "rename-old",
            Failpoint::RenameNew => "rename-new",
            Failpoint::Promote => "promote",
            Failpoint::UndoClone => "undo-clone",
            Failpoint::BootPanic => "boot-panic",
            Failpoint::AdoptStop => "adopt-stop",
        }
    }

    /// "make-old-roots, remove-stray, ...": for the refusal of a name that is not one.
    pub fn list() -> String {
        let names: Vec<&str> = Failpoint::ALL.iter().map(|f| f.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no failpoint; its message lists the ones there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failpoint {0:?}; the steps are {list}", list = Failpoint::list())]
pub struct UnknownFailpoint(pub String);

impl FromStr for Failpoint {
    type Err = UnknownFailpoint;
    fn from_str(s: &str) -> Result<Failpoint, UnknownFailpoint> {
        Failpoint::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFailpoint(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for f in Failpoint::ALL {
            assert_eq!(f.as_str().parse::<Failpoint>(), Ok(*f));
            assert!(seen.insert(f.as_str()), "{f} twice");
        }
        assert_eq!(
            "exchnage".parse::<Failpoint>().unwrap_err().to_string(),
            format!(
                "unknown failpoint \"exchnage\"; the steps are {}",
                Failpoint::list()
            )
        );
        assert!(Failpoint::list().starts_with("make-old-roots, remove-stray, snapshot, exchange,"));
    }
}
