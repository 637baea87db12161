//! The CLI without root: check, plan --json, diff --json on a plain directory tree, and the
//! exact error texts for bad configs.

use assert_cmd::Command;
use std::path::Path;
use std::process::Output;

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

/// `darlings <args> --root <root>` with `config`.
fn run_on(config: &Path, args: &[&str], root: &Path) -> Output {
    darlings(config)
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

/// The stdout of a run that must have succeeded.
fn stdout_ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The JSON on stdout of a run that must have succeeded.
fn json_ok(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

const GOOD: &str = "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/var/cache/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\nfiles = [\"/etc/machine-id\"]\n";

#[test]
fn plan_json_lists_steps_in_order() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let v = json_ok(&run_on(&cfg, &["plan", "--json"], d.path()));
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
    let v = json_ok(&run_on(&cfg, &["diff", "--json"], &root));
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

    let text = stdout_ok(&run_on(&cfg, &["diff"], &root));
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
    let out = run_on(&cfg, &["check"], d.path());
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
#[cfg(feature = "failpoints")]
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

const PRESETS: &str = "presets = [\"openssh\", \"networkmanager\"]\n[levels]\nnormal = \"/persist\"\nsecret = \"/persist/secret\"\n[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n";

#[test]
fn plan_shows_which_preset_and_level_each_entry_came_from() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", PRESETS);
    let out = run_on(&cfg, &["plan"], d.path());
    let text = stdout_ok(&out);
    assert!(text.contains("symlink file /etc/ssh/ssh_host_ed25519_key <- /persist/secret/etc/ssh/ssh_host_ed25519_key"), "{text}");
    assert!(
        text.contains("; from preset openssh, level secret]"),
        "{text}"
    );
    assert!(text.contains("directory /etc/NetworkManager/system-connections <- /persist/secret/etc/NetworkManager/system-connections  [nosuid,nodev; created as 0:0 0700, parents 0:0 0755; from preset networkmanager, level secret]"), "{text}");
    assert!(text.contains("note: preset networkmanager: 1 entry at level transient left out: no store for level transient"), "{text}");
    let line = text.lines().find(|l| l.contains("/var/log <-")).unwrap();
    assert!(!line.contains("preset"), "{line}");

    let out = run_on(&cfg, &["plan", "--json"], d.path());
    let v = json_ok(&out);
    let steps = v["steps"].as_array().unwrap();
    let step = |t: &str| steps.iter().find(|s| s["target"] == t).unwrap();
    assert_eq!(step("/etc/ssh/ssh_host_rsa_key")["preset"], "openssh");
    assert_eq!(step("/etc/ssh/ssh_host_rsa_key")["level"], "secret");
    assert!(step("/var/log").get("preset").is_none());
    assert!(String::from_utf8_lossy(&out.stderr).contains("note: preset networkmanager"));

    let out = darlings(&cfg)
        .args(["check", "--config-only"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("note: preset networkmanager: 1 entry at level transient left out"));
}

#[test]
fn readme_preset_table_is_generated_from_the_data() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let out = darlings(&cfg)
        .args(["presets", "--markdown"])
        .output()
        .unwrap();
    let table = stdout_ok(&out);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = "<!-- presets table: generated by `darlings presets --markdown` -->\n";
    let end = "<!-- end of presets table -->";
    let at = readme
        .find(start)
        .expect("README has the presets table markers")
        + start.len();
    let len = readme[at..]
        .find(end)
        .expect("README closes the presets table");
    assert_eq!(
        &readme[at..at + len],
        table,
        "README's preset table is stale: paste `darlings presets --markdown` between the markers"
    );

    let out = darlings(&cfg).args(["presets", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "darlings.presets/1");
    assert!(v["presets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "openssh" && p["nixos"]["option"] == "programs.ssh.persistence"));
}

#[test]
fn diff_names_the_preset_that_would_keep_a_lost_path() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/bluetooth/AA")).unwrap();
    std::fs::write(root.join("var/lib/bluetooth/AA/info"), "k").unwrap();
    let text = stdout_ok(&run_on(&cfg, &["diff"], &root));
    assert!(text.contains("/var/lib/bluetooth: would be kept by preset bluetooth at level normal: add it to presets"), "{text}");
}

/// A root as a NixOS machine leaves it after a day on an empty blank: what activation and
/// systemd make again, caches, scratch, and the state a user would regret.
fn lived_in_root(root: &Path) {
    let dirs = [
        "etc/static",
        "etc/ssh",
        "var/lib/nixos",
        "var/lib/systemd/timers",
        "var/lib/postgresql/16/base/1",
        "var/lib/myapp/db",
        "var/log/journal/abc",
        "var/cache/man",
        "tmp/x",
        "var/tmp",
        "home/alice/.config/fish",
        "home/alice/.local/share/fish",
        "home/alice/.cache/mesa",
        "home/alice/.ssh",
        "home/alice/src/proj",
        "root",
        "srv/www",
        "var/lib/NetworkManager",
    ];
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let files: &[(&str, &str)] = &[
        ("etc/NIXOS", ""), ("etc/.clean", ""), ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
        ("etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\nnobody:x:65534:65534::/var/empty:/bin/false\n"),
        ("etc/group", "root:x:0:\nusers:x:100:\n"), ("etc/adjtime", "0.0 0 0.0\n0\nUTC\n"),
        ("etc/ssh/ssh_host_ed25519_key", "KEY"), ("etc/ssh/ssh_host_ed25519_key.pub", "PUB"),
        ("var/lib/nixos/uid-map", "{}"), ("var/lib/systemd/timers/stamp-fstrim.timer", ""),
        ("var/lib/postgresql/16/base/1/123", &"p".repeat(8192)), ("var/lib/myapp/db/data", &"d".repeat(9000)),
        ("var/log/journal/abc/system.journal", "j"), ("var/cache/man/index.db", "c"),
        ("tmp/x/y", "t"), ("home/alice/.config/fish/config.fish", "set x"),
        ("home/alice/.local/share/fish/fish_history", "- cmd: ls"), ("home/alice/.cache/mesa/x", "c"),
        ("home/alice/.ssh/known_hosts", "h"), ("home/alice/.bash_history", "ls"),
        ("home/alice/src/proj/main.rs", "fn main() {}"), ("root/.bash_history", "reboot"),
        ("srv/www/index.html", "<p>"), ("var/lib/NetworkManager/timestamps", "t"),
    ];
    for (p, text) in files {
        std::fs::write(root.join(p), text).unwrap();
    }
    std::os::unix::fs::symlink("/etc/static/bashrc", root.join("etc/bashrc")).unwrap();
}

#[test]
fn diff_suggest_on_a_lived_in_root() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/srv/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n");
    let root = d.path().join("root");
    lived_in_root(&root);
    let v = json_ok(&run_on(&cfg, &["diff", "--suggest", "--json"], &root));
    let shown: Vec<String> = v["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s["kind"].as_str().unwrap() {
            "preset" => format!(
                "preset {} {}",
                s["preset"].as_str().unwrap(),
                s["level"].as_str().unwrap()
            ),
            k => match s["user"].as_str() {
                Some(u) => format!("{k} ~{u}/{}", s["path"].as_str().unwrap()),
                None => format!("{k} {}", s["path"].as_str().unwrap()),
            },
        })
        .collect();
    let mut presets: Vec<&String> = shown.iter().filter(|s| s.starts_with("preset")).collect();
    presets.sort();
    assert_eq!(
        presets,
        [
            "preset machine-id normal",
            "preset networkmanager transient",
            "preset nixos-ids important",
            "preset openssh secret",
            "preset postgresql important",
            "preset systemd-timers normal",
        ]
    );
    let rest: Vec<&String> = shown.iter().filter(|s| !s.starts_with("preset")).collect();
    // Presets first, then ranked by bytes: the application's database first.
    assert!(
        shown[..6].iter().all(|s| s.starts_with("preset")),
        "{shown:?}"
    );
    assert_eq!(rest[0], "directory /var/lib/myapp", "{rest:?}");
    for want in [
        "file /etc/adjtime",
        "file ~alice/.bash_history",
        "directory ~alice/.config/fish",
        "directory ~alice/.local/share/fish",
        "directory ~alice/.ssh",
        "directory ~alice/src",
        "file ~root/.bash_history",
    ] {
        assert!(
            rest.iter().any(|s| *s == want),
            "{want} missing from {rest:?}"
        );
    }
    // Never caches, scratch, what activation makes, the persisted /var/log, the ignored /srv.
    for never in [
        "/var/cache",
        "/tmp",
        "/etc/passwd",
        "/etc/NIXOS",
        "/etc/bashrc",
        "/var/log",
        "/srv",
        ".cache",
        "/etc/static",
    ] {
        assert!(
            !shown.iter().any(|s| s.contains(never)),
            "{never} in {shown:?}"
        );
    }

    // The TOML form, merged into the config beside a [levels] table, is accepted as it is.
    let toml = stdout_ok(&run_on(
        &cfg,
        &["diff", "--suggest", "--store", "/persist2"],
        &root,
    ));
    let merged = write(d.path(), "merged.toml", &format!("{toml}\n[levels]\nnormal = \"/persist2\"\nsecret = \"/persist2/secret\"\ntransient = \"/persist2\"\n[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/srv/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n"));
    let check = darlings(&merged)
        .args(["check", "--config-only"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{toml}\n{check:?}");

    // And once merged, the same root has nothing left to suggest but what no rule places.
    let after = json_ok(&run_on(&merged, &["diff", "--suggest", "--json"], &root));
    assert_eq!(after["suggestions"].as_array().unwrap().len(), 0, "{after}");

    let nix = stdout_ok(&run_on(&cfg, &["diff", "--suggest", "--nix"], &root));
    assert!(
        nix.contains("darlings.persistence.\"/persist\" = {"),
        "{nix}"
    );
    assert!(nix.contains("users.\"alice\" = {"), "{nix}");
}

/// What `darlings check --config-only` says on stderr with DARLINGS_FAILPOINT=`step`, which it
/// must refuse.
fn failpoint_refusal(step: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let out = darlings(&cfg)
        .env("DARLINGS_FAILPOINT", step)
        .args(["check", "--config-only"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(feature = "failpoints")]
#[test]
fn a_misspelt_failpoint_is_refused_instead_of_never_firing() {
    let err = failpoint_refusal("exchnage");
    assert!(
        err.contains("unknown failpoint \"exchnage\" in DARLINGS_FAILPOINT; the steps are make-old-roots, remove-stray, snapshot, exchange,"),
        "{err}"
    );
}

/// A build without the feature must not ignore a crash test's variable: the test would pass
/// without ever crashing.
#[cfg(not(feature = "failpoints"))]
#[test]
fn a_failpoint_is_refused_by_a_build_without_failpoints() {
    let err = failpoint_refusal("exchange");
    assert!(
        err.contains(
            "this darlings was built without failpoints; unset DARLINGS_FAILPOINT=exchange"
        ),
        "{err}"
    );
}

#[test]
fn adopt_refuses_with_exact_texts_before_touching_anything() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "c.toml", GOOD);
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("opt/tool")).unwrap();
    // A work dir of its own: a normal user cannot take /run/darlings/lock (the fresh-machine
    // tier's newcomer found it).
    let work = d.path().join("run");
    let run = |args: &[&str]| {
        darlings(&cfg)
            .arg("--work-dir")
            .arg(&work)
            .args(["adopt", "--root"])
            .arg(&root)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["/opt/tool", "/proc/self", "/var/log/app"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "darlings: error: refusing to adopt, nothing was changed:\n  /opt/tool is not in config {}; pass --store with one of its stores (/persist) to adopt it there, and --write-config to add it\n  /proc/self is or contains /proc, which darlings never persists\n  /var/log/app is inside persisted directory /var/log, which every boot binds: its content is /var/log's; adopt /var/log\n",
            cfg.display()
        )
    );
    // --all-suggested finds /opt/tool through diff --suggest, and the same checks refuse it.
    let out = run(&["--all-suggested", "--dry-run"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("store ")
            && String::from_utf8_lossy(&out.stderr)
                .contains("does not exist; mount the persistent filesystem there and adopt again"),
        "{out:?}"
    );
    assert!(
        std::fs::read_dir(&root).unwrap().count() == 1,
        "adopt made something in the root"
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), GOOD);
}
