//! The loop-device filesystem the privileged tests and the benchmarks build on: a sparse image
//! in a temporary directory, mkfs of a given type, a loop device over it and its top level
//! mounted; everything it mounted is unmounted and the device detached on drop, also after a
//! failed mount or a test that fails half-way. Every step that fails says which command did.
//!
//! Included with `#[path = "../support/loopdev.rs"] mod loopdev;` at the crate root of each
//! test or bench binary (tests/support/differential.rs reaches it as `crate::loopdev`).
#![allow(dead_code)] // each binary uses its own subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` with `args` (no shell); its stdout, or an error naming the command line, its exit
/// status and its stderr.
pub fn run<S: AsRef<OsStr>>(cmd: &str, args: &[S]) -> Result<String, String> {
    let line = || {
        let mut s = cmd.to_string();
        for a in args {
            s.push(' ');
            s.push_str(&a.as_ref().to_string_lossy());
        }
        s
    };
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", line()))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}: {}",
            line(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with `sh -c`; its stdout, or an error naming the command, its exit status and its
/// stderr.
pub fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A sparse image file of `size` (truncate's syntax: `300M`, `2G`) at `path`.
pub fn sparse_image(path: &Path, size: &str) -> Result<(), String> {
    run(
        "truncate",
        &[OsStr::new("-s"), OsStr::new(size), path.as_os_str()],
    )
    .map(drop)
}

/// `mkfs.<fs_type> <options> <target>`.
pub fn mkfs(fs_type: &str, options: &[&str], target: &Path) -> Result<(), String> {
    let mut args: Vec<&OsStr> = options.iter().map(OsStr::new).collect();
    args.push(target.as_os_str());
    run(&format!("mkfs.{fs_type}"), &args).map(drop)
}

/// A loop device attached to an image file; detached on drop.
pub struct Loop {
    dev: String,
}

impl Loop {
    /// `losetup -f --show <img>`.
    pub fn attach(img: &Path) -> Result<Loop, String> {
        let dev = run(
            "losetup",
            &[OsStr::new("-f"), OsStr::new("--show"), img.as_os_str()],
        )?
        .trim()
        .to_string();
        if dev.is_empty() {
            return Err(format!(
                "losetup -f --show {}: no device named",
                img.display()
            ));
        }
        Ok(Loop { dev })
    }

    /// The device's path, `/dev/loopN`; empty once detached.
    pub fn dev(&self) -> &str {
        &self.dev
    }

    /// `losetup -d`, now and failing loudly (drop only tries).
    pub fn detach(&mut self) -> Result<(), String> {
        if !self.dev.is_empty() {
            run("losetup", &["-d", &self.dev])?;
            self.dev.clear();
        }
        Ok(())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if !self.dev.is_empty() {
            let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
        }
    }
}

/// An image on a loop device with its top level mounted at `top` (`<base>/top-loopN`).
pub struct Fs {
    // Fields drop in order, after `Drop::drop` has unmounted everything: the device is detached
    // before the directory with its image is removed.
    lo: Loop,
    _dir: Option<tempfile::TempDir>,
    /// The directory the image is in, for the caller's own files beside it.
    pub base: PathBuf,
    pub img: PathBuf,
    pub top: PathBuf,
    /// Further mounts (of this device or on top of it), unmounted lazily and in reverse on drop,
    /// before the top level.
    pub mounts: Vec<PathBuf>,
    top_mounted: bool,
}

impl Fs {
    /// A Btrfs of `size` made with `mkfs.btrfs -q`, its top level (`subvolid=5`) mounted: what
    /// every Btrfs test and bench starts from.
    pub fn btrfs(size: &str) -> Result<Fs, String> {
        Fs::new(size, "btrfs", &["-q"], "subvolid=5")
    }

    /// A fresh temporary directory with an image of `size` in it, made with
    /// `mkfs.<fs_type> <mkfs_options>`, attached and mounted with `-o <mount_options>`.
    pub fn new(
        size: &str,
        fs_type: &str,
        mkfs_options: &[&str],
        mount_options: &str,
    ) -> Result<Fs, String> {
        let dir =
            tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let base = dir.path().to_path_buf();
        let img = base.join("img");
        sparse_image(&img, size)?;
        mkfs(fs_type, mkfs_options, &img)?;
        Fs::attach(Some(dir), base, img, mount_options)
    }

    /// Attaches an existing image `img` and mounts it at `<base>/top-loopN` with `-o
    /// <mount_options>`; `dir`, when given, is removed on drop after everything is unmounted.
    pub fn attach(
        dir: Option<tempfile::TempDir>,
        base: PathBuf,
        img: PathBuf,
        mount_options: &str,
    ) -> Result<Fs, String> {
        let lo = Loop::attach(&img)?;
        let top = base.join(format!("top-{}", lo.dev().trim_start_matches("/dev/")));
        // Built before the mount, so a failed mount still detaches the device on drop.
        let mut fs = Fs {
            lo,
            _dir: dir,
            base,
            img,
            top,
            mounts: Vec::new(),
            top_mounted: false,
        };
        std::fs::create_dir_all(&fs.top)
            .map_err(|e| format!("cannot make {}: {e}", fs.top.display()))?;
        run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new(mount_options),
                OsStr::new(fs.dev()),
                fs.top.as_os_str(),
            ],
        )?;
        fs.top_mounted = true;
        Ok(fs)
    }

    /// The loop device, `/dev/loopN`; empty after `detach`.
    pub fn dev(&self) -> &str {
        self.lo.dev()
    }

    /// `top` joined with `rel`.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.top.join(rel)
    }

    /// Mounts the device with `-o <options>` at `at` (which must exist), unmounted on drop.
    pub fn mount(&mut self, options: &str, at: &Path) -> Result<(), String> {
        run(
            "mount",
            &[
                OsStr::new("-o"),
                OsStr::new(options),
                OsStr::new(self.lo.dev()),
                at.as_os_str(),
            ],
        )?;
        self.mounts.push(at.to_path_buf());
        Ok(())
    }

    /// Mounts the Btrfs subvolume `subvol` at `at`, as an initrd or fstab does, unmounted on
    /// drop.
    pub fn mount_subvol(&mut self, subvol: &str, at: &Path) -> Result<(), String> {
        self.mount(&format!("subvol={subvol}"), at)
    }

    /// Unmounts the top level now (everything it wrote is committed to the image).
    pub fn unmount_top(&mut self) -> Result<(), String> {
        if self.top_mounted {
            run("umount", &[&self.top])?;
            self.top_mounted = false;
        }
        Ok(())
    }

    /// Unmounts the top level and detaches the device now, failing loudly.
    pub fn detach(&mut self) -> Result<(), String> {
        self.unmount_top()?;
        self.lo.detach()
    }
}

impl Drop for Fs {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        if self.top_mounted {
            // A plain unmount first, so the device is idle when it is detached; lazily when
            // something still holds it.
            let plain = Command::new("umount").arg(&self.top).output();
            if !plain.is_ok_and(|o| o.status.success()) {
                let _ = Command::new("umount").arg("-l").arg(&self.top).status();
            }
        }
    }
}
