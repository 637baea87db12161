//! The tmpfs backend: a root that is blank because it is a fresh tmpfs at every boot.
//!
//! Rollback mounts that tmpfs (or verifies the one already there); diff walks the live root
//! without leaving its mount, so bind-mounted persisted paths and other filesystems never show
//! up as state about to be lost.

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{self, AtFlags, FileType as RFileType, Mode, OFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MoveMountFlags,
};

use crate::bytes::join;
use crate::error::IoContext;
use crate::mountinfo;
use crate::{
    Backend, BackendError, Change, ChangeKind, DiffLimits, DiffOutput, FileType, Preflight,
    RollbackOpts, RollbackOutcome, Truncation, Unlisted, PATH_MAX,
};

/// `TMPFS_MAGIC` from linux/magic.h.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A tmpfs root: its rollback mounts a fresh tmpfs at `root`, and its diff walks the live root,
/// every entry of which is new since the boot (the blank is the empty directory).
pub struct Tmpfs {
    /// The directory that is (or will become) the root: `/sysroot` in an initrd, `/` live.
    pub root: PathBuf,
    /// The tmpfs `size=` option (`"2G"`, `"25%"`); the kernel default when `None`.
    pub size: Option<String>,
    /// Whether diff stats every file for its size. Without it the walk costs what
    /// `find -xdev` costs (no system call per file), and sizes are unknown.
    pub sizes: bool,
}

/// What is at the root directory right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootState {
    /// A tmpfs mounted right here, empty: blank already. `mode_ok` says whether it is
    /// `root:root 0755` (a default 1777 tmpfs root makes sshd refuse keys).
    FreshTmpfs { mode_ok: bool },
    /// A tmpfs mounted here that holds files: a live root, not something to roll back.
    UsedTmpfs,
    /// An empty directory (a mount point of some other filesystem, or none): mount a tmpfs on it.
    EmptyDir,
    /// A directory with content that is not a tmpfs: mounting over it would hide that content.
    NonEmptyDir,
}

impl Tmpfs {
    fn open_root(&self) -> Result<OwnedFd, BackendError> {
        fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let hint = if e == Errno::NOENT {
                "; create the directory, or pass the right --root"
            } else if e == Errno::NOTDIR {
                "; --root must name a directory"
            } else {
                ""
            };
            BackendError::io(
                format!("cannot open root {}{hint}", self.root.display()),
                e.into(),
            )
        })
    }

    fn state(&self, root: &OwnedFd) -> Result<RootState, BackendError> {
        let what = || format!("cannot inspect root {}", self.root.display());
        let st = fs::statx(root, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS).ctx(what)?;
        let sfs = fs::fstatfs(root).ctx(what)?;
        let mount_root = st
            .stx_attributes_mask
            .contains(fs::StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(fs::StatxAttributes::MOUNT_ROOT);
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between libc targets
        let is_tmpfs = sfs.f_type as i64 == TMPFS_MAGIC;
        let empty = if is_tmpfs && mount_root {
            // The initrd mounts the stores beneath a tmpfs root before `boot --stage late`:
            // a tmpfs holding only mount points is as blank as an empty one.
            only_mount_points(root, MOUNT_DEPTH).ctx(what)?.is_some()
        } else {
            is_empty_dir(root).ctx(what)?
        };
        Ok(match (is_tmpfs && mount_root, empty) {
            (true, true) => RootState::FreshTmpfs {
                mode_ok: u32::from(st.stx_mode) & 0o7777 == 0o755
                    && st.stx_uid == 0
                    && st.stx_gid == 0,
            },
            (true, false) => RootState::UsedTmpfs,
            (false, true) => RootState::EmptyDir,
            (false, false) => RootState::NonEmptyDir,
        })
    }

    fn mount_options(&self) -> Vec<(&'static str, String)> {
        let mut opts = vec![
            ("mode", "0755".to_string()),
            ("uid", "0".to_string()),
            ("gid", "0".to_string()),
        ];
        if let Some(size) = &self.size {
            opts.push(("size", size.clone()));
        }
        opts
    }

    fn describe_mount(&self) -> String {
        let opts: Vec<String> = self
            .mount_options()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "mount a fresh tmpfs ({}) on {}",
            opts.join(","),
            self.root.display()
        )
    }

    fn mount_fresh(&self, root: &OwnedFd) -> Result<(), BackendError> {
        let what = || format!("cannot mount a tmpfs on {}", self.root.display());
        let fsfd = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).ctx(what)?;
        for (key, value) in self.mount_options() {
            fsconfig_set_string(fsfd.as_fd(), key, value.as_str()).map_err(|e| {
                BackendError::io(format!("tmpfs rejected option {key}={value}"), e.into())
            })?;
        }
        fsconfig_create(fsfd.as_fd()).ctx(what)?;
        let mnt = fsmount(
            fsfd.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        )
        .ctx(what)?;
        // Mounting onto the directory fd rather than the path: the root we inspected is the root
        // we mount on, even if someone swaps the path in between.
        move_mount(
            mnt.as_fd(),
            "",
            root.as_fd(),
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .ctx(what)
    }
}

impl Backend for Tmpfs {
    fn name(&self) -> &'static str {
        "tmpfs"
    }

    fn rollback_at(&self) -> crate::RollbackAt {
        crate::RollbackAt::AfterRootMount
    }

    fn preflight(&self) -> Result<Preflight, BackendError> {
        let root = self.open_root()?;
        let state = self.state(&root)?;
        let shown = self.root.display();
        let line = match state {
            RootState::FreshTmpfs { mode_ok: true } => format!("root {shown} is a fresh tmpfs"),
            RootState::FreshTmpfs { mode_ok: false } => {
                format!("root {shown} is a fresh tmpfs; rollback sets it to root:root 0755")
            }
            RootState::UsedTmpfs => format!("root {shown} is a tmpfs in use (a live root)"),
            RootState::EmptyDir => {
                format!("root {shown} is an empty directory; rollback mounts a tmpfs there")
            }
            RootState::NonEmptyDir => format!("root {shown} is a directory that is not a tmpfs"),
        };
        Ok(Preflight { checks: vec![line] })
    }

    fn diff(&self, limits: &DiffLimits) -> Result<DiffOutput, BackendError> {
        let root = self.open_root()?;
        let canonical = std::fs::canonicalize(&self.root)
            .ctx(|| format!("cannot resolve root {}", self.root.display()))?;
        let skip: HashSet<Vec<u8>> =
            mountinfo::mount_points_below(&mountinfo::read()?, canonical.as_os_str().as_bytes())
                .into_iter()
                .collect();
        walk(&root, &self.root, limits, self.sizes, &skip)
    }

    fn rollback(&self, opts: &RollbackOpts) -> Result<RollbackOutcome, BackendError> {
        let root = self.open_root()?;
        let shown = self.root.display();
        match self.state(&root)? {
            RootState::FreshTmpfs { mode_ok: true } => Ok(RollbackOutcome {
                steps: vec![format!(
                    "root {shown} is already a fresh tmpfs; nothing to do"
                )],
                already_blank: true,
            }),
            RootState::FreshTmpfs { mode_ok: false } => {
                let step = format!("set the fresh tmpfs root {shown} to root:root 0755");
                if !opts.dry_run {
                    // Only ever on an empty tmpfs we just checked: nothing else can be affected.
                    fs::fchown(&root, Some(fs::Uid::ROOT), Some(fs::Gid::ROOT))
                        .ctx(|| format!("cannot chown root {shown}"))?;
                    fs::fchmod(&root, Mode::from_raw_mode(0o755))
                        .ctx(|| format!("cannot chmod root {shown}"))?;
                }
                Ok(RollbackOutcome {
                    steps: vec![step],
                    already_blank: false,
                })
            }
            RootState::EmptyDir => {
                let step = self.describe_mount();
                if !opts.dry_run {
                    self.mount_fresh(&root)?;
                }
                Ok(RollbackOutcome {
                    steps: vec![step],
                    already_blank: false,
                })
            }
            RootState::UsedTmpfs => Err(BackendError::Refused(format!(
                "root {shown} is a tmpfs that already holds files; a tmpfs root is blank at every \
                 boot, so there is nothing to roll back: run rollback on the initrd's empty root \
                 directory (/sysroot), or unmount {shown} first"
            ))),
            RootState::NonEmptyDir => Err(BackendError::Refused(format!(
                "root {shown} holds files and is not a tmpfs; mounting a tmpfs on it would hide \
                 them: point --root at an empty directory, or move its content away first"
            ))),
        }
    }
}

/// How deep `only_mount_points` looks for the mount points of stores (`/persist`,
/// `/mnt/data/store`).
const MOUNT_DEPTH: u32 = 8;

/// `Some(number of mount points)` when the directory holds nothing but mount points and
/// directories leading to them; `None` when it holds anything else (a file, an empty directory
/// that leads to no mount, anything deeper than `depth`).
fn only_mount_points(fd: &OwnedFd, depth: u32) -> rustix::io::Result<Option<u32>> {
    let dir = fs::Dir::new(reopen_dir(fd)?)?;
    let mut mounts = 0;
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if depth == 0 {
            return Ok(None);
        }
        let sub = match fs::openat(
            fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(s) => s,
            Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = fs::statx(&sub, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
        if st.stx_attributes.contains(fs::StatxAttributes::MOUNT_ROOT) {
            mounts += 1;
            continue;
        }
        match only_mount_points(&sub, depth - 1)? {
            Some(n) if n > 0 => mounts += n,
            _ => return Ok(None),
        }
    }
    Ok(Some(mounts))
}

fn is_empty_dir(fd: &OwnedFd) -> rustix::io::Result<bool> {
    let dir = fs::Dir::new(reopen_dir(fd)?)?;
    for entry in dir {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn file_type_of(ft: RFileType) -> FileType {
    match ft {
        RFileType::RegularFile => FileType::File,
        RFileType::Directory => FileType::Dir,
        RFileType::Symlink => FileType::Symlink,
        RFileType::Fifo => FileType::Fifo,
        RFileType::Socket => FileType::Socket,
        RFileType::BlockDevice => FileType::BlockDevice,
        RFileType::CharacterDevice => FileType::CharDevice,
        _ => FileType::Unknown,
    }
}

/// Walks everything on the root's own mount: against an empty blank, all of it is "added".
/// Mount points (persisted binds, /nix, the store, /proc…) are neither entered nor reported.
/// `skip` holds the mount points below the root (from mountinfo, read once): without sizes, no
/// file is stat'ed, so this is how bind-mounted files are recognised.
pub fn walk(
    root: &OwnedFd,
    shown: &Path,
    limits: &DiffLimits,
    sizes: bool,
    skip: &HashSet<Vec<u8>>,
) -> Result<DiffOutput, BackendError> {
    let root_st = fs::statx(root, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .ctx(|| format!("cannot stat root {}", shown.display()))?;
    let mut walker = Walker {
        root_mnt: root_st.stx_mnt_id,
        limits,
        start: Instant::now(),
        out: DiffOutput::default(),
        sizes,
        skip,
    };
    crate::raise_open_file_limit();
    let first = reopen_dir(root).ctx(|| format!("cannot open root {}", shown.display()))?;
    // One getdents buffer for the whole walk; each directory's names go into its frame's arena,
    // so no entry costs an allocation of its own beyond its path.
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut stack = vec![Frame::read(first, b"/".to_vec(), &mut buf)
        .ctx(|| format!("cannot read root {}", shown.display()))?];
    while let Some(frame) = stack.last_mut() {
        let Some(&(start, len, dtype)) = frame.items.get(frame.pos) else {
            stack.pop();
            continue;
        };
        frame.pos += 1;
        if let Some(cut) = walker.over_limits() {
            walker.out.truncated = Some(cut);
            break;
        }
        let name_nul = &frame.names[start..start + len];
        let Ok(name) = CStr::from_bytes_with_nul(name_nul) else {
            continue;
        };
        let child = join(&frame.path, name.to_bytes());
        if child.len() >= PATH_MAX {
            // Nothing the user could run can open it either; name the directory once.
            if !frame.cut {
                frame.cut = true;
                let at = frame.path.clone();
                walker.unlisted(at, format!("path too long (past {PATH_MAX} bytes)"));
            }
            continue;
        }
        // What the root holds must not stop its diff: what cannot be read is named, not fatal.
        match walker.visit(frame.fd.as_fd(), name, dtype, &child) {
            Ok(Some(sub)) => match Frame::read(sub, child.clone(), &mut buf) {
                Ok(sub) => stack.push(sub),
                Err(e) => walker.unlisted(child, format!("cannot read the directory: {e}")),
            },
            Ok(None) => {}
            Err(reason) => walker.unlisted(child, reason),
        }
    }
    Ok(walker.out)
}

/// One directory being walked: its fd, its path, and all its names read up front.
struct Frame {
    fd: OwnedFd,
    path: Vec<u8>,
    /// NUL-terminated names, back to back.
    names: Vec<u8>,
    items: Vec<(usize, usize, RFileType)>,
    pos: usize,
    /// The names past PATH_MAX were noted already.
    cut: bool,
}

impl Frame {
    fn read(
        fd: OwnedFd,
        path: Vec<u8>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> rustix::io::Result<Frame> {
        let mut names = Vec::new();
        let mut items = Vec::new();
        let mut dir = fs::RawDir::new(&fd, buf);
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes_with_nul();
            if name == b".\0" || name == b"..\0" {
                continue;
            }
            items.push((names.len(), name.len(), entry.file_type()));
            names.extend_from_slice(name);
        }
        Ok(Frame {
            fd,
            path,
            names,
            items,
            pos: 0,
            cut: false,
        })
    }
}

struct Walker<'a> {
    root_mnt: u64,
    limits: &'a DiffLimits,
    start: Instant,
    out: DiffOutput,
    sizes: bool,
    skip: &'a HashSet<Vec<u8>>,
}

impl Walker<'_> {
    fn unlisted(&mut self, path: Vec<u8>, reason: String) {
        self.out.unlisted.push(Unlisted { path, reason });
    }

    fn over_limits(&self) -> Option<Truncation> {
        let seen = self.out.changes.len() + self.out.unlisted.len();
        if seen >= self.limits.max_entries {
            return Some(Truncation::MaxEntries(self.limits.max_entries));
        }
        // The clock is cheap but not free: look at it every 1024 entries.
        if seen % 1024 == 0 {
            if let Some(budget) = self.limits.time_budget {
                if self.start.elapsed() > budget {
                    return Some(Truncation::TimeBudget(budget));
                }
            }
        }
        None
    }

    fn push(&mut self, path: &[u8], file_type: FileType, size: Option<u64>) {
        self.out.changes.push(Change {
            path: path.to_vec(),
            kind: ChangeKind::Added,
            file_type,
            size,
        });
    }

    /// Records one entry; returns the opened directory when the walk should descend into it.
    fn visit(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        dtype: RFileType,
        child: &[u8],
    ) -> Result<Option<OwnedFd>, String> {
        if !self.skip.is_empty() && self.skip.contains(child) {
            return Ok(None);
        }
        if dtype == RFileType::Symlink {
            // A symlink cannot be a mount point, and its size is only its target's length.
            self.push(child, FileType::Symlink, None);
            return Ok(None);
        }
        if !self.sizes && dtype != RFileType::Directory && dtype != RFileType::Unknown {
            self.push(child, file_type_of(dtype), None);
            return Ok(None);
        }
        if dtype != RFileType::Directory {
            let st = match fs::statx(
                dir,
                name,
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::TYPE | StatxFlags::SIZE | StatxFlags::MNT_ID,
            ) {
                Ok(st) => st,
                // Gone between readdir and stat: a live root changes under us; not an error.
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(format!("cannot stat it: {e}")),
            };
            if st.stx_mnt_id != self.root_mnt {
                // A bind-mounted file, e.g. /etc/machine-id from the store.
                return Ok(None);
            }
            let ft = file_type_of(RFileType::from_raw_mode(u32::from(st.stx_mode)));
            if ft != FileType::Dir {
                self.push(child, ft, (ft == FileType::File).then_some(st.stx_size));
                return Ok(None);
            }
            // d_type was DT_UNKNOWN (some filesystems never fill it in): open it as a directory.
        }
        let sub = match fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(format!("cannot open the directory: {e}")),
        };
        let st = fs::statx(&sub, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(|e| format!("cannot stat it: {e}"))?;
        if st.stx_mnt_id != self.root_mnt {
            return Ok(None);
        }
        self.push(child, FileType::Dir, None);
        Ok(Some(sub))
    }
}

/// A fresh fd for the same directory: `Dir` reads from the fd's offset, and a caller's fd must
/// not be disturbed.
fn reopen_dir(fd: &OwnedFd) -> rustix::io::Result<OwnedFd> {
    fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
