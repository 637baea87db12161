//! The one error vocabulary of `src/`: a system call that failed on a named object (`Io`), a
//! state darlings will not act on with what to do (`Refused`), both from the backends crate so
//! that a message reads the same whichever side made it; and the one printer of a whole chain.

pub use darlings_backends::error::{BackendError, IoContext};

/// The whole chain of an error, one line per cause: what `main` prints, what a boot records.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!("\n  caused by: {c}"));
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_has_every_cause_on_its_own_line() {
        let inner = BackendError::io("cannot open /persist", std::io::Error::from_raw_os_error(2));
        let outer = crate::boot::PhaseError {
            phase: "late apply".into(),
            source: inner.into(),
        };
        let text = chain(&outer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "late apply failed");
        assert_eq!(lines[1], "  caused by: cannot open /persist");
        assert!(
            lines[2].starts_with("  caused by: No such file or directory"),
            "{text}"
        );
        assert_eq!(lines.len(), 3);
    }
}
