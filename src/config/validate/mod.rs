//! Validation: the raw config (raw.rs) into `Config`, each problem recorded with the span of the
//! value it is about and a fix, and all of them found in one pass.

use std::collections::HashSet;
use std::ops::Range;
use std::time::Duration;

use darlings_backends::names::{
    btrfs_clash, btrfs_name_ok, zfs_component_ok, zfs_dataset_ok, BtrfsClash,
};

use super::doc::{Scalar, Sp};
use super::raw::{
    RawConfig, RawDiff, RawEntry, RawKeep, RawParent, RawPersist, RawReport, RawRoot,
};
use super::{
    conflicts, mode, parse_duration, BootConfig, Config, DiffConfig, Entry, Keep, Kind, Method,
    OnFailure, ParentSpec, Problems, ReportConfig, RootConfig, Store, Target, UserEntry, UserHome,
    DENIED,
};
use crate::glob::Glob;
use crate::owners::{valid_name, Who};
use crate::paths::{AbsPath, RelPath, PATH_MAX};
use crate::presets::{Level, Origin};

mod diff;
mod persist;
mod root;

use diff::{validate_diff, validate_report};
pub use persist::home_problem;
use persist::{check_conflicts, validate_store};
use root::validate_root;

impl Problems {
    fn abs(&mut self, what: &str, s: &Sp<String>) -> Option<AbsPath> {
        match AbsPath::parse(&s.v) {
            Ok(p) => Some(p),
            Err(e) => {
                self.at(s.span.clone(), format!("{what} {:?} {e}", s.v));
                None
            }
        }
    }

    /// A mode: octal or symbolic, whose `+`/`-` clauses start from `base`.
    fn mode(&mut self, what: &str, v: &Sp<Scalar>, base: u32, is_dir: bool) -> Option<u32> {
        let fix =
            "write it as an octal string such as \"0750\" or as symbols such as \"u=rwx,g=rx,o=\"";
        match &v.v {
            Scalar::Str(s) => match mode::parse(s, base, is_dir) {
                Ok(m) => Some(m),
                Err(why) => {
                    self.at(
                        v.span.clone(),
                        format!("{what} {s:?} is not a file mode: it {why}; {fix}"),
                    );
                    None
                }
            },
            Scalar::Int(i) => {
                self.at(
                    v.span.clone(),
                    format!("{what} {i} is a number, which TOML reads as decimal; {fix}"),
                );
                None
            }
            other => {
                self.at(
                    v.span.clone(),
                    format!("{what} must be a string, not a {}; {fix}", other.type_str()),
                );
                None
            }
        }
    }

    /// A numeric id, written as a number or as a string of digits; u32::MAX is `(uid_t)-1`,
    /// which chown reads as "leave unchanged", so it is refused in both spellings.
    fn id(&mut self, what: &str, v: &Sp<Scalar>) -> Option<u32> {
        let n = match &v.v {
            Scalar::Int(i) => Some(*i),
            Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Some(s.parse::<i64>().unwrap_or(i64::MAX))
            }
            _ => None,
        };
        match n.map(u32::try_from) {
            Some(Ok(id)) if id != u32::MAX => Some(id),
            Some(_) => {
                let shown = match &v.v {
                    Scalar::Str(s) => format!("{s:?}"),
                    Scalar::Int(i) => i.to_string(),
                    _ => String::new(),
                };
                self.at(
                    v.span.clone(),
                    format!("{what} {shown} is out of range; ids are 0 to 4294967294"),
                );
                None
            }
            None => {
                self.at(
                    v.span.clone(),
                    format!("{what} must be a numeric id, not a {}", v.v.type_str()),
                );
                None
            }
        }
    }

    fn who(&mut self, what: &str, v: &Sp<Scalar>) -> Option<Who> {
        match &v.v {
            Scalar::Str(s) if valid_name(s) => Some(Who::Name(s.clone())),
            Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                self.id(what, v).map(Who::Id)
            }
            Scalar::Int(_) => self.id(what, v).map(Who::Id),
            Scalar::Str(s) => {
                self.at(
                    v.span.clone(),
                    format!("{what} {s:?} is not a valid user or group name; use letters, digits, '_', '-' or '.', or a numeric id"),
                );
                None
            }
            other => {
                self.at(
                    v.span.clone(),
                    format!(
                        "{what} must be a name or a number, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn parent(&mut self, p: &Option<RawParent>, default: &ParentSpec) -> ParentSpec {
        let mut out = default.clone();
        if let Some(p) = p {
            if let Some(u) = p.user.as_ref().and_then(|u| self.who("parent user", u)) {
                out.user = u;
            }
            if let Some(g) = p.group.as_ref().and_then(|g| self.who("parent group", g)) {
                out.group = g;
            }
            if let Some(m) = p
                .mode
                .as_ref()
                .and_then(|m| self.mode("parent mode", m, default.mode, true))
            {
                out.mode = m;
            }
        }
        out
    }

    fn method(&mut self, kind: Kind, m: &Option<Sp<String>>) -> Method {
        match m {
            None => Method::Bind,
            Some(m) => match m.v.as_str() {
                "auto" | "bind" => Method::Bind,
                "symlink" if kind == Kind::File => Method::Symlink,
                other => {
                    self.at(
                        m.span.clone(),
                        format!("method {other:?} is not a way to persist a file; write \"auto\" (a bind mount) or \"symlink\" (a link into the store)"),
                    );
                    Method::Bind
                }
            },
        }
    }
}

pub(super) fn validate(raw: RawConfig, c: &mut Problems) -> Option<Config> {
    let root = match &raw.root {
        None => {
            c.nowhere("no [root] table; add one, e.g. [root] backend = \"tmpfs\"");
            None
        }
        Some(r) => validate_root(r, c),
    };

    let mut stores: Vec<Store> = Vec::new();
    let mut targets = Vec::new();
    for p in &raw.persist {
        if let Some(s) = validate_store(p, c, &mut targets) {
            if stores.iter().any(|q| q.path == s.path) {
                let span = p.store.as_ref().map_or(p.span.clone(), |s| s.span.clone());
                c.at(
                    span,
                    format!(
                        "store {} is listed twice; merge the two [[persist]] tables",
                        s.path
                    ),
                );
            }
            stores.push(s);
        }
    }
    check_conflicts(&stores, &targets, c);

    let diff = validate_diff(raw.diff.as_ref(), &stores, c);
    let mut boot = BootConfig::default();
    if let Some(f) = raw.boot.as_ref().and_then(|b| b.on_failure.as_ref()) {
        match OnFailure::parse(&f.v) {
            Some(p) => boot.on_failure = p,
            None => c.at(
                f.span.clone(),
                format!(
                    "on-failure {:?} is not a policy; write \"boot-old-root\" (boot the untouched root) or \"halt\" (stop the boot)",
                    f.v
                ),
            ),
        }
    }
    let report = validate_report(raw.report.as_ref(), c);
    Some(Config {
        root: root?,
        diff,
        boot,
        report,
        stores,
        notes: Vec::new(),
        presets: Vec::new(),
    })
}

/// A `[root]` key, where it was written, and the backends it belongs to.
type ForeignKey<'a> = (&'a str, Option<Range<usize>>, &'a [&'a str]);

fn span_of<T>(v: &Option<Sp<T>>) -> Option<Range<usize>> {
    v.as_ref().map(|v| v.span.clone())
}
