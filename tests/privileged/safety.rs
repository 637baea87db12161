//! Regression tests for issue 10's "persisted data is never lost / half-done states": where a
//! store may live (one rule for check, apply and the report writer), apply's undo when the
//! bind pass fails, a concurrent mover against a plain-directory `--root`, foreign entries in
//! the report dir, file comparison in bounded memory, and the lock that serialises rollbacks.
//! Each is named after the bug it pins and was seen to fail on the code before the fix.

// raw wait4, flock and fork for the races these tests stage.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::btrfs_rollback::e2s;
use crate::loopdev::{sh, Fs};
use crate::{is_mount_point, mount_tmpfs, mounts, text, tree, Case, Sandbox, TestResult};

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Mount points at or below `dir`.
fn mounts_below(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    mounts()
        .into_iter()
        .filter(|m| m == &d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// Unmounts (lazily, latest first) every mount below a directory on drop, also those a
/// failing apply left outside the root.
struct UnmountBelow(PathBuf);

impl Drop for UnmountBelow {
    fn drop(&mut self) {
        for m in mounts_below(&self.0).into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}

/// The store message every refusal shares (`darlings_backends::placement`).
const ON_ROOT: &str = "is on the root's filesystem (";
const ERASED: &str = "what it holds would be erased with the root at the next rollback";

/// A btrfs "disk" with `root`, its read-only blank `root-blank` and a `persist` subvolume
/// beside them, `root` mounted at `<base>/sysroot` as the initrd mounts it.
struct Disk {
    fs: Fs,
    sysroot: PathBuf,
    config: PathBuf,
}

impl Disk {
    fn new() -> Result<Disk, String> {
        let mut fs = Fs::btrfs("300M")?;
        let t = fs.top.display().to_string();
        sh(&format!(
            "set -e; cd {t}; btrfs -q subvolume create root; \
             btrfs -q subvolume snapshot -r root root-blank; btrfs -q subvolume create persist; \
             mkdir -p persist/var/lib/keep; echo precious > persist/var/lib/keep/data"
        ))?;
        let sysroot = fs.base.join("sysroot");
        std::fs::create_dir(&sysroot).map_err(e2s)?;
        fs.mount_subvol("root", &sysroot)?;
        let config = crate::btrfs_config(&fs, "[diff]\nreport-dir = \"/persist/var/log/darlings\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/keep\"]\n")?;
        Ok(Disk {
            fs,
            sysroot,
            config,
        })
    }

    fn run(&self, args: &[&str]) -> Result<Output, String> {
        crate::darlings(&self.config, self.fs.base.join("run"))
            .arg("--log")
            .arg("stderr")
            .args(args)
            .output()
            .map_err(e2s)
    }

    fn apply(&self) -> Result<Output, String> {
        let root = self.sysroot.display().to_string();
        let utab = self.fs.base.join("utab").display().to_string();
        self.run(&["apply", "--root", &root, "--utab", &utab])
    }
}

/// `btrfs subvolume create /persist` on a running system makes the store a subvolume nested in
/// the root subvolume: the next rollback deletes it with everything in it. apply (and the
/// report writer) must refuse it; a subvolume beside the root, mounted there, is fine; so is
/// nothing else on the blank.
fn btrfs_store_subvolume_inside_the_root_subvolume() -> TestResult {
    let mut d = Disk::new()?;
    let store = d.sysroot.join("persist");
    sh(&format!(
        "set -e; btrfs -q subvolume create {0}; mkdir -p {0}/var/lib/keep; echo mine > {0}/var/lib/keep/data",
        store.display()
    ))?;
    // Both as it is, and mounted on itself by `subvol=root/persist` as an fstab line would:
    // the old mount-id check took the mounted form for a store of its own.
    for mounted in [true, false] {
        if mounted {
            d.fs.mount_subvol("root/persist", &store)?;
        }
        let o = d.apply()?;
        check!(
            !o.status.success(),
            "nested store (mounted: {mounted}) accepted: {}",
            text(&o)
        );
        let e = err(&o);
        check!(
            e.contains(&format!(
                "store {} {ON_ROOT}btrfs subvolume root/persist",
                store.display()
            )) && e.contains("is inside the root subvolume root")
                && e.contains("the next rollback deletes it as a nested subvolume")
                && e.contains(ERASED),
            "message (mounted: {mounted}): {e}"
        );
        check!(
            !d.sysroot.join("var").exists()
                && mounts_below(&d.sysroot).len() == 1 + usize::from(mounted),
            "apply changed the root: {:?}",
            mounts_below(&d.sysroot)
        );
        // The report writer goes by the same rule.
        let root = d.sysroot.display().to_string();
        let saved = d.run(&["diff", "--save", "--no-sizes", "--root", &root])?;
        check!(
            !saved.status.success() && err(&saved).contains("is inside the root subvolume root"),
            "diff --save (mounted: {mounted}): {}",
            text(&saved)
        );
        check!(
            !store.join("var/log").exists(),
            "a report was written into the nested store"
        );
        if mounted {
            sh(&format!("umount {}", store.display()))?;
            d.fs.mounts.pop();
        }
    }

    // The blank as a store (mounted from subvol=root-blank) is refused by name too.
    sh(&format!(
        "set -e; btrfs -q subvolume delete {0}; mkdir {0}; mount -o subvol=root-blank {1} {0}",
        store.display(),
        d.fs.dev()
    ))?;
    d.fs.mounts.push(store.clone());
    let o = d.apply()?;
    check!(
        !o.status.success()
            && err(&o).contains("btrfs subvolume root-blank (id ")
            && err(&o).contains("is the blank snapshot"),
        "blank as a store: {}",
        text(&o)
    );
    sh(&format!("umount {}", store.display()))?;
    d.fs.mounts.pop();

    // The layout that keeps data: a subvolume beside the root, mounted there.
    d.fs.mount_subvol("persist", &store)?;
    let o = d.apply()?;
    check!(o.status.success(), "store beside the root: {}", text(&o));
    check!(
        std::fs::read(d.sysroot.join("var/lib/keep/data")).map_err(e2s)? == b"precious\n",
        "the store's data is not bound"
    );
    Ok(())
}

/// A store that is a bind mount of the root's own filesystem is a mount of its own, which the
/// old mount-id check took for a store; it is erased with the root. Both forms, through apply,
/// check and the report writer, with one message.
fn store_is_a_bind_mount_of_the_roots_filesystem() -> TestResult {
    let cfg = format!(
        "{}\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\n",
        crate::BASIC
    );
    for form in ["R/persist on itself", "R itself"] {
        let sb = Sandbox::new(&cfg)?;
        sh(&format!("umount {}", sb.store.display()))?;
        let from = if form == "R itself" {
            &sb.root
        } else {
            &sb.store
        };
        sh(&format!(
            "mount --bind {} {}",
            from.display(),
            sb.store.display()
        ))?;
        let before = tree(&sb.root);
        let mounts_before = mounts();
        let want = format!(
            "store {} {ON_ROOT}a bind mount of the root's own filesystem",
            sb.store.display()
        );
        let o = sb.apply();
        check!(
            !o.status.success() && err(&o).contains(&want) && err(&o).contains(ERASED),
            "{form}: apply: {}",
            text(&o)
        );
        check!(
            err(&o).matches(&want).count() == 1,
            "{form}: the refusal is not said once: {}",
            err(&o)
        );
        let c = sb.run(&["check", "--root", sb.root_str()]);
        check!(
            !c.status.success() && err(&c).contains(&want),
            "{form}: check: {}",
            text(&c)
        );
        let s = sb.run(&["diff", "--save", "--root", sb.root_str()]);
        check!(
            !s.status.success() && err(&s).contains(&want),
            "{form}: diff --save: {}",
            text(&s)
        );
        check!(
            tree(&sb.root) == before && mounts() == mounts_before,
            "{form}: something was created or mounted"
        );
    }
    Ok(())
}

/// The NixOS wiki's layout: the store is a plain directory (`/nix/persist/system`) on a
/// filesystem the initrd mounts, not a mount of its own. It is safe, and accepted by check,
/// apply and the report writer.
fn store_as_a_plain_directory_on_another_filesystem_is_accepted() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[diff]\nreport-dir = \"/nix/persist/system/var/log/darlings\"\n[[persist]]\nstore = \"/nix/persist/system\"\ndirectories = [\"/var/lib/app\"]\nfiles = [\"/etc/machine-id\"]\n";
    let sb = Sandbox::new(cfg)?;
    // Sandbox mounted a tmpfs at /persist; this layout has /nix instead.
    sh(&format!("umount {0} && rmdir {0}", sb.store.display()))?;
    let nix = sb.root.join("nix");
    std::fs::create_dir(&nix).map_err(e2s)?;
    mount_tmpfs(&nix)?;
    std::fs::create_dir_all(nix.join("persist/system/var/lib/app")).map_err(e2s)?;
    std::fs::write(nix.join("persist/system/var/lib/app/db"), b"kept").map_err(e2s)?;
    let c = sb.run(&["check", "--root", sb.root_str()]);
    check!(
        c.status.success()
            && out(&c).contains(&format!(
                "ok: store {}/nix/persist/system is on a filesystem the rollback does not erase",
                sb.root.display()
            )),
        "check: {}",
        text(&c)
    );
    let o = sb.apply();
    check!(o.status.success(), "apply: {}", text(&o));
    check!(
        std::fs::read(sb.root.join("var/lib/app/db")).map_err(e2s)? == b"kept",
        "not bound"
    );
    let s = sb.run(&["diff", "--save", "--root", sb.root_str()]);
    check!(s.status.success(), "diff --save: {}", text(&s));
    check!(
        nix.join("persist/system/var/log/darlings/latest.json")
            .exists(),
        "no report in the store"
    );
    Ok(())
}

/// The bind pass fails half-way (a read-only part of the store where a source must be made;
/// a read-only part of the root where a target must be made): what this run did is undone,
/// listed, and a second apply after the fix converges.
fn apply_fails_mid_way_in_the_bind_pass() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/srv/a\", \"/usr/local/b\", \"/var/b\"]\nfiles = [\"/etc/c\"]\n";
    for (case, ro) in [
        ("read-only store", "persist/var"),
        ("read-only root", "usr"),
    ] {
        let sb = Sandbox::new(cfg)?;
        std::fs::create_dir_all(sb.store.join("srv/a")).map_err(e2s)?;
        std::fs::write(sb.store.join("srv/a/data"), b"a").map_err(e2s)?;
        std::fs::create_dir_all(sb.store.join("etc")).map_err(e2s)?;
        std::fs::write(sb.store.join("etc/c"), b"c").map_err(e2s)?;
        std::fs::create_dir_all(sb.store.join("usr/local/b")).map_err(e2s)?;
        std::fs::create_dir_all(sb.store.join("var")).map_err(e2s)?;
        std::fs::create_dir_all(sb.root.join("usr")).map_err(e2s)?;
        let ro = sb.root.join(ro);
        sh(&format!("mount --bind -o ro {0} {0}", ro.display()))?;
        let before = tree(&sb.root);
        let mounts_before = mounts();
        let o = sb.apply();
        let e = err(&o);
        let at = if case == "read-only store" {
            "/var/b"
        } else {
            "/usr/local/b"
        };
        check!(
            !o.status.success()
                && e.contains(&format!(
                    "apply failed at {at}; it undid all this run had changed"
                ))
                && e.contains("Read-only file system"),
            "{case}: {}",
            text(&o)
        );
        check!(
            e.contains(&format!("unmounted {}/etc/c", sb.root.display()))
                && e.contains(&format!("removed root directory {}/srv", sb.root.display())),
            "{case}: the undo is not listed: {e}"
        );
        check!(
            mounts() == mounts_before,
            "{case}: binds left: {:?}",
            mounts_below(&sb.root)
        );
        check!(
            tree(&sb.root) == before,
            "{case}: entries left: {:?}",
            tree(&sb.root)
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect::<Vec<_>>()
        );
        sh(&format!("umount {}", ro.display()))?;
        let again = sb.apply();
        check!(
            again.status.success(),
            "{case}: after the fix: {}",
            text(&again)
        );
        for t in ["srv/a", "usr/local/b", "var/b", "etc/c"] {
            check!(is_mount_point(&sb.root.join(t)), "{case}: {t} not bound");
        }
        let third = sb.apply();
        check!(
            third.status.success() && out(&third).contains("0 bound, 4 already in place"),
            "{case}: not converged: {}",
            text(&third)
        );
    }
    Ok(())
}

/// inotify: waits for `IN_OPEN` on `watched`, then renames it to `to`; returns the rename's
/// result, or None when nothing opened it before `stop`.
fn mover(watched: PathBuf, to: PathBuf, stop: Arc<AtomicBool>) -> Option<std::io::Result<()>> {
    // SAFETY: plain syscalls on descriptors this function owns; the path is NUL-terminated.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK);
        if fd < 0 {
            return Some(Err(std::io::Error::last_os_error()));
        }
        let c = std::ffi::CString::new(watched.as_os_str().as_bytes()).ok()?;
        if libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN) < 0 {
            return Some(Err(std::io::Error::last_os_error()));
        }
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut p, 1, 50) > 0
                && libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0
            {
                let r = std::fs::rename(&watched, &to);
                libc::close(fd);
                return Some(r);
            }
        }
        libc::close(fd);
        None
    }
}

/// A directory moved out of a plain-directory `--root` while apply runs (an inotify-driven
/// mover, the moment apply opens it) took the old code's execution pass outside the root,
/// through the descriptors its check pass had opened. Now apply refuses a root that is not
/// the top of a mounted filesystem; on one (a tmpfs here), the mover's rename cannot leave it
/// (EXDEV) and every bind lands inside.
fn root_on_a_plain_directory_with_a_concurrent_mover() -> TestResult {
    const N: usize = 200;
    let mut dirs = String::new();
    for i in 0..N {
        dirs.push_str(&format!("\"/var/lib/app{i:03}\", "));
    }
    let cfg = format!(
        "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [{dirs}]\n"
    );
    for plain in [true, false] {
        let dir = tempfile::tempdir().map_err(e2s)?;
        let base = dir.path();
        let config = base.join("c.toml");
        std::fs::write(&config, &cfg).map_err(e2s)?;
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).map_err(e2s)?;
        std::fs::create_dir_all(&root).map_err(e2s)?;
        let _cleanup = UnmountBelow(base.to_path_buf());
        if !plain {
            mount_tmpfs(&root)?;
        }
        std::fs::create_dir_all(root.join("var/lib")).map_err(e2s)?;
        let store = root.join("persist");
        std::fs::create_dir(&store).map_err(e2s)?;
        mount_tmpfs(&store)?;
        for i in 0..N {
            std::fs::create_dir_all(store.join(format!("var/lib/app{i:03}"))).map_err(e2s)?;
        }
        let before_outside = tree(&outside);
        let stop = Arc::new(AtomicBool::new(false));
        let t = {
            let (w, to, stop) = (root.join("var"), outside.join("var"), stop.clone());
            std::thread::spawn(move || mover(w, to, stop))
        };
        // Give the watch time to be in place.
        std::thread::sleep(Duration::from_millis(100));
        let o = crate::darlings(&config, base.join("run"))
            .args(["apply", "--root"])
            .arg(&root)
            .arg("--utab")
            .arg(base.join("utab"))
            .output()
            .map_err(e2s)?;
        stop.store(true, Ordering::SeqCst);
        let moved = t.join().map_err(|_| "mover panicked".to_string())?;
        let outside_now: Vec<PathBuf> = tree(&outside)
            .into_iter()
            .filter(|p| {
                !before_outside.contains(p)
                    && p != &outside.join("var")
                    && p != &outside.join("var/lib")
            })
            .collect();
        check!(
            outside_now.is_empty() && mounts_below(&outside).is_empty(),
            "plain={plain}: apply acted outside the root: created {outside_now:?}, mounted {:?} (mover: {moved:?}; {})",
            mounts_below(&outside),
            text(&o)
        );
        if plain {
            check!(
                !o.status.success()
                    && err(&o).contains("is not the top of a mounted filesystem (it is a plain directory, or a bind of one)"),
                "plain directory root: {}",
                text(&o)
            );
        } else {
            check!(
                matches!(&moved, Some(Err(e)) if e.raw_os_error() == Some(libc::EXDEV)),
                "the mover's rename out of a mounted root: {moved:?}"
            );
            check!(o.status.success(), "mounted root: {}", text(&o));
            for i in 0..N {
                check!(
                    is_mount_point(&root.join(format!("var/lib/app{i:03}"))),
                    "app{i:03} not bound inside the root"
                );
            }
        }
    }
    Ok(())
}

/// A foreign entry in report-dir (a directory named like an old report, a file darlings did
/// not write) made pruning fail, and with it the save: "cannot save the lost-state report".
/// Now pruning leaves them alone with a warning, and removes only darlings' own old reports.
fn foreign_entry_in_report_dir() -> TestResult {
    let cfg = format!(
        "{}\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\nkeep-reports = 1\n",
        crate::BASIC
    );
    let sb = Sandbox::new(&cfg)?;
    let dir = sb.store.join("var/log/darlings");
    std::fs::create_dir_all(dir.join("20000101T000000Z.json")).map_err(e2s)?;
    std::fs::write(dir.join("20000101T000001Z.txt"), b"mine").map_err(e2s)?;
    std::os::unix::fs::chown(dir.join("20000101T000001Z.txt"), Some(1000), Some(1000))
        .map_err(e2s)?;
    std::fs::write(dir.join("notes.txt"), b"mine").map_err(e2s)?;
    for n in 0..3 {
        let s = sb.run(&["diff", "--save", "--root", sb.root_str()]);
        check!(s.status.success(), "save {n}: {}", text(&s));
        check!(
            n == 0 || err(&s).contains("entries darlings did not write, left alone by pruning: 20000101T000000Z.json (a directory, owner uid 0), 20000101T000001Z.txt (a file, owner uid 1000), notes.txt"),
            "no warning: {}",
            text(&s)
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(e2s)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(e2s)?;
    names.sort();
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".json") || n.ends_with(".txt"))
        .filter(|n| !n.starts_with("2000") && !n.starts_with("latest") && *n != "notes.txt")
        .collect();
    check!(
        ours.len() == 2,
        "pruning kept {ours:?} of darlings' own reports, not the newest pair"
    );
    for f in ["20000101T000000Z.json", "20000101T000001Z.txt", "notes.txt"] {
        check!(dir.join(f).exists(), "{f} was removed");
    }
    Ok(())
}

/// Runs `c` and returns its status and its own peak RSS in KiB (wait4 on that child alone,
/// not RUSAGE_CHILDREN, which is the largest of every child so far).
fn run_with_rss(c: &mut Command) -> Result<(Output, i64), String> {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(e2s)?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes the status and the rusage we own, for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let read = |p: Option<std::process::ChildStdout>| {
        let mut v = Vec::new();
        if let Some(mut p) = p {
            let _ = std::io::Read::read_to_end(&mut p, &mut v);
        }
        v
    };
    let mut child = child;
    let stdout = read(child.stdout.take());
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_end(&mut e, &mut stderr);
    }
    use std::os::unix::process::ExitStatusExt;
    Ok((
        Output {
            status: std::process::ExitStatus::from_raw(status),
            stdout,
            stderr,
        },
        ru.ru_maxrss,
    ))
}

/// Comparing a target file with its store copy read both whole into memory (two 1 GiB files:
/// 2.1 GB RSS, an OOM risk in an initrd). Two 256 MiB files must compare in a few MiB.
fn file_comparison_reads_both_files_whole() -> TestResult {
    let cfg =
        "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nfiles = [\"/var/big\"]\n";
    let sb = Sandbox::new(cfg)?;
    std::fs::create_dir_all(sb.store.join("var")).map_err(e2s)?;
    std::fs::create_dir_all(sb.root.join("var")).map_err(e2s)?;
    // Sparse on tmpfs: reading the holes costs no memory, so what the process holds is its own.
    for f in [sb.store.join("var/big"), sb.root.join("var/big")] {
        sh(&format!("truncate -s 256M {}", f.display()))?;
    }
    let dry = |sb: &Sandbox| {
        let mut c = crate::darlings(&sb.config, sb.base.join("run"));
        c.args(["apply", "--dry-run", "--root", sb.root_str()]);
        run_with_rss(&mut c)
    };
    let (o, rss) = dry(&sb)?;
    check!(
        o.status.success() && out(&o).contains("would bind /persist/var/big -> /var/big"),
        "identical files: {}",
        text(&o)
    );
    check!(
        rss < 64 * 1024,
        "comparing two 256 MiB files took {} MiB of RSS",
        rss / 1024
    );
    // One byte differs at the very end: still seen, still in bounded memory.
    sh(&format!(
        "printf x | dd of={} bs=1 seek=268435455 conv=notrunc status=none",
        sb.root.join("var/big").display()
    ))?;
    let (o, rss) = dry(&sb)?;
    check!(
        !o.status.success() && err(&o).contains("differs from the store's copy"),
        "differing files: {}",
        text(&o)
    );
    check!(rss < 64 * 1024, "{} MiB of RSS", rss / 1024);
    Ok(())
}

/// Two rollbacks on one device at once failed with raw errors and could leave a stray
/// `root.new`. Now the second is told who holds the lock (pid), and a real race leaves a valid
/// root and no `root.new`.
fn two_concurrent_rollback_runs() -> TestResult {
    let fs = Fs::btrfs("300M")?;
    let t = fs.top.display().to_string();
    sh(&format!(
        "set -e; cd {t}; btrfs -q subvolume create root; echo blank > root/marker; \
         btrfs -q subvolume snapshot -r root root-blank"
    ))?;
    let cfg = crate::btrfs_config(&fs, "")?;
    let work = fs.base.join("work");
    let cmd = |args: &[&str]| {
        let mut c = crate::darlings(&cfg, &work);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    // Held by "another darlings": this process.
    std::fs::create_dir_all(&work).map_err(e2s)?;
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(work.join("lock"))
        .map_err(e2s)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!("flock: {}", std::io::Error::last_os_error()));
    }
    let me = std::process::id();
    std::fs::write(work.join("lock"), format!("pid {me}, darlings rollback\n")).map_err(e2s)?;
    let want = format!(
        "another darlings (pid {me}, darlings rollback) holds {}; wait for it to finish",
        work.join("lock").display()
    );
    let o = cmd(&["rollback"]).output().map_err(e2s)?;
    check!(
        o.status.code() == Some(1) && err(&o).contains(&want),
        "rollback beside a holder: {}",
        text(&o)
    );
    sh(&format!("echo used > {t}/root/used"))?;
    let line = fs.base.join("cmdline");
    std::fs::write(&line, "quiet\n").map_err(e2s)?;
    let b = cmd(&[
        "boot",
        "--stage",
        "early",
        "--cmdline",
        &line.display().to_string(),
    ])
    .output()
    .map_err(e2s)?;
    check!(
        b.status.success() && err(&b).contains(&want),
        "boot beside a holder (boot-old-root: exit 0, nothing done): {}",
        text(&b)
    );
    check!(
        fs.top.join("root/used").exists(),
        "a locked-out run changed the root"
    );
    drop(held);
    // A real race, round after round.
    let mut overlapped = 0;
    for round in 0..8 {
        let a = cmd(&["rollback"]).spawn().map_err(e2s)?;
        let b = cmd(&["rollback"]).spawn().map_err(e2s)?;
        let outs = [
            a.wait_with_output().map_err(e2s)?,
            b.wait_with_output().map_err(e2s)?,
        ];
        for o in &outs {
            let e = err(o);
            check!(
                o.status.success()
                    || (e.contains("another darlings (pid ")
                        && e.contains(", darlings rollback) holds")),
                "round {round}: {}",
                text(o)
            );
        }
        if outs.iter().any(|o| !o.status.success()) {
            overlapped += 1;
        }
        check!(
            !fs.top.join("root.new").exists(),
            "round {round}: a stray root.new"
        );
        check!(
            std::fs::read(fs.top.join("root/marker")).map_err(e2s)? == b"blank\n"
                && !fs.top.join("root/used").exists()
                && std::fs::metadata(fs.top.join("root")).map_err(e2s)?.ino() == 256,
            "round {round}: root is not a fresh subvolume"
        );
    }
    println!("    two_concurrent_rollback_runs: {overlapped} of 8 rounds overlapped");
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "btrfs_store_subvolume_inside_the_root_subvolume",
            btrfs_store_subvolume_inside_the_root_subvolume,
        ),
        (
            "store_is_a_bind_mount_of_the_roots_filesystem",
            store_is_a_bind_mount_of_the_roots_filesystem,
        ),
        (
            "store_as_a_plain_directory_on_another_filesystem_is_accepted",
            store_as_a_plain_directory_on_another_filesystem_is_accepted,
        ),
        (
            "apply_fails_mid_way_in_the_bind_pass",
            apply_fails_mid_way_in_the_bind_pass,
        ),
        (
            "root_on_a_plain_directory_with_a_concurrent_mover",
            root_on_a_plain_directory_with_a_concurrent_mover,
        ),
        ("foreign_entry_in_report_dir", foreign_entry_in_report_dir),
        (
            "file_comparison_reads_both_files_whole",
            file_comparison_reads_both_files_whole,
        ),
        ("two_concurrent_rollback_runs", two_concurrent_rollback_runs),
    ]
}
