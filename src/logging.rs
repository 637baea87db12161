//! Logging: stderr normally; inside an initrd, `/dev/kmsg`, so the lines show up in
//! `journalctl -b` after boot (the initrd's own stderr is gone by then).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// kmsg inside an initrd (`/etc/initrd-release` exists), stderr otherwise.
    Auto,
    Stderr,
    Kmsg,
}

/// One kmsg record per event: the kernel takes each write(2) as one line with its own priority.
struct Kmsg {
    file: Mutex<std::fs::File>,
}

struct KmsgLine<'a> {
    kmsg: &'a Kmsg,
    prio: u8,
    buf: Vec<u8>,
}

impl Write for KmsgLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for KmsgLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let mut rec = format!("<{}>darlings: {}", self.prio, text.trim_end());
        rec.push('\n');
        if let Ok(mut f) = self.kmsg.file.lock() {
            // Logging must never fail the boot; a lost log line is the lesser evil.
            let _ = f.write_all(rec.as_bytes());
        }
    }
}

impl<'a> MakeWriter<'a> for Kmsg {
    type Writer = KmsgLine<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        KmsgLine {
            kmsg: self,
            prio: 6,
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let prio = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        KmsgLine {
            kmsg: self,
            prio,
            buf: Vec::new(),
        }
    }
}

/// Installs the global subscriber. `verbosity`: 0 = warnings, 1 = info, 2+ = debug; `quiet`
/// leaves errors only.
/// Returns whether logs go to kmsg (and so not to the terminal).
pub fn init(target: Target, verbosity: u8, quiet: bool) -> bool {
    let level = match (quiet, verbosity) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        _ => Level::DEBUG,
    };
    let use_kmsg = match target {
        Target::Kmsg => true,
        Target::Stderr => false,
        Target::Auto => Path::new("/etc/initrd-release").exists(),
    };
    if use_kmsg {
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
            kmsg_subscriber(file, level).init();
            return true;
        }
    }
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .init();
    false
}

/// A subscriber writing one kmsg record per event to `file` (`/dev/kmsg` outside tests).
fn kmsg_subscriber(file: std::fs::File, level: Level) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_level(false)
        .with_writer(Kmsg {
            file: Mutex::new(file),
        })
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records_carry_priority_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        let file = std::fs::File::create(&path).unwrap();
        {
            let _guard = kmsg_subscriber(file, Level::INFO).set_default();
            tracing::error!("rollback refused: blank missing");
            tracing::warn!("deferred 2 entries");
            tracing::info!(took_ms = 12, "rollback done");
            tracing::debug!("not shown at info");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "<3>darlings: rollback refused: blank missing\n<4>darlings: deferred 2 entries\n<6>darlings: rollback done took_ms=12\n"
        );
    }
}
