//! The registry of backends: the validated config into a backend value, for the backends this
//! build was compiled with; a config naming a backend left out of the build gets an error saying
//! how to get it. Everything else src/ asks a backend goes through the `Backend` trait.

use std::path::Path;

use darlings_backends::{Backend, BackendError};

#[cfg(test)]
pub mod fake;

use crate::config::{Config, RootConfig};

/// What the backends need beyond the config.
pub struct Ctx<'a> {
    /// The root directory (tmpfs: the one rolled back or walked).
    pub root: &'a Path,
    /// Whether a diff should stat files for their sizes.
    pub sizes: bool,
    /// Where btrfs and zfs mount what they work on, in fresh private directories.
    pub work_dir: &'a Path,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("this darlings was built without the {0} backend; rebuild it with `cargo build --release --features {0}`")]
    NotBuilt(&'static str),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

#[cfg(any(feature = "btrfs", feature = "zfs"))]
fn path_of(bytes: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// For crash tests of whole systems (the VM tier): stop after the named protocol step.
#[cfg(all(feature = "failpoints", any(feature = "btrfs", feature = "zfs")))]
fn failpoint() -> Option<darlings_backends::Failpoint> {
    crate::failpoint::active()
}

/// One line per backend: the name `[root] backend` gives and the constructor from the validated
/// config. Adding a backend is its folder in the backends crate, its `RootConfig` variant and one
/// line here (ARCHITECTURE.md, "Adding a backend").
struct Entry {
    name: &'static str,
    build: Build,
}

/// A backend's constructor from the validated config.
type Build = fn(&Config, &Ctx) -> Result<Box<dyn Backend>, BuildError>;

const REGISTRY: &[Entry] = &[
    Entry {
        name: "tmpfs",
        build: tmpfs,
    },
    Entry {
        name: "btrfs",
        build: btrfs,
    },
    Entry {
        name: "zfs",
        build: zfs,
    },
    #[cfg(test)]
    Entry {
        name: "fake",
        build: fake::build,
    },
];

/// Whether `name` is a backend darlings has (built into this binary or not).
pub fn known(name: &str) -> bool {
    REGISTRY.iter().any(|e| e.name == name)
}

pub fn backend(config: &Config, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    let name = config.root.backend_name();
    let entry = REGISTRY
        .iter()
        .find(|e| e.name == name)
        .ok_or(BuildError::NotBuilt(name))?;
    (entry.build)(config, ctx)
}

/// `darlings init`: `None` when the backend has nothing to initialise (tmpfs).
pub fn init(config: &Config, ctx: &Ctx, dry_run: bool) -> Result<Option<Vec<String>>, BuildError> {
    Ok(backend(config, ctx)?.init(dry_run)?)
}

#[cfg(feature = "tmpfs")]
fn tmpfs(config: &Config, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    let RootConfig::Tmpfs { size } = &config.root else {
        return Err(BuildError::NotBuilt("tmpfs"));
    };
    Ok(Box::new(darlings_backends::tmpfs::Tmpfs {
        root: ctx.root.to_path_buf(),
        size: size.clone(),
        sizes: ctx.sizes,
    }))
}

#[cfg(not(feature = "tmpfs"))]
fn tmpfs(_config: &Config, _ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    Err(BuildError::NotBuilt("tmpfs"))
}

#[cfg(feature = "btrfs")]
fn btrfs(config: &Config, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    let RootConfig::Btrfs {
        device,
        subvolume,
        blank,
        old_roots,
        keep,
    } = &config.root
    else {
        return Err(BuildError::NotBuilt("btrfs"));
    };
    Ok(Box::new(darlings_backends::btrfs::Btrfs {
        device: path_of(device.as_bytes()),
        subvolume: subvolume.as_bytes().to_vec(),
        blank: blank.as_bytes().to_vec(),
        old_roots: old_roots.as_bytes().to_vec(),
        keep: *keep,
        now: std::time::SystemTime::now(),
        work_dir: ctx.work_dir.to_path_buf(),
        #[cfg(feature = "failpoints")]
        failpoint: failpoint(),
    }))
}

#[cfg(not(feature = "btrfs"))]
fn btrfs(_config: &Config, _ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    Err(BuildError::NotBuilt("btrfs"))
}

#[cfg(feature = "zfs")]
fn zfs(config: &Config, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    let RootConfig::Zfs {
        dataset,
        blank,
        destroy_newer_snapshots,
        keep,
    } = &config.root
    else {
        return Err(BuildError::NotBuilt("zfs"));
    };
    Ok(Box::new(darlings_backends::zfs::Zfs {
        dataset: dataset.clone(),
        blank: blank.clone(),
        destroy_newer_snapshots: *destroy_newer_snapshots,
        keep: *keep,
        now: std::time::SystemTime::now(),
        work_dir: ctx.work_dir.to_path_buf(),
        stores: config
            .stores
            .iter()
            .map(|s| path_of(s.path.as_bytes()))
            .collect(),
        #[cfg(feature = "failpoints")]
        failpoint: failpoint(),
    }))
}

#[cfg(not(feature = "zfs"))]
fn zfs(_config: &Config, _ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    Err(BuildError::NotBuilt("zfs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_backend_has_one_registry_line() {
        for name in ["tmpfs", "btrfs", "zfs", "fake"] {
            assert_eq!(
                REGISTRY.iter().filter(|e| e.name == name).count(),
                1,
                "{name}"
            );
        }
        assert!(!known("ext4"));
        assert_eq!(REGISTRY.len(), 4);
    }
}
