//! The one runner of a rollback protocol's actions (btrfs's exchange, zfs's keep-old-roots
//! transaction and its one-program rollback): what a dry run is, how a step is logged, what a
//! non-fatal failure does, and where a failpoint stops. The crash matrix depends on these, so
//! they are defined here once.

use crate::BackendError;

/// One step of a protocol: `step` is the stable name a failpoint stops after, `text` the line a
/// dry run prints and an execution logs, `op` what the backend executes.
#[derive(Debug, Clone)]
pub struct Action<O> {
    pub step: &'static str,
    pub text: String,
    pub op: O,
    /// A non-fatal action that fails is reported as a warning and the protocol goes on (btrfs's
    /// prune: the root is already fresh by then).
    pub fatal: bool,
}

/// Runs `actions` in order.
///
/// - `dry_run`: returns every action's text and calls nothing.
/// - Otherwise each action is executed by `exec`, which returns the lines that say what it did
///   (empty: the action's own text says it); each line is logged. A fatal action's error stops
///   the run; a non-fatal one's becomes a `STEP: warning: ...; left in place` line.
/// - `failpoint`: right after the action of that step (whether or not it failed non-fatally)
///   the run stops with `failpoint STEP hit`, changing nothing more, as a power cut would.
pub fn run<O>(
    actions: Vec<Action<O>>,
    dry_run: bool,
    failpoint: Option<&str>,
    mut exec: impl FnMut(&O) -> Result<Vec<String>, BackendError>,
) -> Result<Vec<String>, BackendError> {
    if dry_run {
        return Ok(actions.into_iter().map(|a| a.text).collect());
    }
    let mut steps = Vec::with_capacity(actions.len());
    for a in actions {
        match exec(&a.op) {
            Ok(lines) if lines.is_empty() => {
                tracing::info!("{}", a.text);
                steps.push(a.text);
            }
            Ok(lines) => {
                for l in lines {
                    tracing::info!("{l}");
                    steps.push(l);
                }
            }
            Err(e) if !a.fatal => {
                let line = format!("{}: warning: {e}; left in place", a.step);
                tracing::warn!("{line}");
                steps.push(line);
            }
            Err(e) => return Err(e),
        }
        if failpoint == Some(a.step) {
            return Err(BackendError::Refused(format!("failpoint {} hit", a.step)));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(step: &'static str, fatal: bool) -> Action<&'static str> {
        Action {
            step,
            text: format!("{step}: do it"),
            op: step,
            fatal,
        }
    }

    fn plan() -> Vec<Action<&'static str>> {
        vec![act("one", true), act("two", false), act("three", true)]
    }

    #[test]
    fn dry_run_returns_the_texts_and_executes_nothing() {
        let mut ran = Vec::new();
        let out = run(plan(), true, Some("one"), |op| {
            ran.push(*op);
            Ok(vec![])
        });
        assert_eq!(out.unwrap(), ["one: do it", "two: do it", "three: do it"]);
        assert!(ran.is_empty());
    }

    #[test]
    fn execution_reports_lines_warns_on_non_fatal_and_stops_on_fatal() {
        let mut ran = Vec::new();
        let out = run(plan(), false, None, |op| {
            ran.push(*op);
            match *op {
                "one" => Ok(vec!["one: did a".into(), "one: did b".into()]),
                "two" => Err(BackendError::Refused("busy".into())),
                _ => Ok(vec![]),
            }
        });
        assert_eq!(
            out.unwrap(),
            [
                "one: did a",
                "one: did b",
                "two: warning: busy; left in place",
                "three: do it"
            ]
        );
        assert_eq!(ran, ["one", "two", "three"]);
        let mut ran = Vec::new();
        let out = run(plan(), false, None, |op| {
            ran.push(*op);
            if *op == "one" {
                Err(BackendError::Refused("cannot".into()))
            } else {
                Ok(vec![])
            }
        });
        assert_eq!(out.unwrap_err().to_string(), "cannot");
        assert_eq!(ran, ["one"]);
    }

    #[test]
    fn a_failpoint_stops_right_after_its_step() {
        for (fp, want) in [
            ("one", vec!["one"]),
            ("two", vec!["one", "two"]),
            ("three", vec!["one", "two", "three"]),
        ] {
            let mut ran = Vec::new();
            let out = run(plan(), false, Some(fp), |op| {
                ran.push(*op);
                // A non-fatal failure at the failpoint's step still stops there.
                if *op == "two" {
                    Err(BackendError::Refused("busy".into()))
                } else {
                    Ok(vec![])
                }
            });
            assert_eq!(out.unwrap_err().to_string(), format!("failpoint {fp} hit"));
            assert_eq!(ran, want);
        }
    }
}
