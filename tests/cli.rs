//! The CLI without root: check, plan --json, diff --json on a plain directory tree, and the
//! exact error texts for bad configs.

use assert_cmd::Command;
use std::path::Path;

fn darlings(config: &Path) -> Command {
    let mut c = Command::cargo_bin("darlings").unwrap();
    c.arg("--config").arg(config).arg("--log").arg("stderr");
    c
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/var/cache/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\nfiles = [\"/etc/machine-id\"]\n";

#[test]
fn plan_json_lists_steps_in_order() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let out = darlings(&cfg)
        .args(["plan", "--json", "--root"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "darlings.plan/1");
    let targets: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["/etc/machine-id", "/var/log"]);
    assert_eq!(v["steps"][1]["source"], "/persist/var/log");
}

#[test]
fn diff_json_on_a_directory_tree() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let root = d.path().join("root");
    for p in ["var/log", "var/cache/apt", "home/alice"] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    std::fs::write(root.join("var/log/syslog"), "x").unwrap();
    std::fs::write(root.join("var/cache/apt/pkg"), "xx").unwrap();
    std::fs::write(root.join("home/alice/notes"), "hello").unwrap();
    std::os::unix::fs::symlink("/nowhere", root.join("home/alice/link")).unwrap();
    let out = darlings(&cfg)
        .args(["diff", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "darlings.diff/1");
    assert_eq!(v["backend"], "tmpfs");
    let class = |p: &str| {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .map(|e| e["class"].as_str().unwrap().to_string())
    };
    assert_eq!(class("/home/alice/notes").as_deref(), Some("lost"));
    assert_eq!(class("/home/alice/link").as_deref(), Some("lost"));
    // On the root beneath the persisted /var/log, not in the store: lost (issue 10).
    assert_eq!(class("/var/log/syslog").as_deref(), Some("lost"));
    assert_eq!(class("/var/log").as_deref(), Some("persisted"));
    assert_eq!(class("/var/cache/apt/pkg").as_deref(), Some("ignored"));
    assert_eq!(v["summary"]["lost"]["bytes"], 6);
    assert_eq!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/home/alice/link")
            .unwrap()["type"],
        "symlink"
    );

    let text = darlings(&cfg)
        .args(["diff", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("would be lost at the next rollback:"),
        "{text}"
    );
    assert!(text.contains("/home/alice/notes"), "{text}");
}

#[test]
fn check_reports_what_it_verified() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", "[root]\nbackend = \"tmpfs\"\n");
    let out = darlings(&cfg)
        .args(["check", "--root"])
        .arg(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("valid (tmpfs backend, 0 store(s))"),
        "{stdout}"
    );
    assert!(stdout.contains("plan of 0 step(s) checks out"), "{stdout}");
}

/// The exact texts a user sees for bad configs, and a non-zero exit.
#[test]
fn bad_config_error_texts() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"var/log\"]\n",
            "darlings: error: config CFG is invalid (1 problem):\n  CFG:5:16: directory \"var/log\" is relative; write it as an absolute path: \"/var/log\"\n",
        ),
        (
            "[root]\nbackend = \"tmpfs\"\ncolour = 1\n",
            "darlings: error: config CFG is invalid (1 problem):\n  CFG:3:1: unknown key `colour` in [root]; the keys here are `backend`, `size`, `device`, `subvolume`, `blank`, `keep`, `old-roots`, `dataset`, `destroy-newer-snapshots`\n",
        ),
        (
            "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/srv\", mode = 750 }]\n",
            "darlings: error: config CFG is invalid (1 problem):\n  CFG:5:40: mode 750 is a number, which TOML reads as decimal; write it as an octal string such as \"0750\" or as symbols such as \"u=rwx,g=rx,o=\"\n",
        ),
        (
            // What nixpkgs' pkgs.formats.toml writes: implicit tables, no [persist.users.alice].
            "root.backend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\n[[persist.users.alice.directories]]\npath = \"Documents\"\nmode = \"u=rwx\"\nuser = \"a b\"\n",
            "darlings: error: config CFG is invalid (1 problem):\n  CFG:7:8: user \"a b\" is not a valid user or group name; use letters, digits, '_', '-' or '.', or a numeric id\n",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = write(d.path(), &format!("c{i}.toml"), text);
        let out = darlings(&cfg).args(["plan"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let want = want.replace("CFG", cfg.to_str().unwrap());
        assert_eq!(String::from_utf8_lossy(&out.stderr), want);
        assert!(out.stdout.is_empty());
    }
    let missing = d.path().join("nope.toml");
    let out = darlings(&missing).arg("check").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("darlings: error: config {} not found; write one (see the config reference in README.md) or pass --config FILE\n", missing.display())
    );
}

#[test]
fn completions_and_man_page() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("unused.toml");
    let out = darlings(&cfg)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_darlings"));
    let man = darlings(&cfg).arg("man").output().unwrap();
    assert!(man.status.success() && String::from_utf8_lossy(&man.stdout).contains(".TH darlings"));
}

/// A crash inside `darlings boot` still gets the failure policy: the hooks stop the boot on exit
/// status 1 only, so a panic must become 0 (boot-old-root) or 1 (halt), never Rust's 101.
#[test]
fn boot_panic_follows_the_failure_policy() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let work = d.path().join("work");
    for (cmdline, code) in [("quiet", 0), ("quiet darlings.on-failure=halt", 1)] {
        let line = write(d.path(), "cmdline", cmdline);
        let out = darlings(&cfg)
            .arg("--work-dir")
            .arg(&work)
            .args(["boot", "--stage", "early", "--cmdline"])
            .arg(&line)
            .env("DARLINGS_FAILPOINT", "boot-panic")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{cmdline}: {err}");
        assert!(
            err.contains("darlings panicked: failpoint boot-panic hit"),
            "{err}"
        );
        let marker = std::fs::read_to_string(work.join("failed")).unwrap();
        assert!(marker.contains("this is a bug"), "{marker}");
    }
}

/// `status` without a record says why and exits 1; with a failed record it exits 1 too.
#[test]
fn status_without_a_boot_record() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let out = darlings(&cfg)
        .arg("--work-dir")
        .arg(d.path().join("none"))
        .arg("status")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("darlings: error: no boot record at ")
            && err.contains("darlings boot did not run in this boot's initrd"),
        "{err}"
    );
}

/// The shipped journal catalog loads into systemd's own catalog database (journalctl --root
/// writes beneath a scratch root, nothing on the machine) and journalctl lists both ids.
#[test]
fn journal_catalog_loads_into_journalctl() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("usr/lib/systemd/catalog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("initrd/darlings.catalog"),
        dir.join("darlings.catalog"),
    )
    .unwrap();
    let journalctl = |args: &[&str]| {
        std::process::Command::new("journalctl")
            .arg("--root")
            .arg(d.path())
            .args(args)
            .output()
            .expect("journalctl (systemd) is needed for this test; Debian 12 has it")
    };
    let up = journalctl(&["--update-catalog"]);
    assert!(up.status.success() && up.stderr.is_empty(), "{up:?}");
    assert!(d.path().join("var/lib/systemd/catalog/database").exists());
    let list = journalctl(&["--list-catalog"]);
    let text = String::from_utf8_lossy(&list.stdout);
    for (id, subject) in [
        (
            darlings::journal::MESSAGE_BOOT,
            "darlings: darlings boot: @DARLINGS_OUTCOME@",
        ),
        (
            darlings::journal::MESSAGE_LOST,
            "darlings: Lost state: @DARLINGS_LOST_ENTRIES@ entries",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{id} {subject}"))),
            "{id} not listed as {subject:?}:\n{text}"
        );
    }
    let dump = journalctl(&["--dump-catalog", darlings::journal::MESSAGE_LOST]);
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("Documentation: man:darlings(1)"), "{text}");
}
