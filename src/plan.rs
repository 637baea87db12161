//! The bind-mount plan: the validated config plus the target root's accounts, turned into
//! ordered data (`Vec<Step>`) that `apply` executes and `plan` prints. Building a plan touches
//! nothing; only reading the accounts looks at the root at all.

use std::fmt;

use serde_json::{json, Value};

use crate::config::{self, Config, Kind, Method, ParentSpec, Target};
use crate::owners::{Accounts, Unresolved};
use crate::paths::AbsPath;
use crate::show::path_fields;

/// systemd treats this content as "no id yet, generate one and commit it to this file", which
/// is what a persisted machine-id needs on the first boot.
pub const MACHINE_ID_SEED: &[u8] = b"uninitialized\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSpec {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl fmt::Display for DirSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} {:04o}", self.uid, self.gid, self.mode)
    }
}

/// One persisted path to bind from its store into the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub kind: Kind,
    pub store: AbsPath,
    /// The path inside the root; the source is the same path inside the store.
    pub target: AbsPath,
    /// Owner and mode for the entry itself, used only when darlings creates it.
    pub spec: DirSpec,
    /// One spec per ancestor of `target`, top down, used only for directories darlings creates
    /// (in the root, and mirrored in the store).
    pub parents: Vec<DirSpec>,
    /// `x-gvfs-hide` in the utab: file managers do not list the mount.
    pub hide: bool,
    /// `x-gvfs-trash` in the utab: file managers may keep a trash can on the mount.
    pub trash: bool,
    pub nosuid: bool,
    pub nodev: bool,
    /// Content for a file created in the store when it has none.
    pub seed: Option<&'static [u8]>,
    /// A bind mount, or (files only) a symlink into the store.
    pub method: Method,
    /// `seed-from-blank`: the root's content seeds a store that lacks it, and the store's copy
    /// is then bound over the root's (apply).
    pub seed_from_blank: bool,
    /// The preset and level that gave the entry, shown by `plan`.
    pub origin: Option<crate::presets::Origin>,
}

impl Bind {
    pub fn source(&self) -> AbsPath {
        self.target.under(&self.store)
    }
}

/// An entry that cannot be applied yet (its owner is not in the root's accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub kind: Kind,
    pub store: AbsPath,
    /// The target as far as it is known: `~alice/Documents` when the home is not known yet.
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Bind(Bind),
    Deferred(Deferred),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// What the rollback erases, for the store rule apply checks every store against.
    pub erased: darlings_backends::placement::Erased,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("user {user}'s home {home} in the root's etc/passwd {why}; set home = \"/home/{user}\" in [persist.users.{user}]")]
    BadHome {
        user: String,
        home: String,
        why: String,
    },
    #[error("the plan has conflicting entries:\n{}", .0.join("\n"))]
    Conflicts(Vec<String>),
}

fn resolve_spec(acc: &Accounts, p: &ParentSpec) -> Result<DirSpec, Unresolved> {
    Ok(DirSpec {
        uid: acc.uid(&p.user)?,
        gid: acc.gid(&p.group)?,
        mode: p.mode,
    })
}

/// Builds the plan. Steps are sorted by target so that a walk down the tree can reuse the
/// directories opened for the previous entry.
pub fn build(config: &Config, acc: &Accounts) -> Result<Plan, PlanError> {
    let mut binds = Vec::new();
    let mut deferred = Vec::new();
    for store in &config.stores {
        for e in &store.entries {
            let resolved = (|| {
                let spec = DirSpec {
                    uid: acc.uid(&e.user)?,
                    gid: acc.gid(&e.group)?,
                    mode: e.mode,
                };
                let parent = resolve_spec(acc, &e.parent)?;
                Ok::<_, Unresolved>((spec, parent))
            })();
            match resolved {
                Ok((spec, parent)) => binds.push(Bind {
                    kind: e.kind,
                    store: store.path.clone(),
                    target: e.path.clone(),
                    spec,
                    parents: vec![parent; e.path.ancestors().len()],
                    hide: e.hide,
                    trash: e.trash,
                    nosuid: store.nosuid,
                    nodev: store.nodev,
                    seed: (e.kind == Kind::File
                        && e.method == Method::Bind
                        && e.path.as_bytes() == b"/etc/machine-id")
                        .then_some(MACHINE_ID_SEED),
                    method: e.method,
                    seed_from_blank: e.seed_from_blank,
                    origin: e.origin.clone(),
                }),
                Err(Unresolved(why)) => deferred.push(Deferred {
                    kind: e.kind,
                    store: store.path.clone(),
                    target: e.path.to_string(),
                    reason: why,
                }),
            }
        }
        for u in &store.users {
            // What the config declares wins; passwd fills in the rest. With the uid, the gid
            // and the home all declared (the NixOS module does when the system fixes them),
            // nothing waits for the accounts.
            let pw = acc.user(&u.name);
            let pw_home = match (&u.home, &pw) {
                (Some(_), _) | (None, Err(_)) => None,
                (None, Ok(p)) => {
                    let shown = darlings_backends::bytes::Show(&p.home).to_string();
                    let home = AbsPath::parse_bytes(&p.home).map_err(|e| PlanError::BadHome {
                        user: u.name.clone(),
                        home: shown.clone(),
                        why: e.to_string(),
                    })?;
                    if let Some(why) = config::home_problem(&home) {
                        return Err(PlanError::BadHome {
                            user: u.name.clone(),
                            home: shown,
                            why,
                        });
                    }
                    Some(home)
                }
            };
            let known = (
                u.uid.or(pw.as_ref().ok().map(|p| p.uid)),
                u.gid.or(pw.as_ref().ok().map(|p| p.gid)),
                u.home.clone().or(pw_home),
            );
            let (uid, gid, home) = match known {
                (Some(uid), Some(gid), Some(home)) => (uid, gid, home),
                _ => {
                    let why = match &pw {
                        Err(Unresolved(why)) => why.clone(),
                        Ok(_) => format!("user {}: no primary group id", u.name),
                    };
                    for e in &u.entries {
                        let shown = match &u.home {
                            Some(h) => h.join(&e.path).to_string(),
                            None => format!(
                                "~{}/{}",
                                u.name,
                                darlings_backends::bytes::Show(e.path.as_bytes())
                            ),
                        };
                        deferred.push(Deferred {
                            kind: e.kind,
                            store: store.path.clone(),
                            target: shown,
                            reason: why.clone(),
                        });
                    }
                    continue;
                }
            };
            for e in &u.entries {
                let target = home.join(&e.path);
                let owner = (|| {
                    let uid = e.user.as_ref().map_or(Ok(uid), |w| acc.uid(w))?;
                    let gid = e.group.as_ref().map_or(Ok(gid), |w| acc.gid(w))?;
                    Ok::<_, Unresolved>((uid, gid))
                })();
                let (euid, egid) = match owner {
                    Ok(o) => o,
                    Err(Unresolved(why)) => {
                        deferred.push(Deferred {
                            kind: e.kind,
                            store: store.path.clone(),
                            target: target.to_string(),
                            reason: why,
                        });
                        continue;
                    }
                };
                // Above the home: the system's directories. The home and below: the user's.
                let parents = target
                    .ancestors()
                    .iter()
                    .map(|a| {
                        if a.starts_with(&home) {
                            DirSpec {
                                uid,
                                gid,
                                mode: 0o700,
                            }
                        } else {
                            DirSpec {
                                uid: 0,
                                gid: 0,
                                mode: 0o755,
                            }
                        }
                    })
                    .collect();
                binds.push(Bind {
                    kind: e.kind,
                    store: store.path.clone(),
                    target,
                    spec: DirSpec {
                        uid: euid,
                        gid: egid,
                        mode: e.mode,
                    },
                    parents,
                    hide: e.hide,
                    trash: e.trash,
                    nosuid: store.nosuid,
                    nodev: store.nodev,
                    seed: None,
                    method: e.method,
                    seed_from_blank: false,
                    origin: None,
                });
            }
        }
    }
    // Homes read from passwd were not known when the config was validated: check again.
    let targets: Vec<Target> = binds
        .iter()
        .map(|b| Target {
            path: b.target.clone(),
            kind: b.kind,
            store: b.store.clone(),
        })
        .collect();
    let stores: Vec<AbsPath> = config.stores.iter().map(|s| s.path.clone()).collect();
    let problems: Vec<String> = config::conflicts(&targets, &stores)
        .into_iter()
        .map(|(_, m)| format!("  {m}"))
        .collect();
    if !problems.is_empty() {
        return Err(PlanError::Conflicts(problems));
    }
    binds.sort_by(|a, b| a.target.cmp(&b.target));
    let mut steps: Vec<Step> = binds.into_iter().map(Step::Bind).collect();
    steps.extend(deferred.into_iter().map(Step::Deferred));
    Ok(Plan {
        steps,
        erased: crate::stores::erased(&config.root),
    })
}

impl Plan {
    pub fn binds(&self) -> impl Iterator<Item = &Bind> {
        self.steps.iter().filter_map(|s| match s {
            Step::Bind(b) => Some(b),
            Step::Deferred(_) => None,
        })
    }

    pub fn deferred(&self) -> impl Iterator<Item = &Deferred> {
        self.steps.iter().filter_map(|s| match s {
            Step::Deferred(d) => Some(d),
            Step::Bind(_) => None,
        })
    }

    /// The `--json` form; its schema is documented in README.md ("plan --json").
    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self.steps.iter().map(step_json).collect();
        json!({ "schema": "darlings.plan/1", "steps": steps })
    }

    /// The same JSON as `to_json`, written one step at a time: a plan of 10,000 entries never
    /// exists as one JSON tree in memory.
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        w.write_all(b"{\"schema\":\"darlings.plan/1\",\"steps\":[")?;
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            serde_json::to_writer(&mut *w, &step_json(s))?;
        }
        w.write_all(b"]}\n")
    }
}

fn step_json(s: &Step) -> Value {
    match s {
        Step::Bind(b) => {
            let mut v = json!({
                "op": "bind",
                "kind": b.kind.as_str(),
                "store": b.store.to_string(),
                "uid": b.spec.uid,
                "gid": b.spec.gid,
                "mode": format!("{:04o}", b.spec.mode),
                "parents": b.parents.iter().map(|p| json!({"uid": p.uid, "gid": p.gid, "mode": format!("{:04o}", p.mode)})).collect::<Vec<_>>(),
                "hide": b.hide,
                "trash": b.trash,
                "method": match b.method { Method::Bind => "bind", Method::Symlink => "symlink" },
                "nosuid": b.nosuid,
                "nodev": b.nodev,
                "seed": b.seed.map(|s| String::from_utf8_lossy(s).trim_end().to_string()),
                "seed_from_blank": b.seed_from_blank,
            });
            if let Some(o) = &b.origin {
                v["preset"] = json!(o.preset);
                v["level"] = json!(o.level.as_str());
            }
            path_fields(&mut v, "target", b.target.as_bytes());
            path_fields(&mut v, "source", b.source().as_bytes());
            v
        }
        Step::Deferred(d) => json!({
            "op": "deferred",
            "kind": d.kind.as_str(),
            "store": d.store.to_string(),
            "target": d.target,
            "reason": d.reason,
        }),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return writeln!(
                f,
                "nothing to persist: the config lists no directories or files"
            );
        }
        for (i, s) in self.steps.iter().enumerate() {
            match s {
                Step::Bind(b) => {
                    let mut flags = Vec::new();
                    if b.nosuid {
                        flags.push("nosuid");
                    }
                    if b.nodev {
                        flags.push("nodev");
                    }
                    if b.hide {
                        flags.push("x-gvfs-hide");
                    }
                    if b.trash {
                        flags.push("x-gvfs-trash");
                    }
                    if b.seed_from_blank {
                        flags.push("seed-from-blank");
                    }
                    let op = match b.method {
                        Method::Bind => "bind",
                        Method::Symlink => "symlink",
                    };
                    write!(f, "{:>4}. {op} {} {} <- {}  [{}; created as {}", i + 1, b.kind.as_str(), b.target, b.source(), flags.join(","), b.spec)?;
                    if let Some(p) = b.parents.last() {
                        write!(f, ", parents {p}")?;
                    }
                    if b.seed.is_some() {
                        write!(f, ", seeded \"uninitialized\" if the store has none")?;
                    }
                    match &b.origin {
                        Some(o) => writeln!(f, "; from {o}]")?,
                        None => writeln!(f, "]")?,
                    }
                }
                Step::Deferred(d) => writeln!(
                    f,
                    "{:>4}. deferred {} {} (store {}): {}; run `darlings apply --root /` once the account exists",
                    i + 1,
                    d.kind.as_str(),
                    d.target,
                    d.store,
                    d.reason
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owners::{parse_group, parse_passwd};

    fn cfg(body: &str) -> Config {
        config::parse(&format!("[root]\nbackend = \"tmpfs\"\n{body}"), "t.toml").unwrap()
    }

    #[test]
    fn system_entries_sorted_with_parents_and_seed() {
        let c = cfg("[[persist]]\nstore = \"/persist\"\nhide-mounts = true\ndirectories = [\"/var/log\", { path = \"/srv/a/b\", mode = \"0750\", parent = { mode = \"0711\" } }]\nfiles = [\"/etc/machine-id\"]\n");
        let plan = build(&c, &Accounts::default()).unwrap();
        let targets: Vec<String> = plan.binds().map(|b| b.target.to_string()).collect();
        assert_eq!(targets, ["/etc/machine-id", "/srv/a/b", "/var/log"]);
        let mid = plan.binds().next().unwrap();
        assert_eq!(mid.seed, Some(MACHINE_ID_SEED));
        assert_eq!(mid.source().to_string(), "/persist/etc/machine-id");
        assert!(mid.hide && mid.nosuid && mid.nodev);
        let srv = plan.binds().nth(1).unwrap();
        assert_eq!(
            srv.spec,
            DirSpec {
                uid: 0,
                gid: 0,
                mode: 0o750
            }
        );
        assert_eq!(
            srv.parents,
            vec![
                DirSpec {
                    uid: 0,
                    gid: 0,
                    mode: 0o711
                };
                2
            ]
        );
        assert_eq!(plan.deferred().count(), 0);
    }

    #[test]
    fn names_defer_until_the_root_has_accounts() {
        let c = cfg("[[persist]]\nstore = \"/persist\"\ndirectories = [{ path = \"/var/lib/colord\", user = \"colord\", group = \"colord\" }, \"/var/log\"]\n[persist.users.alice]\ndirectories = [\"Documents\"]\n");
        let blank = build(&c, &Accounts::default()).unwrap();
        assert_eq!(blank.binds().count(), 1);
        let d: Vec<&Deferred> = blank.deferred().collect();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].target, "/var/lib/colord");
        assert!(
            d[0].reason
                .contains("user colord: the root has no etc/passwd yet"),
            "{}",
            d[0].reason
        );
        assert_eq!(d[1].target, "~alice/Documents");

        let acc = Accounts {
            users: Some(parse_passwd(b"colord:x:997:996::/var/lib/colord:/bin/false\nalice:x:1000:100::/home/alice:/bin/sh\n")),
            groups: Some(parse_group(b"colord:x:996:\nusers:x:100:\n")),
        };
        let full = build(&c, &acc).unwrap();
        assert_eq!(full.deferred().count(), 0);
        let colord = full
            .binds()
            .find(|b| b.target.to_string() == "/var/lib/colord")
            .unwrap();
        assert_eq!((colord.spec.uid, colord.spec.gid), (997, 996));
        let docs = full
            .binds()
            .find(|b| b.target.to_string() == "/home/alice/Documents")
            .unwrap();
        assert_eq!(
            docs.spec,
            DirSpec {
                uid: 1000,
                gid: 100,
                mode: 0o700
            }
        );
        // /home is the system's, /home/alice is alice's.
        assert_eq!(
            docs.parents,
            vec![
                DirSpec {
                    uid: 0,
                    gid: 0,
                    mode: 0o755
                },
                DirSpec {
                    uid: 1000,
                    gid: 100,
                    mode: 0o700
                }
            ]
        );
    }

    #[test]
    fn home_from_passwd_is_checked_for_conflicts() {
        let c = cfg("[[persist]]\nstore = \"/persist\"\ndirectories = [\"/home/alice\"]\n[persist.users.alice]\nfiles = [\".bashrc\"]\n");
        let acc = Accounts {
            users: Some(parse_passwd(b"alice:x:1000:100::/home/alice:/bin/sh\n")),
            groups: Some(Default::default()),
        };
        let err = build(&c, &acc).unwrap_err().to_string();
        assert!(
            err.contains("file /home/alice/.bashrc is inside persisted directory /home/alice"),
            "{err}"
        );
        let bad = Accounts {
            users: Some(parse_passwd(b"alice:x:1000:100::home:/bin/sh\n")),
            groups: None,
        };
        let err = build(&c, &bad).unwrap_err().to_string();
        assert!(err.contains("set home = \"/home/alice\""), "{err}");
    }

    #[test]
    fn json_schema_fields() {
        let c = cfg("[[persist]]\nstore = \"/persist\"\nfiles = [\"/etc/machine-id\"]\n[persist.users.bob]\nfiles = [\"x\"]\n");
        let v = build(&c, &Accounts::default()).unwrap().to_json();
        assert_eq!(v["schema"], "darlings.plan/1");
        assert_eq!(v["steps"][0]["op"], "bind");
        assert_eq!(v["steps"][0]["target"], "/etc/machine-id");
        assert_eq!(v["steps"][0]["source"], "/persist/etc/machine-id");
        assert_eq!(v["steps"][0]["mode"], "0644");
        assert_eq!(v["steps"][0]["seed"], "uninitialized");
        assert_eq!(v["steps"][1]["op"], "deferred");
        assert_eq!(v["steps"][1]["target"], "~bob/x");
    }

    #[test]
    fn regression_passwd_homes_obey_the_denied_path_rules() {
        let c = cfg(
            "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nfiles = [\".bashrc\"]\n",
        );
        for home in ["/run/sshd", "/", "/proc/self", "/nix/store/x"] {
            let acc = Accounts {
                users: Some(parse_passwd(
                    format!("alice:x:1000:100::{home}:/bin/sh\n").as_bytes(),
                )),
                groups: Some(Default::default()),
            };
            let err = build(&c, &acc).unwrap_err().to_string();
            assert!(
                err.contains(&format!(
                    "user alice's home {home} in the root's etc/passwd"
                )),
                "{home}: {err}"
            );
        }
    }

    #[test]
    fn regression_non_utf8_passwd_home_is_used_as_bytes_not_made_up() {
        let c = cfg(
            "[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nfiles = [\".bashrc\"]\n",
        );
        let acc = Accounts {
            users: Some(parse_passwd(b"alice:x:1000:100::/home/al\xffice:/bin/sh\n")),
            groups: Some(Default::default()),
        };
        let plan = build(&c, &acc).unwrap();
        let b = plan.binds().next().unwrap();
        assert_eq!(b.target.as_bytes(), b"/home/al\xffice/.bashrc");
    }

    #[test]
    fn declared_uid_gid_and_home_need_no_accounts() {
        let c = cfg("[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"/home/alice\"\nuid = 1000\ngid = 100\ndirectories = [\"Documents\"]\n");
        let plan = build(&c, &Accounts::default()).unwrap();
        assert_eq!(plan.deferred().count(), 0);
        let b = plan.binds().next().unwrap();
        assert_eq!((b.spec.uid, b.spec.gid), (1000, 100));
        // Without the gid, the blank root's missing passwd still defers the entry.
        let c = cfg("[[persist]]\nstore = \"/persist\"\n[persist.users.alice]\nhome = \"/home/alice\"\nuid = 1000\ndirectories = [\"Documents\"]\n");
        assert_eq!(
            build(&c, &Accounts::default()).unwrap().deferred().count(),
            1
        );
    }
}
