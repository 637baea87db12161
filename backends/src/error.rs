//! The backends' error type: every variant names the object and, where there is one, the fix.

use std::io;

/// Why a backend call failed; each variant's text is a whole message for a person.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A system call on a named object failed; `what` says which call on which object.
    #[error("{what}")]
    Io {
        /// The message: the call and its object, e.g. `cannot open /dev/vda2`.
        what: String,
        /// The system's error behind it (the error's `source`).
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
    /// An `Io` error; `what` names the call and the object it was on.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        BackendError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Attaches a description to an `io::Result` (or anything convertible), lazily.
pub trait IoContext<T> {
    /// An error becomes `BackendError::Io` with `what()` as its message; `what` runs only then.
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, BackendError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn ctx<F: FnOnce() -> String>(self, what: F) -> Result<T, BackendError> {
        self.map_err(|e| BackendError::io(what(), e.into()))
    }
}
