//! `cargo bench --bench boot`: `darlings boot` on a btrfs loop-device sandbox, the way an initrd
//! runs it (early stage, the root and store mounted, late stage), with 1,000 persisted entries.
//! Prints the hook's wall time per stage, the phases darlings records, the diff's added cost,
//! and darlings' own overhead: the time it spends outside the kernel, i.e. its user-space CPU
//! time (the child's `ru_utime`), everything else being the system calls on files and mounts it
//! asks the kernel for, and the kernel's exec of it. One extra boot under `perf trace -s` shows
//! where the kernel time goes. (Tracing cannot give the overhead by subtraction: strace's
//! ptrace stops slowed the mount calls past the untraced wall time, and perf trace's own
//! start-up costs ~500 ms of wall time.) Also the release binary's size and its `ldd`.
//! Needs root; runs in a private mount namespace. `DARLINGS_BENCH_RUNS` (default 5) runs.

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/loopdev.rs"]
mod loopdev;
#[path = "../support/ns.rs"]
mod ns;

use bench::{fail, ms, sh};
use loopdev::Fs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_darlings");
/// Files the running system wrote since the blank (what the rollback throws away).
const DARLINGS: usize = 2_000;
/// Persisted entries: half directories, half files.
const ENTRIES: usize = 1_000;

/// User and system CPU time of the children waited for so far.
fn children_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we hand it.
    // getrusage(2) for the children's CPU time.
    #[allow(unsafe_code)]
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // the same call.
    #[allow(unsafe_code)]
    unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru)
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Sandbox {
    fs: Fs,
    base: PathBuf,
    top: PathBuf,
    sysroot: PathBuf,
    config: PathBuf,
    work: PathBuf,
    cmdline: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // What a failed boot left mounted; the fixture then unmounts the top level and detaches.
        let _ = Command::new("umount")
            .stderr(Stdio::null())
            .arg("-R")
            .arg("-l")
            .arg(&self.sysroot)
            .status();
    }
}

impl Sandbox {
    fn new() -> Sandbox {
        let fs = Fs::btrfs("1G").unwrap_or_else(|e| fail(e));
        let base = fs.base.clone();
        let sb = Sandbox {
            top: fs.top.clone(),
            sysroot: base.join("sysroot"),
            config: base.join("darlings.toml"),
            work: base.join("run-darlings"),
            cmdline: base.join("cmdline"),
            base,
            fs,
        };
        std::fs::create_dir(&sb.sysroot).unwrap_or_else(|e| fail(e.to_string()));
        sh(&format!(
            "cd {} && btrfs -q subvolume create root && btrfs -q subvolume create persist",
            sb.top.display()
        ));
        let mut dirs = String::new();
        let mut files = String::new();
        for i in 0..ENTRIES / 2 {
            dirs.push_str(&format!("  \"/var/lib/app{i:03}\",\n"));
            files.push_str(&format!("  \"/etc/conf/f{i:03}\",\n"));
            let d = sb.top.join(format!("persist/var/lib/app{i:03}"));
            std::fs::create_dir_all(&d).unwrap_or_else(|e| fail(e.to_string()));
            std::fs::write(d.join("state"), b"kept\n").unwrap_or_else(|e| fail(e.to_string()));
        }
        let conf = sb.top.join("persist/etc/conf");
        std::fs::create_dir_all(&conf).unwrap_or_else(|e| fail(e.to_string()));
        for i in 0..ENTRIES / 2 {
            std::fs::write(conf.join(format!("f{i:03}")), b"x = 1\n")
                .unwrap_or_else(|e| fail(e.to_string()));
        }
        std::fs::write(
            &sb.config,
            format!(
                "[root]\nbackend = \"btrfs\"\ndevice = \"{}\"\n\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\n\n\
                 [[persist]]\nstore = \"/persist\"\ndirectories = [\n{dirs}]\nfiles = [\n{files}]\n",
                sb.fs.dev()
            ),
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        let st = sb
            .darlings(&["init"])
            .status()
            .unwrap_or_else(|e| fail(e.to_string()));
        if !st.success() {
            fail(format!("darlings init: {st}"));
        }
        sb
    }

    /// What the initrd does between the stages: the root subvolume at the sysroot, the store
    /// beneath it (unmounted again by `umount -R`, not the fixture: every boot mounts them anew).
    fn mount_root_and_store(&self) {
        sh(&format!(
            "mount -o subvol=root {} {}",
            self.fs.dev(),
            self.sysroot.display()
        ));
        let store = self.sysroot.join("persist");
        std::fs::create_dir_all(&store).unwrap_or_else(|e| fail(e.to_string()));
        sh(&format!(
            "mount -o subvol=persist {} {}",
            self.fs.dev(),
            store.display()
        ));
    }

    fn darlings(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .arg("--work-dir")
            .arg(&self.work)
            .arg("--log")
            .arg("stderr")
            .arg("-q")
            .args(args);
        c
    }

    /// The running system's writes, committed, caches dropped: the state a boot starts from.
    fn use_root(&self) {
        let root = self.top.join("root");
        for d in 0..20 {
            let dir = root.join(format!("var/cache/d{d:02}"));
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(e.to_string()));
            for f in 0..DARLINGS / 20 {
                std::fs::write(dir.join(format!("f{f:03}")), b"junk\n")
                    .unwrap_or_else(|e| fail(e.to_string()));
            }
        }
        sh(&format!(
            "btrfs filesystem sync {0} && btrfs subvolume sync {0} >/dev/null && sync && \
             echo 3 > /proc/sys/vm/drop_caches",
            self.top.display()
        ));
    }

    /// Runs one stage: (wall, user CPU, system CPU) of the darlings process.
    fn stage(&self, stage: &str, wrap: Option<&[&str]>) -> (Duration, Duration, Duration) {
        let args = [
            "boot",
            "--stage",
            stage,
            "--root",
            self.sysroot.to_str().unwrap_or("/nonexistent"),
            "--cmdline",
            self.cmdline.to_str().unwrap_or("/nonexistent"),
        ];
        let mut cmd = match wrap {
            None => self.darlings(&args),
            Some(w) => {
                let inner = self.darlings(&args);
                let mut c = Command::new(w[0]);
                c.args(&w[1..])
                    .arg(inner.get_program())
                    .args(inner.get_args());
                c
            }
        };
        let (u0, s0) = children_cpu();
        let t = Instant::now();
        let out = cmd
            .stdout(Stdio::null())
            .output()
            .unwrap_or_else(|e| fail(e.to_string()));
        let d = t.elapsed();
        let (u1, s1) = children_cpu();
        if !out.status.success() {
            fail(format!(
                "boot --stage {stage}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        (d, u1 - u0, s1 - s0)
    }

    /// One boot: early, the initrd's mounts, late. Returns the two stages' times.
    fn boot(&self, diff: bool, wrap: Option<&[&str]>) -> [(Duration, Duration, Duration); 2] {
        std::fs::write(
            &self.cmdline,
            if diff { "darlings.diff=1\n" } else { "quiet\n" },
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        let _ = std::fs::remove_dir_all(&self.work);
        self.use_root();
        let early = self.stage("early", wrap);
        if self.top.join("root/var/cache").exists() {
            fail("the rollback left the darlings".into());
        }
        self.mount_root_and_store();
        let late = self.stage("late", wrap);
        if !self.sysroot.join("var/lib/app000/state").exists() {
            fail("apply did not bind the store".into());
        }
        sh(&format!("umount -R {}", self.sysroot.display()));
        [early, late]
    }

    fn phases(&self) -> Vec<(String, f64)> {
        let bytes =
            std::fs::read(self.work.join("boot.json")).unwrap_or_else(|e| fail(e.to_string()));
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| fail(e.to_string()));
        v["phases"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            format!(
                                "{} {}",
                                p["stage"].as_str().unwrap_or("?"),
                                p["phase"].as_str().unwrap_or("?")
                            ),
                            p["ms"].as_f64().unwrap_or(0.0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// (syscall, total ms, calls) over every thread of a `perf trace -s` summary.
fn call_ms(path: &Path) -> Vec<(String, f64, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| fail(e.to_string()));
    let mut rows: Vec<(String, f64, u64)> = Vec::new();
    for l in text.lines() {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.len() < 8 {
            continue;
        }
        let (Ok(n), Ok(t)) = (cols[1].parse::<u64>(), cols[3].parse::<f64>()) else {
            continue;
        };
        match rows.iter_mut().find(|r| r.0 == cols[0]) {
            Some(r) => {
                r.1 += t;
                r.2 += n;
            }
            None => rows.push((cols[0].to_string(), t, n)),
        }
    }
    rows
}

fn main() {
    if !bench::start() {
        return;
    }
    let runs = bench::runs(5);
    let sb = Sandbox::new();
    println!(
        "\ndarlings boot on a btrfs loop device: {DARLINGS} files written since the blank, {ENTRIES} persisted entries; {runs} run(s), median in ms (caches dropped before each)"
    );
    let (mut e, mut l, mut tot, mut user, mut sys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut phase_runs: Vec<Vec<(String, f64)>> = Vec::new();
    for _ in 0..runs {
        let [a, b] = sb.boot(false, None);
        e.push(ms(a.0));
        l.push(ms(b.0));
        tot.push(ms(a.0 + b.0));
        user.push(ms(a.1 + b.1));
        sys.push(ms(a.2 + b.2));
        phase_runs.push(sb.phases());
    }
    let mt = median(&tot);
    println!(
        "{:<52} {:>9.1}",
        "hook start to hand-off, diff off (early + late)", mt
    );
    println!(
        "{:<52} {:>9.1}",
        "  early (preflight, rollback)",
        median(&e)
    );
    println!("{:<52} {:>9.1}", "  late (apply)", median(&l));
    if let Some(first) = phase_runs.first() {
        for (i, (name, _)) in first.iter().enumerate() {
            let v: Vec<f64> = phase_runs
                .iter()
                .filter_map(|r| r.get(i).map(|p| p.1))
                .collect();
            println!(
                "{:<52} {:>9.1}",
                format!("    phase {name} (darlings' own timing)"),
                median(&v)
            );
        }
    }
    let overhead = median(&user);
    println!(
        "{:<52} {:>9.1}   (target < 50)",
        "darlings' own overhead: user-space CPU, both stages", overhead
    );
    println!(
        "{:<52} {:>9.1}   (filesystem calls, exec, page faults)",
        "  kernel time on darlings' behalf (system CPU)",
        median(&sys)
    );
    println!(
        "{:<52} {:>9.1}   (commits, device I/O, scheduling)",
        "  waiting (wall - user - system)",
        mt - overhead - median(&sys)
    );

    let mut dt = Vec::new();
    let mut diff_ms = Vec::new();
    let mut diff_user = Vec::new();
    for _ in 0..runs.min(3) {
        let [a, b] = sb.boot(true, None);
        dt.push(ms(a.0 + b.0));
        diff_user.push(ms(a.1 + b.1));
        diff_ms.push(
            sb.phases()
                .iter()
                .find(|p| p.0 == "early diff")
                .map_or(0.0, |p| p.1),
        );
    }
    println!(
        "{:<52} {:>9.1}   (diff phase {:.1}; added cost {:.1})",
        format!("with the lost-state diff on ({DARLINGS} entries)"),
        median(&dt),
        median(&diff_ms),
        median(&dt) - mt
    );
    println!(
        "{:<52} {:>9.1}   (target < 50)",
        "  darlings' own overhead with the diff on",
        median(&diff_user)
    );

    // One more boot under perf trace, to show where the kernel time goes.
    std::fs::write(&sb.cmdline, "quiet\n").unwrap_or_else(|e| fail(e.to_string()));
    let _ = std::fs::remove_dir_all(&sb.work);
    sb.use_root();
    let (out_e, out_l) = (sb.base.join("trace.early"), sb.base.join("trace.late"));
    let wrap = |out: &Path| -> Vec<String> {
        [
            "perf",
            "trace",
            "-s",
            "-o",
            out.to_str().unwrap_or("/dev/null"),
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let we = wrap(&out_e);
    sb.stage(
        "early",
        Some(&we.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    sb.mount_root_and_store();
    let wl = wrap(&out_l);
    sb.stage(
        "late",
        Some(&wl.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    sh(&format!("umount -R {}", sb.sysroot.display()));
    for (stage, out) in [("early", &out_e), ("late", &out_l)] {
        println!("  {stage}: the system calls that took longest (perf trace -s, traced run):");
        let mut rows = call_ms(out);
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (name, t, n) in rows.iter().take(6) {
            println!("    {name:<16} {t:>8.2} ms in {n} call(s)");
        }
    }
    let size = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!(
        "{:<52} {:>9.1} MiB  ({BIN})",
        "binary size",
        size as f64 / (1024.0 * 1024.0)
    );
    print!("ldd:\n{}", sh(&format!("ldd {BIN}")));
    if overhead >= 50.0 {
        // fail() exits without unwinding: let the sandbox detach its loop device first.
        drop(sb);
        fail(format!(
            "darlings' own overhead {overhead:.1} ms is not under 50 ms"
        ));
    }
}
