//! Each backend's name rules (btrfs's top-level names, ZFS's dataset and snapshot names), in one
//! place for the config's validation and the backend, which both need them whether or not the
//! backend is compiled in: so the config cannot call valid what the backend refuses.

/// The longest file name Linux takes (NAME_MAX).
const NAME_MAX: usize = 255;

/// One btrfs name in the top-level subvolume (the root, the blank, the old-roots directory): the
/// exchange renames within one directory, so each is a single name: not empty, not `.` or `..`,
/// no `/`, no NUL, no newline (a name must survive mountinfo and logs), at most 255 bytes.
pub fn btrfs_name_ok(n: &[u8]) -> bool {
    !n.is_empty()
        && n != b"."
        && n != b".."
        && !n.iter().any(|&b| matches!(b, b'/' | b'\0' | b'\n'))
        && n.len() <= NAME_MAX
}

/// Names btrfs's exchange protocol cannot work with, though each is valid alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BtrfsClash {
    /// The blank is the root itself: rolling back would destroy it.
    BlankIsRoot,
    /// The blank or the old-roots directory is `<root>.new`, the name the protocol snapshots to.
    IsRootNew,
    /// The old-roots directory is the root's or the blank's name.
    OldRootsCollide,
}

/// The first clash among btrfs's names, if any.
pub fn btrfs_clash(root: &[u8], blank: &[u8], old_roots: &[u8]) -> Option<BtrfsClash> {
    let new = btrfs_root_new(root);
    if root == blank {
        Some(BtrfsClash::BlankIsRoot)
    } else if blank == new.as_slice() || old_roots == new.as_slice() {
        Some(BtrfsClash::IsRootNew)
    } else if old_roots == root || old_roots == blank {
        Some(BtrfsClash::OldRootsCollide)
    } else {
        None
    }
}

/// `<root>.new`: where the protocol snapshots the blank before the exchange.
pub fn btrfs_root_new(root: &[u8]) -> Vec<u8> {
    let mut new = root.to_vec();
    new.extend_from_slice(b".new");
    new
}

/// One component of a dataset or snapshot name: ZFS's characters (alphanumerics and `_ - . :`),
/// never `.` or `..`, and never a leading `-`, so that no name can read as an option to the zfs
/// CLI. Spaces are legal in ZFS but refused here so names never need quoting in messages or
/// scripts.
pub fn zfs_component_ok(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= NAME_MAX
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        && c != "."
        && c != ".."
        && !c.starts_with('-')
}

/// `pool/a/b`: valid components, a pool name that starts with a letter (as zpool requires), and
/// at least one component below the pool (the pool's own dataset holds every other one, the
/// store included, so it can never be the root). ZFS caps whole names at 255 bytes.
pub fn zfs_dataset_ok(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    name.len() <= 255
        && parts.len() >= 2
        && parts[0].starts_with(|c: char| c.is_ascii_alphabetic())
        && parts.iter().all(|c| zfs_component_ok(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btrfs_names_table() {
        let long = vec![b'a'; 256];
        for (name, ok) in [
            (&b"root"[..], true),
            (b"root-blank", true),
            (b"old roots.1", true),
            (b"", false),
            (b".", false),
            (b"..", false),
            (b"a/b", false),
            (b"/root", false),
            (b"a\0b", false),
            (b"a\nb", false),
            (&long[..255], true),
            (&long, false),
        ] {
            assert_eq!(
                btrfs_name_ok(name),
                ok,
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
        type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], Option<BtrfsClash>);
        let cases: [Case; 6] = [
            (b"root", b"root-blank", b"old-roots", None),
            (
                b"root",
                b"root",
                b"old-roots",
                Some(BtrfsClash::BlankIsRoot),
            ),
            (
                b"root",
                b"root.new",
                b"old-roots",
                Some(BtrfsClash::IsRootNew),
            ),
            (
                b"root",
                b"root-blank",
                b"root.new",
                Some(BtrfsClash::IsRootNew),
            ),
            (
                b"root",
                b"root-blank",
                b"root",
                Some(BtrfsClash::OldRootsCollide),
            ),
            (
                b"root",
                b"root-blank",
                b"root-blank",
                Some(BtrfsClash::OldRootsCollide),
            ),
        ];
        for (root, blank, old, want) in cases {
            assert_eq!(btrfs_clash(root, blank, old), want);
        }
    }

    #[test]
    fn zfs_names_table() {
        for (name, ok) in [
            ("rpool/local/root", true),
            ("tank/r-1.x:y_z", true),
            ("rpool", false),
            ("rpool/", false),
            ("rpool//root", false),
            ("rpool/../root", false),
            ("rpool/./root", false),
            ("-o/x", false),
            ("rpool/-x", false),
            ("1pool/root", false),
            ("rpool/ro ot", false),
            ("rpool/root@blank", false),
        ] {
            assert_eq!(zfs_dataset_ok(name), ok, "{name}");
        }
        assert!(zfs_component_ok("blank"));
        assert!(!zfs_component_ok("-blank"));
        assert!(!zfs_component_ok(".."));
    }
}
