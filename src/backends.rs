//! Turns the validated config into a backend value, for the backends this build was compiled
//! with; a config naming a backend left out of the build gets an error saying how to get it.

use std::path::Path;

use darlings_backends::{Backend, BackendError};

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

pub fn backend(config: &Config, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    match &config.root {
        RootConfig::Tmpfs { size } => tmpfs(size, ctx),
        RootConfig::Btrfs { .. } => Ok(Box::new(btrfs(config, ctx)?)),
        RootConfig::Zfs { .. } => Ok(Box::new(zfs(config, ctx)?)),
    }
}

/// `darlings init`: `None` when the backend has nothing to initialise (tmpfs).
pub fn init(config: &Config, ctx: &Ctx, dry_run: bool) -> Result<Option<Vec<String>>, BuildError> {
    Ok(backend(config, ctx)?.init(dry_run)?)
}

#[cfg(feature = "tmpfs")]
fn tmpfs(size: &Option<String>, ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    Ok(Box::new(darlings_backends::tmpfs::Tmpfs {
        root: ctx.root.to_path_buf(),
        size: size.clone(),
        sizes: ctx.sizes,
    }))
}

#[cfg(not(feature = "tmpfs"))]
fn tmpfs(_size: &Option<String>, _ctx: &Ctx) -> Result<Box<dyn Backend>, BuildError> {
    Err(BuildError::NotBuilt("tmpfs"))
}

#[cfg(feature = "btrfs")]
fn btrfs(config: &Config, ctx: &Ctx) -> Result<darlings_backends::btrfs::Btrfs, BuildError> {
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
    Ok(darlings_backends::btrfs::Btrfs {
        device: path_of(device.as_bytes()),
        subvolume: subvolume.as_bytes().to_vec(),
        blank: blank.as_bytes().to_vec(),
        old_roots: old_roots.as_bytes().to_vec(),
        keep: *keep,
        now: std::time::SystemTime::now(),
        work_dir: ctx.work_dir.to_path_buf(),
        #[cfg(feature = "failpoints")]
        failpoint: failpoint(),
    })
}

#[cfg(not(feature = "btrfs"))]
fn btrfs(_config: &Config, _ctx: &Ctx) -> Result<NotAvailable, BuildError> {
    Err(BuildError::NotBuilt("btrfs"))
}

#[cfg(feature = "zfs")]
fn zfs(config: &Config, ctx: &Ctx) -> Result<darlings_backends::zfs::Zfs, BuildError> {
    let RootConfig::Zfs {
        dataset,
        blank,
        destroy_newer_snapshots,
        keep,
    } = &config.root
    else {
        return Err(BuildError::NotBuilt("zfs"));
    };
    Ok(darlings_backends::zfs::Zfs {
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
    })
}

#[cfg(not(feature = "zfs"))]
fn zfs(_config: &Config, _ctx: &Ctx) -> Result<NotAvailable, BuildError> {
    Err(BuildError::NotBuilt("zfs"))
}

/// Stands in for a backend type this build lacks; never constructed.
#[cfg(any(not(feature = "btrfs"), not(feature = "zfs")))]
pub enum NotAvailable {}

#[cfg(any(not(feature = "btrfs"), not(feature = "zfs")))]
impl Backend for NotAvailable {
    fn name(&self) -> &'static str {
        match *self {}
    }
    fn preflight(&self) -> Result<darlings_backends::Preflight, BackendError> {
        match *self {}
    }
    fn diff(
        &self,
        _: &darlings_backends::DiffLimits,
    ) -> Result<darlings_backends::DiffOutput, BackendError> {
        match *self {}
    }
    fn rollback(
        &self,
        _: &darlings_backends::RollbackOpts,
    ) -> Result<darlings_backends::RollbackOutcome, BackendError> {
        match *self {}
    }
}
