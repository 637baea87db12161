//! The report's unit tests: classification, grouping, JSON.

use super::*;
use crate::config::Config;
use darlings_backends::bytes::Show;
use darlings_backends::{ChangeKind, FileType};
use serde_json::{json, Value};

/// The report of a tmpfs root at `/` holding `changes`, classified against `cfg()`.
fn tmpfs_report(changes: Vec<Change>) -> Report {
    let out = DiffOutput {
        changes,
        ..DiffOutput::default()
    };
    Report::new("tmpfs", b"/", out, &Classifier::new(&cfg()))
}

fn cfg() -> Config {
    crate::config::parse(
        "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/var/cache/**\", \"/tmp/*\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\nfiles = [\"/etc/machine-id\"]\n",
        "t.toml",
    )
    .unwrap()
}

fn added(p: &[u8], ft: FileType, size: Option<u64>) -> Change {
    Change {
        path: p.to_vec(),
        kind: ChangeKind::Added,
        file_type: ft,
        size,
    }
}

#[test]
fn a_symlinked_file_is_persisted_as_the_link_and_lost_as_a_file() {
    let c = Classifier::new(
        &crate::config::parse(
            "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nfiles = [{ path = \"/etc/app.json\", method = \"symlink\" }]\n",
            "t.toml",
        )
        .unwrap(),
    );
    assert_eq!(
        c.classify_entry(b"/etc/app.json", FileType::Symlink).0,
        Class::Persisted
    );
    // A program replaced the link by rename: its data is on the root.
    let (class, why) = c.classify_entry(b"/etc/app.json", FileType::File);
    assert_eq!(class, Class::Lost);
    assert!(why.is_some());
}

#[test]
fn classification_table() {
    use FileType::{Dir, File, Symlink};
    let c = Classifier::new(&cfg());
    let cases: &[(&[u8], FileType, Class)] = &[
        (b"/var/log", Dir, Class::Persisted),
        (b"/var/log/syslog", File, Class::Lost),
        (b"/var", Dir, Class::Persisted),
        (b"/", Dir, Class::Persisted),
        (b"/etc", Dir, Class::Persisted),
        (b"/etc/machine-id", File, Class::Persisted),
        (b"/etc/machine-id", Symlink, Class::Lost),
        (b"/etc/machine-id", Dir, Class::Lost),
        (b"/var/log", File, Class::Lost),
        (b"/etc/machine-id.old", File, Class::Lost),
        (b"/etc/hostname", File, Class::Lost),
        (b"/var/cache", Dir, Class::Ignored),
        (b"/var/cache/apt/x", File, Class::Ignored),
        (b"/tmp/a", File, Class::Ignored),
        (b"/tmp/a/b", File, Class::Lost),
        (b"/var/logs", File, Class::Lost),
        (b"/home/alice/\xff", File, Class::Lost),
        (b"/persist", Dir, Class::Persisted),
        (b"/persist/var/log/x", File, Class::Lost),
    ];
    for (p, ft, want) in cases {
        assert_eq!(c.classify_entry(p, *ft).0, *want, "{} ({ft:?})", Show(p));
    }
}

/// Regression (issue 10): a file on the root beneath a persisted directory (written before
/// the bind existed, or hidden beneath it) was classed persisted, and "nothing would be
/// lost" was printed; the next boot erased it.
#[test]
fn root_only_files_under_a_persisted_directory_were_classed_persisted() {
    let config = crate::config::parse(
        "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/x\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/app\"]\n",
        "t.toml",
    )
    .unwrap();
    let c = Classifier::new(&config);
    let out = DiffOutput {
        changes: vec![
            added(b"/var/lib/app", FileType::Dir, None),
            added(b"/var/lib/app/db", FileType::File, Some(4096)),
            added(b"/persist/hidden", FileType::File, Some(1)),
        ],
        ..DiffOutput::default()
    };
    let r = Report::new("btrfs", b"/", out, &c);
    let class = |p: &[u8]| r.entries().find(|e| e.change.path == p).map(|e| e.class);
    assert_eq!(class(b"/var/lib/app"), Some(Class::Persisted));
    assert_eq!(class(b"/var/lib/app/db"), Some(Class::Lost));
    assert_eq!(class(b"/persist/hidden"), Some(Class::Lost));
    let text = r.to_text(40);
    assert!(!text.contains("nothing would be lost"), "{text}");
    assert!(
        text.contains("under persisted /var/lib/app, but on the root, not in the store"),
        "{text}"
    );
    let v = r.to_json();
    let db = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/var/lib/app/db")
        .unwrap()
        .clone();
    assert_eq!(db["class"], "lost");
    assert_eq!(
        db["why"],
        "under persisted /var/lib/app, but on the root, not in the store"
    );
    assert_eq!(v["summary"]["lost"]["entries"], 2);
}

/// Regression (issue 10): `/etc` replaced by a file on the way to persisted
/// `/etc/machine-id` was classed persisted, though apply refuses it and the rollback
/// erases it.
#[test]
fn a_non_directory_on_the_way_to_a_persisted_path_was_classed_persisted() {
    let c = Classifier::new(&cfg());
    let (class, why) = c.classify_entry(b"/etc", FileType::File);
    assert_eq!(class, Class::Lost);
    assert_eq!(
        why.unwrap().to_string(),
        "on the way to persisted /etc/machine-id, but not a directory: apply refuses it"
    );
    let (class, why) = c.classify_entry(b"/var/log", FileType::Symlink);
    assert_eq!(class, Class::Lost);
    assert_eq!(
        why.unwrap().to_string(),
        "at persisted /var/log, but not a directory: apply refuses it"
    );
    // Removed at a persisted path: the blank's entry comes back and is bound over.
    let (class, _) = c.classify_entry(b"/etc", FileType::Dir);
    assert_eq!(class, Class::Persisted);
}

#[test]
fn unlisted_subtrees_are_lost_unless_a_glob_covers_all_of_them() {
    let c = Classifier::new(&cfg());
    assert_eq!(
        c.classify_subtree(b"/tmp/deep").0,
        Class::Lost,
        "/tmp/* covers one level"
    );
    assert_eq!(c.classify_subtree(b"/var/cache/x").0, Class::Ignored);
    let (class, why) = c.classify_subtree(b"/var/log/deep");
    assert_eq!(class, Class::Lost);
    assert!(matches!(why, Some(Why::UnderPersisted(_))));
    assert_eq!(
        c.classify_subtree(b"/var").0,
        Class::Lost,
        "beside /var/log"
    );
    let out = DiffOutput {
        changes: vec![added(b"/tmp/x", FileType::File, Some(1))],
        unlisted: vec![Unlisted {
            path: b"/home/u/deep".to_vec(),
            reason: "path too long (past 4096 bytes)".into(),
        }],
        ..DiffOutput::default()
    };
    let r = Report::new("btrfs", b"/", out, &c);
    let text = r.to_text(40);
    assert!(!text.contains("nothing would be lost"), "{text}");
    assert!(
        text.contains("/home/u/deep: path too long (past 4096 bytes)"),
        "{text}"
    );
    let v = r.to_json();
    assert_eq!(v["summary"]["unlisted"]["lost"], 1);
    assert_eq!(v["unlisted"][0]["class"], "lost");
    assert_eq!(v["unlisted"][0]["path"], "/home/u/deep");
}

/// The time budget covers classification: past it, the rest is dropped and the report
/// says it stopped at its budget.
#[test]
fn classification_stops_at_the_time_budget() {
    let changes: Vec<Change> = (0..10_000)
        .map(|i| added(format!("/f{i}").as_bytes(), FileType::File, None))
        .collect();
    let out = DiffOutput {
        changes,
        ..DiffOutput::default()
    };
    let started = Instant::now() - Duration::from_secs(5);
    let r = Report::classified(
        "tmpfs",
        b"/",
        out,
        &Classifier::new(&cfg()),
        Some((started, Duration::from_secs(1))),
    );
    assert!(r.is_empty(), "{}", r.len());
    assert_eq!(
        r.truncated,
        Some(Truncation::TimeBudget(Duration::from_secs(1)))
    );
}

#[test]
fn a_failed_diff_makes_a_report_that_says_so() {
    let r = Report::failed("btrfs", b"/", "the diff failed: boom".into());
    let text = r.to_text(40);
    assert!(text.contains("/: the diff failed: boom"), "{text}");
    assert!(!text.contains("nothing would be lost"), "{text}");
}

#[test]
fn json_has_summary_and_exact_bytes() {
    let out = DiffOutput {
        changes: vec![
            added(b"/home/a/\xffbad", FileType::File, Some(10)),
            added(b"/etc/machine-id", FileType::File, Some(5)),
            added(b"/var/cache/y", FileType::File, Some(7)),
        ],
        truncated: None,
        unlisted: Vec::new(),
    };
    let r = Report::new("tmpfs", b"/sysroot", out, &Classifier::new(&cfg()));
    let v = r.to_json();
    assert_eq!(v["schema"], "darlings.diff/1");
    assert_eq!(v["summary"]["lost"]["entries"], 1);
    assert_eq!(v["summary"]["lost"]["bytes"], 10);
    assert_eq!(v["summary"]["persisted"]["bytes"], 5);
    assert_eq!(v["summary"]["ignored"]["entries"], 1);
    assert_eq!(
        v["entries"][1]["path_bytes"],
        json!(b"/home/a/\xffbad".to_vec())
    );
    assert_eq!(v["entries"][1]["class"], "lost");
    assert!(v["entries"][0].get("path_bytes").is_none());
    assert_eq!(v["truncated"], Value::Null);
}

#[test]
fn fifty_thousand_entries_fit_one_screen() {
    let mut changes = Vec::new();
    for i in 0..50_000u32 {
        changes.push(added(
            format!("/home/alice/cache/{}/f{i}", i % 100).as_bytes(),
            FileType::File,
            Some(100),
        ));
    }
    changes.push(added(b"/etc/hostname", FileType::File, Some(6)));
    changes.push(added(b"/root/.bash_history", FileType::File, Some(60)));
    let r = tmpfs_report(changes);
    let text = r.to_text(30);
    let lines = text.lines().count();
    assert!(lines <= 30 + 8, "{lines} lines:\n{text}");
    assert!(text.contains("50002 entries"), "{text}");
    assert!(text.contains("/etc/hostname"), "{text}");
    assert!(text.contains("/home/alice/cache/"), "{text}");
    assert!(text.contains("/root/.bash_history"), "{text}");
}

#[test]
fn saved_report_is_not_headed_would_be_lost_at_the_next_rollback() {
    let out = || DiffOutput {
        changes: vec![added(b"/etc/hostname", FileType::File, Some(6))],
        truncated: None,
        unlisted: Vec::new(),
    };
    let r = Report::new("btrfs", b"/", out(), &Classifier::new(&cfg()));
    let saved = r.to_text_saved(
        20,
        "lost at the rollback of the boot that saved this report",
    );
    assert!(
        saved.contains("\nlost at the rollback of the boot that saved this report:\n"),
        "{saved}"
    );
    assert!(!saved.contains("would be lost"), "{saved}");
    assert!(saved.contains("/etc/hostname"), "{saved}");
    // The live diff still speaks of the rollback to come.
    assert!(r
        .to_text(20)
        .contains("would be lost at the next rollback:"));
    let empty = Report::new(
        "btrfs",
        b"/",
        DiffOutput {
            changes: vec![],
            truncated: None,
            unlisted: Vec::new(),
        },
        &Classifier::new(&cfg()),
    );
    assert!(empty
        .to_text_saved(20, "lost")
        .contains("nothing was lost."));
}

#[test]
fn a_wide_top_level_is_folded() {
    let changes: Vec<Change> = (0..200)
        .map(|i| added(format!("/d{i:03}/f").as_bytes(), FileType::File, Some(1)))
        .collect();
    let text = tmpfs_report(changes).to_text(20);
    let groups = text.lines().filter(|l| l.contains("/d")).count();
    assert_eq!(groups, 19, "{text}");
    assert!(text.contains("181 entries"), "{text}");
}

/// Regression: a change of the root directory itself was shown as "//".
#[test]
fn root_directory_change_is_shown_as_slash() {
    let out = DiffOutput {
        changes: vec![
            Change {
                path: b"/".to_vec(),
                kind: ChangeKind::Metadata,
                file_type: FileType::Dir,
                size: None,
            },
            added(b"/etc/hostname", FileType::File, Some(4)),
        ],
        truncated: None,
        unlisted: Vec::new(),
    };
    // Nothing persisted, so `/` itself is lost and listed.
    let nothing_kept = crate::config::parse("[root]\nbackend = \"tmpfs\"\n", "t.toml").unwrap();
    let text = Report::new("btrfs", b"/", out, &Classifier::new(&nothing_kept)).to_text(40);
    assert!(!text.contains("//"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_end().ends_with("(dir)             /")
                || l.trim() == "(dir)             /"
                || (l.contains("(dir)") && l.trim_end().ends_with(" /"))),
        "{text}"
    );
    assert!(text.contains("/etc/hostname"), "{text}");
}

/// Regression: on ZFS, `zfs diff` reports `M /` when a top-level entry appears, and `/` was
/// classed as lost although it is on the way to every persisted path (the VM reboot test saw
/// "6 lost" for 5 darlings).
#[test]
fn root_directory_is_persisted_when_anything_is() {
    let c = Classifier::new(&cfg());
    assert_eq!(c.classify_entry(b"/", FileType::Dir).0, Class::Persisted);
    let nothing_kept = crate::config::parse("[root]\nbackend = \"tmpfs\"\n", "t.toml").unwrap();
    assert_eq!(
        Classifier::new(&nothing_kept)
            .classify_entry(b"/", FileType::Dir)
            .0,
        Class::Lost
    );
}

#[test]
fn small_diffs_list_every_path() {
    let out = DiffOutput {
        changes: vec![
            added(b"/a", FileType::Dir, None),
            added(b"/a/b", FileType::File, Some(1)),
            added(b"/c", FileType::File, Some(2048)),
        ],
        truncated: Some(Truncation::MaxEntries(3)),
        unlisted: Vec::new(),
    };
    let text = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg())).to_text(40);
    assert!(text.contains("/a/b"), "{text}");
    assert!(text.contains("2.0 KiB  /c"), "{text}");
    assert!(text.contains("stopped after 3 entries"), "{text}");
}

#[test]
fn streamed_json_equals_the_tree() {
    let out = DiffOutput {
        changes: vec![
            added(b"/a", FileType::Dir, None),
            added(b"/a/\xff", FileType::File, Some(3)),
        ],
        truncated: None,
        unlisted: Vec::new(),
    };
    let r = Report::new("tmpfs", b"/r", out, &Classifier::new(&cfg()));
    let mut buf = Vec::new();
    r.write_json(&mut buf).unwrap();
    let parsed: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(parsed, r.to_json());
}

#[test]
fn lost_paths_a_preset_would_keep_say_so() {
    let out = DiffOutput {
        changes: vec![
            added(b"/var/lib/NetworkManager", FileType::Dir, None),
            added(
                b"/var/lib/NetworkManager/timestamps",
                FileType::File,
                Some(10),
            ),
            added(b"/var/lib/bluetooth/AA/info", FileType::File, Some(5)),
            added(b"/var/log/journal/x", FileType::File, Some(5)),
            added(b"/srv/x", FileType::File, Some(1)),
        ],
        truncated: None,
        unlisted: Vec::new(),
    };
    // bluetooth in use, but its level has no store; networkmanager not in use at all.
    let config = crate::config::parse(
        "presets = [\"bluetooth\"]\n[levels]\nsecret = \"/vault\"\n[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n",
        "t.toml",
    )
    .unwrap();
    let r = Report::new("tmpfs", b"/r", out, &Classifier::new(&config));
    let text = r.to_text(40);
    assert!(
        text.contains("lost, but a preset would keep them:"),
        "{text}"
    );
    assert!(text.contains("2 entries       10 B  /var/lib/NetworkManager: would be kept by preset networkmanager at level transient: add it to presets"), "{text}");
    assert!(text.contains("/var/lib/bluetooth: would be kept by preset bluetooth at level normal, which this config leaves out"), "{text}");
    let v = r.to_json();
    let by_path = |p: &str| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_path("/var/lib/NetworkManager/timestamps")["preset"]["name"],
        "networkmanager"
    );
    assert_eq!(
        by_path("/var/lib/NetworkManager/timestamps")["preset"]["level"],
        "transient"
    );
    assert!(by_path("/srv/x").get("preset").is_none());
    // Under persisted /var/log: its why says what is wrong, not a preset.
    assert!(by_path("/var/log/journal/x")["why"].is_string());
    assert!(by_path("/var/log/journal/x").get("preset").is_none());
    assert!(!text.contains("/var/log/journal: would be kept"), "{text}");
    let mut buf = Vec::new();
    r.write_json(&mut buf).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&buf).unwrap(), v);
}
