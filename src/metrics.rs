//! The node_exporter textfile collector file: the boot's outcome, its phase times and the
//! lost-state summary in the Prometheus text exposition format (0.0.4), written atomically
//! beneath the root so that a fleet's alerting sees every machine's rollbacks.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::beneath;
use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::boot::{Outcome, Record, ReportInfo};
use crate::paths::AbsPath;
use crate::report::{Class, Report};

/// The outcomes a boot record can hold; each gets a sample so that a query for one that did not
/// happen finds 0, not nothing.
const LAST_ROLLBACK: &str = "darlings_last_rollback_success_timestamp_seconds";

/// The shared pair: a failed call on a named path, or a refusal saying what to do.
pub type MetricsError = crate::error::BackendError;

fn io(what: String, e: impl Into<std::io::Error>) -> MetricsError {
    MetricsError::io(what, e.into())
}

/// Entries and bytes of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    pub entries: u64,
    pub bytes: u64,
}

/// What a lost-state diff found, from a boot record or from a fresh report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub lost: Count,
    pub persisted: Count,
    pub ignored: Count,
    pub unlisted: u64,
    /// Why the diff stopped early ("max-entries 100000"), if it did.
    pub truncated: Option<String>,
    /// Unix time of the diff.
    pub generated: Option<i64>,
}

impl Summary {
    pub fn of_report(r: &Report) -> Summary {
        let c = |class| {
            let t = r.tally(class);
            Count {
                entries: t.entries,
                bytes: t.bytes,
            }
        };
        Summary {
            lost: c(Class::Lost),
            persisted: c(Class::Persisted),
            ignored: c(Class::Ignored),
            unlisted: r.unlisted.len() as u64,
            truncated: r.truncated.map(|t| match t {
                darlings_backends::Truncation::MaxEntries(n) => format!("max-entries {n}"),
                darlings_backends::Truncation::TimeBudget(d) => format!("time-budget {d:?}"),
            }),
            generated: chrono::DateTime::parse_from_rfc3339(&r.generated)
                .ok()
                .map(|t| t.timestamp()),
        }
    }

    pub fn of_info(i: &ReportInfo) -> Summary {
        Summary {
            lost: Count {
                entries: i.lost,
                bytes: i.lost_bytes,
            },
            persisted: Count {
                entries: i.persisted,
                bytes: i.persisted_bytes,
            },
            ignored: Count {
                entries: i.ignored,
                bytes: i.ignored_bytes,
            },
            unlisted: i.unlisted,
            truncated: i.truncated.clone(),
            generated: chrono::NaiveDateTime::parse_from_str(&i.stamp, "%Y%m%dT%H%M%SZ")
                .ok()
                .map(|t| t.and_utc().timestamp()),
        }
    }

    /// The summary at the head of a saved report (`darlings.diff/1` JSON); the entries are
    /// skipped, not built.
    pub fn of_saved(json: &[u8]) -> Option<Summary> {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Tally {
            entries: u64,
            bytes: u64,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Unlisted {
            subtrees: u64,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct Sum {
            lost: Tally,
            persisted: Tally,
            ignored: Tally,
            unlisted: Unlisted,
        }
        #[derive(serde::Deserialize)]
        struct Head {
            schema: String,
            generated: String,
            truncated: Option<serde_json::Value>,
            summary: Sum,
        }
        let h: Head = serde_json::from_slice(json).ok()?;
        if h.schema != "darlings.diff/1" {
            return None;
        }
        let c = |t: &Tally| Count {
            entries: t.entries,
            bytes: t.bytes,
        };
        Some(Summary {
            lost: c(&h.summary.lost),
            persisted: c(&h.summary.persisted),
            ignored: c(&h.summary.ignored),
            unlisted: h.summary.unlisted.subtrees,
            truncated: h.truncated.map(|t| {
                let reason = t["reason"].as_str().unwrap_or("limit");
                // The words a boot record uses ("time-budget 10s").
                match (t["limit"].as_u64(), t["limit_ms"].as_u64()) {
                    (Some(n), _) => format!("{reason} {n}"),
                    (_, Some(ms)) => {
                        format!("{reason} {:?}", std::time::Duration::from_millis(ms))
                    }
                    _ => reason.to_string(),
                }
            }),
            generated: chrono::DateTime::parse_from_rfc3339(&h.generated)
                .ok()
                .map(|t| t.timestamp()),
        })
    }
}

/// Everything the file says.
pub struct Snapshot<'a> {
    pub backend: &'a str,
    /// This boot's record; `None` when darlings boot did not run this boot (no record in the
    /// work dir): every outcome is then 0 and no phase is listed.
    pub record: Option<&'a Record>,
    /// The latest lost-state summary; `None`: no diff this boot, the lost families are empty.
    pub summary: Option<&'a Summary>,
    /// Unix time of the last rollback known to have succeeded.
    pub last_rollback: Option<i64>,
}

/// A label value as the exposition format quotes it.
fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, help: &str) {
        // HELP text escapes only backslash and newline.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        self.0
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            self.0.push_str(&format!("{{{}}}", l.join(",")));
        }
        // No timestamp: the textfile collector refuses samples that carry one.
        self.0.push_str(&format!(" {value}\n"));
    }
}

/// The file's text. Every family is a gauge with HELP and TYPE; labels hold only fixed words
/// (outcome, stage, phase, class, backend, version), never a path, so that a fleet's series
/// stay few.
pub fn render(s: &Snapshot) -> String {
    let mut o = Out(String::new());
    o.family(
        "darlings_info",
        "darlings' version and root backend (always 1).",
    );
    o.sample(
        "darlings_info",
        &[
            ("backend", s.backend),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    o.family(
        "darlings_boot_outcome",
        "This boot's darlings outcome: 1 for the outcome it had, 0 for the others.",
    );
    for outcome in Outcome::ALL {
        let on = s.record.is_some_and(|r| r.outcome == outcome);
        o.sample(
            "darlings_boot_outcome",
            &[("outcome", outcome.as_str())],
            u8::from(on),
        );
    }
    o.family(
        "darlings_boot_phase_seconds",
        "Wall time of each phase darlings boot ran this boot.",
    );
    let phases = s.record.map(|r| r.phases.as_slice()).unwrap_or_default();
    for p in phases {
        o.sample(
            "darlings_boot_phase_seconds",
            &[("stage", p.stage.as_str()), ("phase", &p.phase)],
            seconds(p.ms),
        );
    }
    o.family(
        "darlings_boot_phase_success",
        "Whether each phase darlings boot ran this boot succeeded (1) or failed (0).",
    );
    for p in phases {
        o.sample(
            "darlings_boot_phase_success",
            &[("stage", p.stage.as_str()), ("phase", &p.phase)],
            u8::from(p.ok),
        );
    }
    let classes = |m: &Summary| {
        [
            ("lost", m.lost),
            ("persisted", m.persisted),
            ("ignored", m.ignored),
        ]
    };
    o.family(
        "darlings_lost_entries",
        "Entries the latest lost-state diff found on the root, by class (lost ones were or will be erased).",
    );
    if let Some(m) = s.summary {
        for (class, c) in classes(m) {
            o.sample("darlings_lost_entries", &[("class", class)], c.entries);
        }
    }
    o.family(
        "darlings_lost_bytes",
        "Bytes of the entries the latest lost-state diff found, by class (0 when it ran without sizes).",
    );
    if let Some(m) = s.summary {
        for (class, c) in classes(m) {
            o.sample("darlings_lost_bytes", &[("class", class)], c.bytes);
        }
    }
    o.family(
        "darlings_lost_unlisted_subtrees",
        "Subtrees the latest lost-state diff could not list (the report names each).",
    );
    if let Some(m) = s.summary {
        o.sample("darlings_lost_unlisted_subtrees", &[], m.unlisted);
    }
    o.family(
        "darlings_report_truncated",
        "Whether the latest lost-state diff stopped early at max-entries or time-budget (1) or not (0).",
    );
    if let Some(m) = s.summary {
        o.sample(
            "darlings_report_truncated",
            &[],
            u8::from(m.truncated.is_some()),
        );
    }
    o.family(
        "darlings_report_timestamp_seconds",
        "Unix time of the lost-state diff that the darlings_lost_* families describe.",
    );
    if let Some(t) = s.summary.and_then(|m| m.generated) {
        o.sample("darlings_report_timestamp_seconds", &[], t);
    }
    o.family(
        LAST_ROLLBACK,
        "Unix time of the last rollback of the root to blank that succeeded.",
    );
    if let Some(t) = s.last_rollback {
        o.sample(LAST_ROLLBACK, &[], t);
    }
    o.0
}

/// Milliseconds (with a tenth) as seconds, without float noise ("0.0004", not "0.00039999").
fn seconds(ms: f64) -> String {
    let tenths = (ms * 10.0).round() as i64;
    let s = format!("{}.{:04}", tenths / 10_000, (tenths % 10_000).abs());
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

fn shown(root: &Path, rel: &[u8]) -> String {
    format!(
        "{}/{}",
        root.to_string_lossy().trim_end_matches('/'),
        String::from_utf8_lossy(rel)
    )
}

/// Opens `path`'s directory beneath `root`, never through a symlink; with `create`, missing
/// directories are made root's, mode 0755 (node_exporter runs as its own user and must read).
fn open_parent(root: &Path, path: &AbsPath, create: bool) -> Result<OwnedFd, MetricsError> {
    let mut cur = fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(format!("cannot open root {}", root.display()), e))?;
    let comps: Vec<&[u8]> = path.components().collect();
    let mut at = Vec::new();
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        if !at.is_empty() {
            at.push(b'/');
        }
        at.extend_from_slice(comp);
        let name = OsStr::from_bytes(comp);
        let open = |d: &OwnedFd| beneath::open(d, name, OFlags::RDONLY | OFlags::DIRECTORY);
        cur = match open(&cur) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                let made = match fs::mkdirat(&cur, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(io(format!("cannot create {}", shown(root, &at)), e)),
                };
                let fd =
                    open(&cur).map_err(|e| io(format!("cannot open {}", shown(root, &at)), e))?;
                if made {
                    // The umask must not make it unreadable to node_exporter's user.
                    fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                        .map_err(|e| io(format!("cannot chmod {}", shown(root, &at)), e))?;
                }
                fd
            }
            Err(Errno::LOOP) | Err(Errno::XDEV) | Err(Errno::NOTDIR) => {
                return Err(MetricsError::Refused(format!(
                    "{} is a symlink or not a directory; darlings never follows symlinks in a root: make it a real directory",
                    shown(root, &at)
                )))
            }
            Err(e) => return Err(io(format!("cannot open {}", shown(root, &at)), e)),
        };
    }
    Ok(cur)
}

fn file_name(path: &AbsPath) -> &[u8] {
    path.components().last().unwrap_or_default()
}

/// Writes `text` to `path` beneath `root`: a temporary beside it (a name the collector skips),
/// fsync, rename over the old file, fsync of the directory. Anything there but a regular file is
/// refused before it is replaced.
pub fn write(root: &Path, path: &AbsPath, text: &[u8]) -> Result<(), MetricsError> {
    let dir = open_parent(root, path, true)?;
    let name = file_name(path);
    let at = shown(root, path.relative());
    match fs::statat(&dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if fs::FileType::from_raw_mode(st.st_mode) != fs::FileType::RegularFile => {
            return Err(MetricsError::Refused(format!(
                "{at} exists and is not a regular file (a symlink or a directory); darlings writes only its own file there: remove it"
            )))
        }
        Ok(_) | Err(Errno::NOENT) => {}
        Err(e) => return Err(io(format!("cannot look at {at}"), e)),
    }
    // Readable by node_exporter's user whatever the umask; synced, since the fleet reads it
    // after a power cut too.
    let opts = beneath::Atomic {
        mode: 0o644,
        fsync: true,
        replace: true,
    };
    beneath::write_atomic(dir.as_fd(), OsStr::from_bytes(name), text, opts)
        .map_err(|e| io(format!("cannot write {at}"), std::io::Error::other(e)))
}

/// The last successful rollback's time in the file darlings wrote before, if it is there: a boot
/// whose rollback failed must not make the fleet believe the machine never rolled back.
pub fn previous_rollback(root: &Path, path: &AbsPath) -> Option<i64> {
    let dir = open_parent(root, path, false).ok()?;
    let fd = beneath::open(&dir, OsStr::from_bytes(file_name(path)), OFlags::RDONLY).ok()?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix(LAST_ROLLBACK))
        .filter_map(|rest| rest.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Phase, PhaseStage};
    use crate::config::OnFailure;

    fn record(outcome: Outcome) -> Record {
        let phase = |stage, phase: &str, ms, ok| Phase {
            stage,
            phase: phase.into(),
            ms,
            ok,
            detail: "/var/lib/secret \"detail\" is never a label".into(),
        };
        Record {
            schema: crate::boot::SCHEMA.into(),
            outcome,
            policy: OnFailure::BootOldRoot,
            backend: Some("btrfs".into()),
            cmdline: vec![],
            phases: vec![
                phase(PhaseStage::Early, "config", 0.4, true),
                phase(PhaseStage::Early, "rollback", 1234.5, true),
                phase(PhaseStage::Late, "apply", 12.0, outcome != Outcome::Failed),
            ],
            error: None,
            report: None,
            rolled_back_at: None,
            held: None,
        }
    }

    fn summary() -> Summary {
        Summary {
            lost: Count {
                entries: 4,
                bytes: 12_288,
            },
            persisted: Count {
                entries: 3,
                bytes: 100,
            },
            ignored: Count {
                entries: 1,
                bytes: 0,
            },
            unlisted: 2,
            truncated: Some("max-entries 8".into()),
            generated: Some(1_795_999_990),
        }
    }

    const HEAD: &str = "\
# HELP darlings_info darlings' version and root backend (always 1).
# TYPE darlings_info gauge
";

    #[test]
    fn rendered_files_table() {
        let v = env!("CARGO_PKG_VERSION");
        let ok = record(Outcome::Ok);
        let failed = record(Outcome::Failed);
        let sum = summary();
        let cases: Vec<(&str, Snapshot, Vec<String>)> = vec![
            (
                "a boot with a diff",
                Snapshot {
                    backend: "btrfs",
                    record: Some(&ok),
                    summary: Some(&sum),
                    last_rollback: Some(1_796_000_000),
                },
                vec![
                    format!("darlings_info{{backend=\"btrfs\",version=\"{v}\"}} 1"),
                    "darlings_boot_outcome{outcome=\"ok\"} 1".into(),
                    "darlings_boot_outcome{outcome=\"failed\"} 0".into(),
                    "darlings_boot_outcome{outcome=\"skipped\"} 0".into(),
                    "darlings_boot_outcome{outcome=\"held\"} 0".into(),
                    "darlings_boot_phase_seconds{stage=\"early\",phase=\"config\"} 0.0004".into(),
                    "darlings_boot_phase_seconds{stage=\"early\",phase=\"rollback\"} 1.2345".into(),
                    "darlings_boot_phase_seconds{stage=\"late\",phase=\"apply\"} 0.012".into(),
                    "darlings_boot_phase_success{stage=\"late\",phase=\"apply\"} 1".into(),
                    "darlings_lost_entries{class=\"lost\"} 4".into(),
                    "darlings_lost_entries{class=\"persisted\"} 3".into(),
                    "darlings_lost_entries{class=\"ignored\"} 1".into(),
                    "darlings_lost_bytes{class=\"lost\"} 12288".into(),
                    "darlings_lost_unlisted_subtrees 2".into(),
                    "darlings_report_truncated 1".into(),
                    "darlings_report_timestamp_seconds 1795999990".into(),
                    "darlings_last_rollback_success_timestamp_seconds 1796000000".into(),
                ],
            ),
            (
                "a failed boot without a diff",
                Snapshot {
                    backend: "zfs",
                    record: Some(&failed),
                    summary: None,
                    last_rollback: None,
                },
                vec![
                    "darlings_boot_outcome{outcome=\"ok\"} 0".into(),
                    "darlings_boot_outcome{outcome=\"failed\"} 1".into(),
                    "darlings_boot_phase_success{stage=\"late\",phase=\"apply\"} 0".into(),
                ],
            ),
            (
                "a saved diff with no boot record",
                Snapshot {
                    backend: "tmpfs",
                    record: None,
                    summary: Some(&sum),
                    last_rollback: None,
                },
                vec![
                    "darlings_boot_outcome{outcome=\"ok\"} 0".into(),
                    "darlings_boot_outcome{outcome=\"failed\"} 0".into(),
                    "darlings_boot_outcome{outcome=\"skipped\"} 0".into(),
                    "darlings_lost_entries{class=\"lost\"} 4".into(),
                ],
            ),
        ];
        for (name, snap, want) in cases {
            let text = render(&snap);
            assert!(text.starts_with(HEAD), "{name}:\n{text}");
            let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
            for w in &want {
                assert!(samples.contains(&w.as_str()), "{name}: no {w:?} in\n{text}");
            }
            check_format(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert!(!text.contains("/var/lib/secret"), "{name}: {text}");
            if snap.record.is_none() {
                assert!(!text.contains("darlings_boot_phase_seconds{"), "{text}");
            }
            if snap.summary.is_none() {
                assert!(!text.contains("darlings_lost_entries{"), "{text}");
                assert!(!text.contains("\ndarlings_report_truncated "), "{text}");
            }
            if snap.last_rollback.is_none() {
                assert!(!text.contains(&format!("\n{LAST_ROLLBACK} ")), "{text}");
            }
        }
    }

    /// The rules the textfile collector and promtool hold a file to that this writer promises:
    /// every family has HELP then TYPE before its samples, each family once, samples are
    /// `name{labels} value` with no timestamp, names are darlings_*, and no label value is a path.
    fn check_format(text: &str) -> Result<(), String> {
        let mut families: Vec<String> = Vec::new();
        let mut typed = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or("").to_string();
                if families.contains(&name) {
                    return Err(format!("family {name} twice"));
                }
                families.push(name);
                typed = false;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let want = format!("{} gauge", families.last().ok_or("TYPE before HELP")?);
                if rest != want {
                    return Err(format!("{line:?} after HELP of another family"));
                }
                typed = true;
            } else {
                let fam = families.last().ok_or("sample before any family")?;
                if !typed {
                    return Err(format!("sample of {fam} before its TYPE"));
                }
                let (series, value) = match line.rfind('}') {
                    Some(i) => (&line[..=i], line[i + 1..].trim_start()),
                    None => line.split_once(' ').ok_or(format!("no value: {line}"))?,
                };
                if value.contains(' ') {
                    return Err(format!("a timestamp or junk after the value: {line}"));
                }
                value
                    .parse::<f64>()
                    .map_err(|e| format!("value of {line}: {e}"))?;
                let name = series.split('{').next().unwrap_or("");
                if name != fam.as_str() {
                    return Err(format!("sample {name} under family {fam}"));
                }
                if series.contains("=\"/") {
                    return Err(format!("a path as a label value: {line}"));
                }
            }
        }
        if let Some(bad) = families.iter().find(|f| !f.starts_with("darlings_")) {
            return Err(format!("family {bad} is not darlings_*"));
        }
        Ok(())
    }

    #[test]
    fn the_format_check_catches_what_it_should() {
        for bad in [
            "# HELP darlings_x x\n# TYPE darlings_x gauge\ndarlings_x 1 1700000000000\n",
            "# HELP darlings_x x\ndarlings_x 1\n",
            "darlings_x 1\n",
            "# HELP darlings_x x\n# TYPE darlings_x gauge\ndarlings_x{path=\"/etc\"} 1\n",
        ] {
            assert!(check_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summaries_from_a_saved_report_and_a_boot_record_agree() {
        let json = br#"{"schema": "darlings.diff/1", "backend": "tmpfs", "root": "/", "generated": "2026-11-22T02:30:00Z",
 "truncated": {"reason": "time-budget", "limit_ms": 10000},
 "summary": {"lost": {"entries": 3, "bytes": 120}, "persisted": {"entries": 9, "bytes": 0},
             "ignored": {"entries": 2, "bytes": 8}, "unlisted": {"subtrees": 1, "lost": 1}},
 "unlisted": [], "entries": [{"path": "/etc/hostname", "kind": "added", "type": "file", "size": 8, "class": "lost"}]}"#;
        let saved = Summary::of_saved(json).unwrap();
        let info = ReportInfo {
            path: "/persist/var/log/darlings/20261122T023000Z.json".into(),
            saved: true,
            stamp: "20261122T023000Z".into(),
            lost: 3,
            lost_bytes: 120,
            persisted: 9,
            persisted_bytes: 0,
            ignored: 2,
            ignored_bytes: 8,
            unlisted: 1,
            truncated: Some("time-budget 10s".into()),
        };
        assert_eq!(saved, Summary::of_info(&info));
        assert_eq!(saved.generated, Some(1_795_314_600));
        assert_eq!(Summary::of_saved(b"{\"schema\": \"other/1\"}"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn seconds_are_exact() {
        for (ms, want) in [
            (0.0, "0"),
            (0.4, "0.0004"),
            (12.0, "0.012"),
            (1234.5, "1.2345"),
            (60_000.0, "60"),
        ] {
            assert_eq!(seconds(ms), want, "{ms}");
        }
    }

    #[test]
    fn written_atomically_beneath_the_root_and_symlinks_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let path = AbsPath::parse("/var/lib/prometheus/node-exporter/darlings.prom").unwrap();
        // (The umask is the process's, shared by parallel tests: the privileged test runs
        // darlings under umask 077.)
        write(root, &path, b"one\n").unwrap();
        let file = root.join("var/lib/prometheus/node-exporter/darlings.prom");
        assert_eq!(std::fs::read(&file).unwrap(), b"one\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o644);
        assert_eq!(mode(file.parent().unwrap()), 0o755);
        assert_eq!(mode(&root.join("var/lib")), 0o755);
        write(
            root,
            &path,
            format!("{LAST_ROLLBACK} 1796000000\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(previous_rollback(root, &path), Some(1_796_000_000));
        let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["darlings.prom"], "a temporary was left behind");
        // A link planted as the file or as a directory on the way is refused, not followed.
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(outside.join("x.prom"), &file).unwrap();
        let e = write(root, &path, b"two\n").unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        assert!(!outside.join("x.prom").exists());
        std::fs::remove_dir_all(root.join("var/lib/prometheus")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("var/lib/prometheus")).unwrap();
        let e = write(root, &path, b"two\n").unwrap_err().to_string();
        assert!(e.contains("is a symlink or not a directory"), "{e}");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        assert_eq!(previous_rollback(root, &path), None);
    }
}
