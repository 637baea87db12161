//! One darlings at a time: the commands that change the root or the stores (`boot`,
//! `rollback`, `init`, `apply`) hold an exclusive `flock` on `<work-dir>/lock` while they run,
//! and write their pid and command into it, so that a second one says who is working instead
//! of tripping over the first one's half-done state (two rollbacks racing on one device failed
//! with raw errors and could leave a stray `root.new`). The kernel drops the lock when the
//! process ends, however it ends, so a crash never leaves it held.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

pub const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another darlings ({holder}) holds {}; wait for it to finish, then run this again (two at once would act on the same root)", .path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot take the lock {}; pass a writable --work-dir", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Takes the lock of `work_dir` for `command` (e.g. "rollback"), or says who holds it.
pub fn acquire(work_dir: &Path, command: &str) -> Result<Lock, LockError> {
    let path = work_dir.join(LOCK);
    let err = |source: std::io::Error| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(work_dir).map_err(err)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(err)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            return Err(LockError::Held {
                holder: holder(&mut file),
                path,
            })
        }
        Err(e) => return Err(err(e.into())),
    }
    let me = format!("pid {}, darlings {command}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(err)?;
    Ok(Lock { _file: file })
}

/// What the holder wrote: it writes right after it locks, so an empty file is read again
/// for a moment before giving up on naming it.
fn holder(file: &mut std::fs::File) -> String {
    for _ in 0..20 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let text = text.trim();
            if !text.is_empty() {
                return text.to_string();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    "a process that has not written its pid yet".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_told_the_holders_pid() {
        let d = tempfile::tempdir().unwrap();
        let held = acquire(d.path(), "rollback").unwrap();
        let text = std::fs::read_to_string(d.path().join(LOCK)).unwrap();
        assert_eq!(
            text,
            format!("pid {}, darlings rollback\n", std::process::id())
        );
        // flock locks belong to the open file: a second open in this process conflicts too.
        let e = acquire(d.path(), "boot").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "another darlings (pid {}, darlings rollback) holds {}; wait for it to finish, then run this again (two at once would act on the same root)",
                std::process::id(),
                d.path().join(LOCK).display()
            )
        );
        drop(held);
        let again = acquire(d.path(), "boot").unwrap();
        drop(again);
        assert_eq!(
            std::fs::read_to_string(d.path().join(LOCK)).unwrap(),
            format!("pid {}, darlings boot\n", std::process::id())
        );
    }
}
