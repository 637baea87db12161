//! Executes a plan against a root directory: every path resolved from a directory fd with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` in both the root and the store, parents
//! created with explicit owner and mode, binds made fd to fd (`open_tree` + `move_mount`).
//!
//! Two passes: a read-only check of every step (symlinks, non-empty targets, differing files,
//! an unmounted store) that refuses the whole plan before anything changes, then execution, in
//! which each step detects work already done, so a second apply is a no-op.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::bytes::Show;
use rustix::fs::{self, AtFlags, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use crate::config::{Kind, Method};
use crate::plan::{Bind, DirSpec, Plan, Step};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to apply the plan, nothing was changed:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("{0}")]
    Step(String),
}

fn io(what: String, e: Errno) -> ApplyError {
    ApplyError::Io {
        what,
        source: e.into(),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub dry_run: bool,
}

/// What apply did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Outcome {
    /// One line per action, in order.
    pub actions: Vec<String>,
    pub bound: usize,
    pub already: usize,
    pub deferred: usize,
    /// Mounts that carry userspace options (x-gvfs-hide, x-gvfs-trash), for the utab.
    pub marked: Vec<Marked>,
}

/// A mount made by apply that libmount's utab must describe: the kernel's mountinfo cannot
/// carry userspace options such as `x-gvfs-hide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub id: u64,
    /// Source and target, absolute in this mount namespace.
    pub source: Vec<u8>,
    pub target: Vec<u8>,
    pub hide: bool,
    pub trash: bool,
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Opens `name` beneath `dir`, never through a symlink (the final component included).
fn open_beneath(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    fs::openat2(dir, name, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
}

fn symlink_refusal(tree: &str, shown: &[u8]) -> String {
    format!(
        "{tree} path {} is or passes through a symlink; darlings never follows symlinks in a root or store: replace it with a real directory or file",
        Show(shown)
    )
}

/// A directory tree (the root, or one store) with a cache of the directories opened on the way
/// to the last entry: entries are sorted, so neighbours share most of their parents.
struct Tree {
    name: &'static str,
    /// Absolute path of the tree's top in this namespace, for messages and the utab.
    top: Vec<u8>,
    base: OwnedFd,
    chain: Vec<(Vec<u8>, OwnedFd)>,
}

enum Parent<'a> {
    Open(BorrowedFd<'a>),
    /// A directory on the way is missing (only without `create`): everything below is too.
    Missing,
}

impl Tree {
    fn shown(&self, rel: &[&[u8]]) -> Vec<u8> {
        let mut p = self.top.clone();
        for c in rel {
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(c);
        }
        p
    }

    /// Walks to the parent directory of `comps` (all but the last component), creating what is
    /// missing when `create` is set, with owner and mode from `specs` (one per component).
    fn parent(
        &mut self,
        comps: &[&[u8]],
        specs: &[DirSpec],
        create: bool,
        created: &mut Vec<String>,
    ) -> Result<Parent<'_>, ApplyError> {
        let parents = &comps[..comps.len().saturating_sub(1)];
        let common = self
            .chain
            .iter()
            .zip(parents)
            .take_while(|((c, _), p)| c.as_slice() == **p)
            .count();
        self.chain.truncate(common);
        for depth in common..parents.len() {
            let comp = parents[depth];
            let dir = self
                .chain
                .last()
                .map_or(self.base.as_fd(), |(_, fd)| fd.as_fd());
            let shown = self.shown(&parents[..=depth]);
            let fd = match open_beneath(dir, comp, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::LOOP) => {
                    return Err(ApplyError::Step(symlink_refusal(self.name, &shown)))
                }
                Err(Errno::NOTDIR) => {
                    return Err(ApplyError::Step(format!(
                    "{} path {} is not a directory, but entries need it to be one; move it away",
                    self.name,
                    Show(&shown)
                )))
                }
                Err(Errno::NOENT) if !create => return Ok(Parent::Missing),
                Err(Errno::NOENT) => {
                    let spec = specs.get(depth).copied().unwrap_or(DirSpec {
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                    });
                    make_dir(dir, comp, spec, &shown)?;
                    created.push(format!(
                        "created {} directory {} ({spec})",
                        self.name,
                        Show(&shown)
                    ));
                    open_beneath(dir, comp, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| {
                        io(
                            format!("cannot open {} directory {}", self.name, Show(&shown)),
                            e,
                        )
                    })?
                }
                Err(e) => {
                    return Err(io(
                        format!("cannot open {} directory {}", self.name, Show(&shown)),
                        e,
                    ))
                }
            };
            self.chain.push((comp.to_vec(), fd));
        }
        Ok(Parent::Open(
            self.chain
                .last()
                .map_or(self.base.as_fd(), |(_, fd)| fd.as_fd()),
        ))
    }
}

/// Creates a directory with exactly `spec`: made 0700 first so that nobody can use it before it
/// has its owner, then chowned and chmodded on the fd (the umask does not apply to fchmod).
fn make_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    spec: DirSpec,
    shown: &[u8],
) -> Result<(), ApplyError> {
    match fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(e) => return Err(io(format!("cannot create directory {}", Show(shown)), e)),
    }
    let fd = open_beneath(parent, name, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| io(format!("cannot open new directory {}", Show(shown)), e))?;
    set_owner_mode(&fd, spec, shown)
}

fn set_owner_mode(fd: &OwnedFd, spec: DirSpec, shown: &[u8]) -> Result<(), ApplyError> {
    fs::fchown(
        fd,
        Some(fs::Uid::from_raw(spec.uid)),
        Some(fs::Gid::from_raw(spec.gid)),
    )
    .map_err(|e| {
        io(
            format!("cannot chown {} to {}:{}", Show(shown), spec.uid, spec.gid),
            e,
        )
    })?;
    fs::fchmod(fd, Mode::from_raw_mode(spec.mode)).map_err(|e| {
        io(
            format!("cannot chmod {} to {:04o}", Show(shown), spec.mode),
            e,
        )
    })
}

/// The final component of a path, looked at without following anything.
struct Found {
    fd: OwnedFd,
    st: Statx,
}

impl Found {
    fn kind(&self) -> Option<Kind> {
        match fs::FileType::from_raw_mode(u32::from(self.st.stx_mode)) {
            fs::FileType::Directory => Some(Kind::Dir),
            fs::FileType::RegularFile => Some(Kind::File),
            _ => None,
        }
    }

    fn is_mount_root(&self) -> bool {
        self.st
            .stx_attributes_mask
            .contains(fs::StatxAttributes::MOUNT_ROOT)
            && self
                .st
                .stx_attributes
                .contains(fs::StatxAttributes::MOUNT_ROOT)
    }

    fn same_inode(&self, other: &Found) -> bool {
        (
            self.st.stx_dev_major,
            self.st.stx_dev_minor,
            self.st.stx_ino,
        ) == (
            other.st.stx_dev_major,
            other.st.stx_dev_minor,
            other.st.stx_ino,
        )
    }
}

fn look(
    tree: &str,
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
) -> Result<Option<Found>, ApplyError> {
    let fd = match open_beneath(dir, name, OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(ApplyError::Step(symlink_refusal(tree, shown))),
        Err(e) => return Err(io(format!("cannot open {tree} path {}", Show(shown)), e)),
    };
    let st = fs::statx(
        &fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )
    .map_err(|e| io(format!("cannot stat {tree} path {}", Show(shown)), e))?;
    Ok(Some(Found { fd, st }))
}

fn dir_is_empty(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<bool, ApplyError> {
    let fd = open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| io(format!("cannot open {}", Show(shown)), e))?;
    let d = fs::Dir::new(fd).map_err(|e| io(format!("cannot read {}", Show(shown)), e))?;
    for entry in d {
        let entry = entry.map_err(|e| io(format!("cannot read {}", Show(shown)), e))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn read_file(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<Vec<u8>, ApplyError> {
    let fd = open_beneath(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .map_err(|e| io(format!("cannot open {}", Show(shown)), e))?;
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| ApplyError::Io {
        what: format!("cannot read {}", Show(shown)),
        source: e,
    })?;
    Ok(buf)
}

/// What the check pass decided for one bind.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    AlreadyBound,
    Bind {
        create_source: bool,
        create_target: bool,
    },
    /// `method = "symlink"`: make the link, first removing an empty file that stands there.
    Link {
        remove_empty: bool,
    },
    /// `seed-from-blank`, the store lacking the entry the root has: copy the root's content into
    /// the store, then bind it over the root's.
    Seed,
}

struct Applier {
    root: Tree,
    root_mnt: u64,
    stores: HashMap<Vec<u8>, Tree>,
    /// The root's mount is read-only (`ro` on the kernel command line, dracut's pre-pivot):
    /// mount points are then made through `writable`, a private clone of that mount.
    root_ro: bool,
    writable: Option<Tree>,
}

impl Applier {
    fn open(root_dir: &Path) -> Result<Applier, ApplyError> {
        let shown = root_dir.as_os_str().as_bytes();
        let base = fs::open(
            root_dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            io(
                format!(
                    "cannot open root {}; pass an existing directory as --root",
                    Show(shown)
                ),
                e,
            )
        })?;
        let st = fs::statx(&base, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(|e| io(format!("cannot stat root {}", Show(shown)), e))?;
        let root_ro = fs::fstatvfs(&base)
            .map_err(|e| {
                io(
                    format!("cannot stat the filesystem of root {}", Show(shown)),
                    e,
                )
            })?
            .f_flag
            .contains(fs::StatVfsMountFlags::RDONLY);
        let top = std::fs::canonicalize(root_dir)
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_else(|_| shown.to_vec());
        Ok(Applier {
            root: Tree {
                name: "root",
                top,
                base,
                chain: Vec::new(),
            },
            root_mnt: st.stx_mnt_id,
            stores: HashMap::new(),
            root_ro,
            writable: None,
        })
    }

    /// `seed-from-blank`: the root's copy of the entry, opened read-only for the seed copy.
    fn seed_source(&mut self, b: &Bind, comps: &[&[u8]]) -> Result<OwnedFd, ApplyError> {
        let shown = self.root.shown(comps);
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        let Parent::Open(dir) = self
            .root
            .parent(comps, &b.parents, false, &mut Vec::new())?
        else {
            return Err(ApplyError::Step(format!(
                "target {} vanished",
                Show(&shown)
            )));
        };
        let flags = match b.kind {
            Kind::Dir => OFlags::RDONLY | OFlags::DIRECTORY,
            Kind::File => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        };
        open_beneath(dir, name, flags).map_err(|e| io(format!("cannot open {}", Show(&shown)), e))
    }

    /// Makes the target of `b` and its missing parents, when the root's mount is read-only,
    /// through a clone of that mount with the read-only flag cleared: detached, so nobody
    /// else sees it, and gone when apply ends. The directories and files it makes are the
    /// same inodes the real root shows, where the binds then go; the root's own mount stays
    /// read-only. Only empty mount points are made this way: nothing of the store's.
    fn make_mount_point(&mut self, b: &Bind, created: &mut Vec<String>) -> Result<(), ApplyError> {
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Ok(());
        };
        if !self.root_ro {
            return Ok(());
        }
        let tshown = self.root.shown(&comps);
        if let Parent::Open(dir) = self.root.parent(&comps, &b.parents, false, created)? {
            if look("root", dir, name, &tshown)?.is_some() {
                return Ok(());
            }
        }
        if self.writable.is_none() {
            self.writable = Some(writable_clone(&self.root)?);
        }
        let Some(w) = self.writable.as_mut() else {
            return Ok(());
        };
        let shown = w.shown(&comps);
        let Parent::Open(dir) = w.parent(&comps, &b.parents, true, created)? else {
            return Ok(());
        };
        if look("root", dir, name, &shown)?.is_none() {
            create_entry(dir, name, b.kind, b.spec, None, &shown)?;
            created.push(format!(
                "created root {} {} ({}) through a writable clone of the read-only root mount",
                b.kind.as_str(),
                Show(&shown),
                b.spec
            ));
        }
        Ok(())
    }

    /// Opens a store beneath the root, once, and refuses a store that is not its own mount:
    /// anything bound from the root's own filesystem would be erased with it.
    fn store(&mut self, store: &crate::paths::AbsPath) -> Result<&mut Tree, ApplyError> {
        let key = store.as_bytes().to_vec();
        if !self.stores.contains_key(&key) {
            let shown = self.root.shown(&[store.relative()]);
            let fd = match open_beneath(
                self.root.base.as_fd(),
                store.relative(),
                OFlags::RDONLY | OFlags::DIRECTORY,
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    return Err(ApplyError::Step(format!(
                    "store {} does not exist; mount the persistent filesystem there before apply",
                    Show(&shown)
                )))
                }
                Err(Errno::LOOP) => return Err(ApplyError::Step(symlink_refusal("store", &shown))),
                Err(e) => return Err(io(format!("cannot open store {}", Show(&shown)), e)),
            };
            let st = fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
                .map_err(|e| io(format!("cannot stat store {}", Show(&shown)), e))?;
            if st.stx_mnt_id == self.root_mnt {
                return Err(ApplyError::Step(format!(
                    "store {} is on the same mount as the root, so what it holds is erased at the next rollback; mount the persistent filesystem on it first",
                    Show(&shown)
                )));
            }
            self.stores.insert(
                key.clone(),
                Tree {
                    name: "store",
                    top: shown,
                    base: fd,
                    chain: Vec::new(),
                },
            );
        }
        self.stores
            .get_mut(&key)
            .ok_or_else(|| ApplyError::Step("store vanished from the cache".into()))
    }

    /// Read-only: what this bind needs, or why it must be refused.
    fn check(&mut self, b: &Bind) -> Result<Decision, ApplyError> {
        if b.method == Method::Symlink {
            return self.check_link(b);
        }
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        let src_shown;
        let source = {
            let store = self.store(&b.store)?;
            src_shown = store.shown(&comps);
            match store.parent(&comps, &b.parents, false, &mut Vec::new())? {
                Parent::Missing => None,
                Parent::Open(dir) => {
                    look("store", dir, name, &src_shown)?.map(|f| (f, dir.as_raw_fd()))
                }
            }
        };
        if let Some((f, _)) = &source {
            if f.kind() != Some(b.kind) {
                return Err(ApplyError::Step(format!(
                    "store path {} is not a {}, but the config persists a {} there; fix the store or the config",
                    Show(&src_shown),
                    b.kind.as_str(),
                    b.kind.as_str()
                )));
            }
        }
        let tgt_shown = self.root.shown(&comps);
        let Parent::Open(tdir) = self
            .root
            .parent(&comps, &b.parents, false, &mut Vec::new())?
        else {
            return Ok(Decision::Bind {
                create_source: source.is_none(),
                create_target: true,
            });
        };
        let Some(target) = look("root", tdir, name, &tgt_shown)? else {
            return Ok(Decision::Bind {
                create_source: source.is_none(),
                create_target: true,
            });
        };
        if let Some((s, _)) = &source {
            if target.is_mount_root() && target.same_inode(s) {
                return Ok(Decision::AlreadyBound);
            }
        }
        if target.is_mount_root() {
            return Err(ApplyError::Step(format!(
                "target {} is already a mount point of something other than {}; unmount it first",
                Show(&tgt_shown),
                Show(&src_shown)
            )));
        }
        if target.kind() != Some(b.kind) {
            return Err(ApplyError::Step(format!(
                "target {} exists and is not a {}; move it away, the config persists a {} there",
                Show(&tgt_shown),
                b.kind.as_str(),
                b.kind.as_str()
            )));
        }
        // seed-from-blank: the root's content is the blank's (README), never lost by binding
        // over it; the store gets a copy first when it has none.
        let seeded = || {
            if source.is_some() {
                Decision::Bind {
                    create_source: false,
                    create_target: false,
                }
            } else {
                Decision::Seed
            }
        };
        match b.kind {
            Kind::Dir => {
                if !dir_is_empty(tdir, name, &tgt_shown)? {
                    if b.seed_from_blank {
                        return Ok(seeded());
                    }
                    return Err(ApplyError::Step(format!(
                        "target directory {} is not empty and binding over it would hide its content; move what is in it into {} (or delete it) and apply again",
                        Show(&tgt_shown),
                        Show(&src_shown)
                    )));
                }
            }
            Kind::File => {
                if target.st.stx_size > 0 {
                    let same = match &source {
                        Some((s, _)) if s.st.stx_size == target.st.stx_size => {
                            let store = self.store(&b.store)?;
                            let Parent::Open(sdir) =
                                store.parent(&comps, &b.parents, false, &mut Vec::new())?
                            else {
                                return Err(ApplyError::Step(format!(
                                    "store path {} vanished",
                                    Show(&src_shown)
                                )));
                            };
                            let a = read_file(sdir, name, &src_shown)?;
                            let Parent::Open(tdir) =
                                self.root
                                    .parent(&comps, &b.parents, false, &mut Vec::new())?
                            else {
                                return Err(ApplyError::Step(format!(
                                    "target {} vanished",
                                    Show(&tgt_shown)
                                )));
                            };
                            a == read_file(tdir, name, &tgt_shown)?
                        }
                        _ => false,
                    };
                    if !same && b.seed_from_blank {
                        return Ok(seeded());
                    }
                    if !same {
                        let why = if source.is_some() {
                            "differs from the store's copy"
                        } else {
                            "has content and the store has no copy"
                        };
                        return Err(ApplyError::Step(format!(
                            "target file {} {why}; binding over it would hide it: keep the one you want as {} and remove the other, then apply again",
                            Show(&tgt_shown),
                            Show(&src_shown)
                        )));
                    }
                }
            }
        }
        Ok(Decision::Bind {
            create_source: source.is_none(),
            create_target: false,
        })
    }

    /// Read-only, for `method = "symlink"`: the target may be missing, an empty file, or the
    /// link already; anything else would be lost or hidden and is refused. The store's file
    /// need not exist yet (programs create it through the link), but must not be anything else.
    fn check_link(&mut self, b: &Bind) -> Result<Decision, ApplyError> {
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        let want = b.source();
        {
            let store = self.store(&b.store)?;
            let src_shown = store.shown(&comps);
            if let Parent::Open(dir) = store.parent(&comps, &b.parents, false, &mut Vec::new())? {
                if let Some(f) = look("store", dir, name, &src_shown)? {
                    if f.kind() != Some(Kind::File) {
                        return Err(ApplyError::Step(format!(
                            "store path {} is not a file, but the config links a file to it; fix the store or the config",
                            Show(&src_shown)
                        )));
                    }
                }
            }
        }
        let tgt_shown = self.root.shown(&comps);
        let Parent::Open(tdir) = self
            .root
            .parent(&comps, &b.parents, false, &mut Vec::new())?
        else {
            return Ok(Decision::Link {
                remove_empty: false,
            });
        };
        let st = match fs::statx(
            tdir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        ) {
            Ok(st) => st,
            Err(Errno::NOENT) => {
                return Ok(Decision::Link {
                    remove_empty: false,
                })
            }
            Err(e) => return Err(io(format!("cannot stat {}", Show(&tgt_shown)), e)),
        };
        match fs::FileType::from_raw_mode(u32::from(st.stx_mode)) {
            fs::FileType::Symlink => {
                let text = fs::readlinkat(tdir, name, Vec::new())
                    .map_err(|e| io(format!("cannot read link {}", Show(&tgt_shown)), e))?;
                if text.as_bytes() == want.as_bytes() {
                    Ok(Decision::AlreadyBound)
                } else {
                    Err(ApplyError::Step(format!(
                        "target {} is a symlink to {}, not to {want}; remove it and apply again",
                        Show(&tgt_shown),
                        Show(text.as_bytes())
                    )))
                }
            }
            fs::FileType::RegularFile if st.stx_size == 0 => Ok(Decision::Link { remove_empty: true }),
            fs::FileType::RegularFile => Err(ApplyError::Step(format!(
                "target file {} has content, and linking it into the store would lose it: move it to {} and apply again",
                Show(&tgt_shown),
                want
            ))),
            _ => Err(ApplyError::Step(format!(
                "target {} exists and is not a file; move it away, the config links a file there",
                Show(&tgt_shown)
            ))),
        }
    }

    fn execute_link(&mut self, b: &Bind, out: &mut Outcome) -> Result<(), ApplyError> {
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        let remove_empty = match self.check_link(b)? {
            Decision::AlreadyBound => {
                out.already += 1;
                return Ok(());
            }
            Decision::Link { remove_empty } => remove_empty,
            Decision::Bind { .. } | Decision::Seed => false,
        };
        let mut created = Vec::new();
        // The store's directories, so that a program writing through the link lands in it.
        let store = self.store(&b.store)?;
        store.parent(&comps, &b.parents, true, &mut created)?;
        let tgt_shown = self.root.shown(&comps);
        self.make_mount_point(b, &mut created)?;
        let Parent::Open(tdir) = self.root.parent(&comps, &b.parents, true, &mut created)? else {
            return Err(ApplyError::Step(format!(
                "cannot create the parents of {}",
                Show(&tgt_shown)
            )));
        };
        if remove_empty {
            fs::unlinkat(tdir, name, AtFlags::empty())
                .map_err(|e| io(format!("cannot remove empty file {}", Show(&tgt_shown)), e))?;
        }
        let want = b.source();
        fs::symlinkat(want.as_bytes(), tdir, name)
            .map_err(|e| io(format!("cannot create symlink {}", Show(&tgt_shown)), e))?;
        out.actions.extend(created);
        out.actions
            .push(format!("linked {} -> {want}", Show(&tgt_shown)));
        out.bound += 1;
        Ok(())
    }

    fn execute(&mut self, b: &Bind, out: &mut Outcome) -> Result<(), ApplyError> {
        if b.method == Method::Symlink {
            return self.execute_link(b, out);
        }
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        // Re-check at execution time: the state may have changed since the check pass.
        let seed = match self.check(b)? {
            Decision::AlreadyBound => {
                out.already += 1;
                return Ok(());
            }
            Decision::Seed => Some(self.seed_source(b, &comps)?),
            Decision::Bind { .. } | Decision::Link { .. } => None,
        };
        let mut created = Vec::new();
        let store = self.store(&b.store)?;
        let src_shown = store.shown(&comps);
        let Parent::Open(sdir) = store.parent(&comps, &b.parents, true, &mut created)? else {
            return Err(ApplyError::Step(format!(
                "cannot create the parents of {}",
                Show(&src_shown)
            )));
        };
        let source = match look("store", sdir, name, &src_shown)? {
            Some(f) => f,
            None => {
                if let Some(from) = &seed {
                    let c =
                        crate::seed::copy_into_store(from.as_fd(), b.kind, sdir, name, &src_shown)?;
                    created.push(format!(
                        "seeded store {} {} from the root's copy (seed-from-blank: {} entries, {} bytes{})",
                        b.kind.as_str(),
                        Show(&src_shown),
                        c.entries,
                        c.bytes,
                        if c.skipped.is_empty() {
                            String::new()
                        } else {
                            format!("; left out: {}", c.skipped.join(", "))
                        }
                    ));
                } else {
                    create_entry(sdir, name, b.kind, b.spec, b.seed, &src_shown)?;
                    created.push(format!(
                        "created store {} {} ({})",
                        b.kind.as_str(),
                        Show(&src_shown),
                        b.spec
                    ));
                }
                look("store", sdir, name, &src_shown)?.ok_or_else(|| {
                    ApplyError::Step(format!(
                        "store path {} vanished after creation",
                        Show(&src_shown)
                    ))
                })?
            }
        };
        let tgt_shown = self.root.shown(&comps);
        self.make_mount_point(b, &mut created)?;
        let Parent::Open(tdir) = self.root.parent(&comps, &b.parents, true, &mut created)? else {
            return Err(ApplyError::Step(format!(
                "cannot create the parents of {}",
                Show(&tgt_shown)
            )));
        };
        let target = match look("root", tdir, name, &tgt_shown)? {
            Some(f) => f,
            None => {
                create_entry(tdir, name, b.kind, b.spec, None, &tgt_shown)?;
                created.push(format!(
                    "created root {} {} ({})",
                    b.kind.as_str(),
                    Show(&tgt_shown),
                    b.spec
                ));
                look("root", tdir, name, &tgt_shown)?.ok_or_else(|| {
                    ApplyError::Step(format!(
                        "target {} vanished after creation",
                        Show(&tgt_shown)
                    ))
                })?
            }
        };
        let mnt_id = bind(&source, &target, b, &src_shown, &tgt_shown)?;
        out.actions.extend(created);
        out.actions.push(format!(
            "bound {} -> {}",
            Show(&src_shown),
            Show(&tgt_shown)
        ));
        out.bound += 1;
        if b.hide || b.trash {
            out.marked.push(Marked {
                id: mnt_id,
                source: src_shown,
                target: tgt_shown,
                hide: b.hide,
                trash: b.trash,
            });
        }
        Ok(())
    }
}

fn create_entry(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: Kind,
    spec: DirSpec,
    seed: Option<&[u8]>,
    shown: &[u8],
) -> Result<(), ApplyError> {
    match kind {
        Kind::Dir => make_dir(dir, name, spec, shown),
        Kind::File => {
            let fd = fs::openat2(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
                RESOLVE,
            )
            .map_err(|e| io(format!("cannot create file {}", Show(shown)), e))?;
            if let Some(seed) = seed {
                let mut written = 0;
                while written < seed.len() {
                    written += rustix::io::write(&fd, &seed[written..])
                        .map_err(|e| io(format!("cannot write {}", Show(shown)), e))?;
                }
            }
            set_owner_mode(&fd, spec, shown)
        }
    }
}

/// A detached clone of the root's mount with `MOUNT_ATTR_RDONLY` cleared, as a tree to make
/// mount points in (see `Applier::make_mount_point`).
fn writable_clone(root: &Tree) -> Result<Tree, ApplyError> {
    let shown = &root.top;
    let clone = open_tree(
        root.base.as_fd(),
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| {
        io(
            format!(
                "root {} is mounted read-only and a private clone of its mount to make the mount points in cannot be made",
                Show(shown)
            ),
            e,
        )
    })?;
    mount_setattr(&clone, 0, MOUNT_ATTR_RDONLY).map_err(|source| ApplyError::Io {
        what: format!(
            "root {} is mounted read-only and its private clone cannot be made writable",
            Show(shown)
        ),
        source,
    })?;
    let ro = fs::fstatvfs(&clone)
        .map(|v| v.f_flag.contains(fs::StatVfsMountFlags::RDONLY))
        .unwrap_or(true);
    if ro {
        return Err(ApplyError::Step(format!(
            "root {} is on a filesystem that is itself read-only, not only its mount, so the mount points its binds need cannot be made; mount the root's filesystem read-write in the initrd (a store mounted read-write from the same btrfs filesystem does that), or create the mount points in the blank",
            Show(shown)
        )));
    }
    Ok(Tree {
        name: "root",
        top: root.top.clone(),
        base: clone,
        chain: Vec::new(),
    })
}

/// mount_setattr(2) on the mount `fd` is the root of; rustix has none (formats.md).
fn mount_setattr(fd: &OwnedFd, set: u64, clr: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid NUL-terminated string, `attr` is a live, correctly sized
    // `struct mount_attr`, and `fd` is open for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Clones the source's mount at the source (non-recursively, like `mount --bind`), sets its
/// flags while it is still detached, and attaches it on the target fd. Returns the new mount id.
fn bind(
    source: &Found,
    target: &Found,
    b: &Bind,
    src: &[u8],
    tgt: &[u8],
) -> Result<u64, ApplyError> {
    let tree = open_tree(
        source.fd.as_fd(),
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| io(format!("cannot clone a mount of {}", Show(src)), e))?;
    let mut set = 0;
    if b.nosuid {
        set |= MOUNT_ATTR_NOSUID;
    }
    if b.nodev {
        set |= MOUNT_ATTR_NODEV;
    }
    if set != 0 {
        mount_setattr(&tree, set, 0).map_err(|source| ApplyError::Io {
            what: format!(
                "cannot set nosuid/nodev on the bind of {}; the bind was not made",
                Show(src)
            ),
            source,
        })?;
    }
    move_mount(
        tree.as_fd(),
        "",
        target.fd.as_fd(),
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| io(format!("cannot bind {} onto {}", Show(src), Show(tgt)), e))?;
    let st = fs::statx(&tree, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(|e| io(format!("cannot stat the new mount on {}", Show(tgt)), e))?;
    Ok(st.stx_mnt_id)
}

/// Applies `plan` to the root at `root_dir`. With `dry_run`, only the check pass runs and the
/// outcome lists what would be done.
pub fn apply(plan: &Plan, root_dir: &Path, opts: Options) -> Result<Outcome, ApplyError> {
    let mut a = Applier::open(root_dir)?;
    let mut out = Outcome::default();
    let mut refusals = Vec::new();
    let mut decisions = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Bind(b) => match a.check(b) {
                Ok(d) => decisions.push(Some(d)),
                Err(ApplyError::Step(msg)) => {
                    refusals.push(format!("  {msg}"));
                    decisions.push(None);
                }
                Err(e) => return Err(e),
            },
            Step::Deferred(d) => {
                out.deferred += 1;
                out.actions.push(format!(
                    "deferred {} {}: {}; run `darlings apply --root /` once the account exists",
                    d.kind.as_str(),
                    d.target,
                    d.reason
                ));
                decisions.push(None);
            }
        }
    }
    if !refusals.is_empty() {
        return Err(ApplyError::Refused(refusals));
    }
    if opts.dry_run {
        for (step, d) in plan.steps.iter().zip(&decisions) {
            let (Step::Bind(b), Some(d)) = (step, d) else {
                continue;
            };
            match d {
                Decision::AlreadyBound => {
                    out.already += 1;
                    out.actions.push(format!("already bound: {}", b.target));
                }
                Decision::Bind {
                    create_source,
                    create_target,
                } => {
                    if *create_source {
                        out.actions.push(format!(
                            "would create store {} {} ({})",
                            b.kind.as_str(),
                            b.source(),
                            b.spec
                        ));
                    }
                    if *create_target {
                        out.actions.push(format!(
                            "would create root {} {} and missing parents",
                            b.kind.as_str(),
                            b.target
                        ));
                    }
                    out.actions
                        .push(format!("would bind {} -> {}", b.source(), b.target));
                    out.bound += 1;
                }
                Decision::Seed => {
                    out.actions.push(format!(
                        "would copy the root's {} {} into the store as {} (seed-from-blank)",
                        b.kind.as_str(),
                        b.target,
                        b.source()
                    ));
                    out.actions
                        .push(format!("would bind {} -> {}", b.source(), b.target));
                    out.bound += 1;
                }
                Decision::Link { remove_empty } => {
                    if *remove_empty {
                        out.actions
                            .push(format!("would remove the empty file {}", b.target));
                    }
                    out.actions
                        .push(format!("would link {} -> {}", b.target, b.source()));
                    out.bound += 1;
                }
            }
        }
        return Ok(out);
    }
    for step in &plan.steps {
        if let Step::Bind(b) = step {
            a.execute(b, &mut out)?;
        }
    }
    Ok(out)
}

/// Records the userspace options of apply's mounts (`x-gvfs-hide`, `x-gvfs-trash`) in
/// libmount's utab, which the kernel's mountinfo cannot carry, so that findmnt, udisks and file
/// managers see and honour them.
///
/// libmount 2.38 (Debian 12) matches utab lines to mounts by ROOT and TARGET and ignores ID;
/// newer versions match by ID: the line carries all three. ROOT and SRC come from mountinfo,
/// read once here for all entries, never once per entry.
pub fn record_marked(utab: &Path, mountinfo: &Path, marked: &[Marked]) -> Result<(), ApplyError> {
    if marked.is_empty() {
        return Ok(());
    }
    let info = std::fs::read(mountinfo).map_err(|e| ApplyError::Io {
        what: format!("cannot read {}", mountinfo.display()),
        source: e,
    })?;
    let mounts: HashMap<u64, (Vec<u8>, Vec<u8>)> = darlings_backends::mountinfo::parse(&info)
        .into_iter()
        .map(|m| (m.id, (m.root, m.source)))
        .collect();
    let utab_shown = utab.as_os_str().as_bytes();
    let dir = utab.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| ApplyError::Io {
        what: format!("cannot create {}", dir.display()),
        source: e,
    })?;
    // libmount serialises utab writers with flock on utab.lock; take the same lock.
    let lock_path = utab.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ApplyError::Io {
            what: format!("cannot open {}", lock_path.display()),
            source: e,
        })?;
    fs::flock(&lock, fs::FlockOperation::LockExclusive)
        .map_err(|e| io(format!("cannot lock {}", lock_path.display()), e))?;
    let mut text = match std::fs::read(utab) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(ApplyError::Io {
                what: format!("cannot read {}", Show(utab_shown)),
                source: e,
            })
        }
    };
    for m in marked {
        let Some((root, source)) = mounts.get(&m.id) else {
            return Err(ApplyError::Step(format!(
                "mount {} on {} is missing from {}; it vanished right after apply",
                m.id,
                Show(&m.target),
                mountinfo.display()
            )));
        };
        let opts = match (m.hide, m.trash) {
            (true, true) => "x-gvfs-hide,x-gvfs-trash",
            (true, false) => "x-gvfs-hide",
            _ => "x-gvfs-trash",
        };
        let line = utab_line(m.id, source, &m.target, root, opts);
        if !text
            .split(|&b| b == b'\n')
            .any(|l| l == &line[..line.len() - 1])
        {
            text.extend_from_slice(&line);
        }
    }
    let tmp = utab.with_extension("darlings-tmp");
    std::fs::write(&tmp, &text)
        .and_then(|()| std::fs::rename(&tmp, utab))
        .map_err(|e| ApplyError::Io {
            what: format!("cannot write {}", Show(utab_shown)),
            source: e,
        })
}

/// One utab line. libmount escapes space, tab, newline and backslash in its fields as octal.
fn utab_line(id: u64, src: &[u8], tgt: &[u8], root: &[u8], opts: &str) -> Vec<u8> {
    let mut line = format!("ID={id} SRC=").into_bytes();
    mangle(&mut line, src);
    line.extend_from_slice(b" TARGET=");
    mangle(&mut line, tgt);
    line.extend_from_slice(b" ROOT=");
    mangle(&mut line, root);
    line.extend_from_slice(format!(" OPTS={opts}\n").as_bytes());
    line
}

fn mangle(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if matches!(b, b' ' | b'\t' | b'\n' | b'\\') {
            out.extend_from_slice(format!("\\{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utab_lines_escape_like_libmount() {
        let l = utab_line(42, b"tmpfs", b"/sysroot/a b", b"/a b", "x-gvfs-hide");
        assert_eq!(
            l,
            b"ID=42 SRC=tmpfs TARGET=/sysroot/a\\040b ROOT=/a\\040b OPTS=x-gvfs-hide\n"
        );
    }
}
