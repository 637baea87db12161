//! Config validation: one case per rejection, each asserting the location and the fix.

use super::*;
use crate::owners::Who;

const HEAD: &str = "[root]\nbackend = \"tmpfs\"\n";

fn problems(body: &str) -> String {
    match parse(&format!("{HEAD}{body}"), "t.toml") {
        Ok(c) => panic!("accepted:\n{body}\n=> {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn seed_from_blank_is_per_entry_and_off_by_default() {
    let c = parse(
        &format!("{HEAD}[[persist]]\nstore = \"/persist\"\ndirectories = [\"/srv\", {{ path = \"/var/log\", seed-from-blank = true }}, {{ path = \"/etc/ssh\", seed-from-blank = false }}]\nfiles = [{{ path = \"/etc/adjtime\", seed-from-blank = true }}]\n"),
        "t.toml",
    )
    .unwrap();
    let seeded: Vec<(String, bool)> = c.stores[0]
        .entries
        .iter()
        .map(|e| (e.path.to_string(), e.seed_from_blank))
        .collect();
    assert_eq!(
        seeded,
        [
            ("/srv".to_string(), false),
            ("/var/log".to_string(), true),
            ("/etc/ssh".to_string(), false),
            ("/etc/adjtime".to_string(), true),
        ]
    );
}

#[test]
fn a_full_config_validates() {
    let text = r#"
[root]
backend = "tmpfs"
size = "25%"

[diff]
on-boot = true
report-dir = "/persist/var/log/darlings"
ignore = ["/etc/.clean", "/var/cache/**"]
max-entries = 5000
time-budget = "3s"

[[persist]]
store = "/persist"
hide-mounts = true
directories = [
  "/var/log",
  { path = "/var/lib/colord", user = "colord", group = "colord", mode = "0750" },
  { path = "/srv/data", user = 1001, group = "1002", parent = { user = "root", mode = "0711" } },
]
files = [
  "/etc/machine-id",
  { path = "/etc/ssh/ssh_host_ed25519_key", mode = "0600", parent = { mode = "0755" } },
]

[persist.users.alice]
directories = ["Documents", { path = ".ssh", mode = "0700" }]
files = [".bashrc"]
home = "/home/alice"
"#;
    let c = parse(text, "t.toml").unwrap();
    assert_eq!(
        c.root,
        RootConfig::Tmpfs {
            size: Some("25%".into())
        }
    );
    assert!(c.diff.on_boot);
    assert_eq!(c.diff.max_entries, 5000);
    assert_eq!(c.diff.time_budget, Duration::from_secs(3));
    assert_eq!(c.diff.ignore.len(), 2);
    let s = &c.stores[0];
    assert!(s.hide_mounts && s.nosuid && s.nodev);
    assert_eq!(s.entries.len(), 5);
    let colord = s
        .entries
        .iter()
        .find(|e| e.path.to_string() == "/var/lib/colord")
        .unwrap();
    assert_eq!(
        (colord.user.clone(), colord.group.clone(), colord.mode),
        (
            Who::Name("colord".into()),
            Who::Name("colord".into()),
            0o750
        )
    );
    let srv = s
        .entries
        .iter()
        .find(|e| e.path.to_string() == "/srv/data")
        .unwrap();
    assert_eq!(
        (srv.user.clone(), srv.group.clone()),
        (Who::Id(1001), Who::Id(1002))
    );
    assert_eq!(
        srv.parent,
        ParentSpec {
            user: Who::Name("root".into()),
            group: Who::Id(0),
            mode: 0o711
        }
    );
    let log = s
        .entries
        .iter()
        .find(|e| e.path.to_string() == "/var/log")
        .unwrap();
    assert_eq!(
        (log.kind, log.mode, log.user.clone()),
        (Kind::Dir, 0o755, Who::Id(0))
    );
    let key = s
        .entries
        .iter()
        .find(|e| e.path.to_string().ends_with("ed25519_key"))
        .unwrap();
    assert_eq!((key.kind, key.mode), (Kind::File, 0o600));
    let alice = &s.users[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.home.as_ref().unwrap().to_string(), "/home/alice");
    assert_eq!(alice.entries.len(), 3);
    assert_eq!(alice.entries[0].mode, 0o700);
    assert_eq!(alice.entries[2].mode, 0o600);
}

#[test]
fn minimal_config_has_safe_defaults() {
    let c = parse(HEAD, "t.toml").unwrap();
    assert!(c.stores.is_empty());
    assert!(!c.diff.on_boot);
    assert_eq!(c.diff.max_entries, 100_000);
}

/// Every rejection: (what it is, the config body after [root], fragments the error must contain).
#[test]
fn rejections_table() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("malformed toml", "[[persist]\nstore = 1", &["t.toml:3:", "see the config reference"]),
        ("unknown top-level key", "colour = \"red\"\n", &["t.toml:3:1", "unknown key `colour`"]),
        ("unknown persist key", "[[persist]]\nstore = \"/persist\"\ndirectorys = []\n", &["t.toml:5:1", "unknown key `directorys`", "`directories`"]),
        ("unknown entry key", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", owner = \"a\" }]\n", &["t.toml:5:", "unknown key `owner`", "`user`"]),
        ("relative path", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"var/log\"]\n", &["t.toml:5:16", "\"var/log\" is relative", "\"/var/log\""]),
        ("dotdot component", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/../etc\"]\n", &["t.toml:5:16", "\"..\" component", "\"/etc\""]),
        ("dot component", "[[persist]]\nstore = \"/persist\"\nfiles = [\"/etc/./x\"]\n", &["t.toml:5:10", "\".\" component", "\"/etc/x\""]),
        ("empty component", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var//log\"]\n", &["empty component", "\"/var/log\""]),
        ("trailing slash", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log/\"]\n", &["empty component", "\"/var/log\""]),
        ("nul in path", "[[persist]]\nstore = \"/persist\"\nfiles = [\"/etc/a\\u0000b\"]\n", &["t.toml:5:10", "NUL byte"]),
        ("newline in path", "[[persist]]\nstore = \"/persist\"\nfiles = [\"/etc/a\\nb\"]\n", &["t.toml:5:10", "newline"]),
        ("empty path", "[[persist]]\nstore = \"/persist\"\nfiles = [\"\"]\n", &["is empty"]),
        ("duplicate", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\", \"/var/log\"]\n", &["t.toml:5:28", "/var/log is listed twice", "keep one"]),
        ("duplicate across stores", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/log\"]\n[[persist]]\nstore = \"/big\"\ndirectories = [\"/var/log\"]\n", &["t.toml:8:16", "listed twice (stores /persist and /big)"]),
        ("file inside persisted dir", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib\"]\nfiles = [\"/var/lib/x.db\"]\n", &["t.toml:6:10", "file /var/lib/x.db is inside persisted directory /var/lib", "remove the inner entry"]),
        ("dir inside persisted dir", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib\", \"/var/lib/nixos\"]\n", &["directory /var/lib/nixos is inside persisted directory /var/lib"]),
        ("entry inside store", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/persist/data\"]\n", &["t.toml:5:16", "is inside store /persist"]),
        ("entry containing store", "[[persist]]\nstore = \"/mnt/persist\"\ndirectories = [\"/mnt\"]\n", &["directory /mnt contains store /mnt/persist", "would hide the store"]),
        ("entry is store", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/persist\"]\n", &["is inside store /persist"]),
        ("deny root", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/\"]\n", &["\"/\" is the whole root"]),
        ("deny proc", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/proc\"]\n", &["/proc is /proc, which darlings never persists"]),
        ("deny sys inside", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/sys/fs\"]\n", &["is inside /sys"]),
        ("deny dev", "[[persist]]\nstore = \"/persist\"\nfiles = [\"/dev/null\"]\n", &["inside /dev"]),
        ("deny run", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/run\"]\n", &["/run is /run"]),
        ("deny nix store", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/nix/store\"]\n", &["is /nix/store"]),
        ("deny nix containing store", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/nix\"]\n", &["/nix contains /nix/store"]),
        ("store is root", "[[persist]]\nstore = \"/\"\n", &["t.toml:4:9", "store \"/\" is the root itself"]),
        ("store denied", "[[persist]]\nstore = \"/run/persist\"\n", &["store /run/persist is inside /run"]),
        ("store relative", "[[persist]]\nstore = \"persist\"\n", &["store \"persist\" is relative", "\"/persist\""]),
        ("store twice", "[[persist]]\nstore = \"/persist\"\n[[persist]]\nstore = \"/persist\"\n", &["t.toml:6:9", "listed twice; merge"]),
        ("nested store holds an outer entry", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/inner/x\"]\n[[persist]]\nstore = \"/persist/inner\"\n", &["t.toml:5:16", "directory /inner/x of store /persist would be kept at /persist/inner/x, which overlaps store /persist/inner"]),
        ("nested store is an outer entry's copy", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/cache\"]\n[[persist]]\nstore = \"/persist/cache/x\"\n", &["kept at /persist/cache, which overlaps store /persist/cache/x"]),
        ("string id out of range", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", user = \"4294967295\" }]\n", &["t.toml:5:38", "user \"4294967295\" is out of range"]),
        ("zero time budget", "[diff]\ntime-budget = \"0s\"\n", &["t.toml:4:15", "leaves the diff no time"]),
        ("name longer than NAME_MAX", &format!("[[persist]]\nstore = \"/persist\"\ndirectories = [\"/{}\"]\n", "n".repeat(256)), &["a component of 256 bytes"]),
        ("entry longer than PATH_MAX in its store", &format!("[[persist]]\nstore = \"/persist\"\ndirectories = [\"{}\"]\n", "/n".repeat(2046)), &["4100 bytes long in store /persist"]),
        ("home is denied", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"/run/user/1000\"\nfiles = [\"x\"]\n", &["t.toml:6:8", "home of user alice /run/user/1000 is inside /run"]),
        ("home is the root", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"/\"\nfiles = [\"x\"]\n", &["home of user alice / is the whole root"]),
        ("bad method", "[[persist]]\nstore = \"/persist\"\nfiles = [{ path = \"/x\", method = \"copy\" }]\n", &["method \"copy\" is not a way to persist a file"]),
        ("method on a directory", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", method = \"symlink\" }]\n", &["unknown key `method`"]),
        ("camelCase key", "[[persist]]\nstore = \"/persist\"\nhideMounts = true\n", &["unknown key `hideMounts`", "did you mean `hide-mounts`?"]),
        ("seed-from-blank on the package database", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/lib/dpkg\", seed-from-blank = true }]\n", &["t.toml:5:60", "/var/lib/dpkg: seed-from-blank refuses /var/lib/dpkg, the package database of the OS the blank holds", "install packages into the blank instead"]),
        ("seed-from-blank containing the package database", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/lib\", seed-from-blank = true }]\n", &["/var/lib: seed-from-blank refuses /var/lib/dpkg"]),
        ("seed-from-blank inside the package database", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/lib/rpm/x\", seed-from-blank = true }]\n", &["seed-from-blank refuses /var/lib/rpm"]),
        ("seed-from-blank with a symlink", "[[persist]]\nstore = \"/persist\"\nfiles = [{ path = \"/etc/x\", method = \"symlink\", seed-from-blank = true }]\n", &["/etc/x: seed-from-blank binds the store's copy over the blank's, which a symlink cannot do"]),
        ("seed-from-blank in a home", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\ndirectories = [{ path = \"x\", seed-from-blank = true }]\n", &["user alice: seed-from-blank is for system paths"]),
        ("impermanence spelling", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ directory = \"/x\" }]\n", &["unknown key `directory`", "darlings spells it `path`", "has no path"]),
        ("bad symbolic mode", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", mode = \"u=rwz\" }]\n", &["mode \"u=rwz\" is not a file mode", "not a permission"]),
        ("persist as a single table", "[persist]\nstore = \"/persist\"\n", &["t.toml:3:1", "write [[persist]]"]),
        ("zfs dataset with dotdot", "", &[]),
        ("missing store", "[[persist]]\ndirectories = [\"/var/log\"]\n", &["has no store"]),
        ("mode not octal", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", mode = \"0789\" }]\n", &["t.toml:5:38", "mode \"0789\" is not a file mode", "\"0750\""]),
        ("mode too big", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", mode = \"17777\" }]\n", &["not a file mode"]),
        ("mode as integer", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", mode = 750 }]\n", &["mode 750 is a number, which TOML reads as decimal", "octal string"]),
        ("parent mode bad", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", parent = { mode = \"rwx\" } }]\n", &["parent mode \"rwx\" is not a file mode"]),
        ("bad user name", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", user = \"a b\" }]\n", &["user \"a b\" is not a valid user or group name"]),
        ("negative id", "[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/x\", group = -1 }]\n", &["group -1 is out of range"]),
        ("no root table", "", &[]),
        ("unknown backend", "", &[]),
        ("bad tmpfs size", "", &[]),
        ("report dir outside store", "[diff]\nreport-dir = \"/var/log/darlings\"\n[[persist]]\nstore = \"/persist\"\n", &["t.toml:4:14", "report-dir /var/log/darlings is not inside a store", "/persist"]),
        ("on-boot without report-dir", "[diff]\non-boot = true\n", &["report-dir is not set"]),
        ("bad ignore glob", "[diff]\nignore = [\"/var/[cache\"]\n", &["t.toml:4:11", "never closed"]),
        ("relative ignore glob", "[diff]\nignore = [\"var/**\"]\n", &["must be absolute"]),
        ("bad time budget", "[diff]\ntime-budget = \"ten\"\n", &["time-budget \"ten\" is not a duration"]),
        ("bad on-failure", "[boot]\non-failure = \"reboot\"\n", &["t.toml:4:14", "on-failure \"reboot\" is not a policy", "\"boot-old-root\"", "\"halt\""]),
        ("unknown boot key", "[boot]\nstrict = true\n", &["t.toml:4:1", "unknown key `strict`", "`on-failure`"]),
        ("zero keep-reports", "[diff]\nkeep-reports = 0\n", &["t.toml:4:16", "keep-reports 0 must be a positive number"]),
        ("zero max entries", "[diff]\nmax-entries = 0\n", &["max-entries 0 must be a positive number"]),
        ("user path absolute", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\ndirectories = [\"/Documents\"]\n", &["user alice: directory \"/Documents\"", "relative to the home", "\"Documents\""]),
        ("user path dotdot", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nfiles = [\"../bob/.bashrc\"]\n", &["\"..\" component"]),
        ("user home relative", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"home/alice\"\n", &["home of user alice \"home/alice\" is relative"]),
        ("user name invalid", "[[persist]]\nstore = \"/persist\"\n[persist.users.\"a:b\"]\nfiles = [\"x\"]\n", &["persist.users key \"a:b\" is not a valid user name"]),
        ("user entry duplicates", "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\ndirectories = [\"a\"]\nfiles = [\"a\"]\n", &["user alice: path \"a\" is listed twice"]),
        ("user entry clashes with system entry", "[[persist]]\nstore = \"/persist\"\ndirectories = [\"/home/alice\"]\n[persist.users.alice]\nhome = \"/home/alice\"\nfiles = [\".bashrc\"]\n", &["file /home/alice/.bashrc is inside persisted directory /home/alice"]),
    ];
    for (name, body, want) in cases {
        let got = match *name {
            "no root table" => match parse("[[persist]]\nstore = \"/persist\"\n", "t.toml") {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{name}: accepted"),
            },
            "zfs dataset with dotdot" => {
                for ds in ["rpool/../root", "-o/x", "rpool/-x"] {
                    let e = parse(
                        &format!("[root]\nbackend = \"zfs\"\ndataset = \"{ds}\"\n"),
                        "t.toml",
                    )
                    .unwrap_err()
                    .to_string();
                    assert!(
                        e.contains("t.toml:3:11") && e.contains("is not a ZFS dataset name"),
                        "{ds}: {e}"
                    );
                }
                continue;
            }
            "unknown backend" => match parse("[root]\nbackend = \"ext4\"\n", "t.toml") {
                Err(e) => {
                    let s = e.to_string();
                    assert!(
                        s.contains("t.toml:2:11")
                            && s.contains("unknown backend \"ext4\"")
                            && s.contains("\"tmpfs\""),
                        "{s}"
                    );
                    continue;
                }
                Ok(_) => panic!("{name}: accepted"),
            },
            "bad tmpfs size" => {
                match parse("[root]\nbackend = \"tmpfs\"\nsize = \"2 GB\"\n", "t.toml") {
                    Err(e) => {
                        let s = e.to_string();
                        assert!(
                            s.contains("t.toml:3:8")
                                && s.contains("not a tmpfs size")
                                && s.contains("\"25%\""),
                            "{s}"
                        );
                        continue;
                    }
                    Ok(_) => panic!("{name}: accepted"),
                }
            }
            _ => problems(body),
        };
        if *name == "no root table" {
            assert!(got.contains("no [root] table"), "{got}");
            continue;
        }
        for w in *want {
            assert!(got.contains(w), "case {name:?}: error lacks {w:?}:\n{got}");
        }
        assert!(
            got.starts_with("config t.toml is invalid"),
            "case {name:?}: {got}"
        );
    }
}

#[test]
fn btrfs_root() {
    let c = parse("[root]\nbackend = \"btrfs\"\ndevice = \"/dev/disk/by-label/nixos\"\nkeep = { count = 5, days = 30 }\n", "t.toml").unwrap();
    assert_eq!(
        c.root,
        RootConfig::Btrfs {
            device: AbsPath::parse("/dev/disk/by-label/nixos").unwrap(),
            subvolume: "root".into(),
            blank: "root-blank".into(),
            old_roots: "old-roots".into(),
            keep: Some(Keep {
                count: Some(5),
                days: Some(30)
            }),
        }
    );
    let cases: &[(&str, &[&str])] = &[
        (
            "[root]\nbackend = \"btrfs\"\n",
            &["t.toml:2:11", "needs root.device"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"sda\"\n",
            &["root.device \"sda\" is relative"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nsubvolume = \"a/b\"\n",
            &["t.toml:4:13", "one name in the top-level subvolume"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nblank = \"root\"\n",
            &["root.blank \"root\" is the root subvolume itself"],
        ),
        // Both passed the config before it called the backend's own rule, and preflight
        // refused them.
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nblank = \"root.new\"\n",
            &[
                "t.toml:4:9",
                "root.blank \"root.new\" is where rollback snapshots the blank to",
            ],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nold-roots = \"root.new\"\n",
            &["root.old-roots \"root.new\" is where rollback snapshots the blank to"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nold-roots = \"root-blank\"\n",
            &["root.old-roots \"root-blank\" collides with the root or blank name"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nkeep = {}\n",
            &["root.keep is empty"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nkeep = { count = 0 }\n",
            &["root.keep.count 0 must be a positive number"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nkeep = { weeks = 2 }\n",
            &["unknown key `weeks`"],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\nsize = \"2G\"\n",
            &["t.toml:4:8", "root.size applies only to backend \"tmpfs\""],
        ),
        (
            "[root]\nbackend = \"tmpfs\"\ndevice = \"/dev/sda\"\n",
            &["root.device applies only to backend \"btrfs\""],
        ),
    ];
    for (text, want) in cases {
        let err = parse(text, "t.toml").unwrap_err().to_string();
        for w in *want {
            assert!(err.contains(w), "{text:?}: lacks {w:?}:\n{err}");
        }
    }
}

#[test]
fn zfs_root() {
    let c = parse("[root]\nbackend = \"zfs\"\ndataset = \"rpool/local/root\"\ndestroy-newer-snapshots = true\nkeep = { count = 3 }\n", "t.toml").unwrap();
    assert_eq!(
        c.root,
        RootConfig::Zfs {
            dataset: "rpool/local/root".into(),
            blank: "blank".into(),
            destroy_newer_snapshots: true,
            keep: Some(Keep {
                count: Some(3),
                days: None
            })
        }
    );
    let cases: &[(&str, &[&str])] = &[
        ("[root]\nbackend = \"zfs\"\n", &["needs root.dataset"]),
        (
            "[root]\nbackend = \"zfs\"\ndataset = \"rpool\"\n",
            &[
                "t.toml:3:11",
                "root.dataset \"rpool\" is not a ZFS dataset name",
            ],
        ),
        (
            "[root]\nbackend = \"zfs\"\ndataset = \"rpool/root@blank\"\n",
            &["not a ZFS dataset name"],
        ),
        (
            "[root]\nbackend = \"zfs\"\ndataset = \"rpool/root\"\nblank = \"@blank\"\n",
            &["root.blank \"@blank\" is not a snapshot name"],
        ),
        (
            "[root]\nbackend = \"zfs\"\ndataset = \"rpool/root\"\ndevice = \"/dev/sda\"\n",
            &["root.device applies only to backend \"btrfs\", not \"zfs\""],
        ),
        (
            "[root]\nbackend = \"btrfs\"\ndevice = \"/dev/sda\"\ndestroy-newer-snapshots = true\n",
            &["root.destroy-newer-snapshots applies only to backend \"zfs\""],
        ),
    ];
    for (text, want) in cases {
        let err = parse(text, "t.toml").unwrap_err().to_string();
        for w in *want {
            assert!(err.contains(w), "{text:?}: lacks {w:?}:\n{err}");
        }
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = problems("[[persist]]\nstore = \"/persist\"\ndirectories = [\"a\", \"/proc\"]\nfiles = [{ path = \"/x\", mode = \"9\" }]\n").to_string();
    assert!(e.contains("(3 problems)"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("10"), None);
    assert_eq!(parse_duration("s"), None);
}

#[test]
fn on_failure_defaults_to_boot_old_root_and_reads_halt() {
    let c = parse(HEAD, "t.toml").unwrap();
    assert_eq!(c.boot.on_failure, OnFailure::BootOldRoot);
    let c = parse(&format!("{HEAD}[boot]\non-failure = \"halt\"\n"), "t.toml").unwrap();
    assert_eq!(c.boot.on_failure, OnFailure::Halt);
}

// ---- regressions, named after the reports that found them ----------------------------------

#[test]
fn regression_plainest_dotted_toml_root_backend_alone_parses() {
    let c = parse("root.backend = \"tmpfs\"\n", "t.toml").unwrap();
    assert_eq!(c.root, RootConfig::Tmpfs { size: None });
}

#[test]
fn regression_implicit_user_table_as_pkgs_formats_toml_writes_it_parses() {
    // Both directories and files, one entry a set: no [persist.users.alice] header.
    let text = "[root]\nbackend = \"tmpfs\"\n\n[[persist]]\nstore = \"/persist\"\n\n[[persist.users.alice.directories]]\npath = \"Documents\"\n\n[[persist.users.alice.directories]]\nmode = \"u=rwx,g=,o=\"\npath = \".ssh\"\n";
    let c = parse(text, "t.toml").unwrap();
    let alice = &c.stores[0].users[0];
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.entries.len(), 2);
    assert_eq!(alice.entries[1].mode, 0o700);
}

#[test]
fn regression_user_id_4294967295_as_a_string_is_refused_like_the_number() {
    for v in ["\"4294967295\"", "4294967295", "\"99999999999999999999\""] {
        let e = problems(&format!(
            "[[persist]]\nstore = \"/persist\"\ndirectories = [{{ path = \"/x\", user = {v} }}]\n"
        ));
        assert!(
            e.contains("is out of range; ids are 0 to 4294967294"),
            "{v}: {e}"
        );
    }
}

#[test]
fn regression_zero_time_budget_is_refused() {
    assert!(problems("[diff]\ntime-budget = \"0s\"\n").contains("leaves the diff no time"));
    assert!(problems("[diff]\ntime-budget = \"0ms\"\n").contains("leaves the diff no time"));
}

#[test]
fn regression_names_over_name_max_and_paths_over_path_max_are_refused() {
    let long_name = format!("/{}", "n".repeat(256));
    assert!(problems(&format!(
        "[[persist]]\nstore = \"/persist\"\nfiles = [\"{long_name}\"]\n"
    ))
    .contains("a component of 256 bytes"));
    let long_path = "/n".repeat(2100);
    assert!(problems(&format!(
        "[[persist]]\nstore = \"/persist\"\nfiles = [\"{long_path}\"]\n"
    ))
    .contains("4200 bytes long"));
    let e = problems(&format!(
        "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"/home/alice\"\nfiles = [\"{}\"]\n",
        "n/".repeat(2040) + "n"
    ));
    assert!(e.contains("bytes long in store /persist"), "{e}");
}

#[test]
fn regression_zfs_dataset_names_with_dotdot_or_a_leading_dash_are_refused() {
    for ds in ["rpool/../root", "-o/x", "rpool/./root", "rpool/-r"] {
        let e = parse(
            &format!("[root]\nbackend = \"zfs\"\ndataset = \"{ds}\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a ZFS dataset name"), "{ds}: {e}");
    }
    let e = parse(
        "[root]\nbackend = \"zfs\"\ndataset = \"rpool/root\"\nblank = \"-blank\"\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("is not a snapshot name"), "{e}");
}

#[test]
fn regression_per_user_homes_obey_the_denied_path_rules() {
    for home in [
        "/proc",
        "/sys/kernel",
        "/dev/shm",
        "/run/user/1000",
        "/nix/store",
        "/",
    ] {
        let e = problems(&format!(
            "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"{home}\"\nfiles = [\"x\"]\n"
        ));
        assert!(
            e.contains(&format!("home of user alice {home} ")),
            "{home}: {e}"
        );
    }
}

#[test]
fn symbolic_modes_from_impermanence_configs() {
    let c = parse(
        &format!("{HEAD}[[persist]]\nstore = \"/nix/persist/system\"\ndirectories = [{{ path = \"/var/lib/colord\", user = \"colord\", group = \"colord\", mode = \"u=rwx,g=rx,o=\" }}]\nfiles = [{{ path = \"/etc/nix/id_rsa\", parent = {{ mode = \"u=rwx,g=,o=\" }} }}]\n"),
        "t.toml",
    )
    .unwrap();
    let s = &c.stores[0];
    assert_eq!(s.entries[0].mode, 0o750);
    assert_eq!(s.entries[1].parent.mode, 0o700);
}

#[test]
fn nested_stores_are_accepted_when_their_entries_do_not_overlap() {
    let c = parse(
        &format!("{HEAD}[[persist]]\nstore = \"/persist\"\ndirectories = [\"/var/lib\"]\n[[persist]]\nstore = \"/persist/cache\"\ndirectories = [\"/var/cache\"]\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.stores.len(), 2);
}

#[test]
fn report_table_defaults_and_values() {
    let c = parse(HEAD, "t.toml").unwrap();
    assert_eq!(c.report, ReportConfig::default());
    assert!(c.report.journald);
    let c = parse(
        &format!("{HEAD}[report]\nprometheus = \"/var/lib/prometheus/node-exporter/darlings.prom\"\njournald = false\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(
        c.report
            .prometheus
            .as_ref()
            .map(|p| p.to_string())
            .as_deref(),
        Some("/var/lib/prometheus/node-exporter/darlings.prom")
    );
    assert!(!c.report.journald);
}

#[test]
fn report_table_refusals_name_the_place_and_the_fix() {
    let cases: &[(&str, &str)] = &[
        (
            "[report]\nprometheus = \"darlings.prom\"\n",
            "t.toml:4:14: report.prometheus \"darlings.prom\"",
        ),
        (
            "[report]\nprometheus = \"/var/lib/prometheus/node-exporter/darlings.txt\"\n",
            "t.toml:4:14: report.prometheus /var/lib/prometheus/node-exporter/darlings.txt is not a .prom file",
        ),
        (
            "[report]\nprometheus = \"/proc/darlings.prom\"\n",
            "t.toml:4:14: report.prometheus /proc/darlings.prom is inside /proc",
        ),
        (
            "[report]\njournald = \"yes\"\n",
            "t.toml:4:12: report.journald must be true or false, not a string",
        ),
        (
            "[report]\nprometheus = 1\n",
            "t.toml:4:14: report.prometheus must be a string",
        ),
        (
            "[report]\ntextfile = \"/x.prom\"\n",
            "t.toml:4:1: unknown key `textfile` in [report]; the keys here are `prometheus`, `journald`",
        ),
    ];
    for (body, want) in cases {
        let got = problems(body);
        assert!(got.contains(want), "{body}\nwant: {want}\ngot: {got}");
    }
}
