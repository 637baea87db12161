//! The record of a boot (`WORK_DIR/boot.json`, schema `darlings.boot/1`) and `darlings status`'s
//! text of it: typed here, the JSON's strings kept exactly as they were.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cmdline::Cmdline;
use crate::config::OnFailure;

pub const SCHEMA: &str = "darlings.boot/1";
pub const RECORD: &str = "boot.json";
pub const FAILED: &str = "failed";

/// How a boot ended, as `outcome` in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    /// A phase failed (or darlings panicked); the policy said what happened next.
    Failed,
    /// `darlings.skip` on the kernel command line: nothing rolled back.
    Skipped,
    /// `darlings hold` asked this boot to skip its rollback, and it did.
    Held,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Failed,
        Outcome::Skipped,
        Outcome::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Held => "held",
        }
    }
}

/// Which part of the boot a phase belongs to, as `stage` in the record: the two stages the
/// initrd runs, and `boot` for what comes before either (the work dir's lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseStage {
    Early,
    Late,
    Boot,
}

impl PhaseStage {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStage::Early => "early",
            PhaseStage::Late => "late",
            PhaseStage::Boot => "boot",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for PhaseStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The record of this boot, `WORK_DIR/boot.json` (schema `darlings.boot/1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub schema: String,
    pub outcome: Outcome,
    /// The policy in force: the kernel command line's, else the config's.
    pub policy: OnFailure,
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
    pub stage: PhaseStage,
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
    pub(super) fn new(policy: OnFailure, cmd: &Cmdline) -> Record {
        Record {
            schema: SCHEMA.into(),
            outcome: Outcome::Ok,
            policy,
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

/// What the late stage finds of the early stage's record in this boot's work dir.
#[derive(Debug)]
pub(super) enum Early {
    /// No record: the early stage did not run (a tmpfs root, `--stage all` runs both at once).
    None,
    Read(Box<Record>),
    /// A record is there but cannot be read or parsed: `failed` is the early stage's failure
    /// marker, when it left one, so that the failure it describes is kept.
    Unreadable {
        why: String,
        failed: Option<String>,
    },
}

pub(super) fn read_early(work_dir: &Path) -> Early {
    let path = work_dir.join(RECORD);
    let why = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Early::None,
        Err(e) => format!("cannot read {}: {e}", path.display()),
        Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
            Ok(r) => return Early::Read(Box::new(r)),
            Err(e) => format!("{} is not {SCHEMA} JSON: {e}", path.display()),
        },
    };
    let failed = std::fs::read_to_string(work_dir.join(FAILED))
        .ok()
        .map(|m| m.trim_end().to_string())
        .filter(|m| !m.is_empty());
    Early::Unreadable { why, failed }
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

/// What `darlings status` says of a held boot.
pub fn held_line(at: &str) -> String {
    format!("rollback skipped: held by `darlings hold` at {at}")
}

/// " (12 MiB)", or nothing when no size is known (a walk without sizes reports none).
pub(super) fn bytes_note(bytes: u64) -> String {
    if bytes == 0 {
        String::new()
    } else {
        format!(" ({})", crate::show::human(bytes))
    }
}

/// `darlings status` for people.
pub fn render_status(r: &Record) -> String {
    let mut s = format!(
        "darlings boot: {} (backend {}, on-failure = \"{}\")\n",
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

    #[test]
    fn boot_old_root_message_says_untouched_only_before_a_rollback() {
        let phase = |name: &str, ok| Phase {
            stage: PhaseStage::Early,
            phase: name.into(),
            ms: 1.0,
            ok,
            detail: String::new(),
        };
        let mut r = Record::new(OnFailure::BootOldRoot, &crate::cmdline::parse(b""));
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
            outcome: Outcome::Failed,
            policy: OnFailure::BootOldRoot,
            backend: Some("btrfs".into()),
            cmdline: vec!["darlings.diff=1".into()],
            phases: vec![
                Phase {
                    stage: PhaseStage::Early,
                    phase: "config".into(),
                    ms: 0.4,
                    ok: true,
                    detail: "ok".into(),
                },
                Phase {
                    stage: PhaseStage::Early,
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
}
