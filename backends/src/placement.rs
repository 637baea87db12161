//! Where a store may live: the one rule `check`, `apply`, `boot` and the report writer apply
//! before anything is bound from a store or written into it.
//!
//! A store must be on a filesystem the rollback does not erase, which is not the same as "a
//! mount of its own": a bind of the root's own filesystem (`mount --bind R/persist R/persist`,
//! or of `R` itself) is a mount, and is erased with the root; a plain directory on another
//! filesystem (`/nix/persist` on a `/nix` the initrd mounts) is not a mount, and is safe. So:
//!
//! - not on the root's device (`st_dev`): a plain directory of the root, a bind of any part of
//!   it, the same tmpfs;
//! - Btrfs, where every subvolume has its own `st_dev`: on the same filesystem (UUID), the
//!   store's subvolume must not be the root's subvolume nor inside it (a subvolume created inside
//!   the root on a running system is deleted by the next rollback as a nested subvolume), nor
//!   the blank, an old root or the root's replacement, or inside them; ancestry is read by
//!   subvolume and parent ID, never from a path;
//! - ZFS: the store's dataset (mountinfo's source) must not be the root dataset or below it.
//!
//! The same message everywhere, naming the store and what to do.

use std::collections::HashMap;
#[cfg(feature = "btrfs")]
use std::os::fd::AsFd;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{self, AtFlags, StatxFlags};

use crate::bytes::Show;
use crate::error::IoContext;
use crate::{mountinfo, BackendError};

/// `BTRFS_SUPER_MAGIC` and `ZFS_SUPER_MAGIC`.
const BTRFS_MAGIC: i64 = 0x9123_683E;
const ZFS_MAGIC: i64 = 0x2FC1_2FC1;
/// The inode number of every Btrfs subvolume's root directory.
const SUBVOL_ROOT_INO: u64 = 256;

/// The top-level names of a Btrfs rollback, from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtrfsNames {
    /// The root subvolume (its replacement is `<root>.new`).
    pub root: Vec<u8>,
    /// The blank snapshot the rollback copies the root from.
    pub blank: Vec<u8>,
    /// The directory holding old roots, which retention deletes.
    pub old_roots: Vec<u8>,
}

/// What the configured rollback erases besides the filesystem the root is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// The btrfs rollback's top-level names; `None` when the root is not on btrfs.
    pub btrfs: Option<BtrfsNames>,
    /// The root dataset (`rpool/local/root`): it, its snapshots and its children.
    pub zfs_dataset: Option<Vec<u8>>,
}

/// Why a store cannot be used: it would go with the root, or its place could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "store {store} is on the root's filesystem ({why}): what it holds would be erased with the root at the next rollback; mount a filesystem the rollback does not touch there (another partition, a btrfs subvolume beside the root subvolume, a zfs dataset outside the root dataset), or point the store at a directory on one"
    )]
    /// The store is on something the rollback erases.
    OnRoot {
        /// The store's path, for the message.
        store: String,
        /// What it is on, e.g. `zfs dataset rpool/local/root is the root dataset`.
        why: String,
    },
    /// Finding out where the store is failed.
    #[error(transparent)]
    Io(#[from] BackendError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Btrfs,
    Zfs,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Facts {
    dev: (u32, u32),
    mnt_id: u64,
    ino: u64,
    mount_root: bool,
    kind: Kind,
}

fn facts(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<Facts, BackendError> {
    let st = fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS | StatxFlags::MNT_ID,
    )
    .ctx(|| format!("cannot stat {}", Show(shown)))?;
    let sfs = fs::fstatfs(fd).ctx(|| format!("cannot statfs {}", Show(shown)))?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libc targets
    let kind = match sfs.f_type as i64 {
        BTRFS_MAGIC => Kind::Btrfs,
        ZFS_MAGIC => Kind::Zfs,
        _ => Kind::Other,
    };
    Ok(Facts {
        dev: (st.stx_dev_major, st.stx_dev_minor),
        mnt_id: st.stx_mnt_id,
        ino: st.stx_ino,
        mount_root: st
            .stx_attributes_mask
            .contains(fs::StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(fs::StatxAttributes::MOUNT_ROOT),
        kind,
    })
}

/// `fd` again, opened for reading: ioctls refuse `O_PATH` descriptors.
#[cfg(feature = "btrfs")]
fn readable(fd: BorrowedFd<'_>, shown: &[u8]) -> Result<OwnedFd, BackendError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsRawFd;
    fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .ctx(|| format!("cannot reopen {} to ask its filesystem", Show(shown)))
}

/// The store rule for one root, with what it has learnt cached by device.
pub struct Placement {
    // Only the Btrfs rule asks the root's filesystem (for its UUID and subvolume).
    #[cfg_attr(not(feature = "btrfs"), allow(dead_code))]
    root_fd: OwnedFd,
    root: Facts,
    #[cfg_attr(not(feature = "btrfs"), allow(dead_code))]
    root_shown: Vec<u8>,
    erased: Erased,
    /// The root's Btrfs filesystem UUID and subvolume, when the root is on Btrfs.
    #[cfg_attr(not(feature = "btrfs"), allow(dead_code))]
    root_btrfs: Option<([u8; 16], u64)>,
    mounts: Option<Vec<mountinfo::Mount>>,
    /// Per device: `None` when stores there are fine, else why not.
    verdicts: HashMap<(u32, u32), Option<String>>,
}

impl Placement {
    /// `root` is the directory the rollback erases (`--root`); `shown` its path in messages.
    pub fn new(
        root: BorrowedFd<'_>,
        shown: &[u8],
        erased: Erased,
    ) -> Result<Placement, BackendError> {
        let root_facts = facts(root, shown)?;
        let root_fd = rustix::io::fcntl_dupfd_cloexec(root, 0)
            .ctx(|| format!("cannot duplicate the descriptor of {}", Show(shown)))?;
        Ok(Placement {
            root_fd,
            root: root_facts,
            root_shown: shown.to_vec(),
            erased,
            root_btrfs: None,
            mounts: None,
            verdicts: HashMap::new(),
        })
    }

    fn mounts(&mut self) -> Result<&[mountinfo::Mount], BackendError> {
        if self.mounts.is_none() {
            self.mounts = Some(mountinfo::read()?);
        }
        Ok(self.mounts.as_deref().unwrap_or_default())
    }

    fn source_of(&mut self, mnt_id: u64) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .mounts()?
            .iter()
            .find(|m| m.id == mnt_id)
            .map(|m| m.source.clone()))
    }

    /// Refuses `store` (a descriptor of a store, or of a source inside one that is on another
    /// device than its store) when the rollback would erase it. `shown` names it.
    pub fn check(&mut self, store: BorrowedFd<'_>, shown: &[u8]) -> Result<(), PlacementError> {
        let f = facts(store, shown)?;
        let why = match self.verdicts.get(&f.dev) {
            Some(v) => v.clone(),
            None => {
                let v = self.decide(store, &f, shown)?;
                self.verdicts.insert(f.dev, v.clone());
                v
            }
        };
        match why {
            None => Ok(()),
            Some(why) => Err(PlacementError::OnRoot {
                store: Show(shown).to_string(),
                why,
            }),
        }
    }

    fn decide(
        &mut self,
        store: BorrowedFd<'_>,
        f: &Facts,
        shown: &[u8],
    ) -> Result<Option<String>, BackendError> {
        let r = self.root;
        if f.dev == r.dev {
            let (ma, mi) = r.dev;
            return Ok(Some(if f.mnt_id != r.mnt_id {
                format!("a bind mount of the root's own filesystem, device {ma}:{mi}")
            } else {
                format!("a directory of the root's own filesystem, device {ma}:{mi}, with nothing mounted on it")
            }));
        }
        match (r.kind, f.kind) {
            (Kind::Btrfs, Kind::Btrfs) => self.decide_btrfs(store, shown),
            (_, Kind::Zfs) => {
                let Some(ds) = self.source_of(f.mnt_id)? else {
                    return Err(BackendError::Refused(format!(
                        "store {} is on zfs but its mount (id {}) is not in /proc/self/mountinfo; mount its dataset again",
                        Show(shown),
                        f.mnt_id
                    )));
                };
                let root_ds = if r.kind == Kind::Zfs {
                    self.source_of(r.mnt_id)?
                } else {
                    None
                };
                Ok(zfs_why(
                    &ds,
                    root_ds.as_deref(),
                    self.erased.zfs_dataset.as_deref(),
                ))
            }
            _ => Ok(None),
        }
    }

    #[cfg(feature = "btrfs")]
    fn decide_btrfs(
        &mut self,
        store: BorrowedFd<'_>,
        shown: &[u8],
    ) -> Result<Option<String>, BackendError> {
        use crate::btrfs::ancestry;
        let (root_uuid, root_subvol) = match self.root_btrfs {
            Some(v) => v,
            None => {
                let fd = readable(self.root_fd.as_fd(), &self.root_shown)?;
                let rs = Show(&self.root_shown).to_string();
                let v = (
                    ancestry::fs_uuid(fd.as_fd())
                        .ctx(|| format!("cannot read the btrfs filesystem of root {rs}"))?,
                    ancestry::subvol_id(fd.as_fd())
                        .ctx(|| format!("cannot read the btrfs subvolume of root {rs}"))?,
                );
                self.root_btrfs = Some(v);
                v
            }
        };
        let fd = readable(store, shown)?;
        let uuid = ancestry::fs_uuid(fd.as_fd())
            .ctx(|| format!("cannot read the btrfs filesystem of {}", Show(shown)))?;
        if uuid != root_uuid {
            return Ok(None);
        }
        let id = ancestry::subvol_id(fd.as_fd())
            .ctx(|| format!("cannot read the btrfs subvolume of {}", Show(shown)))?;
        let chain = ancestry::ancestry(fd.as_fd(), id)?;
        Ok(btrfs_why(root_subvol, &chain, self.erased.btrfs.as_ref()))
    }

    #[cfg(not(feature = "btrfs"))]
    fn decide_btrfs(
        &mut self,
        _store: BorrowedFd<'_>,
        _shown: &[u8],
    ) -> Result<Option<String>, BackendError> {
        Ok(Some(
            "both on btrfs, and this darlings is built without btrfs support, so it cannot tell whether the store is inside the root subvolume".into(),
        ))
    }

    /// Whether the root is the top of a filesystem as mounted: a mount of a whole filesystem
    /// (mountinfo's root `/`) or of a Btrfs subvolume's own top directory. Only then can no
    /// directory be renamed out of it while darlings works: rename(2) never crosses a mount
    /// (EXDEV), Btrfs never renames across subvolumes, and everything else of that filesystem
    /// is beneath it. A plain directory, or a bind of one, can lose directories to a rename.
    pub fn root_is_filesystem_top(&mut self) -> Result<bool, BackendError> {
        let r = self.root;
        if !r.mount_root {
            return Ok(false);
        }
        if r.kind == Kind::Btrfs && r.ino == SUBVOL_ROOT_INO {
            return Ok(true);
        }
        Ok(self
            .mounts()?
            .iter()
            .any(|m| m.id == r.mnt_id && m.root == b"/"))
    }
}

/// The ZFS half of the rule, for a store whose mount's source is `source`: what the zfs
/// backend's preflight asks of the stores' live mount points before a rollback, with the same
/// refusal as everywhere else.
pub fn zfs_refusal(store: &[u8], source: &[u8], root_dataset: &[u8]) -> Option<PlacementError> {
    zfs_why(source, None, Some(root_dataset)).map(|why| PlacementError::OnRoot {
        store: Show(store).to_string(),
        why,
    })
}

/// `ds` is `parent`, one of its snapshots, or below it.
fn zfs_below(ds: &[u8], parent: &[u8]) -> bool {
    ds == parent
        || ds
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with(b"/") || rest.starts_with(b"@"))
}

/// Why a store on zfs dataset `ds` is erased with the root, if it is.
fn zfs_why(ds: &[u8], root_ds: Option<&[u8]>, config_ds: Option<&[u8]>) -> Option<String> {
    [root_ds, config_ds].into_iter().flatten().find_map(|p| {
        zfs_below(ds, p).then(|| {
            if ds == p {
                format!("zfs dataset {} is the root dataset", Show(ds))
            } else {
                format!(
                    "zfs dataset {} is below the root dataset {}",
                    Show(ds),
                    Show(p)
                )
            }
        })
    })
}

/// Why a store whose subvolume has `chain` (innermost first, up to the top level) is erased
/// with the root, if it is: inside the root's subvolume (by ID), or inside a subvolume the
/// rollback replaces or deletes (by the config's top-level names).
#[cfg(feature = "btrfs")]
fn btrfs_why(
    root_subvol: u64,
    chain: &[crate::btrfs::ancestry::Ancestor],
    names: Option<&BtrfsNames>,
) -> Option<String> {
    let first = chain.first()?;
    let this = format!("btrfs subvolume {} (id {})", Show(&first.path), first.id);
    if let Some(a) = chain.iter().find(|a| a.id == root_subvol) {
        return Some(if a.id == first.id {
            format!("{this} is the root's own subvolume")
        } else {
            format!(
                "{this} is inside the root subvolume {} (id {}), and the next rollback deletes it as a nested subvolume",
                Show(&a.path),
                a.id
            )
        });
    }
    let n = names?;
    let mut new = n.root.clone();
    new.extend_from_slice(b".new");
    for a in chain {
        let what = if a.path == n.root {
            "the root subvolume, which the rollback replaces"
        } else if a.path == new {
            "the root's replacement, which the rollback renames"
        } else if a.path == n.blank {
            "the blank snapshot, which every rollback copies"
        } else if a
            .path
            .strip_prefix(n.old_roots.as_slice())
            .is_some_and(|r| r.starts_with(b"/"))
        {
            "an old root, which retention deletes"
        } else {
            continue;
        };
        return Some(if a.id == first.id {
            format!("{this} is {what}")
        } else {
            format!("{this} is inside {} (id {}), {what}", Show(&a.path), a.id)
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zfs_store_datasets() {
        let root = Some(&b"rpool/local/root"[..]);
        for (ds, refused) in [
            (&b"rpool/safe/persist"[..], false),
            (b"rpool/local/rootx", false),
            (b"rpool/local", false),
            (b"rpool/local/root", true),
            (b"rpool/local/root/persist", true),
            (b"rpool/local/root@blank", true),
        ] {
            assert_eq!(zfs_why(ds, root, None).is_some(), refused, "{ds:?}");
            assert_eq!(zfs_why(ds, None, root).is_some(), refused, "{ds:?}");
        }
        assert_eq!(
            zfs_why(b"rpool/local/root/p", None, root).as_deref(),
            Some("zfs dataset rpool/local/root/p is below the root dataset rpool/local/root")
        );
        assert_eq!(zfs_why(b"rpool/local/root", None, None), None);
        assert!(zfs_refusal(b"/persist", b"/dev/vda1", b"rpool/local/root").is_none());
        assert_eq!(
            zfs_refusal(b"/mnt/store", b"tank/root/store", b"tank/root")
                .map(|e| e.to_string())
                .unwrap_or_default(),
            "store /mnt/store is on the root's filesystem (zfs dataset tank/root/store is below the root dataset tank/root): what it holds would be erased with the root at the next rollback; mount a filesystem the rollback does not touch there (another partition, a btrfs subvolume beside the root subvolume, a zfs dataset outside the root dataset), or point the store at a directory on one"
        );
    }

    #[cfg(feature = "btrfs")]
    #[test]
    fn btrfs_store_subvolumes() {
        use crate::btrfs::ancestry::Ancestor;
        let a = |id: u64, p: &str| Ancestor {
            id,
            path: p.as_bytes().to_vec(),
        };
        let names = BtrfsNames {
            root: b"root".to_vec(),
            blank: b"root-blank".to_vec(),
            old_roots: b"old-roots".to_vec(),
        };
        let why = |chain: &[Ancestor]| btrfs_why(256, chain, Some(&names));
        // Beside the root: kept.
        assert_eq!(why(&[a(257, "persist"), a(5, "")]), None);
        assert_eq!(why(&[a(5, "")]), None);
        assert_eq!(
            why(&[a(300, "safe/persist"), a(299, "safe"), a(5, "")]),
            None
        );
        // Inside the root, by ID, at any depth.
        assert_eq!(
            why(&[a(258, "root/persist"), a(256, "root"), a(5, "")]).as_deref(),
            Some("btrfs subvolume root/persist (id 258) is inside the root subvolume root (id 256), and the next rollback deletes it as a nested subvolume")
        );
        assert!(why(&[
            a(259, "root/a/b"),
            a(258, "root/a"),
            a(256, "root"),
            a(5, "")
        ])
        .is_some());
        // By name, when the root mounted at --root is another subvolume.
        let other = |chain: &[Ancestor]| btrfs_why(999, chain, Some(&names));
        assert!(other(&[a(258, "root/persist"), a(256, "root"), a(5, "")]).is_some());
        assert!(
            other(&[a(260, "root-blank/x"), a(257, "root-blank"), a(5, "")])
                .is_some_and(|w| w.contains("the blank snapshot"))
        );
        assert!(other(&[a(261, "old-roots/2026-11-22T02:30:00Z"), a(5, "")])
            .is_some_and(|w| w.contains("retention deletes")));
        assert!(other(&[a(262, "root.new"), a(5, "")]).is_some());
        assert_eq!(other(&[a(263, "old-rootsx/1"), a(5, "")]), None);
        assert_eq!(other(&[a(264, "rootx"), a(5, "")]), None);
    }
}
