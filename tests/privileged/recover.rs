//! `darlings hold`, `old-roots`, `restore` and `orphans` end to end through the CLI: a hold on a
//! btrfs loop device skips exactly one rollback and yields to the kernel command line; old roots
//! kept by a real boot are listed with their report and restored from; orphans of a store on a
//! real tmpfs are listed and removed only as asked. Every refusal leaves the trees as they were.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::boot::{phases, Machine};
use crate::btrfs_rollback::e2s;
use crate::loopdev::sh;
use crate::{text, tree, Case, Sandbox, TestResult};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every path with its content (files), link target (symlinks), mode and owner, for "nothing
/// changed" checks.
fn snapshot(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(&p);
            let (mode, uid) = m.as_ref().map(|m| (m.mode(), m.uid())).unwrap_or((0, 0));
            let body = if m.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                format!("-> {:?}", std::fs::read_link(&p).ok())
            } else if m.as_ref().is_ok_and(|m| m.is_file()) {
                format!("{:?}", std::fs::read(&p).ok())
            } else {
                String::new()
            };
            format!("{} {mode:o} {uid} {body}", p.display())
        })
        .collect()
}

fn hold_skips_exactly_one_rollback_and_the_kernel_command_line_wins() -> TestResult {
    let mut m = Machine::new("")?;
    let flag = m.top("darlings-hold");

    // --dry-run writes nothing.
    let dry = m.run(&["hold", "--dry-run"])?;
    check!(dry.status.success(), "hold --dry-run: {}", text(&dry));
    check!(stdout(&dry).starts_with("would: hold"), "{}", stdout(&dry));
    check!(!flag.exists(), "hold --dry-run wrote the flag");

    let h = m.run(&["hold"])?;
    check!(h.status.success(), "hold: {}", text(&h));
    check!(flag.is_file(), "no flag in the top level after hold");

    // The held boot: nothing rolled back, no diff, the flag consumed.
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    check!(!m.rolled_back(), "a held boot rolled back");
    check!(!flag.exists(), "the held boot left the flag");
    let rec = m.record()?;
    check!(rec["outcome"] == "held", "outcome: {rec}");
    check!(
        phases(&rec) == ["early config ok", "early preflight ok", "early hold ok"],
        "phases: {:?}",
        phases(&rec)
    );
    check!(rec["report"].is_null(), "a held boot made a report: {rec}");
    // The late stage of the held boot binds the stores as usual and keeps the outcome.
    m.mount_root_and_store()?;
    let late = m.boot("late")?;
    check!(late.status.success(), "late: {}", text(&late));
    check!(
        m.sysroot.join("var/lib/keep/data").exists(),
        "the held boot did not bind the store"
    );
    check!(
        m.record()?["outcome"] == "held",
        "after late: {}",
        m.record()?
    );
    let st = m.run(&["status"])?;
    check!(st.status.success(), "status: {}", text(&st));
    check!(
        stdout(&st).contains("rollback skipped: held by `darlings hold` at 20"),
        "status: {}",
        stdout(&st)
    );
    // Shut down: the next early stage finds the root unmounted, as an initrd does.
    sh(&format!("umount -R {}", m.sysroot.display()))?;
    m.fs.mounts.clear();

    // Exactly once: the next boot rolls back.
    let early = m.boot("early")?;
    check!(early.status.success(), "second early: {}", text(&early));
    check!(m.rolled_back(), "the hold held twice");
    check!(m.record()?["outcome"] == "ok", "outcome: {}", m.record()?);

    // The kernel command line wins: darlings.skip=0 rolls back, and the hold is spent.
    sh(&format!("echo again > {}", m.top("root/again").display()))?;
    let h = m.run(&["hold"])?;
    check!(h.status.success(), "hold: {}", text(&h));
    m.set_cmdline("quiet darlings.skip=0")?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    check!(
        !m.top("root/again").exists(),
        "darlings.skip=0 did not win over the hold"
    );
    check!(
        !flag.exists(),
        "an overridden hold stayed for the next boot"
    );
    check!(
        stderr(&early).contains("overridden by darlings.skip=0"),
        "no word of the override: {}",
        stderr(&early)
    );
    m.set_cmdline("quiet")?;

    // --cancel removes a hold; the boot after rolls back.
    let h = m.run(&["hold"])?;
    check!(h.status.success(), "hold: {}", text(&h));
    let c = m.run(&["hold", "--cancel"])?;
    check!(c.status.success(), "hold --cancel: {}", text(&c));
    check!(!flag.exists(), "--cancel left the flag");
    sh(&format!("echo x > {}", m.top("root/cancelled").display()))?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    check!(!m.top("root/cancelled").exists(), "a cancelled hold held");
    Ok(())
}

fn hold_flag_planted_as_a_symlink_or_unreadable_is_not_honoured() -> TestResult {
    let m = Machine::new("")?;
    let flag = m.top("darlings-hold");
    let target = m.fs.base.join("elsewhere");
    std::fs::write(&target, "2020-01-01T00:00:00Z\n").map_err(e2s)?;
    std::os::unix::fs::symlink(&target, &flag).map_err(e2s)?;
    let h = m.run(&["hold"])?;
    check!(!h.status.success(), "hold over a symlink: {}", text(&h));
    check!(
        stderr(&h).contains("is a symlink") && stderr(&h).contains("--cancel"),
        "{}",
        stderr(&h)
    );
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    check!(m.rolled_back(), "a symlinked flag was honoured");
    check!(m.record()?["outcome"] == "ok", "outcome: {}", m.record()?);
    check!(
        stderr(&early).contains("is a symlink"),
        "no warning of the symlink: {}",
        stderr(&early)
    );
    check!(
        std::fs::read(&target).map_err(e2s)? == b"2020-01-01T00:00:00Z\n",
        "the symlink's target was touched"
    );
    let c = m.run(&["hold", "--cancel"])?;
    check!(c.status.success(), "cancel: {}", text(&c));
    check!(
        std::fs::symlink_metadata(&flag).is_err() && target.exists(),
        "--cancel did not remove just the link"
    );

    // A flag that cannot be read as one (a directory there): the boot rolls back, never fails.
    std::fs::create_dir(&flag).map_err(e2s)?;
    sh(&format!("echo x > {}", m.top("root/again").display()))?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    check!(!m.top("root/again").exists(), "an unreadable flag held");
    check!(m.record()?["outcome"] == "ok", "outcome: {}", m.record()?);
    Ok(())
}

/// A boot that keeps its old root, with the report saved: what old-roots and restore work on.
fn booted_with_an_old_root() -> Result<(Machine, String), String> {
    let mut m = Machine::new("keep = { count = 5 }\n")?;
    let t = m.fs.top.display().to_string();
    sh(&format!(
        "set -e; cd {t}/root; chmod 0640 etc/darling; chown 1234:5678 etc/darling; \
         touch -d 2020-02-02T02:02:02Z etc/darling; mkdir -p var/lib/keep; echo fromroot > var/lib/keep/fromroot; echo old > var/lib/keep/data; \
         ln -s /etc/darling home/u/link"
    ))?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    m.mount_root_and_store()?;
    let late = m.boot("late")?;
    check!(late.status.success(), "late: {}", text(&late));
    let names: Vec<String> = std::fs::read_dir(m.top("old-roots"))
        .map_err(e2s)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    check!(names.len() == 1, "old roots: {names:?}");
    Ok((m, names[0].clone()))
}

fn old_roots_lists_the_kept_root_with_its_size_and_report() -> TestResult {
    let (m, name) = booted_with_an_old_root()?;
    let sysroot = m.sysroot.display().to_string();
    let out = m.run(&["old-roots", "--json", "--sizes", "--root", &sysroot])?;
    check!(out.status.success(), "old-roots: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(e2s)?;
    check!(v["schema"] == "darlings.old-roots/1", "{v}");
    let list = v["old_roots"].as_array().cloned().unwrap_or_default();
    check!(list.len() == 1 && list[0]["name"] == name.as_str(), "{v}");
    let rep = m.record()?["report"]["stamp"]
        .as_str()
        .unwrap_or("")
        .to_string();
    check!(
        list[0]["report"] == rep.as_str(),
        "report {} for stamp {rep}",
        list[0]["report"]
    );
    // The walk counts what the old root's files hold: at least the darling's and the notes.
    let bytes = list[0]["bytes"].as_u64().unwrap_or(0);
    check!(
        list[0]["bytes_counted_by"] == "walked" && bytes >= 14,
        "size {bytes} by {}",
        list[0]["bytes_counted_by"]
    );
    // Without --sizes and without quotas: unknown, saying why.
    let out = m.run(&["old-roots", "--root", &sysroot])?;
    check!(
        out.status.success() && stdout(&out).contains("size unknown: quotas are off"),
        "{}",
        text(&out)
    );
    // With quotas on: the qgroup's exclusive size.
    sh(&format!(
        "btrfs quota enable {t} && btrfs quota rescan -w {t}",
        t = m.fs.top.display()
    ))?;
    let out = m.run(&["old-roots", "--json", "--root", &sysroot])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(e2s)?;
    check!(
        v["old_roots"][0]["bytes_counted_by"] == "qgroup exclusive"
            && v["old_roots"][0]["referenced"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    Ok(())
}

fn restore_copies_back_with_owner_mode_times_and_refuses_what_it_must() -> TestResult {
    let (m, name) = booted_with_an_old_root()?;
    let sysroot = m.sysroot.display().to_string();
    let restore = |args: &[&str]| {
        let mut a = vec!["restore", name.as_str()];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--root", &sysroot]);
        m.run(&a)
    };
    let before = snapshot(&m.sysroot);

    // Bad input: a clear error each, nothing changed.
    let bad: &[(&[&str], &str)] = &[
        (&["/etc/nope"], "/etc/nope is not in the old root"),
        (&["/etc/darling", "/etc/nope"], "nothing was copied"),
        (&["etc/darling"], "is relative"),
        (&["/etc/../etc/darling"], "normal form"),
        (&["/home/u/link"], "is a symlink in the old root"),
        (&["/var/lib/keep/data"], "exists; restore never replaces"),
        (
            &["/etc/darling", "--into", "store"],
            "no entry of the config persists /etc/darling",
        ),
        (&["/nodir/x"], "is not in the old root"),
        (&["/home/u"], "does not exist; create it first"),
    ];
    for (args, want) in bad {
        let out = restore(args)?;
        check!(!out.status.success(), "{args:?} succeeded: {}", text(&out));
        check!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = m.run(&[
        "restore",
        "2000-01-01T00:00:00Z",
        "/etc/darling",
        "--root",
        &sysroot,
    ])?;
    check!(
        !out.status.success() && stderr(&out).contains(&format!("kept old roots: {name}")),
        "unknown old root: {}",
        text(&out)
    );
    let out = restore(&["/etc/darling", "/home", "--dry-run"])?;
    check!(out.status.success(), "dry run: {}", text(&out));
    check!(
        stdout(&out).contains("would: copy file /etc/darling"),
        "{}",
        stdout(&out)
    );
    check!(
        snapshot(&m.sysroot) == before,
        "a refusal or dry run changed the root"
    );

    // Into the root: content, owner, mode, times; a directory with its symlink as a symlink.
    let out = restore(&["/etc/darling", "/home"])?;
    check!(out.status.success(), "restore: {}", text(&out));
    let f = m.sysroot.join("etc/darling");
    let meta = std::fs::symlink_metadata(&f).map_err(e2s)?;
    check!(std::fs::read(&f).map_err(e2s)? == b"junk\n", "content");
    check!(
        meta.uid() == 1234 && meta.gid() == 5678 && meta.permissions().mode() & 0o7777 == 0o640,
        "owner/mode {}:{} {:o}",
        meta.uid(),
        meta.gid(),
        meta.mode()
    );
    check!(meta.mtime() == 1_580_608_922, "mtime {}", meta.mtime());
    check!(
        std::fs::read_link(m.sysroot.join("home/u/link")).map_err(e2s)?
            == Path::new("/etc/darling"),
        "the symlink was not restored as a symlink"
    );
    check!(
        std::fs::read(m.sysroot.join("home/u/notes")).map_err(e2s)? == b"lost\n",
        "notes"
    );
    // Twice: refused, the first copy untouched.
    let out = restore(&["/etc/darling"])?;
    check!(
        !out.status.success() && stderr(&out).contains("move it aside"),
        "{}",
        text(&out)
    );

    // Into the store that persists it.
    let out = restore(&["/var/lib/keep/fromroot", "--into", "store"])?;
    check!(out.status.success(), "restore into store: {}", text(&out));
    check!(
        std::fs::read(m.top("persist/var/lib/keep/fromroot")).map_err(e2s)? == b"fromroot\n",
        "not in the store"
    );
    // A copy that fails half-way (a read-only /etc) says what it had already restored.
    let etc = m.sysroot.join("etc");
    sh(&format!(
        "set -e; rm -rf {r}/home {r}/etc/darling; mount --bind {e} {e}; mount -o remount,bind,ro {e}",
        r = m.sysroot.display(),
        e = etc.display()
    ))?;
    let out = restore(&["/home", "/etc/darling"])?;
    sh(&format!("umount {}", etc.display()))?;
    check!(
        !out.status.success()
            && stderr(&out).contains(
                "cannot restore /etc/darling (already restored, and left in place: /home)"
            ),
        "half-way: {}",
        text(&out)
    );
    check!(
        m.sysroot.join("home/u/notes").exists(),
        "the first copy went"
    );
    // The old root was only read: mounted read-only, unmounted after.
    check!(
        m.top(&format!("old-roots/{name}/etc/darling")).exists(),
        "the old root lost its file"
    );
    check!(
        !crate::mounts()
            .iter()
            .any(|p| p.contains(".darlings-btrfs-top-")),
        "a top-level mount was left behind"
    );
    Ok(())
}

const ORPHANS: &str = r#"
[root]
backend = "tmpfs"
[diff]
report-dir = "/persist/darlings-reports"
[[persist]]
store = "/persist"
directories = ["/var/log"]
files = ["/etc/machine-id"]
[persist.users.ghost]
directories = ["Documents"]
"#;

fn orphans_are_listed_and_removed_only_as_asked() -> TestResult {
    let sb = Sandbox::new(ORPHANS)?;
    let s = sb.store.display().to_string();
    sh(&format!(
        "set -e; cd {s}; mkdir -p var/log var/lib/old etc/ssh home/ghost/Documents darlings-reports; \
         echo kept > var/log/x; printf 12345 > var/lib/old/data; echo k > etc/ssh/key; \
         echo id > etc/machine-id; echo r > darlings-reports/1.json; echo doc > home/ghost/Documents/d; \
         mkdir .log.darlings-seed; ln -s /etc stray-link; touch -d 2021-01-01T00:00:00Z var/lib/old/data"
    ))?;
    let root = sb.root_str().to_string();
    let out = sb.run(&["orphans", "--json", "--root", &root]);
    check!(out.status.success(), "orphans: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(e2s)?;
    check!(v["schema"] == "darlings.orphans/1", "{v}");
    let mut paths: Vec<String> = v["orphans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["path"].as_str().map(String::from))
        .collect();
    paths.sort();
    check!(
        paths
            == [
                "/persist/etc/ssh",
                "/persist/stray-link",
                "/persist/var/lib"
            ],
        "orphans: {paths:?} in {v}"
    );
    let lib = v["orphans"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["path"] == "/persist/var/lib").cloned())
        .unwrap_or_default();
    check!(lib["bytes"] == 5 && lib["kind"] == "dir", "{lib}");
    check!(
        v["notes"]
            .to_string()
            .contains("user ghost's home is not known"),
        "{v}"
    );
    let text_out = sb.run(&["orphans", "--root", &root]);
    check!(
        stdout(&text_out).contains("/persist/var/lib"),
        "{}",
        text(&text_out)
    );

    let before = snapshot(&sb.store);
    let bad: &[(&[&str], &str)] = &[
        (&["/persist/var/log"], "not an orphan: /persist/var/log"),
        (
            &["/persist/var/lib", "/persist/nope"],
            "nothing was removed",
        ),
        (&["/persist/var/lib/old"], "not an orphan"),
        (&["persist/var/lib"], "is relative"),
        (&[], "stdin is not one"),
    ];
    for (paths, want) in bad {
        let mut a = vec!["orphans", "--root", &root, "--remove"];
        a.extend_from_slice(paths);
        let out = sb.run(&a);
        check!(!out.status.success(), "{paths:?} succeeded: {}", text(&out));
        check!(stderr(&out).contains(want), "{paths:?}: {}", stderr(&out));
    }
    let out = sb.run(&[
        "orphans",
        "--root",
        &root,
        "--dry-run",
        "--remove",
        "/persist/var/lib",
    ]);
    check!(
        out.status.success() && stdout(&out).contains("would: remove /persist/var/lib"),
        "{}",
        text(&out)
    );
    check!(
        snapshot(&sb.store) == before,
        "a refusal or dry run changed the store"
    );

    // On a terminal (script(1) gives it one): one question per orphan, only `y` removes.
    let cmd = format!(
        "{} --config {} --work-dir {} orphans --root {root} --remove",
        crate::BIN,
        sb.config.display(),
        sb.base.join("run").display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'n\\ny\\nN\\n' | script -qec '{cmd}' /dev/null"
        ))
        .output()
        .map_err(e2s)?;
    let said = stdout(&out);
    check!(out.status.success(), "interactive: {}", text(&out));
    check!(
        said.contains("remove /persist/etc/ssh (dir") && said.contains("[y/N]"),
        "no question: {said}"
    );
    check!(
        std::fs::symlink_metadata(sb.store.join("stray-link")).is_err()
            && sb.store.join("etc/ssh/key").exists()
            && sb.store.join("var/lib/old/data").exists(),
        "the answers were not followed: {said}"
    );
    let out = sb.run(&["orphans", "--root", &root, "--remove", "/persist/var/lib"]);
    check!(out.status.success(), "remove: {}", text(&out));
    check!(
        !sb.store.join("var/lib").exists()
            && std::fs::symlink_metadata(sb.store.join("stray-link")).is_err(),
        "not removed"
    );
    check!(
        sb.store.join("var/log/x").exists()
            && sb.store.join("etc/ssh/key").exists()
            && sb.store.join("home/ghost/Documents/d").exists()
            && sb.store.join("darlings-reports/1.json").exists(),
        "removed more than asked"
    );
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "hold_skips_exactly_one_rollback_and_the_kernel_command_line_wins",
            hold_skips_exactly_one_rollback_and_the_kernel_command_line_wins,
        ),
        (
            "hold_flag_planted_as_a_symlink_or_unreadable_is_not_honoured",
            hold_flag_planted_as_a_symlink_or_unreadable_is_not_honoured,
        ),
        (
            "old_roots_lists_the_kept_root_with_its_size_and_report",
            old_roots_lists_the_kept_root_with_its_size_and_report,
        ),
        (
            "restore_copies_back_with_owner_mode_times_and_refuses_what_it_must",
            restore_copies_back_with_owner_mode_times_and_refuses_what_it_must,
        ),
        (
            "orphans_are_listed_and_removed_only_as_asked",
            orphans_are_listed_and_removed_only_as_asked,
        ),
    ]
}
