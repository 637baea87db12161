//! Extended attributes of an open file, whatever its type: the diff compares them on entries
//! it cannot open for reading (symlinks, sockets, device nodes on a `nodev` mount), so it opens
//! everything `O_PATH` and reads the attributes through `/proc/self/fd/N`, which resolves to the
//! inode itself (a symlink's own attributes, not its target's).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

/// Every extended attribute (name, value), sorted by name.
pub(crate) fn all(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let names = grow(|buf| rustix::fs::listxattr(path.as_str(), buf))?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = grow(|buf| rustix::fs::getxattr(path.as_str(), OsStr::from_bytes(name), buf));
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between the two calls: a live root changes under a diff.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls `f` with a buffer big enough for its answer (ERANGE: try a bigger one).
fn grow(mut f: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match f(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 8;
                buf.resize(len, 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
