//! A backend on plain directories, compiled only for tests (`backend = "fake"`): the root and
//! the blank are directories the config names, so `boot::run`'s tests drive a whole early stage
//! (preflight, hold, diff, rollback) as a normal user. It follows the same checklist as a real
//! backend (ARCHITECTURE.md, "Adding a backend"): a `RootConfig` variant, its keys, one
//! registry line.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use darlings_backends::{
    Backend, BackendError, Change, ChangeKind, DiffLimits, DiffOutput, FileType, HoldOp, HoldState,
    Preflight, RollbackOpts, RollbackOutcome,
};

use super::{BuildError, Ctx};
use crate::config::{Config, RootConfig};

pub struct Fake {
    pub root: PathBuf,
    pub blank: PathBuf,
    pub fail_rollback: bool,
}

pub fn build(config: &Config, _ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    let RootConfig::Fake {
        root,
        blank,
        fail_rollback,
    } = &config.root
    else {
        return Err(BuildError::NotBuilt("fake"));
    };
    let path = |p: &crate::paths::AbsPath| PathBuf::from(std::ffi::OsStr::from_bytes(p.as_bytes()));
    Ok(Box::new(Fake {
        root: path(root),
        blank: path(blank),
        fail_rollback: *fail_rollback,
    }))
}

fn io(what: String, e: std::io::Error) -> BackendError {
    BackendError::io(what, e)
}

impl Fake {
    /// The hold flag: a file beside the root, as btrfs keeps its flag beside its subvolumes.
    pub fn hold_flag(&self) -> PathBuf {
        let mut p = self.root.clone().into_os_string();
        p.push(".hold");
        PathBuf::from(p)
    }

    fn check_dir(what: &str, p: &Path) -> Result<String, BackendError> {
        let m = std::fs::symlink_metadata(p)
            .map_err(|e| io(format!("cannot stat the fake {what} {}", p.display()), e))?;
        if !m.file_type().is_dir() {
            return Err(BackendError::Refused(format!(
                "the fake {what} {} is not a directory (a symlink is refused, never followed); \
                 fix [root] fake-{what}",
                p.display()
            )));
        }
        Ok(format!("{what} {} is a directory", p.display()))
    }
}

/// One entry of a walk: its path from the top (with a leading `/`), its type, and a file's
/// content or a link's target.
type Entry = (Vec<u8>, FileType, Vec<u8>);

/// Every entry below `dir`, never following a link.
fn walk(dir: &Path, rel: &[u8], out: &mut Vec<Entry>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let mut path = rel.to_vec();
        path.push(b'/');
        path.extend_from_slice(e.file_name().as_bytes());
        let ft = e.file_type()?;
        if ft.is_dir() {
            out.push((path.clone(), FileType::Dir, Vec::new()));
            walk(&e.path(), &path, out)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(e.path())?;
            out.push((
                path,
                FileType::Symlink,
                target.as_os_str().as_bytes().to_vec(),
            ));
        } else {
            out.push((path, FileType::File, std::fs::read(e.path())?));
        }
    }
    Ok(())
}

/// Copies `from`'s content into the existing directory `to`, never following a link.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_tree(&e.path(), &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn preflight(&self) -> Result<Preflight, BackendError> {
        Ok(Preflight {
            checks: vec![
                Fake::check_dir("root", &self.root)?,
                Fake::check_dir("blank", &self.blank)?,
            ],
        })
    }

    fn diff(&self, limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
        let (mut root, mut blank) = (Vec::new(), Vec::new());
        walk(&self.root, b"", &mut root)
            .map_err(|e| io(format!("cannot walk {}", self.root.display()), e))?;
        walk(&self.blank, b"", &mut blank)
            .map_err(|e| io(format!("cannot walk {}", self.blank.display()), e))?;
        let in_blank: std::collections::HashMap<&[u8], (FileType, &[u8])> = blank
            .iter()
            .map(|(p, t, c)| (p.as_slice(), (*t, c.as_slice())))
            .collect();
        let in_root: std::collections::HashSet<&[u8]> =
            root.iter().map(|(p, _, _)| p.as_slice()).collect();
        let mut changes = Vec::new();
        for (path, ft, content) in &root {
            let kind = match in_blank.get(path.as_slice()) {
                None => ChangeKind::Added,
                Some((bt, bc)) if bt != ft || *bc != content.as_slice() => ChangeKind::Modified,
                Some(_) => continue,
            };
            changes.push(Change {
                path: path.clone(),
                kind,
                file_type: *ft,
                size: (*ft == FileType::File).then_some(content.len() as u64),
            });
        }
        for (path, ft, _) in &blank {
            if !in_root.contains(path.as_slice()) {
                changes.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Removed,
                    file_type: *ft,
                    size: None,
                });
            }
        }
        let truncated = (changes.len() > limits.max_entries).then_some(
            darlings_backends::Truncation::MaxEntries(limits.max_entries),
        );
        changes.truncate(limits.max_entries);
        Ok(DiffOutput {
            changes,
            truncated,
            unlisted: Vec::new(),
        })
    }

    fn rollback(&self, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
        self.preflight()?;
        let shown = self.root.display();
        let steps = vec![
            format!("empty {shown}"),
            format!("copy {} into {shown}", self.blank.display()),
        ];
        if self.fail_rollback {
            return Err(BackendError::Refused(format!(
                "the fake rollback of {shown} fails, as fake-fail-rollback asks"
            )));
        }
        if !opts.dry_run {
            let list = |e| io(format!("cannot list {shown}"), e);
            for e in std::fs::read_dir(&self.root).map_err(list)? {
                let e = e.map_err(list)?;
                let gone = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(e.path())
                } else {
                    std::fs::remove_file(e.path())
                };
                gone.map_err(|err| io(format!("cannot remove {}", e.path().display()), err))?;
            }
            copy_tree(&self.blank, &self.root).map_err(|e| {
                io(
                    format!("cannot copy {} into {shown}", self.blank.display()),
                    e,
                )
            })?;
        }
        Ok(RollbackOutcome {
            steps,
            already_blank: false,
        })
    }

    fn hold(&self, op: HoldOp) -> Result<HoldState, BackendError> {
        let flag = self.hold_flag();
        let state = match std::fs::symlink_metadata(&flag) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HoldState::None,
            Err(e) => return Err(io(format!("cannot stat {}", flag.display()), e)),
            Ok(m) if !m.file_type().is_file() => HoldState::Bad {
                why: format!("{} is not a file darlings wrote", flag.display()),
            },
            Ok(_) => HoldState::Held {
                at: std::fs::read_to_string(&flag)
                    .map_err(|e| io(format!("cannot read {}", flag.display()), e))?
                    .trim()
                    .to_string(),
            },
        };
        let remove = |dry_run: bool| -> Result<(), BackendError> {
            if !dry_run && state != HoldState::None {
                std::fs::remove_file(&flag)
                    .map_err(|e| io(format!("cannot remove {}", flag.display()), e))?;
            }
            Ok(())
        };
        match op {
            HoldOp::Read => {}
            HoldOp::Take { dry_run } | HoldOp::Cancel { dry_run } => remove(dry_run)?,
            HoldOp::Set { at, dry_run } => {
                if !dry_run {
                    std::fs::write(&flag, format!("{at}\n"))
                        .map_err(|e| io(format!("cannot write {}", flag.display()), e))?;
                }
                return Ok(HoldState::Held { at });
            }
        }
        Ok(state)
    }
}
