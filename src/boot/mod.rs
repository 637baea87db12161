//! `darlings boot`, the one command an initrd runs: preflight, the optional lost-state diff and
//! the rollback before the root is mounted (`early`), then the fresh tmpfs, the saved report and
//! the bind mounts once the root and its stores are mounted (`late`). Each phase is timed and
//! logged; the record of the boot goes to the work dir (`/run/darlings`, which every initrd we
//! support carries into the booted system) for `darlings status`.
//!
//! Failure policy: the first failing phase stops everything destructive after it. Under
//! `boot-old-root` the boot goes on with the untouched root (the backends' protocols leave a
//! valid root at every step) and the stores are still bound, so persisted data stays where the
//! system expects it; under `halt` darlings stops and tells the hook to stop the boot.

use std::path::Path;
use std::time::Instant;

use darlings_backends::{
    Backend, DiffLimits, HoldOp, HoldState, MountSpec, RollbackAt, RollbackOpts, Truncation,
};

use crate::cmdline::{self, Cmdline};
use crate::config::{Config, OnFailure};
use crate::error::chain;
use crate::owners::Accounts;
use crate::report::{Class, Report};
use crate::{apply, backends, config, owners, plan, report};

mod record;

use record::{bytes_note, Early};
pub use record::{
    going_on_with, held_line, render_status, Outcome, Phase, PhaseStage, Record, ReportInfo,
    FAILED, RECORD, SCHEMA,
};

const PENDING_JSON: &str = "report-pending.json";
const PENDING_TXT: &str = "report-pending.txt";

/// What a phase fails with: the errors of the steps a boot runs, and its own refusals.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Build(#[from] backends::BuildError),
    #[error(transparent)]
    Backend(#[from] crate::error::BackendError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    /// A file of the boot's own (the pending report, the root's accounts), named in the text.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A state the boot will not act on, or a step that could not be done, with what to do.
    #[error("{0}")]
    Refused(String),
}

/// How a boot failed, as `run` hands it to the caller: the first phase that failed, or what
/// stopped the boot around its phases.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Phase(#[from] PhaseError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// A bug: darlings panicked; the policy still applies.
    #[error("darlings panicked: {0}; this is a bug, please report it with the log above")]
    Panic(String),
}

impl From<String> for BootError {
    fn from(s: String) -> Self {
        BootError::Refused(s)
    }
}

impl From<&str> for BootError {
    fn from(s: &str) -> Self {
        BootError::Refused(s.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Before the initrd mounts the root: preflight, diff, rollback (btrfs, zfs).
    Early,
    /// After the root and its stores are mounted at --root: tmpfs root, report, apply.
    Late,
    /// Both, mounting the new root at --root when nothing is mounted there.
    All,
}

pub struct Options<'a> {
    pub config: &'a Path,
    pub work_dir: &'a Path,
    pub root: &'a Path,
    pub stage: Stage,
    /// The kernel command line's bytes (`/proc/cmdline`).
    pub cmdline: &'a [u8],
    pub dry_run: bool,
    /// libmount's utab, where hide-mounts records x-gvfs-hide for the booted system.
    pub utab: &'a Path,
    /// journald's socket (`journal::SOCKET` outside tests), for `report.journald`.
    pub journal_socket: &'a Path,
}

/// How `run` ended: the record, and what the caller does next.
pub struct Ended {
    pub record: Record,
    /// `on-failure = "halt"` and a phase failed: the hook must stop the boot.
    pub halt: bool,
    /// The first failure, for the caller to print with its chain.
    pub error: Option<Failure>,
    /// Dry run: what would be done, one line each.
    pub lines: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{phase} failed")]
pub struct PhaseError {
    pub phase: String,
    #[source]
    pub source: BootError,
}

struct Boot<'a> {
    o: &'a Options<'a>,
    cmd: Cmdline,
    record: Record,
    policy: OnFailure,
    error: Option<Failure>,
    lines: Vec<String>,
    /// The config last loaded, for the fleet reports written when the boot ends.
    config: Option<Config>,
}

impl Boot<'_> {
    /// Runs one phase: times it, logs one line, records it. `None` when it failed.
    fn phase<T>(
        &mut self,
        stage: PhaseStage,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<(T, String), BootError>,
    ) -> Option<T> {
        let t = Instant::now();
        let r = f(self);
        let ms = (t.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
        match r {
            Ok((v, detail)) => {
                tracing::info!("boot: {stage} {name}: ok in {ms} ms; {detail}");
                self.record.phases.push(Phase {
                    stage,
                    phase: name.into(),
                    ms,
                    ok: true,
                    detail,
                });
                Some(v)
            }
            Err(e) => {
                let err = PhaseError {
                    phase: format!("{stage} {name}"),
                    source: e,
                };
                let text = chain(&err);
                tracing::error!("boot: {stage} {name}: failed after {ms} ms: {text}");
                self.record.phases.push(Phase {
                    stage,
                    phase: name.into(),
                    ms,
                    ok: false,
                    detail: chain(&err.source),
                });
                self.record.outcome = Outcome::Failed;
                if self.error.is_none() {
                    // The record keeps the boot's first failure: under boot-old-root the late
                    // stage goes on after an early one failed, and its own failure is a
                    // consequence (or a second problem), not the one to fix first.
                    if self.record.error.is_none() {
                        self.record.error = Some(text);
                    }
                    self.error = Some(err.into());
                }
                None
            }
        }
    }

    fn halting(&self) -> bool {
        self.error.is_some() && self.policy == OnFailure::Halt
    }

    fn backend(&self, config: &Config, sizes: bool) -> Result<Box<dyn Backend>, BootError> {
        Ok(backends::backend(
            config,
            &backends::Ctx {
                root: self.o.root,
                sizes,
                work_dir: self.o.work_dir,
            },
        )?)
    }

    fn load_config(&mut self, stage: PhaseStage) -> Option<Config> {
        let path = self.o.config;
        let config = self.phase(stage, "config", |_| {
            let c = config::load(path)?;
            let d = format!(
                "{} valid ({} backend)",
                path.display(),
                c.root.backend_name()
            );
            Ok((c, d))
        })?;
        if self.cmd.on_failure.is_none() {
            self.policy = config.boot.on_failure;
            self.record.policy = self.policy;
        }
        self.record.backend = Some(config.root.backend_name().into());
        self.config = Some(config.clone());
        Some(config)
    }

    fn early(&mut self) {
        let Some(config) = self.load_config(PhaseStage::Early) else {
            return;
        };
        // For the tests that check a crash still gets the failure policy.
        if crate::failpoint::active() == Some(darlings_backends::Failpoint::BootPanic) {
            panic!("failpoint boot-panic hit");
        }
        if self.cmd.skip {
            self.record.outcome = Outcome::Skipped;
            self.phase(PhaseStage::Early, "skip", |_| {
                Ok((
                    (),
                    "darlings.skip on the kernel command line: no diff, no rollback".into(),
                ))
            });
            return;
        }
        let b = match self.backend(&config, true) {
            Ok(b) => b,
            Err(e) => {
                // A backend this build lacks: its preflight is what cannot run.
                self.phase(PhaseStage::Early, "preflight", |_| {
                    Err::<((), String), _>(e)
                });
                return;
            }
        };
        if b.rollback_at() == RollbackAt::AfterRootMount {
            // A tmpfs root is created after the initrd mounts things: nothing to do yet, and its
            // previous content died with the previous boot (`darlings diff --save` at shutdown
            // is how a tmpfs root gets its report).
            return;
        }
        let preflight = self.phase(PhaseStage::Early, "preflight", |_| {
            let p = b.preflight()?;
            let d = format!("{} check(s): {}", p.checks.len(), p.checks.join("; "));
            Ok(((), d))
        });
        if preflight.is_none() {
            return;
        }
        if self.held(&*b) {
            return;
        }
        let want_diff = self.cmd.diff.unwrap_or(config.diff.on_boot);
        if want_diff && self.diff(&config, &*b).is_none() {
            return;
        }
        let dry = self.o.dry_run;
        let steps = self.phase(PhaseStage::Early, "rollback", |_| {
            let out = b.rollback(&RollbackOpts { dry_run: dry })?;
            let d = if out.already_blank {
                "already blank".to_string()
            } else {
                format!("{} step(s)", out.steps.len())
            };
            Ok((out.steps, d))
        });
        if steps.is_some() && !dry {
            self.record.rolled_back_at = Some(chrono::Utc::now().timestamp());
        }
        if dry {
            if let Some(steps) = steps {
                self.lines
                    .extend(steps.into_iter().map(|s| format!("would: {s}")));
            }
        }
    }

    /// Whether `darlings hold` holds this boot's rollback: its flag is read and consumed (so it
    /// holds once), unless the kernel command line asks for the rollback (`darlings.skip=0`),
    /// which wins and consumes it too. Nothing about the flag may stop the boot: a flag that
    /// cannot be read, or is not one darlings wrote, is logged and the rollback goes on.
    fn held(&mut self, b: &dyn Backend) -> bool {
        let dry_run = self.o.dry_run;
        let state = match b.hold(HoldOp::Take { dry_run }) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "boot: cannot look for a darlings hold: {}; rolling back as usual",
                    chain(&e)
                );
                return false;
            }
        };
        let at = match state {
            HoldState::None => return false,
            HoldState::Bad { why } => {
                tracing::warn!("boot: {why}; rolling back as usual");
                return false;
            }
            HoldState::Held { at } => at,
        };
        if self.cmd.skip_given && !self.cmd.skip {
            tracing::warn!(
                "boot: a darlings hold (asked at {at}) is overridden by darlings.skip=0 on the kernel command line: rolling back"
            );
            return false;
        }
        self.record.outcome = Outcome::Held;
        self.record.held = Some(at.clone());
        self.phase(PhaseStage::Early, "hold", |_| {
            Ok(((), format!("{}; no diff, no rollback", held_line(&at))))
        });
        if dry_run {
            self.lines
                .push(format!("would: skip the rollback, {}", held_line(&at)));
        }
        true
    }

    /// The lost-state diff, classified and kept in the work dir until `late` can reach the store.
    fn diff(&mut self, config: &Config, b: &dyn Backend) -> Option<()> {
        let o = self.o;
        self.phase(PhaseStage::Early, "diff", |s| {
            if config.diff.report_dir.is_none() {
                return Err(
                    "diff on boot needs diff.report-dir (inside a store) to save the report; set it, or boot with darlings.diff=0".into(),
                );
            }
            let limits = DiffLimits {
                max_entries: config.diff.max_entries,
                time_budget: Some(config.diff.time_budget),
            };
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            // The root is not mounted yet: owner names do not matter for classifying paths,
            // and homes come from the config here.
            // Preflight has checked the device and the blank: what fails in the diff comes from
            // what the root holds (or a passing fault), and no content of the root may keep it
            // from being erased. The report says the diff failed; the rollback goes on.
            let report = match report::lost_state(config, b, &Accounts::default(), b"/", &limits) {
                Ok(r) => r,
                Err(report::LostStateError::Plan(e)) => return Err(e.into()),
                Err(report::LostStateError::Diff(e)) => {
                    let why = chain(&e);
                    tracing::error!("boot: the lost-state diff failed: {why}; the rollback goes on, and the report says nothing could be listed");
                    Report::failed(b.name(), b"/", format!("the diff failed: {}", why.replace('\n', " ")))
                }
            };
            let lost = report.tally(Class::Lost);
            let info = ReportInfo {
                path: o.work_dir.join(PENDING_JSON).display().to_string(),
                saved: false,
                stamp,
                lost: lost.entries,
                lost_bytes: lost.bytes,
                persisted: report.tally(Class::Persisted).entries,
                persisted_bytes: report.tally(Class::Persisted).bytes,
                ignored: report.tally(Class::Ignored).entries,
                ignored_bytes: report.tally(Class::Ignored).bytes,
                unlisted: report.unlisted.len() as u64,
                truncated: report.truncated.map(|t| match t {
                    Truncation::MaxEntries(n) => format!("max-entries {n}"),
                    Truncation::TimeBudget(d) => format!("time-budget {d:?}"),
                }),
            };
            let detail = format!(
                "{} lost{}, {} persisted, {} ignored{}{}",
                info.lost,
                bytes_note(info.lost_bytes),
                info.persisted,
                info.ignored,
                unlisted_note(&report),
                info.truncated
                    .as_ref()
                    .map(|t| format!("; stopped early at its {t}, the report says so"))
                    .unwrap_or_default()
            );
            if let Some(t) = &info.truncated {
                tracing::warn!("boot: the lost-state diff stopped at its {t}; the report lists what it found");
            }
            if o.dry_run {
                s.lines.push(format!("diff: {detail}"));
            } else {
                let mut json = Vec::new();
                report.write_json(&mut json)?;
                write_private(&o.work_dir.join(PENDING_JSON), &json)?;
                write_private(
                    &o.work_dir.join(PENDING_TXT),
                    report
                        .to_text_saved(report::store::REPORT_LINES, report::store::SAVED_AT_BOOT)
                        .as_bytes(),
                )?;
                s.record.report = Some(info);
            }
            report.forget();
            Ok(((), detail))
        })
    }

    fn late(&mut self, mount_root: bool) {
        let Some(config) = self.load_config(PhaseStage::Late) else {
            return;
        };
        let dry = self.o.dry_run;
        // Under darlings.skip the backend is not asked anything: the escape hatch must work
        // even with a binary that lacks it.
        let backend = if self.cmd.skip {
            None
        } else {
            match self.backend(&config, false) {
                Ok(b) => Some(b),
                Err(e) => {
                    // A backend this build lacks (early failed on it already, if it ran):
                    // without it the fresh root cannot be mounted, which ends the stage like a
                    // failed mount; otherwise the stores are still bound under boot-old-root.
                    let phase = if mount_root { "mount" } else { "backend" };
                    self.phase(PhaseStage::Late, phase, |_| Err::<((), String), _>(e));
                    if mount_root || self.halting() {
                        return;
                    }
                    None
                }
            }
        };
        let late_rollback = backend
            .as_ref()
            .is_some_and(|b| b.rollback_at() == RollbackAt::AfterRootMount);
        if let Some(b) = backend.as_ref().filter(|_| mount_root && !late_rollback) {
            let root = self.o.root;
            let done = self.phase(PhaseStage::Late, "mount", |_| {
                Ok(((), mount_new_root(b.fresh_root_mount(), root, dry)?))
            });
            if done.is_none() {
                return;
            }
        }
        if let Some(b) = backend.as_ref().filter(|_| late_rollback) {
            let steps = self.phase(PhaseStage::Late, "rollback", |_| {
                // The tmpfs rollback inspects the root before it acts and refuses what it will
                // not touch: a separate preflight would read the same state twice.
                let out = b.rollback(&RollbackOpts { dry_run: dry })?;
                let d = out.steps.join("; ");
                Ok((out.steps, d))
            });
            match steps {
                Some(steps) if dry => self
                    .lines
                    .extend(steps.into_iter().map(|s| format!("would: {s}"))),
                Some(_) => self.record.rolled_back_at = Some(chrono::Utc::now().timestamp()),
                None if self.halting() => return,
                None => {}
            }
        }
        if self.cmd.skip && self.record.outcome != Outcome::Failed {
            self.record.outcome = Outcome::Skipped;
        }
        let (root, utab) = (self.o.root, self.o.utab);
        let out = self.phase(PhaseStage::Late, "apply", |_| {
            let acc = owners::read_accounts(root)?;
            let p = plan::build(&config, &acc)?;
            let mut out = apply::apply(&p, root, apply::Options { dry_run: dry })?;
            if !dry && !out.marked.is_empty() {
                // The booted system sees these mounts without the root prefix; the mount ids
                // (what newer libmount matches on) survive the switch to the new root.
                let prefix = root.as_os_str().as_encoded_bytes();
                let prefix = prefix.strip_suffix(b"/").unwrap_or(prefix);
                for m in &mut out.marked {
                    if let Some(rest) = m.target.strip_prefix(prefix) {
                        m.target = if rest.is_empty() {
                            b"/".to_vec()
                        } else {
                            rest.to_vec()
                        };
                    }
                }
                apply::record_marked(utab, Path::new("/proc/self/mountinfo"), &out.marked)?;
            }
            let d = format!(
                "{} bound, {} already in place, {} deferred",
                out.bound, out.already, out.deferred
            );
            Ok((out.actions, d))
        });
        if dry {
            if let Some(actions) = out {
                self.lines.extend(actions);
            }
        }
        // The report goes in after the binds, whatever apply did: its directory usually lies
        // inside a persisted one (/persist/var/log/darlings under /var/log), and written first
        // it would create that directory in the store, so that a seed-from-blank entry there
        // found the store "already has it" and bound an empty copy over the blank's content.
        if self.record.report.as_ref().is_some_and(|r| !r.saved) && !dry {
            let saved = self.phase(PhaseStage::Late, "report", |s| {
                let path = save_pending(&config, s.o.root, s.o.work_dir, s.record.report.as_ref())?;
                Ok((path.clone(), path))
            });
            if let Some(path) = saved {
                if let Some(r) = self.record.report.as_mut() {
                    r.path = path;
                    r.saved = true;
                }
            }
        }
    }

    fn save_record(&self) {
        if self.o.dry_run {
            return;
        }
        let dir = self.o.work_dir;
        let r = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let json = serde_json::to_vec_pretty(&self.record)?;
            write_private(&dir.join(RECORD), &json)?;
            match &self.record.error {
                Some(e) => write_private(&dir.join(FAILED), format!("{e}\n").as_bytes()),
                None => match std::fs::remove_file(dir.join(FAILED)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                },
            }
        })();
        if let Err(e) = r {
            // The boot itself must not fail for its diary; kmsg still has every phase line.
            tracing::error!(
                "boot: cannot write the boot record in {}: {e}; `darlings status` will not know this boot",
                dir.display()
            );
        }
    }
}

/// Writes `path` atomically with mode 0600 (a temporary in the same directory, then rename),
/// replacing what is there. The work dir is in /run, gone at shutdown: no fsync.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or(path.as_os_str());
    let dirfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| std::io::Error::new(e.kind(), format!("cannot open {}: {e}", dir.display())))?;
    let opts = darlings_backends::beneath::Atomic {
        mode: 0o600,
        fsync: false,
        replace: true,
    };
    darlings_backends::beneath::write_atomic(dirfd.as_fd(), name, data, opts)
        .map_err(|e| std::io::Error::new(e.source.kind(), format!("{} in {}", e, dir.display())))
}

/// Moves the pending report from the work dir into the store's report dir beneath `root`.
fn save_pending(
    config: &Config,
    root: &Path,
    work_dir: &Path,
    info: Option<&ReportInfo>,
) -> Result<String, BootError> {
    let stamp = info.map(|i| i.stamp.clone()).unwrap_or_default();
    let json = std::fs::read(work_dir.join(PENDING_JSON)).map_err(|e| {
        format!(
            "cannot read the pending report {}: {e}",
            work_dir.join(PENDING_JSON).display()
        )
    })?;
    let text = std::fs::read(work_dir.join(PENDING_TXT)).unwrap_or_default();
    let path = report::store::save(config, root, &stamp, &json, &text)?;
    for f in [PENDING_JSON, PENDING_TXT] {
        let _ = std::fs::remove_file(work_dir.join(f));
    }
    Ok(path)
}

fn is_mount_root(path: &Path) -> Result<bool, BootError> {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .map_err(|e| format!("cannot stat root {}: {e}", path.display()))?;
    if !st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Err(format!(
            "the kernel does not say whether {} is a mount point (statx without STATX_ATTR_MOUNT_ROOT, Linux < 5.8)",
            path.display()
        )
        .into());
    }
    Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

/// `all` stage: the initrd has not mounted the root, so darlings mounts the fresh one, as its
/// backend says (`None`: its rollback mounts it).
fn mount_new_root(
    spec: Option<MountSpec>,
    root: &Path,
    dry_run: bool,
) -> Result<String, BootError> {
    if is_mount_root(root)? {
        return Ok(format!("{} is mounted already", root.display()));
    }
    let Some(MountSpec {
        source,
        fstype,
        data,
    }) = spec
    else {
        return Ok("the rollback mounts the root".into());
    };
    // Shown lossily, mounted as the backend's bytes.
    let what = format!(
        "mount {} ({fstype}{}) at {}",
        source.display(),
        if data.is_empty() {
            String::new()
        } else {
            format!(", {}", String::from_utf8_lossy(&data))
        },
        root.display()
    );
    if dry_run {
        return Ok(format!("would {what}"));
    }
    let data = std::ffi::CString::new(data).map_err(|_| "mount options hold a NUL byte")?;
    rustix::mount::mount(
        source.as_path(),
        root,
        fstype,
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| format!("cannot {what}: {e}; mount the root there yourself and run `darlings boot --stage late`"))?;
    Ok(what)
}

/// Runs the stage(s). Never panics on a failure: it is recorded, logged, and returned.
pub fn run(o: &Options) -> Ended {
    let cmd = cmdline::parse(o.cmdline);
    for w in &cmd.warnings {
        tracing::warn!("boot: {w}");
    }
    let policy = cmd.on_failure.unwrap_or_default();
    // A second darlings on this work dir (another boot unit, a manual rollback) must not act
    // beside this one, nor write over its record.
    let _lock = if o.dry_run {
        None
    } else {
        match crate::lock::acquire(o.work_dir, "boot") {
            Ok(l) => Some(l),
            Err(e) => return locked_out(o, &cmd, e),
        }
    };
    let mut record = Record::new(policy, &cmd);
    if o.stage == Stage::Late && !o.dry_run {
        // Carry on the record `early` left in this boot's work dir.
        match record::read_early(o.work_dir) {
            Early::None => {}
            Early::Read(prev) => {
                record = *prev;
                record.cmdline = cmd.seen.clone();
            }
            Early::Unreadable { why, failed } => {
                // Starting afresh would write a clean record and remove the failure marker, and
                // the early stage's failure would vanish from `darlings status` and the fleet.
                tracing::error!(
                    "boot: the early stage's record is unreadable: {why}; {}",
                    match &failed {
                        Some(_) => "keeping its failure marker",
                        None => "it left no failure marker, so this record starts afresh",
                    }
                );
                if let Some(m) = failed {
                    record.outcome = Outcome::Failed;
                    record.error = Some(m);
                }
            }
        }
    }
    let prev_error = record.error.clone();
    let mut b = Boot {
        o,
        cmd,
        record,
        policy,
        error: None,
        lines: Vec::new(),
        config: None,
    };
    if let Some(p) = b.cmd.on_failure {
        b.record.policy = p;
    }
    // A panic is a bug, but it must still get the policy the user chose: the hooks stop the
    // boot on exit status 1 only, so a crash that escaped would either stop a fail-open boot
    // or let a strict one go on. The backends' protocols leave a valid root at every step.
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if matches!(o.stage, Stage::Early | Stage::All) {
            b.early();
            b.save_record();
        }
        if matches!(o.stage, Stage::Late | Stage::All) && !b.halting() {
            b.late(o.stage == Stage::All);
            b.save_record();
        }
    }));
    if let Err(panic) = done {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let failure = Failure::Panic(what);
        let text = failure.to_string();
        tracing::error!("boot: {text}");
        b.record.outcome = Outcome::Failed;
        if b.error.is_none() {
            if b.record.error.is_none() {
                b.record.error = Some(text);
            }
            b.error = Some(failure);
        }
        b.save_record();
    }
    if b.error.is_none() {
        if let Some(prev) = prev_error {
            // `early` failed under boot-old-root: late went on, but the boot did not go clean.
            b.record.error = Some(prev);
            b.record.outcome = Outcome::Failed;
        }
    }
    let halt = b.halting();
    if halt {
        tracing::error!("boot: on-failure = \"halt\": stopping the boot; boot with darlings.skip or darlings.on-failure=boot-old-root to get past it");
    } else if b.error.is_some() {
        tracing::error!(
            "boot: on-failure = \"boot-old-root\": nothing more is changed; the boot goes on (marker {})",
            o.work_dir.join(FAILED).display()
        );
    }
    // The boot's end as the fleet sees it: after the late stage (the root is mounted, the
    // record final), or after an early stage that stops the boot.
    let ended = matches!(o.stage, Stage::Late | Stage::All) || halt;
    if ended && !o.dry_run {
        crate::fleet::after_boot(
            b.config.as_ref(),
            o.root,
            o.journal_socket,
            &b.record,
            o.stage != Stage::Early,
        );
    }
    Ended {
        record: b.record,
        halt,
        error: b.error,
        lines: b.lines,
    }
}

/// "; 2 subtree(s) not listed, first /tmp/deep/… (path too long …)", or nothing.
fn unlisted_note(report: &Report) -> String {
    let Some(first) = report.unlisted.first() else {
        return String::new();
    };
    format!(
        "; {} subtree(s) not listed, first {} ({})",
        report.unlisted.len(),
        crate::show::Long(&first.unlisted.path),
        first.unlisted.reason
    )
}

/// The boot when another darlings holds the work dir's lock: nothing is done or written, and
/// the failure follows the policy (the command line's, else the config's).
fn locked_out(o: &Options, cmd: &Cmdline, e: crate::lock::LockError) -> Ended {
    let policy = cmd.on_failure.unwrap_or_else(|| {
        config::load(o.config)
            .map(|c| c.boot.on_failure)
            .unwrap_or_default()
    });
    let mut record = Record::new(policy, cmd);
    let text = chain(&e);
    tracing::error!("boot: {text}; this boot changes nothing");
    record.outcome = Outcome::Failed;
    record.phases.push(Phase {
        stage: PhaseStage::Boot,
        phase: "lock".into(),
        ms: 0.0,
        ok: false,
        detail: text.clone(),
    });
    record.error = Some(text);
    Ended {
        record,
        halt: policy == OnFailure::Halt,
        error: Some(e.into()),
        lines: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run_with(config: &Path, work: &Path, root: &Path, stage: Stage, cmdline: &str) -> Ended {
        run(&Options {
            config,
            work_dir: work,
            root,
            stage,
            cmdline: cmdline.as_bytes(),
            dry_run: false,
            utab: Path::new("/nonexistent/utab"),
            journal_socket: Path::new("/nonexistent/journal/socket"),
        })
    }

    /// A btrfs config whose device is missing: every early stage fails at its preflight.
    const MISSING_DEVICE: &str =
        "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/darlings-test-missing\"\n";

    /// A test's directory: its config, the work dir, and an empty root beside them.
    struct Scratch {
        _d: tempfile::TempDir,
        cfg: PathBuf,
        work: PathBuf,
        root: PathBuf,
    }

    impl Scratch {
        fn new(config: &str) -> Scratch {
            let d = tempfile::tempdir().unwrap();
            let cfg = write(d.path(), "c.toml", config);
            let (work, root) = (d.path().join("work"), d.path().join("root"));
            std::fs::create_dir(&root).unwrap();
            Scratch {
                _d: d,
                cfg,
                work,
                root,
            }
        }

        fn run(&self, stage: Stage, cmdline: &str) -> Ended {
            run_with(&self.cfg, &self.work, &self.root, stage, cmdline)
        }
    }

    #[test]
    fn invalid_config_fails_open_by_default_and_leaves_the_marker() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(d.path(), "c.toml", "[root]\nbackend = \"ext4\"\n");
        let work = d.path().join("work");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "quiet");
        assert!(!out.halt);
        assert_eq!(out.record.outcome, Outcome::Failed);
        assert_eq!(out.record.phases.len(), 1);
        assert!(!out.record.phases[0].ok);
        let marker = std::fs::read_to_string(work.join(FAILED)).unwrap();
        assert!(marker.contains("early config failed"), "{marker}");
        assert!(marker.contains("unknown backend \"ext4\""), "{marker}");
        let rec: Record =
            serde_json::from_slice(&std::fs::read(work.join(RECORD)).unwrap()).unwrap();
        assert_eq!(rec, out.record);
    }

    #[test]
    fn a_boot_whose_config_fails_still_reaches_the_journal() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(d.path(), "c.toml", "[root]\nbackend = \"ext4\"\n");
        let sock = d.path().join("journal.socket");
        let server = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        server.set_nonblocking(true).unwrap();
        let out = run(&Options {
            config: &cfg,
            work_dir: &d.path().join("work"),
            root: d.path(),
            stage: Stage::Late,
            cmdline: b"",
            dry_run: false,
            utab: Path::new("/nonexistent/utab"),
            journal_socket: &sock,
        });
        assert_eq!(out.record.outcome, Outcome::Failed);
        let mut buf = vec![0; 65536];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.contains(&format!("MESSAGE_ID={}\n", crate::journal::MESSAGE_BOOT)),
            "{text}"
        );
        assert!(text.contains("DARLINGS_OUTCOME=failed\n"), "{text}");
        assert!(
            text.contains("DARLINGS_FAILED_PHASE=late config\n"),
            "{text}"
        );
        assert!(text.contains("unknown backend \"ext4\""), "{text}");
        // One entry: no lost-state summary without a diff.
        assert!(server.recv(&mut buf).is_err());
    }

    #[test]
    fn kernel_command_line_halt_wins_over_the_config() {
        let x = Scratch::new(&format!(
            "{MISSING_DEVICE}[boot]\non-failure = \"boot-old-root\"\n"
        ));
        let out = x.run(Stage::Early, "darlings.on-failure=halt");
        assert!(out.halt);
        assert_eq!(out.record.policy, OnFailure::Halt);
        assert_eq!(out.record.phases[1].phase, "preflight");
        assert!(!out.record.phases[1].ok);
        // And the config's halt is overridden the other way too.
        let x = Scratch::new(&format!("{MISSING_DEVICE}[boot]\non-failure = \"halt\"\n"));
        assert!(x.run(Stage::Early, "").halt);
        let out = x.run(Stage::Early, "darlings.on-failure=boot-old-root");
        assert!(!out.halt);
        assert_eq!(out.record.outcome, Outcome::Failed);
    }

    #[test]
    fn late_failure_keeps_the_early_failure_in_the_record() {
        let x = Scratch::new(&format!(
            "{MISSING_DEVICE}[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n"
        ));
        let work = &x.work;
        let early = x.run(Stage::Early, "");
        assert!(!early.halt);
        let first = early.record.error.clone().unwrap();
        assert!(first.starts_with("early preflight failed"), "{first}");
        // No store is mounted beneath the root: the late apply fails too, after the early one.
        let late = x.run(Stage::Late, "");
        assert!(!late.halt);
        assert!(late.error.is_some(), "{:?}", late.record);
        let apply = late
            .record
            .phases
            .iter()
            .find(|p| p.phase == "apply")
            .unwrap();
        assert!(!apply.ok, "{:?}", late.record);
        assert_eq!(late.record.outcome, Outcome::Failed);
        assert_eq!(late.record.error.as_deref(), Some(first.as_str()));
        let marker = std::fs::read_to_string(work.join(FAILED)).unwrap();
        assert_eq!(marker, format!("{first}\n"));
        let rec: Record =
            serde_json::from_slice(&std::fs::read(work.join(RECORD)).unwrap()).unwrap();
        assert_eq!(rec.error.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn an_unreadable_early_record_keeps_its_failure_marker() {
        let x = Scratch::new(MISSING_DEVICE);
        let work = &x.work;
        std::fs::create_dir_all(work).unwrap();
        // A torn write of early's record, with the marker early left beside it.
        std::fs::write(work.join(RECORD), b"{\"schema\": \"darlings.bo").unwrap();
        std::fs::write(
            work.join(FAILED),
            b"early rollback failed\n  caused by: x\n",
        )
        .unwrap();
        // The root is a plain directory, so late's apply fails too: the record keeps the first.
        let late = x.run(Stage::Late, "");
        assert_eq!(late.record.outcome, Outcome::Failed);
        assert_eq!(
            late.record.error.as_deref(),
            Some("early rollback failed\n  caused by: x")
        );
        let marker = std::fs::read_to_string(work.join(FAILED)).unwrap();
        assert!(marker.starts_with("early rollback failed"), "{marker}");
        // Without a marker there is no failure to keep: late's own record stands.
        std::fs::write(work.join(RECORD), b"not json").unwrap();
        std::fs::remove_file(work.join(FAILED)).unwrap();
        let late = x.run(Stage::Late, "");
        let err = late.record.error.clone().unwrap();
        assert!(err.starts_with("late apply failed"), "{err}");
        let rec: Record =
            serde_json::from_slice(&std::fs::read(work.join(RECORD)).unwrap()).unwrap();
        assert_eq!(rec.error.as_deref(), Some(err.as_str()));
    }

    #[test]
    fn the_record_json_keeps_its_strings() {
        let mut r = Record::new(OnFailure::Halt, &cmdline::parse(b""));
        r.outcome = Outcome::Held;
        r.phases.push(Phase {
            stage: PhaseStage::Boot,
            phase: "lock".into(),
            ms: 0.0,
            ok: false,
            detail: String::new(),
        });
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], "held");
        assert_eq!(v["policy"], "halt");
        assert_eq!(v["phases"][0]["stage"], "boot");
        for (o, s) in Outcome::ALL.iter().zip(["ok", "failed", "skipped", "held"]) {
            assert_eq!(serde_json::to_value(o).unwrap(), s);
            assert_eq!(o.as_str(), s);
        }
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let v = serde_json::json!({"schema": SCHEMA, "outcome": "ok", "policy": "boot-old-root",
            "backend": null, "cmdline": [], "phases": [], "error": null, "report": null});
        let old: Record = serde_json::from_value(v).unwrap();
        assert_eq!(old.policy, OnFailure::BootOldRoot);
    }

    #[test]
    fn skip_touches_nothing_and_says_so() {
        let x = Scratch::new(MISSING_DEVICE);
        let out = x.run(Stage::Early, "darlings.skip");
        assert!(out.error.is_none(), "{:?}", out.record);
        assert_eq!(out.record.outcome, Outcome::Skipped);
        let phases: Vec<&str> = out.record.phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(phases, ["config", "skip"]);
        assert_eq!(out.record.cmdline, ["darlings.skip"]);
        assert!(!x.work.join(FAILED).exists());
    }

    /// The fake backend's world in `d`: a blank with one file, a root that changed it and added
    /// more (some under a persisted directory), and a config naming both.
    fn fake(d: &Path, root_extra: &str, rest: &str) -> (PathBuf, PathBuf, PathBuf) {
        let (root, blank) = (d.join("root"), d.join("blank"));
        for (dir, files) in [
            (&blank, &[("etc/hostname", "blank\n")][..]),
            (
                &root,
                &[
                    ("etc/hostname", "changed\n"),
                    ("tmp/junk", "lost\n"),
                    ("var/lib/keep/data", "kept\n"),
                ][..],
            ),
        ] {
            for (name, text) in files {
                let p = dir.join(name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, text).unwrap();
            }
        }
        let cfg = write(
            d,
            "c.toml",
            &format!(
                "[root]\nbackend = \"fake\"\nfake-root = \"{}\"\nfake-blank = \"{}\"\n{root_extra}\n\
                 [[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n{rest}",
                root.display(),
                blank.display()
            ),
        );
        (cfg, root, blank)
    }

    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                if p.is_dir() {
                    out.push((rel, String::new()));
                    stack.push(p);
                } else {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn phases(o: &Ended) -> Vec<(&str, bool)> {
        o.record
            .phases
            .iter()
            .map(|p| (p.phase.as_str(), p.ok))
            .collect()
    }

    #[test]
    fn early_runs_preflight_diff_and_rollback_on_the_fake_backend() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, root, blank) = fake(
            d.path(),
            "",
            "[diff]\non-boot = true\nreport-dir = \"/persist/var/log/darlings\"\n",
        );
        let work = d.path().join("work");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "");
        assert!(out.error.is_none(), "{:?}", out.record);
        assert_eq!(out.record.outcome, Outcome::Ok);
        assert_eq!(out.record.backend.as_deref(), Some("fake"));
        assert_eq!(
            phases(&out),
            [
                ("config", true),
                ("preflight", true),
                ("diff", true),
                ("rollback", true)
            ]
        );
        assert!(out.record.rolled_back_at.is_some());
        // The diff ran before the rollback: it saw what the root had, now pending in the work
        // dir for the late stage to save in the store.
        let info = out.record.report.clone().unwrap();
        assert!(!info.saved);
        assert_eq!(info.path, work.join(PENDING_JSON).display().to_string());
        assert!(info.lost >= 2, "{info:?}");
        assert!(info.persisted >= 1, "{info:?}");
        let json = std::fs::read_to_string(work.join(PENDING_JSON)).unwrap();
        assert!(json.contains("/tmp/junk"), "{json}");
        let text = std::fs::read_to_string(work.join(PENDING_TXT)).unwrap();
        assert!(text.contains(report::store::SAVED_AT_BOOT), "{text}");
        // Rolled back: the root is the blank again.
        assert_eq!(tree(&root), tree(&blank));
        let rec: Record =
            serde_json::from_slice(&std::fs::read(work.join(RECORD)).unwrap()).unwrap();
        assert_eq!(rec, out.record);
        assert!(!work.join(FAILED).exists());
    }

    #[test]
    fn a_dry_run_early_stage_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, root, _) = fake(
            d.path(),
            "",
            "[diff]\non-boot = true\nreport-dir = \"/persist/var/log/darlings\"\n",
        );
        let before = tree(&root);
        let work = d.path().join("work");
        let out = run(&Options {
            config: &cfg,
            work_dir: &work,
            root: d.path(),
            stage: Stage::Early,
            cmdline: b"",
            dry_run: true,
            utab: Path::new("/nonexistent/utab"),
            journal_socket: Path::new("/nonexistent/journal/socket"),
        });
        assert!(out.error.is_none(), "{:?}", out.record);
        assert!(
            out.lines
                .iter()
                .any(|l| l == &format!("would: empty {}", root.display())),
            "{:?}",
            out.lines
        );
        assert!(
            out.lines.iter().any(|l| l.starts_with("diff: ")),
            "{:?}",
            out.lines
        );
        assert_eq!(out.record.rolled_back_at, None);
        assert_eq!(tree(&root), before);
        // No record, no pending report, not even the work dir.
        assert!(!work.exists());
    }

    #[test]
    fn a_failing_rollback_boots_the_old_root_or_halts() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, root, _) = fake(d.path(), "fake-fail-rollback = true", "");
        let before = tree(&root);
        let work = d.path().join("work");
        for (cmdline, halt) in [("", false), ("darlings.on-failure=halt", true)] {
            let out = run_with(&cfg, &work, d.path(), Stage::Early, cmdline);
            assert_eq!(out.halt, halt, "{cmdline}");
            assert_eq!(out.record.outcome, Outcome::Failed);
            assert_eq!(
                phases(&out),
                [("config", true), ("preflight", true), ("rollback", false)]
            );
            assert_eq!(out.record.rolled_back_at, None);
            assert_eq!(going_on_with(&out.record), "booting the untouched root");
            let marker = std::fs::read_to_string(work.join(FAILED)).unwrap();
            assert!(marker.starts_with("early rollback failed"), "{marker}");
            assert!(marker.contains("fake-fail-rollback"), "{marker}");
            assert_eq!(tree(&root), before);
        }
        // Under boot-old-root the late stage goes on and binds; under halt it never runs.
        let cfg_halt = write(
            d.path(),
            "halt.toml",
            &(std::fs::read_to_string(&cfg).unwrap() + "[boot]\non-failure = \"halt\"\n"),
        );
        let out = run_with(&cfg_halt, &work, d.path(), Stage::All, "");
        assert!(out.halt);
        assert!(out
            .record
            .phases
            .iter()
            .all(|p| p.stage == PhaseStage::Early));
    }

    #[test]
    fn a_hold_skips_one_rollback_and_is_consumed() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, root, blank) = fake(d.path(), "", "");
        let before = tree(&root);
        let flag = PathBuf::from(format!("{}.hold", root.display()));
        std::fs::write(&flag, "2026-12-01T00:00:00Z\n").unwrap();
        let work = d.path().join("work");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "");
        assert!(out.error.is_none(), "{:?}", out.record);
        assert_eq!(out.record.outcome, Outcome::Held);
        assert_eq!(out.record.held.as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            phases(&out),
            [("config", true), ("preflight", true), ("hold", true)]
        );
        assert_eq!(out.record.rolled_back_at, None);
        assert_eq!(tree(&root), before);
        assert!(!flag.exists(), "a hold holds once");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "");
        assert_eq!(out.record.outcome, Outcome::Ok);
        assert_eq!(out.record.held, None);
        assert!(out.record.rolled_back_at.is_some());
        assert_eq!(tree(&root), tree(&blank));
    }
}
