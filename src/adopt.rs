//! `darlings adopt`: moves existing state from the live root into a store so that the next
//! boot keeps it. Per path: a store lacking it gets a verified copy (staged in a directory of
//! adopt's own, renamed into place when complete), an identical store copy is only bound, a
//! different one is refused with what differs; the bind is apply's, for just these entries.
//!
//! Every path is checked read-only first, all of them before anything changes, so one refused
//! path changes nothing for the others; `--dry-run` stops after the checks with the plan.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::BackendError;
use darlings_backends::beneath;
use darlings_backends::bytes::Show;
use rustix::fs::{self, AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

use crate::apply::{self, ApplyError};
use crate::config::{self, edit, Kind, Method, DENIED};
use crate::paths::AbsPath;
use crate::plan::{self, Bind, DirSpec, Plan, Step};
use crate::seed::{self, CopyOptions, Mounts, Strictness};

/// One path to adopt: its kind when the caller knows it (`diff --suggest` does), and the store
/// to put it in when the config has no entry for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: AbsPath,
    pub kind: Option<Kind>,
    pub store: Option<AbsPath>,
}

pub struct Options<'a> {
    pub config: &'a Path,
    pub root: &'a Path,
    pub dry_run: bool,
    /// Append the entries the config lacks to it (TOML), or print the Nix to add (NixOS).
    pub write_config: bool,
}

/// What adopt did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Outcome {
    pub lines: Vec<String>,
    /// apply's mounts that carry userspace options, for the utab.
    pub marked: Vec<apply::Marked>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("refusing to adopt, nothing was changed:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("the copy of {path} in {store} does not match the root's ({}); it was removed, the store is as it was: stop what writes to {path} and adopt again", .diffs.join("; "))]
    Verify {
        path: String,
        store: String,
        diffs: Vec<String>,
    },
    #[error(transparent)]
    Io(#[from] BackendError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
}

fn io(what: String, e: Errno) -> AdoptError {
    BackendError::io(what, e.into()).into()
}

/// Differences shown for a refused path.
const SHOW_DIFFS: usize = 10;

const RESOLVE: ResolveFlags = beneath::RESOLVE;

/// `beneath::open`, or `beneath::open_on_mount` where `resolve` adds `RESOLVE_NO_XDEV`.
fn open_beneath(
    dir: BorrowedFd<'_>,
    rel: &[u8],
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    if resolve.contains(ResolveFlags::NO_XDEV) {
        beneath::open_on_mount(dir, rel, flags)
    } else {
        beneath::open(dir, rel, flags)
    }
}

/// The staging directory of an adopt of `name`, beside it in the store, and the marker file in
/// it that says adopt made it.
pub fn staging_name(name: &[u8]) -> Vec<u8> {
    let mut s = b".darlings-adopt-".to_vec();
    s.extend_from_slice(name);
    s.extend_from_slice(b".partial");
    s
}
pub const MARKER: &str = ".darlings-adopt";

/// What the check decided for one path.
#[derive(Debug)]
enum Decision {
    AlreadyBound,
    Bind,
    Copy(seed::Scan),
}

struct Checked {
    bind: Bind,
    decision: Decision,
    /// A staging directory an interrupted adopt left (removed before the copy).
    stale: bool,
}

/// Where the entries the config lacks go.
enum ConfigFile {
    Toml,
    /// The NixOS module's rendered file (a symlink into the Nix store, or read-only).
    Nix,
}

fn config_file(path: &Path) -> ConfigFile {
    let link = std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    let in_store = std::fs::canonicalize(path)
        .map(|p| p.starts_with("/nix/store"))
        .unwrap_or(false);
    let writable = fs::access(path, fs::Access::WRITE_OK).is_ok()
        && !fs::statvfs(path)
            .map(|v| v.f_flag.contains(fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(true);
    if link || in_store || !writable {
        ConfigFile::Nix
    } else {
        ConfigFile::Toml
    }
}

/// Why `path` can never be adopted, if it cannot.
fn forbidden(path: &AbsPath, stores: &[AbsPath]) -> Option<String> {
    if path.is_root() {
        return Some("/ is the root itself; adopt what in it you want to keep".into());
    }
    for d in DENIED {
        let Ok(d) = AbsPath::parse(d) else { continue };
        if path.starts_with(&d) || d.starts_with(path) {
            return Some(format!(
                "{path} is or contains {d}, which darlings never persists"
            ));
        }
    }
    for s in stores {
        if path == s {
            return Some(format!("{path} is a store itself"));
        }
        if path.is_inside(s) {
            return Some(format!(
                "{path} is inside store {s}: it is kept already; adopt the path the root sees it at"
            ));
        }
        if s.is_inside(path) {
            return Some(format!(
                "{path} contains store {s}; adopt what beside the store you want to keep"
            ));
        }
    }
    None
}

/// The entry kind of what the root has at `path`, looked at without following or crossing
/// anything; or why it cannot be adopted.
fn root_kind(root: BorrowedFd<'_>, root_path: &Path, path: &AbsPath) -> Result<Kind, String> {
    let tgt = shown(root_path, path);
    let fd = match open_beneath(
        root,
        path.relative(),
        OFlags::PATH,
        RESOLVE | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            return Err(format!(
                "{} does not exist; nothing to adopt",
                Show(&tgt)
            ))
        }
        Err(Errno::LOOP) => {
            return Err(format!(
                "root path {} is or passes through a symlink; darlings never follows one: adopt what it points to, at its own path",
                Show(&tgt)
            ))
        }
        Err(Errno::XDEV) => {
            return Err(format!(
                "{} is on another filesystem than the root's (a mount at or above it), which the rollback does not erase; adopt only what is on the root",
                Show(&tgt)
            ))
        }
        Err(e) => return Err(format!("cannot open {}: {e}", Show(&tgt))),
    };
    let st = fs::fstat(&fd).map_err(|e| format!("cannot stat {}: {e}", Show(&tgt)))?;
    match fs::FileType::from_raw_mode(st.st_mode) {
        fs::FileType::Directory => Ok(Kind::Dir),
        fs::FileType::RegularFile => Ok(Kind::File),
        _ => Err(format!(
            "{} is neither a directory nor a regular file; adopt persists only those",
            Show(&tgt)
        )),
    }
}

fn open_root(root: &Path) -> Result<OwnedFd, AdoptError> {
    fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        io(
            format!(
                "cannot open root {}; pass an existing directory as --root",
                root.display()
            ),
            e,
        )
    })
}

fn shown(root: &Path, p: &AbsPath) -> Vec<u8> {
    let mut s = root.as_os_str().as_bytes().to_vec();
    while s.len() > 1 && s.ends_with(b"/") {
        s.pop();
    }
    if s == b"/" {
        return p.as_bytes().to_vec();
    }
    s.extend_from_slice(p.as_bytes());
    s
}

/// Runs adopt for `requests`.
pub fn run(opts: &Options<'_>, requests: &[Request]) -> Result<Outcome, AdoptError> {
    let file = opts.config.display().to_string();
    let text = std::fs::read_to_string(opts.config).map_err(|e| BackendError::Io {
        what: format!("cannot read config {file}"),
        source: e,
    })?;
    let cfg = config::parse(&text, &file)?;
    let accounts = crate::owners::read_accounts(opts.root).map_err(|e| BackendError::Io {
        what: format!(
            "cannot read the accounts of root {} (etc/passwd, etc/group)",
            opts.root.display()
        ),
        source: e,
    })?;
    let plan = plan::build(&cfg, &accounts)?;
    let stores: Vec<AbsPath> = cfg.stores.iter().map(|s| s.path.clone()).collect();
    let root_fd = open_root(opts.root)?;
    let mut refusals = Vec::new();
    // Entries the config lacks, appended to one copy of its text.
    let mut edited = text.clone();
    let mut added: Vec<(AbsPath, Kind, AbsPath)> = Vec::new();
    let mut wanted: Vec<AbsPath> = Vec::new();
    for r in requests {
        if let Some(why) = forbidden(&r.path, &stores) {
            refusals.push(format!("  {why}"));
            continue;
        }
        let found = plan.steps.iter().find_map(|s| match s {
            Step::Bind(b) if b.target == r.path => Some(b),
            _ => None,
        });
        let inside = plan.steps.iter().find_map(|s| match s {
            Step::Bind(b) if r.path.is_inside(&b.target) => Some(b.target.clone()),
            _ => None,
        });
        match (found, &r.store) {
            (Some(b), Some(s)) if &b.store != s => refusals.push(format!(
                "  {} is persisted in store {} by the config, not in {s}; drop --store or change the config",
                r.path, b.store
            )),
            (Some(b), _) if b.method == Method::Symlink => refusals.push(format!(
                "  {} is persisted with method = \"symlink\"; adopt binds: move the file to {} by hand, then apply",
                r.path,
                b.source()
            )),
            (Some(_), _) => wanted.push(r.path.clone()),
            (None, _) if inside.is_some() => {
                let t = inside.unwrap_or_else(AbsPath::root);
                refusals.push(format!(
                    "  {} is inside persisted directory {t}, which every boot binds: its content is {t}'s; adopt {t}",
                    r.path
                ));
            }
            (None, None) => refusals.push(format!(
                "  {} is not in config {file}; pass --store with one of its stores ({}) to adopt it there, and --write-config to add it",
                r.path,
                stores.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
            )),
            (None, Some(s)) => {
                if !stores.contains(s) {
                    refusals.push(format!(
                        "  store {s} is not in config {file} (its stores: {}); add a [[persist]] table for it first",
                        stores.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    continue;
                }
                let kind = match r.kind {
                    Some(k) => k,
                    None => match root_kind(root_fd.as_fd(), opts.root, &r.path) {
                        Ok(k) => k,
                        Err(why) => {
                            refusals.push(format!("  {why}"));
                            continue;
                        }
                    },
                };
                match edit::add_entry(&edited, &file, s, kind, &r.path) {
                    Ok(t) => {
                        edited = t;
                        added.push((s.clone(), kind, r.path.clone()));
                        wanted.push(r.path.clone());
                    }
                    Err(e) => refusals.push(format!("  {e}")),
                }
            }
        }
    }
    if !refusals.is_empty() {
        return Err(AdoptError::Refused(refusals));
    }
    // The config with the new entries goes through every rule a config obeys (a path inside a
    // persisted directory, in two stores, ...), and gives the plan their binds come from.
    let plan = if added.is_empty() {
        plan
    } else {
        let cfg = config::parse(&edited, &file).map_err(|e| match e {
            config::ConfigError::Invalid { problems, .. } => AdoptError::Refused(
                std::iter::once(format!(
                    "  the config with {} added would be invalid:",
                    added
                        .iter()
                        .map(|a| a.2.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .chain(problems)
                .collect(),
            ),
            e => AdoptError::Config(e),
        })?;
        plan::build(&cfg, &accounts)?
    };
    let binds: Vec<Bind> = wanted
        .iter()
        .filter_map(|p| {
            plan.steps.iter().find_map(|s| match s {
                Step::Bind(b) if &b.target == p => Some(b.clone()),
                _ => None,
            })
        })
        .collect();
    let mut checked = Vec::new();
    for b in binds {
        match check(opts.root, root_fd.as_fd(), b) {
            Ok(c) => checked.push(c),
            Err(AdoptError::Refused(l)) => refusals.extend(l),
            Err(e) => return Err(e),
        }
    }
    if !refusals.is_empty() {
        return Err(AdoptError::Refused(refusals));
    }
    // apply's own check pass for these binds (the store rule, the mount points).
    let subset = subset_plan(&plan, &checked);
    apply::apply(&subset, opts.root, apply::Options { dry_run: true }).map_err(|e| match e {
        ApplyError::Refused(l) => AdoptError::Refused(l),
        e => AdoptError::Apply(e),
    })?;
    let config_kind = config_file(opts.config);
    let mut out = Outcome::default();
    let w = if opts.dry_run { "would " } else { "" };
    if opts.dry_run {
        for c in &checked {
            out.lines.extend(plan_lines(&c.bind, &c.decision, c.stale));
        }
        config_lines(&mut out, opts, &config_kind, &added, &file, w);
        out.lines.push(format!(
            "dry run: {} path(s) checked, nothing changed",
            checked.len()
        ));
        return Ok(out);
    }
    for c in &checked {
        match &c.decision {
            Decision::Copy(scan) => {
                let line = copy(opts.root, root_fd.as_fd(), &c.bind, scan)?;
                out.lines.push(line);
            }
            // Killed after its rename: the store has the verified copy, the staging is left.
            _ if c.stale => {
                out.lines
                    .push(remove_stale(opts.root, root_fd.as_fd(), &c.bind)?);
            }
            _ => {}
        }
    }
    let applied = apply::apply(&subset, opts.root, apply::Options { dry_run: false })?;
    out.lines.extend(applied.actions);
    out.marked = applied.marked;
    for c in &checked {
        if let Decision::AlreadyBound = c.decision {
            out.lines.push(format!(
                "already adopted: {} is bound from its store",
                c.bind.target
            ));
        }
    }
    if opts.write_config && !added.is_empty() {
        if let ConfigFile::Toml = config_kind {
            write_config(opts.config, &edited)?;
        }
    }
    config_lines(&mut out, opts, &config_kind, &added, &file, w);
    Ok(out)
}

/// The plan of just these binds. They are marked `seed_from_blank` because that is the flag by
/// which apply binds a store's copy over a root's non-empty directory or file: adopt has just
/// made or compared that copy and found it equal, so the bind hides nothing.
fn subset_plan(plan: &Plan, checked: &[Checked]) -> Plan {
    Plan {
        steps: checked
            .iter()
            .map(|c| {
                let mut b = c.bind.clone();
                b.seed_from_blank = true;
                Step::Bind(b)
            })
            .collect(),
        erased: plan.erased.clone(),
    }
}

fn plan_lines(b: &Bind, d: &Decision, stale: bool) -> Vec<String> {
    let mut l = Vec::new();
    if stale {
        l.push(format!(
            "would remove the staging directory an interrupted adopt of {} left",
            b.target
        ));
    }
    match d {
        Decision::AlreadyBound => l.push(format!("already adopted: {}", b.target)),
        Decision::Bind => {
            l.push(format!(
                "the store's {} is identical to {} (or the root's is empty): would bind only",
                b.source(),
                b.target
            ));
            l.push(format!("would bind {} -> {}", b.source(), b.target));
        }
        Decision::Copy(s) => {
            l.push(format!(
                "would copy {} {} ({} entries, {} bytes{}) into {}, verify it, and bind it",
                b.kind.as_str(),
                b.target,
                s.entries,
                s.bytes,
                if s.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; left out: {}", s.skipped.join(", "))
                },
                b.source()
            ));
            l.push(format!("would bind {} -> {}", b.source(), b.target));
        }
    }
    l
}

fn config_lines(
    out: &mut Outcome,
    opts: &Options<'_>,
    kind: &ConfigFile,
    added: &[(AbsPath, Kind, AbsPath)],
    file: &str,
    w: &str,
) {
    if added.is_empty() {
        return;
    }
    match (opts.write_config, kind) {
        (true, ConfigFile::Toml) => {
            for (s, k, p) in added {
                out.lines.push(format!(
                    "{w}add {} {p} to store {s} in config {file}",
                    k.as_str()
                ));
            }
        }
        (true, ConfigFile::Nix) => {
            out.lines.push(format!(
                "config {file} is rendered by the NixOS module (read-only): add this to your NixOS configuration and rebuild, or the next boot will not bind it:"
            ));
            for (s, k, p) in added {
                out.lines.push(format!("  {}", edit::nix_line(s, *k, p)));
            }
        }
        (false, _) => {
            for (s, k, p) in added {
                out.lines.push(format!(
                    "config {file} does not list {p}: the next boot will not bind it; adopt again with --write-config, or add it to store {s}'s {} yourself{}",
                    if *k == Kind::Dir { "directories" } else { "files" },
                    if let ConfigFile::Nix = kind { format!(" ({})", edit::nix_line(s, *k, p)) } else { String::new() }
                ));
            }
        }
    }
}

/// Replaces the config file by `text`: a temporary beside it, with the file's mode, synced,
/// renamed over it.
fn write_config(path: &Path, text: &str) -> Result<(), AdoptError> {
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    let e = |source| BackendError::Io {
        what: format!("cannot write config {shown}"),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dirfd = fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| e(err.into()))?;
    let opts = beneath::Atomic {
        mode,
        fsync: true,
        replace: true,
    };
    let name = path.file_name().unwrap_or(path.as_os_str());
    beneath::write_atomic(dirfd.as_fd(), name, text.as_bytes(), opts)
        .map_err(|err| e(std::io::Error::other(err)).into())
}

/// Opens the store `b.store` beneath the root.
fn open_store(root: BorrowedFd<'_>, b: &Bind, root_path: &Path) -> Result<OwnedFd, AdoptError> {
    let s = shown(root_path, &b.store);
    match open_beneath(
        root,
        b.store.relative(),
        OFlags::RDONLY | OFlags::DIRECTORY,
        RESOLVE,
    ) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) => Err(AdoptError::Refused(vec![format!(
            "  store {} does not exist; mount the persistent filesystem there and adopt again",
            Show(&s)
        )])),
        Err(Errno::LOOP) => Err(AdoptError::Refused(vec![format!(
            "  store {} is or passes through a symlink; darlings never follows one: make it a real directory",
            Show(&s)
        )])),
        Err(e) => Err(io(format!("cannot open store {}", Show(&s)), e)),
    }
}

/// The parent directory of `b.target` in `tree` (the root, or a store), or None when a
/// directory on the way is missing.
fn parent_of(
    tree: BorrowedFd<'_>,
    b: &Bind,
    what: &str,
    shown_parent: &[u8],
    resolve: ResolveFlags,
) -> Result<Option<OwnedFd>, AdoptError> {
    let rel = b.target.relative();
    let Some(i) = rel.iter().rposition(|&c| c == b'/') else {
        return fs::openat(
            tree,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(Some)
        .map_err(|e| io(format!("cannot open {what} {}", Show(shown_parent)), e));
    };
    match open_beneath(tree, &rel[..i], OFlags::RDONLY | OFlags::DIRECTORY, resolve) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP) => Err(AdoptError::Refused(vec![format!(
            "  {what} path {} passes through a symlink; darlings never follows one: replace it with a real directory",
            Show(shown_parent)
        )])),
        Err(Errno::NOTDIR) => Err(AdoptError::Refused(vec![format!(
            "  {what} path {} is not a directory; move it away",
            Show(shown_parent)
        )])),
        Err(Errno::XDEV) => Err(AdoptError::Refused(vec![format!(
            "  {what} path {} is on another filesystem than the {what} (a mount on the way); adopt only what the rollback erases",
            Show(shown_parent)
        )])),
        Err(e) => Err(io(
            format!("cannot open {what} directory {}", Show(shown_parent)),
            e,
        )),
    }
}

fn name_of(b: &Bind) -> &[u8] {
    b.target.components().last().unwrap_or_default()
}

fn parent_shown(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/",
        Some(i) => &s[..i],
        None => s,
    }
}

/// The read-only check of one bind.
fn check(root_path: &Path, root: BorrowedFd<'_>, b: Bind) -> Result<Checked, AdoptError> {
    let tgt = shown(root_path, &b.target);
    let refuse = |s: String| Err(AdoptError::Refused(vec![format!("  {s}")]));
    let name = name_of(&b);
    let statx = |fd: BorrowedFd<'_>| {
        fs::statx(
            fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
        )
        .map_err(|e| io(format!("cannot stat {}", Show(&tgt)), e))
    };
    let store = open_store(root, &b, root_path)?;
    let src = shown(root_path, &b.source());
    // A mount inside the store on the way is the store's business (apply's store rule).
    let sparent = parent_of(store.as_fd(), &b, "store", parent_shown(&src), RESOLVE)?;
    let source = match &sparent {
        None => None,
        Some(dir) => match open_beneath(dir.as_fd(), name, OFlags::PATH, RESOLVE) {
            Ok(fd) => Some(fd),
            Err(Errno::NOENT) => None,
            Err(Errno::LOOP) => {
                return refuse(format!(
                    "store path {} is a symlink; darlings never follows one: replace it with a real {} or remove it",
                    Show(&src),
                    b.kind.as_str()
                ))
            }
            Err(e) => return Err(io(format!("cannot open store path {}", Show(&src)), e)),
        },
    };
    let stale = match &sparent {
        Some(dir) => stale_staging(dir.as_fd(), name, &src)?,
        None => false,
    };
    let rparent = parent_of(
        root,
        &b,
        "root",
        parent_shown(&tgt),
        RESOLVE | ResolveFlags::NO_XDEV,
    )?;
    let Some(rparent) = rparent else {
        return refuse(format!(
            "{} does not exist; nothing to adopt (apply makes it, empty)",
            Show(&tgt)
        ));
    };
    let target = match open_beneath(
        rparent.as_fd(),
        name,
        OFlags::PATH,
        RESOLVE | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            return refuse(format!(
                "{} does not exist; nothing to adopt (apply makes it, empty)",
                Show(&tgt)
            ))
        }
        Err(Errno::LOOP) => {
            return refuse(format!(
                "root path {} is a symlink; darlings never follows one: adopt what it points to, at its own path",
                Show(&tgt)
            ))
        }
        Err(Errno::XDEV) => {
            // A mount on the path itself: the store's bind (adopted already), or another
            // filesystem, which the rollback does not erase.
            let on = open_beneath(rparent.as_fd(), name, OFlags::PATH, RESOLVE)
                .map_err(|e| io(format!("cannot open {}", Show(&tgt)), e))?;
            let (a, s) = (statx(on.as_fd())?, source.as_ref().map(|s| statx(s.as_fd())));
            if let Some(Ok(s)) = s {
                if (a.stx_dev_major, a.stx_dev_minor, a.stx_ino)
                    == (s.stx_dev_major, s.stx_dev_minor, s.stx_ino)
                {
                    return Ok(Checked {
                        bind: b,
                        decision: Decision::AlreadyBound,
                        stale,
                    });
                }
            }
            return refuse(format!(
                "{} is a mount point of another filesystem than the root's, which the rollback does not erase; a copy would cross it: unmount it, or persist what is mounted there another way",
                Show(&tgt)
            ));
        }
        Err(e) => return Err(io(format!("cannot open {}", Show(&tgt)), e)),
    };
    let tst = statx(target.as_fd())?;
    let tkind = match fs::FileType::from_raw_mode(u32::from(tst.stx_mode)) {
        fs::FileType::Directory => Some(Kind::Dir),
        fs::FileType::RegularFile => Some(Kind::File),
        _ => None,
    };
    if tkind != Some(b.kind) {
        return refuse(format!(
            "{} is not a {}, but the config persists a {} there; fix the config",
            Show(&tgt),
            b.kind.as_str(),
            b.kind.as_str()
        ));
    }
    let Some(source) = source else {
        let flags = match b.kind {
            Kind::Dir => OFlags::RDONLY | OFlags::DIRECTORY,
            Kind::File => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        };
        let fd = open_beneath(
            rparent.as_fd(),
            name,
            flags,
            RESOLVE | ResolveFlags::NO_XDEV,
        )
        .map_err(|e| io(format!("cannot open {}", Show(&tgt)), e))?;
        let scan = seed::scan(fd.as_fd(), &tgt).map_err(AdoptError::Apply)?;
        if !scan.mounts.is_empty() {
            return refuse(format!(
                "{} has mounts beneath it ({}), and a copy would cross them; unmount them, or adopt the paths beside them one by one",
                Show(&tgt),
                scan.mounts.join(", ")
            ));
        }
        return Ok(Checked {
            bind: b,
            decision: Decision::Copy(scan),
            stale,
        });
    };
    let sst = statx(source.as_fd())?;
    let skind = match fs::FileType::from_raw_mode(u32::from(sst.stx_mode)) {
        fs::FileType::Directory => Some(Kind::Dir),
        fs::FileType::RegularFile => Some(Kind::File),
        _ => None,
    };
    if skind != Some(b.kind) {
        return refuse(format!(
            "store path {} is not a {}, but {} is; fix the store",
            Show(&src),
            b.kind.as_str(),
            Show(&tgt)
        ));
    }
    let Some(sparent) = sparent else {
        return Err(step(format!("store path {} vanished", Show(&src))));
    };
    // An empty directory or file in the root holds nothing a bind would hide (apply binds
    // over those too).
    let empty = match b.kind {
        Kind::File => tst.stx_size == 0,
        Kind::Dir => {
            let fd = open_beneath(
                rparent.as_fd(),
                name,
                OFlags::RDONLY | OFlags::DIRECTORY,
                RESOLVE | ResolveFlags::NO_XDEV,
            )
            .map_err(|e| io(format!("cannot open {}", Show(&tgt)), e))?;
            fs::Dir::read_from(&fd)
                .map_err(|e| io(format!("cannot read {}", Show(&tgt)), e))?
                .filter_map(Result::ok)
                .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
        }
    };
    if empty {
        return Ok(Checked {
            bind: b,
            decision: Decision::Bind,
            stale,
        });
    }
    let diffs = seed::compare(
        (rparent.as_fd(), name),
        (sparent.as_fd(), name),
        b.target.as_bytes(),
        Strictness::Content,
        SHOW_DIFFS + 1,
    )?;
    if !diffs.is_empty() {
        let mut l = vec![format!(
            "  {} differs from the store's copy {}; keep the one you want (remove or move the other) and adopt again. What differs{}:",
            Show(&tgt),
            Show(&src),
            if diffs.len() > SHOW_DIFFS {
                format!(" (the first {SHOW_DIFFS})")
            } else {
                String::new()
            }
        )];
        l.extend(diffs.iter().take(SHOW_DIFFS).map(|d| format!("    {d}")));
        return Err(AdoptError::Refused(l));
    }
    Ok(Checked {
        bind: b,
        decision: Decision::Bind,
        stale,
    })
}

/// Whether an interrupted adopt left its staging directory for `name` in `dir`; anything else
/// under that name (not a directory, or without adopt's marker) is refused, never removed.
fn stale_staging(dir: BorrowedFd<'_>, name: &[u8], src: &[u8]) -> Result<bool, AdoptError> {
    let staging = staging_name(name);
    let shown = {
        let mut s = parent_shown(src).to_vec();
        s.push(b'/');
        s.extend_from_slice(&staging);
        s
    };
    let st = match fs::statat(dir, staging.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(io(format!("cannot stat {}", Show(&shown)), e)),
    };
    let marked = fs::FileType::from_raw_mode(st.st_mode) == fs::FileType::Directory
        && open_beneath(
            dir,
            &[staging.as_slice(), b"/", MARKER.as_bytes()].concat(),
            OFlags::PATH,
            RESOLVE,
        )
        .and_then(fs::fstat)
        .map(|m| fs::FileType::from_raw_mode(m.st_mode) == fs::FileType::RegularFile)
        .unwrap_or(false);
    if !marked {
        return Err(AdoptError::Refused(vec![format!(
            "  {} is in the way of adopt's staging directory and was not made by adopt (no {MARKER} in it); move it away and adopt again",
            Show(&shown)
        )]));
    }
    Ok(true)
}

/// Removes the staging directory an interrupted adopt of `b` left (checked to carry the marker).
fn remove_stale(root_path: &Path, root: BorrowedFd<'_>, b: &Bind) -> Result<String, AdoptError> {
    let name = name_of(b);
    let src = shown(root_path, &b.source());
    let store = open_store(root, b, root_path)?;
    let parent = parent_of(store.as_fd(), b, "store", parent_shown(&src), RESOLVE)?
        .ok_or_else(|| step(format!("store path {} vanished", Show(&src))))?;
    let staging = staging_name(name);
    let staging_shown = [parent_shown(&src), b"/", &staging].concat();
    if stale_staging(parent.as_fd(), name, &src)? {
        seed::remove_tree(parent.as_fd(), &staging, &staging_shown)?;
    }
    Ok(format!(
        "removed {}, left by an interrupted adopt",
        Show(&staging_shown)
    ))
}

/// Makes the store's missing directories on the way to `b.target`, with the entry's parent
/// specs (as apply would), and returns the parent.
/// `made` gets each directory it creates (relative to the store), top down.
fn make_store_parent(
    store: BorrowedFd<'_>,
    b: &Bind,
    src: &[u8],
    made: &mut Vec<Vec<u8>>,
) -> Result<OwnedFd, AdoptError> {
    let comps: Vec<&[u8]> = b.target.components().collect();
    let mut dir = fs::openat(
        store,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(format!("cannot open the store of {}", Show(src)), e))?;
    for (i, c) in comps[..comps.len().saturating_sub(1)].iter().enumerate() {
        let open =
            |d: BorrowedFd<'_>| open_beneath(d, c, OFlags::RDONLY | OFlags::DIRECTORY, RESOLVE);
        let next = match open(dir.as_fd()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let spec = b.parents.get(i).copied().unwrap_or(DirSpec {
                    uid: 0,
                    gid: 0,
                    mode: 0o755,
                });
                let what = || format!("cannot create store directory {} of {}", Show(c), Show(src));
                fs::mkdirat(dir.as_fd(), *c, Mode::from_raw_mode(0o700))
                    .map_err(|e| io(what(), e))?;
                made.push(comps[..=i].join(&b'/'));
                let fd = open(dir.as_fd()).map_err(|e| io(what(), e))?;
                fs::fchown(
                    &fd,
                    Some(fs::Uid::from_raw(spec.uid)),
                    Some(fs::Gid::from_raw(spec.gid)),
                )
                .map_err(|e| io(what(), e))?;
                fs::fchmod(&fd, Mode::from_raw_mode(spec.mode)).map_err(|e| io(what(), e))?;
                fd
            }
            Err(e) => {
                return Err(io(
                    format!("cannot open store directory {} of {}", Show(c), Show(src)),
                    e,
                ))
            }
        };
        dir = next;
    }
    Ok(dir)
}

/// A progress bar on stderr, drawn only on a terminal and only once a copy has run a second.
struct Progress {
    bar: indicatif::ProgressBar,
    start: Instant,
    shown: bool,
    tty: bool,
    files: u64,
}

impl Progress {
    fn new(scan: &seed::Scan) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(scan.bytes),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {msg} ({elapsed}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
            tty: std::io::stderr().is_terminal(),
            files: scan.entries,
        }
    }

    /// The copy is done and being compared with the root's, which reads both again.
    fn verifying(&mut self) {
        self.bar.set_message("verifying the copy");
        if self.shown {
            self.bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    fn update(&mut self, c: &seed::Copied) {
        if !self.shown && self.tty && self.start.elapsed() > Duration::from_secs(1) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position(c.bytes);
        self.bar
            .set_message(format!("{}/{} files", c.entries, self.files));
    }
}

/// Copies the root's `b.target` into its store: into a staging directory beside the
/// destination (marked as adopt's), fsynced, verified against the root's, then renamed into
/// place. Returns the line that says so.
fn copy(
    root_path: &Path,
    root: BorrowedFd<'_>,
    b: &Bind,
    scan: &seed::Scan,
) -> Result<String, AdoptError> {
    let src = shown(root_path, &b.source());
    let store = open_store(root, b, root_path)?;
    let mut made = Vec::new();
    let r = make_store_parent(store.as_fd(), b, &src, &mut made)
        .and_then(|parent| copy_in(root_path, root, b, scan, parent));
    if r.is_err() {
        // The store as it was: the directories made for this copy go too (only while empty).
        for rel in made.iter().rev() {
            let _ = fs::unlinkat(&store, rel.as_slice(), AtFlags::REMOVEDIR);
        }
    }
    r
}

fn copy_in(
    root_path: &Path,
    root: BorrowedFd<'_>,
    b: &Bind,
    scan: &seed::Scan,
    parent: OwnedFd,
) -> Result<String, AdoptError> {
    let name = name_of(b);
    let tgt = shown(root_path, &b.target);
    let src = shown(root_path, &b.source());
    let staging = staging_name(name);
    let staging_shown = [parent_shown(&src), b"/", &staging].concat();
    // Only adopt's own staging directory (the check saw its marker) is removed.
    if stale_staging(parent.as_fd(), name, &src)? {
        seed::remove_tree(parent.as_fd(), &staging, &staging_shown)?;
    }
    fs::mkdirat(
        parent.as_fd(),
        staging.as_slice(),
        Mode::from_raw_mode(0o700),
    )
    .map_err(|e| io(format!("cannot create {}", Show(&staging_shown)), e))?;
    let sdir = open_beneath(
        parent.as_fd(),
        &staging,
        OFlags::RDONLY | OFlags::DIRECTORY,
        RESOLVE,
    )
    .map_err(|e| io(format!("cannot open {}", Show(&staging_shown)), e))?;
    {
        let m = fs::openat(
            &sdir,
            MARKER,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| {
            io(
                format!("cannot create the marker in {}", Show(&staging_shown)),
                e,
            )
        })?;
        let text = format!("darlings adopt is copying {} here\n", b.target);
        rustix::io::write(&m, text.as_bytes()).map_err(|e| {
            io(
                format!("cannot write the marker in {}", Show(&staging_shown)),
                e,
            )
        })?;
        fs::fsync(&m).map_err(|e| io(format!("cannot sync {}", Show(&staging_shown)), e))?;
    }
    let rparent = parent_of(
        root,
        b,
        "root",
        parent_shown(&tgt),
        RESOLVE | ResolveFlags::NO_XDEV,
    )?
    .ok_or_else(|| step(format!("{} vanished", Show(&tgt))))?;
    let flags = match b.kind {
        Kind::Dir => OFlags::RDONLY | OFlags::DIRECTORY,
        Kind::File => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    };
    let from = open_beneath(
        rparent.as_fd(),
        name,
        flags,
        RESOLVE | ResolveFlags::NO_XDEV,
    )
    .map_err(|e| io(format!("cannot open {}", Show(&tgt)), e))?;
    let mut progress = Progress::new(scan);
    // For the test of a kill in mid-copy: the process stops itself with the copy half made,
    // and the test kills it (SIGKILL) while it is stopped.
    let stop_after = (crate::failpoint::active() == Some(darlings_backends::Failpoint::AdoptStop))
        .then_some(2u64);
    let mut stopped = None;
    let mut tick = |c: &seed::Copied| {
        progress.update(c);
        if stop_after.is_some_and(|n| c.entries == n) && stopped.replace(true).is_none() {
            eprintln!("darlings: failpoint adopt-stop hit");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::STOP,
            );
        }
    };
    let copied = seed::copy_entry(
        from.as_fd(),
        b.kind,
        sdir.as_fd(),
        name,
        &src,
        &mut CopyOptions {
            mounts: Mounts::Refuse,
            progress: Some(&mut tick),
        },
    );
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            let _ = seed::remove_tree(parent.as_fd(), &staging, &staging_shown);
            return Err(e.into());
        }
    };
    progress.verifying();
    let diffs = seed::compare(
        (rparent.as_fd(), name),
        (sdir.as_fd(), name),
        b.target.as_bytes(),
        Strictness::Copy,
        SHOW_DIFFS,
    );
    progress.bar.finish_and_clear();
    let diffs = diffs?;
    if !diffs.is_empty() {
        seed::remove_tree(parent.as_fd(), &staging, &staging_shown)?;
        return Err(AdoptError::Verify {
            path: b.target.to_string(),
            store: b.store.to_string(),
            diffs,
        });
    }
    seed::rename_noreplace(sdir.as_fd(), name, parent.as_fd(), name, b.kind).map_err(|e| {
        io(
            format!(
                "cannot move the verified copy from {} to {}",
                Show(&staging_shown),
                Show(&src)
            ),
            e,
        )
    })?;
    fs::fsync(&parent)
        .map_err(|e| io(format!("cannot sync the directory of {}", Show(&src)), e))?;
    seed::remove_tree(parent.as_fd(), &staging, &staging_shown)?;
    fs::fsync(&parent)
        .map_err(|e| io(format!("cannot sync the directory of {}", Show(&src)), e))?;
    Ok(format!(
        "copied {} {} into {} ({} entries, {} bytes, verified{})",
        b.kind.as_str(),
        b.target,
        Show(&src),
        copied.entries,
        copied.bytes,
        if copied.skipped.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", copied.skipped.join(", "))
        }
    ))
}

fn step(s: String) -> AdoptError {
    AdoptError::Apply(ApplyError::Step(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_paths() {
        let p = |s: &str| AbsPath::parse(s).unwrap();
        let stores = [p("/persist")];
        assert!(forbidden(&p("/"), &stores).is_some());
        assert!(forbidden(&p("/proc/1"), &stores).is_some());
        assert!(forbidden(&p("/nix"), &stores)
            .unwrap()
            .contains("/nix/store"));
        assert!(forbidden(&p("/persist"), &stores)
            .unwrap()
            .contains("a store itself"));
        assert!(forbidden(&p("/persist/x"), &stores)
            .unwrap()
            .contains("inside store"));
        assert!(forbidden(&p("/var/lib/foo"), &stores).is_none());
        assert_eq!(staging_name(b"foo"), b".darlings-adopt-foo.partial");
    }
}
