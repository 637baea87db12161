//! `darlings old-roots`: the old roots a rollback kept (`keep` in `[root]`), newest first, with
//! their sizes and the lost-state report saved by the boot that retired each, so that a person
//! can tell which one holds what they want back before `darlings restore`.

use std::path::Path;

use darlings_backends::{Backend, BackendError};
use serde_json::{json, Value};

use crate::config::Config;
use crate::orphans::{usage_of_dir, utc};
use crate::report;

pub const SCHEMA: &str = "darlings.old-roots/1";

/// A report is the retiring boot's when its stamp is this close to the old root's name: both
/// come from the same boot's clock, the name just before the diff and the report at its start.
const SAME_BOOT_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum OldRootsError {
    #[error("cannot list the old roots")]
    Backend(#[from] BackendError),
    #[error("cannot list the saved reports")]
    Reports(#[source] report::store::ReportError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub retired: String,
    pub secs: i64,
    /// Bytes and how they were counted ("qgroup exclusive", "zfs used", "walked").
    pub size: Option<(u64, &'static str)>,
    pub referenced: Option<u64>,
    /// Why there is no size.
    pub size_unknown: Option<String>,
    pub report: Option<String>,
}

fn stamp_secs(stem: &str) -> Option<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(stem.get(..16)?, "%Y%m%dT%H%M%SZ").ok()?;
    Some(t.and_utc().timestamp())
}

/// Lists the old roots; `root` is where the stores (and so the reports) are mounted.
pub fn list(
    b: &dyn Backend,
    config: &Config,
    root: &Path,
    walk: bool,
) -> Result<Vec<Listed>, OldRootsError> {
    let kept = b.old_roots()?;
    let stems = match report::store::stems(config, root) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "old-roots: cannot read the saved reports: {}; listing without them",
                crate::error::chain(&e)
            );
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for k in kept {
        let report = stems
            .iter()
            .filter_map(|s| Some((s, stamp_secs(s)?)))
            .filter(|(_, t)| (t - k.secs).abs() <= SAME_BOOT_SECS)
            .min_by_key(|(_, t)| (t - k.secs).abs())
            .map(|(s, _)| s.clone());
        let (size, size_unknown) = match (b.name(), k.exclusive) {
            ("zfs", Some(u)) => (Some((u, "zfs used")), None),
            (_, Some(u)) => (Some((u, "qgroup exclusive")), None),
            _ if walk => match b.open_old_root(&k.name) {
                Ok(t) => (Some((usage_of_dir(t.dir()).bytes, "walked")), None),
                Err(e) => (None, Some(format!("cannot open it: {e}"))),
            },
            _ => (
                None,
                Some(
                    "quotas are off (btrfs quota enable gives exclusive sizes); --sizes walks it"
                        .into(),
                ),
            ),
        };
        out.push(Listed {
            retired: utc(k.secs),
            secs: k.secs,
            name: k.name,
            size,
            referenced: k.referenced,
            size_unknown,
            report,
        });
    }
    Ok(out)
}

pub fn to_json(list: &[Listed]) -> Value {
    let v: Vec<Value> = list
        .iter()
        .map(|l| {
            json!({
                "name": l.name,
                "retired": l.retired,
                "bytes": l.size.map(|s| s.0),
                "bytes_counted_by": l.size.map(|s| s.1),
                "referenced": l.referenced,
                "size_unknown": l.size_unknown,
                "report": l.report,
            })
        })
        .collect();
    json!({ "schema": SCHEMA, "old_roots": v })
}

pub fn to_text(list: &[Listed]) -> String {
    if list.is_empty() {
        return "no old roots kept (set keep in [root] to keep them)\n".into();
    }
    let mut s = String::new();
    for l in list {
        let size = match (&l.size, &l.size_unknown) {
            (Some((b, how)), _) => format!("{} ({how})", crate::show::human(*b)),
            (None, Some(why)) => format!("size unknown: {why}"),
            (None, None) => "size unknown".into(),
        };
        s.push_str(&format!(
            "{}  {}  report {}\n",
            l.name,
            size,
            l.report.as_deref().unwrap_or("none")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_stamps_parse() {
        assert_eq!(stamp_secs("19700101T000100Z"), Some(60));
        assert_eq!(stamp_secs("19700101T000100Z-2"), Some(60));
        assert_eq!(stamp_secs("latest"), None);
    }
}
