//! Privileged tests on real mounts: apply into a real tmpfs root from a store on another
//! filesystem, refusals, symlink attacks, hide-mounts, deferred ownership, the tmpfs backend.
//!
//! Its own harness (`harness = false`): the process enters a private mount namespace before any
//! thread exists (unshare(CLONE_NEWNS) refuses multi-threaded callers), so nothing a test mounts
//! can leak onto the machine. Not root is a failure, never a skip.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rustix::mount::{mount, MountFlags};

const BIN: &str = env!("CARGO_BIN_EXE_darlings");

pub type TestResult = Result<(), String>;
pub type Case = (&'static str, fn() -> TestResult);

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

mod adopt;
mod boot;
mod btrfs_diff;
mod btrfs_differential;
mod btrfs_rollback;
mod fleet;
#[path = "../support/loopdev.rs"]
mod loopdev;
mod lost_state;
#[path = "../support/ns.rs"]
mod ns;
mod recover;
mod safety;
mod whole_os;

struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    store: PathBuf,
    config: PathBuf,
}

impl Sandbox {
    /// A fresh tmpfs root (mounted by `darlings rollback`, the real backend) with a store on a
    /// second tmpfs at `<root>/persist`, and `config` as the config file.
    fn new(config: &str) -> Result<Sandbox, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let base = dir.path().to_path_buf();
        let root = base.join("root");
        std::fs::create_dir(&root).map_err(|e| e.to_string())?;
        let cfg = base.join("darlings.toml");
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let sb = Sandbox {
            _dir: dir,
            base,
            store: root.join("persist"),
            root,
            config: cfg,
        };
        let out = sb.run(&["rollback", "--root", sb.root_str()]);
        check!(out.status.success(), "rollback failed: {}", text(&out));
        std::fs::create_dir(&sb.store).map_err(|e| e.to_string())?;
        mount_tmpfs(&sb.store)?;
        Ok(sb)
    }

    fn root_str(&self) -> &str {
        self.root.to_str().unwrap_or("/nonexistent")
    }

    fn run(&self, args: &[&str]) -> Output {
        darlings(&self.config, self.base.join("run"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    }

    fn apply(&self) -> Output {
        let utab = self.base.join("utab");
        self.run(&[
            "apply",
            "--root",
            self.root_str(),
            "--utab",
            utab.to_str().unwrap_or(""),
        ])
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Lazy recursive unmount: the namespace is private, this only tidies for the next test.
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.root)
            .status();
    }
}

/// `darlings --config <config> --work-dir <work>`, for the caller's further arguments: each test
/// has a work dir of its own, since the lock in the default /run/darlings is the machine's.
pub fn darlings(config: impl AsRef<Path>, work: impl AsRef<Path>) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(config.as_ref())
        .arg("--work-dir")
        .arg(work.as_ref());
    c
}

/// Writes `<fs.base>/darlings.toml`: a Btrfs root on `fs`'s device, then `rest`; returns its
/// path.
pub fn btrfs_config(fs: &loopdev::Fs, rest: &str) -> Result<PathBuf, String> {
    let path = fs.base.join("darlings.toml");
    let text = format!(
        "[root]\nbackend = \"btrfs\"\ndevice = \"{}\"\n{rest}",
        fs.dev()
    );
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Makes the directory `rel` below `base`, with its parents.
pub fn mkdir(base: &Path, rel: &str) -> TestResult {
    let p = base.join(rel);
    std::fs::create_dir_all(&p).map_err(|e| format!("cannot make {}: {e}", p.display()))
}

/// Writes the file `rel` below `base`, making its parents first.
pub fn put(base: &Path, rel: &str, data: &[u8]) -> TestResult {
    let p = base.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    }
    std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))
}

fn mount_tmpfs(at: &Path) -> TestResult {
    mount("tmpfs", at, "tmpfs", MountFlags::empty(), c"mode=0755")
        .map_err(|e| format!("mount tmpfs on {}: {e}", at.display()))
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every mount point in this namespace, from mountinfo (for "nothing was mounted" checks).
fn mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

pub fn is_mount_point(p: &Path) -> bool {
    let s = p.to_str().unwrap_or("");
    mounts().iter().any(|m| m == s)
}

/// Every path below `dir`, for "nothing was created" checks.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

const BASIC: &str = r#"
[root]
backend = "tmpfs"
[[persist]]
store = "/persist"
directories = ["/var/log", { path = "/var/lib/app", user = 1234, group = 5678, mode = "0750", parent = { user = 11, group = 12, mode = "0711" } }]
files = ["/etc/machine-id", "/etc/ssh/key"]
"#;

fn apply_into_tmpfs_root_from_store_on_another_filesystem() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    std::fs::create_dir_all(sb.store.join("var/log")).map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("var/log/old.log"), b"kept").map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(out.status.success(), "apply failed: {}", text(&out));
    check!(
        std::fs::read(sb.root.join("var/log/old.log"))
            .ok()
            .as_deref()
            == Some(&b"kept"[..]),
        "persisted content not visible"
    );
    for p in ["var/log", "var/lib/app", "etc/machine-id", "etc/ssh/key"] {
        check!(is_mount_point(&sb.root.join(p)), "{p} is not a mount point");
    }
    // Writes through the bind land in the store.
    std::fs::write(sb.root.join("var/log/new.log"), b"new").map_err(|e| e.to_string())?;
    check!(
        sb.store.join("var/log/new.log").exists(),
        "write did not reach the store"
    );
    // nosuid,nodev by default.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let line = info
        .lines()
        .find(|l| l.contains(&format!("{}/var/log ", sb.root.display())))
        .unwrap_or("");
    check!(
        line.contains("nosuid") && line.contains("nodev"),
        "flags missing: {line}"
    );
    Ok(())
}

fn reapply_is_a_no_op() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    let first = sb.apply();
    check!(first.status.success(), "{}", text(&first));
    let before = mounts();
    let second = sb.apply();
    check!(second.status.success(), "{}", text(&second));
    check!(
        String::from_utf8_lossy(&second.stdout).contains("0 bound, 4 already in place"),
        "{}",
        text(&second)
    );
    check!(mounts() == before, "second apply changed the mount table");
    Ok(())
}

/// `openat2` calls of one apply, by `strace -f -c`: resolving every path once per pass (the
/// check pass only stats; the execution pass binds what it opened or created) costs 897 for
/// these 200 entries on a fresh root with an empty store (each entry looked up and made in both
/// trees) and 492 on the re-apply, where resolving each path anew at every step cost 2,137 and
/// 892.
fn apply_resolves_each_path_once_per_pass() -> TestResult {
    const DIRS: usize = 100;
    const FILES: usize = 100;
    let mut cfg = String::from(
        "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [",
    );
    for i in 0..DIRS {
        cfg.push_str(&format!("\"/srv/d{}/dir{i}\", ", i % 10));
    }
    cfg.push_str("]\nfiles = [");
    for i in 0..FILES {
        cfg.push_str(&format!("\"/etc/f{}/file{i}\", ", i % 10));
    }
    cfg.push_str("]\n");
    let sb = Sandbox::new(&cfg)?;
    let count = |what: &str| -> Result<usize, String> {
        let out = sb.base.join(format!("strace-{what}"));
        let o = Command::new("strace")
            .args(["-f", "-c", "-e", "trace=openat2", "-o"])
            .arg(&out)
            .arg(BIN)
            .arg("--config")
            .arg(&sb.config)
            .arg("--work-dir")
            .arg(sb.base.join("run"))
            .args(["apply", "--root", sb.root_str(), "--utab"])
            .arg(sb.base.join("utab"))
            .output()
            .map_err(|e| format!("cannot run strace (tests/setup installs it): {e}"))?;
        check!(o.status.success(), "{what} apply: {}", text(&o));
        let report = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
        report
            .lines()
            .find(|l| l.trim_end().ends_with(" openat2"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("no openat2 count in strace's report:\n{report}"))
    };
    let n = DIRS + FILES;
    let fresh = count("fresh")?;
    let again = count("again")?;
    // Per entry: source and target each looked up and made (fresh) or opened (again); the 22
    // directories on the way in each tree are opened once per pass.
    check!(
        fresh <= 4 * n + 150,
        "fresh apply: {fresh} openat2 for {n} entries (more than 4 each)"
    );
    check!(
        again <= 2 * n + 120,
        "re-apply: {again} openat2 for {n} entries (more than 2 each)"
    );
    for i in 0..DIRS {
        let t = format!("srv/d{}/dir{i}", i % 10);
        check!(is_mount_point(&sb.root.join(&t)), "{t} not bound");
    }
    Ok(())
}

fn created_parents_and_entries_get_owner_group_mode() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    for base in [&sb.root, &sb.store] {
        let var = std::fs::metadata(base.join("var")).map_err(|e| e.to_string())?;
        let lib = std::fs::metadata(base.join("var/lib")).map_err(|e| e.to_string())?;
        check!(
            (var.uid(), var.gid(), var.mode() & 0o7777) == (11, 12, 0o711),
            "{}/var: {}:{} {:o}",
            base.display(),
            var.uid(),
            var.gid(),
            var.mode()
        );
        check!(
            (lib.uid(), lib.gid(), lib.mode() & 0o7777) == (11, 12, 0o711),
            "var/lib: {}:{} {:o}",
            lib.uid(),
            lib.gid(),
            lib.mode()
        );
    }
    // The entry itself, created in the store, carries the entry's owner (seen through the bind).
    let app = std::fs::metadata(sb.root.join("var/lib/app")).map_err(|e| e.to_string())?;
    check!(
        (app.uid(), app.gid(), app.mode() & 0o7777) == (1234, 5678, 0o750),
        "app: {}:{} {:o}",
        app.uid(),
        app.gid(),
        app.mode()
    );
    let etc = std::fs::metadata(sb.root.join("etc/ssh")).map_err(|e| e.to_string())?;
    check!(
        (etc.uid(), etc.mode() & 0o7777) == (0, 0o755),
        "etc/ssh: {} {:o}",
        etc.uid(),
        etc.mode()
    );
    Ok(())
}

fn existing_directories_are_never_chowned() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    std::fs::create_dir_all(sb.root.join("var")).map_err(|e| e.to_string())?;
    std::fs::set_permissions(sb.root.join("var"), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    let var = std::fs::metadata(sb.root.join("var")).map_err(|e| e.to_string())?;
    check!(
        (var.uid(), var.mode() & 0o7777) == (0, 0o700),
        "existing /var changed: {} {:o}",
        var.uid(),
        var.mode()
    );
    Ok(())
}

fn machine_id_is_seeded_only_when_the_store_has_none() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    check!(
        std::fs::read(sb.root.join("etc/machine-id"))
            .ok()
            .as_deref()
            == Some(&b"uninitialized\n"[..]),
        "not seeded"
    );
    let sb2 = Sandbox::new(BASIC)?;
    std::fs::create_dir_all(sb2.store.join("etc")).map_err(|e| e.to_string())?;
    std::fs::write(
        sb2.store.join("etc/machine-id"),
        b"0123456789abcdef0123456789abcdef\n",
    )
    .map_err(|e| e.to_string())?;
    let out = sb2.apply();
    check!(out.status.success(), "{}", text(&out));
    let got = std::fs::read(sb2.root.join("etc/machine-id")).unwrap_or_default();
    check!(
        got == b"0123456789abcdef0123456789abcdef\n",
        "store machine-id not used: {got:?}"
    );
    Ok(())
}

fn non_empty_target_directory_is_refused_and_nothing_changes() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    std::fs::create_dir_all(sb.root.join("var/log")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("var/log/precious"), b"x").map_err(|e| e.to_string())?;
    let before_root = tree(&sb.root);
    let before_mounts = mounts();
    let out = sb.apply();
    check!(
        !out.status.success(),
        "apply over a non-empty dir succeeded: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    check!(
        err.contains("target directory")
            && err.contains("var/log is not empty")
            && err.contains("nothing was changed"),
        "{err}"
    );
    check!(
        tree(&sb.root) == before_root,
        "apply created files before refusing"
    );
    check!(
        mounts() == before_mounts,
        "apply mounted something before refusing"
    );
    Ok(())
}

fn differing_existing_file_is_refused_identical_and_empty_are_bound() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nfiles = [\"/etc/a\", \"/etc/b\", \"/etc/c\"]\n";
    let sb = Sandbox::new(cfg)?;
    std::fs::create_dir_all(sb.root.join("etc")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(sb.store.join("etc")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/a"), b"same").map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("etc/a"), b"same").map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/b"), b"").map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("etc/b"), b"stored").map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/c"), b"root version").map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("etc/c"), b"store version").map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    check!(err.contains("etc/c differs from the store's copy"), "{err}");
    check!(
        !err.contains("etc/a") && !err.contains("etc/b"),
        "identical/empty files refused: {err}"
    );
    check!(
        !is_mount_point(&sb.root.join("etc/a")),
        "partial apply despite a refusal"
    );
    std::fs::remove_file(sb.root.join("etc/c")).map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    check!(
        std::fs::read(sb.root.join("etc/b")).unwrap_or_default() == b"stored",
        "empty target not bound"
    );
    check!(
        std::fs::read(sb.root.join("etc/c")).unwrap_or_default() == b"store version",
        "c not bound"
    );
    Ok(())
}

/// A symlink planted at every position of a path, in the root and in the store, pointing
/// outside: refused, and nothing is created or mounted outside the root.
fn planted_symlinks_are_refused_at_every_position() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/a/b/c\"]\nfiles = [\"/f/g/h\"]\n";
    let positions: &[(&str, &str)] = &[
        ("a", "first component of a directory entry"),
        ("a/b", "middle component of a directory entry"),
        ("a/b/c", "last component of a directory entry"),
        ("f", "first component of a file entry"),
        ("f/g", "middle component of a file entry"),
        ("f/g/h", "last component of a file entry"),
    ];
    for side in ["root", "store"] {
        for (rel, what) in positions {
            let sb = Sandbox::new(cfg)?;
            let outside = sb.base.join("outside");
            std::fs::create_dir_all(outside.join("b/c")).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(outside.join("g")).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(outside.join("c")).map_err(|e| e.to_string())?;
            let top = if side == "root" {
                sb.root.clone()
            } else {
                sb.store.clone()
            };
            let link = top.join(rel);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let dest = if rel.ends_with('h') {
                outside.join("g/h")
            } else {
                outside.clone()
            };
            std::os::unix::fs::symlink(&dest, &link).map_err(|e| e.to_string())?;
            let before_outside = tree(&outside);
            let before_mounts = mounts();
            let out = sb.apply();
            check!(
                !out.status.success(),
                "{side} {what}: apply followed a symlink: {}",
                text(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            check!(
                err.contains("symlink") && err.contains(rel),
                "{side} {what}: message: {err}"
            );
            check!(
                tree(&outside) == before_outside,
                "{side} {what}: something was created outside the root"
            );
            check!(
                mounts() == before_mounts,
                "{side} {what}: something was mounted"
            );
            // --dry-run and check refuse the same way.
            let dry = sb.run(&["apply", "--root", sb.root_str(), "--dry-run"]);
            check!(
                !dry.status.success(),
                "{side} {what}: dry run accepted a symlink"
            );
        }
    }
    Ok(())
}

fn symlinked_store_is_refused() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    Command::new("umount")
        .arg(&sb.store)
        .status()
        .map_err(|e| e.to_string())?;
    std::fs::remove_dir(&sb.store).map_err(|e| e.to_string())?;
    let real = sb.base.join("realstore");
    std::fs::create_dir(&real).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(&real, &sb.store).map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(!out.status.success(), "{}", text(&out));
    check!(
        String::from_utf8_lossy(&out.stderr).contains("store path")
            && String::from_utf8_lossy(&out.stderr).contains("symlink"),
        "{}",
        text(&out)
    );
    check!(tree(&real).is_empty(), "created inside the symlinked store");
    Ok(())
}

fn unmounted_store_is_refused() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    Command::new("umount")
        .arg(&sb.store)
        .status()
        .map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(!out.status.success(), "{}", text(&out));
    check!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is on the root's filesystem (a directory of the root's own filesystem"),
        "{}",
        text(&out)
    );
    Ok(())
}

fn symlink_method_links_into_the_store_and_refuses_what_it_would_lose() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nfiles = [{ path = \"/etc/app/state.json\", method = \"symlink\" }, { path = \"/etc/empty\", method = \"symlink\" }]\n";
    let sb = Sandbox::new(cfg)?;
    // An empty file where a link belongs is replaced; the store's parents are made so that a
    // program writing through the link lands in the store.
    std::fs::create_dir_all(sb.root.join("etc")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/empty"), "").map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    for (target, want) in [
        ("etc/app/state.json", "/persist/etc/app/state.json"),
        ("etc/empty", "/persist/etc/empty"),
    ] {
        let link =
            std::fs::read_link(sb.root.join(target)).map_err(|e| format!("{target}: {e}"))?;
        check!(link == Path::new(want), "{target} -> {}", link.display());
    }
    check!(
        sb.store.join("etc/app").is_dir(),
        "store parent not created"
    );
    check!(
        !mounts().iter().any(|m| m.ends_with("state.json")),
        "a link entry was bind-mounted"
    );
    // Written through the link, the data is in the store.
    std::fs::write(sb.store.join("etc/app/state.json"), "{}").map_err(|e| e.to_string())?;
    let again = sb.apply();
    check!(again.status.success(), "{}", text(&again));
    check!(
        String::from_utf8_lossy(&again.stdout).contains("0 bound, 2 already in place"),
        "{}",
        text(&again)
    );
    // What a link would lose or hide is refused, and nothing changes.
    std::fs::remove_file(sb.root.join("etc/empty")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/empty"), "data").map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(!out.status.success(), "{}", text(&out));
    check!(
        String::from_utf8_lossy(&out.stderr)
            .contains("has content, and linking it into the store would lose it"),
        "{}",
        text(&out)
    );
    check!(
        std::fs::read(sb.root.join("etc/empty")).unwrap_or_default() == b"data",
        "content touched"
    );
    std::fs::remove_file(sb.root.join("etc/empty")).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink("/elsewhere", sb.root.join("etc/empty"))
        .map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is a symlink to /elsewhere, not to /persist/etc/empty"),
        "{}",
        text(&out)
    );
    Ok(())
}

fn allow_trash_and_per_directory_hide_mount_reach_the_utab() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nallow-trash = true\ndirectories = [{ path = \"/srv/a\", hide-mount = true }, \"/srv/b\", { path = \"/srv/c\", allow-trash = false }]\n";
    let sb = Sandbox::new(cfg)?;
    let utab = sb.base.join("utab");
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    let text_utab = std::fs::read_to_string(&utab).map_err(|e| e.to_string())?;
    let line = |t: &str| {
        text_utab
            .lines()
            .find(|l| l.contains(&format!("{t} ROOT=")))
            .unwrap_or("")
            .to_string()
    };
    check!(
        line("/srv/a").ends_with("OPTS=x-gvfs-hide,x-gvfs-trash"),
        "{text_utab}"
    );
    check!(line("/srv/b").ends_with("OPTS=x-gvfs-trash"), "{text_utab}");
    check!(
        line("/srv/c").is_empty(),
        "a bind with neither option is in the utab: {text_utab}"
    );
    Ok(())
}

fn hide_mounts_shows_x_gvfs_hide() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\nhide-mounts = true\ndirectories = [\"/var/log\"]\n[[persist]]\nstore = \"/other\"\ndirectories = [\"/srv\"]\n";
    let sb = Sandbox::new(cfg)?;
    std::fs::create_dir(sb.root.join("other")).map_err(|e| e.to_string())?;
    mount_tmpfs(&sb.root.join("other"))?;
    // findmnt reads the utab at its fixed path: give it a private one.
    std::fs::create_dir_all("/run/mount").map_err(|e| e.to_string())?;
    let out = sb.run(&[
        "apply",
        "--root",
        sb.root_str(),
        "--utab",
        "/run/mount/utab",
    ]);
    check!(out.status.success(), "{}", text(&out));
    let fm = |p: &Path| {
        let o = Command::new("findmnt")
            .args(["--mtab", "-n", "-o", "OPTIONS"])
            .arg(p)
            .output()
            .ok();
        o.map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    };
    let log = fm(&sb.root.join("var/log"));
    let srv = fm(&sb.root.join("srv"));
    check!(
        log.contains("x-gvfs-hide"),
        "hidden mount lacks x-gvfs-hide: {log}"
    );
    check!(
        !srv.contains("x-gvfs-hide"),
        "unhidden mount has x-gvfs-hide: {srv}"
    );
    // Re-apply does not duplicate utab lines.
    let again = sb.run(&[
        "apply",
        "--root",
        sb.root_str(),
        "--utab",
        "/run/mount/utab",
    ]);
    check!(again.status.success(), "{}", text(&again));
    let utab = std::fs::read_to_string("/run/mount/utab").unwrap_or_default();
    check!(
        utab.lines()
            .filter(|l| l.contains("/var/log ROOT="))
            .count()
            == 1,
        "utab: {utab}"
    );
    Ok(())
}

fn deferred_ownership_is_finished_by_a_later_apply() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/lib/colord\", user = \"colord\", group = \"colord\" }, \"/var/log\"]\n[persist.users.alice]\ndirectories = [\"Documents\"]\nfiles = [\".bash_history\"]\n";
    let sb = Sandbox::new(cfg)?;
    let plan = sb.run(&["plan", "--root", sb.root_str(), "--json"]);
    check!(plan.status.success(), "{}", text(&plan));
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).map_err(|e| e.to_string())?;
    let deferred: Vec<&serde_json::Value> = v["steps"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["op"] == "deferred").collect())
        .unwrap_or_default();
    check!(deferred.len() == 3, "want 3 deferred steps: {v}");
    let first = sb.apply();
    check!(first.status.success(), "{}", text(&first));
    check!(
        String::from_utf8_lossy(&first.stdout).contains("1 bound, 0 already in place, 3 deferred"),
        "{}",
        text(&first)
    );
    check!(
        !sb.root.join("var/lib/colord").exists(),
        "deferred entry was created"
    );
    // Activation writes the accounts; the late apply finishes the job.
    std::fs::write(sb.root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\ncolord:x:997:996::/var/lib/colord:/bin/false\nalice:x:1000:100::/home/alice:/bin/sh\n").or_else(|_| {
        std::fs::create_dir_all(sb.root.join("etc"))?;
        std::fs::write(sb.root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\ncolord:x:997:996::/var/lib/colord:/bin/false\nalice:x:1000:100::/home/alice:/bin/sh\n")
    }).map_err(|e| e.to_string())?;
    std::fs::write(
        sb.root.join("etc/group"),
        "root:x:0:\ncolord:x:996:\nusers:x:100:\n",
    )
    .map_err(|e| e.to_string())?;
    let second = sb.apply();
    check!(second.status.success(), "{}", text(&second));
    check!(
        String::from_utf8_lossy(&second.stdout).contains("3 bound, 1 already in place, 0 deferred"),
        "{}",
        text(&second)
    );
    let colord = std::fs::metadata(sb.root.join("var/lib/colord")).map_err(|e| e.to_string())?;
    check!(
        (colord.uid(), colord.gid()) == (997, 996),
        "colord owner {}:{}",
        colord.uid(),
        colord.gid()
    );
    let home = std::fs::metadata(sb.root.join("home/alice")).map_err(|e| e.to_string())?;
    check!(
        (home.uid(), home.gid(), home.mode() & 0o7777) == (1000, 100, 0o700),
        "home {}:{} {:o}",
        home.uid(),
        home.gid(),
        home.mode()
    );
    let homes = std::fs::metadata(sb.root.join("home")).map_err(|e| e.to_string())?;
    check!(
        (homes.uid(), homes.mode() & 0o7777) == (0, 0o755),
        "/home {} {:o}",
        homes.uid(),
        homes.mode()
    );
    let docs =
        std::fs::metadata(sb.root.join("home/alice/Documents")).map_err(|e| e.to_string())?;
    check!(
        (docs.uid(), docs.mode() & 0o7777) == (1000, 0o700),
        "Documents {} {:o}",
        docs.uid(),
        docs.mode()
    );
    let hist =
        std::fs::metadata(sb.root.join("home/alice/.bash_history")).map_err(|e| e.to_string())?;
    check!(
        (hist.uid(), hist.mode() & 0o7777) == (1000, 0o600),
        ".bash_history {} {:o}",
        hist.uid(),
        hist.mode()
    );
    check!(
        is_mount_point(&sb.root.join("home/alice/Documents")),
        "Documents not bound"
    );
    Ok(())
}

fn tmpfs_rollback_mounts_verifies_and_refuses() -> TestResult {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[root]\nbackend = \"tmpfs\"\nsize = \"64m\"\n")
        .map_err(|e| e.to_string())?;
    let root = dir.path().join("root");
    std::fs::create_dir(&root).map_err(|e| e.to_string())?;
    let run = |args: &[&str]| {
        darlings(&cfg, dir.path().join("run"))
            .args(args)
            .arg("--root")
            .arg(&root)
            .output()
    };
    let dry = run(&["rollback", "--dry-run"]).map_err(|e| e.to_string())?;
    check!(
        dry.status.success()
            && String::from_utf8_lossy(&dry.stdout)
                .contains("would: mount a fresh tmpfs (mode=0755,uid=0,gid=0,size=64m)"),
        "{}",
        text(&dry)
    );
    check!(!is_mount_point(&root), "dry run mounted");
    let first = run(&["rollback"]).map_err(|e| e.to_string())?;
    check!(first.status.success(), "{}", text(&first));
    check!(is_mount_point(&root), "no tmpfs mounted");
    let md = std::fs::metadata(&root).map_err(|e| e.to_string())?;
    check!(
        (md.uid(), md.gid(), md.mode() & 0o7777) == (0, 0, 0o755),
        "root {}:{} {:o}",
        md.uid(),
        md.gid(),
        md.mode()
    );
    let before = mounts();
    let second = run(&["rollback"]).map_err(|e| e.to_string())?;
    check!(
        second.status.success()
            && String::from_utf8_lossy(&second.stdout).contains("already a fresh tmpfs"),
        "{}",
        text(&second)
    );
    check!(mounts() == before, "second rollback mounted again");
    std::fs::write(root.join("file"), b"x").map_err(|e| e.to_string())?;
    let used = run(&["rollback"]).map_err(|e| e.to_string())?;
    check!(
        !used.status.success()
            && String::from_utf8_lossy(&used.stderr).contains("already holds files"),
        "{}",
        text(&used)
    );
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).map_err(|e| e.to_string())?;
    std::fs::write(plain.join("precious"), b"x").map_err(|e| e.to_string())?;
    let o = darlings(&cfg, dir.path().join("run"))
        .args(["rollback", "--root"])
        .arg(&plain)
        .output()
        .map_err(|e| e.to_string())?;
    check!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("would hide them"),
        "{}",
        text(&o)
    );
    check!(
        plain.join("precious").exists() && !is_mount_point(&plain),
        "non-empty dir was mounted over"
    );
    let _ = Command::new("umount").arg(&root).status();
    Ok(())
}

fn tmpfs_diff_reports_lost_and_skips_binds() -> TestResult {
    let cfg = "[root]\nbackend = \"tmpfs\"\n[diff]\nignore = [\"/tmp/**\"]\n[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\nfiles = [\"/etc/machine-id\"]\n";
    let sb = Sandbox::new(cfg)?;
    let out = sb.apply();
    check!(out.status.success(), "{}", text(&out));
    std::fs::write(sb.root.join("var/log/x.log"), b"persisted data").map_err(|e| e.to_string())?;
    std::fs::create_dir_all(sb.root.join("home/bob")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("home/bob/notes"), b"12345").map_err(|e| e.to_string())?;
    std::fs::create_dir_all(sb.root.join("tmp")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("tmp/junk"), b"j").map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("etc/hostname"), b"box\n").map_err(|e| e.to_string())?;
    let o = sb.run(&["diff", "--root", sb.root_str(), "--json"]);
    check!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).map_err(|e| e.to_string())?;
    let mut by_class: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in v["entries"].as_array().cloned().unwrap_or_default() {
        by_class
            .entry(e["class"].as_str().unwrap_or("").into())
            .or_default()
            .push(e["path"].as_str().unwrap_or("").into());
    }
    let lost = by_class.get("lost").cloned().unwrap_or_default();
    check!(
        lost == ["/etc/hostname", "/home", "/home/bob", "/home/bob/notes"],
        "lost: {lost:?}"
    );
    check!(
        by_class.get("ignored").cloned().unwrap_or_default() == ["/tmp", "/tmp/junk"],
        "{by_class:?}"
    );
    let all: Vec<String> = by_class.values().flatten().cloned().collect();
    check!(
        !all.iter().any(|p| p.starts_with("/var/log/")
            || p.starts_with("/persist")
            || p == "/etc/machine-id"),
        "walk crossed a mount: {all:?}"
    );
    check!(
        v["summary"]["lost"]["bytes"] == 9,
        "bytes: {}",
        v["summary"]
    );
    Ok(())
}

fn check_command_validates_against_the_live_root() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    let ok = sb.run(&["check", "--root", sb.root_str()]);
    check!(ok.status.success(), "{}", text(&ok));
    check!(
        String::from_utf8_lossy(&ok.stdout).contains("plan of 4 step(s) checks out"),
        "{}",
        text(&ok)
    );
    std::fs::create_dir_all(sb.root.join("var/log")).map_err(|e| e.to_string())?;
    std::fs::write(sb.root.join("var/log/x"), b"x").map_err(|e| e.to_string())?;
    let bad = sb.run(&["check", "--root", sb.root_str()]);
    check!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("is not empty"),
        "{}",
        text(&bad)
    );
    check!(
        !is_mount_point(&sb.root.join("etc/machine-id")),
        "check mounted something"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = libtest_mimic::Arguments::from_args();
    // One test at a time unless asked: tests share /run/mount, loop devices and the work dirs
    // they name, and a failing one is easier to read alone.
    args.test_threads.get_or_insert(1);
    // Listing (nextest asks with --list first) needs no root; running does, and fails without.
    if !args.list {
        if let Err(e) = ns::enter_private_mount_namespace("the privileged tests") {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
        // A private /run/mount, so utab writes stay in this namespace.
        let _ = std::fs::create_dir_all("/run/mount");
        if let Err(e) = mount_tmpfs(Path::new("/run/mount")) {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    libtest_mimic::run(&args, trials()).exit_code()
}

/// Every case of every module, as libtest-mimic trials (`--list`, `--exact`, `--skip`, and
/// nextest's one-process-per-test all work).
fn trials() -> Vec<libtest_mimic::Trial> {
    let tests: &[Case] = &[
        (
            "apply_into_tmpfs_root_from_store_on_another_filesystem",
            apply_into_tmpfs_root_from_store_on_another_filesystem,
        ),
        ("reapply_is_a_no_op", reapply_is_a_no_op),
        (
            "apply_resolves_each_path_once_per_pass",
            apply_resolves_each_path_once_per_pass,
        ),
        (
            "created_parents_and_entries_get_owner_group_mode",
            created_parents_and_entries_get_owner_group_mode,
        ),
        (
            "existing_directories_are_never_chowned",
            existing_directories_are_never_chowned,
        ),
        (
            "machine_id_is_seeded_only_when_the_store_has_none",
            machine_id_is_seeded_only_when_the_store_has_none,
        ),
        (
            "non_empty_target_directory_is_refused_and_nothing_changes",
            non_empty_target_directory_is_refused_and_nothing_changes,
        ),
        (
            "differing_existing_file_is_refused_identical_and_empty_are_bound",
            differing_existing_file_is_refused_identical_and_empty_are_bound,
        ),
        (
            "planted_symlinks_are_refused_at_every_position",
            planted_symlinks_are_refused_at_every_position,
        ),
        ("symlinked_store_is_refused", symlinked_store_is_refused),
        ("unmounted_store_is_refused", unmounted_store_is_refused),
        (
            "hide_mounts_shows_x_gvfs_hide",
            hide_mounts_shows_x_gvfs_hide,
        ),
        (
            "symlink_method_links_into_the_store_and_refuses_what_it_would_lose",
            symlink_method_links_into_the_store_and_refuses_what_it_would_lose,
        ),
        (
            "allow_trash_and_per_directory_hide_mount_reach_the_utab",
            allow_trash_and_per_directory_hide_mount_reach_the_utab,
        ),
        (
            "deferred_ownership_is_finished_by_a_later_apply",
            deferred_ownership_is_finished_by_a_later_apply,
        ),
        (
            "tmpfs_rollback_mounts_verifies_and_refuses",
            tmpfs_rollback_mounts_verifies_and_refuses,
        ),
        (
            "tmpfs_diff_reports_lost_and_skips_binds",
            tmpfs_diff_reports_lost_and_skips_binds,
        ),
        (
            "check_command_validates_against_the_live_root",
            check_command_validates_against_the_live_root,
        ),
    ];
    let mut all: Vec<Case> = tests.to_vec();
    all.extend(btrfs_rollback::cases());
    all.extend(fleet::cases());
    all.extend(btrfs_diff::cases());
    all.extend(boot::cases());
    all.extend(whole_os::cases());
    all.extend(safety::cases());
    all.extend(lost_state::cases());
    all.extend(recover::cases());
    all.extend(btrfs_differential::cases());
    all.extend(adopt::cases());
    all.into_iter()
        .map(|(name, f)| {
            // libtest-mimic catches a panic itself and reports its message.
            libtest_mimic::Trial::test(name, move || f().map_err(libtest_mimic::Failed::from))
        })
        .collect()
}
