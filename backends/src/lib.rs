//! The boundary between darlings and the filesystems it rolls back: the `Backend` trait, the
//! change list a diff produces, and the backends themselves (each behind a cargo feature).
//!
//! This crate never sees the planner, the config file or the CLI: the binary turns its config into
//! a backend value and talks to it only through the trait.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod beneath;
pub mod bytes;
#[cfg(any(feature = "btrfs", feature = "zfs"))]
pub(crate) mod clock;
pub mod error;
pub mod failpoint;
pub mod mountinfo;
pub mod names;
pub mod placement;
#[cfg(any(feature = "btrfs", feature = "zfs"))]
pub(crate) mod protocol;
#[cfg(feature = "btrfs")]
pub(crate) mod xattr;

#[cfg(feature = "tmpfs")]
pub mod tmpfs;

use std::time::Duration;

pub use error::BackendError;
pub use failpoint::Failpoint;

/// What kind of filesystem object a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix-domain socket's name.
    Socket,
    /// A block device node.
    BlockDevice,
    /// A character device node.
    CharDevice,
    /// None of these, or the backend cannot tell (zfs: a door, an event port, an xattr object).
    Unknown,
}

impl FileType {
    /// The stable name used in reports and `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Dir => "dir",
            FileType::Symlink => "symlink",
            FileType::Fifo => "fifo",
            FileType::Socket => "socket",
            FileType::BlockDevice => "block",
            FileType::CharDevice => "char",
            FileType::Unknown => "unknown",
        }
    }
}

/// How the outgoing root differs from the blank at one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Present in the root, absent from the blank.
    Added,
    /// Present in the blank, absent from the root.
    Removed,
    /// Content changed (and possibly metadata).
    Modified,
    /// Only metadata changed: mode, owner, xattrs (and file attributes where the backend sees
    /// them). Times are not metadata here and are never reported: every boot reads and writes
    /// the root, so access and change times move on thousands of entries and a directory's
    /// modification time moves whenever an entry in it does. Listed, they would bury the real
    /// changes; and a time is not state anyone loses, since the content it dates is reported
    /// when it changed.
    Metadata,
    /// Moved here from `from` (a path relative to the same root).
    Renamed {
        /// The path it had in the blank, absolute in the root like `Change::path`.
        from: Vec<u8>,
    },
}

impl ChangeKind {
    /// The stable name used in reports and `--json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::Metadata => "metadata",
            ChangeKind::Renamed { .. } => "renamed",
        }
    }
}

/// One entry of a diff. `path` is absolute as seen from inside the root (`/var/log/x`), in bytes:
/// Linux file names are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Where, from the root's top (`/` is the root directory itself).
    pub path: Vec<u8>,
    /// How it differs from the blank.
    pub kind: ChangeKind,
    /// What is there now; for `Removed`, what was there.
    pub file_type: FileType,
    /// Size in bytes where the backend knows it cheaply (regular files).
    pub size: Option<u64>,
}

/// Bounds on a diff so a huge root can never stall a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffLimits {
    /// Stop after this many changes (`[diff] max_entries`).
    pub max_entries: usize,
    /// Stop once the diff has run this long; `None`: no time limit.
    pub time_budget: Option<Duration>,
}

impl Default for DiffLimits {
    fn default() -> Self {
        DiffLimits {
            max_entries: usize::MAX,
            time_budget: None,
        }
    }
}

/// Why a diff stopped before seeing everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// The diff reached `DiffLimits::max_entries` (the limit it hit).
    MaxEntries(usize),
    /// The diff ran out of `DiffLimits::time_budget` (the budget it used up).
    TimeBudget(Duration),
}

/// A part of the root the diff could not list (a path past PATH_MAX, a directory it could not
/// read, a diff that failed altogether). Its content is on the root and goes at the rollback
/// like the rest; the report names the subtree instead of its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlisted {
    /// Absolute in the root, like `Change::path`: the top of what is not listed.
    pub path: Vec<u8>,
    /// Why, for people: "path too long", "cannot read the directory: Permission denied".
    pub reason: String,
}

/// Paths past this many bytes are not listed: the kernel refuses them in any system call that
/// takes a path (`btrfs send` fails "File name too long" on the first), and no tool the user
/// would turn to can open them either.
pub const PATH_MAX: usize = 4096;

/// A diff's result: the changes seen, whether the limits cut it short, and what it could not
/// list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOutput {
    /// The changes, at most `DiffLimits::max_entries` of them.
    pub changes: Vec<Change>,
    /// `Some` when a limit stopped the diff, and `changes` is then incomplete.
    pub truncated: Option<Truncation>,
    /// Subtrees left out of `changes` because they could not be listed.
    pub unlisted: Vec<Unlisted>,
}

/// What a read-only preflight found. `checks` are human-readable lines of what was verified,
/// printed by `darlings check` and logged by `darlings boot`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    /// One line per fact verified or found, e.g. that the blank snapshot is read-only.
    pub checks: Vec<String>,
}

/// Old roots to keep after a rollback (btrfs, zfs); both bounds apply when both are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// Keep at most this many old roots, the newest; `None`: no bound on the number.
    pub count: Option<u32>,
    /// Keep old roots retired at most this many days ago; `None`: no bound on age.
    pub days: Option<u32>,
}

/// Why retention removes an old root; its `Display` is the reason rollback logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pruned {
    /// Not among the `keep.count` newest.
    BeyondCount(u32),
    /// Retired more than `keep.days` days ago.
    OlderThan(u32),
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pruned::BeyondCount(n) => write!(f, "beyond keep.count = {n}"),
            Pruned::OlderThan(n) => write!(f, "older than keep.days = {n}"),
        }
    }
}

impl Keep {
    /// The retention rule, for every backend that keeps old roots: given each old root's
    /// retirement time and collision number (`secs`, `seq`, from its name), which to remove and
    /// why, newest first, as indices into `old`. An old root goes when it is not among the
    /// `count` newest (by time, then number), or when it is more than `days` days older than
    /// `now`; the count is named when both hold.
    pub fn select(&self, old: &[(i64, u32)], now: i64) -> Vec<(usize, Pruned)> {
        let mut order: Vec<usize> = (0..old.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(old[i]));
        order
            .into_iter()
            .enumerate()
            .filter_map(|(rank, i)| {
                let (secs, _) = old[i];
                if let Some(c) = self.count.filter(|&c| rank >= c as usize) {
                    return Some((i, Pruned::BeyondCount(c)));
                }
                self.days
                    .filter(|&d| now.saturating_sub(secs) > i64::from(d) * 86_400)
                    .map(|d| (i, Pruned::OlderThan(d)))
            })
            .collect()
    }
}

/// How to run a rollback: for real, or (`--dry-run` of `rollback` and `boot`) as a plan only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollbackOpts {
    /// Describe the steps, change nothing.
    pub dry_run: bool,
}

/// What a rollback did (or, with `dry_run`, would do), step by step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackOutcome {
    /// One line per protocol step, in order: done, or with `dry_run` to be done.
    pub steps: Vec<String>,
    /// True when the root was already blank and nothing had to change.
    pub already_blank: bool,
}

/// Lifts the soft limit on open files to the hard one, once: a walk keeps a directory open per
/// level, and a root may hold a chain of a few thousand directories within PATH_MAX. Best
/// effort; a walk that still runs out names the subtree as not listed.
#[cfg(any(feature = "tmpfs", feature = "btrfs"))]
pub(crate) fn raise_open_file_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let lim = getrlimit(Resource::Nofile);
        // "Unlimited" is not a value the kernel takes for this one (it stops at nr_open).
        let max = lim.maximum.unwrap_or(1 << 20);
        if lim.current.is_some_and(|c| c < max) {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max),
                    maximum: lim.maximum,
                },
            );
        }
    });
}

/// When a backend's rollback runs in the boot: the boot's early stage (before the initrd mounts
/// the root) or its late stage (after; the root is then where the rollback makes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackAt {
    /// btrfs, zfs: the root must not be mounted while it is rolled back.
    BeforeRootMount,
    /// tmpfs: the fresh root is made (mounted) by the rollback itself, at the root's place.
    AfterRootMount,
}

/// How `darlings boot --stage all` mounts the fresh root when nothing is mounted at `--root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// What to mount: the block device (btrfs) or the dataset's name (zfs).
    pub source: std::path::PathBuf,
    /// The filesystem type passed to mount(2), e.g. `btrfs`.
    pub fstype: &'static str,
    /// The filesystem's mount options (`subvol=root`); empty for none.
    pub data: Vec<u8>,
}

/// A root filesystem darlings can roll back, diff and check. The binary builds one value per
/// config and calls only these methods; a new backend implements the four required ones, and
/// the defaults say what a backend without old roots, holds or `init` answers.
pub trait Backend {
    /// The backend's config name (`tmpfs`, `btrfs`, `zfs`), for messages and reports.
    fn name(&self) -> &'static str;
    /// `darlings init` for a new install (the blank made from an empty root); `None` when the
    /// backend has nothing to initialise (tmpfs). With `dry_run`, the steps only.
    fn init(&self, dry_run: bool) -> Result<Option<Vec<String>>, BackendError> {
        let _ = dry_run;
        Ok(None)
    }
    /// Which boot stage runs the rollback.
    fn rollback_at(&self) -> RollbackAt {
        RollbackAt::BeforeRootMount
    }
    /// How the fresh root is mounted after an early rollback; `None` when the rollback mounts
    /// it itself (tmpfs) or the backend cannot say.
    fn fresh_root_mount(&self) -> Option<MountSpec> {
        None
    }
    /// Read-only checks. Must not change anything.
    fn preflight(&self) -> Result<Preflight, BackendError>;
    /// What the outgoing root has that the blank has not (and the reverse).
    fn diff(&self, limits: &DiffLimits) -> Result<DiffOutput, BackendError>;
    /// Make the root blank. Idempotent; runs `preflight` first and changes nothing if it fails.
    fn rollback(&self, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError>;
    /// The kept old roots, newest first.
    fn old_roots(&self) -> Result<Vec<OldRoot>, BackendError> {
        Err(BackendError::Refused(format!(
            "the {} backend keeps no old roots",
            self.name()
        )))
    }
    /// Mounts the old root `name` (one of `old_roots`) read-only at a private directory.
    fn open_old_root(&self, name: &str) -> Result<Box<dyn OpenTree>, BackendError> {
        let _ = name;
        Err(BackendError::Refused(format!(
            "the {} backend keeps no old roots",
            self.name()
        )))
    }
    /// `darlings hold`'s flag, which asks the next boot to skip its rollback once. Only a
    /// backend that rolls back before the root is mounted, on a filesystem that outlives the
    /// boot, can keep one. Answers what the flag's place held before `op`, except that `Set`
    /// answers the flag it wrote.
    fn hold(&self, op: HoldOp) -> Result<HoldState, BackendError> {
        let _ = op;
        Err(BackendError::Refused(format!(
            "the {} backend cannot hold a rollback; boot once with darlings.skip on the kernel command line instead",
            self.name()
        )))
    }
}

/// An old root a rollback kept (btrfs `old-roots/<time>`, zfs `<dataset>-old/<time>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRoot {
    /// Its name there (the last component).
    pub name: String,
    /// When it was retired, seconds since the epoch (UTC), from its name.
    pub secs: i64,
    /// Bytes only it holds (btrfs: the qgroup's exclusive; zfs: `used`), when known.
    pub exclusive: Option<u64>,
    /// Bytes it refers to, shared ones too (qgroup referenced; zfs `referenced`), when known.
    pub referenced: Option<u64>,
}

/// An old root opened read-only for reading (`darlings restore`); dropping it unmounts.
pub trait OpenTree {
    /// The old root's top directory: readers open what they need beneath it.
    fn dir(&self) -> std::os::fd::BorrowedFd<'_>;
    /// Where it is mounted, for messages.
    fn shown(&self) -> String;
}

/// What to do with the hold flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOp {
    /// Look only.
    Read,
    /// Read it and remove it (the boot that honours it): a hold holds exactly once.
    Take {
        /// Say what would be taken, remove nothing.
        dry_run: bool,
    },
    /// Write it, saying when it was asked for.
    Set {
        /// When `darlings hold` ran, UTC, as `2026-01-31T12:00:00Z`, for messages about the hold.
        at: String,
        /// Refuse what a real hold would refuse, write nothing.
        dry_run: bool,
    },
    /// Remove it if it is there.
    Cancel {
        /// Say what would be removed, remove nothing.
        dry_run: bool,
    },
}

/// What the hold flag's place holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldState {
    /// Nothing there: the next boot rolls back.
    None,
    /// A flag written by `darlings hold` at this time.
    Held {
        /// The `at` of the `HoldOp::Set` that wrote it.
        at: String,
    },
    /// Something that is not a flag darlings wrote (a symlink, a directory, unreadable): never
    /// honoured, never followed.
    Bad {
        /// What is there instead, for the message that asks a person to remove it.
        why: String,
    },
}

#[cfg(feature = "btrfs")]
pub mod btrfs;

#[cfg(feature = "zfs")]
pub mod zfs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_selects_by_count_then_age_newest_first() {
        let day = 86_400;
        let now = 100 * day;
        // Unsorted on purpose; two roots retired in the same second differ by number.
        let old = [
            (90 * day, 0),
            (99 * day, 0),
            (50 * day, 0),
            (99 * day, 1),
            (98 * day, 0),
        ];
        let keep = |count, days| Keep { count, days };
        type Case = (Keep, Vec<(usize, Pruned)>);
        let cases: Vec<Case> = vec![
            (keep(None, None), vec![]),
            (
                keep(Some(2), None),
                vec![
                    (4, Pruned::BeyondCount(2)),
                    (0, Pruned::BeyondCount(2)),
                    (2, Pruned::BeyondCount(2)),
                ],
            ),
            (
                keep(None, Some(5)),
                vec![(0, Pruned::OlderThan(5)), (2, Pruned::OlderThan(5))],
            ),
            (keep(Some(4), Some(30)), vec![(2, Pruned::BeyondCount(4))]),
            (keep(Some(10), Some(30)), vec![(2, Pruned::OlderThan(30))]),
            // Exactly `days` old is kept: only older goes.
            (keep(None, Some(10)), vec![(2, Pruned::OlderThan(10))]),
            (
                keep(Some(1), None),
                vec![
                    (1, Pruned::BeyondCount(1)),
                    (4, Pruned::BeyondCount(1)),
                    (0, Pruned::BeyondCount(1)),
                    (2, Pruned::BeyondCount(1)),
                ],
            ),
        ];
        for (k, want) in cases {
            assert_eq!(k.select(&old, now), want, "{k:?}");
        }
        assert_eq!(Pruned::BeyondCount(3).to_string(), "beyond keep.count = 3");
        assert_eq!(Pruned::OlderThan(7).to_string(), "older than keep.days = 7");
        // A clock set before the old roots' times prunes nothing by age.
        assert!(keep(None, Some(1)).select(&old, 0).is_empty());
    }
}
