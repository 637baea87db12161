//! The one runner of a rollback protocol's actions (btrfs's exchange, zfs's keep-old-roots
//! transaction and its one-program rollback): what a dry run is, how a step is logged, what a
//! non-fatal failure does, and where a failpoint stops. The crash matrix depends on these, so
//! they are defined here once.

use crate::{BackendError, Failpoint};

/// One step of a protocol: `step` is the stable name a failpoint stops after, `text` the line a
/// dry run prints and an execution logs, `op` what the backend executes.
#[derive(Debug, Clone)]
pub struct Action<O> {
    pub step: Failpoint,
    pub text: String,
    pub op: O,
}

impl<O> Action<O> {
    pub fn new(step: Failpoint, text: String, op: O) -> Action<O> {
        Action { step, text, op }
    }

    /// Whether its failure stops the protocol: every step's but a prune's. Retention runs once
    /// the root is fresh, so an old root it could not remove is a warning, for every backend,
    /// not a failed boot.
    pub fn fatal(&self) -> bool {
        self.step != Failpoint::Prune
    }
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
    failpoint: Option<Failpoint>,
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
            Err(e) if !a.fatal() => {
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

    const ONE: Failpoint = Failpoint::Snapshot;
    const TWO: Failpoint = Failpoint::Prune;
    const THREE: Failpoint = Failpoint::Sync;

    fn act(step: Failpoint) -> Action<Failpoint> {
        Action::new(step, format!("{step}: do it"), step)
    }

    fn plan() -> Vec<Action<Failpoint>> {
        vec![act(ONE), act(TWO), act(THREE)]
    }

    #[test]
    fn only_a_prune_is_not_fatal() {
        for f in Failpoint::ALL {
            let a = Action::new(*f, String::new(), ());
            assert_eq!(a.fatal(), *f != Failpoint::Prune, "{f}");
        }
    }

    #[test]
    fn dry_run_returns_the_texts_and_executes_nothing() {
        let mut ran = Vec::new();
        let out = run(plan(), true, Some(ONE), |op| {
            ran.push(*op);
            Ok(vec![])
        });
        assert_eq!(
            out.unwrap(),
            ["snapshot: do it", "prune: do it", "sync: do it"]
        );
        assert!(ran.is_empty());
    }

    #[test]
    fn execution_reports_lines_warns_on_non_fatal_and_stops_on_fatal() {
        let mut ran = Vec::new();
        let out = run(plan(), false, None, |op| {
            ran.push(*op);
            match *op {
                ONE => Ok(vec!["one: did a".into(), "one: did b".into()]),
                TWO => Err(BackendError::Refused("busy".into())),
                _ => Ok(vec![]),
            }
        });
        assert_eq!(
            out.unwrap(),
            [
                "one: did a",
                "one: did b",
                "prune: warning: busy; left in place",
                "sync: do it"
            ]
        );
        assert_eq!(ran, [ONE, TWO, THREE]);
        let mut ran = Vec::new();
        let out = run(plan(), false, None, |op| {
            ran.push(*op);
            if *op == ONE {
                Err(BackendError::Refused("cannot".into()))
            } else {
                Ok(vec![])
            }
        });
        assert_eq!(out.unwrap_err().to_string(), "cannot");
        assert_eq!(ran, [ONE]);
    }

    #[test]
    fn a_failpoint_stops_right_after_its_step() {
        for (fp, want) in [
            (ONE, vec![ONE]),
            (TWO, vec![ONE, TWO]),
            (THREE, vec![ONE, TWO, THREE]),
        ] {
            let mut ran = Vec::new();
            let out = run(plan(), false, Some(fp), |op| {
                ran.push(*op);
                // A non-fatal failure at the failpoint's step still stops there.
                if *op == TWO {
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
