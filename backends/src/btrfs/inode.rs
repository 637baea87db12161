//! Every name of one inode in a subvolume, from the kernel: a changed inode with several hard
//! links reaches the send stream under one of its names only, and the diff must report them all.
//!
//! `BTRFS_IOC_INO_PATHS` answers in one call, but into at most 4096 bytes: an inode with many
//! names, or long ones, overflows it ("elem_missed"). Then the inode's back references are read
//! with `BTRFS_IOC_TREE_SEARCH_V2` (INODE_REF and INODE_EXTREF items: the parent directory and the
//! name) and each parent directory's path is built the same way, up to the subvolume's root
//! directory. Both need CAP_SYS_ADMIN, which a diff has (it mounts the top level).

// ioctls without a safe wrapper (BTRFS_IOC_INO_PATHS, TREE_SEARCH_V2).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The inode number of a subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
const SUBVOL_ROOT_INO: u64 = 256;
const INODE_REF_KEY: u32 = 12;
const INODE_EXTREF_KEY: u32 = 13;
/// What the kernel copies out of an INO_PATHS answer at most (fs/btrfs/ioctl.c caps `size`).
const INO_PATHS_SIZE: usize = 4096;

/// `struct btrfs_ioctl_ino_path_args` (linux/btrfs.h).
#[repr(C)]
struct InoPathArgs {
    inum: u64,
    size: u64,
    reserved: [u64; 4],
    fspath: u64,
}
const _: () = assert!(std::mem::size_of::<InoPathArgs>() == 56);

/// `_IOWR(BTRFS_IOCTL_MAGIC, 35, struct btrfs_ioctl_ino_path_args)`.
const IOC_INO_PATHS: u32 =
    (3 << 30) | ((std::mem::size_of::<InoPathArgs>() as u32) << 16) | (0x94 << 8) | 35;

/// `struct btrfs_ioctl_search_key` (linux/btrfs.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: u64,
    unused2: u64,
    unused3: u64,
    unused4: u64,
}
const _: () = assert!(std::mem::size_of::<SearchKey>() == 104);

/// `struct btrfs_ioctl_search_args_v2`'s head: the key and the size of the results buffer that
/// follows it. Version 2, because version 1's 3,992 bytes cannot hold one INODE_REF item of an
/// inode with a few hundred names in one directory (it returns the item empty).
#[repr(C)]
struct SearchHeadV2 {
    key: SearchKey,
    buf_size: u64,
}
const _: () = assert!(std::mem::size_of::<SearchHeadV2>() == 112);

/// `_IOWR(BTRFS_IOCTL_MAGIC, 17, struct btrfs_ioctl_search_args_v2)`.
const IOC_TREE_SEARCH_V2: u32 =
    (3 << 30) | ((std::mem::size_of::<SearchHeadV2>() as u32) << 16) | (0x94 << 8) | 17;

/// Results per call: more than the largest item (a node is at most 64 KiB).
const SEARCH_BUF: usize = 1 << 17;

/// `struct btrfs_ioctl_search_header`: transid, objectid, offset, type, len.
const SEARCH_HEADER: usize = 32;

/// Every name of inode `ino` in the subvolume `subvol` is open in, as absolute paths in it
/// (`/etc/a`), sorted.
pub(crate) fn names(subvol: BorrowedFd<'_>, ino: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut out = match ino_paths(subvol, ino)? {
        Some(paths) => paths,
        None => names_from_refs(subvol, ino, &mut HashMap::new())?,
    };
    out.sort();
    out.dedup();
    Ok(out)
}

/// The kernel's answer, or `None` when names did not fit in its 4096 bytes.
fn ino_paths(subvol: BorrowedFd<'_>, ino: u64) -> io::Result<Option<Vec<Vec<u8>>>> {
    // u64 words, so the container's offsets are read aligned.
    let mut buf = vec![0u64; INO_PATHS_SIZE / 8];
    let mut args = InoPathArgs {
        inum: ino,
        size: INO_PATHS_SIZE as u64,
        reserved: [0; 4],
        fspath: buf.as_mut_ptr() as u64,
    };
    // SAFETY: `args` matches the kernel's struct (size asserted above) and lives across the
    // call; `fspath` points at a live buffer of `size` bytes that the kernel fills.
    let rc = unsafe { libc::ioctl(subvol.as_raw_fd(), IOC_INO_PATHS as _, &mut args) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let word = |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let (elem_cnt, elem_missed) = (word(8) as usize, word(12));
    if elem_missed > 0 {
        return Ok(None);
    }
    // `val[i]` is the offset of a NUL-terminated path from `val` itself (16 bytes in).
    let val = 16usize;
    let mut out = Vec::with_capacity(elem_cnt);
    for i in 0..elem_cnt {
        let at = val + 8 * i;
        let off = bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
            .ok_or_else(|| malformed("an INO_PATHS answer ends early"))?;
        let start = val
            .checked_add(usize::try_from(off).map_err(|_| malformed("a bad INO_PATHS offset"))?)
            .filter(|&s| s < bytes.len())
            .ok_or_else(|| malformed("an INO_PATHS offset outside the answer"))?;
        let len = bytes[start..]
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("an INO_PATHS path without its NUL"))?;
        out.push(absolute(&bytes[start..start + len]));
    }
    Ok(Some(out))
}

fn absolute(rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1);
    p.push(b'/');
    p.extend_from_slice(rel.strip_prefix(b"/").unwrap_or(rel));
    p
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Every (parent directory, name) of `ino`, from its INODE_REF and INODE_EXTREF items.
fn refs(subvol: BorrowedFd<'_>, ino: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut key = SearchKey {
        // 0: the tree of the subvolume the descriptor is in.
        tree_id: 0,
        min_objectid: ino,
        max_objectid: ino,
        min_offset: 0,
        max_offset: u64::MAX,
        min_transid: 0,
        max_transid: u64::MAX,
        min_type: INODE_REF_KEY,
        max_type: INODE_EXTREF_KEY,
        nr_items: 0,
        unused: 0,
        unused1: 0,
        unused2: 0,
        unused3: 0,
        unused4: 0,
    };
    let head = std::mem::size_of::<SearchHeadV2>();
    // u64 words: the head's alignment, and the kernel writes 8-byte fields into the results.
    let mut words = vec![0u64; (head + SEARCH_BUF) / 8];
    loop {
        key.nr_items = u32::MAX;
        let args = SearchHeadV2 {
            key,
            buf_size: SEARCH_BUF as u64,
        };
        // SAFETY: `words` is 8-byte aligned and longer than the head, which is plain data; the
        // kernel reads the head and writes at most `buf_size` bytes of results right after it,
        // all inside `words`, which lives across the call.
        let rc = unsafe {
            std::ptr::write(words.as_mut_ptr().cast::<SearchHeadV2>(), args);
            libc::ioctl(
                subvol.as_raw_fd(),
                IOC_TREE_SEARCH_V2 as _,
                words.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        // The kernel writes back how many items it returned into the key.
        let n = u32::from_ne_bytes(bytes[7 * 8 + 8..7 * 8 + 12].try_into().unwrap_or([0; 4]));
        if n == 0 {
            return Ok(out);
        }
        let buf = &bytes[head..];
        let mut pos = 0usize;
        let mut last: Option<(u32, u64)> = None;
        for _ in 0..n {
            let head = buf
                .get(pos..pos + SEARCH_HEADER)
                .ok_or_else(|| malformed("a tree search answer ends early"))?;
            // The header is in the machine's byte order, the item as stored: little-endian.
            let ne64 =
                |b: &[u8], i: usize| u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
            let le64 =
                |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
            let objectid = ne64(head, 8);
            let offset = ne64(head, 16);
            let kind = u32::from_ne_bytes(head[24..28].try_into().unwrap_or([0; 4]));
            let len = u32::from_ne_bytes(head[28..32].try_into().unwrap_or([0; 4])) as usize;
            pos += SEARCH_HEADER;
            let item = buf
                .get(pos..pos + len)
                .ok_or_else(|| malformed("a tree search item ends early"))?;
            pos += len;
            last = Some((kind, offset));
            if objectid != ino {
                continue;
            }
            match kind {
                // Entries of { le64 index; le16 name_len; name }, parent in the key's offset.
                INODE_REF_KEY => {
                    let mut i = 0;
                    while i + 10 <= item.len() {
                        let nl = u16::from_le_bytes([item[i + 8], item[i + 9]]) as usize;
                        let name = item
                            .get(i + 10..i + 10 + nl)
                            .ok_or_else(|| malformed("an inode ref ends early"))?;
                        out.push((offset, name.to_vec()));
                        i += 10 + nl;
                    }
                }
                // Entries of { le64 parent; le64 index; le16 name_len; name }.
                INODE_EXTREF_KEY => {
                    let mut i = 0;
                    while i + 18 <= item.len() {
                        let parent = le64(item, i);
                        let nl = u16::from_le_bytes([item[i + 16], item[i + 17]]) as usize;
                        let name = item
                            .get(i + 18..i + 18 + nl)
                            .ok_or_else(|| malformed("an inode extref ends early"))?;
                        out.push((parent, name.to_vec()));
                        i += 18 + nl;
                    }
                }
                _ => {}
            }
        }
        // Go on after the last key seen (type, then offset, within this one inode).
        match last {
            Some((kind, offset)) if offset < u64::MAX => {
                key.min_type = kind;
                key.min_offset = offset + 1;
            }
            Some((kind, _)) if kind < INODE_EXTREF_KEY => {
                key.min_type = kind + 1;
                key.min_offset = 0;
            }
            _ => return Ok(out),
        }
    }
}

/// Paths of `ino` built from back references; `dirs` caches the paths of directories.
fn names_from_refs(
    subvol: BorrowedFd<'_>,
    ino: u64,
    dirs: &mut HashMap<u64, Vec<u8>>,
) -> io::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for (parent, name) in refs(subvol, ino)? {
        let mut p = dir_path(subvol, parent, dirs)?;
        if p.len() > 1 {
            p.push(b'/');
        }
        p.extend_from_slice(&name);
        out.push(p);
    }
    Ok(out)
}

/// The path of directory `ino` (a directory has one name), `/` for the subvolume's root.
fn dir_path(
    subvol: BorrowedFd<'_>,
    ino: u64,
    dirs: &mut HashMap<u64, Vec<u8>>,
) -> io::Result<Vec<u8>> {
    // Up the tree to a known directory, then the names back down.
    let mut chain: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut at = ino;
    let base = loop {
        if at == SUBVOL_ROOT_INO {
            break b"/".to_vec();
        }
        if let Some(p) = dirs.get(&at) {
            break p.clone();
        }
        // A cycle cannot exist in a consistent tree; bound the walk all the same.
        if chain.len() > 1 << 16 {
            return Err(malformed(
                "a directory chain that never reaches the subvolume root",
            ));
        }
        let (parent, name) = refs(subvol, at)?
            .into_iter()
            .next()
            .ok_or_else(|| malformed("a directory without a back reference"))?;
        chain.push((at, name));
        at = parent;
    };
    let mut path = base;
    for (dir, name) in chain.into_iter().rev() {
        if path.len() > 1 {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        dirs.insert(dir, path.clone());
    }
    Ok(path)
}
