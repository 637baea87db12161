//! Privileged tests of the btrfs rollback, preflight and init on real loop devices: the exchange
//! protocol, nested subvolumes, retention, dry runs, refusals, and a crash matrix that cuts the
//! power after every protocol step and checks that the next run repairs it.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use darlings_backends::btrfs::{Btrfs, Keep};
use darlings_backends::{Backend, RollbackOpts};

use crate::loopdev::{self, sh, Fs};
use crate::Case;

type TestResult = Result<(), String>;

const DAY: u64 = 86_400;

/// 2026-11-22T02:30:00Z: the clock every test starts from.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_314_600)
}

pub(crate) fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The usual layout: `root` (made empty, then `etc/marker` added before the blank is taken),
/// `root-blank` read-only, `persist` with content; then the root is "used": files and nested
/// subvolumes made the way systemd makes /var/lib/machines.
fn standard() -> Result<Fs, String> {
    let fs = Fs::btrfs("300M")?;
    let t = fs.top.display();
    sh(&format!(
        "set -e; cd {t}; btrfs -q subvolume create root; mkdir root/etc; \
         echo blank > root/etc/marker; btrfs -q subvolume snapshot -r root root-blank; \
         btrfs -q subvolume create persist; mkdir -p persist/var/log; \
         echo kept > persist/var/log/old.log; printf 'a\\nb' > persist/notes"
    ))?;
    fs.use_root()?;
    Ok(fs)
}

/// What these tests ask of the loop-device Btrfs beyond the fixture.
trait Layout {
    fn use_root(&self) -> TestResult;
    fn backend(&self, keep: Option<Keep>) -> Btrfs;
    fn subvols(&self) -> Result<Vec<String>, String>;
    fn show(&self, rel: &str, field: &str) -> Result<String, String>;
    fn is_subvol(&self, rel: &str) -> bool;
    fn check_fresh_root(&self) -> TestResult;
    fn copy_image(&self, name: &str) -> Result<PathBuf, String>;
    fn work_dir_is_clean(&self) -> TestResult;
}

impl Layout for Fs {
    /// Writes into the root what a running system would: files and nested subvolumes.
    fn use_root(&self) -> TestResult {
        let t = self.top.display();
        sh(&format!(
            "set -e; cd {t}/root; mkdir -p home/user var/lib; echo lost > home/user/new.txt; \
             echo changed >> etc/marker; btrfs -q subvolume create var/lib/machines; \
             btrfs -q subvolume create var/lib/machines/inner; \
             echo deep > var/lib/machines/inner/f; btrfs -q subvolume create var/lib/portables"
        ))?;
        Ok(())
    }

    fn backend(&self, keep: Option<Keep>) -> Btrfs {
        Btrfs {
            device: PathBuf::from(self.dev()),
            subvolume: b"root".to_vec(),
            blank: b"root-blank".to_vec(),
            old_roots: b"old-roots".to_vec(),
            keep,
            now: t0(),
            work_dir: self.base.join("work"),
            failpoint: None,
        }
    }

    /// Subvolume paths relative to the top level, sorted.
    fn subvols(&self) -> Result<Vec<String>, String> {
        let out = sh(&format!("btrfs subvolume list {}", self.top.display()))?;
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_once(" path ").map(|(_, p)| p.to_string()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// The value of a field of `btrfs subvolume show`.
    fn show(&self, rel: &str, field: &str) -> Result<String, String> {
        let out = sh(&format!("btrfs subvolume show {}", self.p(rel).display()))?;
        Ok(out
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix(field)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|r| r.trim().to_string())
            })
            .unwrap_or_default())
    }

    fn is_subvol(&self, rel: &str) -> bool {
        sh(&format!("btrfs subvolume show {}", self.p(rel).display())).is_ok()
    }

    /// `root` is a fresh, writable snapshot of the blank with the blank's content only.
    fn check_fresh_root(&self) -> TestResult {
        check!(self.is_subvol("root"), "root is not a subvolume");
        check!(
            self.show("root", "Parent UUID")? == self.show("root-blank", "UUID")?,
            "root is not a snapshot of root-blank"
        );
        check!(
            hash_tree(&self.p("root"))? == hash_tree(&self.p("root-blank"))?,
            "root's content differs from the blank's"
        );
        check!(
            std::fs::read(self.p("root/etc/marker")).map_err(e2s)? == b"blank\n",
            "marker changed"
        );
        check!(!self.p("root/home").exists(), "new files survived");
        check!(!self.p("root.new").exists(), "root.new left behind");
        check!(
            self.show("root", "Flags")? != "readonly",
            "fresh root is read-only"
        );
        check!(
            self.show("root-blank", "Flags")? == "readonly",
            "blank lost its read-only flag"
        );
        Ok(())
    }

    /// A copy of the image as it is on the device right now (sparse, so it is quick).
    fn copy_image(&self, name: &str) -> Result<PathBuf, String> {
        let to = self.base.join(name);
        sh(&format!(
            "cp --sparse=always {} {}",
            self.img.display(),
            to.display()
        ))?;
        Ok(to)
    }

    fn work_dir_is_clean(&self) -> TestResult {
        let work = self.base.join("work");
        let left: Vec<String> = std::fs::read_dir(&work)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        check!(left.is_empty(), "left in the work directory: {left:?}");
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        check!(
            !info.contains(&*work.to_string_lossy()),
            "a mount under the work directory was left"
        );
        Ok(())
    }
}

/// A hash of every name, type, mode, owner, symlink target and file content below `dir`
/// (nested subvolumes included: they are directories here).
fn hash_tree(dir: &Path) -> Result<u64, String> {
    let mut h = DefaultHasher::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| format!("{}: {e}", d.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).map_err(e2s)?;
            p.strip_prefix(dir).map_err(e2s)?.hash(&mut h);
            (md.mode(), md.uid(), md.gid()).hash(&mut h);
            if md.is_dir() {
                stack.push(p);
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&p).map_err(e2s)?.hash(&mut h);
            } else if md.is_file() {
                std::fs::read(&p).map_err(e2s)?.hash(&mut h);
            }
        }
    }
    Ok(h.finish())
}

fn rollback(b: &Btrfs) -> Result<Vec<String>, String> {
    b.rollback(&RollbackOpts { dry_run: false })
        .map(|o| o.steps)
        .map_err(|e| format!("rollback failed: {e}"))
}

fn steps_named(steps: &[String]) -> Vec<&str> {
    steps
        .iter()
        .filter_map(|s| s.split_once(':').map(|(n, _)| n))
        .collect()
}

fn btrfs_rollback_makes_a_fresh_root_and_touches_nothing_else() -> TestResult {
    let fs = standard()?;
    let blank_before = hash_tree(&fs.p("root-blank"))?;
    let persist_before = hash_tree(&fs.p("persist"))?;
    let blank_uuid = fs.show("root-blank", "UUID")?;
    let old_id = fs.show("root", "Subvolume ID")?;
    let b = fs.backend(None);
    let steps = rollback(&b)?;
    check!(
        steps_named(&steps)
            == [
                "snapshot",
                "exchange",
                "delete-nested",
                "delete-nested",
                "delete-nested",
                "retire-old",
                "sync"
            ],
        "steps: {steps:#?}"
    );
    check!(
        steps
            .iter()
            .any(|s| s.contains("root.new/var/lib/machines/inner")),
        "nested subvolume not named: {steps:#?}"
    );
    fs.check_fresh_root()?;
    check!(
        hash_tree(&fs.p("root-blank"))? == blank_before,
        "blank changed"
    );
    check!(
        fs.show("root-blank", "UUID")? == blank_uuid,
        "blank was replaced"
    );
    check!(
        hash_tree(&fs.p("persist"))? == persist_before,
        "store changed"
    );
    check!(
        fs.subvols()? == ["persist", "root", "root-blank"],
        "subvolumes after rollback: {:?}",
        fs.subvols()?
    );
    check!(
        fs.show("root", "Subvolume ID")? != old_id,
        "root was not replaced"
    );
    check!(!fs.p("old-roots").exists(), "keep = none made old-roots");
    fs.work_dir_is_clean()?;
    // Idempotent: a second run makes another fresh root.
    let second_id = fs.show("root", "Subvolume ID")?;
    let steps = rollback(&b)?;
    check!(
        steps_named(&steps) == ["snapshot", "exchange", "retire-old", "sync"],
        "second run: {steps:#?}"
    );
    fs.check_fresh_root()?;
    check!(
        fs.show("root", "Subvolume ID")? != second_id,
        "second run did not make another root"
    );
    check!(
        hash_tree(&fs.p("persist"))? == persist_before,
        "store changed"
    );
    check!(
        fs.subvols()? == ["persist", "root", "root-blank"],
        "{:?}",
        fs.subvols()?
    );
    fs.work_dir_is_clean()?;
    Ok(())
}

/// Old-root names in old-roots, sorted.
fn old_roots(fs: &Fs) -> Result<Vec<String>, String> {
    let mut v: Vec<String> = std::fs::read_dir(fs.p("old-roots"))
        .map_err(e2s)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

fn btrfs_rollback_keeps_old_roots_by_count_and_by_age() -> TestResult {
    let fs = standard()?;
    let count3 = Keep {
        count: Some(3),
        days: None,
    };
    let mut b = fs.backend(Some(count3));
    for day in 0..6u64 {
        b.now = t0() + Duration::from_secs(day * DAY);
        let steps = rollback(&b)?;
        if day == 0 {
            check!(
                steps_named(&steps)
                    == [
                        "make-old-roots",
                        "snapshot",
                        "exchange",
                        "retire-old",
                        "sync"
                    ],
                "{steps:#?}"
            );
        }
        if day == 3 {
            // The first old root (with its nested subvolumes) goes, deepest first.
            check!(
                steps_named(&steps)
                    .iter()
                    .filter(|s| **s == "prune")
                    .count()
                    == 4,
                "{steps:#?}"
            );
        }
        fs.check_fresh_root()?;
        fs.use_root()?;
    }
    check!(
        old_roots(&fs)?
            == [
                "2026-11-25T02:30:00Z",
                "2026-11-26T02:30:00Z",
                "2026-11-27T02:30:00Z"
            ],
        "by count: {:?}",
        old_roots(&fs)?
    );
    // The kept ones hold the old root's content, nested subvolumes included.
    check!(
        fs.p("old-roots/2026-11-27T02:30:00Z/home/user/new.txt")
            .exists(),
        "old root content missing"
    );
    check!(
        fs.is_subvol("old-roots/2026-11-27T02:30:00Z/var/lib/machines/inner"),
        "nested subvolume of a kept root missing"
    );
    // Something darlings did not name is never pruned.
    sh(&format!(
        "btrfs -q subvolume create {}",
        fs.p("old-roots/keep-me").display()
    ))?;
    // A name collision gets a suffix.
    b.now = t0() + Duration::from_secs(5 * DAY);
    b.keep = Some(Keep {
        count: Some(10),
        days: None,
    });
    rollback(&b)?;
    check!(
        old_roots(&fs)?.contains(&"2026-11-27T02:30:00Z.1".to_string()),
        "collision: {:?}",
        old_roots(&fs)?
    );
    // By age: at day 7, keep 2 days: day 5 is 2 days old (kept), day 4 is 3 (pruned).
    b.now = t0() + Duration::from_secs(7 * DAY);
    b.keep = Some(Keep {
        count: None,
        days: Some(2),
    });
    rollback(&b)?;
    check!(
        old_roots(&fs)?
            == [
                "2026-11-27T02:30:00Z",
                "2026-11-27T02:30:00Z.1",
                "2026-11-29T02:30:00Z",
                "keep-me"
            ],
        "by age: {:?}",
        old_roots(&fs)?
    );
    // Both bounds: count 1 and 30 days keeps only the newest.
    b.now = t0() + Duration::from_secs(8 * DAY);
    b.keep = Some(Keep {
        count: Some(1),
        days: Some(30),
    });
    rollback(&b)?;
    check!(
        old_roots(&fs)? == ["2026-11-30T02:30:00Z", "keep-me"],
        "both: {:?}",
        old_roots(&fs)?
    );
    let subs = fs.subvols()?;
    check!(
        subs == [
            "old-roots/2026-11-30T02:30:00Z",
            "old-roots/keep-me",
            "persist",
            "root",
            "root-blank"
        ],
        "{subs:?}"
    );
    fs.work_dir_is_clean()?;
    Ok(())
}

fn btrfs_dry_run_changes_nothing_and_prints_the_exact_steps() -> TestResult {
    let fs = standard()?;
    let keep = Some(Keep {
        count: Some(2),
        days: None,
    });
    let mut b = fs.backend(keep);
    rollback(&b)?;
    fs.use_root()?;
    b.now = t0() + Duration::from_secs(DAY);
    rollback(&b)?;
    fs.use_root()?;
    b.now = t0() + Duration::from_secs(2 * DAY);
    let before = (
        fs.subvols()?,
        hash_tree(&fs.top)?,
        fs.show("root", "Generation")?,
    );
    let dry = b
        .rollback(&RollbackOpts { dry_run: true })
        .map_err(|e| format!("dry run failed: {e}"))?;
    let after = (
        fs.subvols()?,
        hash_tree(&fs.top)?,
        fs.show("root", "Generation")?,
    );
    check!(before == after, "dry run changed the filesystem");
    fs.work_dir_is_clean()?;
    check!(
        steps_named(&dry.steps).contains(&"prune"),
        "{:#?}",
        dry.steps
    );
    let real = rollback(&b)?;
    check!(
        dry.steps == real,
        "dry run steps differ from the real run:\ndry: {:#?}\nreal: {real:#?}",
        dry.steps
    );
    Ok(())
}

/// Runs `f` expecting a refusal containing every one of `want`, and checks that neither the
/// filesystem nor the mount table changed, for preflight, rollback and dry run alike.
fn refused(fs: &Fs, b: &Btrfs, want: &[&str]) -> TestResult {
    let before = (fs.subvols().unwrap_or_default(), hash_tree(&fs.top).ok());
    let mounts_before = crate::mounts();
    let results = [
        ("preflight", b.preflight().map(|_| ())),
        (
            "rollback",
            b.rollback(&RollbackOpts { dry_run: false }).map(|_| ()),
        ),
        (
            "dry run",
            b.rollback(&RollbackOpts { dry_run: true }).map(|_| ()),
        ),
    ];
    for (what, r) in results {
        let Err(e) = r else {
            return Err(format!("{what} did not refuse (wanted {want:?})"));
        };
        let msg = e.to_string();
        check!(
            want.iter().all(|w| msg.contains(w)),
            "{what}: message {msg:?} lacks {want:?}"
        );
        check!(
            msg.chars().next().is_some_and(|c| !c.is_uppercase()),
            "{what}: not lowercase: {msg}"
        );
    }
    check!(
        (fs.subvols().unwrap_or_default(), hash_tree(&fs.top).ok()) == before,
        "a refusal changed the filesystem"
    );
    check!(
        crate::mounts() == mounts_before,
        "a refusal left a mount behind"
    );
    fs.work_dir_is_clean()?;
    Ok(())
}

fn btrfs_preflight_refuses_and_changes_nothing() -> TestResult {
    let fs = standard()?;
    let good = fs.backend(None);
    let pf = good.preflight().map_err(|e| format!("preflight: {e}"))?;
    check!(
        pf.checks.iter().any(|c| c.contains("read-only subvolume")),
        "{:?}",
        pf.checks
    );
    fs.work_dir_is_clean()?;

    let mut b = fs.backend(None);
    b.device = PathBuf::from("/dev/darlings-no-such-disk");
    refused(
        &fs,
        &b,
        &[
            "device /dev/darlings-no-such-disk not found",
            "check [root] device",
        ],
    )?;

    let mut b = fs.backend(None);
    b.blank = b"root".to_vec();
    refused(
        &fs,
        &b,
        &["blank snapshot and the root subvolume are both root"],
    )?;

    let mut b = fs.backend(None);
    b.blank = b"no-blank".to_vec();
    refused(
        &fs,
        &b,
        &[&format!(
            "blank snapshot no-blank not found on {}; create it with darlings init",
            fs.dev()
        )],
    )?;

    let mut b = fs.backend(None);
    b.subvolume = b"no-root".to_vec();
    refused(
        &fs,
        &b,
        &["root subvolume no-root not found on", "[root] subvolume"],
    )?;

    // The root mounted (as the live system has it, or a bind of a directory inside it).
    let m = fs.base.join("sysroot");
    std::fs::create_dir_all(&m).map_err(e2s)?;
    sh(&format!(
        "mount -o subvol=root {} {}",
        fs.dev(),
        m.display()
    ))?;
    let r = refused(
        &fs,
        &good,
        &[
            &format!(
                "root subvolume root on {} is mounted at {}",
                fs.dev(),
                m.display()
            ),
            "unmount it first",
        ],
    );
    sh(&format!("umount {}", m.display()))?;
    r?;
    // Only a directory inside the root, bind-mounted elsewhere: still the root in use.
    let m2 = fs.base.join("etc-bind");
    std::fs::create_dir_all(&m2).map_err(e2s)?;
    sh(&format!(
        "mount -o subvolid=5 {} {} && mount --bind {} {} && umount {}",
        fs.dev(),
        m.display(),
        m.join("root/etc").display(),
        m2.display(),
        m.display()
    ))?;
    let r = refused(
        &fs,
        &good,
        &[&format!(
            "root subvolume root on {} is mounted at {}",
            fs.dev(),
            m2.display()
        )],
    );
    let _ = sh(&format!("umount {}", m2.display()));
    r?;

    // The blank made writable.
    sh(&format!(
        "btrfs property set {} ro false",
        fs.p("root-blank").display()
    ))?;
    refused(
        &fs,
        &good,
        &[&format!(
            "blank snapshot root-blank on {} is not read-only",
            fs.dev()
        )],
    )?;
    sh(&format!(
        "btrfs property set {} ro true",
        fs.p("root-blank").display()
    ))?;

    // A plain directory where the blank should be.
    let mut b = fs.backend(None);
    b.blank = b"persist-dir".to_vec();
    std::fs::create_dir(fs.p("persist-dir")).map_err(e2s)?;
    refused(
        &fs,
        &b,
        &["persist-dir in the top level of", "is not a subvolume"],
    )?;
    std::fs::remove_dir(fs.p("persist-dir")).map_err(e2s)?;

    // A device that holds no btrfs.
    let zero = fs.base.join("zero.img");
    loopdev::sparse_image(&zero, "64M")?;
    let zlo = loopdev::Loop::attach(&zero)?;
    let zdev = zlo.dev();
    let mut b = fs.backend(None);
    b.device = PathBuf::from(zdev);
    let r = refused(
        &fs,
        &b,
        &[
            &format!("cannot mount the top level (subvolid=5) of {zdev}"),
            "is it a btrfs filesystem",
        ],
    );
    drop(zlo);
    r?;

    // Still fine after all that.
    good.preflight().map_err(|e| format!("preflight: {e}"))?;
    Ok(())
}

fn btrfs_init_makes_the_blank_from_an_empty_root_only() -> TestResult {
    let fs = Fs::btrfs("300M")?;
    sh(&format!(
        "btrfs -q subvolume create {}",
        fs.p("root").display()
    ))?;
    let b = fs.backend(None);
    let dry = b.init(true).map_err(|e| format!("init --dry-run: {e}"))?;
    check!(!fs.p("root-blank").exists(), "dry run made the blank");
    check!(
        dry.first()
            .is_some_and(|s| s.contains("snapshot the empty root root") && s.contains("read-only")),
        "{dry:?}"
    );
    let steps = b.init(false).map_err(|e| format!("init: {e}"))?;
    check!(steps == dry, "dry run steps {dry:?} != {steps:?}");
    check!(
        fs.show("root-blank", "Flags")? == "readonly",
        "blank not read-only"
    );
    check!(
        fs.show("root-blank", "Parent UUID")? == fs.show("root", "UUID")?,
        "blank is not a snapshot of root"
    );
    let again = b.init(false).map(|_| ()).map_err(|e| e.to_string());
    check!(
        again
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("blank snapshot root-blank already exists on")),
        "{again:?}"
    );
    // Now a usable install: rollback works.
    std::fs::write(fs.p("root/junk"), b"x").map_err(e2s)?;
    rollback(&b)?;
    check!(!fs.p("root/junk").exists(), "rollback after init");
    fs.work_dir_is_clean()?;

    // A root that already holds an installed system is refused, naming what is there.
    let fs = Fs::btrfs("300M")?;
    sh(&format!(
        "set -e; cd {}; btrfs -q subvolume create root; mkdir root/etc root/srv root/usr \
         root/var root/nix root/home; echo x > root/etc/hosts",
        fs.top.display()
    ))?;
    let b = fs.backend(None);
    let r = b.init(false).map(|_| ()).map_err(|e| e.to_string());
    check!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.contains("root subvolume root on")
                && e.contains("is not empty (it holds etc, home, nix, srv, usr, and 1 more)")),
        "{r:?}"
    );
    check!(!fs.p("root-blank").exists(), "refused init made a blank");
    // No root at all.
    let fs = Fs::btrfs("300M")?;
    let r = fs
        .backend(None)
        .init(false)
        .map(|_| ())
        .map_err(|e| e.to_string());
    check!(
        r.as_ref()
            .err()
            .is_some_and(|e| e.contains("root subvolume root not found on")),
        "{r:?}"
    );
    fs.work_dir_is_clean()?;
    Ok(())
}

/// One row of the crash matrix: how the filesystem is prepared, the keep policy, the failpoint.
struct Scenario {
    name: &'static str,
    keep: Option<Keep>,
    /// Runs before the failing run: (failpoint, days after t0) each, committed.
    before: &'static [(Option<&'static str>, u64)],
    steps: &'static [&'static str],
}

const KEEP1: Option<Keep> = Some(Keep {
    count: Some(1),
    days: None,
});
const KEEP2: Option<Keep> = Some(Keep {
    count: Some(2),
    days: None,
});

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "keep=none",
            keep: None,
            before: &[],
            steps: &[
                "snapshot",
                "exchange",
                "delete-nested",
                "retire-old",
                "sync",
            ],
        },
        Scenario {
            name: "keep=1, first run",
            keep: KEEP1,
            before: &[],
            steps: &[
                "make-old-roots",
                "snapshot",
                "exchange",
                "retire-old",
                "sync",
            ],
        },
        Scenario {
            name: "keep=1, pruning",
            keep: KEEP1,
            before: &[(None, 0)],
            steps: &["snapshot", "exchange", "retire-old", "sync", "prune"],
        },
        Scenario {
            name: "keep=none, stray fresh root.new",
            keep: None,
            before: &[(Some("snapshot"), 0)],
            steps: &["remove-stray"],
        },
        Scenario {
            name: "keep=none, stray old root.new",
            keep: None,
            before: &[(Some("exchange"), 0)],
            steps: &["delete-nested", "remove-stray"],
        },
        Scenario {
            name: "keep=2, stray old root.new",
            keep: KEEP2,
            before: &[(None, 0), (Some("exchange"), 1)],
            steps: &["remove-stray", "prune"],
        },
    ]
}

/// What a crash image holds at `root`: the old root, a fresh one, or nothing valid.
fn classify(fs: &Fs) -> String {
    if !fs.is_subvol("root") {
        return "NO ROOT".into();
    }
    let what = if fs.p("root/home/user/new.txt").exists() {
        "old root"
    } else if hash_tree(&fs.p("root")).ok() == hash_tree(&fs.p("root-blank")).ok() {
        "fresh root"
    } else {
        "OTHER ROOT"
    };
    let stray = if fs.p("root.new").exists() {
        " + root.new"
    } else {
        ""
    };
    format!("{what}{stray}")
}

/// Mounts a crash image, checks that it has a valid root, runs rollback on it and checks that it
/// repaired to a fresh root with the blank and the store untouched.
fn repair(
    img: PathBuf,
    base: &Path,
    keep: Option<Keep>,
    hashes: (u64, u64),
    day: u64,
) -> Result<String, String> {
    let mut fs = Fs::attach(None, base.to_path_buf(), img, "subvolid=5")?;
    let found = classify(&fs);
    check_crash_state(&found)?;
    let mut b = fs.backend(keep);
    b.now = t0() + Duration::from_secs(day * DAY + 3600);
    rollback(&b).map_err(|e| format!("{found}: repair: {e}"))?;
    fs.check_fresh_root()
        .map_err(|e| format!("{found}: after repair: {e}"))?;
    check!(
        hash_tree(&fs.p("root-blank"))? == hashes.0,
        "{found}: blank changed"
    );
    check!(
        hash_tree(&fs.p("persist"))? == hashes.1,
        "{found}: store changed"
    );
    let subs = fs.subvols()?;
    let extra: Vec<&String> = subs
        .iter()
        .filter(|s| !["root", "root-blank", "persist"].contains(&s.as_str()))
        .collect();
    let kept_roots = extra
        .iter()
        .filter(|s| s.starts_with("old-roots/") && s.matches('/').count() == 1)
        .count();
    let limit = keep.and_then(|k| k.count).unwrap_or(0) as usize;
    check!(
        extra.iter().all(|s| s.starts_with("old-roots/")) && kept_roots <= limit,
        "{found}: after repair, subvolumes {subs:?}"
    );
    fs.unmount_top()?;
    Ok(format!("{found} -> repaired"))
}

fn check_crash_state(found: &str) -> TestResult {
    check!(
        found.starts_with("old root") || found.starts_with("fresh root"),
        "crash image has no valid root: {found}"
    );
    Ok(())
}

fn btrfs_crash_after_every_step_leaves_a_valid_root_and_is_repaired() -> TestResult {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut failures = Vec::new();
    for sc in scenarios() {
        for &step in sc.steps {
            let mut fs = standard()?;
            let hashes = (
                hash_tree(&fs.p("root-blank"))?,
                hash_tree(&fs.p("persist"))?,
            );
            let mut b = fs.backend(sc.keep);
            let mut day = 0;
            for &(fp, d) in sc.before {
                b.failpoint = fp.map(|f| f.parse().expect("a failpoint in the scenario table"));
                b.now = t0() + Duration::from_secs(d * DAY);
                let r = b.rollback(&RollbackOpts { dry_run: false });
                check!(
                    fp.is_some() == r.is_err(),
                    "{}: setup run: {:?}",
                    sc.name,
                    r.err().map(|e| e.to_string())
                );
                if fp.is_none() {
                    fs.use_root()?;
                }
                day = d + 1;
            }
            // What a boot finds is committed: a power cut cannot take back the setup.
            sh(&format!("sync -f {}", fs.top.display()))?;
            b.failpoint = Some(step.parse().expect("a failpoint in the scenario table"));
            b.now = t0() + Duration::from_secs(day * DAY);
            let r = b.rollback(&RollbackOpts { dry_run: false });
            let hit = matches!(&r, Err(e) if e.to_string() == format!("failpoint {step} hit"));
            check!(
                hit,
                "{} / {step}: failpoint not hit: {:?}",
                sc.name,
                r.map(|o| o.steps).map_err(|e| e.to_string())
            );
            // Power cut: the image as the device holds it while the filesystem is still
            // mounted (by this test), so nothing uncommitted reaches it.
            let cut = fs.copy_image("cut.img")?;
            // Clean stop: everything the run did, committed by the unmount.
            fs.unmount_top()?;
            let committed = fs.copy_image("committed.img")?;
            fs.detach()?;
            let base = fs.base.clone();
            let mut outcome = |img: PathBuf| match repair(img, &base, sc.keep, hashes, day) {
                Ok(s) => s,
                Err(e) => {
                    failures.push(format!("{} / {step}: {e}", sc.name));
                    format!("FAILED: {e}")
                }
            };
            let a = outcome(cut);
            let c = outcome(committed);
            rows.push((sc.name.to_string(), step.to_string(), a, c));
        }
    }
    println!("\n    btrfs crash matrix (power cut right after each step; then darlings rollback)");
    println!(
        "    {:<34} {:<15} {:<40} stopped (all committed)",
        "scenario", "step", "power cut (uncommitted dropped)"
    );
    for (sc, step, a, c) in &rows {
        println!("    {sc:<34} {step:<15} {a:<40} {c}");
    }
    check!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// The names of all crash-matrix steps exist in a real run's log (guards against a renamed step
/// silently never firing).
fn btrfs_failpoint_names_match_the_logged_steps() -> TestResult {
    let fs = standard()?;
    let mut b = fs.backend(KEEP1);
    rollback(&b)?;
    fs.use_root()?;
    b.now = t0() + Duration::from_secs(DAY);
    let steps = rollback(&b)?;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for s in steps_named(&steps) {
        *seen.entry(s).or_default() += 1;
    }
    for s in ["snapshot", "exchange", "retire-old", "sync", "prune"] {
        check!(seen.contains_key(s), "{s} missing from {steps:#?}");
    }
    // Every step the protocol logs can be stopped at: the binary refuses names not listed.
    for s in seen.keys() {
        check!(
            s.parse::<darlings_backends::Failpoint>().is_ok(),
            "step {s} is not a darlings_backends::Failpoint"
        );
    }
    // Lowercase prose; only object names (timestamps) carry capitals.
    check!(
        steps
            .iter()
            .all(|s| s.replace("T02:30:00Z", "") == s.replace("T02:30:00Z", "").to_lowercase()),
        "steps must be lowercase: {steps:#?}"
    );
    Ok(())
}

/// The CLI end to end on a btrfs config: init on an empty root, then rollback, then a refusal
/// with its message and exit code, as a user would see them.
fn btrfs_cli_init_rollback_and_refusal() -> TestResult {
    let fs = Fs::btrfs("300M")?;
    let t = fs.top.display();
    sh(&format!(
        "set -e; cd {t}; btrfs -q subvolume create root; btrfs -q subvolume create persist"
    ))?;
    let cfg = crate::btrfs_config(&fs, "")?;
    let work = fs.base.join("work");
    let run = |args: &[&str]| {
        crate::darlings(&cfg, &work)
            .args(args)
            .output()
            .map_err(e2s)
    };
    let init = run(&["init"])?;
    check!(
        init.status.success(),
        "init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let ro = sh(&format!("btrfs property get -ts {t}/root-blank ro"))?;
    check!(ro.trim() == "ro=true", "blank not read-only: {ro}");
    sh(&format!("set -e; mkdir -p {t}/root/home/u; echo lost > {t}/root/home/u/f; echo kept > {t}/persist/f"))?;
    let dry = run(&["rollback", "--dry-run"])?;
    check!(
        dry.status.success() && String::from_utf8_lossy(&dry.stdout).contains("would: "),
        "dry run: {:?}",
        dry
    );
    check!(
        fs.top.join("root/home/u/f").exists(),
        "dry run erased the root"
    );
    let rb = run(&["rollback"])?;
    check!(
        rb.status.success(),
        "rollback: {}",
        String::from_utf8_lossy(&rb.stderr)
    );
    check!(
        !fs.top.join("root/home").exists(),
        "root not blank after rollback"
    );
    check!(
        std::fs::read(fs.top.join("persist/f")).map_err(e2s)? == b"kept\n",
        "store changed"
    );
    sh(&format!("btrfs -q subvolume delete {t}/root-blank"))?;
    let refused = run(&["rollback"])?;
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    check!(
        refused.status.code() == Some(1),
        "exit code {:?}",
        refused.status.code()
    );
    check!(
        err.starts_with("darlings: error: rollback refused")
            && err.contains("root-blank not found")
            && err.contains("darlings init"),
        "message: {err}"
    );
    Ok(())
}

pub fn cases() -> Vec<Case> {
    vec![
        (
            "btrfs_cli_init_rollback_and_refusal",
            btrfs_cli_init_rollback_and_refusal,
        ),
        (
            "btrfs_rollback_makes_a_fresh_root_and_touches_nothing_else",
            btrfs_rollback_makes_a_fresh_root_and_touches_nothing_else,
        ),
        (
            "btrfs_rollback_keeps_old_roots_by_count_and_by_age",
            btrfs_rollback_keeps_old_roots_by_count_and_by_age,
        ),
        (
            "btrfs_dry_run_changes_nothing_and_prints_the_exact_steps",
            btrfs_dry_run_changes_nothing_and_prints_the_exact_steps,
        ),
        (
            "btrfs_preflight_refuses_and_changes_nothing",
            btrfs_preflight_refuses_and_changes_nothing,
        ),
        (
            "btrfs_init_makes_the_blank_from_an_empty_root_only",
            btrfs_init_makes_the_blank_from_an_empty_root_only,
        ),
        (
            "btrfs_failpoint_names_match_the_logged_steps",
            btrfs_failpoint_names_match_the_logged_steps,
        ),
        (
            "btrfs_crash_after_every_step_leaves_a_valid_root_and_is_repaired",
            btrfs_crash_after_every_step_leaves_a_valid_root_and_is_repaired,
        ),
    ]
}
