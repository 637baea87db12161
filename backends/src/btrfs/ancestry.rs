//! Which Btrfs filesystem and subvolume an open file is on, and that subvolume's ancestry up to
//! the top level: what the store rule (`crate::placement`) needs to tell a subvolume beside the
//! root (kept) from one nested inside it (deleted by the next rollback as a nested subvolume).
//!
//! Every subvolume has its own `st_dev`, so devices alone cannot tell; the filesystem's UUID
//! (`BTRFS_IOC_FS_INFO`) and subvolume IDs with their parent IDs can.

// ioctls without a safe wrapper (BTRFS_IOC_*): the unsafe is the call and its buffer.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use libbtrfsutil::FS_TREE_OBJECTID;

use super::subvol::btrfs_err;
use crate::error::IoContext;
use crate::BackendError;

/// `struct btrfs_ioctl_fs_info_args` (linux/btrfs.h): 1,024 bytes.
#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    nodesize: u32,
    sectorsize: u32,
    clone_alignment: u32,
    csum_type: u16,
    csum_size: u16,
    flags: u64,
    generation: u64,
    metadata_uuid: [u8; 16],
    reserved: [u8; 944],
}

/// `struct btrfs_ioctl_ino_lookup_args`: 4,096 bytes.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// `_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`.
const IOC_FS_INFO: libc::c_ulong = 0x8400_941f;
/// `_IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)`.
const IOC_INO_LOOKUP: libc::c_ulong = 0xd000_9412;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const FIRST_FREE_OBJECTID: u64 = 256;

/// The path through which libbtrfsutil (which takes paths, not descriptors) reaches `fd`'s file
/// without resolving any name again.
fn proc_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The UUID of the Btrfs filesystem `fd` is on (the same for all its subvolumes). `fd` must be
/// opened for reading (ioctls refuse `O_PATH` descriptors).
pub fn fs_uuid(fd: BorrowedFd<'_>) -> std::io::Result<[u8; 16]> {
    // SAFETY: all-zero bytes are a valid value of this plain-integer struct.
    let mut args: FsInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: BTRFS_IOC_FS_INFO writes at most size_of::<FsInfoArgs>() (1,024, encoded in the
    // request number) bytes into the struct we own; the descriptor is borrowed and open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_FS_INFO as _, &mut args) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(args.fsid)
}

/// The ID of the subvolume holding `fd`'s file. Unprivileged: the kernel answers this lookup
/// (tree 0, the subvolume root's objectid) for anyone.
pub fn subvol_id(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    // SAFETY: all-zero bytes are a valid value of this plain-integer struct.
    let mut args: InoLookupArgs = unsafe { std::mem::zeroed() };
    args.objectid = FIRST_FREE_OBJECTID;
    // SAFETY: BTRFS_IOC_INO_LOOKUP reads and writes the 4,096-byte struct we own, as the request
    // number encodes; the descriptor is borrowed and open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), IOC_INO_LOOKUP as _, &mut args) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(args.treeid)
}

/// One subvolume on the way from a file's subvolume up to the top level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    pub id: u64,
    /// Its path relative to the top level, as the kernel's back references give it (empty for
    /// the top level itself).
    pub path: Vec<u8>,
}

/// The subvolume `id` (on the filesystem `fd` is on) and each subvolume holding it, innermost
/// first, ending with the top level (ID 5). Found by parent IDs from the kernel's tree, never
/// by reading a path. Needs `CAP_SYS_ADMIN` (a tree search).
pub fn ancestry(fd: BorrowedFd<'_>, id: u64) -> Result<Vec<Ancestor>, BackendError> {
    let at = proc_path(fd);
    let mut out = Vec::new();
    let mut cur = id;
    // Subvolume trees are finite and acyclic; the bound only guards against a corrupt one.
    for _ in 0..4096 {
        if cur == FS_TREE_OBJECTID {
            out.push(Ancestor {
                id: cur,
                path: Vec::new(),
            });
            return Ok(out);
        }
        let info = libbtrfsutil::subvolume_info_with_id(&at, cur)
            .map_err(btrfs_err)
            .ctx(|| {
                format!("cannot read btrfs subvolume id {cur} (darlings needs root for this)")
            })?;
        let path = libbtrfsutil::subvolume_path_with_id(&at, cur)
            .map_err(btrfs_err)
            .ctx(|| format!("cannot find the path of btrfs subvolume id {cur}"))?;
        out.push(Ancestor {
            id: cur,
            path: path.as_os_str().as_bytes().to_vec(),
        });
        match info.parent_id() {
            Some(p) => cur = p.get(),
            // An orphan (deleted, not yet cleaned up): nothing holds it any more.
            None => return Ok(out),
        }
    }
    Err(BackendError::Malformed(format!(
        "btrfs subvolume id {id} has more than 4,096 ancestors; check the filesystem (btrfs check)"
    )))
}
