//! The backends' error type: every variant names the object and, where there is one, the fix.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A system call on a named object failed; `what` says which call on which object.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A read-only check found a state darlings will not touch; the text says what to do.
    #[error("{0}")]
    Refused(String),
    /// Input from a filesystem tool or stream did not have the expected shape.
    #[error("{0}")]
    Malformed(String),
}

impl BackendError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        BackendError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Attaches a description to an `io::Result` (or anything convertible), lazily.
pub trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, BackendError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, BackendError> {
        self.map_err(|e| BackendError::io(what(), e.into()))
    }
}
