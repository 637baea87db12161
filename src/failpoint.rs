//! `DARLINGS_FAILPOINT=<step>`, where a crash test stops the binary: read and checked here
//! once. Only a build with the `failpoints` feature honours it; any other build refuses the
//! variable rather than ignore it, so a crash test run on the wrong binary fails loudly.

use darlings_backends::Failpoint;

/// The environment variable crash tests set.
pub const VAR: &str = "DARLINGS_FAILPOINT";

/// The failpoint asked for, `None` when the variable is unset; an error to refuse the run with
/// when the name is no step, or when this build has no failpoints.
pub fn from_env() -> Result<Option<Failpoint>, String> {
    let Some(v) = std::env::var_os(VAR) else {
        return Ok(None);
    };
    let v = v.to_string_lossy();
    if cfg!(feature = "failpoints") {
        v.parse().map(Some).map_err(|_| {
            format!(
                "unknown failpoint {v:?} in {VAR}; the steps are {}",
                Failpoint::list()
            )
        })
    } else {
        Err(format!(
            "this darlings was built without failpoints; unset {VAR}={v} (crash tests need a \
             build with `cargo build --features failpoints`)"
        ))
    }
}

/// The failpoint to stop at: `None` in a build without the feature, or when none (or no valid
/// one: the binary refuses those before it acts) is set.
pub fn active() -> Option<Failpoint> {
    if cfg!(feature = "failpoints") {
        from_env().ok().flatten()
    } else {
        None
    }
}
