//! The TOML config: read from the document whatever its layout (doc.rs, raw.rs), then validated
//! (validate.rs) into `Config`, a type that can only hold a config every later step may trust.
//! Every rejection names the file, line and column, the offending value, and the fix.

pub(crate) mod doc;
pub mod edit;
pub mod mode;
mod presets;
mod raw;
mod validate;

pub use validate::home_problem;

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use crate::glob::Glob;
use crate::owners::Who;
use crate::paths::{AbsPath, RelPath};

/// Where the config lives when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/darlings.toml";

/// Paths no entry may be, lie inside, or contain: persisting them would shadow the kernel's
/// filesystems, the Nix store or the whole root.
pub const DENIED: &[&str] = &["/proc", "/sys", "/dev", "/run", "/nix/store"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path} not found; write one (see the config reference in README.md) or pass --config FILE")]
    NotFound { path: String },
    #[error("cannot read config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is invalid ({} problem{}):\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("\n"))]
    Invalid { path: String, problems: Vec<String> },
}

// ---------------------------------------------------------------------------------------------
// Validated types

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

// ---------------------------------------------------------------------------------------------
// Problems and their locations

/// One problem found, with the byte span of the value it is about.
struct Problem {
    span: Option<Range<usize>>,
    msg: String,
}

/// Every problem a file has, collected so that one run lists them all.
#[derive(Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.list.push(Problem {
            span: Some(span),
            msg: msg.into(),
        });
    }

    fn nowhere(&mut self, msg: impl Into<String>) {
        self.list.push(Problem {
            span: None,
            msg: msg.into(),
        });
    }

    fn render(&self, text: &str, file: &str) -> Vec<String> {
        self.list
            .iter()
            .map(|p| match &p.span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("  {file}:{line}:{col}: {}", p.msg)
                }
                None => format!("  {file}: {}", p.msg),
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads and validates the config file at `path`.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound { path: shown })
        }
        Err(e) => {
            return Err(ConfigError::Read {
                path: shown,
                source: e,
            })
        }
    };
    parse(&text, &shown)
}

/// Parses and validates config text; `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let document = match doc::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let loc = match e.span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{file}:{line}:{col}")
                }
                None => file.to_string(),
            };
            return Err(ConfigError::Invalid {
                path: file.to_string(),
                problems: vec![format!(
                    "  {loc}: {}; see the config reference in README.md",
                    e.message
                )],
            });
        }
    };
    let mut problems = Problems::default();
    let mut raw = raw::read(&doc::top(&document), &mut problems);
    let expanded = presets::expand(&mut raw, &mut problems);
    let config = validate::validate(raw, &mut problems).map(|c| Config {
        notes: expanded.notes,
        presets: expanded.used,
        ..c
    });
    match config {
        Some(config) if problems.list.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            path: file.to_string(),
            problems: problems.render(text, file),
        }),
    }
}

/// A persisted path as the conflict check sees it.
#[derive(Clone)]
pub struct Target {
    pub path: AbsPath,
    pub kind: Kind,
    pub store: AbsPath,
}

/// Duplicates, nesting, and store/entry overlap over a set of absolute targets. Shared by config
/// validation and by the planner (which learns home directories from the root's passwd).
pub fn conflicts(targets: &[Target], stores: &[AbsPath]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut by_path: HashMap<&AbsPath, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if let Some(&j) = by_path.get(&t.path) {
            let other = &targets[j];
            out.push((
                i,
                format!(
                    "{} {} is listed twice (stores {} and {}); keep one",
                    t.kind.as_str(),
                    t.path,
                    other.store,
                    t.store
                ),
            ));
        } else {
            by_path.insert(&t.path, i);
        }
    }
    for (i, t) in targets.iter().enumerate() {
        for a in t.path.ancestors() {
            if let Some(&j) = by_path.get(&a) {
                let outer = &targets[j];
                if outer.kind == Kind::Dir {
                    out.push((
                        i,
                        format!(
                            "{} {} is inside persisted directory {} (store {}), which already persists it; remove the inner entry",
                            t.kind.as_str(), t.path, outer.path, outer.store
                        ),
                    ));
                }
            }
        }
        for s in stores {
            if t.path.starts_with(s) {
                out.push((i, format!("{} {} is inside store {}; the store is persistent already, remove the entry", t.kind.as_str(), t.path, s)));
            } else if s.is_inside(&t.path) {
                out.push((i, format!("{} {} contains store {}; binding over it would hide the store, persist the paths beside the store instead", t.kind.as_str(), t.path, s)));
            }
            // Nested stores (/persist and /persist/cache): an entry of the outer store must not
            // keep its copy inside the inner one, or the two stores would share a directory.
            let source = t.path.under(&t.store);
            let holds_own_store = t.store.starts_with(s);
            if *s != t.store
                && ((source.starts_with(s) && !holds_own_store) || s.is_inside(&source))
            {
                out.push((i, format!("{} {} of store {} would be kept at {}, which overlaps store {}; persist it from store {} instead, or move one store", t.kind.as_str(), t.path, t.store, source, s, s)));
            }
        }
    }
    out
}

/// `"10s"`, `"500ms"`, `"2m"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))?;
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod layouts;
#[cfg(test)]
mod tests;
