//! The top level (subvolid=5) mounted privately for the length of one command, and the subvolume
//! facts and deletions rollback, preflight and init build on: every subvolume is selected by ID
//! and parent ID, and re-checked by ID right before it is deleted.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libbtrfsutil::{IterateSubvolume, FS_TREE_OBJECTID};
use rustix::fs::{self, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
};

use crate::bytes::Show;
use crate::error::IoContext;
use crate::BackendError;

/// `BTRFS_SUPER_MAGIC` from linux/magic.h.
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOL_ROOT_INO: u64 = 256;
/// `BTRFS_ROOT_SUBVOL_RDONLY` in the root item's flags.
const ROOT_SUBVOL_RDONLY: u64 = 1;

/// What darlings needs to know about one subvolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subvol {
    pub id: u64,
    /// 0 for orphans (deleted, not yet cleaned up).
    pub parent_id: u64,
    /// Inode of the directory holding it, inside the parent subvolume.
    pub dir_id: u64,
    /// Path relative to the top level, as the kernel resolves it now.
    pub path: Vec<u8>,
    pub uuid: [u8; 16],
    /// The UUID of the subvolume it is a snapshot of.
    pub parent_uuid: Option<[u8; 16]>,
    /// The transaction that created it: later subvolumes have larger ones.
    pub otransid: u64,
    pub read_only: bool,
}

impl Subvol {
    fn from_info(path: Vec<u8>, info: &libbtrfsutil::SubvolumeInfo) -> Subvol {
        Subvol {
            id: info.id(),
            parent_id: info.parent_id().map_or(0, |p| p.get()),
            dir_id: info.dir_id().map_or(0, |d| d.get()),
            path,
            uuid: *info.uuid().as_bytes(),
            parent_uuid: info.parent_uuid().map(|u| *u.as_bytes()),
            otransid: info.otransid(),
            read_only: info.flags() & ROOT_SUBVOL_RDONLY != 0,
        }
    }
}

pub(crate) fn btrfs_err(e: libbtrfsutil::Error) -> std::io::Error {
    std::io::Error::new(e.os_error().kind(), format!("{e} ({})", e.os_error()))
}

/// The top level of `device`, mounted at a fresh directory under the work directory. Dropping it
/// unmounts and removes the directory; `close` does the same and reports failures.
pub(crate) struct Top {
    dir: PathBuf,
    fd: Option<OwnedFd>,
    mounted: bool,
    pub device: PathBuf,
}

impl Top {
    /// Checks the device, mounts its top level (`read_only` for looking only) and checks that it
    /// is btrfs. Nothing is left behind on error.
    pub fn mount(device: &Path, work_dir: &Path, read_only: bool) -> Result<Top, BackendError> {
        let dev = device.display();
        match fs::stat(device) {
            Err(Errno::NOENT) => {
                return Err(BackendError::Refused(format!(
                    "device {dev} not found; check [root] device in the config, or start darlings \
                     after the device has appeared"
                )))
            }
            Err(e) => {
                return Err(BackendError::io(
                    format!("cannot stat device {dev}"),
                    e.into(),
                ))
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::BlockDevice => {
                return Err(BackendError::Refused(format!(
                    "device {dev} is not a block device; point [root] device at the btrfs \
                     partition (e.g. /dev/disk/by-label/nixos)"
                )))
            }
            Ok(_) => {}
        }
        std::fs::create_dir_all(work_dir)
            .ctx(|| format!("cannot create work directory {}", work_dir.display()))?;
        let dir = fresh_dir(work_dir)?;
        let mut top = Top {
            dir,
            fd: None,
            mounted: false,
            device: device.to_path_buf(),
        };
        let mut flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        flags |= MountFlags::NOATIME;
        if read_only {
            flags |= MountFlags::RDONLY;
        }
        match mount(device, &top.dir, "btrfs", flags, c"subvolid=5") {
            Ok(()) => top.mounted = true,
            Err(e) => {
                let hint = if e == Errno::INVAL || e == Errno::NOENT {
                    "; is it a btrfs filesystem? check [root] device, or create one with mkfs.btrfs"
                } else {
                    ""
                };
                return Err(BackendError::io(
                    format!(
                        "cannot mount the top level (subvolid=5) of {dev} at {}{hint}",
                        top.dir.display()
                    ),
                    e.into(),
                ));
            }
        }
        // Private, so the mount never shows up in (or is held by) another mount namespace.
        mount_change(&top.dir, MountPropagationFlags::PRIVATE)
            .ctx(|| format!("cannot make the mount at {} private", top.dir.display()))?;
        let fd = fs::open(
            &top.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .ctx(|| format!("cannot open the top level of {dev}"))?;
        let sfs = fs::fstatfs(&fd).ctx(|| format!("cannot statfs the top level of {dev}"))?;
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between libc targets
        if sfs.f_type as i64 != BTRFS_SUPER_MAGIC {
            return Err(BackendError::Refused(format!(
                "the top level of {dev} is not btrfs; check [root] device and [root] backend"
            )));
        }
        top.fd = Some(fd);
        Ok(top)
    }

    pub fn fd(&self) -> Result<BorrowedFd<'_>, BackendError> {
        self.fd
            .as_ref()
            .map(|f| f.as_fd())
            .ok_or_else(|| BackendError::Refused("the top level is not open".into()))
    }

    /// `rel` (relative to the top level) as a path libbtrfsutil can take.
    pub fn path(&self, rel: &[u8]) -> PathBuf {
        self.dir.join(OsStr::from_bytes(rel))
    }

    /// Unmounts (lazily if something still holds it) and removes the directory.
    pub fn close(mut self) -> Result<(), BackendError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), BackendError> {
        self.fd = None;
        if self.mounted {
            if let Err(e) = unmount(&self.dir, UnmountFlags::empty()) {
                if e != Errno::BUSY {
                    return Err(BackendError::io(
                        format!("cannot unmount the top level at {}", self.dir.display()),
                        e.into(),
                    ));
                }
                unmount(&self.dir, UnmountFlags::DETACH)
                    .ctx(|| format!("cannot detach the top level at {}", self.dir.display()))?;
            }
            self.mounted = false;
        }
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BackendError::io(
                format!("cannot remove {}", self.dir.display()),
                e,
            )),
        }
    }

    /// The subvolume at `name` in the top level, `None` if nothing is there; anything else at
    /// that name (a directory, a file) is refused, naming it.
    pub fn subvol_at(&self, name: &[u8]) -> Result<Option<Subvol>, BackendError> {
        let dev = self.device.display();
        let st = match fs::statat(self.fd()?, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(BackendError::io(
                    format!("cannot stat {} in the top level of {dev}", Show(name)),
                    e.into(),
                ))
            }
            Ok(st) => st,
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory
            || st.st_ino != SUBVOL_ROOT_INO
        {
            return Err(BackendError::Refused(format!(
                "{} in the top level of {dev} is not a subvolume; move it out of the way or fix \
                 the name in [root]",
                Show(name)
            )));
        }
        let info = libbtrfsutil::subvolume_info(self.path(name))
            .map_err(btrfs_err)
            .ctx(|| format!("cannot read subvolume {} on {dev}", Show(name)))?;
        Ok(Some(Subvol::from_info(name.to_vec(), &info)))
    }

    /// Every subvolume of the filesystem, found by ID (a tree search), never by listing a path.
    pub fn all_subvols(&self) -> Result<Vec<Subvol>, BackendError> {
        let dev = self.device.display();
        let what = || format!("cannot list the subvolumes of {dev}");
        let iter = IterateSubvolume::new(&self.dir)
            .top(FS_TREE_OBJECTID)
            .iter_with_info()
            .map_err(btrfs_err)
            .ctx(what)?;
        let mut out = Vec::new();
        for item in iter {
            let (path, info) = item.map_err(btrfs_err).ctx(what)?;
            out.push(Subvol::from_info(
                path.as_os_str().as_bytes().to_vec(),
                &info,
            ));
        }
        Ok(out)
    }

    /// Whether the directory `rel` holds anything, and its first few names (sorted).
    pub fn first_names(
        &self,
        rel: &[u8],
        max: usize,
    ) -> Result<(usize, Vec<Vec<u8>>), BackendError> {
        let what = || format!("cannot read {} on {}", Show(rel), self.device.display());
        let fd = fs::openat(
            self.fd()?,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .ctx(what)?;
        let mut names = Vec::new();
        for entry in fs::Dir::new(fd).ctx(what)? {
            let name = entry.ctx(what)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort();
        let n = names.len();
        names.truncate(max);
        Ok((n, names))
    }

    /// The inode of `rel` if it is a directory (not a symlink), `None` if absent.
    pub fn dir_ino(&self, rel: &[u8]) -> Result<Option<u64>, BackendError> {
        match fs::statat(self.fd()?, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(BackendError::io(
                format!("cannot stat {} on {}", Show(rel), self.device.display()),
                e.into(),
            )),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(Some(st.st_ino))
            }
            Ok(_) => Err(BackendError::Refused(format!(
                "{} in the top level of {} is not a directory; move it away or set another \
                 old-roots name",
                Show(rel),
                self.device.display()
            ))),
        }
    }

    pub fn exists(&self, rel: &[u8]) -> Result<bool, BackendError> {
        match fs::statat(self.fd()?, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(BackendError::io(
                format!("cannot stat {} on {}", Show(rel), self.device.display()),
                e.into(),
            )),
        }
    }

    /// Deletes subvolume `id`, after checking, by ID, that it is still the subvolume the plan
    /// chose: its parent is `parent_id` and (for top-level targets) it sits at `expect_path`.
    pub fn delete_checked(
        &self,
        id: u64,
        parent_id: u64,
        expect_path: Option<&[u8]>,
    ) -> Result<(), BackendError> {
        let dev = self.device.display();
        let rel = libbtrfsutil::subvolume_path_with_id(&self.dir, id)
            .map_err(btrfs_err)
            .ctx(|| format!("cannot find subvolume id {id} on {dev}"))?;
        let rel = rel.as_os_str().as_bytes().to_vec();
        let info = libbtrfsutil::subvolume_info(self.path(&rel))
            .map_err(btrfs_err)
            .ctx(|| format!("cannot read subvolume {} on {dev}", Show(&rel)))?;
        let now = Subvol::from_info(rel.clone(), &info);
        let path_ok = expect_path.is_none_or(|p| p == rel.as_slice());
        if now.id != id || now.parent_id != parent_id || !path_ok {
            return Err(BackendError::Refused(format!(
                "refusing to delete subvolume {} (id {}) on {dev}: expected id {id} under parent \
                 {parent_id}{}; something changed it during the rollback, run darlings again",
                Show(&rel),
                now.id,
                expect_path.map_or(String::new(), |p| format!(" at {}", Show(p)))
            )));
        }
        libbtrfsutil::delete_subvolume(self.path(&rel))
            .map_err(btrfs_err)
            .ctx(|| format!("cannot delete subvolume {} (id {id}) on {dev}", Show(&rel)))
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!("{e}");
        }
    }
}

/// A new, empty, owner-only directory under `work_dir` that no earlier run left behind.
fn fresh_dir(work_dir: &Path) -> Result<PathBuf, BackendError> {
    let pid = std::process::id();
    for n in 0u32..1000 {
        let dir = work_dir.join(format!(".darlings-btrfs-top-{pid}-{n}"));
        match fs::mkdir(&dir, Mode::from_raw_mode(0o700)) {
            Ok(()) => return Ok(dir),
            Err(Errno::EXIST) => continue,
            Err(e) => {
                return Err(BackendError::io(
                    format!("cannot create a mount directory in {}", work_dir.display()),
                    e.into(),
                ))
            }
        }
    }
    Err(BackendError::Refused(format!(
        "{} holds 1,000 leftover .darlings-btrfs-top-* directories; remove them",
        work_dir.display()
    )))
}

/// The subvolumes nested (at any depth) inside `target`, deepest first, each with its parent's
/// ID. Descent is proven by walking parent IDs up to `target`; a subvolume whose chain does not
/// reach it is not in the list, whatever its path says.
pub(crate) fn nested_deepest_first(all: &[Subvol], target: u64) -> Vec<(Subvol, usize)> {
    let parent: HashMap<u64, u64> = all.iter().map(|s| (s.id, s.parent_id)).collect();
    let mut out = Vec::new();
    for s in all {
        let mut depth = 0usize;
        let mut cur = s.id;
        let mut found = false;
        // The chain is bounded by the number of subvolumes; a longer one would be a cycle.
        for _ in 0..=all.len() {
            let Some(&p) = parent.get(&cur) else { break };
            depth += 1;
            if p == target {
                found = true;
                break;
            }
            if p == FS_TREE_OBJECTID || p == 0 {
                break;
            }
            cur = p;
        }
        if found && s.id != target {
            out.push((s.clone(), depth));
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.id.cmp(&a.0.id)));
    out
}

/// A name from the config, checked to be one plain component of the top level.
pub(crate) fn check_name(what: &str, name: &[u8]) -> Result<CString, BackendError> {
    // The rule the config validates with, so a valid config is never refused here.
    let bad = !crate::names::btrfs_name_ok(name);
    match CString::new(name) {
        Ok(c) if !bad => Ok(c),
        _ => Err(BackendError::Refused(format!(
            "{what} name {:?} must be a single name in the top level (no '/', not empty, at \
             most 255 bytes); fix [root] in the config",
            Show(name).to_string()
        ))),
    }
}

#[cfg(test)]
impl Subvol {
    /// A listing's entry for table tests: writable, no UUIDs, its generation its id.
    pub(crate) fn for_test(id: u64, parent_id: u64, dir_id: u64, path: &str) -> Subvol {
        Subvol {
            id,
            parent_id,
            dir_id,
            path: path.as_bytes().to_vec(),
            uuid: [0; 16],
            parent_uuid: None,
            otransid: id,
            read_only: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(id: u64, parent_id: u64, path: &str) -> Subvol {
        Subvol::for_test(id, parent_id, 256, path)
    }

    #[test]
    fn nested_by_parent_id_deepest_first() {
        let all = [
            sv(256, 5, "root"),
            sv(257, 5, "root-blank"),
            sv(258, 256, "root/var/lib/machines"),
            sv(259, 258, "root/var/lib/machines/inner"),
            sv(260, 257, "root-blank/x"),
            // Its path says "root/…" but its parent is not root: never selected.
            sv(261, 5, "root/looks-nested"),
            sv(262, 256, "root/srv"),
        ];
        let got: Vec<(u64, usize)> = nested_deepest_first(&all, 256)
            .iter()
            .map(|(s, d)| (s.id, *d))
            .collect();
        assert_eq!(got, vec![(259, 2), (262, 1), (258, 1)]);
    }

    #[test]
    fn names_are_single_components() {
        assert!(check_name("root subvolume", b"root").is_ok());
        assert!(check_name("root subvolume", b"@root").is_ok());
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(check_name("root subvolume", bad).is_err(), "{bad:?}");
        }
    }
}
