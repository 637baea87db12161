//! The validated config: types that can only hold what every later step may trust (made by
//! `validate`, read by the planner, apply, the report and the backends' constructors).

use std::time::Duration;

use crate::glob::Glob;
use crate::owners::Who;
use crate::paths::{AbsPath, RelPath};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub root: RootConfig,
    pub diff: DiffConfig,
    pub boot: BootConfig,
    pub report: ReportConfig,
    pub stores: Vec<Store>,
    /// What the presets left out, and why (`darlings plan` and `check` print them).
    pub notes: Vec<String>,
    /// The presets the config turns on, sorted.
    pub presets: Vec<String>,
}

/// `[report]`: where fleet tooling picks up each boot's outcome and lost-state summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// node_exporter's textfile collector file, beneath the root; `None`: not written.
    pub prometheus: Option<AbsPath>,
    /// Send the outcome and summary to journald when its socket exists.
    pub journald: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            prometheus: None,
            journald: true,
        }
    }
}

/// What `darlings boot` does when a phase fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Change nothing more, let the untouched root boot, leave a marker in the work dir.
    #[default]
    BootOldRoot,
    /// Stop the boot: the initrd hook drops to its emergency path.
    Halt,
}

impl std::fmt::Display for OnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::BootOldRoot => "boot-old-root",
            OnFailure::Halt => "halt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "boot-old-root" => Some(OnFailure::BootOldRoot),
            "halt" => Some(OnFailure::Halt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootConfig {
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootConfig {
    Tmpfs {
        size: Option<String>,
    },
    Btrfs {
        device: AbsPath,
        /// Names in the top-level subvolume (single components: the exchange needs them in the
        /// same directory).
        subvolume: String,
        blank: String,
        old_roots: String,
        keep: Option<Keep>,
    },
    Zfs {
        dataset: String,
        /// The snapshot name after the `@`.
        blank: String,
        destroy_newer_snapshots: bool,
        keep: Option<Keep>,
    },
    /// Tests only: the directory-based fake backend (`src/backends/fake.rs`).
    #[cfg(test)]
    Fake {
        root: AbsPath,
        blank: AbsPath,
        /// Its rollback fails (after its preflight passed), for the failure policy's tests.
        fail_rollback: bool,
    },
}

/// Old roots to keep: the backends' own type, so the config and the retention rule it feeds
/// cannot drift apart.
pub use darlings_backends::Keep;

impl RootConfig {
    pub fn backend_name(&self) -> &'static str {
        match self {
            RootConfig::Tmpfs { .. } => "tmpfs",
            RootConfig::Btrfs { .. } => "btrfs",
            RootConfig::Zfs { .. } => "zfs",
            #[cfg(test)]
            RootConfig::Fake { .. } => "fake",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffConfig {
    pub on_boot: bool,
    pub report_dir: Option<AbsPath>,
    pub ignore: Vec<Glob>,
    pub max_entries: usize,
    pub time_budget: Duration,
    /// Saved lost-state reports to keep (one per boot); older ones are removed.
    pub keep_reports: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub path: AbsPath,
    pub hide_mounts: bool,
    /// `x-gvfs-trash` on the binds: file managers may keep a trash can on them.
    pub allow_trash: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub entries: Vec<Entry>,
    pub users: Vec<UserHome>,
}

/// How a persisted file reaches the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Bind-mount the store's file over the target (`method = "auto"`, the default).
    #[default]
    Bind,
    /// A symlink in the root pointing into the store: for files that programs replace by
    /// rename, which a bind mount turns into EBUSY (impermanence#175, #197).
    Symlink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    File,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "file",
        }
    }
}

/// Owner and mode for directories darlings creates on the way to an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentSpec {
    pub user: Who,
    pub group: Who,
    pub mode: u32,
}

impl Default for ParentSpec {
    fn default() -> Self {
        ParentSpec {
            user: Who::Id(0),
            group: Who::Id(0),
            mode: 0o755,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: AbsPath,
    pub kind: Kind,
    pub user: Who,
    pub group: Who,
    pub mode: u32,
    pub parent: ParentSpec,
    /// `x-gvfs-hide` for this entry's bind: its own `hide-mount`, else the store's.
    pub hide: bool,
    /// `x-gvfs-trash` for this entry's bind: its own `allow-trash`, else the store's.
    pub trash: bool,
    pub method: Method,
    /// `seed-from-blank`: content the root (the blank) has there is copied into a store that
    /// lacks it, and once the store has it, it is bound over the blank's copy (README).
    pub seed_from_blank: bool,
    /// The preset and level that gave this entry; `None` for the config's own.
    pub origin: Option<crate::presets::Origin>,
}

/// `[persist.users.<name>]`: paths relative to that user's home, owned by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHome {
    pub name: String,
    /// From the config; when `None`, the home comes from the target root's passwd.
    pub home: Option<AbsPath>,
    /// The user's id and primary group id when the config declares them (the NixOS module does
    /// when the system fixes them); with `uid` and `home` known nothing is read from passwd.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub entries: Vec<UserEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub path: RelPath,
    pub kind: Kind,
    /// `None`: the user (or their primary group) owning the home.
    pub user: Option<Who>,
    pub group: Option<Who>,
    pub mode: u32,
    pub hide: bool,
    pub trash: bool,
    pub method: Method,
}
