//! Privileged tests of `darlings adopt` on real tmpfs and Btrfs roots: what a copy keeps (hard
//! links, holes, ACLs, owners, modes, times, special files), identical and differing store
//! copies, planted symlinks, dry runs, an interrupted copy, refusals and `--write-config`.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::btrfs_rollback::e2s;
use crate::loopdev::{sh, Fs};
use crate::{is_mount_point, mkdir, mounts, put, text, Case, Sandbox, TestResult};

const CONFIG: &str = r#"# adopt's test config
[root]
backend = "tmpfs"

[[persist]]
store = "/persist"   # the store
directories = [
  "/var/lib/app",   # the app's state
  "/srv",
]
files = ["/etc/app.conf"]
"#;

fn adopt(sb: &Sandbox, args: &[&str]) -> Output {
    adopt_env(sb, args, None)
}

fn adopt_env(sb: &Sandbox, args: &[&str], failpoint: Option<&str>) -> Output {
    let utab = sb.base.join("utab");
    let mut c = crate::darlings(&sb.config, sb.base.join("run"));
    c.args(["adopt", "--root", sb.root_str(), "--utab"])
        .arg(&utab)
        .args(args);
    if let Some(f) = failpoint {
        c.env("DARLINGS_FAILPOINT", f);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", crate::BIN))
}

/// The mount table and the store's tree, for "that adopt changed nothing" checks.
fn mounts_and_store(sb: &Sandbox) -> (Vec<String>, Vec<String>) {
    (mounts(), snapshot(&sb.store))
}

/// Fails unless the mounts and the store are as `before`, naming `what` changed them.
fn unchanged(sb: &Sandbox, before: &(Vec<String>, Vec<String>), what: &str) -> TestResult {
    check!(
        mounts_and_store(sb) == *before,
        "{what} changed the mounts or the store"
    );
    Ok(())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A valid `system.posix_acl_access` value: user::rw-, user:1000:r--, group::r--, mask::r--,
/// other::r-- (the kernel's xattr layout: version 2, then tag/perm/id entries sorted by tag).
fn acl_blob() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn get_xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Every path below `dir` with its type, owner, mode, size, mtime and (small files) content:
/// for "nothing changed" checks.
fn snapshot(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = crate::tree(dir)
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            let content = if m.is_file() && m.len() < 4096 {
                String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned()
            } else {
                String::new()
            };
            Some(format!(
                "{} {:o} {}:{} {} {}.{} {content:?}",
                p.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            ))
        })
        .collect();
    out.sort();
    out
}

/// The app's state as a running system leaves it: nested directories, a hard link, a sparse
/// file, an ACL, other owners and modes, a symlink, a fifo and a device node.
fn app_state(root: &Path) -> TestResult {
    let a = root.join("var/lib/app");
    std::fs::create_dir_all(a.join("db/sub")).map_err(e2s)?;
    std::fs::write(a.join("db/data"), b"rows\n").map_err(e2s)?;
    std::fs::hard_link(a.join("db/data"), a.join("db/sub/same")).map_err(e2s)?;
    let sparse = std::fs::File::create(a.join("sparse.img")).map_err(e2s)?;
    sparse.set_len(64 << 20).map_err(e2s)?;
    drop(sparse);
    std::fs::write(a.join("acl.txt"), b"shared\n").map_err(e2s)?;
    rustix::fs::setxattr(
        a.join("acl.txt"),
        "system.posix_acl_access",
        &acl_blob(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| format!("set the ACL: {e}"))?;
    rustix::fs::setxattr(
        a.join("db"),
        "trusted.app",
        b"marker",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| format!("set a trusted xattr: {e}"))?;
    std::os::unix::fs::chown(a.join("db/data"), Some(1234), Some(5678)).map_err(e2s)?;
    std::fs::set_permissions(a.join("db/data"), std::fs::Permissions::from_mode(0o640))
        .map_err(e2s)?;
    std::fs::set_permissions(a.join("db/sub"), std::fs::Permissions::from_mode(0o2750))
        .map_err(e2s)?;
    std::os::unix::fs::symlink("db/data", a.join("current")).map_err(e2s)?;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        a.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o620),
        0,
    )
    .map_err(e2s)?;
    // mknod's mode went through the umask.
    std::fs::set_permissions(a.join("fifo"), std::fs::Permissions::from_mode(0o620))
        .map_err(e2s)?;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        a.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .map_err(e2s)?;
    // An old mtime, so that a copy that forgot times would show.
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(a.join("db/data"))
        .and_then(|f| f.set_modified(old))
        .map_err(e2s)?;
    Ok(())
}

/// What `app_state` made, checked in `at` (the store's copy, or the bound root).
fn check_app_state(at: &Path) -> TestResult {
    let m = |p: &str| std::fs::symlink_metadata(at.join(p)).map_err(|e| format!("{p}: {e}"));
    let (data, same) = (m("db/data")?, m("db/sub/same")?);
    check!(
        data.ino() == same.ino() && data.nlink() == 2,
        "the hard link became two files: inodes {} and {}, {} links",
        data.ino(),
        same.ino(),
        data.nlink()
    );
    check!(
        (data.uid(), data.gid(), data.mode() & 0o7777) == (1234, 5678, 0o640),
        "db/data owner/mode not kept: {}:{} {:o}",
        data.uid(),
        data.gid(),
        data.mode()
    );
    check!(
        data.mtime() == 1_000_000_000,
        "db/data mtime not kept: {}",
        data.mtime()
    );
    check!(
        std::fs::read(at.join("db/data")).ok().as_deref() == Some(&b"rows\n"[..]),
        "db/data content differs"
    );
    let sub = m("db/sub")?;
    check!(
        sub.mode() & 0o7777 == 0o2750,
        "db/sub mode not kept: {:o}",
        sub.mode()
    );
    let sparse = m("sparse.img")?;
    check!(
        sparse.len() == 64 << 20 && sparse.blocks() < 64,
        "the sparse file is not sparse: {} bytes in {} blocks",
        sparse.len(),
        sparse.blocks()
    );
    check!(
        get_xattr(&at.join("acl.txt"), "system.posix_acl_access") == Some(acl_blob()),
        "the ACL was not copied: {:?}",
        get_xattr(&at.join("acl.txt"), "system.posix_acl_access")
    );
    check!(
        get_xattr(&at.join("db"), "trusted.app").as_deref() == Some(&b"marker"[..]),
        "the directory's xattr was not copied"
    );
    check!(
        std::fs::read_link(at.join("current")).ok() == Some(PathBuf::from("db/data")),
        "the symlink was not copied as a symlink"
    );
    let fifo = m("fifo")?;
    check!(
        fifo.file_type().is_fifo() && fifo.mode() & 0o7777 == 0o620,
        "the fifo was not copied"
    );
    let null = m("null")?;
    check!(
        null.file_type().is_char_device() && null.rdev() == rustix::fs::makedev(1, 3),
        "the device node was not copied"
    );
    Ok(())
}

fn adopt_copies_everything_a_tree_holds_binds_it_and_a_second_adopt_is_a_no_op() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    app_state(&sb.root)?;
    let out = adopt(&sb, &["/var/lib/app"]);
    check!(out.status.success(), "adopt failed: {}", text(&out));
    check!(
        stdout(&out).contains("copied directory /var/lib/app") && stdout(&out).contains("verified"),
        "no copy reported: {}",
        text(&out)
    );
    check_app_state(&sb.store.join("var/lib/app"))?;
    check!(
        is_mount_point(&sb.root.join("var/lib/app")),
        "/var/lib/app is not bound"
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(e2s)?;
    let line = info
        .lines()
        .find(|l| l.contains(&format!(" {}/var/lib/app ", sb.root.display())))
        .unwrap_or("");
    check!(
        line.split(' ').nth(3) == Some("/var/lib/app"),
        "the bind is not the store's /var/lib/app: {line}"
    );
    // Through the bind, the same tree; writes land in the store.
    check_app_state(&sb.root.join("var/lib/app"))?;
    put(&sb.root, "var/lib/app/new", b"n")?;
    check!(
        sb.store.join("var/lib/app/new").exists(),
        "a write through the bind did not reach the store"
    );
    check!(
        !sb.store
            .join("var/lib/.darlings-adopt-app.partial")
            .exists(),
        "the staging directory is left"
    );
    let before = mounts_and_store(&sb);
    let again = adopt(&sb, &["/var/lib/app"]);
    check!(again.status.success(), "second adopt: {}", text(&again));
    check!(
        stdout(&again).contains("already adopted: /var/lib/app"),
        "second adopt did something: {}",
        text(&again)
    );
    unchanged(&sb, &before, "the second adopt")
}

fn adopt_a_file_and_an_identical_store_copy_is_only_bound() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    put(&sb.root, "etc/app.conf", b"port = 1\n")?;
    put(&sb.root, "srv/www/index.html", b"hello\n")?;
    // The store already has /srv, equal to the root's (times may differ: only content counts).
    put(&sb.store, "srv/www/index.html", b"hello\n")?;
    let store_before = std::fs::symlink_metadata(sb.store.join("srv/www/index.html"))
        .map_err(e2s)?
        .ino();
    let out = adopt(&sb, &["/etc/app.conf", "/srv"]);
    check!(out.status.success(), "adopt failed: {}", text(&out));
    let o = stdout(&out);
    check!(
        o.contains("copied file /etc/app.conf") && !o.contains("copied directory /srv"),
        "expected a copy of the file only: {}",
        text(&out)
    );
    check!(
        std::fs::symlink_metadata(sb.store.join("srv/www/index.html"))
            .map_err(e2s)?
            .ino()
            == store_before,
        "the identical store copy was replaced"
    );
    for p in ["etc/app.conf", "srv"] {
        check!(is_mount_point(&sb.root.join(p)), "{p} is not bound");
    }
    // An empty directory in the root hides nothing: the store's copy is bound over it.
    mkdir(&sb.root, "var/lib/app")?;
    mkdir(&sb.store, "var/lib/app/db")?;
    let out = adopt(&sb, &["/var/lib/app"]);
    check!(
        out.status.success() && sb.root.join("var/lib/app/db").is_dir(),
        "the store's copy was not bound over an empty root directory: {}",
        text(&out)
    );
    check!(
        std::fs::read(sb.store.join("etc/app.conf")).ok().as_deref() == Some(&b"port = 1\n"[..]),
        "the file was not copied"
    );
    Ok(())
}

fn a_different_store_copy_is_refused_with_what_differs_and_nothing_changes() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    put(&sb.root, "var/lib/app/a", b"root's\n")?;
    put(&sb.store, "var/lib/app/a", b"store\n")?;
    put(&sb.root, "var/lib/app/only-root", b"")?;
    put(&sb.store, "var/lib/app/only-store", b"")?;
    mkdir(&sb.root, "srv")?;
    let before = (mounts_and_store(&sb), snapshot(&sb.root));
    // /srv alone would be fine: one refused path stops the others too.
    let out = adopt(&sb, &["/srv", "/var/lib/app"]);
    check!(!out.status.success(), "adopt bound over a differing copy");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "nothing was changed",
        "/var/lib/app/a: size 7 in the root, 6 in the store",
        "/var/lib/app/only-root: only in the root",
        "/var/lib/app/only-store: only in the store",
    ] {
        check!(
            err.contains(want),
            "the refusal lacks {want:?}: {}",
            text(&out)
        );
    }
    check!(
        (mounts_and_store(&sb), snapshot(&sb.root)) == before,
        "a refused adopt changed something"
    );
    Ok(())
}

fn planted_symlinks_at_the_path_on_the_way_or_in_the_store_are_refused() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    let outside = sb.base.join("outside");
    put(&outside, "app/secret", b"s")?;
    // At the path itself.
    mkdir(&sb.root, "var/lib")?;
    std::os::unix::fs::symlink(outside.join("app"), sb.root.join("var/lib/app")).map_err(e2s)?;
    // On the way (/opt/app is not in the config, so it goes through --store; the link is /opt).
    std::os::unix::fs::symlink(&outside, sb.root.join("opt")).map_err(e2s)?;
    // In the store: the store's copy of /etc/app.conf is a symlink.
    put(&sb.root, "etc/app.conf", b"c")?;
    mkdir(&sb.store, "etc")?;
    std::os::unix::fs::symlink(outside.join("app/secret"), sb.store.join("etc/app.conf"))
        .map_err(e2s)?;
    let before = (
        mounts(),
        snapshot(&sb.root),
        snapshot(&sb.store),
        snapshot(&outside),
    );
    for (path, want) in [
        ("/var/lib/app", "root path"),
        ("/etc/app.conf", "store path"),
    ] {
        let out = adopt(&sb, &[path]);
        let err = String::from_utf8_lossy(&out.stderr);
        check!(
            !out.status.success() && err.contains(want) && err.contains("symlink"),
            "{path}: not refused as a symlink: {}",
            text(&out)
        );
    }
    let out = adopt(&sb, &["--store", "/persist", "/opt/app"]);
    check!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("symlink"),
        "a symlink on the way was not refused: {}",
        text(&out)
    );
    check!(
        (
            mounts(),
            snapshot(&sb.root),
            snapshot(&sb.store),
            snapshot(&outside)
        ) == before,
        "a refused adopt changed something"
    );
    Ok(())
}

fn dry_run_runs_every_check_prints_the_plan_and_changes_nothing() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    app_state(&sb.root)?;
    let cfg_before = std::fs::read(&sb.config).map_err(e2s)?;
    let before = (mounts_and_store(&sb), snapshot(&sb.root));
    let out = adopt(
        &sb,
        &[
            "--dry-run",
            "--store",
            "/persist",
            "--write-config",
            "/var/lib/app",
            "/opt/tool",
        ],
    );
    // /opt/tool is missing: the dry run refuses it as the real run would.
    check!(
        !out.status.success(),
        "dry run passed a missing path: {}",
        text(&out)
    );
    put(&sb.root, "opt/tool/t", b"tool")?;
    let before = (before.0, snapshot(&sb.root));
    let out = adopt(
        &sb,
        &[
            "--dry-run",
            "--store",
            "/persist",
            "--write-config",
            "/var/lib/app",
            "/opt/tool",
        ],
    );
    check!(out.status.success(), "dry run failed: {}", text(&out));
    let o = stdout(&out);
    for want in [
        "would copy directory /var/lib/app (10 entries, 67108876 bytes)",
        "would bind /persist/var/lib/app -> /var/lib/app",
        "would copy directory /opt/tool (2 entries, 4 bytes)",
        "would add directory /opt/tool to store /persist",
        "nothing changed",
    ] {
        check!(o.contains(want), "the plan lacks {want:?}: {}", text(&out));
    }
    check!(
        (mounts_and_store(&sb), snapshot(&sb.root)) == before,
        "the dry run changed something"
    );
    check!(
        std::fs::read(&sb.config).map_err(e2s)? == cfg_before,
        "the dry run changed the config"
    );
    Ok(())
}

/// Starts adopt of `path` with the `adopt-stop` failpoint and waits until it has stopped itself
/// in mid-copy (state T in /proc/PID/stat).
fn adopt_until_stopped(sb: &Sandbox, path: &str) -> Result<std::process::Child, String> {
    let utab = sb.base.join("utab");
    let mut child = crate::darlings(&sb.config, sb.base.join("run"))
        .args(["adopt", "--root", sb.root_str(), "--utab"])
        .arg(&utab)
        .arg(path)
        .env("DARLINGS_FAILPOINT", "adopt-stop")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(e2s)?;
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the ")" that ends the command name.
        if s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('T')) {
            return Ok(child);
        }
        if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(e2s)?;
            return Err(format!(
                "adopt did not stop at the failpoint: {}",
                text(&out)
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn an_interrupted_copy_is_started_over_by_the_next_adopt() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    app_state(&sb.root)?;
    // A real SIGKILL in mid-copy: the failpoint stops the process after two entries, and it is
    // killed while stopped.
    let mut child = adopt_until_stopped(&sb, "/var/lib/app")?;
    child.kill().map_err(e2s)?;
    let status = child.wait().map_err(e2s)?;
    check!(
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(9),
        "adopt was not killed: {status:?}"
    );
    let staging = sb.store.join("var/lib/.darlings-adopt-app.partial");
    check!(
        staging.join(".darlings-adopt").is_file() && staging.join("app").is_dir(),
        "no half-made staging copy after the kill"
    );
    check!(
        !sb.store.join("var/lib/app").exists() && !is_mount_point(&sb.root.join("var/lib/app")),
        "the killed adopt left a copy in place or a bind"
    );
    let dry = adopt(&sb, &["--dry-run", "/var/lib/app"]);
    check!(
        stdout(&dry).contains("would remove the staging directory"),
        "the dry run does not say it removes the stale staging: {}",
        text(&dry)
    );
    let out = adopt(&sb, &["/var/lib/app"]);
    check!(
        out.status.success(),
        "the adopt after the kill failed: {}",
        text(&out)
    );
    check!(!staging.exists(), "the stale staging directory is left");
    check_app_state(&sb.store.join("var/lib/app"))?;
    check!(
        is_mount_point(&sb.root.join("var/lib/app")),
        "/var/lib/app is not bound after the second run"
    );
    // Killed after the rename, before the staging directory went: the next run removes it.
    std::fs::create_dir_all(&staging).map_err(e2s)?;
    std::fs::write(staging.join(".darlings-adopt"), b"").map_err(e2s)?;
    let out = adopt(&sb, &["/var/lib/app"]);
    check!(
        out.status.success() && !staging.exists(),
        "a staging directory left after the rename was not removed: {}",
        text(&out)
    );
    // A directory of that name adopt did not make (no marker) is refused, never removed.
    mkdir(&sb.root, "srv")?;
    mkdir(&sb.store, ".darlings-adopt-srv.partial/keep")?;
    let out = adopt(&sb, &["/srv"]);
    check!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("was not made by adopt"),
        "a foreign staging directory was not refused: {}",
        text(&out)
    );
    check!(
        sb.store.join(".darlings-adopt-srv.partial/keep").exists(),
        "the foreign directory was removed"
    );
    Ok(())
}

fn a_root_that_changes_during_the_copy_fails_the_verify_and_the_store_stays_as_it_was() -> TestResult
{
    let sb = Sandbox::new(CONFIG)?;
    app_state(&sb.root)?;
    let before = mounts_and_store(&sb);
    let child = adopt_until_stopped(&sb, "/var/lib/app")?;
    // A program writes while adopt copies: a file already copied (acl.txt and current are the
    // first two) changes.
    put(&sb.root, "var/lib/app/acl.txt", b"rewritten\n")?;
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::CONT,
    )
    .map_err(e2s)?;
    let out = child.wait_with_output().map_err(e2s)?;
    let err = String::from_utf8_lossy(&out.stderr);
    check!(
        !out.status.success()
            && err.contains("does not match the root's")
            && err.contains(
                "/var/lib/app/acl.txt: modification time, size 10 in the root, 7 in the store"
            ),
        "the changed root was not caught by the verify: {}",
        text(&out)
    );
    unchanged(&sb, &before, "the failed verify")
}

fn refused_paths_denied_stores_mounts_beneath_and_unlisted() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    mkdir(&sb.root, "var/lib/app/cache")?;
    crate::mount_tmpfs(&sb.root.join("var/lib/app/cache"))?;
    mkdir(&sb.root, "var/lib/app/db")?;
    mkdir(&sb.root, "opt/x")?;
    mkdir(&sb.root, "home")?;
    crate::mount_tmpfs(&sb.root.join("home"))?;
    mkdir(&sb.root, "home/alice")?;
    let before = mounts_and_store(&sb);
    for (args, want) in [
        (&["/var/lib/app"][..], "mounts beneath it"),
        (&["--store", "/persist", "/proc/x"][..], "never persists"),
        (&["--store", "/persist", "/nix"][..], "/nix/store"),
        (&["--store", "/persist", "/persist"][..], "a store itself"),
        (
            &["--store", "/persist", "/persist/a"][..],
            "inside store /persist",
        ),
        (&["/opt/x"][..], "pass --store"),
        (
            &["--store", "/elsewhere", "/opt/x"][..],
            "store /elsewhere is not in config",
        ),
        (&["--store", "/persist", "/var/lib/app/db"][..], "inside"),
        (
            &["--store", "/persist", "/home/alice"][..],
            "another filesystem",
        ),
    ] {
        let out = adopt(&sb, args);
        check!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(want),
            "{args:?}: not refused with {want:?}: {}",
            text(&out)
        );
    }
    unchanged(&sb, &before, "a refused adopt")
}

fn write_config_appends_the_entry_keeping_comments_and_the_file_checks() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    put(&sb.root, "opt/tool/t", b"tool")?;
    put(&sb.root, "etc/tool.conf", b"x=1\n")?;
    let out = adopt(
        &sb,
        &[
            "--store",
            "/persist",
            "--write-config",
            "/opt/tool",
            "/etc/tool.conf",
        ],
    );
    check!(out.status.success(), "adopt failed: {}", text(&out));
    let cfg = std::fs::read_to_string(&sb.config).map_err(e2s)?;
    let want = CONFIG
        .replace("  \"/srv\",\n]", "  \"/srv\",\n  \"/opt/tool\",\n]")
        .replace(
            "files = [\"/etc/app.conf\"]",
            "files = [\"/etc/app.conf\", \"/etc/tool.conf\"]",
        );
    check!(
        cfg == want,
        "the config is not the old one plus the entries:\n{cfg}"
    );
    let check = sb.run(&["check", "--config-only"]);
    check!(
        check.status.success(),
        "the written config does not check: {}",
        text(&check)
    );
    for p in ["opt/tool", "etc/tool.conf"] {
        check!(is_mount_point(&sb.root.join(p)), "{p} is not bound");
    }
    // Now in the config: a plain adopt finds it, and does nothing more.
    let again = adopt(&sb, &["/opt/tool", "/etc/tool.conf"]);
    check!(
        again.status.success() && stdout(&again).contains("already adopted: /opt/tool"),
        "second adopt: {}",
        text(&again)
    );
    // A config rendered by NixOS (a symlink into a read-only place) is never written: the Nix
    // to add is printed instead.
    let nix_dir = sb.base.join("nixstore");
    std::fs::create_dir_all(&nix_dir).map_err(e2s)?;
    std::fs::copy(&sb.config, nix_dir.join("darlings.toml")).map_err(e2s)?;
    std::fs::remove_file(&sb.config).map_err(e2s)?;
    std::os::unix::fs::symlink(nix_dir.join("darlings.toml"), &sb.config).map_err(e2s)?;
    let nix_before = std::fs::read(nix_dir.join("darlings.toml")).map_err(e2s)?;
    mkdir(&sb.root, "opt/other")?;
    let out = adopt(
        &sb,
        &["--store", "/persist", "--write-config", "/opt/other"],
    );
    check!(
        out.status.success(),
        "adopt with a NixOS config failed: {}",
        text(&out)
    );
    check!(
        stdout(&out)
            .contains("darlings.persistence.\"/persist\".directories = [ \"/opt/other\" ];"),
        "the Nix line is missing: {}",
        text(&out)
    );
    check!(
        std::fs::read(nix_dir.join("darlings.toml")).map_err(e2s)? == nix_before,
        "the NixOS-rendered config was written"
    );
    Ok(())
}

/// A real Btrfs root (the `root` subvolume mounted as the root, `persist` beside it as the
/// store), as a live system has it.
fn adopt_on_a_btrfs_root() -> TestResult {
    let mut fs = Fs::btrfs("300M")?;
    let t = fs.top.display().to_string();
    sh(&format!(
        "set -e; cd {t}; btrfs -q subvolume create root; btrfs -q subvolume create persist; \
         mkdir -p root/persist; btrfs -q subvolume snapshot -r root root-blank"
    ))?;
    let sysroot = fs.base.join("sysroot");
    std::fs::create_dir(&sysroot).map_err(e2s)?;
    fs.mount_subvol("root", &sysroot)?;
    fs.mount_subvol("persist", &sysroot.join("persist"))?;
    app_state(&sysroot)?;
    let config = crate::btrfs_config(
        &fs,
        "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib/app\"]\n",
    )?;
    let run = |args: &[&str]| {
        crate::darlings(&config, fs.base.join("work"))
            .args(["adopt", "--root"])
            .arg(&sysroot)
            .arg("--utab")
            .arg(fs.base.join("utab"))
            .args(args)
            .output()
            .map_err(e2s)
    };
    let out = run(&["/var/lib/app"])?;
    check!(
        out.status.success(),
        "adopt on btrfs failed: {}",
        text(&out)
    );
    check_app_state(&fs.top.join("persist/var/lib/app"))?;
    check!(
        is_mount_point(&sysroot.join("var/lib/app")),
        "/var/lib/app is not bound on the btrfs root"
    );
    let again = run(&["/var/lib/app"])?;
    check!(
        again.status.success() && stdout(&again).contains("already adopted"),
        "second adopt on btrfs: {}",
        text(&again)
    );
    Ok(())
}

/// `adopt --all-suggested`: what `diff --suggest` proposes is adopted into the store and bound;
/// then nothing is left to suggest, and a second run has nothing to do.
fn adopt_all_suggested_adopts_what_diff_suggest_proposes() -> TestResult {
    let sb = Sandbox::new(CONFIG)?;
    put(&sb.root, "var/lib/other/db/x", b"state\n")?;
    put(&sb.root, "var/cache/junk/y", b"cache\n")?;
    let dry = adopt(
        &sb,
        &["--all-suggested", "--dry-run", "--store", "/persist"],
    );
    check!(dry.status.success(), "dry run: {}", text(&dry));
    check!(
        !sb.store.join("var/lib/other").exists(),
        "the dry run copied"
    );
    let out = adopt(&sb, &["--all-suggested", "--store", "/persist"]);
    check!(
        out.status.success(),
        "adopt --all-suggested: {}",
        text(&out)
    );
    check!(
        std::fs::read(sb.store.join("var/lib/other/db/x"))
            .ok()
            .as_deref()
            == Some(&b"state\n"[..]),
        "not in the store: {}",
        text(&out)
    );
    check!(
        is_mount_point(&sb.root.join("var/lib/other")),
        "/var/lib/other is not bound"
    );
    check!(!sb.store.join("var/cache").exists(), "a cache was adopted");
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "adopt_all_suggested_adopts_what_diff_suggest_proposes",
            adopt_all_suggested_adopts_what_diff_suggest_proposes,
        ),
        (
            "adopt_copies_everything_a_tree_holds_binds_it_and_a_second_adopt_is_a_no_op",
            adopt_copies_everything_a_tree_holds_binds_it_and_a_second_adopt_is_a_no_op,
        ),
        (
            "adopt_a_file_and_an_identical_store_copy_is_only_bound",
            adopt_a_file_and_an_identical_store_copy_is_only_bound,
        ),
        (
            "adopt_a_different_store_copy_is_refused_with_what_differs_and_nothing_changes",
            a_different_store_copy_is_refused_with_what_differs_and_nothing_changes,
        ),
        (
            "adopt_planted_symlinks_at_the_path_on_the_way_or_in_the_store_are_refused",
            planted_symlinks_at_the_path_on_the_way_or_in_the_store_are_refused,
        ),
        (
            "adopt_dry_run_runs_every_check_prints_the_plan_and_changes_nothing",
            dry_run_runs_every_check_prints_the_plan_and_changes_nothing,
        ),
        (
            "adopt_an_interrupted_copy_is_started_over_by_the_next_adopt",
            an_interrupted_copy_is_started_over_by_the_next_adopt,
        ),
        (
            "adopt_a_root_that_changes_during_the_copy_fails_the_verify_and_the_store_stays_as_it_was",
            a_root_that_changes_during_the_copy_fails_the_verify_and_the_store_stays_as_it_was,
        ),
        (
            "adopt_refused_paths_denied_stores_mounts_beneath_and_unlisted",
            refused_paths_denied_stores_mounts_beneath_and_unlisted,
        ),
        (
            "adopt_write_config_appends_the_entry_keeping_comments_and_the_file_checks",
            write_config_appends_the_entry_keeping_comments_and_the_file_checks,
        ),
        ("adopt_on_a_btrfs_root", adopt_on_a_btrfs_root),
    ]
}
