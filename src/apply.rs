//! Executes a plan against a root directory: every path resolved from a directory fd with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (`beneath::open`)
//! in both the root and the store, parents
//! created with explicit owner and mode, binds made fd to fd (`open_tree` + `move_mount`).
//!
//! Two passes: a read-only check of every step (symlinks, non-empty targets, differing files,
//! a store the rollback would erase) that refuses the whole plan before anything changes, then
//! execution, in which each step detects work already done, so a second apply is a no-op. The
//! execution pass resolves every path again from the root's descriptor (nothing opened by the
//! check pass is trusted), journals what it changes, and undoes this run's changes, deepest
//! first, when a step fails, naming anything it could not undo.
//!
//! Each pass resolves each path once: the check pass only stats an entry's name in its parent
//! (it binds nothing, so it needs no descriptor), and the execution pass binds the very
//! descriptors its re-check opened, or those the creation of a missing entry returned.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::BackendError;
use darlings_backends::beneath;
use darlings_backends::bytes::Show;
use darlings_backends::placement::{Placement, PlacementError};
use rustix::fs::{self, AtFlags, Mode, OFlags, Statx, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

use crate::config::{Kind, Method};
use crate::plan::{Bind, DirSpec, Plan, Step};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refusing to apply the plan, nothing was changed:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error("{0}")]
    Step(String),
    #[error(transparent)]
    Backend(#[from] darlings_backends::BackendError),
    /// The execution pass failed at `entry`, after this run had changed things: what was undone,
    /// and what could not be.
    #[error("{}", partial_text(.entry, .undone, .left))]
    Partial {
        entry: String,
        undone: Vec<String>,
        left: Vec<String>,
        #[source]
        cause: Box<ApplyError>,
    },
}

fn partial_text(entry: &str, undone: &[String], left: &[String]) -> String {
    let list = |v: &[String]| v.iter().map(|l| format!("\n  {l}")).collect::<String>();
    if left.is_empty() {
        format!(
            "apply failed at {entry}; it undid all this run had changed ({} change(s)), so the root and the stores are as they were:{}\nfix the cause below and apply again",
            undone.len(),
            if undone.is_empty() { "\n  (nothing had changed yet)".to_string() } else { list(undone) }
        )
    } else {
        format!(
            "apply failed at {entry} and could not undo all this run had changed; left in place:{}\nundone:{}\nremove or unmount what is left by hand (or leave it: a later apply takes it as done), fix the cause below and apply again",
            list(left),
            if undone.is_empty() { "\n  (nothing)".to_string() } else { list(undone) }
        )
    }
}

impl From<PlacementError> for ApplyError {
    fn from(e: PlacementError) -> Self {
        match e {
            PlacementError::OnRoot { .. } => ApplyError::Step(e.to_string()),
            PlacementError::Io(e) => ApplyError::Backend(e),
        }
    }
}

fn io(what: String, e: Errno) -> ApplyError {
    BackendError::io(what, e.into()).into()
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

fn symlink_refusal(tree: &str, shown: &[u8]) -> String {
    format!(
        "{tree} path {} is or passes through a symlink; darlings never follows symlinks in a root or store: replace it with a real directory or file",
        Show(shown)
    )
}

/// Which tree a journal entry is in: the root, or the store with this path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TreeId {
    Root,
    Store(Vec<u8>),
}

/// One change the execution pass made, with what undoing it needs: paths relative to the
/// tree's top, resolved again beneath it (no descriptor is kept: a run binds thousands of
/// entries, more than the default descriptor limit).
#[derive(Debug)]
enum Done {
    /// A directory or file darlings created; `id` (device, inode), when known, is checked
    /// before it is removed.
    Created {
        tree: TreeId,
        rel: Vec<u8>,
        dir: bool,
        id: Option<(u32, u32, u64)>,
        line: String,
        shown: Vec<u8>,
    },
    /// A bind mount, by its mount id, on `rel` in the root.
    Mounted {
        mnt_id: u64,
        rel: Vec<u8>,
        line: String,
        shown: Vec<u8>,
    },
    /// Not undoable (an empty file removed to make way for a symlink).
    Removed { line: String },
}

impl Done {
    fn line(&self) -> &str {
        match self {
            Done::Created { line, .. } | Done::Mounted { line, .. } | Done::Removed { line } => {
                line
            }
        }
    }
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// A directory tree (the root, or one store) with a cache of the directories opened on the way
/// to the last entry: entries are sorted, so neighbours share most of their parents.
struct Tree {
    name: &'static str,
    id: TreeId,
    /// Absolute path of the tree's top in this namespace, for messages and the utab.
    top: Vec<u8>,
    base: OwnedFd,
    /// The device of `base` (stores: a source on another device is checked on its own).
    dev: (u32, u32),
    /// The directories opened on the way to the last entry, each with its device once asked
    /// for (`deepest_dev`): sorted entries share parents, so one statx serves many entries.
    chain: Vec<(Vec<u8>, OwnedFd, DevCache)>,
    /// The directory a walk without `create` last found missing, by its components: the
    /// entries below it (sorted, so they come in a row) are missing too, without a lookup
    /// each. Any walk that creates forgets it.
    missing: Option<Vec<Vec<u8>>>,
}

/// A directory's device, statted on first use.
type DevCache = Cell<Option<(u32, u32)>>;

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

    /// The deepest directory opened by the last walk (the top when none was).
    fn deepest(&self) -> BorrowedFd<'_> {
        self.chain
            .last()
            .map_or(self.base.as_fd(), |(_, fd, _)| fd.as_fd())
    }

    /// The device of `deepest()`, statted once per opened directory.
    fn deepest_dev(&self, shown: &[u8]) -> Result<(u32, u32), ApplyError> {
        let Some((_, fd, dev)) = self.chain.last() else {
            return Ok(self.dev);
        };
        if let Some(d) = dev.get() {
            return Ok(d);
        }
        let d = dev_of(fd.as_fd(), shown)?;
        dev.set(Some(d));
        Ok(d)
    }

    /// Walks to the parent directory of `comps` (all but the last component), creating what is
    /// missing when `create` is set, with owner and mode from `specs` (one per component), and
    /// journalling each directory it creates.
    fn parent(
        &mut self,
        comps: &[&[u8]],
        specs: &[DirSpec],
        create: bool,
        journal: &mut Vec<Done>,
    ) -> Result<Parent<'_>, ApplyError> {
        let parents = &comps[..comps.len().saturating_sub(1)];
        let common = self
            .chain
            .iter()
            .zip(parents)
            .take_while(|((c, _, _), p)| c.as_slice() == **p)
            .count();
        self.chain.truncate(common);
        if create {
            self.missing = None;
        }
        for depth in common..parents.len() {
            let comp = parents[depth];
            if let Some(m) = &self.missing {
                if m.len() == depth + 1 && m.iter().zip(parents).all(|(a, b)| a.as_slice() == *b) {
                    return Ok(Parent::Missing);
                }
            }
            let dir = self.deepest();
            let shown = self.shown(&parents[..=depth]);
            let fd = match beneath::open(dir, comp, OFlags::RDONLY | OFlags::DIRECTORY) {
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
                Err(Errno::NOENT) if !create => {
                    self.missing = Some(parents[..=depth].iter().map(|c| c.to_vec()).collect());
                    return Ok(Parent::Missing);
                }
                Err(Errno::NOENT) => {
                    let spec = specs.get(depth).copied().unwrap_or(DirSpec {
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                    });
                    let mut made = false;
                    let r = make_dir(dir, comp, spec, &shown, &mut made);
                    if made {
                        journal.push(Done::Created {
                            tree: self.id.clone(),
                            rel: join(&parents[..=depth]),
                            dir: true,
                            id: None,
                            line: format!(
                                "created {} directory {} ({spec})",
                                self.name,
                                Show(&shown)
                            ),
                            shown: shown.clone(),
                        });
                    }
                    // The descriptor make_dir opened to give it its owner: nobody else could
                    // have replaced the directory it names, which is 0700 until then.
                    r?
                }
                Err(e) => {
                    return Err(io(
                        format!("cannot open {} directory {}", self.name, Show(&shown)),
                        e,
                    ))
                }
            };
            self.chain.push((comp.to_vec(), fd, Cell::new(None)));
        }
        Ok(Parent::Open(self.deepest()))
    }
}

/// Creates a directory with exactly `spec`: made 0700 first so that nobody can use it before it
/// has its owner, then chowned and chmodded on the fd (the umask does not apply to fchmod).
/// `made` is set once the directory exists, also when giving it its owner then fails. Returns
/// the directory, opened.
fn make_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    spec: DirSpec,
    shown: &[u8],
    made: &mut bool,
) -> Result<OwnedFd, ApplyError> {
    match fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => *made = true,
        Err(e) => return Err(io(format!("cannot create directory {}", Show(shown)), e)),
    }
    let fd = beneath::open(parent, name, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| io(format!("cannot open new directory {}", Show(shown)), e))?;
    set_owner_mode(&fd, spec, shown)?;
    Ok(fd)
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

/// The final component of a path, looked at without following anything: opened (`look`, the
/// execution pass, which binds the descriptor) or only statted (`peek`, the check pass).
struct Found {
    fd: Option<OwnedFd>,
    st: Statx,
}

impl Found {
    /// The descriptor the execution pass opened; a peeked entry has none.
    fn fd(&self, shown: &[u8]) -> Result<BorrowedFd<'_>, ApplyError> {
        self.fd.as_ref().map(|f| f.as_fd()).ok_or_else(|| {
            ApplyError::Step(format!(
                "internal error: {} was looked at but not opened; report this bug",
                Show(shown)
            ))
        })
    }

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
    open_found(tree, dir, name, shown, OFlags::PATH)
}

/// Opens `name` with `flags` and stats it; a directory wanted (`O_DIRECTORY`) that is something
/// else is looked at as what it is, for the refusal that names it.
fn open_found(
    tree: &str,
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
    flags: OFlags,
) -> Result<Option<Found>, ApplyError> {
    let fd = match beneath::open(dir, name, flags) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP) => return Err(ApplyError::Step(symlink_refusal(tree, shown))),
        Err(Errno::NOTDIR) if flags.contains(OFlags::DIRECTORY) => {
            return look(tree, dir, name, shown)
        }
        Err(e) => return Err(io(format!("cannot open {tree} path {}", Show(shown)), e)),
    };
    let st = fs::statx(
        &fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )
    .map_err(|e| io(format!("cannot stat {tree} path {}", Show(shown)), e))?;
    Ok(Some(Found { fd: Some(fd), st }))
}

/// `look` without opening, for the check pass, which binds nothing: one `statx` of a single
/// name in a directory opened beneath the tree. The name has no `/`, so nothing but the name
/// itself is resolved, and `AT_SYMLINK_NOFOLLOW` leaves a symlink there unfollowed: refused,
/// like `look`'s `ELOOP`.
fn peek(
    tree: &str,
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
) -> Result<Option<Found>, ApplyError> {
    let st = match fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    ) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io(format!("cannot stat {tree} path {}", Show(shown)), e)),
    };
    if fs::FileType::from_raw_mode(u32::from(st.stx_mode)) == fs::FileType::Symlink {
        return Err(ApplyError::Step(symlink_refusal(tree, shown)));
    }
    Ok(Some(Found { fd: None, st }))
}

/// The check pass peeks; the execution pass, which binds what it finds, opens.
fn find(
    open: bool,
    tree: &str,
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
) -> Result<Option<Found>, ApplyError> {
    if open {
        look(tree, dir, name, shown)
    } else {
        peek(tree, dir, name, shown)
    }
}

/// `look` for an entry that should be a directory: opened readable when it is one (so that its
/// emptiness is read through the descriptor that is bound onto), as a path otherwise.
fn look_dir(
    tree: &str,
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &[u8],
) -> Result<Option<Found>, ApplyError> {
    open_found(tree, dir, name, shown, OFlags::RDONLY | OFlags::DIRECTORY)
}

fn vanished(shown: &[u8]) -> ApplyError {
    ApplyError::Step(format!(
        "{} vanished while apply looked at it; apply again",
        Show(shown)
    ))
}

/// Whether the directory open as `fd` (readable, offset 0) has no entries.
fn dir_fd_is_empty(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<bool, ApplyError> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1024];
    let mut d = fs::RawDir::new(fd, &mut buf);
    while let Some(entry) = d.next() {
        let entry = entry.map_err(|e| io(format!("cannot read {}", Show(shown)), e))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn dir_is_empty(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<bool, ApplyError> {
    let fd = beneath::open(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
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

fn open_read(dir: BorrowedFd<'_>, name: &[u8], shown: &[u8]) -> Result<std::fs::File, ApplyError> {
    beneath::open(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .map(std::fs::File::from)
    .map_err(|e| io(format!("cannot open {}", Show(shown)), e))
}

/// Reads until `buf` is full or the file ends.
fn fill(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Compares two files' content in bounded memory (two 64 KiB buffers), whatever their size:
/// an initrd has little memory, and persisted files can be large.
pub(crate) fn same_content(
    a: (BorrowedFd<'_>, &[u8], &[u8]),
    b: (BorrowedFd<'_>, &[u8], &[u8]),
) -> Result<bool, ApplyError> {
    const CHUNK: usize = 64 * 1024;
    let mut fa = open_read(a.0, a.1, a.2)?;
    let mut fb = open_read(b.0, b.1, b.2)?;
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let err = |shown: &[u8]| {
        let what = format!("cannot read {}", Show(shown));
        move |e| BackendError::Io { what, source: e }
    };
    loop {
        let na = fill(&mut fa, &mut ba).map_err(err(a.2))?;
        let nb = fill(&mut fb, &mut bb).map_err(err(b.2))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na < CHUNK {
            return Ok(true);
        }
    }
}

/// The source and target a check found, for the execution pass to bind.
#[derive(Default)]
struct Seen {
    source: Option<Found>,
    target: Option<Found>,
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
    stores: HashMap<Vec<u8>, Tree>,
    /// The root's mount is read-only (`ro` on the kernel command line, dracut's pre-pivot):
    /// mount points are then made through `writable`, a private clone of that mount.
    root_ro: bool,
    writable: Option<Tree>,
    placement: Placement,
    /// What this run's execution pass changed, in order.
    journal: Vec<Done>,
}

fn dev_of(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<(u32, u32), ApplyError> {
    let st = fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
        .map_err(|e| io(format!("cannot stat {}", Show(shown)), e))?;
    Ok((st.stx_dev_major, st.stx_dev_minor))
}

impl Applier {
    fn open(
        root_dir: &Path,
        erased: darlings_backends::placement::Erased,
        dry_run: bool,
    ) -> Result<Applier, ApplyError> {
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
        let mut placement = Placement::new(base.as_fd(), &top, erased)?;
        // Checked pass or not, a directory renamed out of a plain-directory root between the
        // passes (or between opening a parent and creating in it) would take the execution
        // pass outside the root; on the top of a mounted filesystem no rename can.
        if !dry_run && !placement.root_is_filesystem_top()? {
            return Err(ApplyError::Refused(vec![format!(
                "  root {} is not the top of a mounted filesystem (it is a plain directory, or a bind of one): a directory renamed out of it while apply works would take binds and new directories outside it; mount the new root there (a filesystem, or a btrfs subvolume) and apply again (--dry-run only looks, and takes any directory)",
                Show(&top)
            )]));
        }
        let dev = dev_of(base.as_fd(), &top)?;
        Ok(Applier {
            root: Tree {
                name: "root",
                id: TreeId::Root,
                top,
                base,
                dev,
                chain: Vec::new(),
                missing: None,
            },
            stores: HashMap::new(),
            root_ro,
            writable: None,
            placement,
            journal: Vec::new(),
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
        beneath::open(dir, name, flags).map_err(|e| io(format!("cannot open {}", Show(&shown)), e))
    }

    /// Makes the target of `b` and its missing parents, when the root's mount is read-only,
    /// through a clone of that mount with the read-only flag cleared: detached, so nobody
    /// else sees it, and gone when apply ends. The directories and files it makes are the
    /// same inodes the real root shows, where the binds then go; the root's own mount stays
    /// read-only. Only empty mount points are made this way: nothing of the store's.
    fn make_mount_point(&mut self, b: &Bind) -> Result<(), ApplyError> {
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Ok(());
        };
        if !self.root_ro {
            return Ok(());
        }
        let tshown = self.root.shown(&comps);
        if let Parent::Open(dir) = self
            .root
            .parent(&comps, &b.parents, false, &mut Vec::new())?
        {
            if look("root", dir, name, &tshown)?.is_some() {
                return Ok(());
            }
        }
        if self.writable.is_none() {
            self.writable = Some(writable_clone(&self.root)?);
        }
        // What the clone creates, the root shows: its cache of a missing directory is stale.
        self.root.missing = None;
        let Some(w) = self.writable.as_mut() else {
            return Ok(());
        };
        let shown = w.shown(&comps);
        let Parent::Open(dir) = w.parent(&comps, &b.parents, true, &mut self.journal)? else {
            return Ok(());
        };
        if look("root", dir, name, &shown)?.is_none() {
            Self::create_journalled(
                &mut self.journal,
                TreeId::Root,
                dir,
                &comps,
                b,
                None,
                &shown,
            )?;
            if let Some(Done::Created { line, .. }) = self.journal.last_mut() {
                line.push_str(" through a writable clone of the read-only root mount");
            }
        }
        Ok(())
    }

    /// Forgets every descriptor opened so far but the root's: the execution pass resolves
    /// everything again from the root rather than trust what the check pass opened.
    fn forget_opened(&mut self) {
        self.root.chain.clear();
        self.root.missing = None;
        if let Some(w) = self.writable.as_mut() {
            w.chain.clear();
            w.missing = None;
        }
        self.stores.clear();
    }

    /// Opens a store beneath the root, once, and refuses it when the rollback would erase it
    /// (the store rule, `darlings_backends::placement`). Returns its key in `stores`.
    fn open_store(&mut self, store: &crate::paths::AbsPath) -> Result<Vec<u8>, ApplyError> {
        let key = store.as_bytes().to_vec();
        if !self.stores.contains_key(&key) {
            let shown = self.root.shown(&[store.relative()]);
            let fd = match beneath::open(
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
            self.placement.check(fd.as_fd(), &shown)?;
            let dev = dev_of(fd.as_fd(), &shown)?;
            self.stores.insert(
                key.clone(),
                Tree {
                    name: "store",
                    id: TreeId::Store(key.clone()),
                    top: shown,
                    base: fd,
                    dev,
                    chain: Vec::new(),
                    missing: None,
                },
            );
        }
        Ok(key)
    }

    fn store(&mut self, store: &crate::paths::AbsPath) -> Result<&mut Tree, ApplyError> {
        let key = self.open_store(store)?;
        self.stores
            .get_mut(&key)
            .ok_or_else(|| ApplyError::Step("store vanished from the cache".into()))
    }

    /// Read-only: what this bind needs, or why it must be refused.
    fn check(&mut self, b: &Bind) -> Result<Decision, ApplyError> {
        if b.method == Method::Symlink {
            return self.check_link(b);
        }
        self.check_seen(b, false, &mut Seen::default())
    }

    /// `check`, leaving in `seen` the source and target it found: opened when `open` is set
    /// (the execution pass, which then binds those very descriptors instead of resolving the
    /// paths a second time), only statted otherwise (the check pass).
    fn check_seen(
        &mut self,
        b: &Bind,
        open: bool,
        seen: &mut Seen,
    ) -> Result<Decision, ApplyError> {
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        let key = self.open_store(&b.store)?;
        let Some(store) = self.stores.get_mut(&key) else {
            return Err(ApplyError::Step("store vanished from the cache".into()));
        };
        let src_shown = store.shown(&comps);
        let store_dev = store.dev;
        let kind_refusal = || {
            ApplyError::Step(format!(
                "store path {} is not a {}, but the config persists a {} there; fix the store or the config",
                Show(&src_shown),
                b.kind.as_str(),
                b.kind.as_str()
            ))
        };
        // A source on another device than its store (a mount inside the store) goes through
        // the store rule on its own; for a missing source, the directory it would be made in.
        seen.source = match store.parent(&comps, &b.parents, false, &mut Vec::new())? {
            Parent::Missing => {
                if store.deepest_dev(&src_shown)? != store_dev {
                    self.placement.check(store.deepest(), &src_shown)?;
                }
                None
            }
            Parent::Open(dir) => match find(open, "store", dir, name, &src_shown)? {
                Some(f) => {
                    if f.kind() != Some(b.kind) {
                        return Err(kind_refusal());
                    }
                    if (f.st.stx_dev_major, f.st.stx_dev_minor) != store_dev {
                        // The store rule needs the source itself; a peek did not open it.
                        let opened;
                        let fd = match &f.fd {
                            Some(fd) => fd.as_fd(),
                            None => {
                                opened = look("store", dir, name, &src_shown)?
                                    .ok_or_else(|| vanished(&src_shown))?;
                                opened.fd(&src_shown)?
                            }
                        };
                        self.placement.check(fd, &src_shown)?;
                    }
                    Some(f)
                }
                None => {
                    // `dir` is the deepest directory the walk opened.
                    if store.deepest_dev(&src_shown)? != store_dev {
                        self.placement.check(store.deepest(), &src_shown)?;
                    }
                    None
                }
            },
        };
        let source = &seen.source;
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
        // The execution pass opens a directory target readable, to see that it is empty
        // through the descriptor it then binds onto.
        seen.target = if open && b.kind == Kind::Dir {
            look_dir("root", tdir, name, &tgt_shown)?
        } else {
            find(open, "root", tdir, name, &tgt_shown)?
        };
        let Some(target) = &seen.target else {
            return Ok(Decision::Bind {
                create_source: source.is_none(),
                create_target: true,
            });
        };
        if let Some(s) = source {
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
                let empty = match &target.fd {
                    Some(fd) => dir_fd_is_empty(fd.as_fd(), &tgt_shown)?,
                    None => dir_is_empty(tdir, name, &tgt_shown)?,
                };
                if !empty {
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
                    let same = match source {
                        Some(s) if s.st.stx_size == target.st.stx_size => {
                            let Some(store) = self.stores.get_mut(&key) else {
                                return Err(ApplyError::Step(
                                    "store vanished from the cache".into(),
                                ));
                            };
                            let Parent::Open(sdir) =
                                store.parent(&comps, &b.parents, false, &mut Vec::new())?
                            else {
                                return Err(ApplyError::Step(format!(
                                    "store path {} vanished",
                                    Show(&src_shown)
                                )));
                            };
                            let Parent::Open(tdir) =
                                self.root
                                    .parent(&comps, &b.parents, false, &mut Vec::new())?
                            else {
                                return Err(ApplyError::Step(format!(
                                    "target {} vanished",
                                    Show(&tgt_shown)
                                )));
                            };
                            same_content((sdir, name, &src_shown), (tdir, name, &tgt_shown))?
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
        let mark = self.journal.len();
        // The store's directories, so that a program writing through the link lands in it.
        let key = self.open_store(&b.store)?;
        let Some(store) = self.stores.get_mut(&key) else {
            return Err(ApplyError::Step("store vanished from the cache".into()));
        };
        store.parent(&comps, &b.parents, true, &mut self.journal)?;
        let tgt_shown = self.root.shown(&comps);
        if self.root_ro && self.writable.is_none() {
            self.writable = Some(writable_clone(&self.root)?);
        }
        // A read-only root mount: the link and its parents are made through the writable clone
        // (the same inodes); a link is not a mount, so nothing needs the root's own mount.
        self.root.missing = None;
        let maker = match self.writable.as_mut() {
            Some(w) if self.root_ro => w,
            _ => &mut self.root,
        };
        let Parent::Open(tdir) = maker.parent(&comps, &b.parents, true, &mut self.journal)? else {
            return Err(ApplyError::Step(format!(
                "cannot create the parents of {}",
                Show(&tgt_shown)
            )));
        };
        if remove_empty {
            fs::unlinkat(tdir, name, AtFlags::empty())
                .map_err(|e| io(format!("cannot remove empty file {}", Show(&tgt_shown)), e))?;
            self.journal.push(Done::Removed {
                line: format!("removed the empty file {}", Show(&tgt_shown)),
            });
        }
        let want = b.source();
        fs::symlinkat(want.as_bytes(), tdir, name)
            .map_err(|e| io(format!("cannot create symlink {}", Show(&tgt_shown)), e))?;
        // Its inode, so that an undo removes this link and nothing put in its place.
        let id = fs::statx(
            tdir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        )
        .ok()
        .map(|st| (st.stx_dev_major, st.stx_dev_minor, st.stx_ino));
        self.journal.push(Done::Created {
            tree: TreeId::Root,
            rel: join(&comps),
            dir: false,
            id,
            line: format!("linked {} -> {want}", Show(&tgt_shown)),
            shown: tgt_shown,
        });
        out.actions
            .extend(self.journal[mark..].iter().map(|d| d.line().to_string()));
        out.bound += 1;
        Ok(())
    }

    /// Creates the entry `name` in `dir` (of `tree`) and journals it, then looks at it.
    #[allow(clippy::too_many_arguments)]
    fn create_journalled(
        journal: &mut Vec<Done>,
        tree: TreeId,
        dir: BorrowedFd<'_>,
        comps: &[&[u8]],
        b: &Bind,
        seed: Option<&[u8]>,
        shown: &[u8],
    ) -> Result<Found, ApplyError> {
        let name = comps.last().copied().unwrap_or_default();
        let which = if tree == TreeId::Root {
            "root"
        } else {
            "store"
        };
        let mut made = false;
        let r = create_entry(dir, name, b.kind, b.spec, seed, shown, &mut made);
        if made {
            journal.push(Done::Created {
                tree,
                rel: join(comps),
                dir: b.kind == Kind::Dir,
                id: None,
                line: format!(
                    "created {which} {} {} ({})",
                    b.kind.as_str(),
                    Show(shown),
                    b.spec
                ),
                shown: shown.to_vec(),
            });
        }
        // The descriptor the creation opened (O_EXCL, or mkdirat then openat2 of the 0700
        // directory): the entry made, with no second lookup that something could redirect.
        let fd = r?;
        let st = fs::statx(
            &fd,
            "",
            AtFlags::EMPTY_PATH,
            StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
        )
        .map_err(|e| io(format!("cannot stat {which} path {}", Show(shown)), e))?;
        if let Some(Done::Created { id, .. }) = journal.last_mut() {
            *id = Some((st.stx_dev_major, st.stx_dev_minor, st.stx_ino));
        }
        Ok(Found { fd: Some(fd), st })
    }

    fn execute(&mut self, b: &Bind, out: &mut Outcome) -> Result<(), ApplyError> {
        if b.method == Method::Symlink {
            return self.execute_link(b, out);
        }
        let comps: Vec<&[u8]> = b.target.components().collect();
        let Some(&name) = comps.last() else {
            return Err(ApplyError::Step("empty target".into()));
        };
        // Re-check at execution time: the state may have changed since the check pass. This
        // check opens what it finds, resolved again from the root's descriptor, and the bind is
        // made on those descriptors: each path is resolved once in this pass.
        let mut seen = Seen::default();
        let seed = match self.check_seen(b, true, &mut seen)? {
            Decision::AlreadyBound => {
                out.already += 1;
                return Ok(());
            }
            Decision::Seed => Some(self.seed_source(b, &comps)?),
            Decision::Bind { .. } | Decision::Link { .. } => None,
        };
        let mark = self.journal.len();
        let key = self.open_store(&b.store)?;
        let Some(store) = self.stores.get_mut(&key) else {
            return Err(ApplyError::Step("store vanished from the cache".into()));
        };
        let src_shown = store.shown(&comps);
        let Parent::Open(sdir) = store.parent(&comps, &b.parents, true, &mut self.journal)? else {
            return Err(ApplyError::Step(format!(
                "cannot create the parents of {}",
                Show(&src_shown)
            )));
        };
        let source = match seen.source {
            Some(f) => f,
            None => match &seed {
                Some(from) => {
                    let c =
                        crate::seed::copy_into_store(from.as_fd(), b.kind, sdir, name, &src_shown)?;
                    let f = look("store", sdir, name, &src_shown)?.ok_or_else(|| {
                        ApplyError::Step(format!(
                            "store path {} vanished after the seed copy",
                            Show(&src_shown)
                        ))
                    })?;
                    self.journal.push(Done::Created {
                        tree: TreeId::Store(key.clone()),
                        rel: join(&comps),
                        dir: b.kind == Kind::Dir,
                        id: Some((f.st.stx_dev_major, f.st.stx_dev_minor, f.st.stx_ino)),
                        line: format!(
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
                        ),
                        shown: src_shown.clone(),
                    });
                    f
                }
                None => Self::create_journalled(
                    &mut self.journal,
                    TreeId::Store(key.clone()),
                    sdir,
                    &comps,
                    b,
                    b.seed,
                    &src_shown,
                )?,
            },
        };
        let tgt_shown = self.root.shown(&comps);
        let target = match seen.target {
            Some(f) => f,
            None => {
                // Missing at the check just now: made here (through the writable clone when
                // the root's mount is read-only, then looked up in the root itself).
                self.make_mount_point(b)?;
                let Parent::Open(tdir) =
                    self.root
                        .parent(&comps, &b.parents, true, &mut self.journal)?
                else {
                    return Err(ApplyError::Step(format!(
                        "cannot create the parents of {}",
                        Show(&tgt_shown)
                    )));
                };
                if self.root_ro {
                    look("root", tdir, name, &tgt_shown)?.ok_or_else(|| vanished(&tgt_shown))?
                } else {
                    Self::create_journalled(
                        &mut self.journal,
                        TreeId::Root,
                        tdir,
                        &comps,
                        b,
                        None,
                        &tgt_shown,
                    )?
                }
            }
        };
        let mnt_id = bind(&source, &target, b, &src_shown, &tgt_shown)?;
        self.journal.push(Done::Mounted {
            mnt_id,
            rel: join(&comps),
            line: format!("bound {} -> {}", Show(&src_shown), Show(&tgt_shown)),
            shown: tgt_shown.clone(),
        });
        out.actions
            .extend(self.journal[mark..].iter().map(|d| d.line().to_string()));
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

    /// The top of `tree`, opened again from the root.
    fn reopen(&self, tree: &TreeId) -> Result<OwnedFd, String> {
        let rel = match tree {
            TreeId::Root => &b""[..],
            TreeId::Store(key) => key.strip_prefix(b"/").unwrap_or(key),
        };
        if rel.is_empty() {
            return rustix::io::fcntl_dupfd_cloexec(&self.root.base, 0).map_err(|e| e.to_string());
        }
        beneath::open(
            self.root.base.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .map_err(|e| format!("cannot open its store again: {e}"))
    }

    /// Removes what `Done::Created` describes, if it is still what apply created.
    fn remove(
        &self,
        tree: &TreeId,
        rel: &[u8],
        dir: bool,
        id: Option<(u32, u32, u64)>,
    ) -> Result<(), String> {
        let top = self.reopen(tree)?;
        let (parent_rel, name) = match rel.iter().rposition(|&c| c == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&b""[..], rel),
        };
        let parent = if parent_rel.is_empty() {
            top
        } else {
            beneath::open(top.as_fd(), parent_rel, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| format!("cannot open its parent again: {e}"))?
        };
        if let Some((ma, mi, ino)) = id {
            let st = fs::statx(
                &parent,
                name,
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::BASIC_STATS,
            )
            .map_err(|e| format!("cannot stat it: {e}"))?;
            if (st.stx_dev_major, st.stx_dev_minor, st.stx_ino) != (ma, mi, ino) {
                return Err("something else stands there now".into());
            }
        }
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match fs::unlinkat(&parent, name, flags) {
            Ok(()) => Ok(()),
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {
                Err("not empty: something was written into it".into())
            }
            Err(Errno::BUSY) => Err("something is mounted on it".into()),
            Err(e) => Err(format!("cannot remove it: {e}")),
        }
    }

    /// Unmounts the bind `mnt_id` at `rel` in the root, if it is still there.
    fn unmount(&self, mnt_id: u64, rel: &[u8]) -> Result<&'static str, String> {
        // The lookup ends on the mount's own top, which is what umount needs.
        let fd = beneath::open(self.root.base.as_fd(), rel, OFlags::PATH)
            .map_err(|e| format!("cannot open it again: {e}"))?;
        let st = fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(|e| format!("cannot stat it: {e}"))?;
        if st.stx_mnt_id != mnt_id {
            return Err(format!(
                "the mount there (id {}) is not the one apply made (id {mnt_id})",
                st.stx_mnt_id
            ));
        }
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match rustix::mount::unmount(path.as_str(), rustix::mount::UnmountFlags::empty()) {
            Ok(()) => Ok(""),
            Err(Errno::BUSY) => {
                rustix::mount::unmount(path.as_str(), rustix::mount::UnmountFlags::DETACH)
                    .map(|()| " (detached: it was busy)")
                    .map_err(|e| format!("cannot unmount it: {e}"))
            }
            Err(e) => Err(format!("cannot unmount it: {e}")),
        }
    }

    /// Undoes this run's journal, latest first (so binds go before the targets they cover, and
    /// entries before their parents). Returns what was undone and what was left.
    fn undo(&mut self) -> (Vec<String>, Vec<String>) {
        self.forget_opened();
        let (mut undone, mut left) = (Vec::new(), Vec::new());
        for d in std::mem::take(&mut self.journal).into_iter().rev() {
            match d {
                Done::Mounted {
                    mnt_id, rel, shown, ..
                } => match self.unmount(mnt_id, &rel) {
                    Ok(note) => undone.push(format!("unmounted {}{note}", Show(&shown))),
                    Err(why) => left.push(format!("the bind on {}: {why}", Show(&shown))),
                },
                Done::Created {
                    tree,
                    rel,
                    dir,
                    id,
                    shown,
                    ..
                } => {
                    let what = format!(
                        "{} {} {}",
                        if tree == TreeId::Root {
                            "root"
                        } else {
                            "store"
                        },
                        if dir { "directory" } else { "file" },
                        Show(&shown)
                    );
                    match self.remove(&tree, &rel, dir, id) {
                        Ok(()) => undone.push(format!("removed {what}")),
                        Err(why) => left.push(format!("{what}: {why}")),
                    }
                }
                Done::Removed { line } => left.push(format!(
                    "{line}: it was empty, and an undo does not make it again"
                )),
            }
        }
        (undone, left)
    }
}

/// Creates the entry itself (a directory, or a file with `seed` as content) with `spec`;
/// `made` is set once it exists. Returns it, opened.
fn create_entry(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: Kind,
    spec: DirSpec,
    seed: Option<&[u8]>,
    shown: &[u8],
    made: &mut bool,
) -> Result<OwnedFd, ApplyError> {
    match kind {
        Kind::Dir => make_dir(dir, name, spec, shown, made),
        Kind::File => {
            let fd = beneath::create(dir, name, OFlags::WRONLY, Mode::from_raw_mode(0o600))
                .map_err(|e| io(format!("cannot create file {}", Show(shown)), e))?;
            *made = true;
            if let Some(seed) = seed {
                let mut written = 0;
                while written < seed.len() {
                    written += rustix::io::write(&fd, &seed[written..])
                        .map_err(|e| io(format!("cannot write {}", Show(shown)), e))?;
                }
            }
            set_owner_mode(&fd, spec, shown)?;
            Ok(fd)
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
    mount_setattr(&clone, 0, MOUNT_ATTR_RDONLY).map_err(|source| BackendError::Io {
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
        id: TreeId::Root,
        top: root.top.clone(),
        base: clone,
        dev: root.dev,
        chain: Vec::new(),
        missing: None,
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
    // mount_setattr(2) through syscall(2); the SAFETY note above says why it is sound.
    #[allow(unsafe_code)]
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
        source.fd(src)?,
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
        mount_setattr(&tree, set, 0).map_err(|source| BackendError::Io {
            what: format!(
                "cannot set nosuid/nodev on the bind of {}; the bind was not made",
                Show(src)
            ),
            source,
        })?;
    }
    // The id before attaching: moving keeps it, and once attached the mount must be journalled
    // whatever happens next.
    let st = fs::statx(&tree, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .map_err(|e| io(format!("cannot stat the new mount of {}", Show(src)), e))?;
    move_mount(
        tree.as_fd(),
        "",
        target.fd(tgt)?,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| io(format!("cannot bind {} onto {}", Show(src), Show(tgt)), e))?;
    Ok(st.stx_mnt_id)
}

/// Applies `plan` to the root at `root_dir`. With `dry_run`, only the check pass runs and the
/// outcome lists what would be done.
pub fn apply(plan: &Plan, root_dir: &Path, opts: Options) -> Result<Outcome, ApplyError> {
    let mut a = Applier::open(root_dir, plan.erased.clone(), opts.dry_run)?;
    let mut out = Outcome::default();
    let mut refusals = Vec::new();
    let mut decisions = Vec::new();
    for step in &plan.steps {
        match step {
            Step::Bind(b) => match a.check(b) {
                Ok(d) => decisions.push(Some(d)),
                Err(ApplyError::Step(msg)) => {
                    // A refused store refuses each of its entries alike: say it once.
                    let line = format!("  {msg}");
                    if !refusals.contains(&line) {
                        refusals.push(line);
                    }
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
    a.forget_opened();
    for step in &plan.steps {
        if let Step::Bind(b) = step {
            if let Err(e) = a.execute(b, &mut out) {
                let (undone, left) = a.undo();
                for l in &undone {
                    tracing::info!("apply: undo: {l}");
                }
                for l in &left {
                    tracing::error!("apply: left in place: {l}");
                }
                return Err(ApplyError::Partial {
                    entry: b.target.to_string(),
                    undone,
                    left,
                    cause: Box::new(e),
                });
            }
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
    let info = std::fs::read(mountinfo).map_err(|e| BackendError::Io {
        what: format!("cannot read {}", mountinfo.display()),
        source: e,
    })?;
    let mounts: HashMap<u64, (Vec<u8>, Vec<u8>)> = darlings_backends::mountinfo::parse(&info)
        .into_iter()
        .map(|m| (m.id, (m.root, m.source)))
        .collect();
    let utab_shown = utab.as_os_str().as_bytes();
    let dir = utab.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| BackendError::Io {
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
        .map_err(|e| BackendError::Io {
            what: format!("cannot open {}", lock_path.display()),
            source: e,
        })?;
    fs::flock(&lock, fs::FlockOperation::LockExclusive)
        .map_err(|e| io(format!("cannot lock {}", lock_path.display()), e))?;
    let mut text = match std::fs::read(utab) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(BackendError::io(format!("cannot read {}", Show(utab_shown)), e).into())
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
    // utab is libmount's, in /run: readable by all, replaced whole, and gone at shutdown, so
    // not worth an fsync.
    let dirfd = fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(format!("cannot open {}", dir.display()), e))?;
    let name = utab.file_name().unwrap_or(utab.as_os_str());
    let opts = beneath::Atomic {
        mode: 0o644,
        fsync: false,
        replace: true,
    };
    beneath::write_atomic(dirfd.as_fd(), name, &text, opts).map_err(|e| {
        BackendError::io(
            format!("cannot write {}", Show(utab_shown)),
            std::io::Error::other(e),
        )
        .into()
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
