//! `cargo bench --bench perf`: the foundation's performance figures, side by side from one run,
//! on real tmpfs mounts in a private mount namespace (needs root, like the privileged tests).
//!
//! 1. apply 1,000 entries (500 directories, 500 files) into a fresh tmpfs root, against the
//!    shell way (findmnt check + mount --bind per entry);
//! 2. peak memory of `darlings plan` for 10,000 entries;
//! 3. tmpfs diff of a 100,000-file root against `find ROOT -xdev`.

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/ns.rs"]
mod ns;

use bench::{fail, ms, timed};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

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

    // 1. apply 1,000 entries.
    let cfg = base.join("k.toml");
    std::fs::write(&cfg, config(1_000, 500)).unwrap_or_else(|e| fail(e.to_string()));
    let root = fresh_root(base, "apply-darlings", 1_000, 500);
    let utab = base.join("utab");
    let t_apply = timed(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("--work-dir")
            .arg(base.join("run"))
            .args(["apply", "--root"])
            .arg(&root)
            .arg("--utab")
            .arg(&utab),
    );
    let t_again = timed(
        Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .arg("--work-dir")
            .arg(base.join("run"))
            .args(["apply", "--root"])
            .arg(&root)
            .arg("--utab")
            .arg(&utab),
    );
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
    for r in [&root, &shell_root] {
        let _ = unmount(r, UnmountFlags::DETACH);
    }

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

    let head = (
        "measurement (best of 3 for diffs)",
        "darlings",
        "comparison",
        "verdict",
    );
    println!("\n{:<44} {:>22} {:>24}  {}", head.0, head.1, head.2, head.3);
    for (a, b, c, d) in rows {
        println!("{a:<44} {b:>22} {c:>24}  {d}");
    }
}
