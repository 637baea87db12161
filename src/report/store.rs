//! Lost-state reports in the store: written atomically into `diff.report-dir` beneath a root
//! (mode 0600, one pair of files per boot named by UTC time, `latest.*` pointing at the newest),
//! and read back for `darlings report`. Everything is resolved from directory fds beneath the
//! root without following symlinks, like apply: a link planted in the store must not redirect
//! a root-owned write.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use darlings_backends::beneath;
use darlings_backends::placement::{Erased, Placement, PlacementError};
use rustix::fs::{self, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::config::Config;
use crate::paths::AbsPath;
use crate::report::Report;

/// The store's errors are the shared pair: a failed call on a named path, or a refusal.
pub type ReportError = crate::error::BackendError;

fn io(what: String, e: impl Into<std::io::Error>) -> ReportError {
    ReportError::io(what, e.into())
}

fn shown(root: &Path, dir: &AbsPath) -> String {
    let r = root.to_string_lossy();
    format!("{}{}", r.trim_end_matches('/'), dir)
}

/// Opens (creating with mode 0700 where missing) `dir` beneath `root`, after checking that the
/// store holding it is mounted: a report written into an unmounted store's mount point would
/// land on the root and be erased by the next rollback.
fn open_report_dir(
    root: &Path,
    store: &AbsPath,
    dir: &AbsPath,
    create: bool,
    erased: Erased,
) -> Result<OwnedFd, ReportError> {
    let rootfd = fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(format!("cannot open root {}", root.display()), e))?;
    let store_shown = shown(root, store);
    let storefd = match beneath::open(&rootfd, OsStr::from_bytes(store.relative()), OFlags::RDONLY | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            return Err(ReportError::Refused(format!(
                "store {store_shown} does not exist; mount the persistent filesystem there"
            )))
        }
        Err(Errno::LOOP) | Err(Errno::XDEV) => {
            return Err(ReportError::Refused(format!(
                "store {store_shown} is or passes through a symlink; darlings never follows symlinks in a root or store"
            )))
        }
        Err(e) => return Err(io(format!("cannot open store {store_shown}"), e)),
    };
    // The store rule apply uses: a report on the root's own filesystem would be erased.
    Placement::new(rootfd.as_fd(), root.as_os_str().as_bytes(), erased)?
        .check(storefd.as_fd(), store_shown.as_bytes())
        .map_err(|e| match e {
            PlacementError::OnRoot { .. } => ReportError::Refused(e.to_string()),
            PlacementError::Io(e) => e,
        })?;
    let mut cur = storefd;
    let rel = dir
        .as_bytes()
        .strip_prefix(store.as_bytes())
        .unwrap_or_default();
    let mut at = store_shown.clone();
    for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let name = OsStr::from_bytes(comp);
        at = format!("{at}/{}", String::from_utf8_lossy(comp));
        let next = match beneath::open(&cur, name, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match fs::mkdirat(&cur, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io(format!("cannot create {at}"), e)),
                }
                beneath::open(&cur, name, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| io(format!("cannot open {at}"), e))?
            }
            Err(Errno::NOENT) => {
                return Err(ReportError::Refused(format!(
                    "report directory {} does not exist: no lost-state report was saved yet (diff.on-boot = true saves one at every boot)",
                    shown(root, dir)
                )))
            }
            Err(Errno::LOOP) | Err(Errno::XDEV) | Err(Errno::NOTDIR) => {
                return Err(ReportError::Refused(format!(
                    "{at} is a symlink or not a directory; darlings never follows symlinks in a store: make it a real directory"
                )))
            }
            Err(e) => return Err(io(format!("cannot open {at}"), e)),
        };
        cur = next;
    }
    Ok(cur)
}

/// A report never replaces another (its name is free when chosen, and a second writer's must
/// not win), and is synced: it is what the user reads after a power cut.
fn write_new(dir: &OwnedFd, name: &str, data: &[u8], at: &str) -> Result<(), ReportError> {
    let opts = beneath::Atomic {
        mode: 0o600,
        fsync: true,
        replace: false,
    };
    beneath::write_atomic(dir.as_fd(), OsStr::new(name), data, opts).map_err(|e| {
        let what = format!("cannot write {at}/{name}");
        ReportError::Io {
            what,
            source: std::io::Error::other(e),
        }
    })
}

fn point_latest(dir: &OwnedFd, latest: &str, target: &str, at: &str) -> Result<(), ReportError> {
    let tmp = format!(".tmp-{latest}");
    let _ = fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    fs::symlinkat(target, dir, tmp.as_str())
        .map_err(|e| io(format!("cannot create {at}/{tmp}"), e))?;
    fs::renameat(dir, tmp.as_str(), dir, latest)
        .map_err(|e| io(format!("cannot point {at}/{latest} at {target}"), e))
}

/// A free stem (`20261122T044127Z`, then `-1`, `-2`...) in `dir` for reports made at `stamp`.
fn free_stem(dir: &OwnedFd, stamp: &str) -> Result<String, ReportError> {
    for n in 0..1000 {
        let stem = if n == 0 {
            stamp.to_string()
        } else {
            format!("{stamp}-{n}")
        };
        match fs::statat(
            dir,
            format!("{stem}.json").as_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Err(Errno::NOENT) => return Ok(stem),
            Ok(_) => continue,
            Err(e) => return Err(io(format!("cannot look for {stem}.json"), e)),
        }
    }
    Err(ReportError::Refused(format!(
        "1000 reports named {stamp}* exist already; remove old ones"
    )))
}

/// Whether `name` is one of the report files darlings writes (`20261122T044127Z.json`,
/// `20261122T044127Z-1.txt`): the only names pruning may remove. Returns the stem.
fn report_stem(name: &[u8]) -> Option<&[u8]> {
    let stem = name
        .strip_suffix(b".json")
        .or_else(|| name.strip_suffix(b".txt"))?;
    let (stamp, suffix) = match stem.iter().position(|&b| b == b'-') {
        Some(i) => (&stem[..i], &stem[i + 1..]),
        None => (stem, &b""[..]),
    };
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let ok = stamp.len() == 16
        && digits(&stamp[..8])
        && stamp[8] == b'T'
        && digits(&stamp[9..15])
        && stamp[15] == b'Z'
        && (suffix.is_empty() && !stem.contains(&b'-') || !suffix.is_empty() && digits(suffix));
    ok.then_some(stem)
}

/// Newest first: by time stamp, then by collision suffix (`-2` after `-1` after none).
fn stem_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let split = |s: &[u8]| -> (Vec<u8>, u64) {
        match s.iter().position(|&c| c == b'-') {
            Some(i) => (
                s[..i].to_vec(),
                std::str::from_utf8(&s[i + 1..])
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            ),
            None => (s.to_vec(), 0),
        }
    };
    split(b).cmp(&split(a))
}

/// Removes the report files beyond the newest `keep` stems. Only what darlings wrote is
/// touched: a name `report_stem` accepts, on a regular file owned by the user darlings runs as
/// (reports are root's, mode 0600). Anything else is the user's: it is left alone, with a
/// warning, and a report that cannot be removed is a warning too: the report being saved is
/// already safe, and pruning must never turn that into a failure (a boot under `halt`).
fn prune(dir: &OwnedFd, keep: usize, at: &str) -> Result<usize, ReportError> {
    let me = rustix::process::geteuid().as_raw();
    let listing = fs::Dir::read_from(dir).map_err(|e| io(format!("cannot list {at}"), e))?;
    let mut files: Vec<Vec<u8>> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| io(format!("cannot list {at}"), e))?;
        let name = entry.file_name().to_bytes();
        let shown = String::from_utf8_lossy(name).into_owned();
        if report_stem(name).is_none() {
            let ours = matches!(name, b"." | b".." | b"latest.json" | b"latest.txt")
                || name.starts_with(b".tmp-")
                || (name.starts_with(b".") && name.ends_with(b".tmp"));
            if !ours {
                foreign.push(shown);
            }
            continue;
        }
        match fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st)
                if fs::FileType::from_raw_mode(st.st_mode) == fs::FileType::RegularFile
                    && st.st_uid == me =>
            {
                files.push(name.to_vec())
            }
            Ok(st) => foreign.push(format!(
                "{shown} ({}, owner uid {})",
                match fs::FileType::from_raw_mode(st.st_mode) {
                    fs::FileType::RegularFile => "a file",
                    fs::FileType::Directory => "a directory",
                    fs::FileType::Symlink => "a symlink",
                    _ => "not a regular file",
                },
                st.st_uid
            )),
            // Gone since the listing: nothing to prune.
            Err(Errno::NOENT) => {}
            Err(e) => foreign.push(format!("{shown} (cannot stat it: {e})")),
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        tracing::warn!(
            "reports: {at} holds {} entr{} darlings did not write, left alone by pruning: {}",
            foreign.len(),
            if foreign.len() == 1 { "y" } else { "ies" },
            foreign.join(", ")
        );
    }
    let mut stems: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|f| report_stem(f).map(<[u8]>::to_vec))
        .collect();
    stems.sort_by(|a, b| stem_order(a, b));
    stems.dedup();
    let old: std::collections::HashSet<Vec<u8>> = stems.into_iter().skip(keep).collect();
    let mut removed = 0;
    for f in files {
        if report_stem(&f).is_some_and(|s| old.contains(s)) {
            match fs::unlinkat(dir, OsStr::from_bytes(&f), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => removed += 1,
                Err(e) => tracing::warn!(
                    "reports: cannot remove the old report {at}/{}: {e}; it is kept",
                    String::from_utf8_lossy(&f)
                ),
            }
        }
    }
    Ok(removed)
}

/// The configured report directory and the store holding it (the config checks there is one).
fn target(config: &Config) -> Result<(&AbsPath, &AbsPath), ReportError> {
    let dir = config.diff.report_dir.as_ref().ok_or_else(|| {
        ReportError::Refused(
            "diff.report-dir is not set, so no reports are saved; set it inside a store, e.g. report-dir = \"/persist/var/log/darlings\""
                .into(),
        )
    })?;
    let store = config
        .stores
        .iter()
        .find(|s| dir.is_inside(&s.path))
        .ok_or_else(|| ReportError::Refused(format!("report-dir {dir} is not inside a store")))?;
    Ok((&store.path, dir))
}

/// Lines of lost groups in the saved text report: more than a terminal's 40, still readable.
pub const REPORT_LINES: usize = 100;
/// The saved text reports' heading of the lost entries: read after the fact.
pub const SAVED_AT_BOOT: &str = "lost at the rollback of the boot that saved this report";
const SAVED_AT_SHUTDOWN: &str = "lost at the shutdown that saved this report (a tmpfs root)";

/// `darlings diff --save`: the report of a live root (a tmpfs root at shutdown) into the store.
pub fn save_report(config: &Config, root: &Path, report: &Report) -> Result<String, ReportError> {
    let mut json = Vec::new();
    report
        .write_json(&mut json)
        .map_err(|e| io("cannot render the lost-state report as JSON".into(), e))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    save(
        config,
        root,
        &stamp,
        &json,
        report
            .to_text_saved(REPORT_LINES, SAVED_AT_SHUTDOWN)
            .as_bytes(),
    )
}

/// Saves one report (its JSON and text forms) as `<report-dir>/<stamp>.json` / `.txt` beneath
/// `root`, points `latest.json` / `latest.txt` at them, and keeps the newest `keep-reports`.
/// Returns the JSON file's path as the live system sees it (without the root prefix).
pub fn save(
    config: &Config,
    root: &Path,
    stamp: &str,
    json: &[u8],
    text: &[u8],
) -> Result<String, ReportError> {
    let (store, dir) = target(config)?;
    let keep = config.diff.keep_reports;
    let fd = open_report_dir(root, store, dir, true, crate::stores::erased(&config.root))?;
    let at = shown(root, dir);
    let stem = free_stem(&fd, stamp)?;
    // Text first: `latest.json` is what tools read, so it moves last, once both exist.
    write_new(&fd, &format!("{stem}.txt"), text, &at)?;
    write_new(&fd, &format!("{stem}.json"), json, &at)?;
    point_latest(&fd, "latest.txt", &format!("{stem}.txt"), &at)?;
    point_latest(&fd, "latest.json", &format!("{stem}.json"), &at)?;
    fs::fsync(&fd).map_err(|e| io(format!("cannot sync {at}"), e))?;
    // After the report is safe: pruning only warns.
    if let Err(e) = prune(&fd, keep.max(1), &at) {
        tracing::warn!("reports: old reports were not pruned: {e}");
    }
    Ok(format!("{dir}/{stem}.json"))
}

/// Reads a saved report: `name` is a stem, a file name, or `None` for the latest.
pub fn read(
    config: &Config,
    root: &Path,
    name: Option<&str>,
    json: bool,
) -> Result<(String, Vec<u8>), ReportError> {
    let (store, dir) = target(config)?;
    let fd = open_report_dir(root, store, dir, false, crate::stores::erased(&config.root))?;
    let at = shown(root, dir);
    let ext = if json { "json" } else { "txt" };
    let file = match name {
        None => {
            let latest = format!("latest.{ext}");
            let target = fs::readlinkat(&fd, latest.as_str(), Vec::new()).map_err(|e| {
                if e == Errno::NOENT {
                    ReportError::Refused(format!(
                        "{at}/{latest} does not exist: no lost-state report was saved yet"
                    ))
                } else {
                    io(format!("cannot read the link {at}/{latest}"), e)
                }
            })?;
            let t = target.to_string_lossy().into_owned();
            if t.contains('/') || t.starts_with('.') {
                return Err(ReportError::Refused(format!(
                    "{at}/{latest} points at {t:?}, outside the report directory; darlings only writes plain names there: remove the link"
                )));
            }
            t
        }
        Some(n) => {
            let stem = n
                .strip_suffix(".json")
                .or_else(|| n.strip_suffix(".txt"))
                .unwrap_or(n);
            if stem.is_empty() || stem.contains('/') || stem.starts_with('.') {
                return Err(ReportError::Refused(format!(
                    "report name {n:?} is not a report in {at}; give a name like 20261122T044127Z (see `ls {at}`)"
                )));
            }
            format!("{stem}.{ext}")
        }
    };
    let f = beneath::open(&fd, file.as_str(), OFlags::RDONLY).map_err(|e| match e {
        Errno::NOENT => ReportError::Refused(format!(
            "report {at}/{file} does not exist; `ls {at}` lists the saved ones"
        )),
        Errno::LOOP => ReportError::Refused(format!(
            "{at}/{file} is a symlink; darlings never follows symlinks in a store"
        )),
        e => io(format!("cannot open {at}/{file}"), e),
    })?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(f), &mut buf)
        .map_err(|e| io(format!("cannot read {at}/{file}"), e))?;
    Ok((format!("{dir}/{file}"), buf))
}

/// The saved reports' stems (`20261122T044127Z`, `…-1`), newest first; none when no report
/// directory is configured or none was made yet.
pub fn stems(config: &Config, root: &Path) -> Result<Vec<String>, ReportError> {
    let Ok((store, dir)) = target(config) else {
        return Ok(Vec::new());
    };
    let fd = match open_report_dir(root, store, dir, false, crate::stores::erased(&config.root)) {
        Ok(fd) => fd,
        Err(ReportError::Refused(m)) if m.contains("does not exist: no lost-state report") => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let at = shown(root, dir);
    let mut v: Vec<Vec<u8>> = Vec::new();
    for entry in fs::Dir::read_from(&fd).map_err(|e| io(format!("cannot list {at}"), e))? {
        let entry = entry.map_err(|e| io(format!("cannot list {at}"), e))?;
        if let Some(stem) = entry.file_name().to_bytes().strip_suffix(b".json") {
            if report_stem(entry.file_name().to_bytes()).is_some() {
                v.push(stem.to_vec());
            }
        }
    }
    v.sort_by(|a, b| stem_order(a, b));
    v.dedup();
    Ok(v.into_iter()
        .map(|s| String::from_utf8_lossy(&s).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmounted_store_is_refused_before_anything_is_written() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("persist")).unwrap();
        let config = crate::config::parse(
            "[root]\nbackend = \"tmpfs\"\n[diff]\nreport-dir = \"/persist/var/log/darlings\"\n[[persist]]\nstore = \"/persist\"\n",
            "t.toml",
        )
        .unwrap();
        let e = save(&config, root.path(), "20261122T000000Z", b"{}", b"x").unwrap_err();
        assert!(
            e.to_string()
                .contains("is on the root's filesystem (a directory of the root's own filesystem"),
            "{e}"
        );
        assert!(!root.path().join("persist/var").exists());
    }

    #[test]
    fn report_names_pruning_may_touch() {
        let cases: &[(&str, Option<&str>)] = &[
            ("20261122T044127Z.json", Some("20261122T044127Z")),
            ("20261122T044127Z.txt", Some("20261122T044127Z")),
            ("20261122T044127Z-12.json", Some("20261122T044127Z-12")),
            ("latest.json", None),
            ("notes.txt", None),
            ("20261122T044127Z.json.bak", None),
            ("20261122T044127Z-.json", None),
            ("20261122T044127Z-x.json", None),
            ("2026112T044127Z.json", None),
            (".tmp-20261122T044127Z.json", None),
        ];
        for (name, want) in cases {
            assert_eq!(
                report_stem(name.as_bytes()),
                want.map(str::as_bytes),
                "{name}"
            );
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_nothing_else_is_touched() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "20261120T000000Z",
            "20261121T000000Z",
            "20261121T000000Z-1",
            "20261122T000000Z",
        ] {
            std::fs::write(d.path().join(format!("{n}.json")), "{}").unwrap();
            std::fs::write(d.path().join(format!("{n}.txt")), "x").unwrap();
        }
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        let fd = fs::open(d.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(prune(&fd, 2, "d").unwrap(), 4);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20261121T000000Z-1.json",
                "20261121T000000Z-1.txt",
                "20261122T000000Z.json",
                "20261122T000000Z.txt",
                "notes.txt"
            ]
        );
    }
}
