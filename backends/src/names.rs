//! The ZFS name rule, in one place for the config's validation and the backend, which both need
//! it whether or not the zfs backend is compiled in.

/// One component of a dataset or snapshot name: ZFS's characters (alphanumerics and `_ - . :`),
/// never `.` or `..`, and never a leading `-`, so that no name can read as an option to the zfs
/// CLI. Spaces are legal in ZFS but refused here so names never need quoting in messages or
/// scripts.
pub fn zfs_component_ok(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 255
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
