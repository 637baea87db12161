//! The randomized differential test of the Btrfs diff in CI (issue 10): 30 seeds on one
//! loop-device Btrfs, darlings' diff against a walk of both trees (tests/support/differential.rs
//! says what is generated and how it is scored). Recall and precision must both be 100%;
//! `cargo bench --bench btrfs_differential` runs more seeds.

#[path = "../support/differential.rs"]
mod differential;

use crate::{Case, TestResult};

pub fn cases() -> Vec<Case> {
    vec![(
        "btrfs_diff_agrees_with_a_walk_of_both_trees_on_30_random_seeds",
        btrfs_diff_agrees_with_a_walk_of_both_trees_on_30_random_seeds,
    )]
}

/// The seeds CI runs; each `run_seed` picks its own layout from the seed (an empty blank every
/// 7th, a chain past PATH_MAX every 5th).
const SEEDS: std::ops::Range<u64> = 1..31;

fn btrfs_diff_agrees_with_a_walk_of_both_trees_on_30_random_seeds() -> TestResult {
    let disk = differential::Disk::new("2G")?;
    let mut total = differential::Outcome::default();
    let mut failures = Vec::new();
    for seed in SEEDS {
        let o = differential::run_seed(&disk, seed)?;
        if o.covered != o.changed || o.correct != o.reported {
            failures.push(format!(
                "seed {seed}: recall {}/{} precision {}/{}\n      missed: {:?}\n      wrong: {:?}",
                o.covered, o.changed, o.correct, o.reported, o.missed, o.wrong
            ));
        }
        total.add(&o);
    }
    println!(
        "    differential: {} seeds, {} operations, {} changed paths, {} reported: recall {:.2}% precision {:.2}%",
        SEEDS.end - SEEDS.start,
        total.ops,
        total.changed,
        total.reported,
        total.recall(),
        total.precision()
    );
    check!(failures.is_empty(), "{}", failures.join("\n    "));
    Ok(())
}
