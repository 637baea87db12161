//! Shared by the privileged tests and the benchmarks: the process must be root, and moves into
//! a private mount namespace before any thread exists, so nothing it mounts can leak.

// unshare(2) needs the process single-threaded, which only the caller can promise.
#![allow(unsafe_code)]

use rustix::mount::{mount_change, MountPropagationFlags};

/// Call first thing in `main`. `what` names the caller in the error.
pub fn enter_private_mount_namespace(what: &str) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err(format!(
            "{what} mounts filesystems: run it as root (CI does); it never skips"
        ));
    }
    // SAFETY: the caller runs this before spawning any thread, which unshare(CLONE_NEWNS)
    // requires; a new mount namespace touches no memory of this process.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| format!("{what}: cannot enter a private mount namespace: {e}"))?;
    mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("{what}: cannot make / private in the new namespace: {e}"))
}
