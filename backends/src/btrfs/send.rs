//! `BTRFS_IOC_SEND` into a pipe on a helper thread, so the diff parses the stream while the kernel
//! produces it and can abandon it early: closing the read end makes the ioctl fail with EPIPE.

// the send ioctl and the pipe it writes into.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;

/// Writes become UPDATE_EXTENT (path, offset, length): no file data is read or sent.
pub(crate) const FLAG_NO_FILE_DATA: u64 = 0x1;

/// `struct btrfs_ioctl_send_args` (linux/btrfs.h).
#[repr(C)]
struct SendArgs {
    send_fd: i64,
    clone_sources_count: u64,
    clone_sources: *mut u64,
    parent_root: u64,
    flags: u64,
    version: u32,
    reserved: [u8; 28],
}

// The ioctl number encodes the struct size: a layout slip would send a different request.
const _: () = assert!(std::mem::size_of::<SendArgs>() == 72);

/// `_IOW(BTRFS_IOCTL_MAGIC, 38, struct btrfs_ioctl_send_args)`.
const IOC_SEND: u32 =
    (1 << 30) | ((std::mem::size_of::<SendArgs>() as u32) << 16) | (0x94 << 8) | 38;

/// Bigger pipe, fewer wake-ups: the kernel emits many small commands.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A send running on its own thread; `reader` yields the stream.
pub(crate) struct Send {
    reader: Option<File>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Starts sending the read-only subvolume open at `source` against the read-only subvolume
/// `parent_root` (also the only clone source).
pub(crate) fn start(source: OwnedFd, parent_root: u64, flags: u64) -> io::Result<Send> {
    let (read_end, write_end) = pipe()?;
    let thread = std::thread::Builder::new()
        .name("btrfs-send".into())
        .spawn(move || run(source, write_end, parent_root, flags))?;
    Ok(Send {
        reader: Some(File::from(read_end)),
        thread: Some(thread),
    })
}

impl Send {
    /// The stream; end of file once the ioctl has returned.
    pub(crate) fn reader(&mut self) -> Option<&mut File> {
        self.reader.as_mut()
    }

    /// Closes the read end and waits for the ioctl. With `abandoned`, the EPIPE that closing
    /// the pipe early causes is the expected outcome, not an error.
    pub(crate) fn finish(mut self, abandoned: bool) -> io::Result<()> {
        match self.stop() {
            Err(e) if abandoned && e.raw_os_error() == Some(libc::EPIPE) => Ok(()),
            other => other,
        }
    }

    fn stop(&mut self) -> io::Result<()> {
        drop(self.reader.take());
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the send thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Send {
    /// An early return must not leave the ioctl running: the snapshot it reads could then be
    /// neither deleted nor unmounted.
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own and pass with its length 2.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; failure only leaves the default size.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    Ok((r, w))
}

fn run(source: OwnedFd, write_end: OwnedFd, parent_root: u64, flags: u64) -> io::Result<()> {
    // The kernel raises SIGPIPE at the writing thread when the reader goes away. Blocked here,
    // it stays pending on this thread and dies with it, whatever the process's disposition.
    // SAFETY: the sigset is initialised by sigemptyset before use; pthread_sigmask changes only
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut clone_sources = [parent_root];
    let mut args = SendArgs {
        send_fd: i64::from(write_end.as_raw_fd()),
        clone_sources_count: 1,
        clone_sources: clone_sources.as_mut_ptr(),
        parent_root,
        flags,
        // Without BTRFS_SEND_FLAG_VERSION the kernel sends protocol version 1.
        version: 0,
        reserved: [0; 28],
    };
    // SAFETY: `args` matches the kernel's struct (size asserted above), lives across the call,
    // and its `clone_sources` points at a live array of `clone_sources_count` ids. Both
    // descriptors are owned by this function and stay open until it returns.
    let rc = unsafe { libc::ioctl(source.as_raw_fd(), IOC_SEND as _, &mut args) };
    let result = if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // The reader sees end of file only once the write end is closed.
    drop(write_end);
    drop(source);
    result
}
