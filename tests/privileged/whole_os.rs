//! Privileged tests of what a distribution's root brings that NixOS's does not (issue 11): a
//! root mounted read-only in the initrd (`ro` on the kernel command line, dracut's pre-pivot),
//! where apply must make its mount points through a writable path of its own; and a blank that
//! is a whole OS, whose persisted paths already have content (`seed-from-blank`).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::mount::{mount_remount, MountFlags};

use crate::btrfs_rollback::e2s;
use crate::loopdev::{sh, Fs};

use crate::{is_mount_point, mounts, text, Case, Sandbox, TestResult, BASIC};

/// Read-only for this mount only (`mount -o remount,bind,ro`): the filesystem stays writable.
fn remount_bind_ro(at: &Path) -> TestResult {
    mount_remount(at, MountFlags::BIND | MountFlags::RDONLY, c"")
        .map_err(|e| format!("remount,bind,ro {}: {e}", at.display()))
}

fn is_read_only(at: &Path) -> bool {
    rustix::fs::statvfs(at)
        .map(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
        .unwrap_or(false)
}

fn read_only_root_mount_gets_its_mount_points_through_a_private_clone() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    remount_bind_ro(&sb.root)?;
    check!(
        std::fs::create_dir(sb.root.join("probe")).is_err(),
        "the root is writable after remount,bind,ro"
    );
    let out = sb.apply();
    check!(
        out.status.success(),
        "apply on a read-only root failed: {}",
        text(&out)
    );
    for p in ["var/log", "var/lib/app", "etc/machine-id", "etc/ssh/key"] {
        check!(is_mount_point(&sb.root.join(p)), "{p} is not a mount point");
    }
    check!(
        std::fs::read(sb.root.join("etc/machine-id"))
            .ok()
            .as_deref()
            == Some(&b"uninitialized\n"[..]),
        "machine-id is not the store's seeded copy"
    );
    // The root's own mount is as read-only as before; the binds are writable into the store.
    check!(
        is_read_only(&sb.root),
        "the root mount is no longer read-only"
    );
    check!(
        std::fs::write(sb.root.join("stray"), b"x").is_err(),
        "a write onto the root succeeded"
    );
    std::fs::write(sb.root.join("var/log/new.log"), b"new").map_err(|e| e.to_string())?;
    check!(
        sb.store.join("var/log/new.log").exists(),
        "a write through the bind did not reach the store"
    );
    let before = mounts();
    let again = sb.apply();
    check!(
        again.status.success(),
        "second apply failed: {}",
        text(&again)
    );
    check!(mounts() == before, "the second apply changed the mounts");
    Ok(())
}

fn read_only_root_filesystem_is_refused_with_what_to_do() -> TestResult {
    let sb = Sandbox::new(BASIC)?;
    // The superblock itself read-only: no clone of the mount can write to it.
    mount_remount(&sb.root, MountFlags::RDONLY, c"")
        .map_err(|e| format!("remount,ro {}: {e}", sb.root.display()))?;
    let out = sb.apply();
    check!(
        !out.status.success(),
        "apply succeeded on a read-only filesystem: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    check!(
        err.contains("is on a filesystem that is itself read-only")
            && err.contains("mount the root's filesystem read-write in the initrd"),
        "the error does not say what is wrong and what to do: {}",
        text(&out)
    );
    for p in ["var/log", "var/lib/app", "etc/machine-id", "etc/ssh/key"] {
        check!(!is_mount_point(&sb.root.join(p)), "{p} was bound");
    }
    Ok(())
}

const SEEDED: &str = r#"
[root]
backend = "tmpfs"
[[persist]]
store = "/persist"
directories = [{ path = "/var/log", seed-from-blank = true }, "/srv"]
files = [{ path = "/etc/adjtime", seed-from-blank = true }]
"#;

/// What the Debian blank has at the seeded paths: nested directories, a file of another owner
/// and mode, a symlink, a fifo, an empty directory.
fn blank_content(root: &Path) -> TestResult {
    let e = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(root.join("var/log/apt")).map_err(e)?;
    std::fs::create_dir_all(root.join("var/log/private")).map_err(e)?;
    std::fs::write(
        root.join("var/log/apt/history.log"),
        b"Start-Date: install\n",
    )
    .map_err(e)?;
    std::fs::write(root.join("var/log/dpkg.log"), b"status installed\n").map_err(e)?;
    std::os::unix::fs::chown(root.join("var/log/dpkg.log"), Some(0), Some(4)).map_err(e)?;
    std::fs::set_permissions(
        root.join("var/log/dpkg.log"),
        std::fs::Permissions::from_mode(0o640),
    )
    .map_err(e)?;
    std::fs::set_permissions(
        root.join("var/log/private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .map_err(e)?;
    std::os::unix::fs::symlink("apt/history.log", root.join("var/log/latest")).map_err(e)?;
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("var/log/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(root.join("etc/adjtime"), b"0.0 0 0.0\n0\nUTC\n").map_err(e)?;
    Ok(())
}

fn seed_from_blank_copies_the_blanks_content_into_an_empty_store_then_binds() -> TestResult {
    let sb = Sandbox::new(SEEDED)?;
    std::fs::create_dir_all(sb.root.join("etc")).map_err(|e| e.to_string())?;
    blank_content(&sb.root)?;
    let out = sb.apply();
    check!(out.status.success(), "apply failed: {}", text(&out));
    check!(
        is_mount_point(&sb.root.join("var/log")),
        "/var/log is not bound"
    );
    check!(
        is_mount_point(&sb.root.join("etc/adjtime")),
        "/etc/adjtime is not bound"
    );
    let st = sb.store.clone();
    let read = |p: &str| std::fs::read(st.join(p)).unwrap_or_default();
    check!(
        read("var/log/apt/history.log") == b"Start-Date: install\n",
        "history.log not copied"
    );
    check!(
        read("var/log/dpkg.log") == b"status installed\n",
        "dpkg.log not copied"
    );
    check!(
        read("etc/adjtime") == b"0.0 0 0.0\n0\nUTC\n",
        "adjtime not copied"
    );
    let meta = |p: &str| std::fs::symlink_metadata(st.join(p));
    let dpkg = meta("var/log/dpkg.log").map_err(|e| e.to_string())?;
    check!(
        dpkg.gid() == 4 && dpkg.mode() & 0o7777 == 0o640,
        "dpkg.log owner/mode not kept: {}:{} {:o}",
        dpkg.uid(),
        dpkg.gid(),
        dpkg.mode()
    );
    let private = meta("var/log/private").map_err(|e| e.to_string())?;
    check!(
        private.is_dir() && private.mode() & 0o7777 == 0o700,
        "private dir mode not kept: {:o}",
        private.mode()
    );
    check!(
        std::fs::read_link(st.join("var/log/latest")).ok() == Some("apt/history.log".into()),
        "the symlink was not copied as a symlink"
    );
    check!(
        meta("var/log/fifo")
            .map(|m| m.file_type().is_fifo())
            .unwrap_or(false),
        "the fifo was not copied"
    );
    check!(
        !st.join("var/log.darlings-seed").exists() && !st.join("var/.log.darlings-seed").exists(),
        "the seed temporary is left"
    );
    // The bind shows the same content, and writes go to the store.
    check!(
        sb.root.join("var/log/apt/history.log").exists(),
        "the bound /var/log lacks the blank's content"
    );
    std::fs::write(sb.root.join("var/log/boot.log"), b"booted\n").map_err(|e| e.to_string())?;
    check!(
        st.join("var/log/boot.log").exists(),
        "a write through the bind did not reach the store"
    );
    // The second apply is a no-op: nothing copied again.
    let again = sb.apply();
    check!(
        again.status.success(),
        "second apply failed: {}",
        text(&again)
    );
    check!(
        !String::from_utf8_lossy(&again.stdout).contains("seeded"),
        "the second apply seeded again: {}",
        text(&again)
    );
    Ok(())
}

fn seed_from_blank_binds_the_stores_copy_over_the_blanks_once_it_has_one() -> TestResult {
    let sb = Sandbox::new(SEEDED)?;
    std::fs::create_dir_all(sb.root.join("etc")).map_err(|e| e.to_string())?;
    blank_content(&sb.root)?;
    std::fs::create_dir_all(sb.store.join("var/log")).map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("var/log/kept.log"), b"from the last boot\n")
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(sb.store.join("etc")).map_err(|e| e.to_string())?;
    std::fs::write(sb.store.join("etc/adjtime"), b"kept\n").map_err(|e| e.to_string())?;
    let out = sb.apply();
    check!(out.status.success(), "apply failed: {}", text(&out));
    check!(
        std::fs::read(sb.root.join("var/log/kept.log"))
            .ok()
            .as_deref()
            == Some(&b"from the last boot\n"[..]),
        "the store's /var/log is not what the root shows"
    );
    check!(
        !sb.root.join("var/log/dpkg.log").exists(),
        "the blank's copy shows through the bind"
    );
    check!(
        !sb.store.join("var/log/dpkg.log").exists(),
        "the blank's content was copied into a store that had its own"
    );
    check!(
        std::fs::read(sb.root.join("etc/adjtime")).ok().as_deref() == Some(&b"kept\n"[..]),
        "the store's /etc/adjtime is not bound over the blank's"
    );
    Ok(())
}

fn without_seed_from_blank_a_blank_with_content_is_still_refused() -> TestResult {
    let sb = Sandbox::new(&SEEDED.replace(", seed-from-blank = true", ""))?;
    std::fs::create_dir_all(sb.root.join("etc")).map_err(|e| e.to_string())?;
    blank_content(&sb.root)?;
    let out = sb.apply();
    check!(
        !out.status.success(),
        "apply bound over content without seed-from-blank: {}",
        text(&out)
    );
    check!(
        String::from_utf8_lossy(&out.stderr).contains("target directory")
            && String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{}",
        text(&out)
    );
    check!(
        !is_mount_point(&sb.root.join("var/log")),
        "/var/log was bound"
    );
    Ok(())
}

/// Regression: the late stage saved the lost-state report (report-dir /persist/var/log/darlings)
/// before it applied the binds; saving made /var/log in the store, so seed-from-blank found the
/// store "already had" /var/log and bound that near-empty copy over the Debian blank's logs
/// (found by the distribution tier: no dpkg.log, no journal of earlier boots).
fn report_inside_a_seeded_directory_does_not_stop_the_seed() -> TestResult {
    let mut fs = Fs::btrfs("300M")?;
    let t = fs.top.display().to_string();
    // A whole-OS blank: /var/log has the installer's log, /persist is the store's mount point.
    sh(&format!(
        "set -e; cd {t}; btrfs -q subvolume create root; btrfs -q subvolume create persist; \
         mkdir -p root/var/log root/persist root/etc; echo installed > root/var/log/dpkg.log; \
         btrfs -q subvolume snapshot -r root root-blank; echo junk > root/etc/darling"
    ))?;
    let config = crate::btrfs_config(&fs, "[diff]\non-boot = true\nreport-dir = \"/persist/var/log/darlings\"\n[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/log\", seed-from-blank = true }]\n")?;
    let work = fs.base.join("work");
    let sysroot = fs.base.join("sysroot");
    std::fs::create_dir(&sysroot).map_err(e2s)?;
    let cmdline = fs.base.join("cmdline");
    std::fs::write(&cmdline, "quiet\n").map_err(e2s)?;
    let boot = |stage: &str| {
        crate::darlings(&config, &work)
            .args(["--log", "stderr", "boot", "--stage", stage, "--root"])
            .arg(&sysroot)
            .arg("--cmdline")
            .arg(&cmdline)
            .output()
            .map_err(e2s)
    };
    let early = boot("early")?;
    check!(early.status.success(), "early: {}", text(&early));
    fs.mount_subvol("root", &sysroot)?;
    let store = sysroot.join("persist");
    fs.mount_subvol("persist", &store)?;
    let late = boot("late")?;
    check!(late.status.success(), "late: {}", text(&late));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("boot.json")).map_err(e2s)?)
            .map_err(e2s)?;
    check!(rec["outcome"] == "ok", "the boot did not go clean: {rec}");
    check!(
        rec["report"]["saved"] == true,
        "the report was not saved: {rec}"
    );
    check!(
        std::fs::read(fs.top.join("persist/var/log/dpkg.log"))
            .ok()
            .as_deref()
            == Some(&b"installed\n"[..]),
        "the blank's /var/log did not seed the store: {}",
        text(&late)
    );
    check!(
        sysroot.join("var/log/dpkg.log").exists(),
        "the bound /var/log lacks the blank's log"
    );
    let reports: Vec<_> = std::fs::read_dir(fs.top.join("persist/var/log/darlings"))
        .map_err(e2s)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("Z.json"))
        .collect();
    check!(
        reports.len() == 1,
        "expected one saved report in the store, found {}",
        reports.len()
    );
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "report_inside_a_seeded_directory_does_not_stop_the_seed",
            report_inside_a_seeded_directory_does_not_stop_the_seed,
        ),
        (
            "seed_from_blank_copies_the_blanks_content_into_an_empty_store_then_binds",
            seed_from_blank_copies_the_blanks_content_into_an_empty_store_then_binds,
        ),
        (
            "seed_from_blank_binds_the_stores_copy_over_the_blanks_once_it_has_one",
            seed_from_blank_binds_the_stores_copy_over_the_blanks_once_it_has_one,
        ),
        (
            "without_seed_from_blank_a_blank_with_content_is_still_refused",
            without_seed_from_blank_a_blank_with_content_is_still_refused,
        ),
        (
            "read_only_root_mount_gets_its_mount_points_through_a_private_clone",
            read_only_root_mount_gets_its_mount_points_through_a_private_clone,
        ),
        (
            "read_only_root_filesystem_is_refused_with_what_to_do",
            read_only_root_filesystem_is_refused_with_what_to_do,
        ),
    ]
}
