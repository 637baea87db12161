//! The store rule's inputs from the config, and `darlings check`'s look at every store. The
//! rule itself is `darlings_backends::placement`, one function that apply, the report writer
//! and boot all go through.

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::bytes::Show;
use darlings_backends::placement::{BtrfsNames, Erased, Placement, PlacementError};
use rustix::fs::{self, Mode, OFlags};
use rustix::io::Errno;

use crate::config::{Config, RootConfig};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error(transparent)]
    Io(#[from] darlings_backends::BackendError),
}

/// What the configured rollback erases, by name, besides the filesystem the root is on.
pub fn erased(root: &RootConfig) -> Erased {
    match root {
        RootConfig::Tmpfs { .. } => Erased::default(),
        RootConfig::Btrfs {
            subvolume,
            blank,
            old_roots,
            ..
        } => Erased {
            btrfs: Some(BtrfsNames {
                root: subvolume.as_bytes().to_vec(),
                blank: blank.as_bytes().to_vec(),
                old_roots: old_roots.as_bytes().to_vec(),
            }),
            zfs_dataset: None,
        },
        RootConfig::Zfs { dataset, .. } => Erased {
            btrfs: None,
            zfs_dataset: Some(dataset.as_bytes().to_vec()),
        },
        // The fake's root is a plain directory on whatever filesystem holds it.
        #[cfg(test)]
        RootConfig::Fake { .. } => Erased::default(),
    }
}

/// Checks every store of `config` beneath `root` against the store rule; one line per store
/// that passes, every refusal at once otherwise.
pub fn check(config: &Config, root: &Path) -> Result<Vec<String>, StoreError> {
    let root_shown = root.as_os_str().as_bytes();
    let rootfd = fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        StoreError::Refused(vec![format!(
            "cannot open root {}: {e}; pass an existing directory as --root",
            Show(root_shown)
        )])
    })?;
    let mut rule = Placement::new(rootfd.as_fd(), root_shown, erased(&config.root))?;
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for s in &config.stores {
        let mut shown = root_shown.strip_suffix(b"/").unwrap_or(root_shown).to_vec();
        shown.extend_from_slice(s.path.as_bytes());
        let fd = match darlings_backends::beneath::open(
            &rootfd,
            s.path.relative(),
            OFlags::RDONLY | OFlags::DIRECTORY,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                refused.push(format!(
                    "store {} does not exist; mount the persistent filesystem there",
                    Show(&shown)
                ));
                continue;
            }
            Err(Errno::LOOP) | Err(Errno::XDEV) => {
                refused.push(format!(
                    "store {} is or passes through a symlink; darlings never follows symlinks in a root or store: replace it with a real directory",
                    Show(&shown)
                ));
                continue;
            }
            Err(e) => {
                refused.push(format!("cannot open store {}: {e}", Show(&shown)));
                continue;
            }
        };
        match rule.check(fd.as_fd(), &shown) {
            Ok(()) => ok.push(format!(
                "store {} is on a filesystem the rollback does not erase",
                Show(&shown)
            )),
            Err(e @ PlacementError::OnRoot { .. }) => refused.push(e.to_string()),
            Err(PlacementError::Io(e)) => return Err(e.into()),
        }
    }
    if refused.is_empty() {
        Ok(ok)
    } else {
        Err(StoreError::Refused(refused))
    }
}
