//! `cargo bench --bench btrfs_differential`: the randomized differential test of the Btrfs diff
//! (tests/support/differential.rs) on more seeds than CI runs: `DARLINGS_DIFF_SEEDS` (default
//! 200) seeds from `DARLINGS_DIFF_FIRST_SEED` (default 1). Prints recall and precision overall
//! and per layout (populated blank, empty blank, a chain past PATH_MAX), and the misses of every
//! seed below 100%; fails unless both are 100%. `DARLINGS_DIFF_SHOW=1` prints each seed's line.
//! Needs root; runs in a private mount namespace.

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/differential.rs"]
mod differential;
#[path = "../support/loopdev.rs"]
mod loopdev;
#[path = "../support/ns.rs"]
mod ns;

use bench::fail;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !bench::start() {
        return;
    }
    let n = env("DARLINGS_DIFF_SEEDS", 200);
    let first = env("DARLINGS_DIFF_FIRST_SEED", 1);
    let show = std::env::var_os("DARLINGS_DIFF_SHOW").is_some();
    let disk = differential::Disk::new("4G").unwrap_or_else(|e| fail(e));
    let t = std::time::Instant::now();
    let mut total = differential::Outcome::default();
    let mut by_layout = [
        (
            "populated blank, send stream",
            differential::Outcome::default(),
        ),
        ("empty blank, walk", differential::Outcome::default()),
        (
            "chain past PATH_MAX, tree comparison",
            differential::Outcome::default(),
        ),
    ];
    let mut bad = Vec::new();
    for seed in first..first + n {
        let o = differential::run_seed(&disk, seed).unwrap_or_else(|e| fail(e));
        let layout = if o.empty_blank {
            1
        } else if o.past_path_max {
            2
        } else {
            0
        };
        by_layout[layout].1.add(&o);
        total.add(&o);
        if show {
            println!(
                "seed {seed}: {} ops, recall {}/{} precision {}/{}",
                o.ops, o.covered, o.changed, o.correct, o.reported
            );
        }
        if o.covered != o.changed || o.correct != o.reported {
            bad.push(o);
        }
    }
    println!(
        "\nbtrfs diff against a walk of both trees: {n} seeds from {first}, {} operations, {:.1} s",
        total.ops,
        t.elapsed().as_secs_f64()
    );
    for (name, o) in by_layout
        .iter()
        .chain(std::iter::once(&("all", total.clone())))
    {
        println!(
            "  {name:<40} {:>8} changed paths  recall {:>7.3}%   {:>8} reported  precision {:>7.3}%",
            o.changed,
            o.recall(),
            o.reported,
            o.precision()
        );
    }
    for o in &bad {
        println!(
            "  seed {}: recall {}/{} precision {}/{}\n    missed: {:?}\n    wrong: {:?}",
            o.seed, o.covered, o.changed, o.correct, o.reported, o.missed, o.wrong
        );
    }
    drop(disk);
    if !bad.is_empty() {
        fail(format!(
            "{} seed(s) below 100% recall or precision",
            bad.len()
        ));
    }
}
