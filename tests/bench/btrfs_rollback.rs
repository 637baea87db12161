//! `cargo bench --bench btrfs_rollback`: darlings' btrfs rollback (the crash-safe exchange
//! protocol, in-process) against the naive CLI sequence `btrfs subvolume delete root && btrfs
//! subvolume snapshot root-blank root`, on a root of 100,000 files on a loop device, side by side
//! from one run. Needs root and runs in a private mount namespace, like the privileged tests.
//!
//! `DARLINGS_BENCH_RUNS` (default 3) sets the runs per side; the root is rebuilt (and committed)
//! before every run, deleted subvolumes are cleaned up first, so runs do not overlap, and caches
//! are dropped, so both sides start cold as at boot.

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/loopdev.rs"]
mod loopdev;
#[path = "../support/ns.rs"]
mod ns;

use bench::{fail, ms, sh, timed};
use loopdev::Fs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use darlings_backends::btrfs::Btrfs;
use darlings_backends::{Backend, RollbackOpts};

const FILES: usize = 100_000;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Fills `root` with `FILES` small files in 100 directories and commits them, as a root that
/// has been used is committed by the time the next boot rolls it back.
fn populate(top: &Path) {
    let root = top.join("root");
    for d in 0..100 {
        let dir = root.join(format!("usr/share/d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())));
        for f in 0..FILES / 100 {
            std::fs::write(dir.join(format!("f{f:04}")), b"some bytes of a file\n")
                .unwrap_or_else(|e| fail(e.to_string()));
        }
    }
    settle(top);
}

/// Commits everything, waits until deleted subvolumes are cleaned up, and drops the caches: at
/// boot nothing of the outgoing root is cached, and evicting 100,000 cached inodes would
/// otherwise dominate either side's subvolume delete.
fn settle(top: &Path) {
    sh(&format!(
        "btrfs filesystem sync {0} && btrfs subvolume sync {0} >/dev/null && sync && \
         echo 3 > /proc/sys/vm/drop_caches",
        top.display()
    ));
}

fn main() {
    if !bench::start() {
        return;
    }
    let runs = bench::runs(3);
    let fs = Fs::btrfs("2G").unwrap_or_else(|e| fail(e));
    let top = fs.top.clone();
    sh(&format!(
        "cd {} && btrfs -q subvolume create root && btrfs -q subvolume snapshot -r root root-blank",
        top.display()
    ));
    let b = Btrfs {
        device: PathBuf::from(fs.dev()),
        subvolume: b"root".to_vec(),
        blank: b"root-blank".to_vec(),
        old_roots: b"old-roots".to_vec(),
        keep: None,
        now: SystemTime::now(),
        work_dir: fs.base.join("work"),
        #[cfg(feature = "failpoints")]
        failpoint: None,
    };
    let (mut ours, mut cli, mut cli_sync) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        populate(&top);
        let t = Instant::now();
        let out = b
            .rollback(&RollbackOpts { dry_run: false })
            .unwrap_or_else(|e| fail(format!("darlings rollback: {e}")));
        ours.push(t.elapsed());
        if run == 0 {
            for s in &out.steps {
                println!("  darlings: {s}");
            }
        }
        if top.join("root/usr").exists() {
            fail("darlings left the files in root".into());
        }

        populate(&top);
        let d = timed(
            Command::new("btrfs")
                .args(["subvolume", "delete"])
                .arg(top.join("root")),
        ) + timed(
            Command::new("btrfs")
                .args(["subvolume", "snapshot"])
                .arg(top.join("root-blank"))
                .arg(top.join("root")),
        );
        cli.push(d);
        // The CLI sequence with the commit darlings makes (its syncfs), for a like-for-like
        // figure: without it a power cut can still take the new root back.
        let s = timed(Command::new("btrfs").args(["filesystem", "sync"]).arg(&top));
        cli_sync.push(d + s);
        if top.join("root/usr").exists() {
            fail("the CLI sequence left the files in root".into());
        }
    }
    let show = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.1}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let (o, c, cs) = (
        median(&mut ours.clone()),
        median(&mut cli.clone()),
        median(&mut cli_sync.clone()),
    );
    println!(
        "\nbtrfs rollback of a root of {FILES} files, {runs} run(s) each, median (all runs) in ms"
    );
    println!(
        "{:<58} {:>10}  {}",
        "darlings rollback (exchange protocol + syncfs, in-process)",
        format!("{:.1}", ms(o)),
        show(&ours)
    );
    println!(
        "{:<58} {:>10}  {}",
        "btrfs subvolume delete root && snapshot root-blank root",
        format!("{:.1}", ms(c)),
        show(&cli)
    );
    println!(
        "{:<58} {:>10}  {}",
        "  the same + btrfs filesystem sync",
        format!("{:.1}", ms(cs)),
        show(&cli_sync)
    );
    println!(
        "ratio darlings / CLI: {:.2} (target <= 1.0); against CLI + sync: {:.2}",
        ms(o) / ms(c),
        ms(o) / ms(cs)
    );
    drop(fs);
}
