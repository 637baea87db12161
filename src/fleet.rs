//! Fleet reports: after a boot and after `darlings diff --save`, the outcome and the lost-state
//! summary go to node_exporter's textfile collector (`report.prometheus`) and to journald
//! (`report.journald`). Neither may fail what it reports on: a problem is a warning.

use std::path::Path;

use crate::boot::Record;
use crate::config::Config;
use crate::error::chain;
use crate::journal::{self, Entry};
use crate::metrics::{self, Snapshot, Summary};
use crate::report::Report;

/// The boot's journal entry: outcome, backend, policy, and the first failure.
pub fn boot_entry(r: &Record) -> Entry {
    let backend = r.backend.as_deref().unwrap_or("unknown");
    let prio = match r.outcome.as_str() {
        "ok" => 6,
        "skipped" => 5,
        _ => 3,
    };
    let first = r
        .error
        .as_deref()
        .and_then(|e| e.lines().next())
        .map(|l| format!(": {l}"))
        .unwrap_or_default();
    let mut e = Entry::new(
        journal::MESSAGE_BOOT,
        prio,
        format!(
            "darlings boot: {} (backend {backend}, on-failure = {}){first}",
            r.outcome, r.policy
        ),
    );
    e.add("DARLINGS_OUTCOME", r.outcome);
    e.add("DARLINGS_BACKEND", backend);
    e.add("DARLINGS_POLICY", r.policy);
    let ms: f64 = r.phases.iter().map(|p| p.ms).sum();
    e.add("DARLINGS_PHASES", r.phases.len());
    e.add("DARLINGS_PHASES_MS", format!("{:.1}", ms));
    if let Some(p) = r.phases.iter().find(|p| !p.ok) {
        e.add("DARLINGS_FAILED_PHASE", format!("{} {}", p.stage, p.phase));
    }
    if let Some(err) = &r.error {
        e.add("DARLINGS_ERROR", err);
    }
    if !r.cmdline.is_empty() {
        e.add("DARLINGS_CMDLINE", r.cmdline.join(" "));
    }
    e
}

/// The lost-state summary's journal entry. `when`: "rollback" (a boot's diff) or "shutdown"
/// (`diff --save`); `report`: where the full report is.
pub fn lost_entry(backend: &str, s: &Summary, when: &str, report: &str) -> Entry {
    let prio = if s.truncated.is_some() {
        4
    } else if s.lost.entries > 0 {
        5
    } else {
        6
    };
    let mut e = Entry::new(
        journal::MESSAGE_LOST,
        prio,
        format!(
            "darlings: {} entr{} lost at the {when} ({} bytes), {} persisted, {} ignored{}; report {report}",
            s.lost.entries,
            if s.lost.entries == 1 { "y" } else { "ies" },
            s.lost.bytes,
            s.persisted.entries,
            s.ignored.entries,
            s.truncated
                .as_ref()
                .map(|t| format!("; the diff stopped early at its {t}"))
                .unwrap_or_default()
        ),
    );
    e.add("DARLINGS_WHEN", when);
    e.add("DARLINGS_BACKEND", backend);
    e.add("DARLINGS_LOST_ENTRIES", s.lost.entries);
    e.add("DARLINGS_LOST_BYTES", s.lost.bytes);
    e.add("DARLINGS_PERSISTED_ENTRIES", s.persisted.entries);
    e.add("DARLINGS_IGNORED_ENTRIES", s.ignored.entries);
    e.add("DARLINGS_UNLISTED_SUBTREES", s.unlisted);
    e.add("DARLINGS_TRUNCATED", u8::from(s.truncated.is_some()));
    if let Some(t) = &s.truncated {
        e.add("DARLINGS_TRUNCATED_AT", t);
    }
    e.add("DARLINGS_REPORT", report);
    e
}

fn textfile(config: &Config, root: &Path, record: Option<&Record>, summary: Option<&Summary>) {
    let Some(path) = &config.report.prometheus else {
        return;
    };
    let t = std::time::Instant::now();
    let last_rollback = record
        .and_then(|r| r.rolled_back_at)
        .or_else(|| metrics::previous_rollback(root, path));
    let text = metrics::render(&Snapshot {
        backend: config.root.backend_name(),
        record,
        summary,
        last_rollback,
    });
    match metrics::write(root, path, text.as_bytes()) {
        Ok(()) => tracing::info!(
            "report: node_exporter textfile {path} written beneath {} in {:?} ({} bytes)",
            root.display(),
            t.elapsed(),
            text.len()
        ),
        Err(e) => tracing::warn!(
            "report: cannot write node_exporter's textfile {path} beneath {}: {}; fix report.prometheus or the directory, the boot record holds the same facts",
            root.display(),
            chain(&e)
        ),
    }
}

/// After `darlings boot`: the textfile (when the root is mounted, `textfile_too`) and the
/// journal. `config` is `None` when it could not be loaded: that failure still goes to the
/// journal, which is on by default, and there is no textfile path to write.
pub fn after_boot(
    config: Option<&Config>,
    root: &Path,
    socket: &Path,
    record: &Record,
    textfile_too: bool,
) {
    let summary = record.report.as_ref().map(Summary::of_info);
    if let (Some(config), true) = (config, textfile_too) {
        // No diff this boot (a tmpfs root, whose report `diff --save` made at the last
        // shutdown, into a textfile that died with that root): the latest saved report's.
        let saved = match (&summary, &config.diff.report_dir, &config.report.prometheus) {
            (None, Some(_), Some(_)) => saved_summary(config, root),
            _ => None,
        };
        textfile(
            config,
            root,
            Some(record),
            summary.as_ref().or(saved.as_ref()),
        );
    }
    if config.is_none_or(|c| c.report.journald) {
        let mut entries = vec![boot_entry(record)];
        if let (Some(s), Some(info)) = (&summary, &record.report) {
            let backend = record.backend.as_deref().unwrap_or("unknown");
            entries.push(lost_entry(backend, s, "rollback", &info.path));
        }
        journal::send(socket, &entries);
    }
}

/// The summary of the latest report saved in the store.
fn saved_summary(config: &Config, root: &Path) -> Option<Summary> {
    match crate::report::store::read(config, root, None, true) {
        Ok((path, json)) => {
            let s = Summary::of_saved(&json);
            if s.is_none() {
                tracing::warn!("report: the latest saved report {path} is not darlings.diff/1 JSON; the textfile has no lost-state summary");
            }
            s
        }
        Err(e) => {
            // No report saved yet is the usual case on a new machine.
            tracing::debug!("report: no saved lost-state report for the textfile: {e}");
            None
        }
    }
}

/// After `darlings diff --save`: this boot's record (when the work dir has one) with the fresh
/// summary in the textfile, and the summary in the journal.
pub fn after_diff_save(
    config: &Config,
    root: &Path,
    work_dir: &Path,
    socket: &Path,
    report: &Report,
    saved: &str,
) {
    let record: Option<Record> = std::fs::read(work_dir.join(crate::boot::RECORD))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let summary = Summary::of_report(report);
    textfile(config, root, record.as_ref(), Some(&summary));
    if config.report.journald {
        journal::send(
            socket,
            &[lost_entry(
                config.root.backend_name(),
                &summary,
                "shutdown",
                saved,
            )],
        );
    }
}
