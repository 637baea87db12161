//! darlings' own randomized differential test of the Btrfs diff (issue 10), shared by the
//! privileged tier (30 seeds) and `cargo bench --bench btrfs_differential` (more): per seed, a
//! random tree on a loop-device Btrfs root, its read-only blank, random operations on the root
//! (create, delete, rename and exchange files and directories, move across parents, chmod, chown,
//! truncate, writes in the middle, xattrs, symlinks, hard links, device nodes, fifos, sockets,
//! type changes, nested subvolumes, times alone, names of any byte, names that look like the
//! kernel's temporary ones, deep paths and, in some seeds, a chain past PATH_MAX), then the diff
//! compared with a walk of both trees.
//!
//! Ground truth, by path: a path is changed when it is in one tree only, or its entries differ
//! in inode (another entry took its place), type, content (bytes, size, symlink target, device
//! number), mode, owner or extended attributes. Times and link counts are not changes (README,
//! "What the diff reports"). The diff covers a changed path when it reports it (as a path or as
//! the origin of a rename), when it lies under a renamed directory it reports and is that
//! directory's entry moved unchanged, or when it is past PATH_MAX beneath a subtree the diff
//! names as not listed. Recall is the share of changed paths covered; precision the share of
//! reported paths (and unlisted subtrees) that are changed.
#![allow(dead_code)] // each user takes its subset

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CStr, CString, OsStr};
use std::hash::{DefaultHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use darlings_backends::btrfs::Btrfs;
use darlings_backends::bytes::Show;
use darlings_backends::{Backend, ChangeKind, DiffLimits, DiffOutput, PATH_MAX};
use rustix::fs::{self, AtFlags, Mode, OFlags, RenameFlags, StatxFlags, XattrFlags};
use rustix::io::Errno;

use crate::loopdev::{sh, Fs};

/// splitmix64: small, seedable, good enough to pick operations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One loop-device Btrfs for all seeds, top level mounted; each seed has its own root and
/// blank subvolumes in it.
pub struct Disk {
    fs: Fs,
    pub top: PathBuf,
    work: PathBuf,
}

impl Disk {
    pub fn new(size: &str) -> Result<Disk, String> {
        let fs = Fs::btrfs(size)?;
        Ok(Disk {
            top: fs.top.clone(),
            work: fs.base.join("work"),
            fs,
        })
    }

    fn backend(&self, root: &str, blank: &str) -> Btrfs {
        Btrfs {
            device: PathBuf::from(self.fs.dev()),
            subvolume: root.as_bytes().to_vec(),
            blank: blank.as_bytes().to_vec(),
            old_roots: b"old-roots".to_vec(),
            keep: None,
            now: SystemTime::now(),
            work_dir: self.work.clone(),
            #[cfg(feature = "failpoints")]
            failpoint: None,
        }
    }
}

/// One seed's result.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub seed: u64,
    /// Changed paths (ground truth).
    pub changed: usize,
    pub covered: usize,
    /// Reported paths and unlisted subtrees.
    pub reported: usize,
    pub correct: usize,
    pub ops: usize,
    /// Whether this seed's root held a chain past PATH_MAX (the send fails, the diff compares).
    pub past_path_max: bool,
    pub empty_blank: bool,
    /// The first misses, for the failure message.
    pub missed: Vec<String>,
    pub wrong: Vec<String>,
}

impl Outcome {
    pub fn add(&mut self, o: &Outcome) {
        self.changed += o.changed;
        self.covered += o.covered;
        self.reported += o.reported;
        self.correct += o.correct;
        self.ops += o.ops;
    }

    pub fn recall(&self) -> f64 {
        ratio(self.covered, self.changed)
    }

    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.reported)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// Runs one seed on `disk`: builds, changes, diffs, compares, and deletes its subvolumes.
pub fn run_seed(disk: &Disk, seed: u64) -> Result<Outcome, String> {
    let mut rng = Rng::new(seed);
    let root_name = format!("root-{seed}");
    let blank_name = format!("blank-{seed}");
    let root = disk.top.join(&root_name);
    let blank = disk.top.join(&blank_name);
    sh(&format!("btrfs -q subvolume create {}", root.display()))?;
    let empty_blank = seed % 7 == 3;
    let past_path_max = seed % 5 == 1;
    let fd = open_dir(&root)?;
    let mut w = World {
        root: &root,
        fd: &fd,
        rng: &mut rng,
        subvols: 0,
    };
    if !empty_blank {
        w.populate()?;
    }
    sh(&format!(
        "btrfs -q subvolume snapshot -r {} {}",
        root.display(),
        blank.display()
    ))?;
    let ops = 40 + w.rng.below(60);
    for _ in 0..ops {
        w.op()?;
    }
    if past_path_max {
        w.chain_past_path_max()?;
    }
    drop(fd);
    let out = disk
        .backend(&root_name, &blank_name)
        .diff(&DiffLimits::default())
        .map_err(|e| format!("seed {seed}: diff: {e}"))?;
    let truth_root = walk(&root)?;
    let truth_blank = walk(&blank)?;
    let mut o = compare(&truth_blank, &truth_root, &out);
    if std::env::var_os("DARLINGS_DIFF_TRACE").is_some() && o.covered != o.changed {
        trace(&truth_blank, &truth_root, &out);
    }
    o.seed = seed;
    o.ops = ops;
    o.past_path_max = past_path_max;
    o.empty_blank = empty_blank;
    delete_tree(&root)?;
    sh(&format!("btrfs -q subvolume delete {}", blank.display()))?;
    Ok(o)
}

/// Deletes a root subvolume and the nested subvolumes in it, deepest first (a subvolume's root
/// directory is inode 256). Paths go to `btrfs` as arguments, never through a shell: their
/// names hold any byte.
fn delete_tree(root: &Path) -> Result<(), String> {
    let mut nested: Vec<PathBuf> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() && p.as_os_str().len() < 3000 {
                if std::os::unix::fs::MetadataExt::ino(&md) == 256 {
                    nested.push(p.clone());
                }
                stack.push(p);
            }
        }
    }
    nested.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for n in nested.iter().chain(std::iter::once(&root.to_path_buf())) {
        let out = Command::new("btrfs")
            .args(["-q", "subvolume", "delete"])
            .arg(n)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() && n == root {
            return Err(format!(
                "delete {}: {}",
                n.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

fn open_dir(p: &Path) -> Result<OwnedFd, String> {
    fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", p.display()))
}

/// The live root being changed.
struct World<'a> {
    root: &'a Path,
    fd: &'a OwnedFd,
    rng: &'a mut Rng,
    subvols: u32,
}

/// Names of every kind a user may choose: any byte but `/` and NUL (and never `.` or `..`).
fn name(rng: &mut Rng) -> Vec<u8> {
    loop {
        let n = any_name(rng);
        if n != b"." && n != b".." {
            return n;
        }
    }
}

fn any_name(rng: &mut Rng) -> Vec<u8> {
    let plain = [
        "a", "b", "etc", "var", "log", "lib", "x.conf", "data", "cache", "tmp", "home", "f1", "f2",
        "d",
    ];
    match rng.below(12) {
        0 => b"sp ace".to_vec(),
        1 => b"new\nline".to_vec(),
        2 => vec![0xff, 0xfe, b'x'],
        3 => b"back\\slash\ttab".to_vec(),
        // Looks like the kernel's temporary names for new inodes.
        4 => format!("o{}-{}-0", 257 + rng.below(50), rng.below(20)).into_bytes(),
        5 => {
            let n = 1 + rng.below(255);
            (0..n).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        }
        6 => {
            let n = 1 + rng.below(12);
            (0..n)
                .map(|_| loop {
                    let b = rng.next() as u8;
                    if b != 0 && b != b'/' {
                        break b;
                    }
                })
                .collect()
        }
        _ => {
            let mut n = plain[rng.below(plain.len())].as_bytes().to_vec();
            n.extend_from_slice(rng.below(40).to_string().as_bytes());
            n
        }
    }
}

fn c(p: &[u8]) -> CString {
    CString::new(p.to_vec()).unwrap_or_default()
}

/// An entry of the live root as the operations see it.
#[derive(Clone)]
struct Live {
    rel: Vec<u8>,
    dir: bool,
    link: bool,
    /// A nested subvolume's root: its content is its own.
    subvol: bool,
}

impl World<'_> {
    /// Every entry of the live root within PATH_MAX, relative, not inside nested subvolumes.
    fn entries(&self) -> Vec<Live> {
        let mut out = Vec::new();
        let mut stack = vec![Vec::<u8>::new()];
        let dev = fs::fstat(self.fd).map(|s| s.st_dev).unwrap_or(0);
        while let Some(rel) = stack.pop() {
            let dir = if rel.is_empty() {
                fs::openat(
                    self.fd,
                    c".",
                    OFlags::RDONLY | OFlags::DIRECTORY,
                    Mode::empty(),
                )
            } else {
                fs::openat(
                    self.fd,
                    c(&rel).as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
            };
            let Ok(dir) = dir else { continue };
            let Ok(rd) = fs::Dir::read_from(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let n = e.file_name().to_bytes();
                if n == b"." || n == b".." {
                    continue;
                }
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(n);
                if child.len() + 1 >= PATH_MAX - 300 {
                    continue;
                }
                let st = fs::statat(&dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW);
                let Ok(st) = st else { continue };
                let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
                let subvol = st.st_dev != dev;
                if is_dir && !subvol {
                    stack.push(child.clone());
                }
                out.push(Live {
                    rel: child,
                    dir: is_dir,
                    link,
                    subvol,
                });
            }
        }
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        out
    }

    fn pick(&mut self, all: &[Live], dir: Option<bool>) -> Option<Live> {
        let v: Vec<&Live> = all
            .iter()
            .filter(|e| dir.is_none_or(|d| e.dir == d) && !e.subvol)
            .collect();
        if v.is_empty() {
            return None;
        }
        Some(v[self.rng.below(v.len())].clone())
    }

    /// A directory to create something in: the root itself or an existing directory.
    fn parent(&mut self, all: &[Live]) -> Vec<u8> {
        if self.rng.chance(20) {
            return Vec::new();
        }
        self.pick(all, Some(true))
            .map(|e| e.rel)
            .unwrap_or_default()
    }

    fn fresh(&mut self, parent: &[u8]) -> Vec<u8> {
        let mut p = parent.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(&name(self.rng));
        p
    }

    fn populate(&mut self) -> Result<(), String> {
        let n = 60 + self.rng.below(200);
        for _ in 0..n {
            let all = self.entries();
            let parent = self.parent(&all);
            let p = self.fresh(&parent);
            match self.rng.below(10) {
                0..=2 => self.mkdir(&p),
                3..=6 => self.mkfile(&p),
                7 => self.symlink(&p),
                8 => self.hardlink(&all, &p),
                _ => self.special(&p),
            }
        }
        // A few deep directories.
        let mut p = b"deep".to_vec();
        for i in 0..(10 + self.rng.below(40)) {
            self.mkdir(&p);
            p.extend_from_slice(format!("/level{i}").as_bytes());
        }
        self.mkfile(&p);
        for _ in 0..self.rng.below(20) {
            let all = self.entries();
            if let Some(e) = self.pick(&all, None) {
                self.xattr(&e.rel);
            }
        }
        Ok(())
    }

    fn mkdir(&mut self, p: &[u8]) {
        let mode = if self.rng.chance(80) { 0o755 } else { 0o700 };
        let _ = fs::mkdirat(self.fd, c(p).as_c_str(), Mode::from_raw_mode(mode));
    }

    fn mkfile(&mut self, p: &[u8]) {
        let len = match self.rng.below(10) {
            0 => 0,
            1..=6 => self.rng.below(3000),
            7 | 8 => 4096 + self.rng.below(60_000),
            _ => 200_000 + self.rng.below(300_000),
        };
        let data = self.rng.bytes(len);
        if let Ok(f) = fs::openat(
            self.fd,
            c(p).as_c_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            let _ = rustix::io::write(&f, &data);
        }
    }

    fn symlink(&mut self, p: &[u8]) {
        let target = name(self.rng);
        let _ = fs::symlinkat(c(&target).as_c_str(), self.fd, c(p).as_c_str());
    }

    fn hardlink(&mut self, all: &[Live], p: &[u8]) {
        if let Some(e) = self.pick(all, Some(false)) {
            let _ = fs::linkat(
                self.fd,
                c(&e.rel).as_c_str(),
                self.fd,
                c(p).as_c_str(),
                AtFlags::empty(),
            );
        }
    }

    fn special(&mut self, p: &[u8]) {
        let (ft, dev) = match self.rng.below(3) {
            0 => (fs::FileType::Fifo, 0),
            1 => (fs::FileType::Socket, 0),
            // null, zero, full: nodes nothing here reads or writes through.
            _ => (
                fs::FileType::CharacterDevice,
                rustix::fs::makedev(1, [3, 5, 7][self.rng.below(3)]),
            ),
        };
        let _ = fs::mknodat(
            self.fd,
            c(p).as_c_str(),
            ft,
            Mode::from_raw_mode(0o640),
            dev,
        );
    }

    fn xattr(&mut self, rel: &[u8]) {
        // user.* only on files and directories; trusted.* (root) on anything, symlinks too.
        let ns = if self.rng.chance(50) {
            "user"
        } else {
            "trusted"
        };
        let key = format!("{ns}.k{}", self.rng.below(4));
        let n = 1 + self.rng.below(40);
        let value = self.rng.bytes(n);
        let Ok(fd) = fs::openat(
            self.fd,
            c(rel).as_c_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        if self.rng.chance(25) {
            let _ = fs::removexattr(proc.as_str(), key.as_str());
        } else {
            let _ = fs::setxattr(proc.as_str(), key.as_str(), &value, XattrFlags::empty());
        }
    }

    /// One random operation on the live root.
    fn op(&mut self) -> Result<(), String> {
        let all = self.entries();
        let fd = self.fd;
        match self.rng.below(22) {
            0 | 1 => {
                let parent = self.parent(&all);
                let p = self.fresh(&parent);
                self.mkfile(&p);
            }
            2 => {
                let parent = self.parent(&all);
                let p = self.fresh(&parent);
                self.mkdir(&p);
            }
            3 => {
                let parent = self.parent(&all);
                let p = self.fresh(&parent);
                if self.rng.chance(50) {
                    self.symlink(&p);
                } else {
                    self.special(&p);
                }
            }
            4 => {
                let parent = self.parent(&all);
                let p = self.fresh(&parent);
                self.hardlink(&all, &p);
            }
            5 | 6 => {
                // Delete a file, or a directory with everything in it.
                if let Some(e) = self.pick(&all, None) {
                    remove(fd, &e);
                }
            }
            7 | 8 => {
                // Rename, in place or across parents, sometimes over an existing file.
                if let Some(e) = self.pick(&all, None) {
                    let to = if self.rng.chance(20) {
                        self.pick(&all, Some(false)).map(|t| t.rel)
                    } else {
                        None
                    };
                    let to = match to {
                        Some(t) => t,
                        None => {
                            let parent = self.parent(&all);
                            self.fresh(&parent)
                        }
                    };
                    let _ = fs::renameat(fd, c(&e.rel).as_c_str(), fd, c(&to).as_c_str());
                }
            }
            9 => {
                // RENAME_EXCHANGE of two entries (files, directories, or one of each).
                if let (Some(a), Some(b)) = (self.pick(&all, None), self.pick(&all, None)) {
                    let _ = fs::renameat_with(
                        fd,
                        c(&a.rel).as_c_str(),
                        fd,
                        c(&b.rel).as_c_str(),
                        RenameFlags::EXCHANGE,
                    );
                }
            }
            10 => {
                // chmod follows symlinks (Linux has no lchmod): never on one, so nothing
                // outside the root is touched.
                let target = if self.rng.chance(10) {
                    Some(Vec::new())
                } else {
                    self.pick(&all, None).filter(|e| !e.link).map(|e| e.rel)
                };
                if let Some(rel) = target {
                    let mode = Mode::from_raw_mode(self.rng.below(0o10000) as u32);
                    let _ = if rel.is_empty() {
                        fs::fchmod(fd, mode)
                    } else {
                        fs::chmodat(fd, c(&rel).as_c_str(), mode, AtFlags::empty())
                    };
                }
            }
            11 => {
                let target = if self.rng.chance(10) {
                    Some(Vec::new())
                } else {
                    self.pick(&all, None).map(|e| e.rel)
                };
                if let Some(rel) = target {
                    let ids = [0u32, 1, 1000, 1234, 65534];
                    let uid = fs::Uid::from_raw(ids[self.rng.below(ids.len())]);
                    let gid = fs::Gid::from_raw(ids[self.rng.below(ids.len())]);
                    let _ = if rel.is_empty() {
                        fs::fchown(fd, Some(uid), Some(gid))
                    } else {
                        fs::chownat(
                            fd,
                            c(&rel).as_c_str(),
                            Some(uid),
                            Some(gid),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                    };
                }
            }
            12 | 13 => {
                // Write in the middle, or truncate.
                if let Some(e) = self.pick(&all, Some(false)) {
                    if let Ok(f) = fs::openat(
                        fd,
                        c(&e.rel).as_c_str(),
                        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        let st = fs::fstat(&f);
                        if st.is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG) {
                            let size = st.map(|s| s.st_size as u64).unwrap_or(0);
                            if self.rng.chance(60) {
                                let at = self.rng.next() % (size + 1);
                                let n = 16 + self.rng.below(9000);
                                let data = self.rng.bytes(n);
                                let _ = rustix::io::pwrite(&f, &data, at);
                            } else {
                                let mut to = self.rng.next() % (size * 2 + 10);
                                if to == size {
                                    to += 1;
                                }
                                let _ = fs::ftruncate(&f, to);
                            }
                        }
                    }
                }
            }
            14 | 15 => {
                let target = if self.rng.chance(10) {
                    Some(Vec::new())
                } else {
                    self.pick(&all, None).map(|e| e.rel)
                };
                if let Some(rel) = target {
                    if rel.is_empty() {
                        let key = format!("user.root{}", self.rng.below(3));
                        let _ = fs::fsetxattr(fd, key.as_str(), b"v", XattrFlags::empty());
                    } else {
                        self.xattr(&rel);
                    }
                }
            }
            16 => {
                // A type change: the path stays, the entry becomes another kind of thing.
                if let Some(e) = self.pick(&all, None) {
                    remove(fd, &e);
                    match self.rng.below(4) {
                        0 => self.mkdir(&e.rel),
                        1 => self.mkfile(&e.rel),
                        2 => self.symlink(&e.rel),
                        _ => self.special(&e.rel),
                    }
                }
            }
            17 => {
                // A nested subvolume, sometimes with something in it, sometimes moved.
                let parent = self.parent(&all);
                let mut p = parent.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(format!("subvol{}", self.subvols).as_bytes());
                self.subvols += 1;
                let path = self.root.join(OsStr::from_bytes(&p));
                if sh(&format!("btrfs -q subvolume create '{}'", path.display())).is_ok() {
                    let _ = std::fs::write(path.join("inside"), b"x");
                    if self.rng.chance(30) {
                        let to = self.fresh(&parent);
                        let _ = fs::renameat(fd, c(&p).as_c_str(), fd, c(&to).as_c_str());
                    }
                }
            }
            18 => {
                // Times alone: not a change.
                if let Some(e) = self.pick(&all, None) {
                    let t = fs::Timespec {
                        tv_sec: (self.rng.next() % 2_000_000_000) as i64,
                        tv_nsec: 0,
                    };
                    let _ = fs::utimensat(
                        fd,
                        c(&e.rel).as_c_str(),
                        &fs::Timestamps {
                            last_access: t,
                            last_modification: t,
                        },
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
            }
            19 => {
                // Deeper still.
                if let Some(e) = self.pick(&all, Some(true)) {
                    let mut p = e.rel.clone();
                    for i in 0..(2 + self.rng.below(20)) {
                        p.extend_from_slice(format!("/n{i}").as_bytes());
                        self.mkdir(&p);
                    }
                    self.mkfile(&[p.as_slice(), b"/leaf"].concat());
                }
            }
            _ => {
                // Move a directory under another one (across parents).
                if let (Some(a), Some(b)) =
                    (self.pick(&all, Some(true)), self.pick(&all, Some(true)))
                {
                    let mut to = b.rel.clone();
                    to.push(b'/');
                    to.extend_from_slice(&name(self.rng));
                    let _ = fs::renameat(fd, c(&a.rel).as_c_str(), fd, c(&to).as_c_str());
                }
            }
        }
        Ok(())
    }

    /// 17 names of 250 bytes: 4,250 bytes, past PATH_MAX.
    fn chain_past_path_max(&mut self) -> Result<(), String> {
        let _ = fs::mkdirat(self.fd, c"chain", Mode::from_raw_mode(0o755));
        let mut dir = fs::openat(
            self.fd,
            c"chain",
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| format!("chain: {e}"))?;
        let long = c(&[b'c'; 250]);
        for _ in 0..17 {
            let _ = fs::mkdirat(&dir, long.as_c_str(), Mode::from_raw_mode(0o755));
            dir = fs::openat(
                &dir,
                long.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .map_err(|e| format!("chain: {e}"))?;
        }
        let f = fs::openat(
            &dir,
            c"leaf",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| format!("chain leaf: {e}"))?;
        let _ = rustix::io::write(&f, b"deep");
        Ok(())
    }
}

/// Removes a file, or a directory and everything in it (nested subvolumes are left: a plain
/// unlink cannot remove them, which is fine, the directory then stays).
fn remove(fd: &OwnedFd, e: &Live) {
    if !e.dir {
        let _ = fs::unlinkat(fd, c(&e.rel).as_c_str(), AtFlags::empty());
        return;
    }
    let Ok(dir) = fs::openat(
        fd,
        c(&e.rel).as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        Mode::empty(),
    ) else {
        return;
    };
    remove_in(&dir);
    let _ = fs::unlinkat(fd, c(&e.rel).as_c_str(), AtFlags::REMOVEDIR);
}

/// The names in a directory, without `.` and `..`.
fn entry_names(rd: fs::Dir) -> Vec<CString> {
    rd.flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect()
}

fn remove_in(dir: &OwnedFd) {
    let Ok(rd) = fs::Dir::read_from(dir) else {
        return;
    };
    let names = entry_names(rd);
    for n in names {
        if fs::unlinkat(dir, n.as_c_str(), AtFlags::empty()) == Err(Errno::ISDIR) {
            if let Ok(sub) = fs::openat(
                dir,
                n.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
                Mode::empty(),
            ) {
                remove_in(&sub);
            }
            let _ = fs::unlinkat(dir, n.as_c_str(), AtFlags::REMOVEDIR);
        }
    }
}

/// What a walk sees of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ent {
    ino: u64,
    kind: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    hash: u64,
    target: Vec<u8>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The root of a nested subvolume: not entered.
    subvol: bool,
}

impl Ent {
    fn is_dir(&self) -> bool {
        self.kind == libc::S_IFDIR
    }

    /// Same entry, same state: what "unchanged" means in the ground truth.
    fn same(&self, o: &Ent) -> bool {
        let meta = (
            self.ino,
            self.kind,
            self.mode,
            self.uid,
            self.gid,
            &self.xattrs,
            self.subvol,
        ) == (o.ino, o.kind, o.mode, o.uid, o.gid, &o.xattrs, o.subvol);
        if self.is_dir() {
            return meta;
        }
        meta && (self.size, self.rdev, self.hash, &self.target)
            == (o.size, o.rdev, o.hash, &o.target)
    }
}

fn xattrs_of(fd: BorrowedFd<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let mut names = vec![0u8; 65536];
    let Ok(n) = fs::listxattr(proc.as_str(), &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let mut v = vec![0u8; 65536];
        if let Ok(m) = fs::getxattr(proc.as_str(), OsStr::from_bytes(name), &mut v) {
            out.push((name.to_vec(), v[..m].to_vec()));
        }
    }
    out.sort();
    out
}

fn ent(dir: BorrowedFd<'_>, name: &CStr, dev: u64) -> Result<Ent, String> {
    let st = fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .map_err(|e| format!("stat {}: {e}", Show(name.to_bytes())))?;
    let kind = u32::from(st.stx_mode) & libc::S_IFMT;
    let open = |how: OFlags| {
        fs::openat(
            dir,
            name,
            how | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("open {}: {e}", Show(name.to_bytes())))
    };
    let p = open(OFlags::PATH)?;
    let mut hash = 0;
    if kind == libc::S_IFREG {
        let f = open(OFlags::RDONLY)?;
        let mut h = DefaultHasher::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match rustix::io::read(&f, &mut buf) {
                Ok(0) => break,
                Ok(n) => h.write(&buf[..n]),
                Err(Errno::INTR) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        hash = h.finish();
    }
    let target = if kind == libc::S_IFLNK {
        fs::readlinkat(dir, name, Vec::new())
            .map(|t| t.into_bytes())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(Ent {
        ino: st.stx_ino,
        kind,
        mode: u32::from(st.stx_mode) & 0o7777,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: if kind == libc::S_IFREG {
            st.stx_size
        } else {
            0
        },
        rdev: (u64::from(st.stx_rdev_major) << 32) | u64::from(st.stx_rdev_minor),
        hash,
        target,
        xattrs: xattrs_of(p.as_fd()),
        subvol: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor) != dev,
    })
}

/// Every entry of a subvolume by absolute path, `/` included, through directory descriptors
/// (so past PATH_MAX too), without entering nested subvolumes.
pub fn walk(base: &Path) -> Result<BTreeMap<Vec<u8>, Ent>, String> {
    let top = open_dir(base)?;
    let dev = fs::fstat(&top).map_err(|e| e.to_string())?.st_dev;
    let mut out = BTreeMap::new();
    let root = ent(top.as_fd(), c".", dev)?;
    out.insert(b"/".to_vec(), root);
    let mut stack: Vec<(Vec<u8>, OwnedFd)> = vec![(b"/".to_vec(), top)];
    while let Some((path, dir)) = stack.pop() {
        let rd = fs::Dir::read_from(&dir).map_err(|e| format!("read {}: {e}", Show(&path)))?;
        let names = entry_names(rd);
        for n in names {
            let e = ent(dir.as_fd(), &n, dev)?;
            let child = darlings_backends::bytes::join(&path, n.as_bytes());
            if e.is_dir() && !e.subvol {
                let sub = fs::openat(
                    &dir,
                    n.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| format!("open {}: {e}", Show(&child)))?;
                stack.push((child.clone(), sub));
            }
            out.insert(child, e);
        }
    }
    Ok(out)
}

fn parent_of(p: &[u8]) -> &[u8] {
    match p.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &p[..i],
    }
}

fn under<'a>(p: &'a [u8], dir: &[u8]) -> Option<&'a [u8]> {
    if dir == b"/" {
        return p.strip_prefix(b"/");
    }
    p.strip_prefix(dir)?.strip_prefix(b"/")
}

/// Where `p` was (side 0: `p` is a new path, give the old one) or went (side 1) by the longest
/// reported directory rename that holds it.
fn longest(renames: &[(Vec<u8>, Vec<u8>)], p: &[u8], side: usize) -> Option<Vec<u8>> {
    renames
        .iter()
        .filter_map(|(new, old)| {
            let (here, there) = if side == 0 { (new, old) } else { (old, new) };
            under(p, here).map(|rest| (here.len(), darlings_backends::bytes::join(there, rest)))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, q)| q)
}

/// Scores a diff against the two walks.
pub fn compare(
    blank: &BTreeMap<Vec<u8>, Ent>,
    root: &BTreeMap<Vec<u8>, Ent>,
    out: &DiffOutput,
) -> Outcome {
    let mut o = Outcome::default();
    // The ground truth: every changed path.
    let mut changed: BTreeSet<&Vec<u8>> = BTreeSet::new();
    for (p, e) in root {
        match blank.get(p) {
            Some(b) if b.same(e) => {}
            _ => {
                changed.insert(p);
            }
        }
    }
    for p in blank.keys() {
        if !root.contains_key(p) {
            changed.insert(p);
        }
    }
    let mut reported: HashMap<Vec<u8>, &'static str> = HashMap::new();
    let mut renames: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for c in &out.changes {
        reported.insert(c.path.clone(), c.kind.as_str());
        if let ChangeKind::Renamed { from } = &c.kind {
            reported.insert(from.clone(), "renamed away");
            if root.get(&c.path).is_some_and(|e| e.is_dir()) {
                renames.push((c.path.clone(), from.clone()));
            }
        }
    }
    // Recall.
    o.changed = changed.len();
    for p in &changed {
        let covered = reported.contains_key(*p)
            || (p.len() >= PATH_MAX && out.unlisted.iter().any(|u| under(p, &u.path).is_some()))
            || match (root.get(*p), blank.get(*p)) {
                // Moved with a renamed directory, unchanged.
                (Some(e), _)
                    if longest(&renames, p, 0)
                        .is_some_and(|q| blank.get(&q).is_some_and(|b| b.same(e))) =>
                {
                    true
                }
                // Gone from under a renamed directory's old path because it moved with it.
                (None, Some(b)) => longest(&renames, p, 1)
                    .is_some_and(|q| root.get(&q).is_some_and(|e| e.ino == b.ino)),
                _ => false,
            };
        if covered {
            o.covered += 1;
        } else if o.missed.len() < 12 {
            let what = match (root.get(*p), blank.get(*p)) {
                (Some(_), None) => "added",
                (None, Some(_)) => "removed",
                _ => "changed",
            };
            o.missed.push(format!("{what} {}", Show(p)));
        }
    }
    // Precision.
    for (p, kind) in &reported {
        o.reported += 1;
        if changed.contains(p) {
            o.correct += 1;
        } else if o.wrong.len() < 12 {
            o.wrong.push(format!("{kind} {}", Show(p)));
        }
    }
    for u in &out.unlisted {
        o.reported += 1;
        let real = root
            .keys()
            .any(|p| p.len() >= PATH_MAX && under(p, &u.path).is_some())
            && parent_of(&u.path).len() < PATH_MAX;
        if real {
            o.correct += 1;
        } else if o.wrong.len() < 12 {
            o.wrong
                .push(format!("unlisted {}: {}", Show(&u.path), u.reason));
        }
    }
    o
}

/// For a seed that misses: what the diff said and what the walks saw, near the first miss.
fn trace(blank: &BTreeMap<Vec<u8>, Ent>, root: &BTreeMap<Vec<u8>, Ent>, out: &DiffOutput) {
    for c in &out.changes {
        let from = match &c.kind {
            ChangeKind::Renamed { from } => format!(" from {}", Show(from)),
            _ => String::new(),
        };
        eprintln!(
            "diff: {} {}{from} {:?}",
            c.kind.as_str(),
            Show(&c.path),
            c.file_type
        );
    }
    for (p, e) in blank {
        if root.get(p).is_none_or(|r| !r.same(e)) {
            eprintln!("blank: {} ino {} kind {:o}", Show(p), e.ino, e.kind);
        }
    }
    for (p, e) in root {
        if blank.get(p).is_none_or(|b| !b.same(e)) {
            eprintln!("root: {} ino {} kind {:o}", Show(p), e.ino, e.kind);
        }
    }
}
