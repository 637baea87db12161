//! I/O beneath a root or a store: the one way darlings opens a path there, and its one atomic
//! writer, so that every caller gets the same refusals (symlinks, magic links, `..` out of the
//! tree) and no descriptor leaks into a program darlings runs.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Every path is resolved beneath the directory it starts from, through no symlink (the final
/// component included: it fails with `ELOOP`) and no `/proc` magic link.
pub const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` beneath `dir` with `flags` (plus `O_CLOEXEC`, always).
pub fn open<P: rustix::path::Arg>(
    dir: impl AsFd,
    path: P,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    fs::openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
}

/// `open`, refusing as well to cross into another mount on the way (`RESOLVE_NO_XDEV`): for
/// what must stay on the filesystem it starts on (adopt's copy into a store).
pub fn open_on_mount<P: rustix::path::Arg>(
    dir: impl AsFd,
    path: P,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    fs::openat2(
        dir,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE.union(ResolveFlags::NO_XDEV),
    )
}

/// Creates `path` beneath `dir` (`O_CREAT | O_EXCL`: never an existing file) with `flags` and
/// `mode` (less the umask, as open(2) does; `fchmod` the result for an exact mode).
pub fn create<P: rustix::path::Arg>(
    dir: impl AsFd,
    path: P,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    fs::openat2(
        dir,
        path,
        flags | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        mode,
        RESOLVE,
    )
}

/// How `write_atomic` writes; each call site says all of it.
#[derive(Debug, Clone, Copy)]
pub struct Atomic {
    /// The file's mode, exactly (set with `fchmod`, whatever the umask).
    pub mode: u32,
    /// `fsync` the file before the rename and the directory after it: the new content, or the
    /// old, survives a power cut.
    pub fsync: bool,
    /// Replace an existing file of that name; otherwise an existing name fails with `EEXIST`
    /// and stays as it was.
    pub replace: bool,
}

/// Why `write_atomic` failed, and at which step: a failure before the rename leaves the old
/// file as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", .file)]
pub struct WriteError {
    /// What failed: "create", "write", "sync", "rename into place", "sync the directory of".
    pub step: &'static str,
    /// The file it failed on (the temporary, or the name).
    pub file: String,
    /// The system's error.
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    /// The name already existed (`replace: false`).
    pub fn exists(&self) -> bool {
        self.source.raw_os_error() == Some(libc::EEXIST)
    }
}

/// Writes `data` as `name` in `dir` atomically: a temporary `.<name>.tmp` in the same directory
/// (hidden, and with an ending no collector of `*.prom` or `*.json` reads; a stale one from a
/// crash is removed first), written, optionally synced, then renamed over
/// `name` (or, without `replace`, to `name` only if it does not exist). Readers see the old
/// file or the new one, never a part. The temporary is removed when a step fails.
pub fn write_atomic(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    data: &[u8],
    opts: Atomic,
) -> Result<(), WriteError> {
    let mut tmp = b".".to_vec();
    tmp.extend_from_slice(name.as_bytes());
    tmp.extend_from_slice(b".tmp");
    let tmp = OsStr::from_bytes(&tmp);
    let err = |step, file: &OsStr| {
        let file = file.to_string_lossy().into_owned();
        move |e: std::io::Error| WriteError {
            step,
            file,
            source: e,
        }
    };
    let _ = fs::unlinkat(dir, tmp, AtFlags::empty());
    let fd = create(dir, tmp, OFlags::WRONLY, Mode::from_raw_mode(0o600))
        .map_err(|e| err("create", tmp)(e.into()))?;
    let r = (|| {
        fs::fchmod(&fd, Mode::from_raw_mode(opts.mode))
            .map_err(|e| err("create", tmp)(e.into()))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data).map_err(err("write", tmp))?;
        if opts.fsync {
            f.sync_all().map_err(err("sync", tmp))?;
        }
        drop(f);
        rename(dir, tmp, name, opts.replace).map_err(|e| err("rename into place", name)(e.into()))
    })();
    if r.is_err() {
        let _ = fs::unlinkat(dir, tmp, AtFlags::empty());
        return r;
    }
    if opts.fsync {
        fs::fsync(dir).map_err(|e| err("sync the directory of", name)(e.into()))?;
    }
    Ok(())
}

fn rename(dir: BorrowedFd<'_>, tmp: &OsStr, name: &OsStr, replace: bool) -> rustix::io::Result<()> {
    if replace {
        return fs::renameat(dir, tmp, dir, name);
    }
    match fs::renameat_with(dir, tmp, dir, name, fs::RenameFlags::NOREPLACE) {
        // ZFS before 2.2 refuses renameat2 flags with EINVAL (openzfs/zfs#2256, fixed by
        // #14070): a hard link refuses an existing name the same way, then the temporary goes.
        Err(Errno::INVAL) => {
            fs::linkat(dir, tmp, dir, name, AtFlags::empty())?;
            fs::unlinkat(dir, tmp, AtFlags::empty())
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn top(dir: &std::path::Path) -> OwnedFd {
        fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open the test directory")
    }

    /// A tree `a/b/c` (a file) with a symlink planted at each position of the path, and the
    /// magic links of /proc: each must be refused, never followed.
    #[test]
    fn open_refuses_every_planted_link() {
        let t = tempfile::tempdir().expect("tempdir");
        let base = t.path();
        std::fs::create_dir_all(base.join("real/b")).expect("mkdir");
        std::fs::write(base.join("real/b/c"), b"x").expect("write");
        std::fs::create_dir_all(base.join("mid")).expect("mkdir");
        std::fs::write(base.join("outside"), b"secret").expect("write");
        symlink(base.join("real"), base.join("first")).expect("symlink");
        symlink("../real/b", base.join("mid/b")).expect("symlink");
        std::fs::create_dir_all(base.join("last/b")).expect("mkdir");
        symlink("/etc/hostname", base.join("last/b/c")).expect("symlink");
        let fd = top(base);
        let cases: &[(&str, Option<Errno>)] = &[
            ("real/b/c", None),
            ("first/b/c", Some(Errno::LOOP)),
            ("mid/b/c", Some(Errno::LOOP)),
            ("last/b/c", Some(Errno::LOOP)),
            ("../outside", Some(Errno::XDEV)),
            ("/etc/hostname", Some(Errno::XDEV)),
        ];
        for (path, want) in cases {
            let got = open(&fd, *path, OFlags::RDONLY).err();
            assert_eq!(got, *want, "{path}");
        }
        // /proc/self/fd/N is a magic link; beneath /proc/self it must not resolve.
        let proc_self = top(std::path::Path::new("/proc/self"));
        let n = format!("fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let got = open(&proc_self, n.as_str(), OFlags::PATH).err();
        assert_eq!(got, Some(Errno::LOOP), "magic link {n}");
    }

    #[test]
    fn descriptors_are_close_on_exec() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::write(t.path().join("f"), b"x").expect("write");
        let fd = top(t.path());
        let opened = open(&fd, "f", OFlags::RDONLY).expect("open");
        let made = create(&fd, "g", OFlags::WRONLY, Mode::from_raw_mode(0o600)).expect("create");
        for f in [&opened, &made] {
            let flags = rustix::io::fcntl_getfd(f).expect("F_GETFD");
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
        assert_eq!(
            create(&fd, "f", OFlags::WRONLY, Mode::empty()).err(),
            Some(Errno::EXIST)
        );
    }

    #[test]
    fn write_atomic_replaces_or_refuses_as_asked() {
        let t = tempfile::tempdir().expect("tempdir");
        let fd = top(t.path());
        let p = t.path().join("r");
        let opts = Atomic {
            mode: 0o640,
            fsync: true,
            replace: false,
        };
        write_atomic(fd.as_fd(), OsStr::new("r"), b"one", opts).expect("first write");
        assert_eq!(std::fs::read(&p).expect("read"), b"one");
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let e = write_atomic(fd.as_fd(), OsStr::new("r"), b"two", opts).expect_err("no replace");
        assert!(e.exists(), "{e}");
        assert_eq!(std::fs::read(&p).expect("read"), b"one");
        let replace = Atomic {
            replace: true,
            fsync: false,
            ..opts
        };
        write_atomic(fd.as_fd(), OsStr::new("r"), b"two", replace).expect("replace");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        // No temporary is left behind, whether the write went through or was refused.
        let names: Vec<_> = std::fs::read_dir(t.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r")]);
    }

    #[test]
    fn write_atomic_never_writes_through_a_planted_temporary() {
        let t = tempfile::tempdir().expect("tempdir");
        let victim = t.path().join("victim");
        std::fs::write(&victim, b"keep").expect("write");
        symlink(&victim, t.path().join(".r.tmp")).expect("symlink");
        let fd = top(t.path());
        let opts = Atomic {
            mode: 0o600,
            fsync: false,
            replace: true,
        };
        write_atomic(fd.as_fd(), OsStr::new("r"), b"new", opts).expect("write");
        assert_eq!(std::fs::read(&victim).expect("read"), b"keep");
        assert_eq!(std::fs::read(t.path().join("r")).expect("read"), b"new");
    }
}
