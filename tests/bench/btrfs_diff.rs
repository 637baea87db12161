//! `cargo bench --bench btrfs_diff`: the Btrfs diff's time and recall side by side with the
//! other ways to learn what changed, from one run on a loop device in a private mount namespace
//! (needs root, like the privileged tests).
//!
//! 1. The blank holds 200,000 files and 1,000 entries changed (400 added, 200 removed,
//!    100 renamed, 100 chmod, 100 chown, 100 rewritten): darlings diff (the library call,
//!    temporary snapshot included) against a full walk of both trees (in Rust, lstat of every
//!    entry, comparing type, inode, size, mode, owner and mtime by path), `btrfs send --no-data
//!    -p blank snap | btrfs receive --dump`, `btrfs subvolume find-new`, and `btrfs send
//!    --no-data -p blank snap > /dev/null` alone.
//! 2. The NixOS case, an empty blank and a root of 50,000 files: darlings diff against
//!    `find ROOT -xdev`.
//!
//! Times are the best of 3 warm runs, each after the cleaner has finished with deleted
//! snapshots (`btrfs subvolume sync`).

#[path = "../support/bench.rs"]
mod bench;
#[path = "../support/loopdev.rs"]
mod loopdev;
#[path = "../support/ns.rs"]
mod ns;

use bench::{fail, ms};
use loopdev::{run, Fs};

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use darlings_backends::btrfs::Btrfs;
use darlings_backends::{Backend, DiffLimits};

const DIRS: usize = 400;
const PER_DIR: usize = 500;
const NIX_DIRS: usize = 100;

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Best of 3 after one warm-up; `f` returns the set of paths it reported. Before each run,
/// `settle` waits (untimed) for the cleaner to finish with deleted snapshots, so one method's
/// leftovers do not slow the next.
fn best(
    settle: &dyn Fn() -> Result<(), String>,
    mut f: impl FnMut() -> Result<BTreeSet<Vec<u8>>, String>,
) -> Result<(Duration, BTreeSet<Vec<u8>>), String> {
    let mut out = f()?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        settle()?;
        let t = Instant::now();
        out = f()?;
        best = best.min(t.elapsed());
    }
    Ok((best, out))
}

/// Subvolumes of, and the backend on, the loop-device Btrfs.
trait Subvols {
    fn subvol(&self, args: &[&str]) -> Result<(), String>;
    fn backend(&self, root: &str, blank: &str) -> Btrfs;
}

impl Subvols for Fs {
    fn subvol(&self, args: &[&str]) -> Result<(), String> {
        let mut full: Vec<std::ffi::OsString> = vec!["-q".into(), "subvolume".into()];
        for a in args {
            full.push(
                if a.starts_with('-') || *a == "create" || *a == "snapshot" {
                    (*a).into()
                } else {
                    self.top.join(a).into_os_string()
                },
            );
        }
        let refs: Vec<&std::ffi::OsStr> = full.iter().map(|s| s.as_os_str()).collect();
        run("btrfs", &refs).map(drop)
    }

    fn backend(&self, root: &str, blank: &str) -> Btrfs {
        Btrfs {
            device: PathBuf::from(self.dev()),
            subvolume: root.as_bytes().to_vec(),
            blank: blank.as_bytes().to_vec(),
            old_roots: b"old-roots".to_vec(),
            keep: None,
            now: SystemTime::now(),
            work_dir: self.base.join("work"),
            #[cfg(feature = "failpoints")]
            failpoint: None,
        }
    }
}

fn populate(root: &Path, dirs: usize, per_dir: usize) -> Result<(), String> {
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).map_err(e2s)?;
        for f in 0..per_dir {
            std::fs::write(dir.join(format!("f{f:03}")), b"sixteen bytes!!\n").map_err(e2s)?;
        }
    }
    Ok(())
}

/// Makes the 1,000 changes; returns the paths a complete diff must report (renames at their
/// new name).
fn change(root: &Path) -> Result<BTreeSet<Vec<u8>>, String> {
    let mut truth = BTreeSet::new();
    let mut note = |p: String| truth.insert(format!("/{p}").into_bytes());
    for d in 0..DIRS {
        let p = format!("d{d:03}/new");
        std::fs::write(root.join(&p), b"added\n").map_err(e2s)?;
        note(p);
    }
    for d in 0..200 {
        let p = format!("d{d:03}/f000");
        std::fs::remove_file(root.join(&p)).map_err(e2s)?;
        note(p);
    }
    for d in 200..300 {
        let to = format!("d{d:03}/r001");
        std::fs::rename(root.join(format!("d{d:03}/f001")), root.join(&to)).map_err(e2s)?;
        note(to);
    }
    for d in 300..400 {
        let p = format!("d{d:03}/f002");
        std::fs::set_permissions(root.join(&p), std::fs::Permissions::from_mode(0o600))
            .map_err(e2s)?;
        note(p);
    }
    for d in 0..100 {
        let p = format!("d{d:03}/f003");
        std::fs::write(root.join(&p), b"rewritten with longer content\n").map_err(e2s)?;
        note(p);
    }
    for d in 100..200 {
        let p = format!("d{d:03}/f004");
        std::os::unix::fs::lchown(root.join(&p), Some(1000), Some(1000)).map_err(e2s)?;
        note(p);
    }
    Ok(truth)
}

type Meta = (u32, u64, u64, u32, u32, u32, i64, i64);

fn walk(base: &Path) -> Result<BTreeMap<Vec<u8>, Meta>, String> {
    let dev = std::fs::symlink_metadata(base).map_err(e2s)?.dev();
    let mut out = BTreeMap::new();
    let mut stack = vec![base.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(e2s)? {
            let e = e.map_err(e2s)?;
            let path = e.path();
            let md = std::fs::symlink_metadata(&path).map_err(e2s)?;
            if md.is_dir() && md.dev() == dev {
                stack.push(path.clone());
            }
            let rel = path.strip_prefix(base).map_err(e2s)?;
            let mut key = b"/".to_vec();
            key.extend_from_slice(rel.as_os_str().as_bytes());
            let size = if md.is_dir() { 0 } else { md.size() };
            out.insert(
                key,
                (
                    md.mode() & libc::S_IFMT,
                    md.ino(),
                    size,
                    md.mode() & 0o7777,
                    md.uid(),
                    md.gid(),
                    if md.is_dir() { 0 } else { md.mtime() },
                    if md.is_dir() { 0 } else { md.mtime_nsec() },
                ),
            );
        }
    }
    Ok(out)
}

/// Paths that differ between two trees, by lstat alone.
fn full_walk(blank: &Path, root: &Path) -> Result<BTreeSet<Vec<u8>>, String> {
    let a = walk(blank)?;
    let b = walk(root)?;
    let mut out = BTreeSet::new();
    for (k, v) in &a {
        if b.get(k) != Some(v) {
            out.insert(k.clone());
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            out.insert(k.clone());
        }
    }
    Ok(out)
}

/// Every path `btrfs receive --dump` mentions (source and `dest=`), relative to the subvolume.
fn dump_paths(dump: &str, subvol: &str) -> BTreeSet<Vec<u8>> {
    let prefix = format!("./{subvol}/");
    dump.lines()
        .flat_map(|l| l.split_whitespace())
        .filter_map(|tok| {
            let tok = tok.strip_prefix("dest=").unwrap_or(tok);
            tok.strip_prefix(&prefix)
                .map(|p| format!("/{p}").into_bytes())
        })
        .collect()
}

fn recall(got: &BTreeSet<Vec<u8>>, truth: &BTreeSet<Vec<u8>>) -> f64 {
    let hit = truth.iter().filter(|t| got.contains(*t)).count();
    100.0 * hit as f64 / truth.len().max(1) as f64
}

struct Row {
    what: String,
    time: Duration,
    reported: Option<usize>,
    recall: Option<f64>,
}

fn bench() -> Result<Vec<Row>, String> {
    let fs = Fs::btrfs("2G")?;
    let mut rows = Vec::new();

    // 1. 200,000 files, 1,000 changes.
    fs.subvol(&["create", "root"])?;
    let root = fs.top.join("root");
    let t = Instant::now();
    populate(&root, DIRS, PER_DIR)?;
    eprintln!(
        "bench: created {} files in {:.1} s",
        DIRS * PER_DIR,
        t.elapsed().as_secs_f64()
    );
    fs.subvol(&["snapshot", "-r", "root", "root-blank"])?;
    let truth = change(&root)?;
    fs.subvol(&["snapshot", "-r", "root", "snap"])?;
    run("btrfs", &[os("filesystem"), os("sync"), fs.top.as_os_str()])?;

    let settle = || {
        run("btrfs", &[os("subvolume"), os("sync"), fs.top.as_os_str()])?;
        run("btrfs", &[os("filesystem"), os("sync"), fs.top.as_os_str()]).map(drop)
    };
    let b = fs.backend("root", "root-blank");
    let (t_darlings, got) = best(&settle, || {
        let out = b
            .diff(&DiffLimits::default())
            .map_err(|e| format!("darlings diff: {e}"))?;
        Ok(out.changes.into_iter().map(|c| c.path).collect())
    })?;
    let blank = fs.top.join("root-blank");
    let snap = fs.top.join("snap");
    let (t_walk, walked) = best(&settle, || full_walk(&blank, &snap))?;
    let pipeline = format!(
        "btrfs send -q --no-data -p '{}' '{}' | btrfs receive --dump",
        blank.display(),
        snap.display()
    );
    let (t_dump, dumped) = best(&settle, || {
        let out = run("sh", &[os("-c"), os(&pipeline)])?;
        Ok(dump_paths(&out, "snap"))
    })?;
    let gen = run("btrfs", &[os("subvolume"), os("show"), blank.as_os_str()])?
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Generation:")
                .map(|g| g.trim().to_string())
        })
        .and_then(|g| g.parse::<u64>().ok())
        .ok_or("no generation in btrfs subvolume show")?;
    // find-new lists extents of this generation and newer: start after the blank's.
    let gen = (gen + 1).to_string();
    let (t_find_new, found) = best(&settle, || {
        let out = run(
            "btrfs",
            &[os("subvolume"), os("find-new"), root.as_os_str(), os(&gen)],
        )?;
        Ok(out
            .lines()
            .filter(|l| l.starts_with("inode "))
            .filter_map(|l| l.rsplit(' ').next())
            .map(|p| format!("/{p}").into_bytes())
            .collect())
    })?;
    let (t_send, _) = best(&settle, || {
        let st = Command::new("btrfs")
            .args(["send", "-q", "--no-data", "-p"])
            .arg(&blank)
            .arg(&snap)
            .stdout(Stdio::null())
            .status()
            .map_err(e2s)?;
        if !st.success() {
            return Err(format!("btrfs send failed: {st}"));
        }
        Ok(BTreeSet::new())
    })?;
    rows.push(Row {
        what: "darlings diff (incl. temp snapshot)".into(),
        time: t_darlings,
        reported: Some(got.len()),
        recall: Some(recall(&got, &truth)),
    });
    rows.push(Row {
        what: "(a) full walk of both trees (Rust lstat)".into(),
        time: t_walk,
        reported: Some(walked.len()),
        recall: Some(recall(&walked, &truth)),
    });
    rows.push(Row {
        what: "(b) btrfs send --no-data | receive --dump".into(),
        time: t_dump,
        reported: Some(dumped.len()),
        recall: Some(recall(&dumped, &truth)),
    });
    rows.push(Row {
        what: "(c) btrfs subvolume find-new".into(),
        time: t_find_new,
        reported: Some(found.len()),
        recall: Some(recall(&found, &truth)),
    });
    rows.push(Row {
        what: "btrfs send --no-data -p > /dev/null".into(),
        time: t_send,
        reported: None,
        recall: None,
    });

    // At boot the caches are cold: the walk then reads every inode of both trees from disk,
    // while send reads only the metadata the two trees do not share.
    let cold = || {
        settle()?;
        std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("drop_caches: {e}"))
    };
    let (t_darlings_cold, _) = best(&cold, || {
        let out = b
            .diff(&DiffLimits::default())
            .map_err(|e| format!("darlings diff: {e}"))?;
        Ok(out.changes.into_iter().map(|c| c.path).collect())
    })?;
    let (t_walk_cold, _) = best(&cold, || full_walk(&blank, &snap))?;

    // 2. NixOS: empty blank, 50,000 files.
    fs.subvol(&["create", "nix-root"])?;
    fs.subvol(&["snapshot", "-r", "nix-root", "nix-blank"])?;
    let nix = fs.top.join("nix-root");
    populate(&nix, NIX_DIRS, PER_DIR)?;
    run("btrfs", &[os("filesystem"), os("sync"), fs.top.as_os_str()])?;
    let nb = fs.backend("nix-root", "nix-blank");
    let (t_nix, nix_got) = best(&settle, || {
        let out = nb
            .diff(&DiffLimits::default())
            .map_err(|e| format!("darlings diff: {e}"))?;
        Ok(out.changes.into_iter().map(|c| c.path).collect())
    })?;
    let (t_find, _) = best(&settle, || {
        let st = Command::new("find")
            .arg(&nix)
            .arg("-xdev")
            .stdout(Stdio::null())
            .status()
            .map_err(e2s)?;
        if !st.success() {
            return Err(format!("find failed: {st}"));
        }
        Ok(BTreeSet::new())
    })?;
    rows.push(Row {
        what: "NixOS: darlings diff, empty blank, 50k files".into(),
        time: t_nix,
        reported: Some(nix_got.len()),
        recall: None,
    });
    rows.push(Row {
        what: "NixOS: find ROOT -xdev".into(),
        time: t_find,
        reported: None,
        recall: None,
    });
    rows.push(Row {
        what: "cold cache: darlings diff".into(),
        time: t_darlings_cold,
        reported: None,
        recall: None,
    });
    rows.push(Row {
        what: "cold cache: (a) full walk of both trees".into(),
        time: t_walk_cold,
        reported: None,
        recall: None,
    });
    Ok(rows)
}

fn main() {
    if !bench::start() {
        return;
    }
    let rows = bench().unwrap_or_else(|e| fail(e));
    println!(
        "\nbtrfs diff: blank of {} files, 1,000 entries changed; best of 3 runs (warm unless marked cold)\n",
        DIRS * PER_DIR
    );
    println!(
        "{:<46} {:>10} {:>9} {:>8}",
        "method", "time", "reported", "recall"
    );
    for r in &rows {
        println!(
            "{:<46} {:>7.1} ms {:>9} {:>8}",
            r.what,
            ms(r.time),
            r.reported.map_or("-".into(), |n| n.to_string()),
            r.recall.map_or("-".into(), |x| format!("{x:.1}%"))
        );
    }
    let t = |i: usize| rows[i].time.as_secs_f64();
    let vs_send = t(0) / t(4);
    let vs_walk = t(1) / t(0);
    let vs_find = t(5) / t(6);
    let vs_walk_cold = t(8) / t(7);
    println!("\ntargets:");
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let full_recall = rows[0].recall == Some(100.0);
    println!("  recall 100%: {}", met(full_recall));
    println!(
        "  within 1.2x of btrfs send --no-data > /dev/null: {} ({vs_send:.2}x)",
        met(vs_send <= 1.2)
    );
    println!(
        "  >= 10x faster than the full walk, warm caches: {} ({vs_walk:.1}x)",
        met(vs_walk >= 10.0)
    );
    println!(
        "  >= 10x faster than the full walk, cold caches (as at boot): {} ({vs_walk_cold:.1}x)",
        met(vs_walk_cold >= 10.0)
    );
    println!(
        "  NixOS case no slower than find -xdev: {} ({vs_find:.2}x of find's time)",
        met(vs_find <= 1.0)
    );
}
