//! `darlings boot`, `status`, `report` and `diff --save` end to end through the CLI, on a
//! btrfs loop device and on tmpfs roots: the early stage (preflight, diff, rollback) before the
//! root is mounted, the late stage (report into the store, binds) after, the failure policy and
//! the kernel command line.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::btrfs_rollback::e2s;
use crate::loopdev::{sh, Fs};
use crate::{Case, TestResult};

/// A btrfs "disk": `root` (its blank made by `darlings init`), `persist` holding the store's data, and a root
/// that has been used: darlings written since the blank, persisted data in the store.
pub(crate) struct Machine {
    pub(crate) fs: Fs,
    pub(crate) config: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) cmdline: PathBuf,
    /// Where the "initrd" mounts the new root.
    pub(crate) sysroot: PathBuf,
}

const CONFIG_TAIL: &str = r#"
[diff]
on-boot = true
report-dir = "/persist/var/log/darlings"

[[persist]]
store = "/persist"
directories = ["/var/lib/keep"]
files = ["/etc/machine-id"]
"#;

impl Machine {
    pub(crate) fn new(extra_root: &str) -> Result<Machine, String> {
        let fs = Fs::btrfs("300M")?;
        let t = fs.top.display().to_string();
        sh(&format!(
            "set -e; cd {t}; btrfs -q subvolume create root; \
             btrfs -q subvolume create persist; mkdir -p persist/var/lib/keep; \
             echo precious > persist/var/lib/keep/data; echo 0123456789abcdef > persist/etc-machine-id"
        ))?;
        // The store layout mirrors the root: /etc/machine-id lives at persist/etc/machine-id.
        sh(&format!(
            "set -e; cd {t}/persist; mkdir etc; mv etc-machine-id etc/machine-id"
        ))?;
        let config = crate::btrfs_config(&fs, &format!("{extra_root}{CONFIG_TAIL}"))?;
        let m = Machine {
            work: fs.base.join("run-darlings"),
            cmdline: fs.base.join("cmdline"),
            sysroot: fs.base.join("sysroot"),
            config,
            fs,
        };
        m.set_cmdline("BOOT_IMAGE=/vmlinuz quiet")?;
        let init = m.run(&["init"])?;
        check!(init.status.success(), "init: {}", crate::text(&init));
        // The running system's writes since the blank.
        sh(&format!(
            "set -e; cd {t}/root; mkdir -p etc home/u; echo junk > etc/darling; echo lost > home/u/notes"
        ))?;
        std::fs::create_dir(&m.sysroot).map_err(e2s)?;
        Ok(m)
    }

    pub(crate) fn set_cmdline(&self, text: &str) -> TestResult {
        std::fs::write(&self.cmdline, format!("{text}\n")).map_err(e2s)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Result<Output, String> {
        crate::darlings(&self.config, &self.work)
            .arg("--log")
            .arg("stderr")
            .args(args)
            .output()
            .map_err(e2s)
    }

    pub(crate) fn boot(&self, stage: &str) -> Result<Output, String> {
        let root = self.sysroot.display().to_string();
        let cmdline = self.cmdline.display().to_string();
        self.run(&stage_args(stage, &root, &cmdline, None))
    }

    /// What the initrd does between the stages: the root subvolume at the sysroot, the store
    /// beneath it.
    pub(crate) fn mount_root_and_store(&mut self) -> TestResult {
        self.fs.mount_subvol("root", &self.sysroot)?;
        // Initrds make a mount point that the blank lacks (systemd, NixOS's stage 1 both do).
        let store = self.sysroot.join("persist");
        std::fs::create_dir_all(&store).map_err(e2s)?;
        self.fs.mount_subvol("persist", &store)?;
        Ok(())
    }

    pub(crate) fn record(&self) -> Result<serde_json::Value, String> {
        let bytes = std::fs::read(self.work.join("boot.json")).map_err(e2s)?;
        serde_json::from_slice(&bytes).map_err(e2s)
    }

    /// Runs `script` with `sh`, `set -e`, in the top level of the machine's disk.
    pub(crate) fn sh(&self, script: &str) -> Result<String, String> {
        sh(&format!("set -e; cd {}; {script}", self.fs.top.display()))
    }

    /// Whether the root lacks the running system's write (`etc/darling`, made by `new`): it was
    /// rolled back.
    pub(crate) fn rolled_back(&self) -> bool {
        !self.top("root/etc/darling").exists()
    }

    pub(crate) fn top(&self, rel: &str) -> PathBuf {
        self.fs.top.join(rel)
    }
}

/// The phases of an early stage with the diff on that went clean.
pub(crate) const EARLY_WITH_DIFF_OK: [&str; 4] = [
    "early config ok",
    "early preflight ok",
    "early diff ok",
    "early rollback ok",
];

pub(crate) fn phases(rec: &serde_json::Value) -> Vec<String> {
    rec["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{} {} {}",
                        p["stage"].as_str().unwrap_or("?"),
                        p["phase"].as_str().unwrap_or("?"),
                        if p["ok"].as_bool() == Some(true) {
                            "ok"
                        } else {
                            "FAILED"
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn lost_paths(report: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = report["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["class"] == "lost")
                .filter_map(|e| e["path"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn boot_btrfs_erases_darlings_saves_the_report_and_binds_the_store() -> TestResult {
    let mut m = Machine::new("")?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", crate::text(&early));
    check!(m.rolled_back(), "the darling survived the rollback");
    let pending = m.work.join("report-pending.json");
    check!(pending.exists(), "no pending report in the work dir");
    m.mount_root_and_store()?;
    let late = m.boot("late")?;
    check!(late.status.success(), "late: {}", crate::text(&late));

    let rec = m.record()?;
    check!(rec["schema"] == "darlings.boot/1", "schema: {rec}");
    check!(rec["outcome"] == "ok", "outcome: {rec}");
    check!(
        phases(&rec)
            == [
                &EARLY_WITH_DIFF_OK[..],
                &["late config ok", "late apply ok", "late report ok"]
            ]
            .concat(),
        "phases: {:?}",
        phases(&rec)
    );
    check!(
        !pending.exists(),
        "the pending report was not moved into the store"
    );
    check!(
        !m.work.join("failed").exists(),
        "failure marker on a clean boot"
    );

    // The report: in the store, 0600, named by UTC time, latest pointing at it.
    let path = rec["report"]["path"].as_str().unwrap_or("").to_string();
    check!(
        path.starts_with("/persist/var/log/darlings/2") && path.ends_with("Z.json"),
        "report path {path}"
    );
    check!(rec["report"]["saved"] == true, "report not saved: {rec}");
    let on_disk = m.sysroot.join(path.trim_start_matches('/'));
    let meta = std::fs::metadata(&on_disk).map_err(e2s)?;
    check!(
        meta.permissions().mode() & 0o777 == 0o600,
        "report mode {:o}",
        meta.mode()
    );
    let dir = on_disk.parent().unwrap_or(Path::new("/"));
    let latest = std::fs::read_link(dir.join("latest.json")).map_err(e2s)?;
    check!(
        Some(latest.as_os_str()) == on_disk.file_name(),
        "latest.json -> {latest:?}"
    );
    check!(dir.join("latest.txt").exists(), "no latest.txt");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&on_disk).map_err(e2s)?).map_err(e2s)?;
    check!(
        lost_paths(&report) == ["/etc/darling", "/home", "/home/u", "/home/u/notes"],
        "lost: {:?}",
        lost_paths(&report)
    );
    check!(rec["report"]["lost"] == 4, "summary: {}", rec["report"]);

    // The binds: persisted data visible in the new root.
    let data = std::fs::read(m.sysroot.join("var/lib/keep/data")).map_err(e2s)?;
    check!(data == b"precious\n", "persisted data: {data:?}");
    let mid = std::fs::read(m.sysroot.join("etc/machine-id")).map_err(e2s)?;
    check!(mid == b"0123456789abcdef\n", "machine-id: {mid:?}");

    // status: exit 0, the phases, the report.
    let st = m.run(&["status"])?;
    let out = String::from_utf8_lossy(&st.stdout).to_string();
    check!(st.status.success(), "status: {}", crate::text(&st));
    check!(
        out.starts_with("darlings boot: ok (backend btrfs"),
        "status: {out}"
    );
    check!(
        out.contains(&path) && out.contains("4 lost"),
        "status: {out}"
    );

    // report: the latest, read back from the store beneath the root.
    let sysroot = m.sysroot.display().to_string();
    let rep = m.run(&["report", "--json", "--root", &sysroot])?;
    check!(rep.status.success(), "report: {}", crate::text(&rep));
    check!(
        rep.stdout == std::fs::read(&on_disk).map_err(e2s)?,
        "report --json is not the saved file"
    );
    let rep = m.run(&["report", "--root", &sysroot])?;
    let text = String::from_utf8_lossy(&rep.stdout).to_string();
    check!(
        rep.status.success() && text.contains("/home/u"),
        "report text: {text}"
    );
    Ok(())
}

fn boot_without_blank_boots_the_old_root_or_halts_as_configured() -> TestResult {
    let m = Machine::new("")?;
    m.sh("btrfs -q subvolume delete root-blank")?;
    let out = m.boot("early")?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    check!(
        out.status.success(),
        "boot-old-root must let the boot go on: {}",
        crate::text(&out)
    );
    check!(
        err.contains("booting the untouched root") && err.contains("root-blank not found"),
        "stderr: {err}"
    );
    check!(!m.rolled_back(), "the old root was touched");
    let marker = std::fs::read_to_string(m.work.join("failed")).map_err(e2s)?;
    check!(
        marker.contains("early preflight failed"),
        "marker: {marker}"
    );
    let st = m.run(&["status"])?;
    let so = String::from_utf8_lossy(&st.stdout).to_string();
    check!(
        st.status.code() == Some(1),
        "status exit {:?}",
        st.status.code()
    );
    check!(
        so.starts_with("darlings boot: failed") && so.contains("root-blank not found"),
        "status: {so}"
    );

    // The kernel command line asks for halt: exit 1, and the same untouched root.
    m.set_cmdline("quiet darlings.on-failure=halt")?;
    let out = m.boot("early")?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    check!(
        out.status.code() == Some(1),
        "halt exit {:?}: {err}",
        out.status.code()
    );
    check!(
        err.contains("on-failure = \"halt\": stop the boot"),
        "stderr: {err}"
    );
    check!(!m.rolled_back(), "the old root was touched");
    Ok(())
}

fn boot_with_darlings_skip_rolls_nothing_back_and_still_binds() -> TestResult {
    let mut m = Machine::new("")?;
    m.set_cmdline("darlings.skip")?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", crate::text(&early));
    check!(!m.rolled_back(), "darlings.skip rolled back");
    m.mount_root_and_store()?;
    let late = m.boot("late")?;
    check!(late.status.success(), "late: {}", crate::text(&late));
    check!(
        m.sysroot.join("var/lib/keep/data").exists(),
        "store not bound"
    );
    let rec = m.record()?;
    check!(rec["outcome"] == "skipped", "outcome: {rec}");
    check!(rec["report"].is_null(), "a report on a skipped boot: {rec}");
    let st = m.run(&["status"])?;
    check!(
        st.status.success(),
        "status of a skipped boot: {}",
        crate::text(&st)
    );
    Ok(())
}

fn boot_dry_run_changes_nothing_and_writes_no_record() -> TestResult {
    let m = Machine::new("")?;
    let root = m.sysroot.display().to_string();
    let cmdline = m.cmdline.display().to_string();
    let out = m.run(&[
        "boot",
        "--stage",
        "early",
        "--dry-run",
        "--root",
        &root,
        "--cmdline",
        &cmdline,
    ])?;
    let so = String::from_utf8_lossy(&out.stdout).to_string();
    check!(out.status.success(), "dry run: {}", crate::text(&out));
    check!(
        so.contains("would: ") && so.contains("diff: 4 lost"),
        "dry run output: {so}"
    );
    check!(!m.rolled_back(), "dry run erased the root");
    check!(!m.work.join("boot.json").exists(), "dry run wrote a record");
    Ok(())
}

/// A tmpfs root the initrd mounted itself (mode 1777 by default) with the store mounted beneath:
/// `late` makes it root:root 0755 and binds; at shutdown `diff --save` keeps the report.
fn boot_tmpfs_late_takes_the_initrds_tmpfs_and_diff_save_keeps_the_report() -> TestResult {
    let sc = Scratch::new()?;
    let (base, root, work) = (&sc.base, &sc.root, &sc.work);
    sh(&format!("mount -t tmpfs tmpfs {}", root.display()))?;
    let store = root.join("persist");
    std::fs::create_dir(&store).map_err(e2s)?;
    sh(&format!("mount -t tmpfs tmpfs {}", store.display()))?;
    let _cleanup = Unmount(vec![store.clone(), root.clone()]);
    std::fs::create_dir_all(store.join("var/lib/keep")).map_err(e2s)?;
    std::fs::write(store.join("var/lib/keep/data"), "precious\n").map_err(e2s)?;
    let config = base.join("darlings.toml");
    let tail = CONFIG_TAIL.replace(
        "store = \"/persist\"",
        "store = \"/persist\"\nhide-mounts = true",
    );
    std::fs::write(&config, format!("[root]\nbackend = \"tmpfs\"\n{tail}")).map_err(e2s)?;
    let utab = base.join("utab");
    let run = |args: &[&str]| {
        crate::darlings(&config, work)
            .arg("--log")
            .arg("stderr")
            .args(args)
            .output()
            .map_err(e2s)
    };
    let r = root.display().to_string();
    let c = sc.cmdline.display().to_string();
    let early = run(&stage_args("early", &r, &c, None))?;
    check!(early.status.success(), "early: {}", crate::text(&early));
    let u = utab.display().to_string();
    let late = run(&stage_args("late", &r, &c, Some(&u)))?;
    check!(late.status.success(), "late: {}", crate::text(&late));
    // hide-mounts: recorded with the targets the booted system sees (no root prefix).
    let ut = std::fs::read_to_string(&utab).map_err(e2s)?;
    check!(
        ut.lines()
            .any(|l| l.contains("TARGET=/var/lib/keep ") && l.contains("x-gvfs-hide")),
        "utab: {ut}"
    );
    check!(
        !ut.contains(&*r),
        "utab keeps the initrd's root prefix: {ut}"
    );
    let mode = std::fs::metadata(root).map_err(e2s)?.mode() & 0o7777;
    check!(mode == 0o755, "tmpfs root mode {mode:o}");
    check!(root.join("var/lib/keep/data").exists(), "store not bound");
    let st = run(&["status", "--json"])?;
    let rec: serde_json::Value = serde_json::from_slice(&st.stdout).map_err(e2s)?;
    check!(
        st.status.success() && rec["outcome"] == "ok",
        "status: {rec}"
    );
    check!(
        phases(&rec)
            == [
                "early config ok",
                "late config ok",
                "late rollback ok",
                "late apply ok"
            ],
        "phases: {:?}",
        phases(&rec)
    );

    // The running system writes a darling; at shutdown the report is saved.
    std::fs::write(root.join("darling"), "junk\n").map_err(e2s)?;
    let saved = run(&["diff", "--root", &r, "--save", "--json"])?;
    check!(
        saved.status.success(),
        "diff --save: {}",
        crate::text(&saved)
    );
    let rep = run(&["report", "--json", "--root", &r])?;
    let report: serde_json::Value = serde_json::from_slice(&rep.stdout).map_err(e2s)?;
    check!(
        lost_paths(&report) == ["/darling"],
        "lost: {:?}",
        lost_paths(&report)
    );

    // A planted link is refused, never followed.
    let dir = store.join("var/log/darlings");
    std::fs::remove_file(dir.join("latest.json")).map_err(e2s)?;
    std::os::unix::fs::symlink("../../../../etc/shadow", dir.join("latest.json")).map_err(e2s)?;
    let rep = run(&["report", "--json", "--root", &r])?;
    let err = String::from_utf8_lossy(&rep.stderr).to_string();
    check!(
        rep.status.code() == Some(1) && err.contains("outside the report directory"),
        "planted latest.json: {}",
        crate::text(&rep)
    );
    Ok(())
}

/// `--stage all` with nothing mounted at --root: darlings mounts the fresh root itself. Nothing
/// mounts the store here, so apply refuses (the store is missing) and the boot goes
/// on under boot-old-root with the failure recorded.
fn boot_all_mounts_the_new_root_when_the_initrd_has_not() -> TestResult {
    let mut m = Machine::new("")?;
    m.set_cmdline("darlings.diff=0")?;
    // Unmounted first on drop, whatever happens below.
    m.fs.mounts.push(m.sysroot.clone());
    let out = m.boot("all")?;
    check!(out.status.success(), "all: {}", crate::text(&out));
    check!(
        crate::is_mount_point(&m.sysroot),
        "darlings did not mount the new root"
    );
    check!(
        !m.sysroot.join("etc/darling").exists(),
        "the mounted root is not the fresh one"
    );
    let rec = m.record()?;
    check!(
        phases(&rec)
            == [
                "early config ok",
                "early preflight ok",
                "early rollback ok",
                "late config ok",
                "late mount ok",
                "late apply FAILED"
            ],
        "phases: {:?}",
        phases(&rec)
    );
    let err = rec["error"].as_str().unwrap_or("");
    check!(
        err.contains("store") && err.contains("persist"),
        "error: {err}"
    );
    Ok(())
}

/// `boot --stage <stage> --root <root> --cmdline <cmdline>`, and `--utab <utab>` when the test
/// reads the utab.
pub(crate) fn stage_args<'a>(
    stage: &'a str,
    root: &'a str,
    cmdline: &'a str,
    utab: Option<&'a str>,
) -> Vec<&'a str> {
    let mut v = vec![
        "boot",
        "--stage",
        stage,
        "--root",
        root,
        "--cmdline",
        cmdline,
    ];
    if let Some(u) = utab {
        v.extend(["--utab", u]);
    }
    v
}

/// The scratch of a tmpfs-root boot: a temporary directory with `sysroot` (made, nothing
/// mounted on it yet), the path for darlings' work dir, and a kernel command line of `quiet`.
pub(crate) struct Scratch {
    _dir: tempfile::TempDir,
    pub(crate) base: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) cmdline: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Result<Scratch, String> {
        let dir = tempfile::tempdir().map_err(e2s)?;
        let base = dir.path().to_path_buf();
        let sc = Scratch {
            root: base.join("sysroot"),
            work: base.join("work"),
            cmdline: base.join("cmdline"),
            base,
            _dir: dir,
        };
        std::fs::create_dir(&sc.root).map_err(e2s)?;
        std::fs::write(&sc.cmdline, "quiet\n").map_err(e2s)?;
        Ok(sc)
    }
}

pub(crate) struct Unmount(pub(crate) Vec<PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = sh(&format!("umount -l {}", p.display()));
        }
    }
}

/// A foreign entry in report-dir (a directory named like an old report) made pruning, and with
/// it the late report phase, fail: under on-failure = "halt" that stopped the boot.
fn foreign_entry_in_report_dir_does_not_halt_the_boot() -> TestResult {
    let mut m = Machine::new("[boot]\non-failure = \"halt\"\n")?;
    let text = std::fs::read_to_string(&m.config).map_err(e2s)?;
    std::fs::write(
        &m.config,
        text.replace("report-dir = ", "keep-reports = 1\nreport-dir = "),
    )
    .map_err(e2s)?;
    let foreign = m.top("persist/var/log/darlings/20000101T000000Z.json");
    std::fs::create_dir_all(&foreign).map_err(e2s)?;
    let early = m.boot("early")?;
    check!(early.status.success(), "early: {}", crate::text(&early));
    m.mount_root_and_store()?;
    let late = m.boot("late")?;
    check!(
        late.status.success(),
        "a foreign entry halted the boot: {}",
        crate::text(&late)
    );
    let rec = m.record()?;
    check!(
        rec["outcome"] == "ok" && rec["report"]["saved"] == true,
        "record: {rec}"
    );
    check!(
        String::from_utf8_lossy(&late.stderr)
            .contains("darlings did not write, left alone by pruning: 20000101T000000Z.json (a directory, owner uid 0)"),
        "no warning: {}",
        crate::text(&late)
    );
    check!(foreign.is_dir(), "the foreign directory was removed");
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "foreign_entry_in_report_dir_does_not_halt_the_boot",
            foreign_entry_in_report_dir_does_not_halt_the_boot,
        ),
        (
            "boot_btrfs_erases_darlings_saves_the_report_and_binds_the_store",
            boot_btrfs_erases_darlings_saves_the_report_and_binds_the_store,
        ),
        (
            "boot_without_blank_boots_the_old_root_or_halts_as_configured",
            boot_without_blank_boots_the_old_root_or_halts_as_configured,
        ),
        (
            "boot_with_darlings_skip_rolls_nothing_back_and_still_binds",
            boot_with_darlings_skip_rolls_nothing_back_and_still_binds,
        ),
        (
            "boot_all_mounts_the_new_root_when_the_initrd_has_not",
            boot_all_mounts_the_new_root_when_the_initrd_has_not,
        ),
        (
            "boot_dry_run_changes_nothing_and_writes_no_record",
            boot_dry_run_changes_nothing_and_writes_no_record,
        ),
        (
            "boot_tmpfs_late_takes_the_initrds_tmpfs_and_diff_save_keeps_the_report",
            boot_tmpfs_late_takes_the_initrds_tmpfs_and_diff_save_keeps_the_report,
        ),
    ]
}
