//! The TOML config: parsed into raw, span-carrying types, then validated into `Config`, a type
//! that can only hold a config every later step may trust. Every rejection names the file, line
//! and column, the offending value, and the fix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::glob::Glob;
use crate::owners::{valid_name, Who};
use crate::paths::{AbsPath, RelPath};

/// Where the config lives when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/darlings.toml";

/// Paths no entry may be, lie inside, or contain: persisting them would shadow the kernel's
/// filesystems, the Nix store or the whole root.
const DENIED: &[&str] = &["/proc", "/sys", "/dev", "/run", "/nix/store"];

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
    pub stores: Vec<Store>,
}

/// What `darlings boot` does when a phase fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Change nothing more, let the untouched root boot, leave a marker in the work dir.
    #[default]
    BootOldRoot,
    /// Stop the boot: the initrd hook drops to its emergency path.
    Halt,
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
}

/// Old roots to keep; both bounds apply when both are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub count: Option<u32>,
    pub days: Option<u32>,
}

impl RootConfig {
    pub fn backend_name(&self) -> &'static str {
        match self {
            RootConfig::Tmpfs { .. } => "tmpfs",
            RootConfig::Btrfs { .. } => "btrfs",
            RootConfig::Zfs { .. } => "zfs",
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
    pub nosuid: bool,
    pub nodev: bool,
    pub entries: Vec<Entry>,
    pub users: Vec<UserHome>,
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
}

/// `[persist.users.<name>]`: paths relative to that user's home, owned by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserHome {
    pub name: String,
    /// From the config; when `None`, the home comes from the target root's passwd.
    pub home: Option<AbsPath>,
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
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) types

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    root: Option<Spanned<RawRoot>>,
    diff: Option<RawDiff>,
    boot: Option<RawBoot>,
    #[serde(default)]
    persist: Vec<Spanned<RawPersist>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBoot {
    on_failure: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRoot {
    backend: Spanned<String>,
    size: Option<Spanned<String>>,
    device: Option<Spanned<String>>,
    subvolume: Option<Spanned<String>>,
    blank: Option<Spanned<String>>,
    keep: Option<Spanned<RawKeep>>,
    old_roots: Option<Spanned<String>>,
    dataset: Option<Spanned<String>>,
    destroy_newer_snapshots: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKeep {
    count: Option<i64>,
    days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDiff {
    on_boot: Option<bool>,
    report_dir: Option<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    max_entries: Option<Spanned<i64>>,
    time_budget: Option<Spanned<String>>,
    keep_reports: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPersist {
    store: Spanned<String>,
    hide_mounts: Option<bool>,
    nosuid: Option<bool>,
    nodev: Option<bool>,
    #[serde(default)]
    directories: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    files: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    users: BTreeMap<String, Spanned<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawUser {
    home: Option<Spanned<String>>,
    #[serde(default)]
    directories: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    files: Vec<Spanned<RawEntry>>,
}

#[derive(Default)]
struct RawEntry {
    path: String,
    user: Option<Spanned<toml::Value>>,
    group: Option<Spanned<toml::Value>>,
    mode: Option<Spanned<toml::Value>>,
    parent: Option<RawParent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntryTable {
    path: String,
    user: Option<Spanned<toml::Value>>,
    group: Option<Spanned<toml::Value>>,
    mode: Option<Spanned<toml::Value>>,
    parent: Option<RawParent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawParent {
    user: Option<Spanned<toml::Value>>,
    group: Option<Spanned<toml::Value>>,
    mode: Option<Spanned<toml::Value>>,
}

/// An entry is either a bare path string or a table; serde's untagged enums would lose the
/// table's precise error (an unknown key) behind "did not match any variant".
impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a path string, or a table like { path = \"/var/lib/x\", user = \"x\", mode = \"0750\" }")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawEntry, E> {
                Ok(RawEntry {
                    path: s.to_string(),
                    ..RawEntry::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEntry, A::Error> {
                let t = RawEntryTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawEntry {
                    path: t.path,
                    user: t.user,
                    group: t.group,
                    mode: t.mode,
                    parent: t.parent,
                })
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Validation

/// One problem found, with the byte span of the value it is about.
struct Problem {
    span: Option<Range<usize>>,
    msg: String,
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.problems.push(Problem {
            span: Some(span),
            msg: msg.into(),
        });
    }

    fn nowhere(&mut self, msg: impl Into<String>) {
        self.problems.push(Problem {
            span: None,
            msg: msg.into(),
        });
    }

    fn abs(&mut self, what: &str, s: &Spanned<String>) -> Option<AbsPath> {
        match AbsPath::parse(s.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.at(s.span(), format!("{what} {:?} {e}", s.get_ref()));
                None
            }
        }
    }

    fn mode(&mut self, what: &str, v: &Spanned<toml::Value>) -> Option<u32> {
        let fix = "write it as an octal string such as \"0750\"";
        match v.get_ref() {
            toml::Value::String(s) => {
                let digits = s.strip_prefix("0o").unwrap_or(s);
                match u32::from_str_radix(digits, 8) {
                    Ok(m) if !digits.is_empty() && m <= 0o7777 => Some(m),
                    _ => {
                        self.at(v.span(), format!("{what} {s:?} is not a file mode; {fix}"));
                        None
                    }
                }
            }
            toml::Value::Integer(i) => {
                self.at(
                    v.span(),
                    format!("{what} {i} is a number, which TOML reads as decimal; {fix}"),
                );
                None
            }
            other => {
                self.at(
                    v.span(),
                    format!("{what} must be a string, not a {}; {fix}", other.type_str()),
                );
                None
            }
        }
    }

    fn who(&mut self, what: &str, v: &Spanned<toml::Value>) -> Option<Who> {
        match v.get_ref() {
            toml::Value::String(s) if valid_name(s) => Some(Who::Name(s.clone())),
            toml::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                match s.parse::<u32>() {
                    Ok(id) => Some(Who::Id(id)),
                    Err(_) => {
                        self.at(
                            v.span(),
                            format!("{what} {s:?} is out of range; ids are 0 to 4294967294"),
                        );
                        None
                    }
                }
            }
            toml::Value::Integer(i) => match u32::try_from(*i) {
                Ok(id) if id != u32::MAX => Some(Who::Id(id)),
                _ => {
                    self.at(
                        v.span(),
                        format!("{what} {i} is out of range; ids are 0 to 4294967294"),
                    );
                    None
                }
            },
            toml::Value::String(s) => {
                self.at(
                    v.span(),
                    format!("{what} {s:?} is not a valid user or group name; use letters, digits, '_', '-' or '.', or a numeric id"),
                );
                None
            }
            other => {
                self.at(
                    v.span(),
                    format!(
                        "{what} must be a name or a number, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn parent(&mut self, p: &Option<RawParent>, default: &ParentSpec) -> ParentSpec {
        let mut out = default.clone();
        if let Some(p) = p {
            if let Some(u) = p.user.as_ref().and_then(|u| self.who("parent user", u)) {
                out.user = u;
            }
            if let Some(g) = p.group.as_ref().and_then(|g| self.who("parent group", g)) {
                out.group = g;
            }
            if let Some(m) = p.mode.as_ref().and_then(|m| self.mode("parent mode", m)) {
                out.mode = m;
            }
        }
        out
    }

    fn render(&self, file: &str) -> Vec<String> {
        self.problems
            .iter()
            .map(|p| match &p.span {
                Some(span) => {
                    let (line, col) = line_col(self.text, span.start);
                    format!("  {file}:{line}:{col}: {}", p.msg)
                }
                None => format!("  {file}: {}", p.msg),
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
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
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let loc = match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{file}:{line}:{col}")
                }
                None => file.to_string(),
            };
            let msg = e.message().trim_end().to_string();
            return Err(ConfigError::Invalid {
                path: file.to_string(),
                problems: vec![format!(
                    "  {loc}: {msg}; see the config reference in README.md"
                )],
            });
        }
    };
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    let config = validate(raw, &mut c);
    if c.problems.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    Err(ConfigError::Invalid {
        path: file.to_string(),
        problems: c.render(file),
    })
}

fn validate(raw: RawConfig, c: &mut Checker) -> Option<Config> {
    let root = match &raw.root {
        None => {
            c.nowhere("no [root] table; add one, e.g. [root] backend = \"tmpfs\"");
            None
        }
        Some(r) => validate_root(r.get_ref(), c),
    };

    let mut stores = Vec::new();
    let mut store_spans: Vec<(AbsPath, Range<usize>)> = Vec::new();
    let mut targets = Vec::new();
    for p in &raw.persist {
        if let Some(s) = validate_store(p.get_ref(), c, &mut targets) {
            if let Some((_, _)) = store_spans.iter().find(|(q, _)| *q == s.path) {
                c.at(
                    p.get_ref().store.span(),
                    format!(
                        "store {} is listed twice; merge the two [[persist]] tables",
                        s.path
                    ),
                );
            }
            store_spans.push((s.path.clone(), p.get_ref().store.span()));
            stores.push(s);
        }
    }
    check_conflicts(&stores, &targets, c);

    let diff = validate_diff(raw.diff.as_ref(), &stores, c);
    let mut boot = BootConfig::default();
    if let Some(f) = raw.boot.as_ref().and_then(|b| b.on_failure.as_ref()) {
        match OnFailure::parse(f.get_ref()) {
            Some(p) => boot.on_failure = p,
            None => c.at(
                f.span(),
                format!(
                    "on-failure {:?} is not a policy; write \"boot-old-root\" (boot the untouched root) or \"halt\" (stop the boot)",
                    f.get_ref()
                ),
            ),
        }
    }
    Some(Config {
        root: root?,
        diff,
        boot,
        stores,
    })
}

/// A `[root]` key, where it was written, and the backends it belongs to.
type ForeignKey<'a> = (&'a str, Option<Range<usize>>, &'a [&'a str]);

fn validate_root(r: &RawRoot, c: &mut Checker) -> Option<RootConfig> {
    let backend = r.backend.get_ref().as_str();
    // Keys that belong to another backend are mistakes worth naming, not silently ignored.
    let foreign: &[ForeignKey] = &[
        ("size", r.size.as_ref().map(|v| v.span()), &["tmpfs"]),
        ("device", r.device.as_ref().map(|v| v.span()), &["btrfs"]),
        (
            "subvolume",
            r.subvolume.as_ref().map(|v| v.span()),
            &["btrfs"],
        ),
        (
            "old-roots",
            r.old_roots.as_ref().map(|v| v.span()),
            &["btrfs"],
        ),
        (
            "blank",
            r.blank.as_ref().map(|v| v.span()),
            &["btrfs", "zfs"],
        ),
        ("keep", r.keep.as_ref().map(|v| v.span()), &["btrfs", "zfs"]),
        ("dataset", r.dataset.as_ref().map(|v| v.span()), &["zfs"]),
        (
            "destroy-newer-snapshots",
            r.destroy_newer_snapshots.as_ref().map(|v| v.span()),
            &["zfs"],
        ),
    ];
    if matches!(backend, "tmpfs" | "btrfs" | "zfs") {
        for (key, span, owners) in foreign {
            if let Some(span) = span {
                if !owners.contains(&backend) {
                    let names: Vec<String> = owners.iter().map(|o| format!("\"{o}\"")).collect();
                    c.at(
                        span.clone(),
                        format!(
                            "root.{key} applies only to backend {}, not \"{backend}\"; remove it",
                            names.join(" or ")
                        ),
                    );
                }
            }
        }
    }
    match backend {
        "tmpfs" => {
            let size = match &r.size {
                None => None,
                Some(s) if valid_size(s.get_ref()) => Some(s.get_ref().clone()),
                Some(s) => {
                    c.at(s.span(), format!("root size {:?} is not a tmpfs size; write a number with an optional k, m, g or % suffix, e.g. \"2G\" or \"25%\"", s.get_ref()));
                    None
                }
            };
            Some(RootConfig::Tmpfs { size })
        }
        "btrfs" => {
            let device = match &r.device {
                Some(d) => c.abs("root.device", d),
                None => {
                    c.at(r.backend.span(), "backend \"btrfs\" needs root.device, the block device of the filesystem, e.g. device = \"/dev/disk/by-label/nixos\"");
                    None
                }
            };
            let mut name = |key: &str,
                            v: &Option<Spanned<String>>,
                            default: &str|
             -> Option<String> {
                let Some(v) = v else {
                    return Some(default.to_string());
                };
                let n = v.get_ref();
                if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\0', '\n']) {
                    c.at(v.span(), format!("root.{key} {n:?} must be one name in the top-level subvolume (no \"/\"), e.g. \"{default}\""));
                    return None;
                }
                Some(n.clone())
            };
            let subvolume = name("subvolume", &r.subvolume, "root");
            let blank = name("blank", &r.blank, "root-blank");
            let old_roots = name("old-roots", &r.old_roots, "old-roots");
            if let (Some(s), Some(b)) = (&subvolume, &blank) {
                if s == b {
                    let span = r.blank.as_ref().map_or(r.backend.span(), |b| b.span());
                    c.at(span, format!("root.blank {b:?} is the root subvolume itself; name the read-only blank snapshot, e.g. \"{s}-blank\""));
                }
            }
            if let (Some(s), Some(o)) = (&subvolume, &old_roots) {
                if s == o || blank.as_deref() == Some(o.as_str()) {
                    c.at(r.old_roots.as_ref().map_or(r.backend.span(), |v| v.span()), format!("root.old-roots {o:?} collides with the root or blank name; pick another, e.g. \"old-roots\""));
                }
            }
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Btrfs {
                device: device?,
                subvolume: subvolume?,
                blank: blank?,
                old_roots: old_roots?,
                keep,
            })
        }
        "zfs" => {
            let dataset = match &r.dataset {
                Some(d) if valid_dataset(d.get_ref()) => Some(d.get_ref().clone()),
                Some(d) => {
                    c.at(d.span(), format!("root.dataset {:?} is not a ZFS dataset name; write pool/path, e.g. \"rpool/local/root\"", d.get_ref()));
                    None
                }
                None => {
                    c.at(r.backend.span(), "backend \"zfs\" needs root.dataset, the root's dataset, e.g. dataset = \"rpool/local/root\"");
                    None
                }
            };
            let blank = match &r.blank {
                None => Some("blank".to_string()),
                Some(b) if valid_zfs_component(b.get_ref()) => Some(b.get_ref().clone()),
                Some(b) => {
                    c.at(b.span(), format!("root.blank {:?} is not a snapshot name; write the part after the @, e.g. \"blank\"", b.get_ref()));
                    None
                }
            };
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Zfs {
                dataset: dataset?,
                blank: blank?,
                destroy_newer_snapshots: r
                    .destroy_newer_snapshots
                    .as_ref()
                    .is_some_and(|v| *v.get_ref()),
                keep,
            })
        }
        other => {
            c.at(
                r.backend.span(),
                format!("unknown backend {other:?}; use one of \"tmpfs\", \"btrfs\", \"zfs\""),
            );
            None
        }
    }
}

fn validate_keep(k: &Option<Spanned<RawKeep>>, c: &mut Checker) -> Option<Keep> {
    let k = k.as_ref()?;
    let raw = k.get_ref();
    let mut bound = |what: &str, v: Option<i64>| match v {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => u32::try_from(n).ok(),
        Some(n) => {
            c.at(
                k.span(),
                format!("root.keep.{what} {n} must be a positive number"),
            );
            None
        }
    };
    let (count, days) = (bound("count", raw.count), bound("days", raw.days));
    if raw.count.is_none() && raw.days.is_none() {
        c.at(k.span(), "root.keep is empty; give count = N and/or days = D, or remove keep to discard old roots");
    }
    Some(Keep { count, days })
}

/// One component of a ZFS name, as zfs(8) accepts it.
fn valid_zfs_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// `pool/a/b`: the root dataset can never be the pool itself, whose rollback would take the
/// store with it.
fn valid_dataset(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() >= 2 && parts.iter().all(|p| valid_zfs_component(p))
}

fn valid_size(s: &str) -> bool {
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T', '%']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn validate_store(
    p: &RawPersist,
    c: &mut Checker,
    targets: &mut Vec<(Target, Range<usize>)>,
) -> Option<Store> {
    let path = c.abs("store", &p.store);
    if let Some(path) = &path {
        if path.is_root() {
            c.at(p.store.span(), "store \"/\" is the root itself, which is erased at every boot; use the mount point of persistent storage, e.g. \"/persist\"");
        } else if let Some(d) = denied_overlap(path) {
            c.at(p.store.span(), format!("store {path} {d}; use the mount point of persistent storage, e.g. \"/persist\""));
        }
    }
    let mut entries = Vec::new();
    for (list, kind) in [(&p.directories, Kind::Dir), (&p.files, Kind::File)] {
        for e in list {
            if let Some(entry) = validate_entry(e, kind, c) {
                if let Ok(store) = AbsPath::parse(p.store.get_ref()) {
                    targets.push((
                        Target {
                            path: entry.path.clone(),
                            kind,
                            store,
                        },
                        e.span(),
                    ));
                }
                entries.push(entry);
            }
        }
    }
    let mut users = Vec::new();
    for (name, u) in &p.users {
        if !valid_name(name) {
            c.at(u.span(), format!("persist.users key {name:?} is not a valid user name; use the user's login name"));
            continue;
        }
        let raw = u.get_ref();
        let home = raw
            .home
            .as_ref()
            .and_then(|h| c.abs(&format!("home of user {name}"), h));
        let mut list = Vec::new();
        for (src, kind) in [(&raw.directories, Kind::Dir), (&raw.files, Kind::File)] {
            for e in src {
                if let Some(ue) = validate_user_entry(name, e, kind, c) {
                    list.push(ue);
                }
            }
        }
        let mut seen = HashSet::new();
        for e in &list {
            if !seen.insert(e.path.clone()) {
                c.at(
                    u.span(),
                    format!(
                        "user {name}: path {:?} is listed twice; keep one",
                        String::from_utf8_lossy(e.path.as_bytes())
                    ),
                );
            }
        }
        if let (Some(home), Ok(store)) = (&home, AbsPath::parse(p.store.get_ref())) {
            for e in &list {
                targets.push((
                    Target {
                        path: home.join(&e.path),
                        kind: e.kind,
                        store: store.clone(),
                    },
                    u.span(),
                ));
            }
        }
        users.push(UserHome {
            name: name.clone(),
            home,
            entries: list,
        });
    }
    Some(Store {
        path: path?,
        hide_mounts: p.hide_mounts.unwrap_or(false),
        nosuid: p.nosuid.unwrap_or(true),
        nodev: p.nodev.unwrap_or(true),
        entries,
        users,
    })
}

/// Why a path may not be persisted (or be a store), if it touches a denied one.
fn denied_overlap(path: &AbsPath) -> Option<String> {
    for d in DENIED {
        let Ok(denied) = AbsPath::parse(d) else {
            continue;
        };
        if path.starts_with(&denied) {
            return Some(format!(
                "is {}{d}, which darlings never persists",
                if *path == denied { "" } else { "inside " }
            ));
        }
        if denied.is_inside(path) {
            return Some(format!("contains {d}, which darlings never persists"));
        }
    }
    None
}

fn entry_raw(e: &Spanned<RawEntry>) -> &RawEntry {
    e.get_ref()
}

fn validate_entry(e: &Spanned<RawEntry>, kind: Kind, c: &mut Checker) -> Option<Entry> {
    let raw = entry_raw(e);
    let what = kind.as_str();
    let path = match AbsPath::parse(&raw.path) {
        Ok(p) => p,
        Err(err) => {
            c.at(e.span(), format!("{what} {:?} {err}", raw.path));
            return None;
        }
    };
    if path.is_root() {
        c.at(e.span(), format!("{what} \"/\" is the whole root; persist the directories under it that you need instead"));
        return None;
    }
    if let Some(d) = denied_overlap(&path) {
        c.at(e.span(), format!("{what} {path} {d}; remove the entry"));
        return None;
    }
    let default_mode = if kind == Kind::Dir { 0o755 } else { 0o644 };
    let user = raw
        .user
        .as_ref()
        .and_then(|u| c.who("user", u))
        .unwrap_or(Who::Id(0));
    let group = raw
        .group
        .as_ref()
        .and_then(|g| c.who("group", g))
        .unwrap_or(Who::Id(0));
    let mode = raw
        .mode
        .as_ref()
        .and_then(|m| c.mode("mode", m))
        .unwrap_or(default_mode);
    let parent = c.parent(&raw.parent, &ParentSpec::default());
    Some(Entry {
        path,
        kind,
        user,
        group,
        mode,
        parent,
    })
}

fn validate_user_entry(
    name: &str,
    e: &Spanned<RawEntry>,
    kind: Kind,
    c: &mut Checker,
) -> Option<UserEntry> {
    let raw = entry_raw(e);
    if raw.parent.is_some() {
        c.at(e.span(), format!("user {name}: parent has no meaning here (directories up to the home belong to {name}, mode 0700); remove it"));
    }
    let path = match RelPath::parse(&raw.path) {
        Ok(p) => p,
        Err(err) => {
            c.at(
                e.span(),
                format!("user {name}: {} {:?} {err}", kind.as_str(), raw.path),
            );
            return None;
        }
    };
    let user = raw.user.as_ref().and_then(|u| c.who("user", u));
    let group = raw.group.as_ref().and_then(|g| c.who("group", g));
    let default_mode = if kind == Kind::Dir { 0o700 } else { 0o600 };
    let mode = raw
        .mode
        .as_ref()
        .and_then(|m| c.mode("mode", m))
        .unwrap_or(default_mode);
    Some(UserEntry {
        path,
        kind,
        user,
        group,
        mode,
    })
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
        }
    }
    out
}

fn check_conflicts(stores: &[Store], targets: &[(Target, Range<usize>)], c: &mut Checker) {
    let (targets, spans): (Vec<Target>, Vec<Range<usize>>) = targets.iter().cloned().unzip();
    let store_paths: Vec<AbsPath> = stores.iter().map(|s| s.path.clone()).collect();
    for (i, msg) in conflicts(&targets, &store_paths) {
        c.at(spans[i].clone(), msg);
    }
    for s in stores {
        for other in stores {
            if s.path.is_inside(&other.path) {
                c.nowhere(format!(
                    "store {} is inside store {}; use one of them",
                    s.path, other.path
                ));
            }
        }
    }
}

fn validate_diff(raw: Option<&RawDiff>, stores: &[Store], c: &mut Checker) -> DiffConfig {
    let mut out = DiffConfig {
        on_boot: false,
        report_dir: None,
        ignore: Vec::new(),
        max_entries: 100_000,
        time_budget: Duration::from_secs(10),
        keep_reports: 30,
    };
    let Some(raw) = raw else { return out };
    out.on_boot = raw.on_boot.unwrap_or(false);
    if let Some(rd) = &raw.report_dir {
        if let Some(p) = c.abs("report-dir", rd) {
            if !stores.iter().any(|s| p.is_inside(&s.path)) {
                let names: Vec<String> = stores.iter().map(|s| s.path.to_string()).collect();
                c.at(
                    rd.span(),
                    format!(
                        "report-dir {p} is not inside a store, so reports would be erased at the next boot; put it under {}",
                        if names.is_empty() { "a [[persist]] store".to_string() } else { names.join(" or ") }
                    ),
                );
            }
            out.report_dir = Some(p);
        }
    } else if out.on_boot {
        c.nowhere("diff.on-boot is true but diff.report-dir is not set; add report-dir = \"/persist/var/log/darlings\" (inside a store)");
    }
    for g in &raw.ignore {
        match Glob::parse(g.get_ref()) {
            Ok(glob) => out.ignore.push(glob),
            Err(e) => c.at(g.span(), format!("ignore pattern {:?} {e}", g.get_ref())),
        }
    }
    if let Some(k) = &raw.keep_reports {
        match usize::try_from(*k.get_ref()) {
            Ok(n) if n > 0 => out.keep_reports = n,
            _ => c.at(
                k.span(),
                format!(
                    "keep-reports {} must be a positive number of reports, e.g. 30",
                    k.get_ref()
                ),
            ),
        }
    }
    if let Some(m) = &raw.max_entries {
        match usize::try_from(*m.get_ref()) {
            Ok(n) if n > 0 => out.max_entries = n,
            _ => c.at(
                m.span(),
                format!(
                    "max-entries {} must be a positive number, e.g. 100000",
                    m.get_ref()
                ),
            ),
        }
    }
    if let Some(t) = &raw.time_budget {
        match parse_duration(t.get_ref()) {
            Some(d) => out.time_budget = d,
            None => c.at(
                t.span(),
                format!(
                    "time-budget {:?} is not a duration; write e.g. \"10s\" or \"500ms\"",
                    t.get_ref()
                ),
            ),
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
#[path = "config_tests.rs"]
mod tests;
