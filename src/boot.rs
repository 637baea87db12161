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
use serde::{Deserialize, Serialize};

use crate::cmdline::{self, Cmdline};
use crate::config::{Config, OnFailure};
use crate::owners::Accounts;
use crate::report::{Class, Classifier, Report};
use crate::{apply, backends, config, owners, plan, report, reports};

pub const SCHEMA: &str = "darlings.boot/1";
pub const RECORD: &str = "boot.json";
pub const FAILED: &str = "failed";
const PENDING_JSON: &str = "report-pending.json";
const PENDING_TXT: &str = "report-pending.txt";
/// Lines of lost groups in the saved text report: more than a terminal's 40, still readable.
const REPORT_LINES: usize = 100;
/// The saved text reports' heading of the lost entries: read after the fact.
const SAVED_AT_BOOT: &str = "lost at the rollback of the boot that saved this report";
const SAVED_AT_SHUTDOWN: &str = "lost at the shutdown that saved this report (a tmpfs root)";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Before the initrd mounts the root: preflight, diff, rollback (btrfs, zfs).
    Early,
    /// After the root and its stores are mounted at --root: tmpfs root, report, apply.
    Late,
    /// Both, mounting the new root at --root when nothing is mounted there.
    All,
}

/// The record of this boot, `WORK_DIR/boot.json` (schema `darlings.boot/1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub schema: String,
    /// "ok", "failed", "skipped" (darlings.skip: nothing rolled back) or "held" (`darlings
    /// hold` asked this boot to skip its rollback).
    pub outcome: String,
    pub policy: String,
    pub backend: Option<String>,
    /// The `darlings.*` kernel parameters seen.
    pub cmdline: Vec<String>,
    pub phases: Vec<Phase>,
    /// The first failure: its message and causes, one per line.
    pub error: Option<String>,
    pub report: Option<ReportInfo>,
    /// When `darlings hold` asked for this boot to skip its rollback, if it did and the hold
    /// was honoured (outcome "held").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// Unix time at which this boot's rollback succeeded (`report.prometheus` carries it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    pub stage: String,
    pub phase: String,
    pub ms: f64,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportInfo {
    /// Where the report is: the store path as the booted system sees it once saved, the
    /// pending file in the work dir before.
    pub path: String,
    pub saved: bool,
    /// UTC time of the diff, `YYYYMMDDTHHMMSSZ`: the saved file's name.
    pub stamp: String,
    pub lost: u64,
    pub lost_bytes: u64,
    pub persisted: u64,
    #[serde(default)]
    pub persisted_bytes: u64,
    pub ignored: u64,
    #[serde(default)]
    pub ignored_bytes: u64,
    /// Subtrees the diff could not list (paths past PATH_MAX, unreadable directories, or the
    /// whole root when the diff failed); the report names each and why.
    #[serde(default)]
    pub unlisted: u64,
    /// Why the diff stopped early, if it did ("max-entries 100000", "time-budget 10s").
    pub truncated: Option<String>,
}

impl Record {
    fn new(policy: OnFailure, cmd: &Cmdline) -> Record {
        Record {
            schema: SCHEMA.into(),
            outcome: "ok".into(),
            policy: policy.as_str().into(),
            backend: None,
            cmdline: cmd.seen.clone(),
            phases: Vec::new(),
            error: None,
            report: None,
            held: None,
            rolled_back_at: None,
        }
    }
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

pub struct Outcome {
    pub record: Record,
    /// `on-failure = "halt"` and a phase failed: the hook must stop the boot.
    pub halt: bool,
    /// The first failure, for the caller to print with its chain.
    pub error: Option<BoxError>,
    /// Dry run: what would be done, one line each.
    pub lines: Vec<String>,
}

/// The whole chain of an error, one line per cause.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}

#[derive(Debug, thiserror::Error)]
#[error("{phase} failed")]
pub struct PhaseError {
    pub phase: String,
    #[source]
    pub source: BoxError,
}

struct Boot<'a> {
    o: &'a Options<'a>,
    cmd: Cmdline,
    record: Record,
    policy: OnFailure,
    error: Option<BoxError>,
    lines: Vec<String>,
    /// The config last loaded, for the fleet reports written when the boot ends.
    config: Option<Config>,
}

impl Boot<'_> {
    /// Runs one phase: times it, logs one line, records it. `None` when it failed.
    fn phase<T>(
        &mut self,
        stage: &str,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<(T, String), BoxError>,
    ) -> Option<T> {
        let t = Instant::now();
        let r = f(self);
        let ms = (t.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
        match r {
            Ok((v, detail)) => {
                tracing::info!("boot: {stage} {name}: ok in {ms} ms; {detail}");
                self.record.phases.push(Phase {
                    stage: stage.into(),
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
                    stage: stage.into(),
                    phase: name.into(),
                    ms,
                    ok: false,
                    detail: chain(&*err.source),
                });
                self.record.outcome = "failed".into();
                if self.error.is_none() {
                    // The record keeps the boot's first failure: under boot-old-root the late
                    // stage goes on after an early one failed, and its own failure is a
                    // consequence (or a second problem), not the one to fix first.
                    if self.record.error.is_none() {
                        self.record.error = Some(text);
                    }
                    self.error = Some(Box::new(err));
                }
                None
            }
        }
    }

    fn halting(&self) -> bool {
        self.error.is_some() && self.policy == OnFailure::Halt
    }

    fn backend(&self, config: &Config, sizes: bool) -> Result<Box<dyn Backend>, BoxError> {
        Ok(backends::backend(
            config,
            &backends::Ctx {
                root: self.o.root,
                sizes,
                work_dir: self.o.work_dir,
            },
        )?)
    }

    fn load_config(&mut self, stage: &str) -> Option<Config> {
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
            self.record.policy = self.policy.as_str().into();
        }
        self.record.backend = Some(config.root.backend_name().into());
        self.config = Some(config.clone());
        Some(config)
    }

    fn early(&mut self) {
        let Some(config) = self.load_config("early") else {
            return;
        };
        // For the tests that check a crash still gets the failure policy.
        if crate::failpoint::active() == Some(darlings_backends::Failpoint::BootPanic) {
            panic!("failpoint boot-panic hit");
        }
        if self.cmd.skip {
            self.record.outcome = "skipped".into();
            self.phase("early", "skip", |_| {
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
                self.phase("early", "preflight", |_| Err::<((), String), _>(e));
                return;
            }
        };
        if b.rollback_at() == RollbackAt::AfterRootMount {
            // A tmpfs root is created after the initrd mounts things: nothing to do yet, and its
            // previous content died with the previous boot (`darlings diff --save` at shutdown
            // is how a tmpfs root gets its report).
            return;
        }
        let preflight = self.phase("early", "preflight", |_| {
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
        let steps = self.phase("early", "rollback", |_| {
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
        self.record.outcome = "held".into();
        self.record.held = Some(at.clone());
        self.phase("early", "hold", |_| {
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
        self.phase("early", "diff", |s| {
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
            let p = plan::build(config, &Accounts::default())?;
            let classifier = Classifier::of_plan(config, &p);
            // Preflight has checked the device and the blank: what fails now comes from what
            // the root holds (or a passing fault), and no content of the root may keep it from
            // being erased. The report says the diff failed; the rollback goes on.
            let report = match report::lost_state(b, b"/", &limits, &classifier) {
                Ok(r) => r,
                Err(e) => {
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
                        .to_text_saved(REPORT_LINES, SAVED_AT_BOOT)
                        .as_bytes(),
                )?;
                s.record.report = Some(info);
            }
            // One allocation per entry: the process is short-lived, leave it to the kernel.
            std::mem::forget(report);
            Ok(((), detail))
        })
    }

    fn late(&mut self, mount_root: bool) {
        let Some(config) = self.load_config("late") else {
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
                    self.phase("late", phase, |_| Err::<((), String), _>(e));
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
            let done = self.phase("late", "mount", |_| {
                Ok(((), mount_new_root(b.fresh_root_mount(), root, dry)?))
            });
            if done.is_none() {
                return;
            }
        }
        if let Some(b) = backend.as_ref().filter(|_| late_rollback) {
            let steps = self.phase("late", "rollback", |_| {
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
        if self.cmd.skip && self.record.outcome != "failed" {
            self.record.outcome = "skipped".into();
        }
        let (root, utab) = (self.o.root, self.o.utab);
        let out = self.phase("late", "apply", |_| {
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
            let saved = self.phase("late", "report", |s| {
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
) -> Result<String, BoxError> {
    let stamp = info.map(|i| i.stamp.clone()).unwrap_or_default();
    let json = std::fs::read(work_dir.join(PENDING_JSON)).map_err(|e| {
        format!(
            "cannot read the pending report {}: {e}",
            work_dir.join(PENDING_JSON).display()
        )
    })?;
    let text = std::fs::read(work_dir.join(PENDING_TXT)).unwrap_or_default();
    let path = reports::save(config, root, &stamp, &json, &text)?;
    for f in [PENDING_JSON, PENDING_TXT] {
        let _ = std::fs::remove_file(work_dir.join(f));
    }
    Ok(path)
}

/// `darlings diff --save`: the report of a live root (a tmpfs root at shutdown) into the store.
pub fn save_report(config: &Config, root: &Path, report: &Report) -> Result<String, BoxError> {
    let mut json = Vec::new();
    report.write_json(&mut json)?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    Ok(reports::save(
        config,
        root,
        &stamp,
        &json,
        report
            .to_text_saved(REPORT_LINES, SAVED_AT_SHUTDOWN)
            .as_bytes(),
    )?)
}

fn is_mount_root(path: &Path) -> Result<bool, BoxError> {
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
fn mount_new_root(spec: Option<MountSpec>, root: &Path, dry_run: bool) -> Result<String, BoxError> {
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
    let data = String::from_utf8_lossy(&data).into_owned();
    let what = format!(
        "mount {} ({fstype}{}) at {}",
        source.display(),
        if data.is_empty() {
            String::new()
        } else {
            format!(", {data}")
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
pub fn run(o: &Options) -> Outcome {
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
        if let Ok(bytes) = std::fs::read(o.work_dir.join(RECORD)) {
            if let Ok(prev) = serde_json::from_slice::<Record>(&bytes) {
                record = prev;
                record.cmdline = cmd.seen.clone();
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
        b.record.policy = p.as_str().into();
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
        let text = format!(
            "darlings panicked: {what}; this is a bug, please report it with the log above"
        );
        tracing::error!("boot: {text}");
        b.record.outcome = "failed".into();
        if b.error.is_none() {
            if b.record.error.is_none() {
                b.record.error = Some(text.clone());
            }
            b.error = Some(text.into());
        }
        b.save_record();
    }
    if b.error.is_none() {
        if let Some(prev) = prev_error {
            // `early` failed under boot-old-root: late went on, but the boot did not go clean.
            b.record.error = Some(prev);
            b.record.outcome = "failed".into();
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
    Outcome {
        record: b.record,
        halt,
        error: b.error,
        lines: b.lines,
    }
}

/// What a boot that failed under boot-old-root goes on with, for the message printed then: the
/// untouched root only when the failure came before any rollback (a failed late stage, say,
/// comes after the root was already made blank).
pub fn going_on_with(r: &Record) -> &'static str {
    if r.phases.iter().any(|p| p.phase == "rollback" && p.ok) {
        "the root was already rolled back, booting it without what failed"
    } else {
        "booting the untouched root"
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
        report::Long(&first.unlisted.path),
        first.unlisted.reason
    )
}

/// The boot when another darlings holds the work dir's lock: nothing is done or written, and
/// the failure follows the policy (the command line's, else the config's).
fn locked_out(o: &Options, cmd: &Cmdline, e: crate::lock::LockError) -> Outcome {
    let policy = cmd.on_failure.unwrap_or_else(|| {
        config::load(o.config)
            .map(|c| c.boot.on_failure)
            .unwrap_or_default()
    });
    let mut record = Record::new(policy, cmd);
    let text = chain(&e);
    tracing::error!("boot: {text}; this boot changes nothing");
    record.outcome = "failed".into();
    record.phases.push(Phase {
        stage: "boot".into(),
        phase: "lock".into(),
        ms: 0.0,
        ok: false,
        detail: text.clone(),
    });
    record.error = Some(text);
    Outcome {
        record,
        halt: policy == OnFailure::Halt,
        error: Some(Box::new(e)),
        lines: Vec::new(),
    }
}

/// What `darlings status` says of a held boot.
pub fn held_line(at: &str) -> String {
    format!("rollback skipped: held by `darlings hold` at {at}")
}

/// " (12 MiB)", or nothing when no size is known (a walk without sizes reports none).
fn bytes_note(bytes: u64) -> String {
    if bytes == 0 {
        String::new()
    } else {
        format!(" ({})", crate::report::human(bytes))
    }
}

/// `darlings status` for people.
pub fn render_status(r: &Record) -> String {
    let mut s = format!(
        "darlings boot: {} (backend {}, on-failure = {:?})\n",
        r.outcome,
        r.backend.as_deref().unwrap_or("unknown"),
        r.policy
    );
    if !r.cmdline.is_empty() {
        s.push_str(&format!("kernel parameters: {}\n", r.cmdline.join(" ")));
    }
    let total: f64 = r.phases.iter().map(|p| p.ms).sum();
    for p in &r.phases {
        s.push_str(&format!(
            "  {:<5} {:<9} {:>9.1} ms  {}  {}\n",
            p.stage,
            p.phase,
            p.ms,
            if p.ok { "ok    " } else { "FAILED" },
            p.detail.lines().next().unwrap_or("")
        ));
    }
    s.push_str(&format!("  total           {total:>9.1} ms\n"));
    if let Some(at) = &r.held {
        s.push_str(&format!("{}\n", held_line(at)));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("error: {e}\n"));
    }
    match &r.report {
        Some(rep) => s.push_str(&format!(
            "lost-state report: {}{}\n  {} lost{}, {} persisted, {} ignored{}{}\n",
            rep.path,
            if rep.saved { "" } else { " (not saved to the store)" },
            rep.lost,
            bytes_note(rep.lost_bytes),
            rep.persisted,
            rep.ignored,
            if rep.unlisted > 0 {
                format!(", {} subtree(s) not listed", rep.unlisted)
            } else {
                String::new()
            },
            rep.truncated
                .as_ref()
                .map(|t| format!("; truncated at its {t}"))
                .unwrap_or_default()
        )),
        None => s.push_str("lost-state report: none this boot (diff.on-boot off, darlings.diff=0, or a tmpfs root)\n"),
    }
    s
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

    fn run_with(config: &Path, work: &Path, root: &Path, stage: Stage, cmdline: &str) -> Outcome {
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

    #[test]
    fn invalid_config_fails_open_by_default_and_leaves_the_marker() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(d.path(), "c.toml", "[root]\nbackend = \"ext4\"\n");
        let work = d.path().join("work");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "quiet");
        assert!(!out.halt);
        assert_eq!(out.record.outcome, "failed");
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
        assert_eq!(out.record.outcome, "failed");
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
        let d = tempfile::tempdir().unwrap();
        let cfg = write(
            d.path(),
            "c.toml",
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/darlings-test-missing\"\n[boot]\non-failure = \"boot-old-root\"\n",
        );
        let work = d.path().join("work");
        let out = run_with(
            &cfg,
            &work,
            d.path(),
            Stage::Early,
            "darlings.on-failure=halt",
        );
        assert!(out.halt);
        assert_eq!(out.record.policy, "halt");
        assert_eq!(out.record.phases[1].phase, "preflight");
        assert!(!out.record.phases[1].ok);
        // And the config's halt is overridden the other way too.
        let cfg = write(
            d.path(),
            "c2.toml",
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/darlings-test-missing\"\n[boot]\non-failure = \"halt\"\n",
        );
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "");
        assert!(out.halt);
        let out = run_with(
            &cfg,
            &work,
            d.path(),
            Stage::Early,
            "darlings.on-failure=boot-old-root",
        );
        assert!(!out.halt);
        assert_eq!(out.record.outcome, "failed");
    }

    #[test]
    fn late_failure_keeps_the_early_failure_in_the_record() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(
            d.path(),
            "c.toml",
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/darlings-test-missing\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n",
        );
        let work = d.path().join("work");
        let root = d.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let early = run_with(&cfg, &work, &root, Stage::Early, "");
        assert!(!early.halt);
        let first = early.record.error.clone().unwrap();
        assert!(first.starts_with("early preflight failed"), "{first}");
        // No store is mounted beneath the root: the late apply fails too, after the early one.
        let late = run_with(&cfg, &work, &root, Stage::Late, "");
        assert!(!late.halt);
        assert!(late.error.is_some(), "{:?}", late.record);
        let apply = late
            .record
            .phases
            .iter()
            .find(|p| p.phase == "apply")
            .unwrap();
        assert!(!apply.ok, "{:?}", late.record);
        assert_eq!(late.record.outcome, "failed");
        assert_eq!(late.record.error.as_deref(), Some(first.as_str()));
        let marker = std::fs::read_to_string(work.join(FAILED)).unwrap();
        assert_eq!(marker, format!("{first}\n"));
        let rec: Record =
            serde_json::from_slice(&std::fs::read(work.join(RECORD)).unwrap()).unwrap();
        assert_eq!(rec.error.as_deref(), Some(first.as_str()));
    }

    #[test]
    fn skip_touches_nothing_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        let cfg = write(
            d.path(),
            "c.toml",
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/darlings-test-missing\"\n",
        );
        let work = d.path().join("work");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "darlings.skip");
        assert!(out.error.is_none(), "{:?}", out.record);
        assert_eq!(out.record.outcome, "skipped");
        let phases: Vec<&str> = out.record.phases.iter().map(|p| p.phase.as_str()).collect();
        assert_eq!(phases, ["config", "skip"]);
        assert_eq!(out.record.cmdline, ["darlings.skip"]);
        assert!(!work.join(FAILED).exists());
    }

    #[test]
    fn boot_old_root_message_says_untouched_only_before_a_rollback() {
        let phase = |name: &str, ok| Phase {
            stage: "early".into(),
            phase: name.into(),
            ms: 1.0,
            ok,
            detail: String::new(),
        };
        let mut r = Record::new(OnFailure::BootOldRoot, &cmdline::parse(b""));
        r.phases = vec![phase("config", true), phase("preflight", false)];
        assert_eq!(going_on_with(&r), "booting the untouched root");
        r.phases = vec![phase("preflight", true), phase("rollback", false)];
        assert_eq!(going_on_with(&r), "booting the untouched root");
        r.phases = vec![phase("rollback", true), phase("apply", false)];
        assert_eq!(
            going_on_with(&r),
            "the root was already rolled back, booting it without what failed"
        );
    }

    #[test]
    fn status_text_shows_phases_failure_and_report() {
        let r = Record {
            schema: SCHEMA.into(),
            outcome: "failed".into(),
            policy: "boot-old-root".into(),
            backend: Some("btrfs".into()),
            cmdline: vec!["darlings.diff=1".into()],
            phases: vec![
                Phase {
                    stage: "early".into(),
                    phase: "config".into(),
                    ms: 0.4,
                    ok: true,
                    detail: "ok".into(),
                },
                Phase {
                    stage: "early".into(),
                    phase: "preflight".into(),
                    ms: 2.0,
                    ok: false,
                    detail: "blank missing".into(),
                },
            ],
            error: Some("early preflight failed\n  caused by: blank missing".into()),
            report: None,
            held: None,
            rolled_back_at: None,
        };
        let s = render_status(&r);
        assert!(
            s.starts_with(
                "darlings boot: failed (backend btrfs, on-failure = \"boot-old-root\")\n"
            ),
            "{s}"
        );
        assert!(s.contains("kernel parameters: darlings.diff=1\n"), "{s}");
        assert!(
            s.contains("  early preflight       2.0 ms  FAILED  blank missing\n"),
            "{s}"
        );
        assert!(s.contains("  total                 2.4 ms\n"), "{s}");
        assert!(
            s.contains("error: early preflight failed\n  caused by: blank missing\n"),
            "{s}"
        );
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

    fn phases(o: &Outcome) -> Vec<(&str, bool)> {
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
        assert_eq!(out.record.outcome, "ok");
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
        assert!(text.contains(SAVED_AT_BOOT), "{text}");
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
            assert_eq!(out.record.outcome, "failed");
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
        assert!(out.record.phases.iter().all(|p| p.stage == "early"));
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
        assert_eq!(out.record.outcome, "held");
        assert_eq!(out.record.held.as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(
            phases(&out),
            [("config", true), ("preflight", true), ("hold", true)]
        );
        assert_eq!(out.record.rolled_back_at, None);
        assert_eq!(tree(&root), before);
        assert!(!flag.exists(), "a hold holds once");
        let out = run_with(&cfg, &work, d.path(), Stage::Early, "");
        assert_eq!(out.record.outcome, "ok");
        assert_eq!(out.record.held, None);
        assert!(out.record.rolled_back_at.is_some());
        assert_eq!(tree(&root), tree(&blank));
    }
}
