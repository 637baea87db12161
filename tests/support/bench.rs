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
