//! Btrfs rollback by the exchange protocol, its read-only preflight, old-root retention, and
//! `darlings init` (the blank made from an empty root).
//!
//! Protocol, on the top level (subvolid=5) mounted privately: remove a stray `<root>.new`;
//! snapshot the blank to `<root>.new`; `renameat2(RENAME_EXCHANGE)` `<root>` ⇄ `<root>.new`;
//! move the old root (now `<root>.new`) to `<old-roots>/<UTC timestamp>` with
//! `RENAME_NOREPLACE`, or delete it; `syncfs`; prune old roots beyond `keep`. Every committed
//! state has a valid `<root>`, and the next run repairs whatever an interruption left.
//!
//! A stray `<root>.new` is one of two things, told apart by creation transaction: newer than
//! `<root>`, it is the fresh snapshot of a run cut before the exchange (deleted, after checking it
//! is an untouched snapshot of the blank); older, it is the old root of a run cut after the
//! exchange (retired like any old root, so `keep` still holds it).
//!
//! `already_blank` is never reported: proving cheaply that a root is unchanged since its snapshot
//! is not reliable before a transaction commit, and the protocol costs a few milliseconds, so a
//! second run simply makes another fresh root (the one it retires was blank).

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libbtrfsutil::{CreateSnapshotOptions, FS_TREE_OBJECTID};
use rustix::fs::{self, Mode, RenameFlags};

use super::subvol::{btrfs_err, check_name, nested_deepest_first, Subvol, Top};
use super::Btrfs;
use crate::bytes::Show;
use crate::clock::{civil_from_days, days_from_civil, unix_secs};
use crate::error::IoContext;
use crate::mountinfo;
use crate::names::{self, BtrfsClash};
use crate::protocol;
use crate::{BackendError, Failpoint, Keep, Preflight, Pruned, RollbackOpts, RollbackOutcome};

/// The names in the top level that darlings works with, checked once.
struct Names {
    root: Vec<u8>,
    blank: Vec<u8>,
    new: Vec<u8>,
    old_roots: Vec<u8>,
}

impl Names {
    fn of(b: &Btrfs) -> Result<Names, BackendError> {
        check_name("root subvolume", &b.subvolume)?;
        check_name("blank snapshot", &b.blank)?;
        check_name("old-roots directory", &b.old_roots)?;
        let n = Names {
            root: b.subvolume.clone(),
            blank: b.blank.clone(),
            new: names::btrfs_root_new(&b.subvolume),
            old_roots: b.old_roots.clone(),
        };
        match names::btrfs_clash(&n.root, &n.blank, &n.old_roots) {
            None => {}
            Some(BtrfsClash::BlankIsRoot) => {
                return Err(BackendError::Refused(format!(
                    "the blank snapshot and the root subvolume are both {}; rolling back would \
                     destroy the blank: set [root] blank to the read-only snapshot (e.g. root-blank)",
                    Show(&n.root)
                )))
            }
            Some(BtrfsClash::IsRootNew | BtrfsClash::OldRootsCollide) => {
                let (what, name) = if n.blank == n.new {
                    ("blank snapshot", &n.blank)
                } else {
                    ("old-roots directory", &n.old_roots)
                };
                return Err(BackendError::Refused(format!(
                    "the {what} name {} collides with a name rollback uses ({}, {}.new, {}); \
                     choose another name in [root]",
                    Show(name),
                    Show(&n.root),
                    Show(&n.root),
                    Show(&n.blank)
                )));
            }
        }
        Ok(n)
    }

    fn in_old_roots(&self, name: &[u8]) -> Vec<u8> {
        let mut p = self.old_roots.clone();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

/// What the top level holds, as far as rollback cares; every field was checked.
struct State {
    checks: Vec<String>,
    all: Vec<Subvol>,
    root: Subvol,
    blank: Subvol,
    stray: Option<Subvol>,
    /// The old-roots directory's inode, if it exists.
    old_roots_ino: Option<u64>,
}

fn examine(top: &Top, b: &Btrfs, n: &Names) -> Result<State, BackendError> {
    let dev = b.device.display();
    let mut checks = vec![format!(
        "device {dev} holds a btrfs filesystem; its top level (subvolid=5) mounts"
    )];
    let blank = top.subvol_at(&n.blank)?.ok_or_else(|| {
        BackendError::Refused(format!(
            "blank snapshot {} not found on {dev}; create it with darlings init",
            Show(&n.blank)
        ))
    })?;
    if !blank.read_only {
        return Err(BackendError::Refused(format!(
            "blank snapshot {} on {dev} is not read-only, so it may no longer be blank; check its \
             content, then make it read-only (btrfs property set <top level>/{} ro true)",
            Show(&n.blank),
            Show(&n.blank)
        )));
    }
    checks.push(format!(
        "blank snapshot {} is a read-only subvolume (id {})",
        Show(&n.blank),
        blank.id
    ));
    let root = top.subvol_at(&n.root)?.ok_or_else(|| {
        BackendError::Refused(format!(
            "root subvolume {} not found on {dev}; check [root] subvolume (for a new install: \
             btrfs subvolume create <top level>/{}, then darlings init)",
            Show(&n.root),
            Show(&n.root)
        ))
    })?;
    if root.id == blank.id {
        return Err(BackendError::Refused(format!(
            "root subvolume {} and blank snapshot {} are the same subvolume (id {}); fix [root]",
            Show(&n.root),
            Show(&n.blank),
            root.id
        )));
    }
    if let Some(at) = mounted_at(&b.device, &n.root, root.id)? {
        return Err(BackendError::Refused(format!(
            "root subvolume {} on {dev} is mounted at {}; rollback must run before the root is \
             mounted (in the initrd, before sysroot.mount): unmount it first",
            Show(&n.root),
            Show(&at)
        )));
    }
    checks.push(format!(
        "root subvolume {} (id {}) exists and is not mounted",
        Show(&n.root),
        root.id
    ));
    let stray = top.subvol_at(&n.new)?;
    if let Some(s) = &stray {
        checks.push(format!(
            "stray {} (id {}) from an interrupted rollback: it is repaired first",
            Show(&n.new),
            s.id
        ));
    }
    let old_roots_ino = if b.keep.is_some() {
        top.dir_ino(&n.old_roots)?
    } else {
        None
    };
    let all = top.all_subvols()?;
    Ok(State {
        checks,
        all,
        root,
        blank,
        stray,
        old_roots_ino,
    })
}

/// Where (if anywhere) the root subvolume, or a directory inside it, is mounted: mountinfo read
/// once, matched by the source's device number and by subvolume path or ID.
fn mounted_at(device: &Path, root: &[u8], root_id: u64) -> Result<Option<Vec<u8>>, BackendError> {
    let rdev = fs::stat(device)
        .ctx(|| format!("cannot stat device {}", device.display()))?
        .st_rdev;
    let text = std::fs::read("/proc/self/mountinfo")
        .ctx(|| "cannot read /proc/self/mountinfo".to_string())?;
    let mut prefix = b"/".to_vec();
    prefix.extend_from_slice(root);
    let subvolid = format!("subvolid={root_id}");
    for line in text.split(|&c| c == b'\n') {
        let f: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        let Some(sep) = f.iter().position(|x| *x == b"-") else {
            continue;
        };
        if f.get(sep + 1) != Some(&&b"btrfs"[..]) {
            continue;
        }
        let Some(m) = mountinfo::parse(line).into_iter().next() else {
            continue;
        };
        let same_dev = m.source.starts_with(b"/")
            && fs::stat(std::ffi::OsStr::from_bytes(&m.source)).is_ok_and(|st| st.st_rdev == rdev);
        if !same_dev {
            continue;
        }
        let by_path = m.root == prefix
            || (m.root.starts_with(&prefix) && m.root.get(prefix.len()) == Some(&b'/'));
        let by_id = f
            .get(sep + 3)
            .is_some_and(|opts| opts.split(|&c| c == b',').any(|o| o == subvolid.as_bytes()));
        if by_path || by_id {
            return Ok(Some(m.mount_point));
        }
    }
    Ok(None)
}

#[derive(Debug, Clone)]
enum Op {
    MakeDir(Vec<u8>),
    /// Delete subvolume `id` after checking its parent (and, for top-level targets, its path).
    Delete {
        id: u64,
        parent: u64,
        path: Option<Vec<u8>>,
    },
    Snapshot,
    Exchange,
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Sync,
}

type Action = protocol::Action<Op>;

/// A protocol action, its text led by its step's name as the crash tests read it.
fn act(step: Failpoint, op: Op, text: String) -> Action {
    Action::new(step, format!("{step}: {text}"), op)
}

/// An old root that retention decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    id: u64,
    path: Vec<u8>,
    secs: i64,
    seq: u32,
}

struct Planner<'a> {
    top: &'a Top,
    b: &'a Btrfs,
    n: &'a Names,
    st: &'a State,
    now: i64,
    taken: HashSet<Vec<u8>>,
    retired: Vec<Candidate>,
    out: Vec<Action>,
}

impl Planner<'_> {
    /// Deletes `s` (now at `at`), its nested subvolumes first, deepest first.
    fn delete_tree(&mut self, step: Failpoint, s: &Subvol, at: &[u8], why: &str) {
        for (nested, _) in nested_deepest_first(&self.st.all, s.id) {
            let rel = nested
                .path
                .strip_prefix(s.path.as_slice())
                .unwrap_or(&nested.path);
            let mut shown = at.to_vec();
            shown.extend_from_slice(rel);
            self.out.push(act(
                if step == Failpoint::Prune {
                    Failpoint::Prune
                } else {
                    Failpoint::DeleteNested
                },
                Op::Delete {
                    id: nested.id,
                    parent: nested.parent_id,
                    path: None,
                },
                format!(
                    "delete nested subvolume {} (id {}, inside id {})",
                    Show(&shown),
                    nested.id,
                    nested.parent_id
                ),
            ));
        }
        self.out.push(act(
            step,
            Op::Delete {
                id: s.id,
                parent: FS_TREE_OBJECTID,
                path: Some(at.to_vec()),
            },
            format!("delete the old root {} (id {}){why}", Show(at), s.id),
        ));
    }

    /// A free name in old-roots for a root retired now: the timestamp, then `.1`, `.2`…
    fn free_name(&mut self) -> Result<(Vec<u8>, u32), BackendError> {
        let ts = format_ts(self.now);
        for seq in 0u32..10_000 {
            let mut name = ts.clone().into_bytes();
            if seq > 0 {
                name.extend_from_slice(format!(".{seq}").as_bytes());
            }
            let rel = self.n.in_old_roots(&name);
            if !self.taken.contains(&rel) && !self.top.exists(&rel)? {
                self.taken.insert(rel);
                return Ok((name, seq));
            }
        }
        Err(BackendError::Refused(format!(
            "{} holds 10,000 old roots named {ts}; check the clock",
            Show(&self.n.old_roots)
        )))
    }

    /// Retires the old root `s`, now at `<root>.new`: kept in old-roots, or deleted.
    fn retire(&mut self, step: Failpoint, s: &Subvol) -> Result<(), BackendError> {
        let new = self.n.new.clone();
        if self.b.keep.is_none() {
            self.delete_tree(step, s, &new, "");
            return Ok(());
        }
        let (name, seq) = self.free_name()?;
        let to = self.n.in_old_roots(&name);
        self.out.push(act(
            step,
            Op::Rename {
                from: new.clone(),
                to: to.clone(),
            },
            format!(
                "move the old root {} (id {}) to {} (rename_noreplace)",
                Show(&new),
                s.id,
                Show(&to)
            ),
        ));
        self.retired.push(Candidate {
            id: s.id,
            path: to,
            secs: self.now,
            seq,
        });
        Ok(())
    }

    fn plan(mut self) -> Result<Vec<Action>, BackendError> {
        let (n, st) = (self.n, self.st);
        let dev = self.b.device.display();
        if self.b.keep.is_some() && st.old_roots_ino.is_none() {
            self.out.push(act(
                Failpoint::MakeOldRoots,
                Op::MakeDir(n.old_roots.clone()),
                format!("create directory {} (mode 0700)", Show(&n.old_roots)),
            ));
        }
        if let Some(s) = &st.stray {
            if s.otransid > st.root.otransid {
                let untouched = s.parent_uuid == Some(st.blank.uuid)
                    && nested_deepest_first(&st.all, s.id).is_empty();
                if !untouched {
                    return Err(BackendError::Refused(format!(
                        "stray {} (id {}) on {dev} is newer than {} but not an untouched snapshot \
                         of {}; darlings did not make it: look at it, then delete or rename it",
                        Show(&n.new),
                        s.id,
                        Show(&n.root),
                        Show(&n.blank)
                    )));
                }
                self.out.push(act(
                    Failpoint::RemoveStray,
                    Op::Delete {
                        id: s.id,
                        parent: FS_TREE_OBJECTID,
                        path: Some(n.new.clone()),
                    },
                    format!(
                        "delete {} (id {}), an unused snapshot of {} left by an interrupted \
                         rollback",
                        Show(&n.new),
                        s.id,
                        Show(&n.blank)
                    ),
                ));
            } else {
                self.retire(Failpoint::RemoveStray, s)?;
            }
        }
        self.out.push(act(
            Failpoint::Snapshot,
            Op::Snapshot,
            format!(
                "snapshot {} (id {}) to {}",
                Show(&n.blank),
                st.blank.id,
                Show(&n.new)
            ),
        ));
        self.out.push(act(
            Failpoint::Exchange,
            Op::Exchange,
            format!(
                "exchange {} and {} (rename_exchange): {} becomes the fresh snapshot, {} the old \
                 root (id {})",
                Show(&n.root),
                Show(&n.new),
                Show(&n.root),
                Show(&n.new),
                st.root.id
            ),
        ));
        let root = st.root.clone();
        self.retire(Failpoint::RetireOld, &root)?;
        self.out.push(act(
            Failpoint::Sync,
            Op::Sync,
            format!("syncfs the top level of {dev}"),
        ));
        if let Some(keep) = self.b.keep {
            self.prune(keep)?;
        }
        Ok(self.out)
    }

    fn prune(&mut self, keep: Keep) -> Result<(), BackendError> {
        let st = self.st;
        let retired = std::mem::take(&mut self.retired);
        let cands = candidates(&st.all, &self.n.old_roots, st.old_roots_ino, retired);
        for (c, why) in to_prune(cands, keep, self.now) {
            let s = Subvol {
                id: c.id,
                parent_id: FS_TREE_OBJECTID,
                dir_id: 0,
                // Nested paths in the listing are relative to where the root was when listed.
                path: st
                    .all
                    .iter()
                    .find(|s| s.id == c.id)
                    .map_or_else(|| c.path.clone(), |s| s.path.clone()),
                uuid: [0; 16],
                parent_uuid: None,
                otransid: 0,
                read_only: false,
            };
            self.delete_tree(Failpoint::Prune, &s, &c.path, &format!(": {why}"));
        }
        Ok(())
    }
}

/// The old roots retention decides on: those this run retires, and the subvolumes directly in
/// the old-roots directory (selected by parent ID and directory inode; the path only supplies
/// the timestamp) whose names `format_ts` made.
fn candidates(
    all: &[Subvol],
    old_roots: &[u8],
    old_roots_ino: Option<u64>,
    retired: Vec<Candidate>,
) -> Vec<Candidate> {
    let mut cands = retired;
    let retired_ids: HashSet<u64> = cands.iter().map(|c| c.id).collect();
    let mut prefix = old_roots.to_vec();
    prefix.push(b'/');
    for s in all {
        let Some(name) = s.path.strip_prefix(prefix.as_slice()) else {
            continue;
        };
        if s.parent_id != FS_TREE_OBJECTID
            || Some(s.dir_id) != old_roots_ino
            || name.contains(&b'/')
            || retired_ids.contains(&s.id)
        {
            continue;
        }
        if let Some((secs, seq)) = parse_ts(name) {
            cands.push(Candidate {
                id: s.id,
                path: s.path.clone(),
                secs,
                seq,
            });
        }
    }
    cands
}

/// The candidates `Keep::select` (the rule zfs shares) removes, newest first, with why.
fn to_prune(cands: Vec<Candidate>, keep: Keep, now: i64) -> Vec<(Candidate, Pruned)> {
    let times: Vec<(i64, u32)> = cands.iter().map(|c| (c.secs, c.seq)).collect();
    let chosen = keep.select(&times, now);
    let mut cands: Vec<Option<Candidate>> = cands.into_iter().map(Some).collect();
    chosen
        .into_iter()
        .filter_map(|(i, why)| Some((cands.get_mut(i)?.take()?, why)))
        .collect()
}

fn exec(top: &Top, b: &Btrfs, n: &Names, op: &Op) -> Result<(), BackendError> {
    let dev = b.device.display();
    let fd = top.fd()?;
    match op {
        Op::MakeDir(name) => fs::mkdirat(fd, name.as_slice(), Mode::from_raw_mode(0o700))
            .ctx(|| format!("cannot create directory {} on {dev}", Show(name))),
        Op::Delete { id, parent, path } => top.delete_checked(*id, *parent, path.as_deref()),
        Op::Snapshot => CreateSnapshotOptions::new()
            .create(top.path(&n.blank), top.path(&n.new))
            .map_err(btrfs_err)
            .ctx(|| {
                format!(
                    "cannot snapshot {} to {} on {dev}",
                    Show(&n.blank),
                    Show(&n.new)
                )
            }),
        Op::Exchange => fs::renameat_with(
            fd,
            n.root.as_slice(),
            fd,
            n.new.as_slice(),
            RenameFlags::EXCHANGE,
        )
        .ctx(|| {
            format!(
                "cannot exchange {} and {} on {dev}",
                Show(&n.root),
                Show(&n.new)
            )
        }),
        Op::Rename { from, to } => fs::renameat_with(
            fd,
            from.as_slice(),
            fd,
            to.as_slice(),
            RenameFlags::NOREPLACE,
        )
        .ctx(|| format!("cannot move {} to {} on {dev}", Show(from), Show(to))),
        Op::Sync => fs::syncfs(fd).ctx(|| format!("cannot syncfs the top level of {dev}")),
    }
}

pub(crate) fn preflight(b: &Btrfs) -> Result<Preflight, BackendError> {
    let n = Names::of(b)?;
    let top = Top::mount(&b.device, &b.work_dir, true)?;
    let st = examine(&top, b, &n)?;
    top.close()?;
    Ok(Preflight { checks: st.checks })
}

pub(crate) fn rollback(b: &Btrfs, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
    let n = Names::of(b)?;
    let now = unix_secs(b.now)?;
    let top = Top::mount(&b.device, &b.work_dir, opts.dry_run)?;
    let st = examine(&top, b, &n)?;
    let actions = Planner {
        top: &top,
        b,
        n: &n,
        st: &st,
        now,
        taken: HashSet::new(),
        retired: Vec::new(),
        out: Vec::new(),
    }
    .plan()?;
    let ran = protocol::run(actions, opts.dry_run, b.failpoint(), |op| {
        exec(&top, b, &n, op).map(|()| Vec::new())
    });
    // Whatever the run ended with (a failpoint as a power cut would: no cleanup of the
    // protocol's state), the unmount only detaches this private mount.
    let closed = top.close();
    let steps = ran?;
    closed?;
    Ok(RollbackOutcome {
        steps,
        already_blank: false,
    })
}

impl Btrfs {
    /// For a new install: makes the read-only blank from an empty root subvolume.
    pub fn init(&self, dry_run: bool) -> Result<Vec<String>, BackendError> {
        let n = Names::of(self)?;
        let dev = self.device.display();
        let top = Top::mount(&self.device, &self.work_dir, dry_run)?;
        let root = top.subvol_at(&n.root)?.ok_or_else(|| {
            BackendError::Refused(format!(
                "root subvolume {} not found on {dev}; create it first (btrfs subvolume create \
                 <top level>/{}) or fix [root] subvolume",
                Show(&n.root),
                Show(&n.root)
            ))
        })?;
        if let Some(blank) = top.subvol_at(&n.blank)? {
            return Err(BackendError::Refused(format!(
                "blank snapshot {} already exists on {dev} (id {}); init is for a new install \
                 and there is nothing to do (delete it first only if you mean to remake it)",
                Show(&n.blank),
                blank.id
            )));
        }
        let (count, first) = top.first_names(&n.root, 5)?;
        if count > 0 {
            let mut listed: Vec<String> = first.iter().map(|x| Show(x).to_string()).collect();
            if count > first.len() {
                listed.push(format!("and {} more", count - first.len()));
            }
            return Err(BackendError::Refused(format!(
                "root subvolume {} on {dev} is not empty (it holds {}); the blank must be made \
                 from an empty root: run init before installing, or empty the root first",
                Show(&n.root),
                listed.join(", ")
            )));
        }
        let steps = vec![
            format!(
                "snapshot: snapshot the empty root {} (id {}) to {}, read-only",
                Show(&n.root),
                root.id,
                Show(&n.blank)
            ),
            format!("sync: syncfs the top level of {dev}"),
        ];
        if !dry_run {
            CreateSnapshotOptions::new()
                .readonly(true)
                .create(top.path(&n.root), top.path(&n.blank))
                .map_err(btrfs_err)
                .ctx(|| {
                    format!(
                        "cannot snapshot {} to {} on {dev}",
                        Show(&n.root),
                        Show(&n.blank)
                    )
                })?;
            fs::syncfs(top.fd()?).ctx(|| format!("cannot syncfs the top level of {dev}"))?;
        }
        top.close()?;
        Ok(steps)
    }
}

/// `2026-11-22T02:30:00Z` for a time in seconds since the epoch, UTC: an old root's name in
/// `old-roots`, `.N` added when the name is taken.
///
/// zfs names its old roots `20261122T023000Z-N` (`zfs::oldroots::stamp`). No filesystem rule
/// makes them differ: `:`, `-` and `.` are all legal in ZFS names (`crate::names`) and in btrfs
/// ones. The two backends were written with different forms of ISO 8601 (zfs took the basic
/// form that saved reports are named with), and the difference must now stay: retention and
/// `darlings old-roots` only ever touch names of their backend's own shape, so a new format
/// would strand every old root an earlier darlings kept (never pruned, never listed).
fn format_ts(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The time and collision number of a name `format_ts` (plus an optional `.N`) made; `None` for
/// anything else, which retention then never touches.
pub(crate) fn parse_ts(name: &[u8]) -> Option<(i64, u32)> {
    let (ts, rest) = (name.get(..20)?, &name[20..]);
    let seq = match rest {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(digits).ok()?.parse().ok()?
        }
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = ts.get(r)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(s).ok()?.parse().ok())?
    };
    let shape = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if !shape.iter().all(|&(i, c)| ts[i] == c) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    // Only names this function's inverse would produce: no 2026-02-31.
    (format_ts(secs).as_bytes() == ts).then_some((secs, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(id: u64, parent_id: u64, dir_id: u64, path: &str) -> Subvol {
        Subvol::for_test(id, parent_id, dir_id, path)
    }

    /// Retention on btrfs's own names (`Keep::select` is the rule): what a listing of the top
    /// level offers, what this run retires, and which go, with why.
    #[test]
    fn retention_on_btrfs_names() {
        const DIR: u64 = 300;
        let all = [
            sv(256, 5, 256, "root"),
            sv(257, 5, 256, "root-blank"),
            sv(260, 5, DIR, "old-roots/2026-11-21T02:30:00Z"),
            sv(261, 5, DIR, "old-roots/2026-11-21T02:30:00Z.1"),
            sv(262, 5, DIR, "old-roots/2026-11-01T00:00:00Z"),
            // Not retention's: a foreign name, a nested subvolume, one in another directory
            // that took the same path (a replaced old-roots), one below the top level.
            sv(263, 5, DIR, "old-roots/keep-me"),
            sv(264, 262, 256, "old-roots/2026-11-01T00:00:00Z/var"),
            sv(265, 5, 999, "old-roots/2026-10-01T00:00:00Z"),
            sv(266, 256, DIR, "old-roots/2026-09-01T00:00:00Z"),
        ];
        let now = parse_ts(b"2026-11-22T02:30:00Z").unwrap().0;
        // The root this run retires, under the name `free_name` gave it.
        let retired = || {
            vec![Candidate {
                id: 256,
                path: b"old-roots/2026-11-22T02:30:00Z".to_vec(),
                secs: now,
                seq: 0,
            }]
        };
        let cands = candidates(&all, b"old-roots", Some(DIR), retired());
        let ids: Vec<u64> = cands.iter().map(|c| c.id).collect();
        assert_eq!(ids, [256, 260, 261, 262]);
        assert!(candidates(&all, b"old-roots", None, vec![]).is_empty());
        let keep = |count, days| Keep { count, days };
        let (c, d) = (Pruned::BeyondCount, Pruned::OlderThan);
        let cases: Vec<(Keep, Vec<(&str, Pruned)>)> = vec![
            (keep(None, None), vec![]),
            (
                keep(Some(2), None),
                vec![
                    ("old-roots/2026-11-21T02:30:00Z", c(2)),
                    ("old-roots/2026-11-01T00:00:00Z", c(2)),
                ],
            ),
            (
                keep(Some(1), None),
                vec![
                    ("old-roots/2026-11-21T02:30:00Z.1", c(1)),
                    ("old-roots/2026-11-21T02:30:00Z", c(1)),
                    ("old-roots/2026-11-01T00:00:00Z", c(1)),
                ],
            ),
            (
                keep(None, Some(7)),
                vec![("old-roots/2026-11-01T00:00:00Z", d(7))],
            ),
            (
                keep(Some(3), Some(30)),
                vec![("old-roots/2026-11-01T00:00:00Z", c(3))],
            ),
            (keep(Some(5), Some(30)), vec![]),
        ];
        for (k, want) in cases {
            let cands = candidates(&all, b"old-roots", Some(DIR), retired());
            let got: Vec<(String, Pruned)> = to_prune(cands, k, now)
                .into_iter()
                .map(|(c, why)| (String::from_utf8(c.path).unwrap(), why))
                .collect();
            let want: Vec<(String, Pruned)> =
                want.into_iter().map(|(n, w)| (n.to_string(), w)).collect();
            assert_eq!(got, want, "{k:?}");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ts(1_795_314_600), "2026-11-22T02:30:00Z");
        assert_eq!(format_ts(951_782_400), "2000-02-29T00:00:00Z");
        for secs in [0, 59, 86_399, 951_782_400, 1_795_314_600, 4_102_444_800] {
            assert_eq!(parse_ts(format_ts(secs).as_bytes()), Some((secs, 0)));
        }
        assert_eq!(
            parse_ts(b"2026-11-22T02:30:00Z.3"),
            Some((1_795_314_600, 3))
        );
        for bad in [
            &b"2026-11-22T02:30:00"[..],
            b"2026-02-31T00:00:00Z",
            b"2026-11-22T02:30:00Z.",
            b"2026-11-22T02:30:00Zx",
            b"2026-11-22 02:30:00Z",
            b"keep-me",
        ] {
            assert_eq!(parse_ts(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
