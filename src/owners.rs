//! Users and groups: how the config names an owner, and the name lookups against the *target
//! root's* `etc/passwd` and `etc/group` (the initrd's own databases are not the system's).

use std::collections::HashMap;
use std::fmt;

/// An owner as written in the config: a name, or a numeric id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    Id(u32),
    Name(String),
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Id(id) => write!(f, "{id}"),
            Who::Name(n) => f.write_str(n),
        }
    }
}

/// Checks a user or group name the way shadow-utils would accept it, so a typo is caught at
/// config time rather than as an unresolvable owner at boot.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && !name.bytes().all(|b| b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub uid: u32,
    pub gid: u32,
    pub home: Vec<u8>,
}

/// The databases of one root. `None` means the file does not exist there (a blank root in the
/// initrd, before activation has written it).
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: Option<HashMap<String, PasswdEntry>>,
    pub groups: Option<HashMap<String, u32>>,
}

/// Parses `passwd(5)`; malformed lines are skipped, as glibc's nss_files does.
pub fn parse_passwd(text: &[u8]) -> HashMap<String, PasswdEntry> {
    let mut out = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(name), Some(uid), Some(gid)) = (std::str::from_utf8(f[0]), num(f[2]), num(f[3]))
        else {
            continue;
        };
        out.entry(name.to_string()).or_insert(PasswdEntry {
            uid,
            gid,
            home: f[5].to_vec(),
        });
    }
    out
}

/// Parses `group(5)`.
pub fn parse_group(text: &[u8]) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() < 3 {
            continue;
        }
        let (Ok(name), Some(gid)) = (std::str::from_utf8(f[0]), num(f[2])) else {
            continue;
        };
        out.entry(name.to_string()).or_insert(gid);
    }
    out
}

fn num(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Why an owner could not be resolved yet: the plan defers the entry and says this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved(pub String);

impl Accounts {
    pub fn uid(&self, who: &Who) -> Result<u32, Unresolved> {
        match who {
            Who::Id(id) => Ok(*id),
            // uid 0 is root on every Linux system, with or without a passwd file.
            Who::Name(n) if n == "root" => Ok(0),
            Who::Name(n) => match &self.users {
                None => Err(Unresolved(format!(
                    "user {n}: the root has no etc/passwd yet"
                ))),
                Some(users) => users.get(n).map(|e| e.uid).ok_or_else(|| {
                    Unresolved(format!("user {n} is not in the root's etc/passwd yet"))
                }),
            },
        }
    }

    pub fn gid(&self, who: &Who) -> Result<u32, Unresolved> {
        match who {
            Who::Id(id) => Ok(*id),
            Who::Name(n) if n == "root" => Ok(0),
            Who::Name(n) => match &self.groups {
                None => Err(Unresolved(format!(
                    "group {n}: the root has no etc/group yet"
                ))),
                Some(groups) => groups.get(n).copied().ok_or_else(|| {
                    Unresolved(format!("group {n} is not in the root's etc/group yet"))
                }),
            },
        }
    }

    pub fn user(&self, name: &str) -> Result<&PasswdEntry, Unresolved> {
        match &self.users {
            None => Err(Unresolved(format!(
                "user {name}: the root has no etc/passwd yet"
            ))),
            Some(users) => users.get(name).ok_or_else(|| {
                Unresolved(format!("user {name} is not in the root's etc/passwd yet"))
            }),
        }
    }
}

/// Reads the target root's `etc/passwd` and `etc/group` beneath `root`, refusing symlinks like
/// everything else darlings opens there: a planted link must not choose the owners.
pub fn read_accounts(root: &std::path::Path) -> std::io::Result<Accounts> {
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot open root {}: {e}", root.display()),
        )
    })?;
    let read = |rel: &str| -> std::io::Result<Option<Vec<u8>>> {
        match darlings_backends::beneath::open(&dir, rel, OFlags::RDONLY) {
            Ok(fd) => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut buf).map_err(
                    |e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("cannot read {}/{rel}: {e}", root.display()),
                        )
                    },
                )?;
                Ok(Some(buf))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP) => Err(std::io::Error::other(format!(
                "{}/{rel} is or passes through a symlink; darlings reads owner names only from a regular file beneath the root",
                root.display()
            ))),
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("cannot open {}/{rel}: {e}", root.display()),
            )),
        }
    };
    Ok(Accounts {
        users: read("etc/passwd")?.map(|t| parse_passwd(&t)),
        groups: read("etc/group")?.map(|t| parse_group(&t)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_parse() {
        let pw = parse_passwd(b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/bash\nbroken\nbob:x:notnum:1::/h:/s\n");
        assert_eq!(pw.len(), 2);
        assert_eq!(
            pw["alice"],
            PasswdEntry {
                uid: 1000,
                gid: 100,
                home: b"/home/alice".to_vec()
            }
        );
        let gr = parse_group(b"root:x:0:\nusers:x:100:alice,bob\n:x:\n");
        assert_eq!(gr.get("users"), Some(&100));
        assert_eq!(gr.len(), 2);
    }

    #[test]
    fn resolution_and_deferral() {
        let none = Accounts::default();
        assert_eq!(none.uid(&Who::Name("root".into())), Ok(0));
        assert_eq!(none.uid(&Who::Id(42)), Ok(42));
        assert!(none
            .uid(&Who::Name("alice".into()))
            .unwrap_err()
            .0
            .contains("no etc/passwd"));
        let some = Accounts {
            users: Some(parse_passwd(b"alice:x:1000:100::/home/alice:/bin/sh\n")),
            groups: Some(parse_group(b"users:x:100:\n")),
        };
        assert_eq!(some.uid(&Who::Name("alice".into())), Ok(1000));
        assert_eq!(some.gid(&Who::Name("users".into())), Ok(100));
        assert!(some
            .gid(&Who::Name("wheel".into()))
            .unwrap_err()
            .0
            .contains("not in the root's etc/group"));
    }

    #[test]
    fn names() {
        for ok in ["alice", "systemd-network", "_apt", "user.name", "machine$"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "123", "a b", "a:b", "ünïcode", &"x".repeat(33)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
