//! ZFS preflight, rollback (one atomic channel program, or the keep-old-roots protocol with its
//! repair) and `init`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::diff::TempMount;
use super::{lzc, oldroots, program, Zfs};
use crate::bytes::Show;
use crate::error::IoContext;
use crate::mountinfo::{self, Mount};
use crate::{protocol, Failpoint};
use crate::{BackendError, Preflight, RollbackOpts, RollbackOutcome};

/// The names one run works with, validated.
pub(super) struct Names {
    pub(super) ds: String,
    pub(super) pool: String,
    pub(super) blank: String,
    pub(super) container: String,
    pub(super) next: String,
}

impl Names {
    pub(super) fn of(z: &Zfs) -> Result<Names, BackendError> {
        program::valid_dataset(&z.dataset)?;
        if !program::valid_component(&z.blank) {
            return Err(BackendError::Refused(format!(
                "blank snapshot name {:?} is not valid; use letters, digits and _-.: only \
                 ([root] blank in the config)",
                z.blank
            )));
        }
        let pool = z.dataset.split('/').next().unwrap_or_default().to_string();
        Ok(Names {
            ds: z.dataset.clone(),
            pool,
            blank: format!("{}@{}", z.dataset, z.blank),
            container: oldroots::container(&z.dataset),
            next: oldroots::next(&z.dataset),
        })
    }

    /// Refuses unless the pool is imported (darlings never imports one); `when` ends the fix.
    pub(super) fn require_pool(&self, when: &str) -> Result<(), BackendError> {
        if lzc::exists(&self.pool)? {
            return Ok(());
        }
        refuse(format!(
            "pool {p} is not imported; import it (zpool import -N {p}) {when}",
            p = self.pool
        ))
    }

    /// Refuses unless the root dataset exists; `fix` says what to do.
    pub(super) fn require_dataset(&self, fix: &str) -> Result<(), BackendError> {
        if lzc::exists(&self.ds)? {
            return Ok(());
        }
        refuse(format!("dataset {} not found; {fix}", self.ds))
    }
}

/// A half-done keep-old-roots protocol found by [`examine`], and what finishes or undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repair {
    None,
    /// Crashed after `clone`: the root is intact; the stray clone is destroyed.
    UndoClone,
    /// Crashed after `rename-old`: there is no root; the clone is renamed into place, promoted.
    FinishRenameNew,
    /// Crashed after `rename-new`: the root is the fresh clone; it is promoted.
    FinishPromote,
}

struct Examined {
    st: program::State,
    repair: Repair,
    checks: Vec<String>,
}

pub(super) fn refuse<T>(m: String) -> Result<T, BackendError> {
    Err(BackendError::Refused(m))
}

/// Where `dataset` is mounted, if anywhere (a zfs mount's source is the dataset's name).
pub(super) fn mounted_at<'a>(mounts: &'a [Mount], dataset: &str) -> Option<&'a [u8]> {
    mounts
        .iter()
        .find(|m| m.source == dataset.as_bytes())
        .map(|m| m.mount_point.as_slice())
}

/// The source of the mount holding `path`: the mount with the longest mount point that is
/// `path` or one of its ancestors (component-wise, so `/persistx` is not under `/persist`).
fn source_of<'a>(mounts: &'a [Mount], path: &[u8]) -> Option<&'a [u8]> {
    let under = |mp: &[u8]| {
        mp == b"/" || path == mp || (path.starts_with(mp) && path.get(mp.len()) == Some(&b'/'))
    };
    mounts
        .iter()
        .filter(|m| under(&m.mount_point))
        .max_by_key(|m| m.mount_point.len())
        .map(|m| m.source.as_slice())
}

/// The checks that read mountinfo: neither the root nor the protocol's clone is mounted, and no
/// store lives on the root dataset or inside it.
fn check_mounts(
    z: &Zfs,
    n: &Names,
    mounts: &[Mount],
    checks: &mut Vec<String>,
) -> Result<(), BackendError> {
    for name in [&n.ds, &n.next] {
        if let Some(mp) = mounted_at(mounts, name) {
            return refuse(format!(
                "dataset {name} is mounted at {mp}; unmount it (umount {mp}) before rolling back",
                mp = Show(mp)
            ));
        }
    }
    checks.push(format!("dataset {} is not mounted", n.ds));
    for store in &z.stores {
        let path = store.as_os_str().as_bytes();
        // The store rule's zfs half (`crate::placement`), on the store's live mount point.
        if let Some(e) = source_of(mounts, path)
            .and_then(|src| crate::placement::zfs_refusal(path, src, n.ds.as_bytes()))
        {
            return refuse(e.to_string());
        }
    }
    if !z.stores.is_empty() {
        checks.push(format!("no store is on {} or inside it", n.ds));
    }
    Ok(())
}

/// Reads everything (changes nothing) and refuses what darlings will not touch.
fn examine(z: &Zfs, n: &Names) -> Result<Examined, BackendError> {
    let mut checks = Vec::new();
    n.require_pool("before darlings runs (darlings never imports pools, and never with -f)")?;
    checks.push(format!("pool {} is imported", n.pool));
    let text = lzc::channel_program(
        &n.pool,
        &program::inspect(&n.ds, &n.blank, &n.container, &n.next),
        false,
    )?;
    let st = program::parse_state(&text)?;
    let made_by_us = |o: &str| {
        o.strip_prefix(&format!("{}/", n.container))
            .and_then(|rest| rest.strip_suffix(&format!("@{}", z.blank)))
            .is_some_and(|leaf| !leaf.contains('/'))
    };
    let repair = if !st.dataset && st.next {
        Repair::FinishRenameNew
    } else if !st.dataset {
        return refuse(format!(
            "dataset {} not found; check [root] dataset in the config (zfs list -r {})",
            n.ds, n.pool
        ));
    } else if !st.blank && st.origin.as_deref().is_some_and(made_by_us) {
        Repair::FinishPromote
    } else if !st.blank {
        return refuse(format!(
            "blank snapshot {} not found; create it with darlings init",
            n.blank
        ));
    } else if st.next {
        Repair::UndoClone
    } else {
        Repair::None
    };
    match repair {
        Repair::None => checks.push(format!("dataset {} and {} exist", n.ds, n.blank)),
        Repair::UndoClone => checks.push(format!(
            "a stray clone {} from an interrupted rollback will be destroyed",
            n.next
        )),
        Repair::FinishRenameNew | Repair::FinishPromote => checks.push(format!(
            "an interrupted keep-old-roots rollback of {} will be finished",
            n.ds
        )),
    }
    let mounts = mountinfo::read()?;
    check_mounts(z, n, &mounts, &mut checks)?;
    if !st.newer.is_empty() {
        if !z.destroy_newer_snapshots {
            return refuse(format!(
                "snapshots newer than {} exist: {}; destroy them (zfs destroy) or set \
                 destroy-newer-snapshots = true",
                n.blank,
                st.newer.join(", ")
            ));
        }
        checks.push(format!(
            "{} snapshot(s) newer than {} will be destroyed (destroy-newer-snapshots)",
            st.newer.len(),
            n.blank
        ));
    }
    if z.keep.is_some() && !st.children.is_empty() {
        return refuse(format!(
            "dataset {} has child datasets ({}); keeping old roots renames the root with its \
             children: move them out (zfs rename) or remove keep from the config",
            n.ds,
            st.children.join(", ")
        ));
    }
    Ok(Examined { st, repair, checks })
}

pub(crate) fn preflight(z: &Zfs) -> Result<Preflight, BackendError> {
    let n = Names::of(z)?;
    Ok(Preflight {
        checks: examine(z, &n)?.checks,
    })
}

type Action = protocol::Action<Op>;

/// A protocol action: each is one transaction, and the next run repairs what a failure left.
fn act(step: Failpoint, text: String, op: Op) -> Action {
    Action::new(step, text, op)
}

enum Op {
    Rollback,
    DestroyNewer,
    Destroy(String),
    CreateContainer,
    Clone,
    Rename(String, String),
    Promote,
    DestroyTrees(Vec<String>),
}

fn plan(z: &Zfs, n: &Names, ex: &Examined) -> Result<(Vec<Action>, bool), BackendError> {
    let st = &ex.st;
    let mut acts = Vec::new();
    let rename_new = || {
        act(
            Failpoint::RenameNew,
            format!("rename {} to {}", n.next, n.ds),
            Op::Rename(n.next.clone(), n.ds.clone()),
        )
    };
    let promote = || {
        act(
            Failpoint::Promote,
            format!("promote {} (it takes over {})", n.ds, n.blank),
            Op::Promote,
        )
    };
    let mut blank_now = false;
    match ex.repair {
        Repair::None => {}
        Repair::UndoClone => acts.push(act(
            Failpoint::UndoClone,
            format!("destroy the stray clone {}", n.next),
            Op::Destroy(n.next.clone()),
        )),
        Repair::FinishRenameNew => {
            acts.push(rename_new());
            acts.push(promote());
            blank_now = true;
        }
        Repair::FinishPromote => {
            acts.push(promote());
            blank_now = true;
        }
    }
    let untouched = !blank_now && st.newer.is_empty() && st.written == 0;
    let mut old = st.old.clone();
    let Some(keep) = z.keep else {
        if !blank_now && !untouched {
            let destroying = if st.newer.is_empty() {
                String::new()
            } else {
                format!(", destroying newer snapshots {}", st.newer.join(", "))
            };
            acts.push(act(
                Failpoint::Rollback,
                format!(
                    "roll back {} to {} in one channel program{destroying}",
                    n.ds, n.blank
                ),
                Op::Rollback,
            ));
        }
        let already = untouched && acts.is_empty();
        return Ok((acts, already));
    };
    if !blank_now && !untouched {
        if !st.newer.is_empty() {
            acts.push(act(
                Failpoint::DestroyNewer,
                format!(
                    "destroy the snapshots newer than {}: {}",
                    n.blank,
                    st.newer.join(", ")
                ),
                Op::DestroyNewer,
            ));
        }
        if !st.container {
            acts.push(act(
                Failpoint::CreateContainer,
                format!("create {} (canmount=off, mountpoint=none)", n.container),
                Op::CreateContainer,
            ));
        }
        let now = oldroots::unix_secs(z.now)?;
        let aside = oldroots::fresh_name(&n.ds, now, &old);
        acts.push(act(
            Failpoint::Clone,
            format!("clone {} to {}", n.blank, n.next),
            Op::Clone,
        ));
        acts.push(act(
            Failpoint::RenameOld,
            format!("rename the old root {} to {aside}", n.ds),
            Op::Rename(n.ds.clone(), aside.clone()),
        ));
        acts.push(rename_new());
        acts.push(promote());
        old.push(aside);
    }
    let now = oldroots::unix_secs(z.now)?;
    let gone = oldroots::to_prune(&n.ds, &old, keep, now);
    if !gone.is_empty() {
        let shown: Vec<String> = gone.iter().map(|(g, why)| format!("{g} ({why})")).collect();
        acts.push(act(
            Failpoint::Prune,
            format!("destroy old roots: {}", shown.join(", ")),
            Op::DestroyTrees(gone.into_iter().map(|(g, _)| g).collect()),
        ));
    }
    Ok((acts, untouched && !blank_now && ex.repair == Repair::None))
}

/// Executes one action; the one-program rollback says what it did.
fn exec(z: &Zfs, n: &Names, op: &Op) -> Result<Option<program::Rolled>, BackendError> {
    match op {
        Op::Rollback => {
            let out = lzc::channel_program(
                &n.pool,
                &program::rollback(&n.ds, &n.blank, z.destroy_newer_snapshots),
                true,
            )?;
            Ok(Some(program::parse_rolled(&out)))
        }
        Op::DestroyNewer => {
            lzc::channel_program(&n.pool, &program::destroy_newer(&n.ds, &n.blank), true)?;
            Ok(None)
        }
        Op::Destroy(ds) => {
            lzc::channel_program(
                &n.pool,
                &program::destroy_trees(std::slice::from_ref(ds)),
                true,
            )?;
            Ok(None)
        }
        Op::CreateContainer => lzc::create_container(&n.container).map(|()| None),
        Op::Clone => lzc::clone(&n.next, &n.blank).map(|()| None),
        Op::Rename(from, to) => lzc::rename(from, to).map(|()| None),
        Op::Promote => lzc::promote(&n.ds).map(|()| None),
        Op::DestroyTrees(list) => {
            lzc::channel_program(&n.pool, &program::destroy_trees(list), true)?;
            Ok(None)
        }
    }
}

fn already_line(n: &Names) -> String {
    format!("{} is already at {}; nothing to roll back", n.ds, n.blank)
}

/// The actions through the protocol runner; `already` is set when the one-program rollback
/// found nothing to do.
fn run(
    z: &Zfs,
    n: &Names,
    acts: Vec<Action>,
    dry_run: bool,
    already: &mut bool,
) -> Result<Vec<String>, BackendError> {
    protocol::run(acts, dry_run, z.failpoint(), |op| {
        Ok(match exec(z, n, op)? {
            Some(program::Rolled::AlreadyBlank) => {
                *already = true;
                vec![already_line(n)]
            }
            Some(program::Rolled::Done(lines)) => lines,
            None => Vec::new(),
        })
    })
}

pub(crate) fn rollback(z: &Zfs, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
    let n = Names::of(z)?;
    if z.keep.is_none() && !opts.dry_run {
        if let Some(out) = rollback_fast(z, &n)? {
            return Ok(out);
        }
    }
    let ex = examine(z, &n)?;
    let (acts, mut already) = plan(z, &n, &ex)?;
    let mut steps = Vec::new();
    if already {
        steps.push(already_line(&n));
    }
    steps.extend(run(z, &n, acts, opts.dry_run, &mut already)?);
    Ok(RollbackOutcome {
        steps,
        already_blank: already,
    })
}

/// The common case without old roots: a few existence checks, then the channel program, which
/// makes every other check itself (newer snapshots included) inside its sync task. `None` when
/// anything looks unusual (no pool, no root, no blank, a protocol clone): the full path then
/// examines and explains, or repairs.
fn rollback_fast(z: &Zfs, n: &Names) -> Result<Option<RollbackOutcome>, BackendError> {
    if !(lzc::exists(&n.pool)?
        && lzc::exists(&n.ds)?
        && lzc::exists(&n.blank)?
        && !lzc::exists(&n.next)?)
    {
        return Ok(None);
    }
    check_mounts(z, n, &mountinfo::read()?, &mut Vec::new())?;
    let one = act(
        Failpoint::Rollback,
        format!("roll back {} to {} in one channel program", n.ds, n.blank),
        Op::Rollback,
    );
    let mut already = false;
    let steps = run(z, n, vec![one], false, &mut already)?;
    Ok(Some(RollbackOutcome {
        steps,
        already_blank: already,
    }))
}

impl Zfs {
    /// For a new install: creates `@blank` from the empty dataset.
    pub fn init(&self, dry_run: bool) -> Result<Vec<String>, BackendError> {
        let n = Names::of(self)?;
        n.require_pool("first")?;
        n.require_dataset(&format!(
            "create it first (zfs create -o mountpoint=legacy {})",
            n.ds
        ))?;
        if lzc::exists(&n.blank)? {
            return Ok(vec![format!(
                "blank snapshot {} already exists; nothing to do",
                n.blank
            )]);
        }
        let mounts = mountinfo::read()?;
        let names = {
            let (_guard, dir) = match mounted_at(&mounts, &n.ds) {
                Some(mp) => (None, PathBuf::from(OsStr::from_bytes(mp))),
                None => {
                    let m = TempMount::new(&self.work_dir, &n.ds)?;
                    let d = m.dir.clone();
                    (Some(m), d)
                }
            };
            let mut names = Vec::new();
            for e in std::fs::read_dir(&dir).ctx(|| format!("cannot list {}", dir.display()))? {
                let e = e.ctx(|| format!("cannot list {}", dir.display()))?;
                names.push(e.file_name().as_bytes().to_vec());
            }
            names
        };
        let names: Vec<Vec<u8>> = names.into_iter().filter(|x| x != b".zfs").collect();
        if !names.is_empty() {
            let shown: Vec<String> = names.iter().take(10).map(|x| Show(x).to_string()).collect();
            return refuse(format!(
                "dataset {} is not empty ({} entries: {}{}); the blank must be an empty \
                 dataset: create a fresh one (zfs create) or empty this one first",
                n.ds,
                names.len(),
                shown.join(", "),
                if names.len() > 10 { ", ..." } else { "" }
            ));
        }
        let step = format!("snapshot the empty dataset {} as {}", n.ds, n.blank);
        if !dry_run {
            lzc::snapshot(&n.blank)?;
        }
        Ok(vec![step])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(mp: &[u8], source: &[u8]) -> Mount {
        Mount {
            id: 1,
            root: b"/".to_vec(),
            mount_point: mp.to_vec(),
            source: source.to_vec(),
        }
    }

    #[test]
    fn mount_lookups() {
        let ms = [
            mount(b"/", b"rootfs"),
            mount(b"/persist", b"tank/persist"),
            mount(b"/persist/home", b"tank/home"),
            mount(b"/mnt/r", b"tank/root"),
            mount(b"/persistx", b"tank/x"),
        ];
        assert_eq!(mounted_at(&ms, "tank/root"), Some(&b"/mnt/r"[..]));
        assert_eq!(mounted_at(&ms, "tank/roo"), None);
        let cases: [(&[u8], &[u8]); 6] = [
            (b"/persist", b"tank/persist"),
            (b"/persist/a/b", b"tank/persist"),
            (b"/persist/home/u", b"tank/home"),
            (b"/persistx/y", b"tank/x"),
            (b"/persis", b"rootfs"),
            (b"/other", b"rootfs"),
        ];
        for (path, want) in cases {
            assert_eq!(source_of(&ms, path), Some(want), "{}", Show(path));
        }
    }

    fn zfs(keep: Option<crate::Keep>) -> Zfs {
        Zfs {
            dataset: "t/r".into(),
            blank: "blank".into(),
            destroy_newer_snapshots: false,
            keep,
            now: std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 100),
            work_dir: PathBuf::from("/run/darlings"),
            stores: vec![],
            #[cfg(feature = "failpoints")]
            failpoint: None,
        }
    }

    fn steps(z: &Zfs, st: program::State, repair: Repair) -> (Vec<&'static str>, bool) {
        let n = Names::of(z).unwrap();
        let ex = Examined {
            st,
            repair,
            checks: vec![],
        };
        let (acts, already) = plan(z, &n, &ex).unwrap();
        (acts.iter().map(|a| a.step.as_str()).collect(), already)
    }

    #[test]
    fn plans() {
        let dirty = program::State {
            dataset: true,
            blank: true,
            written: 4096,
            ..Default::default()
        };
        let clean = program::State {
            written: 0,
            ..dirty.clone()
        };
        let keep = Some(crate::Keep {
            count: Some(1),
            days: None,
        });
        let older = format!("t/r-old/{}", oldroots::stamp(86_400));
        let with_old = program::State {
            container: true,
            old: vec![older],
            ..dirty.clone()
        };
        type Case = (
            Option<crate::Keep>,
            program::State,
            Repair,
            Vec<&'static str>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (None, dirty.clone(), Repair::None, vec!["rollback"], false),
            (None, clean.clone(), Repair::None, vec![], true),
            (
                None,
                clean.clone(),
                Repair::UndoClone,
                vec!["undo-clone"],
                false,
            ),
            (
                keep,
                dirty.clone(),
                Repair::None,
                vec![
                    "create-container",
                    "clone",
                    "rename-old",
                    "rename-new",
                    "promote",
                ],
                false,
            ),
            (
                keep,
                with_old,
                Repair::None,
                vec!["clone", "rename-old", "rename-new", "promote", "prune"],
                false,
            ),
            (
                keep,
                program::State::default(),
                Repair::FinishRenameNew,
                vec!["rename-new", "promote"],
                false,
            ),
            (
                keep,
                clean.clone(),
                Repair::FinishPromote,
                vec!["promote"],
                false,
            ),
            (
                keep,
                dirty.clone(),
                Repair::UndoClone,
                vec![
                    "undo-clone",
                    "create-container",
                    "clone",
                    "rename-old",
                    "rename-new",
                    "promote",
                ],
                false,
            ),
            (keep, clean, Repair::None, vec![], true),
        ];
        for (keep, st, repair, want, already) in cases {
            for step in &want {
                assert!(step.parse::<Failpoint>().is_ok(), "{step} is no Failpoint");
            }
            assert_eq!(
                steps(&zfs(keep), st.clone(), repair),
                (want, already),
                "{keep:?} {st:?} {repair:?}"
            );
        }
    }
}
