//! Shared by the benchmarks: a bench that cannot set itself up exits with a message (it is run
//! by hand and by CI, never skipped), and the small helpers every bench needs.
#![allow(dead_code)] // each bench uses its own subset

use std::process::{Command, Stdio};
use std::time::Duration;

pub fn fail(msg: String) -> ! {
    eprintln!("bench: {msg}");
    std::process::exit(1);
}

/// Runs `cmd` with `sh -c`, failing the bench when it fails; returns its stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| fail(format!("{cmd}: {e}")));
    if !out.status.success() {
        fail(format!("{cmd}: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `cmd` with stdout discarded and returns its wall time; a failure fails the bench.
pub fn timed(cmd: &mut Command) -> Duration {
    let t = std::time::Instant::now();
    let st = cmd
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| fail(format!("{cmd:?}: {e}")));
    let d = t.elapsed();
    if !st.success() {
        fail(format!("{cmd:?} failed: {st}"));
    }
    d
}

/// The start every bench shares: false for `--list` (cargo's listing: nothing to run), else
/// it checks for root and enters a private mount namespace.
pub fn start() -> bool {
    if std::env::args().any(|a| a == "--list") {
        return false;
    }
    crate::ns::enter_private_mount_namespace("the benchmark").unwrap_or_else(|e| fail(e));
    true
}

/// `DARLINGS_BENCH_RUNS`, or `default`.
pub fn runs(default: usize) -> usize {
    std::env::var("DARLINGS_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}
