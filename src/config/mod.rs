//! The TOML config: read from the document whatever its layout (doc.rs, raw.rs), then validated
//! (validate/) into `Config` (types.rs), a type that can only hold a config every later step may trust.
//! Every rejection names the file, line and column, the offending value, and the fix.

pub(crate) mod doc;
pub mod edit;
pub mod mode;
mod presets;
mod raw;
mod types;
mod validate;

pub use types::*;
pub use validate::home_problem;

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use crate::paths::AbsPath;

/// Where the config lives when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/darlings.toml";

/// Paths no entry may be, lie inside, or contain: persisting them would shadow the kernel's
/// filesystems, the Nix store or the whole root.
pub const DENIED: &[&str] = &["/proc", "/sys", "/dev", "/run", "/nix/store"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path} not found; write one (see the config reference in README.md) or pass --config FILE")]
    NotFound { path: String },
    #[error("cannot read config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is invalid ({} problem{}):\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("\n"))]
    Invalid { path: String, problems: Vec<String> },
}

// ---------------------------------------------------------------------------------------------
// Problems and their locations

/// One problem found, with the byte span of the value it is about.
struct Problem {
    span: Option<Range<usize>>,
    msg: String,
}

/// Every problem a file has, collected so that one run lists them all.
#[derive(Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.list.push(Problem {
            span: Some(span),
            msg: msg.into(),
        });
    }

    fn nowhere(&mut self, msg: impl Into<String>) {
        self.list.push(Problem {
            span: None,
            msg: msg.into(),
        });
    }

    fn render(&self, text: &str, file: &str) -> Vec<String> {
        self.list
            .iter()
            .map(|p| match &p.span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("  {file}:{line}:{col}: {}", p.msg)
                }
                None => format!("  {file}: {}", p.msg),
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads and validates the config file at `path`.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound { path: shown })
        }
        Err(e) => {
            return Err(ConfigError::Read {
                path: shown,
                source: e,
            })
        }
    };
    parse(&text, &shown)
}

/// Parses and validates config text; `file` is only used in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let document = match doc::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let loc = match e.span {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    format!("{file}:{line}:{col}")
                }
                None => file.to_string(),
            };
            return Err(ConfigError::Invalid {
                path: file.to_string(),
                problems: vec![format!(
                    "  {loc}: {}; see the config reference in README.md",
                    e.message
                )],
            });
        }
    };
    let mut problems = Problems::default();
    let mut raw = raw::read(&doc::top(&document), &mut problems);
    let expanded = presets::expand(&mut raw, &mut problems);
    let config = validate::validate(raw, &mut problems).map(|c| Config {
        notes: expanded.notes,
        presets: expanded.used,
        ..c
    });
    match config {
        Some(config) if problems.list.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            path: file.to_string(),
            problems: problems.render(text, file),
        }),
    }
}

/// A persisted path as the conflict check sees it.
#[derive(Clone)]
pub struct Target {
    pub path: AbsPath,
    pub kind: Kind,
    pub store: AbsPath,
}

/// Duplicates, nesting, and store/entry overlap over a set of absolute targets. Shared by config
/// validation and by the planner (which learns home directories from the root's passwd).
pub fn conflicts(targets: &[Target], stores: &[AbsPath]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut by_path: HashMap<&AbsPath, usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if let Some(&j) = by_path.get(&t.path) {
            let other = &targets[j];
            out.push((
                i,
                format!(
                    "{} {} is listed twice (stores {} and {}); keep one",
                    t.kind.as_str(),
                    t.path,
                    other.store,
                    t.store
                ),
            ));
        } else {
            by_path.insert(&t.path, i);
        }
    }
    for (i, t) in targets.iter().enumerate() {
        for a in t.path.ancestors() {
            if let Some(&j) = by_path.get(&a) {
                let outer = &targets[j];
                if outer.kind == Kind::Dir {
                    out.push((
                        i,
                        format!(
                            "{} {} is inside persisted directory {} (store {}), which already persists it; remove the inner entry",
                            t.kind.as_str(), t.path, outer.path, outer.store
                        ),
                    ));
                }
            }
        }
        for s in stores {
            if t.path.starts_with(s) {
                out.push((i, format!("{} {} is inside store {}; the store is persistent already, remove the entry", t.kind.as_str(), t.path, s)));
            } else if s.is_inside(&t.path) {
                out.push((i, format!("{} {} contains store {}; binding over it would hide the store, persist the paths beside the store instead", t.kind.as_str(), t.path, s)));
            }
            // Nested stores (/persist and /persist/cache): an entry of the outer store must not
            // keep its copy inside the inner one, or the two stores would share a directory.
            let source = t.path.under(&t.store);
            let holds_own_store = t.store.starts_with(s);
            if *s != t.store
                && ((source.starts_with(s) && !holds_own_store) || s.is_inside(&source))
            {
                out.push((i, format!("{} {} of store {} would be kept at {}, which overlaps store {}; persist it from store {} instead, or move one store", t.kind.as_str(), t.path, t.store, source, s, s)));
            }
        }
    }
    out
}

/// `"10s"`, `"500ms"`, `"2m"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))?;
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

#[cfg(test)]
mod layouts;
#[cfg(test)]
mod tests;
