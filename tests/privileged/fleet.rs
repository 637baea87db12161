//! Fleet reports end to end through the CLI: `report.prometheus` after a boot and after
//! `diff --save`, read by promtool (Debian's, from tests/setup) and by the rules of node_exporter's
//! textfile collector; `report.journald`'s datagrams, caught on a socket of the test's own.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::boot::{stage_args, Machine, Scratch};
use crate::btrfs_rollback::e2s;
use crate::loopdev::sh;
use crate::{Case, TestResult};

const PROM: &str = "/var/lib/prometheus/node-exporter/darlings.prom";
const MESSAGE_BOOT: &str = "a3adeb16bf174666b662d841471af360";
const MESSAGE_LOST: &str = "20096239d628459a82e60913c0cef6a2";
/// Where tests/setup puts promtool.
const PROMTOOL: &str = "/var/cache/darlings-test/promtool-2.42.0/promtool";

fn promtool() -> Result<PathBuf, String> {
    let p = std::env::var_os("DARLINGS_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PROMTOOL));
    check!(
        p.exists(),
        "no promtool at {}: run tests/setup (it extracts Debian's), or set DARLINGS_PROMTOOL",
        p.display()
    );
    Ok(p)
}

/// A textfile as node_exporter takes it: promtool's `check metrics` (the parser, then its lint:
/// names, units, HELP) passes without a word, and the collector's own rules hold, which promtool
/// does not check: no sample carries a timestamp, every family has a TYPE before its samples.
fn validate(text: &str) -> TestResult {
    let mut child = Command::new(promtool()?)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(e2s)?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, text.as_bytes()).map_err(e2s)?;
    }
    let out = child.wait_with_output().map_err(e2s)?;
    check!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}",
        crate::text(&out)
    );
    let mut typed: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap_or("").to_string());
        } else if !line.starts_with('#') {
            let series_end = line
                .rfind('}')
                .map_or_else(|| line.find(' ').unwrap_or(0), |i| i + 1);
            let (series, value) = line.split_at(series_end);
            let name = series.split('{').next().unwrap_or("");
            check!(
                typed.iter().any(|t| t == name),
                "sample of {name} without a TYPE before it: {line}"
            );
            check!(
                value.split_whitespace().count() == 1,
                "a sample with a timestamp (the textfile collector refuses it): {line}"
            );
            check!(!series.contains("=\"/"), "a path as a label value: {line}");
        }
    }
    Ok(())
}

/// The value of the one sample `series` (name and labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// journald's side of the native protocol: the datagrams on `sock`, as fields.
fn received(sock: &UnixDatagram) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while let Ok(n) = sock.recv(&mut buf) {
        let mut fields = Vec::new();
        let mut b = &buf[..n];
        while let Some(nl) = b.iter().position(|&c| c == b'\n') {
            let line = &b[..nl];
            match line.iter().position(|&c| c == b'=') {
                Some(eq) => {
                    fields.push((
                        String::from_utf8_lossy(&line[..eq]).into_owned(),
                        String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
                    ));
                    b = &b[nl + 1..];
                }
                None => {
                    let rest = &b[nl + 1..];
                    let len = rest
                        .get(..8)
                        .map(|l| u64::from_le_bytes(l.try_into().unwrap_or([0; 8])) as usize)
                        .unwrap_or(0);
                    let v = rest.get(8..8 + len).unwrap_or_default();
                    fields.push((
                        String::from_utf8_lossy(line).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    ));
                    b = rest.get(9 + len..).unwrap_or_default();
                }
            }
        }
        out.push(fields);
    }
    out
}

fn field<'a>(entry: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn by_id<'a>(entries: &'a [Vec<(String, String)>], id: &str) -> Vec<&'a Vec<(String, String)>> {
    entries
        .iter()
        .filter(|e| field(e, "MESSAGE_ID") == Some(id))
        .collect()
}

fn listen(at: &Path) -> Result<UnixDatagram, String> {
    let s = UnixDatagram::bind(at).map_err(e2s)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(e2s)?;
    Ok(s)
}

/// `2026-11-22T02:30:00Z` as Unix seconds, by `date` (the test checks the code's arithmetic).
fn chrono_free_unix(rfc3339: &str) -> Option<f64> {
    let out = Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A btrfs boot with its diff: the textfile has this boot's outcome, phases, lost-state summary
/// (the record's numbers) and rollback time; the journal gets the outcome and the summary.
fn fleet_reports_of_a_btrfs_boot_reach_the_textfile_and_the_journal() -> TestResult {
    let mut m = Machine::new(&format!("[report]\nprometheus = \"{PROM}\"\n"))?;
    let sock_path = m.work.with_file_name("journal.socket");
    let sock = listen(&sock_path)?;
    let s = sock_path.display().to_string();
    let root = m.sysroot.display().to_string();
    let cmdline = m.cmdline.display().to_string();
    let boot = |m: &Machine, stage: &str| {
        m.run(
            &[
                &["--journal-socket", &s][..],
                &stage_args(stage, &root, &cmdline, None),
            ]
            .concat(),
        )
    };
    let start = now().floor();
    let early = boot(&m, "early")?;
    check!(early.status.success(), "early: {}", crate::text(&early));
    check!(
        received(&sock).is_empty(),
        "the early stage logged the outcome of a boot that goes on"
    );
    m.mount_root_and_store()?;
    let late = boot(&m, "late")?;
    check!(late.status.success(), "late: {}", crate::text(&late));
    let rec = m.record()?;
    let lost = rec["report"]["lost"].as_u64().unwrap_or(0);
    check!(lost > 0, "the diff found nothing: {rec}");

    let file = m.sysroot.join(PROM.trim_start_matches('/'));
    let text = std::fs::read_to_string(&file).map_err(e2s)?;
    validate(&text)?;
    let mode = std::fs::metadata(&file).map_err(e2s)?.mode() & 0o7777;
    check!(mode == 0o644, "textfile mode {mode:o}");
    check!(
        sample(&text, "darlings_boot_outcome{outcome=\"ok\"}") == Some(1.0)
            && sample(&text, "darlings_boot_outcome{outcome=\"failed\"}") == Some(0.0),
        "outcome:\n{text}"
    );
    check!(
        sample(&text, "darlings_lost_entries{class=\"lost\"}") == Some(lost as f64),
        "lost entries ({lost} in the record):\n{text}"
    );
    check!(
        sample(
            &text,
            "darlings_boot_phase_seconds{stage=\"early\",phase=\"rollback\"}"
        )
        .is_some_and(|v| v > 0.0),
        "rollback phase:\n{text}"
    );
    let t = sample(&text, "darlings_last_rollback_success_timestamp_seconds").unwrap_or(0.0);
    check!(
        t >= start && t <= now(),
        "rollback time {t}, test began {start}:\n{text}"
    );
    check!(
        sample(&text, "darlings_report_truncated") == Some(0.0),
        "truncated:\n{text}"
    );
    check!(
        text.contains("darlings_info{backend=\"btrfs\",version=\""),
        "info:\n{text}"
    );
    let dir: Vec<String> = std::fs::read_dir(file.parent().unwrap_or(Path::new("/")))
        .map_err(e2s)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    check!(
        dir == ["darlings.prom"],
        "the textfile directory holds {dir:?}"
    );

    let got = received(&sock);
    let boots = by_id(&got, MESSAGE_BOOT);
    check!(boots.len() == 1, "boot entries: {got:?}");
    check!(
        field(boots[0], "DARLINGS_OUTCOME") == Some("ok")
            && field(boots[0], "DARLINGS_BACKEND") == Some("btrfs")
            && field(boots[0], "PRIORITY") == Some("6")
            && field(boots[0], "SYSLOG_IDENTIFIER") == Some("darlings"),
        "boot entry: {:?}",
        boots[0]
    );
    let losts = by_id(&got, MESSAGE_LOST);
    check!(losts.len() == 1, "lost-state entries: {got:?}");
    let lost_s = lost.to_string();
    check!(
        field(losts[0], "DARLINGS_LOST_ENTRIES") == Some(lost_s.as_str())
            && field(losts[0], "DARLINGS_WHEN") == Some("rollback")
            && field(losts[0], "DARLINGS_TRUNCATED") == Some("0")
            && field(losts[0], "DARLINGS_REPORT")
                .is_some_and(|r| r.starts_with("/persist/var/log/darlings/")),
        "lost-state entry: {:?}",
        losts[0]
    );

    // A boot whose early stage fails under boot-old-root: outcome failed, the last successful
    // rollback's time carried on from the file, the failure in the journal.
    // The next boot: the previous one's mounts (root, store, binds) are gone.
    sh(&format!("umount -R {}", m.sysroot.display()))?;
    m.fs.mounts.clear();
    m.sh("btrfs -q subvolume delete root-blank")?;
    let early = boot(&m, "early")?;
    check!(
        early.status.success(),
        "failing early: {}",
        crate::text(&early)
    );
    m.mount_root_and_store()?;
    let late = boot(&m, "late")?;
    check!(
        late.status.success(),
        "late after a failed early: {}",
        crate::text(&late)
    );
    let text = std::fs::read_to_string(&file).map_err(e2s)?;
    validate(&text)?;
    check!(
        sample(&text, "darlings_boot_outcome{outcome=\"failed\"}") == Some(1.0)
            && sample(&text, "darlings_boot_outcome{outcome=\"ok\"}") == Some(0.0),
        "outcome after the failure:\n{text}"
    );
    check!(
        sample(&text, "darlings_last_rollback_success_timestamp_seconds") == Some(t),
        "the previous rollback's time was not carried on:\n{text}"
    );
    check!(
        sample(
            &text,
            "darlings_boot_phase_success{stage=\"early\",phase=\"preflight\"}"
        ) == Some(0.0),
        "failed phase:\n{text}"
    );
    let got = received(&sock);
    let boots = by_id(&got, MESSAGE_BOOT);
    check!(
        boots.len() == 1
            && field(boots[0], "DARLINGS_OUTCOME") == Some("failed")
            && field(boots[0], "PRIORITY") == Some("3")
            && field(boots[0], "DARLINGS_FAILED_PHASE") == Some("early preflight")
            && field(boots[0], "DARLINGS_ERROR")
                .is_some_and(|e| e.starts_with("early preflight failed\n")),
        "failed boot entry: {got:?}"
    );
    Ok(())
}

/// A tmpfs root: `diff --save` at shutdown rewrites the textfile with the fresh summary and this
/// boot's record, and logs the summary; the validator refuses what node_exporter would.
fn fleet_reports_of_diff_save_on_a_tmpfs_root_parse_with_promtool() -> TestResult {
    let sc = Scratch::new()?;
    let (base, root, work) = (&sc.base, &sc.root, &sc.work);
    // The persistent "disk" outlives each boot's tmpfs root, into which it is bound.
    let disk = base.join("disk");
    std::fs::create_dir(&disk).map_err(e2s)?;
    sh(&format!("mount -t tmpfs tmpfs {}", disk.display()))?;
    let _cleanup = crate::boot::Unmount(vec![root.clone(), disk.clone()]);
    let power_on = || -> TestResult {
        sh(&format!("mount -t tmpfs tmpfs {}", root.display()))?;
        let store = root.join("persist");
        std::fs::create_dir(&store).map_err(e2s)?;
        sh(&format!(
            "mount --bind {} {}",
            disk.display(),
            store.display()
        ))?;
        Ok(())
    };
    power_on()?;
    let config = base.join("darlings.toml");
    std::fs::write(
        &config,
        format!(
            "[root]\nbackend = \"tmpfs\"\n[report]\nprometheus = \"{PROM}\"\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\nignore = [\"/ignored\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n"
        ),
    )
    .map_err(e2s)?;
    let sock_path = base.join("journal.socket");
    let sock = listen(&sock_path)?;
    let run = |args: &[&str]| {
        crate::darlings(&config, work)
            .arg("--log")
            .arg("stderr")
            .arg("--journal-socket")
            .arg(&sock_path)
            .args(args)
            .output()
            .map_err(e2s)
    };
    let r = root.display().to_string();
    let c = sc.cmdline.display().to_string();
    let u = base.join("utab").display().to_string();
    let late = run(&stage_args("all", &r, &c, Some(&u)))?;
    check!(late.status.success(), "boot: {}", crate::text(&late));
    let file = root.join(PROM.trim_start_matches('/'));
    let booted = std::fs::read_to_string(&file).map_err(e2s)?;
    validate(&booted)?;
    check!(
        !booted.contains("darlings_lost_entries{"),
        "a boot without a diff reported lost entries:\n{booted}"
    );
    let t = sample(&booted, "darlings_last_rollback_success_timestamp_seconds");
    check!(
        t.is_some(),
        "no rollback time after the tmpfs rollback:\n{booted}"
    );
    let got = received(&sock);
    check!(
        by_id(&got, MESSAGE_BOOT).len() == 1 && by_id(&got, MESSAGE_LOST).is_empty(),
        "boot entries: {got:?}"
    );

    // The running system makes darlings (the textfile, written into the tmpfs root, is one too).
    std::fs::create_dir(root.join("junk")).map_err(e2s)?;
    std::fs::write(root.join("junk/file"), "12345678").map_err(e2s)?;
    std::fs::write(root.join("ignored"), "x").map_err(e2s)?;
    let saved = run(&["diff", "--root", &r, "--save"])?;
    check!(
        saved.status.success(),
        "diff --save: {}",
        crate::text(&saved)
    );
    let text = std::fs::read_to_string(&file).map_err(e2s)?;
    validate(&text)?;
    // The numbers are the saved report's.
    let rep = run(&["report", "--json", "--root", &r])?;
    let report: serde_json::Value = serde_json::from_slice(&rep.stdout).map_err(e2s)?;
    let sum = &report["summary"];
    let n = |class: &str, what: &str| sum[class][what].as_f64().unwrap_or(-1.0);
    check!(
        n("lost", "entries") >= 2.0 && n("ignored", "entries") == 1.0 && n("lost", "bytes") >= 8.0,
        "saved report: {sum}"
    );
    for (series, want) in [
        ("darlings_boot_outcome{outcome=\"ok\"}", 1.0),
        (
            "darlings_lost_entries{class=\"lost\"}",
            n("lost", "entries"),
        ),
        (
            "darlings_lost_entries{class=\"persisted\"}",
            n("persisted", "entries"),
        ),
        (
            "darlings_lost_entries{class=\"ignored\"}",
            n("ignored", "entries"),
        ),
        ("darlings_lost_bytes{class=\"lost\"}", n("lost", "bytes")),
        (
            "darlings_lost_bytes{class=\"ignored\"}",
            n("ignored", "bytes"),
        ),
        ("darlings_lost_unlisted_subtrees", 0.0),
        ("darlings_report_truncated", 0.0),
    ] {
        check!(
            sample(&text, series) == Some(want),
            "{series} is not {want}:\n{text}"
        );
    }
    check!(
        sample(&text, "darlings_last_rollback_success_timestamp_seconds") == t,
        "the boot's rollback time is gone:\n{text}"
    );
    check!(
        text.contains("darlings_boot_phase_seconds{stage=\"late\",phase=\"rollback\"}"),
        "the boot's phases are gone:\n{text}"
    );
    let got = received(&sock);
    let losts = by_id(&got, MESSAGE_LOST);
    check!(
        losts.len() == 1
            && field(losts[0], "DARLINGS_WHEN") == Some("shutdown")
            && field(losts[0], "DARLINGS_LOST_ENTRIES")
                == Some(n("lost", "entries").to_string().as_str())
            && field(losts[0], "DARLINGS_IGNORED_ENTRIES") == Some("1")
            && field(losts[0], "DARLINGS_BACKEND") == Some("tmpfs"),
        "lost-state entry: {got:?}"
    );

    // The validator is no rubber stamp: what node_exporter or promtool would refuse, it refuses.
    let first_sample = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap_or("")
        .to_string();
    let bad = [
        (
            "a timestamp",
            text.replacen(&first_sample, &format!("{first_sample} 1796000000000"), 1),
        ),
        (
            "a family without TYPE",
            text.replacen("# TYPE darlings_info gauge\n", "", 1),
        ),
        (
            "a second HELP",
            format!("{text}# HELP darlings_info again\n"),
        ),
        (
            "a gauge named like a counter",
            text.replace(
                "darlings_report_truncated",
                "darlings_report_truncated_total",
            ),
        ),
        (
            "a value that is no number",
            text.replacen(&first_sample, &first_sample.replace(" 1", " one"), 1),
        ),
    ];
    for (what, t) in bad {
        check!(validate(&t).is_err(), "the validator took {what}:\n{t}");
    }

    // The next boot: the root's textfile died with it; the boot writes a new one with the
    // lost-state summary of the report saved at shutdown.
    sh(&format!("umount -R {}", root.display()))?;
    power_on()?;
    // Under a strict umask, as on a hardened system: node_exporter's user can still read.
    let again = Command::new("sh")
        .arg("-c")
        .arg("umask 077; exec \"$0\" \"$@\"")
        .arg(crate::BIN)
        .arg("--config")
        .arg(&config)
        .arg("--work-dir")
        .arg(work)
        .arg("--journal-socket")
        .arg(&sock_path)
        .args(stage_args("all", &r, &c, Some(&u)))
        .output()
        .map_err(e2s)?;
    check!(
        again.status.success(),
        "second boot: {}",
        crate::text(&again)
    );
    let next = std::fs::read_to_string(&file).map_err(e2s)?;
    validate(&next)?;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0);
    check!(
        mode(&file) == 0o644
            && mode(&root.join("var/lib/prometheus/node-exporter")) == 0o755
            && mode(&root.join("var/lib/prometheus")) == 0o755,
        "under umask 077: file {:o}, directories {:o} {:o}",
        mode(&file),
        mode(&root.join("var/lib/prometheus/node-exporter")),
        mode(&root.join("var/lib/prometheus"))
    );
    let generated = chrono_free_unix(report["generated"].as_str().unwrap_or(""));
    check!(
        sample(&next, "darlings_lost_entries{class=\"lost\"}") == Some(n("lost", "entries"))
            && sample(&next, "darlings_report_timestamp_seconds") == generated,
        "the second boot's textfile lacks the saved report's summary (generated {generated:?}):\n{next}"
    );
    received(&sock);

    // Report off for the journal: nothing is sent.
    let cfg = std::fs::read_to_string(&config).map_err(e2s)?;
    std::fs::write(
        &config,
        cfg.replace("[report]\n", "[report]\njournald = false\n"),
    )
    .map_err(e2s)?;
    let saved = run(&["diff", "--root", &r, "--save"])?;
    check!(
        saved.status.success(),
        "diff --save: {}",
        crate::text(&saved)
    );
    check!(
        received(&sock).is_empty(),
        "journald = false, yet entries were sent"
    );
    Ok(())
}

/// The real journald (Debian's systemd-journald, started in a mount namespace of its own with
/// fresh /run/systemd and /run/log, so the machine's journal is not touched) stores what darlings
/// sends to the default socket: read back with journalctl, fields and multi-line values intact.
fn journald_stores_the_entries_darlings_sends_to_its_default_socket() -> TestResult {
    let journald = Path::new("/lib/systemd/systemd-journald");
    check!(
        journald.exists(),
        "no {}: install systemd (Debian 12 has it)",
        journald.display()
    );
    let dir = tempfile::tempdir().map_err(e2s)?;
    let base = dir.path();
    let good = base.join("good.toml");
    std::fs::write(
        &good,
        "[root]\nbackend = \"tmpfs\"\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n",
    )
    .map_err(e2s)?;
    let bad = base.join("bad.toml");
    std::fs::write(&bad, "[root]\nbackend = \"ext4\"\n").map_err(e2s)?;
    let script = format!(
        r#"set -eu
b={bin}; t={base}
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd; mount -t tmpfs tmpfs /run/log
SYSTEMD_LOG_TARGET=console {journald} 2>"$t/journald.log" &
jpid=$!
trap 'kill $jpid' EXIT
i=0; while [ ! -S /run/systemd/journal/socket ]; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.05; done
mkdir "$t/root" "$t/disk"
mount -t tmpfs tmpfs "$t/root"; mount -t tmpfs tmpfs "$t/disk"
mkdir "$t/root/persist"; mount --bind "$t/disk" "$t/root/persist"
echo quiet > "$t/cmdline"
$b --config "$t/good.toml" --work-dir "$t/w" --log stderr boot --root "$t/root" --cmdline "$t/cmdline" --utab "$t/utab" >/dev/null
echo junk > "$t/root/darling"
$b --config "$t/good.toml" --work-dir "$t/w" --log stderr diff --root "$t/root" --save >/dev/null 2>&1
$b --config "$t/bad.toml" --work-dir "$t/w2" --log stderr boot --stage late --root "$t/root" --cmdline "$t/cmdline" >/dev/null 2>&1
i=0; while [ "$(journalctl -D /run/log/journal SYSLOG_IDENTIFIER=darlings -o json --no-pager | wc -l)" -lt 3 ]; do
  i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05; done
journalctl -D /run/log/journal SYSLOG_IDENTIFIER=darlings -o json --no-pager
"#,
        bin = crate::BIN,
        base = base.display(),
        journald = journald.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .map_err(e2s)?;
    let log = std::fs::read_to_string(base.join("journald.log")).unwrap_or_default();
    check!(
        out.status.success(),
        "{}\njournald's log:\n{log}",
        crate::text(&out)
    );
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let f = |e: &serde_json::Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    let with = |id: &str| -> Vec<&serde_json::Value> {
        entries
            .iter()
            .filter(|e| f(e, "MESSAGE_ID") == id)
            .collect()
    };
    let boots = with(MESSAGE_BOOT);
    let losts = with(MESSAGE_LOST);
    check!(
        boots.len() == 2 && losts.len() == 1,
        "journal entries: {entries:?}\njournald's log:\n{log}"
    );
    check!(
        f(boots[0], "DARLINGS_OUTCOME") == "ok"
            && f(boots[0], "DARLINGS_BACKEND") == "tmpfs"
            && f(boots[0], "PRIORITY") == "6"
            && f(boots[0], "_TRANSPORT") == "journal",
        "the ok boot: {}",
        boots[0]
    );
    check!(
        f(losts[0], "DARLINGS_WHEN") == "shutdown"
            && f(losts[0], "DARLINGS_LOST_ENTRIES")
                .parse::<u64>()
                .unwrap_or(0)
                >= 1
            && f(losts[0], "DARLINGS_REPORT").starts_with("/persist/var/log/darlings/"),
        "the lost-state entry: {}",
        losts[0]
    );
    let err = f(boots[1], "DARLINGS_ERROR");
    check!(
        f(boots[1], "DARLINGS_OUTCOME") == "failed"
            && f(boots[1], "PRIORITY") == "3"
            && err.starts_with("late config failed\n  caused by: ")
            && err.contains("unknown backend \"ext4\""),
        "the failed boot (a multi-line DARLINGS_ERROR): {}",
        boots[1]
    );
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "fleet_reports_of_a_btrfs_boot_reach_the_textfile_and_the_journal",
            fleet_reports_of_a_btrfs_boot_reach_the_textfile_and_the_journal,
        ),
        (
            "fleet_reports_of_diff_save_on_a_tmpfs_root_parse_with_promtool",
            fleet_reports_of_diff_save_on_a_tmpfs_root_parse_with_promtool,
        ),
        (
            "journald_stores_the_entries_darlings_sends_to_its_default_socket",
            journald_stores_the_entries_darlings_sends_to_its_default_socket,
        ),
    ]
}
