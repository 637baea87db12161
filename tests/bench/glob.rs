//! `cargo bench --bench glob`: the `diff.ignore` matcher on the patterns a hostile root can
//! turn against it (issue 10): `/*a*a*a*a*a*a*a*a*a*a*a*b` against a name of 40 `a`s, and
//! `/**/**/**/**/**/x` against a path 80 directories deep, plus the classification of a diff
//! whose every path is that deep. Each case runs on its own thread and is given up after
//! `DARLINGS_BENCH_GIVE_UP` seconds (default 60): a backtracking matcher never returns.

use std::time::{Duration, Instant};

use darlings::glob::Glob;

fn give_up() -> Duration {
    Duration::from_secs(
        std::env::var("DARLINGS_BENCH_GIVE_UP")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

/// Median wall time of `runs` matches, or `None` when the first one did not return in time.
fn time_match(pattern: &str, path: Vec<u8>, runs: usize) -> (Option<Duration>, bool) {
    let glob = Glob::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut times = Vec::new();
        let mut hit = false;
        for _ in 0..runs {
            let t = Instant::now();
            hit = glob.is_match(&path);
            times.push(t.elapsed());
        }
        times.sort();
        let _ = tx.send((times[times.len() / 2], hit));
    });
    match rx.recv_timeout(give_up()) {
        Ok((t, hit)) => (Some(t), hit),
        Err(_) => (None, false),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let forty_a = {
        let mut p = b"/".to_vec();
        p.extend(std::iter::repeat_n(b'a', 40));
        p
    };
    let deep = {
        let mut p = Vec::new();
        for i in 0..80 {
            p.extend_from_slice(format!("/d{i}").as_bytes());
        }
        p.extend_from_slice(b"/y");
        p
    };
    let long_name = {
        let mut p = b"/".to_vec();
        p.extend(std::iter::repeat_n(b'a', 255));
        p
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/*a*a*a*a*a*a*a*a*a*a*a*b", forty_a, "40 a's"),
        ("/**/**/**/**/**/x", deep.clone(), "80 deep"),
        ("/**/**/**/**/**/**/**/**/x", deep, "80 deep"),
        (
            "/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            long_name,
            "255 a's",
        ),
        (
            "/var/cache/**",
            b"/var/cache/apt/pkgcache.bin".to_vec(),
            "usual",
        ),
    ];
    println!(
        "\nglob matcher, median of 5 matches (given up after {:?})",
        give_up()
    );
    for (pattern, path, what) in cases {
        let (t, hit) = time_match(pattern, path, 5);
        match t {
            Some(t) => println!(
                "  {pattern:<46} {what:<8} {:>12.3} ms  match={hit}",
                t.as_secs_f64() * 1000.0
            ),
            None => println!(
                "  {pattern:<46} {what:<8}   > {:>8.0} s  (gave up)",
                give_up().as_secs_f64()
            ),
        }
    }
}
