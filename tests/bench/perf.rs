//! `cargo bench --bench perf`: the foundation's performance figures, side by side from one run,
//! on real tmpfs mounts in a private mount namespace (needs root, like the privileged tests).
//!
//! 1. apply 1,000 entries (500 directories, 500 files) into a fresh tmpfs root, against the
//!    shell way (findmnt check + mount --bind per entry), and against the floor: a bare loop of
//!    `open_tree(OPEN_TREE_CLONE)` + `move_mount` for the same entries, the kernel's share that
//!    no implementation avoids (best of `DARLINGS_BENCH_RUNS`, default 3, alternated);
//! 2. peak memory of `darlings plan` for 10,000 entries;
//! 3. tmpfs diff of a 100,000-file root against `find ROOT -xdev`;
//! 4. the NixOS layout: a tmpfs root of 50,000 files with a few persisted binds (what
//!    `darlings diff` walks against an empty blank), against `find ROOT -xdev`.

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/ns.rs"]
mod ns;

use bench::{fail, ms, timed};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::CWD;
use rustix::mount::{
    mount, move_mount, open_tree, unmount, MountFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

const BIN: &str = env!("CARGO_BIN_EXE_darlings");

fn tmpfs(at: &Path) {
    std::fs::create_dir_all(at).unwrap_or_else(|e| fail(format!("mkdir {}: {e}", at.display())));
    mount("tmpfs", at, "tmpfs", MountFlags::empty(), c"mode=0755")
        .unwrap_or_else(|e| fail(format!("mount {}: {e}", at.display())));
}

fn config(entries: usize, dirs: usize) -> String {
    let mut s = String::from(
        "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\n",
    );
    for i in 0..dirs {
        let _ = writeln!(s, "  \"/srv/d{:02}/dir{i}\",", i % 20);
    }
    s.push_str("]\nfiles = [\n");
    for i in dirs..entries {
        let _ = writeln!(s, "  \"/etc/f{:02}/file{i}\",", i % 20);
    }
    s.push_str("]\n");
    s
}

/// A fresh tmpfs root with a store tmpfs at `<root>/persist` holding every source.
fn fresh_root(base: &Path, name: &str, entries: usize, dirs: usize) -> PathBuf {
    let root = base.join(name);
    tmpfs(&root);
    let store = root.join("persist");
    tmpfs(&store);
    for i in 0..dirs {
        std::fs::create_dir_all(store.join(format!("srv/d{:02}/dir{i}", i % 20)))
            .unwrap_or_else(|e| fail(e.to_string()));
    }
    for i in dirs..entries {
        let p = store.join(format!("etc/f{:02}/file{i}", i % 20));
        std::fs::create_dir_all(p.parent().unwrap_or(&store))
            .unwrap_or_else(|e| fail(e.to_string()));
        std::fs::write(&p, b"x").unwrap_or_else(|e| fail(e.to_string()));
    }
    root
}

/// User + system CPU time of `who` so far (`RUSAGE_CHILDREN`: the children waited for; a
/// thread: `RUSAGE_THREAD`). On this shared machine a process waits for a core most of its wall
/// time, so CPU time is what compares like with like.
fn cpu(who: libc::c_int) -> std::time::Duration {
    // SAFETY: getrusage writes into the zeroed struct we own; no other invariant.
    // getrusage(2) for the CPU time.
    #[allow(unsafe_code)]
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| {
        std::time::Duration::from_secs(t.tv_sec as u64)
            + std::time::Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// This thread's CPU time from the scheduler's own clock. `getrusage(RUSAGE_THREAD)` splits the
/// runtime into user and system by timer ticks and never lets either go back, so over the
/// floor's few milliseconds it read 0.0 in one run of three (and an infinite ratio).
fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `timed`, with the child's CPU time.
fn timed_cpu(cmd: &mut Command) -> (std::time::Duration, std::time::Duration) {
    let before = cpu(libc::RUSAGE_CHILDREN);
    let wall = timed(cmd);
    (wall, cpu(libc::RUSAGE_CHILDREN) - before)
}

/// The targets of `fresh_root`'s entries, made in its root as empty directories and files (the
/// mount points a blank may already hold).
fn mount_points(root: &Path, entries: usize, dirs: usize) {
    for (rel, dir) in targets(entries, dirs) {
        let p = root.join(&rel);
        if dir {
            std::fs::create_dir_all(&p)
        } else {
            std::fs::create_dir_all(p.parent().unwrap_or(root))
                .and_then(|()| std::fs::write(&p, b""))
        }
        .unwrap_or_else(|e| fail(format!("{}: {e}", p.display())));
    }
}

/// The entries of `config`, relative to the root, with whether each is a directory.
fn targets(entries: usize, dirs: usize) -> Vec<(String, bool)> {
    (0..entries)
        .map(|i| {
            if i < dirs {
                (format!("srv/d{:02}/dir{i}", i % 20), true)
            } else {
                (format!("etc/f{:02}/file{i}", i % 20), false)
            }
        })
        .collect()
}

/// The floor: a bare `open_tree(OPEN_TREE_CLONE)` + `move_mount` per entry, source path to
/// target path, onto mount points made beforehand (untimed); no checks, no journal.
fn floor(root: &Path, entries: usize, dirs: usize) -> (std::time::Duration, std::time::Duration) {
    let paths: Vec<(PathBuf, PathBuf)> = targets(entries, dirs)
        .into_iter()
        .map(|(rel, _)| (root.join("persist").join(&rel), root.join(&rel)))
        .collect();
    let c = thread_cpu();
    let t = std::time::Instant::now();
    for (src, tgt) in &paths {
        let tree = open_tree(
            CWD,
            src,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .unwrap_or_else(|e| fail(format!("open_tree {}: {e}", src.display())));
        move_mount(&tree, "", CWD, tgt, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .unwrap_or_else(|e| fail(format!("move_mount {}: {e}", tgt.display())));
    }
    (t.elapsed(), thread_cpu() - c)
}

/// A tmpfs root in the NixOS layout: 100 directories of 500 files (50,000) under etc, var and
/// home, and persisted binds from a store tmpfs beside it: two directories of 500 files each
/// and /etc/machine-id, which neither walk enters.
fn nixos_root(base: &Path) -> PathBuf {
    let root = base.join("nixos");
    tmpfs(&root);
    let store = base.join("nixos-persist");
    tmpfs(&store);
    for d in 0..100 {
        let top = ["etc", "var/lib", "home/alice"][d % 3];
        let dir = root.join(format!("{top}/p{d:03}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(e.to_string()));
        for f in 0..500 {
            std::fs::write(dir.join(format!("f{f:03}")), b"x")
                .unwrap_or_else(|e| fail(e.to_string()));
        }
    }
    for rel in ["var/log", "var/lib/nixos"] {
        let (src, tgt) = (store.join(rel), root.join(rel));
        for p in [&src, &tgt] {
            std::fs::create_dir_all(p).unwrap_or_else(|e| fail(e.to_string()));
        }
        for f in 0..500 {
            std::fs::write(src.join(format!("f{f:03}")), b"x")
                .unwrap_or_else(|e| fail(e.to_string()));
        }
        mount(&src, &tgt, "", MountFlags::BIND, c"")
            .unwrap_or_else(|e| fail(format!("bind {}: {e}", tgt.display())));
    }
    let (src, tgt) = (store.join("etc/machine-id"), root.join("etc/machine-id"));
    std::fs::create_dir_all(store.join("etc")).unwrap_or_else(|e| fail(e.to_string()));
    for p in [&src, &tgt] {
        std::fs::write(p, b"0123456789abcdef0123456789abcdef\n")
            .unwrap_or_else(|e| fail(e.to_string()));
    }
    mount(&src, &tgt, "", MountFlags::BIND, c"")
        .unwrap_or_else(|e| fail(format!("bind {}: {e}", tgt.display())));
    root
}

fn main() {
    if !bench::start() {
        return;
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(e.to_string()));
    let base = dir.path();
    let mut rows: Vec<(String, String, String, String)> = Vec::new();

    // 2 first: RUSAGE_CHILDREN's maxrss is the largest child so far, so plan must be the first.
    let big = base.join("big.toml");
    std::fs::write(&big, config(10_000, 5_000)).unwrap_or_else(|e| fail(e.to_string()));
    let empty_root = base.join("empty");
    std::fs::create_dir(&empty_root).unwrap_or_else(|e| fail(e.to_string()));
    let t_plan = timed(
        Command::new(BIN)
            .arg("--config")
            .arg(&big)
            .args(["plan", "--json", "--root"])
            .arg(&empty_root),
    );
    // SAFETY: getrusage writes into the zeroed struct we own; no other invariant.
    // getrusage(2) for the peak RSS.
    #[allow(unsafe_code)]
    let peak_kb = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    };
    let peak_mb = peak_kb as f64 / 1024.0;
    rows.push((
        "plan, 10,000 entries: peak memory".into(),
        format!("{peak_mb:.1} MB ({:.0} ms)", ms(t_plan)),
        "-".into(),
        format!(
            "target <= 20 MB: {}",
            if peak_mb <= 20.0 { "met" } else { "MISSED" }
        ),
    ));

    // 1. apply 1,000 entries, each way best of `runs`, alternated so that the machine's load
    //    falls on all alike.
    let cfg = base.join("k.toml");
    std::fs::write(&cfg, config(1_000, 500)).unwrap_or_else(|e| fail(e.to_string()));
    let utab = base.join("utab");
    let apply = |root: &Path| {
        timed_cpu(
            Command::new(BIN)
                .arg("--config")
                .arg(&cfg)
                .arg("--work-dir")
                .arg(base.join("run"))
                .args(["apply", "--root"])
                .arg(root)
                .arg("--utab")
                .arg(&utab),
        )
    };
    let runs = bench::runs(3);
    // (wall, CPU) per run.
    let (mut a_fresh, mut a_again, mut a_points, mut a_floor) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let root = fresh_root(base, &format!("apply-darlings{r}"), 1_000, 500);
        a_fresh.push(apply(&root));
        a_again.push(apply(&root));
        let points = fresh_root(base, &format!("apply-points{r}"), 1_000, 500);
        mount_points(&points, 1_000, 500);
        a_points.push(apply(&points));
        let bare = fresh_root(base, &format!("apply-floor{r}"), 1_000, 500);
        mount_points(&bare, 1_000, 500);
        a_floor.push(floor(&bare, 1_000, 500));
        for p in [&root, &points, &bare] {
            let _ = unmount(p, UnmountFlags::DETACH);
        }
    }
    let all = |v: &[(std::time::Duration, std::time::Duration)]| {
        v.iter()
            .map(|(w, c)| format!("{:.1} ({:.1} CPU)", ms(*w), ms(*c)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "apply runs (ms): fresh {}; re-apply {}; mount points present {}; floor {}",
        all(&a_fresh),
        all(&a_again),
        all(&a_points),
        all(&a_floor)
    );
    let min_of = |v: &[(std::time::Duration, std::time::Duration)]| {
        v.iter().map(|p| p.0).min().unwrap_or_default()
    };
    let cpu_of = |v: &[(std::time::Duration, std::time::Duration)]| {
        v.iter().map(|p| p.1).min().unwrap_or_default()
    };
    let (t_apply, t_again, t_points, t_floor) = (
        min_of(&a_fresh),
        min_of(&a_again),
        min_of(&a_points),
        min_of(&a_floor),
    );
    let (c_apply, c_points, c_floor) = (cpu_of(&a_fresh), cpu_of(&a_points), cpu_of(&a_floor));
    let shell_root = fresh_root(base, "apply-shell", 1_000, 500);
    let mut script = String::from("set -e\nR=\"$1\"\n");
    for i in 0..500 {
        let p = format!("srv/d{:02}/dir{i}", i % 20);
        let _ = writeln!(script, "findmnt -rn \"$R/{p}\" >/dev/null || {{ mkdir -p \"$R/{p}\"; mount --bind \"$R/persist/{p}\" \"$R/{p}\"; }}");
    }
    for i in 500..1_000 {
        let p = format!("etc/f{:02}/file{i}", i % 20);
        let _ = writeln!(
            script,
            "findmnt -rn \"$R/{p}\" >/dev/null || {{ mkdir -p \"$(dirname \"$R/{p}\")\"; touch \"$R/{p}\"; mount --bind \"$R/persist/{p}\" \"$R/{p}\"; }}"
        );
    }
    let script_path = base.join("binds.sh");
    std::fs::write(&script_path, script).unwrap_or_else(|e| fail(e.to_string()));
    let t_shell = timed(Command::new("bash").arg(&script_path).arg(&shell_root));
    let ratio = t_shell.as_secs_f64() / t_apply.as_secs_f64();
    rows.push((
        "apply 1,000 entries, fresh tmpfs root".into(),
        format!("{:.1} ms", ms(t_apply)),
        format!("{:.0} ms (shell loop)", ms(t_shell)),
        format!(
            "target <= 50 ms and >= 20x: {} ({ratio:.0}x)",
            if ms(t_apply) <= 50.0 && ratio >= 20.0 {
                "met"
            } else {
                "MISSED"
            }
        ),
    ));
    rows.push((
        "re-apply (no-op), same root".into(),
        format!("{:.1} ms", ms(t_again)),
        "-".into(),
        "-".into(),
    ));
    rows.push((
        "apply 1,000 entries, mount points present".into(),
        format!("{:.1} ms", ms(t_points)),
        format!("{:.1} ms (floor)", ms(t_floor)),
        format!(
            "target <= 2x floor: {} ({:.2}x)",
            if t_points.as_secs_f64() <= 2.0 * t_floor.as_secs_f64() {
                "met"
            } else {
                "MISSED"
            },
            t_points.as_secs_f64() / t_floor.as_secs_f64()
        ),
    ));
    rows.push((
        "apply 1,000 entries, fresh root, vs floor".into(),
        format!("{:.1} ms", ms(t_apply)),
        format!("{:.1} ms (floor)", ms(t_floor)),
        format!(
            "makes its mount points too: {:.2}x",
            t_apply.as_secs_f64() / t_floor.as_secs_f64()
        ),
    ));
    rows.push((
        "  CPU time, mount points present".into(),
        format!("{:.1} ms", ms(c_points)),
        format!("{:.1} ms (floor)", ms(c_floor)),
        format!(
            "target <= 2x floor: {} ({:.2}x)",
            if c_points.as_secs_f64() <= 2.0 * c_floor.as_secs_f64() {
                "met"
            } else {
                "MISSED"
            },
            c_points.as_secs_f64() / c_floor.as_secs_f64()
        ),
    ));
    rows.push((
        "  CPU time, fresh root".into(),
        format!("{:.1} ms", ms(c_apply)),
        format!("{:.1} ms (floor)", ms(c_floor)),
        format!("{:.2}x", c_apply.as_secs_f64() / c_floor.as_secs_f64()),
    ));
    let _ = unmount(&shell_root, UnmountFlags::DETACH);

    // 3. tmpfs diff of 100,000 files.
    let walk_root = base.join("walk");
    tmpfs(&walk_root);
    for d in 0..100 {
        let dir = walk_root.join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap_or_else(|e| fail(e.to_string()));
        for f in 0..1_000 {
            std::fs::write(dir.join(format!("f{f:04}")), b"")
                .unwrap_or_else(|e| fail(e.to_string()));
        }
    }
    let min_cfg = base.join("min.toml");
    std::fs::write(&min_cfg, "[root]\nbackend = \"tmpfs\"\n")
        .unwrap_or_else(|e| fail(e.to_string()));
    let best =
        |mk: &dyn Fn() -> Command| (0..3).map(|_| timed(&mut mk())).min().unwrap_or_default();
    let t_diff = best(&|| {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&min_cfg)
            .args(["diff", "--root"])
            .arg(&walk_root);
        c
    });
    let t_diff_json = best(&|| {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&min_cfg)
            .args(["diff", "--json", "--root"])
            .arg(&walk_root);
        c
    });
    let t_find = best(&|| {
        let mut c = Command::new("find");
        c.arg(&walk_root).arg("-xdev");
        c
    });
    rows.push((
        "diff, tmpfs root of 100,100 entries, sizes".into(),
        format!("{:.0} ms", ms(t_diff)),
        format!("{:.0} ms (find -xdev)", ms(t_find)),
        format!(
            "stats every file: {:.2}x find",
            t_diff.as_secs_f64() / t_find.as_secs_f64()
        ),
    ));
    let t_nosize = best(&|| {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&min_cfg)
            .args(["diff", "--no-sizes", "--root"])
            .arg(&walk_root);
        c
    });
    rows.push((
        "diff, same root, --no-sizes".into(),
        format!("{:.0} ms", ms(t_nosize)),
        format!("{:.0} ms (find -xdev)", ms(t_find)),
        format!(
            "target <= find: {} ({:.2}x)",
            if t_nosize <= t_find { "met" } else { "MISSED" },
            t_nosize.as_secs_f64() / t_find.as_secs_f64()
        ),
    ));
    rows.push((
        "diff, same root, --json (sizes)".into(),
        format!("{:.0} ms", ms(t_diff_json)),
        format!("{:.0} ms (find -xdev)", ms(t_find)),
        "-".into(),
    ));

    // 4. The NixOS layout, each of the three alternated per round, best of 3.
    let nixos = nixos_root(base);
    let (mut n_nosize, mut n_size, mut n_find) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        for (v, sizes) in [(&mut n_nosize, false), (&mut n_size, true)] {
            let mut c = Command::new(BIN);
            c.arg("--config").arg(&min_cfg).arg("diff");
            if !sizes {
                c.arg("--no-sizes");
            }
            v.push(timed_cpu(c.arg("--root").arg(&nixos)));
        }
        n_find.push(timed_cpu(Command::new("find").arg(&nixos).arg("-xdev")));
    }
    println!(
        "NixOS layout runs (ms): diff --no-sizes {}; diff {}; find -xdev {}",
        all(&n_nosize),
        all(&n_size),
        all(&n_find)
    );
    let (t_nosize, t_size, t_find) = (min_of(&n_nosize), min_of(&n_size), min_of(&n_find));
    let (c_nosize, c_find) = (cpu_of(&n_nosize), cpu_of(&n_find));
    rows.push((
        "NixOS layout, 50,000 files, --no-sizes".into(),
        format!("{:.1} ms", ms(t_nosize)),
        format!("{:.1} ms (find -xdev)", ms(t_find)),
        format!(
            "target <= find: {} ({:.2}x)",
            if t_nosize <= t_find { "met" } else { "MISSED" },
            t_nosize.as_secs_f64() / t_find.as_secs_f64()
        ),
    ));
    rows.push((
        "  CPU time, --no-sizes".into(),
        format!("{:.1} ms", ms(c_nosize)),
        format!("{:.1} ms (find -xdev)", ms(c_find)),
        format!(
            "target <= find: {} ({:.2}x)",
            if c_nosize <= c_find { "met" } else { "MISSED" },
            c_nosize.as_secs_f64() / c_find.as_secs_f64()
        ),
    ));
    rows.push((
        "NixOS layout, same root, sizes".into(),
        format!("{:.1} ms", ms(t_size)),
        format!("{:.1} ms (find -xdev)", ms(t_find)),
        format!(
            "stats every file: {:.2}x find",
            t_size.as_secs_f64() / t_find.as_secs_f64()
        ),
    ));

    let head = (
        "measurement (best of 3)",
        "darlings",
        "comparison",
        "verdict",
    );
    println!("\n{:<44} {:>22} {:>24}  {}", head.0, head.1, head.2, head.3);
    for (a, b, c, d) in rows {
        println!("{a:<44} {b:>22} {c:>24}  {d}");
    }
}
