//! The lost-state report: a backend's change list classified against the config (lost,
//! persisted, ignored), rendered as text that fits one screen whatever its size, or as JSON with
//! a stable, documented schema, and kept in the store (`store`).

use std::time::{Duration, Instant};

use darlings_backends::{
    Backend, BackendError, Change, DiffLimits, DiffOutput, Truncation, Unlisted,
};

use crate::config::Config;
use crate::owners::Accounts;

mod classify;
mod render;
pub mod store;

pub use classify::{Class, Classifier, Why};

/// One classified entry of a report: its change, as the backend listed it, and its class.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub change: &'a Change,
    pub class: Class,
    pub why: Option<&'a Why>,
}

/// How one change was classified. Kept beside the backend's change list, index for index,
/// rather than moving each change into a bigger entry: the copy wrote every entry a second
/// time into fresh memory: half of a 50,000-entry diff's page faults (`perf record -e
/// page-faults`), 3,347 of them in all before and 1,878 after (`perf stat`).
#[derive(Debug, Clone)]
struct Mark {
    class: Class,
    /// Boxed: most entries have none, and the mark stays two words.
    why: Option<Box<Why>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub entries: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, c: &Change) {
        self.entries += 1;
        self.bytes += c.size.unwrap_or(0);
    }
}

/// A subtree the diff could not list, classified as a whole.
#[derive(Debug, Clone)]
pub struct UnlistedEntry {
    pub unlisted: Unlisted,
    pub class: Class,
    pub why: Option<Why>,
}

/// A classified diff, in the backend's order (JSON output sorts by path; text groups).
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: String,
    pub root: Vec<u8>,
    pub generated: String,
    changes: Vec<Change>,
    marks: Vec<Mark>,
    pub truncated: Option<Truncation>,
    pub unlisted: Vec<UnlistedEntry>,
    /// The presets the config uses, for the hints on lost paths a preset would keep.
    pub presets_in_use: Vec<String>,
}

/// What the diff says of a lost path that a preset would keep.
pub struct PresetHint {
    pub preset: &'static str,
    /// The preset's entry (the lost path itself, or the directory it is in).
    pub entry: &'static str,
    pub level: crate::presets::Level,
    pub text: String,
}

/// Why the lost-state report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LostStateError {
    /// The config's plan (homes resolved against the root's accounts) has a problem: nothing
    /// was diffed.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// The backend's diff failed.
    #[error("cannot diff the root")]
    Diff(#[source] BackendError),
}

/// The lost-state report of `backend`'s root, the one pipeline `darlings diff` prints and
/// `darlings boot` saves: the plan (homes named only in `accounts` are persisted too), its
/// classifier, and the diff and its classification under one time budget, so that neither can
/// hold up a boot whatever the root holds. `root` is the root as the report names it.
pub fn lost_state(
    config: &Config,
    backend: &dyn Backend,
    accounts: &Accounts,
    root: &[u8],
    limits: &DiffLimits,
) -> Result<Report, LostStateError> {
    let plan = crate::plan::build(config, accounts)?;
    let classifier = Classifier::of_plan(config, &plan);
    let start = Instant::now();
    let out = backend.diff(limits).map_err(LostStateError::Diff)?;
    let deadline = limits.time_budget.map(|b| (start, b));
    Ok(Report::classified(
        backend.name(),
        root,
        out,
        &classifier,
        deadline,
    ))
}

/// How often classification looks at the clock.
const CLOCK_EVERY: usize = 256;

impl Report {
    pub fn new(backend: &str, root: &[u8], out: DiffOutput, classifier: &Classifier) -> Report {
        Report::classified(backend, root, out, classifier, None)
    }

    /// The report of a diff that could not run at all: nothing listed, the whole root marked
    /// as not listed with the reason, so the saved report says what happened.
    pub fn failed(backend: &str, root: &[u8], reason: String) -> Report {
        Report {
            backend: backend.to_string(),
            root: root.to_vec(),
            generated: now(),
            changes: Vec::new(),
            marks: Vec::new(),
            truncated: None,
            unlisted: vec![UnlistedEntry {
                unlisted: Unlisted {
                    path: b"/".to_vec(),
                    reason,
                },
                class: Class::Lost,
                why: None,
            }],
            presets_in_use: Vec::new(),
        }
    }

    /// Classifies every entry, or those it reaches before `deadline` (start, budget) passes:
    /// the rest is dropped and the report says it stopped at its time budget.
    fn classified(
        backend: &str,
        root: &[u8],
        out: DiffOutput,
        classifier: &Classifier,
        deadline: Option<(Instant, Duration)>,
    ) -> Report {
        let mut truncated = out.truncated;
        let unlisted = out
            .unlisted
            .into_iter()
            .map(|u| {
                let (class, why) = classifier.classify_subtree(&u.path);
                UnlistedEntry {
                    unlisted: u,
                    class,
                    why,
                }
            })
            .collect();
        let mut changes = out.changes;
        let mut marks = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            if i % CLOCK_EVERY == 0 {
                if let Some((start, budget)) = deadline {
                    if start.elapsed() > budget {
                        truncated.get_or_insert(Truncation::TimeBudget(budget));
                        break;
                    }
                }
            }
            let (class, why) = classifier.classify_entry(&change.path, change.file_type);
            marks.push(Mark {
                class,
                why: why.map(Box::new),
            });
        }
        changes.truncate(marks.len());
        Report {
            backend: backend.to_string(),
            root: root.to_vec(),
            generated: now(),
            changes,
            marks,
            truncated,
            unlisted,
            presets_in_use: classifier.presets_in_use.clone(),
        }
    }

    /// The hint for a lost path that a preset would keep.
    /// `near` carries the lookup of the previous path's directory over to its siblings.
    pub fn preset_hint(
        &self,
        path: &[u8],
        near: &mut crate::presets::Siblings,
    ) -> Option<PresetHint> {
        let (p, e) = crate::presets::Index::get().lookup_near(path, near)?;
        let text = if self.presets_in_use.contains(&p.name) {
            format!("would be kept by preset {} at level {}, which this config leaves out: give level {} a store in [levels], or restore the entry in presets.{}", p.name, e.level, e.level, p.name)
        } else {
            format!(
                "would be kept by preset {} at level {}: add it to presets",
                p.name, e.level
            )
        };
        Some(PresetHint {
            preset: &p.name,
            entry: &e.path,
            level: e.level,
            text,
        })
    }

    /// Ends the report without freeing it: it holds one allocation per entry, and every caller
    /// is a short-lived process that ends right after, so the kernel frees it faster.
    pub fn forget(self) {
        std::mem::forget(self);
    }

    /// Subtrees not listed that are lost (not ignored as a whole).
    pub fn unlisted_lost(&self) -> usize {
        self.unlisted
            .iter()
            .filter(|u| u.class == Class::Lost)
            .count()
    }

    pub fn tally(&self, class: Class) -> Tally {
        let mut t = Tally::default();
        for e in self.entries().filter(|e| e.class == class) {
            t.add(e.change);
        }
        t
    }

    /// The classified entries, in the backend's order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = Entry<'_>> + Clone + '_ {
        self.changes
            .iter()
            .zip(&self.marks)
            .map(|(change, m)| Entry {
                change,
                class: m.class,
                why: m.why.as_deref(),
            })
    }

    /// How many entries the diff listed (and classified).
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
