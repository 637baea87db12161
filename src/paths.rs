//! Absolute byte paths as the config names them: one normal form, and a precise reason (with the
//! corrected spelling where there is one) for every path that is not in it.

use std::fmt;

use darlings_backends::bytes::Show;

/// An absolute, normalised path: starts with `/`, no empty, `.` or `..` components, no NUL or
/// newline, no trailing slash (except `/` itself).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbsPath(Vec<u8>);

/// Why a path was refused. The `Display` text is lowercase and ends with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    Empty,
    Relative {
        suggest: String,
    },
    NotNormal {
        component: &'static str,
        suggest: String,
    },
    Nul,
    Newline,
    /// A component longer than NAME_MAX (255 bytes): no Linux filesystem can hold it.
    NameTooLong {
        len: usize,
    },
    /// Longer than PATH_MAX less its NUL (4095 bytes): the booted system could not open it.
    PathTooLong {
        len: usize,
    },
}

/// Linux's NAME_MAX: the longest name one directory entry can have.
pub const NAME_MAX: usize = 255;
/// Linux's PATH_MAX counts the terminating NUL; a path string may have one byte less.
pub const PATH_MAX: usize = 4095;

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::Empty => {
                f.write_str("is empty; write an absolute path such as \"/var/log\"")
            }
            PathProblem::Relative { suggest } => {
                write!(
                    f,
                    "is relative; write it as an absolute path: \"{suggest}\""
                )
            }
            PathProblem::NotNormal { component, suggest } => {
                write!(f, "has {component}; write it in normal form: \"{suggest}\"")
            }
            PathProblem::Nul => {
                f.write_str("contains a NUL byte, which no Linux path can hold; remove it")
            }
            PathProblem::Newline => f.write_str(
                "contains a newline; darlings refuses those in config paths: rename the file",
            ),
            PathProblem::NameTooLong { len } => write!(
                f,
                "has a component of {len} bytes, longer than any Linux filesystem allows ({NAME_MAX}); shorten it"
            ),
            PathProblem::PathTooLong { len } => write!(
                f,
                "is {len} bytes long, longer than Linux paths may be ({PATH_MAX}); shorten it"
            ),
        }
    }
}

fn normal_form(s: &[u8]) -> String {
    let s = String::from_utf8_lossy(s);
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl AbsPath {
    /// Accepts only the normal form; anything else is a `PathProblem` that says how to write it.
    pub fn parse(s: &str) -> Result<AbsPath, PathProblem> {
        AbsPath::parse_bytes(s.as_bytes())
    }

    /// The same rules for bytes that need not be UTF-8 (a home directory read from passwd).
    pub fn parse_bytes(s: &[u8]) -> Result<AbsPath, PathProblem> {
        if s.is_empty() {
            return Err(PathProblem::Empty);
        }
        if s.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if s.contains(&b'\n') {
            return Err(PathProblem::Newline);
        }
        if s[0] != b'/' {
            return Err(PathProblem::Relative {
                suggest: normal_form(s),
            });
        }
        if s == b"/" {
            return Ok(AbsPath(b"/".to_vec()));
        }
        for c in s[1..].split(|&b| b == b'/') {
            let component = match c {
                b"" => "an empty component (\"//\" or a trailing \"/\")",
                b"." => "a \".\" component",
                b".." => "a \"..\" component",
                c if c.len() > NAME_MAX => return Err(PathProblem::NameTooLong { len: c.len() }),
                _ => continue,
            };
            return Err(PathProblem::NotNormal {
                component,
                suggest: normal_form(s),
            });
        }
        if s.len() > PATH_MAX {
            return Err(PathProblem::PathTooLong { len: s.len() });
        }
        Ok(AbsPath(s.to_vec()))
    }

    /// The root directory, `/`.
    pub fn root() -> AbsPath {
        AbsPath(b"/".to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The components after the leading `/` (none for `/`).
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// The path without its leading `/`, for `openat`-style calls beneath a directory fd.
    pub fn relative(&self) -> &[u8] {
        &self.0[1..]
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &AbsPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// True when `self` lies strictly below `other`.
    pub fn is_inside(&self, other: &AbsPath) -> bool {
        self != other && self.starts_with(other)
    }

    /// Appends a relative, already-normal path (a home-relative entry).
    pub fn join(&self, rel: &RelPath) -> AbsPath {
        AbsPath(darlings_backends::bytes::join(&self.0, rel.as_bytes()))
    }

    /// `self` seen from a different top: `/var/log` under `/persist` is `/persist/var/log`.
    pub fn under(&self, top: &AbsPath) -> AbsPath {
        if self.is_root() {
            return top.clone();
        }
        if top.is_root() {
            return self.clone();
        }
        let mut v = top.0.clone();
        v.extend_from_slice(&self.0);
        AbsPath(v)
    }

    /// Every ancestor from the first component down to the parent (not `/`, not `self`).
    pub fn ancestors(&self) -> Vec<AbsPath> {
        let mut out = Vec::new();
        for (i, &b) in self.0.iter().enumerate().skip(1) {
            if b == b'/' {
                out.push(AbsPath(self.0[..i].to_vec()));
            }
        }
        out
    }

    /// Wraps bytes that are known to be normal (they came out of a walk of a real tree).
    pub fn from_normal_bytes(bytes: Vec<u8>) -> AbsPath {
        AbsPath(bytes)
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Show(&self.0).fmt(f)
    }
}

impl fmt::Debug for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AbsPath({self})")
    }
}

/// A relative, normalised path (a per-user entry, relative to the home directory).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    pub fn parse(s: &str) -> Result<RelPath, PathProblem> {
        if s.starts_with('/') {
            // Reuse the absolute checks' wording, but the fix is the other way round.
            return Err(PathProblem::NotNormal {
                component: "a leading \"/\" but per-user paths are relative to the home directory",
                suggest: s.trim_start_matches('/').to_string(),
            });
        }
        let abs = AbsPath::parse(&format!("/{s}")).map_err(|p| match p {
            PathProblem::NotNormal { component, suggest } => PathProblem::NotNormal {
                component,
                suggest: suggest.trim_start_matches('/').to_string(),
            },
            other => other,
        })?;
        if abs.is_root() {
            return Err(PathProblem::Empty);
        }
        Ok(RelPath(abs.relative().to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        // (input, Ok(normal) or Err(fragment of the message))
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("/var/log", Ok("/var/log")),
            ("/", Ok("/")),
            ("/a b/c", Ok("/a b/c")),
            ("/caf\u{e9}", Ok("/caf\u{e9}")),
            ("var/log", Err("is relative; write it as an absolute path: \"/var/log\"")),
            ("/var/../etc", Err("has a \"..\" component; write it in normal form: \"/etc\"")),
            ("/var/./log", Err("has a \".\" component; write it in normal form: \"/var/log\"")),
            ("/var//log", Err("has an empty component (\"//\" or a trailing \"/\"); write it in normal form: \"/var/log\"")),
            ("/var/log/", Err("empty component")),
            ("/var/\0log", Err("contains a NUL byte")),
            ("/var/\nlog", Err("contains a newline")),
            ("", Err("is empty")),
            (&format!("/{}", "n".repeat(256)), Err("a component of 256 bytes")),
            (&format!("/{}", "n".repeat(255)), Ok(&format!("/{}", "n".repeat(255)))),
            (&"/n".repeat(2048), Err("4096 bytes long")),
        ];
        for (input, want) in cases {
            let got = AbsPath::parse(input)
                .map(|p| p.to_string())
                .map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "input {input:?}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "input {input:?}: {g:?} lacks {w:?}"),
                _ => panic!("input {input:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            RelPath::parse("Documents/work").unwrap().as_bytes(),
            b"Documents/work"
        );
        assert!(RelPath::parse("/Documents")
            .unwrap_err()
            .to_string()
            .contains("\"Documents\""));
        assert!(RelPath::parse("a/../b")
            .unwrap_err()
            .to_string()
            .contains("\"b\""));
        assert_eq!(RelPath::parse("").unwrap_err(), PathProblem::Empty);
    }

    #[test]
    fn prefix_relations() {
        let p = |s: &str| AbsPath::parse(s).unwrap();
        assert!(p("/var/log").starts_with(&p("/var")));
        assert!(p("/var").starts_with(&p("/var")));
        assert!(!p("/variable").starts_with(&p("/var")));
        assert!(p("/var/log").is_inside(&p("/")));
        assert!(!p("/var").is_inside(&p("/var")));
        assert_eq!(p("/var/log").under(&p("/persist")), p("/persist/var/log"));
        assert_eq!(p("/a/b/c").ancestors(), vec![p("/a"), p("/a/b")]);
        assert!(p("/a").ancestors().is_empty());
        assert_eq!(
            p("/a/b").components().collect::<Vec<_>>(),
            vec![&b"a"[..], b"b"]
        );
    }
}
