//! Privileged tests of the Btrfs diff on real loop devices: every kind of change checked against
//! ground truth from walking the blank and the root, cleanup of the temporary snapshot (also on
//! failure and after a killed run), and the entry and time limits.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use darlings_backends::btrfs::Btrfs;
use darlings_backends::bytes::Show;
use darlings_backends::{Backend, Change, ChangeKind, DiffLimits, FileType, Truncation};

use crate::loopdev::{run, Fs};
use crate::Case;

type TestResult = Result<(), String>;

/// One change as compared: path, kind, type, size.
type Row = (Vec<u8>, ChangeKind, FileType, Option<u64>);

pub fn cases() -> Vec<Case> {
    vec![
        (
            "btrfs_diff_matches_ground_truth_for_every_kind_of_change",
            btrfs_diff_matches_ground_truth_for_every_kind_of_change,
        ),
        (
            "btrfs_diff_against_an_empty_blank_matches_ground_truth",
            btrfs_diff_against_an_empty_blank_matches_ground_truth,
        ),
        (
            "btrfs_diff_leaves_no_snapshot_or_mount_on_success_and_failure",
            btrfs_diff_leaves_no_snapshot_or_mount_on_success_and_failure,
        ),
        (
            "btrfs_diff_reports_truncation_by_entries_and_time",
            btrfs_diff_reports_truncation_by_entries_and_time,
        ),
    ]
}

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `btrfs -q subvolume <args>`.
fn subvolume(args: &[&OsStr]) -> TestResult {
    let mut all = vec![os("-q"), os("subvolume")];
    all.extend_from_slice(args);
    run("btrfs", &all).map(drop)
}

/// A 300 MiB Btrfs on a loop device with its top level mounted and an empty `root` subvolume
/// in it.
fn with_root() -> Result<Fs, String> {
    let fs = Fs::btrfs("300M")?;
    subvolume(&[os("create"), fs.root().as_os_str()])?;
    Ok(fs)
}

/// The root, its blank and the diff's work directory on the loop-device Btrfs.
trait Diffed {
    fn root(&self) -> PathBuf;
    fn work(&self) -> PathBuf;
    fn snapshot_blank(&self) -> TestResult;
    fn backend(&self) -> Btrfs;
    fn leftovers(&self) -> Vec<String>;
}

impl Diffed for Fs {
    fn root(&self) -> PathBuf {
        self.top.join("root")
    }

    fn work(&self) -> PathBuf {
        self.base.join("work")
    }

    fn snapshot_blank(&self) -> TestResult {
        subvolume(&[
            os("snapshot"),
            os("-r"),
            self.root().as_os_str(),
            self.top.join("root-blank").as_os_str(),
        ])
    }

    fn backend(&self) -> Btrfs {
        Btrfs {
            device: PathBuf::from(self.dev()),
            subvolume: b"root".to_vec(),
            blank: b"root-blank".to_vec(),
            old_roots: b"old-roots".to_vec(),
            keep: None,
            now: SystemTime::now(),
            work_dir: self.work(),
            failpoint: None,
        }
    }

    /// Entries of the top level, and mounts of this device, that a diff must not leave.
    fn leftovers(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.top)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains("darlings-diff"))
                    .collect()
            })
            .unwrap_or_default();
        let work = self.work();
        for m in crate::mounts() {
            if m.starts_with(work.to_str().unwrap_or("/nonexistent")) {
                out.push(format!("mount {m}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(&work) {
            out.extend(
                rd.flatten()
                    .map(|e| format!("work dir entry {:?}", e.file_name())),
            );
        }
        out
    }
}

fn p(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

fn write(base: &Path, rel: &[u8], data: &[u8]) -> TestResult {
    let path = p(base, rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(e2s)?;
    }
    std::fs::write(&path, data).map_err(|e| format!("write {}: {e}", path.display()))
}

fn setxattr(path: &Path, name: &str, value: &[u8]) -> TestResult {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
        .map_err(|e| format!("setxattr {name} on {}: {e}", path.display()))
}

fn mkfifo(path: &Path) -> TestResult {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .map_err(|e| format!("mkfifo {}: {e}", path.display()))
}

/// The baseline that becomes the blank.
fn populate_baseline(root: &Path) -> TestResult {
    write(root, b"etc/passwd", b"root:x:0:0::/root:/bin/sh\n")?;
    for f in [
        &b"etc/chmodme"[..],
        b"etc/chownme",
        b"etc/renameme",
        b"etc/xattrme",
        b"etc/over_src",
        b"etc/over_dst",
        b"etc/mvchg",
    ] {
        write(root, f, b"baseline\n")?;
    }
    setxattr(&p(root, b"etc/xattrme"), "user.keep", b"1")?;
    setxattr(&p(root, b"etc/xattrme"), "user.gone", b"x")?;
    write(root, b"dirmove/sub/c", b"c\n")?;
    write(root, b"dirmove/sub/d", b"d\n")?;
    write(root, b"deltree/sub/z", b"z\n")?;
    write(root, b"deltree/x", b"x\n")?;
    write(root, b"delfile", b"gone\n")?;
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write(root, b"big", &big)?;
    write(root, b"truncme", &[7u8; 5000])?;
    write(root, b"recreate", b"old content\n")?;
    write(root, b"hl1", b"linked\n")?;
    std::os::unix::fs::symlink("target1", root.join("oldlink")).map_err(e2s)?;
    std::fs::create_dir_all(root.join("var/lib")).map_err(e2s)?;
    for i in 0..300 {
        write(
            root,
            format!("usr/share/d{}/f{i}", i % 10).as_bytes(),
            b"noise",
        )?;
    }
    Ok(())
}

/// One change of every kind the issue lists, made in the live root after the blank.
fn make_changes(root: &Path) -> TestResult {
    let e = |r: std::io::Result<()>| r.map_err(e2s);
    write(root, b"newfile", b"new\n")?;
    write(root, b"newdir/with/file", b"hello")?;
    e(std::fs::remove_file(root.join("delfile")))?;
    e(std::fs::remove_dir_all(root.join("deltree")))?;
    e(std::fs::rename(
        root.join("etc/renameme"),
        root.join("etc/renamed"),
    ))?;
    e(std::fs::rename(root.join("dirmove"), root.join("moved")))?;
    e(std::fs::rename(
        root.join("etc/over_src"),
        root.join("etc/over_dst"),
    ))?;
    e(std::fs::rename(
        root.join("etc/mvchg"),
        root.join("etc/mvchg2"),
    ))?;
    write(root, b"etc/mvchg2", b"renamed and changed\n")?;
    write(root, b"moved/sub/c", b"changed in a moved directory\n")?;
    e(std::fs::set_permissions(
        root.join("etc/chmodme"),
        std::fs::Permissions::from_mode(0o600),
    ))?;
    e(std::os::unix::fs::lchown(
        root.join("etc/chownme"),
        Some(1234),
        Some(5678),
    ))?;
    setxattr(&root.join("etc/xattrme"), "user.new", b"v")?;
    rustix::fs::lremovexattr(root.join("etc/xattrme"), "user.gone").map_err(e2s)?;
    e(std::os::unix::fs::symlink(
        "/etc/passwd",
        root.join("newlink"),
    ))?;
    e(std::fs::remove_file(root.join("oldlink")))?;
    e(std::os::unix::fs::symlink("target2", root.join("oldlink")))?;
    e(std::fs::hard_link(root.join("hl1"), root.join("hl1b")))?;
    mkfifo(&root.join("newfifo"))?;
    write(root, b"empty", b"")?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("truncme"))
        .map_err(e2s)?;
    e(f.set_len(100))?;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("big"))
        .map_err(e2s)?;
    e(std::os::unix::fs::FileExt::write_all_at(
        &f,
        b"middle",
        4 << 20,
    ))?;
    write(root, b"with space", b"s")?;
    write(root, b"new\nline", b"n")?;
    write(root, b"bad\xff\xfeutf8", b"b")?;
    e(std::fs::remove_file(root.join("recreate")))?;
    write(root, b"recreate", b"new content\n")?;
    // Times alone are not reported.
    e(std::fs::File::options()
        .write(true)
        .open(root.join("etc/passwd"))
        .and_then(|f| f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))))?;
    subvolume(&[os("create"), root.join("var/lib/machines").as_os_str()])?;
    write(root, b"var/lib/machines/inside", b"lost with its subvolume")?;
    Ok(())
}

/// What a walk sees of one entry.
#[derive(Debug, Clone)]
struct Ent {
    ino: u64,
    parent_ino: u64,
    name: Vec<u8>,
    file_type: FileType,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    target: Option<Vec<u8>>,
    hash: Option<u64>,
    /// The root of a nested subvolume (another st_dev): not descended into.
    subvolume: bool,
}

fn file_type(ft: std::fs::FileType) -> FileType {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FileType::Dir
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_file() {
        FileType::File
    } else if ft.is_fifo() {
        FileType::Fifo
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else {
        FileType::Unknown
    }
}

fn xattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, String> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names).map_err(e2s)?;
    let mut out = BTreeMap::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut value = vec![0u8; 4096];
        let cname = OsStr::from_bytes(name);
        let m = rustix::fs::lgetxattr(path, cname, &mut value).map_err(e2s)?;
        out.insert(name.to_vec(), value[..m].to_vec());
    }
    Ok(out)
}

/// Every entry of a subvolume by absolute path, "/" included, without entering nested
/// subvolumes.
fn walk(base: &Path) -> Result<BTreeMap<Vec<u8>, Ent>, String> {
    let top_md = std::fs::symlink_metadata(base).map_err(e2s)?;
    let mut out = BTreeMap::new();
    let mut stack: Vec<(Vec<u8>, u64)> = Vec::new();
    let ent = |path: &Path, name: &[u8], parent_ino: u64| -> Result<Ent, String> {
        let md = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ft = file_type(md.file_type());
        let hash = if ft == FileType::File {
            let mut h = DefaultHasher::new();
            std::fs::read(path).map_err(e2s)?.hash(&mut h);
            Some(h.finish())
        } else {
            None
        };
        Ok(Ent {
            ino: md.ino(),
            parent_ino,
            name: name.to_vec(),
            file_type: ft,
            size: md.size(),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            xattrs: xattrs(path)?,
            target: if ft == FileType::Symlink {
                Some(
                    std::fs::read_link(path)
                        .map_err(e2s)?
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else {
                None
            },
            hash,
            subvolume: md.dev() != top_md.dev(),
        })
    };
    out.insert(b"/".to_vec(), ent(base, b"", 0)?);
    stack.push((Vec::new(), top_md.ino()));
    while let Some((rel, ino)) = stack.pop() {
        let dir = p(base, &rel);
        for e in std::fs::read_dir(&dir).map_err(e2s)? {
            let e = e.map_err(e2s)?;
            let name = e.file_name().as_bytes().to_vec();
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            let en = ent(&e.path(), &name, ino)?;
            if en.file_type == FileType::Dir && !en.subvolume {
                stack.push((child.clone(), en.ino));
            }
            let mut abs = b"/".to_vec();
            abs.extend_from_slice(&child);
            out.insert(abs, en);
        }
    }
    Ok(out)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    darlings_backends::bytes::join(dir, name)
}

/// The change list the resolver's documented choices imply, from two walks: renamed-and-changed
/// is a rename, a path whose entry was replaced is modified, times alone are nothing, an entry
/// moved with its directory is only reported if it changed, a nested subvolume is one added
/// directory.
fn ground_truth(blank: &BTreeMap<Vec<u8>, Ent>, root: &BTreeMap<Vec<u8>, Ent>) -> Vec<Row> {
    let mut blank_dirs: BTreeMap<u64, &Vec<u8>> = BTreeMap::new();
    let mut blank_names: BTreeMap<u64, Vec<&Vec<u8>>> = BTreeMap::new();
    for (path, e) in blank {
        if e.file_type == FileType::Dir {
            blank_dirs.insert(e.ino, path);
        }
        blank_names.entry(e.ino).or_default().push(path);
    }
    // The path an entry's name had in the blank, if its directory existed there.
    let old_path = |e: &Ent| blank_dirs.get(&e.parent_ino).map(|d| join(d, &e.name));
    let content_differs = |a: &Ent, b: &Ent| {
        a.file_type != b.file_type
            || a.target != b.target
            || a.hash != b.hash
            || (a.file_type == FileType::File && a.size != b.size)
    };
    let meta_differs = |a: &Ent, b: &Ent| {
        a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.xattrs != b.xattrs
    };
    type Present = (ChangeKind, FileType, Option<u64>);
    let mut present: BTreeMap<Vec<u8>, Present> = BTreeMap::new();
    let size = |e: &Ent| (e.file_type == FileType::File).then_some(e.size);
    let mut surviving: BTreeSet<Vec<u8>> = BTreeSet::new();
    surviving.insert(b"/".to_vec());
    let (Some(rb), Some(rr)) = (blank.get(&b"/"[..]), root.get(&b"/"[..])) else {
        return Vec::new();
    };
    if meta_differs(rb, rr) {
        present.insert(b"/".to_vec(), (ChangeKind::Metadata, FileType::Dir, None));
    }
    let mut unplaced = Vec::new();
    for (path, e) in root.iter().filter(|(p, _)| p.as_slice() != b"/") {
        if e.subvolume {
            present.insert(path.clone(), (ChangeKind::Added, FileType::Dir, None));
            continue;
        }
        match old_path(e).and_then(|q| blank.get(&q).map(|b| (q, b))) {
            Some((q, b)) if b.ino == e.ino => {
                surviving.insert(q);
                let kind = if content_differs(b, e) {
                    ChangeKind::Modified
                } else if meta_differs(b, e) {
                    ChangeKind::Metadata
                } else {
                    continue;
                };
                present.insert(path.clone(), (kind, e.file_type, size(e)));
            }
            _ => unplaced.push((path, e)),
        }
    }
    let mut claimed: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (path, e) in unplaced {
        let from = blank_names.get(&e.ino).and_then(|names| {
            names
                .iter()
                .find(|q| !surviving.contains(**q) && !claimed.contains(**q))
                .map(|q| (*q).clone())
        });
        let kind = match from {
            Some(q) => {
                claimed.insert(q.clone());
                ChangeKind::Renamed { from: q }
            }
            None => ChangeKind::Added,
        };
        present.insert(path.clone(), (kind, e.file_type, size(e)));
    }
    let mut out = Vec::new();
    let mut removed: BTreeMap<Vec<u8>, FileType> = BTreeMap::new();
    for (path, e) in blank {
        if !surviving.contains(path) && !claimed.contains(path) {
            removed.insert(path.clone(), e.file_type);
        }
    }
    let paths: BTreeSet<Vec<u8>> = present.keys().chain(removed.keys()).cloned().collect();
    for path in paths {
        match (removed.get(&path), present.get(&path)) {
            (Some(_), Some((ChangeKind::Added, t, s))) => {
                out.push((path, ChangeKind::Modified, *t, *s))
            }
            (_, Some((k, t, s))) => out.push((path, k.clone(), *t, *s)),
            (Some(t), None) => out.push((path, ChangeKind::Removed, *t, None)),
            (None, None) => {}
        }
    }
    out
}

fn show(c: &Row) -> String {
    let from = match &c.1 {
        ChangeKind::Renamed { from } => format!(" from {}", Show(from)),
        _ => String::new(),
    };
    format!(
        "{} {}{from} ({}, {:?})",
        c.1.as_str(),
        Show(&c.0),
        c.2.as_str(),
        c.3
    )
}

fn tuple(c: &Change) -> Row {
    (c.path.clone(), c.kind.clone(), c.file_type, c.size)
}

fn btrfs_diff_matches_ground_truth_for_every_kind_of_change() -> TestResult {
    let fs = with_root()?;
    let root = fs.root();
    populate_baseline(&root)?;
    fs.snapshot_blank()?;
    make_changes(&root)?;
    let truth = check_against_truth(&fs, &DiffLimits::default(), true)?;
    let got = fs
        .backend()
        .diff(&DiffLimits::default())
        .map_err(|e| format!("diff: {e}"))?
        .changes;
    let got: Vec<_> = got.iter().map(tuple).collect();
    // The ground truth itself must contain every kind the test set out to make, so a walk bug
    // cannot make both sides agree on nothing.
    let want: &[(&[u8], &str)] = &[
        (b"/newfile", "added"),
        (b"/newdir/with/file", "added"),
        (b"/delfile", "removed"),
        (b"/deltree/sub/z", "removed"),
        (b"/etc/renamed", "renamed"),
        (b"/moved", "renamed"),
        (b"/etc/over_dst", "renamed"),
        (b"/etc/mvchg2", "renamed"),
        (b"/moved/sub/c", "modified"),
        (b"/etc/chmodme", "metadata"),
        (b"/etc/chownme", "metadata"),
        (b"/etc/xattrme", "metadata"),
        (b"/newlink", "added"),
        (b"/oldlink", "modified"),
        (b"/hl1b", "added"),
        (b"/newfifo", "added"),
        (b"/empty", "added"),
        (b"/truncme", "modified"),
        (b"/big", "modified"),
        (b"/with space", "added"),
        (b"/new\nline", "added"),
        (b"/bad\xff\xfeutf8", "added"),
        (b"/recreate", "modified"),
        (b"/var/lib/machines", "added"),
    ];
    for (path, kind) in want {
        check!(
            truth.iter().any(|t| t.0 == *path && t.1.as_str() == *kind),
            "ground truth lacks {kind} {}",
            Show(path)
        );
    }
    check!(
        !got.iter()
            .any(|g| g.0 == b"/etc/passwd" || g.0.starts_with(b"/var/lib/machines/")),
        "times-only change or subvolume content reported"
    );
    check!(fs.leftovers().is_empty(), "leftovers: {:?}", fs.leftovers());
    Ok(())
}

/// Compares a diff with the ground truth of walking the blank and the root.
fn check_against_truth(fs: &Fs, limits: &DiffLimits, sizes: bool) -> Result<Vec<Row>, String> {
    let out = fs
        .backend()
        .diff(limits)
        .map_err(|e| format!("diff: {e}"))?;
    check!(out.truncated.is_none(), "truncated: {:?}", out.truncated);
    let mut truth = ground_truth(&walk(&fs.top.join("root-blank"))?, &walk(&fs.root())?);
    let mut got: Vec<_> = out.changes.iter().map(tuple).collect();
    if !sizes {
        for t in truth.iter_mut().chain(got.iter_mut()) {
            t.3 = None;
        }
    }
    let missing: Vec<String> = truth
        .iter()
        .filter(|t| !got.contains(t))
        .map(show)
        .collect();
    let extra: Vec<String> = got
        .iter()
        .filter(|g| !truth.contains(g))
        .map(show)
        .collect();
    check!(
        missing.is_empty() && extra.is_empty(),
        "recall/precision: missing (in truth, not reported):\n      {}\n    extra (reported, not in truth):\n      {}",
        missing.join("\n      "),
        extra.join("\n      ")
    );
    Ok(truth)
}

/// The NixOS layout: the blank is empty, so everything in the root is new (the walk path).
fn btrfs_diff_against_an_empty_blank_matches_ground_truth() -> TestResult {
    let fs = with_root()?;
    fs.snapshot_blank()?;
    let root = fs.root();
    write(&root, b"etc/hostname", b"box\n")?;
    write(&root, b"var/log/boot.log", b"booted")?;
    write(&root, b"bad\xff name\n", b"")?;
    std::os::unix::fs::symlink("/nix/store/x", root.join("etc/link")).map_err(e2s)?;
    mkfifo(&root.join("fifo"))?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).map_err(e2s)?;
    std::fs::create_dir_all(root.join("var/lib")).map_err(e2s)?;
    subvolume(&[os("create"), root.join("var/lib/machines").as_os_str()])?;
    write(&root, b"var/lib/machines/inside", b"x")?;
    // Against an empty blank the diff walks the root without stat'ing files: no sizes.
    let truth = check_against_truth(&fs, &DiffLimits::default(), false)?;
    check!(
        truth.len() == 11,
        "ground truth: {}",
        truth.iter().map(show).collect::<Vec<_>>().join("; ")
    );
    check!(fs.leftovers().is_empty(), "leftovers: {:?}", fs.leftovers());
    Ok(())
}

fn btrfs_diff_leaves_no_snapshot_or_mount_on_success_and_failure() -> TestResult {
    let fs = with_root()?;
    let root = fs.root();
    write(&root, b"etc/x", b"x")?;
    // Blank missing: a clear error, and nothing left behind.
    let err = match fs.backend().diff(&DiffLimits::default()) {
        Ok(o) => return Err(format!("diff without a blank succeeded: {o:?}")),
        Err(e) => e.to_string(),
    };
    check!(
        err == format!(
            "blank snapshot root-blank not found on {}; create it with darlings init",
            fs.dev()
        ),
        "message: {err}"
    );
    check!(
        fs.leftovers().is_empty(),
        "leftovers after failure: {:?}",
        fs.leftovers()
    );

    // A stale snapshot from a killed run (a pid that cannot exist) is removed by the next diff.
    fs.snapshot_blank()?;
    let stale = fs.top.join("root.darlings-diff-2147483646");
    subvolume(&[
        os("snapshot"),
        os("-r"),
        root.as_os_str(),
        stale.as_os_str(),
    ])?;
    // A look-alike that is not a snapshot of the root is not touched.
    let lookalike = fs.top.join("root.darlings-diff-2147483645");
    std::fs::create_dir(&lookalike).map_err(e2s)?;
    write(&root, b"etc/y", b"y")?;
    let out = fs
        .backend()
        .diff(&DiffLimits::default())
        .map_err(|e| format!("diff: {e}"))?;
    let paths: Vec<String> = out
        .changes
        .iter()
        .map(|c| Show(&c.path).to_string())
        .collect();
    check!(paths == ["/etc/y"], "changes: {paths:?}");
    check!(!stale.exists(), "stale temporary snapshot not removed");
    check!(lookalike.exists(), "a plain directory was deleted");
    std::fs::remove_dir(&lookalike).map_err(e2s)?;
    check!(
        fs.leftovers().is_empty(),
        "leftovers after success: {:?}",
        fs.leftovers()
    );

    // A root that is not there: refused, nothing left.
    let mut b = fs.backend();
    b.subvolume = b"nosuchroot".to_vec();
    let err = b
        .diff(&DiffLimits::default())
        .map(|_| ())
        .err()
        .map(|e| e.to_string());
    check!(
        err.as_deref()
            .is_some_and(|e| e.contains("root subvolume nosuchroot not found")),
        "{err:?}"
    );
    check!(fs.leftovers().is_empty(), "leftovers: {:?}", fs.leftovers());
    Ok(())
}

fn btrfs_diff_reports_truncation_by_entries_and_time() -> TestResult {
    let fs = with_root()?;
    let root = fs.root();
    write(&root, b"etc/base", b"b")?;
    fs.snapshot_blank()?;
    for i in 0..2000 {
        write(
            &root,
            format!("srv/d{}/file{i:04}", i % 7).as_bytes(),
            b"data",
        )?;
    }
    let full = fs
        .backend()
        .diff(&DiffLimits::default())
        .map_err(|e| format!("diff: {e}"))?;
    check!(
        full.truncated.is_none() && full.changes.len() == 2008,
        "full: {}",
        full.changes.len()
    );

    // Each limit cuts the list short, says which one did, lists only real changes and leaves
    // nothing behind.
    let cut = |limits: DiffLimits, want: Truncation| -> Result<Vec<Change>, String> {
        let out = fs
            .backend()
            .diff(&limits)
            .map_err(|e| format!("diff: {e}"))?;
        check!(
            out.truncated.as_ref() == Some(&want),
            "truncated: {:?}",
            out.truncated
        );
        for c in &out.changes {
            check!(
                full.changes
                    .iter()
                    .any(|f| f.path == c.path && f.kind == c.kind),
                "not a real change: {}",
                Show(&c.path)
            );
        }
        check!(fs.leftovers().is_empty(), "leftovers: {:?}", fs.leftovers());
        Ok(out.changes)
    };
    let limited = cut(
        DiffLimits {
            max_entries: 10,
            time_budget: None,
        },
        Truncation::MaxEntries(10),
    )?;
    check!(limited.len() == 10, "{} changes", limited.len());
    cut(
        DiffLimits {
            max_entries: usize::MAX,
            time_budget: Some(Duration::ZERO),
        },
        Truncation::TimeBudget(Duration::ZERO),
    )?;
    Ok(())
}
