//! Glob patterns for `diff.ignore`, matched on byte paths: `*` and `?` stay within one component,
//! `**` crosses components, `[...]` is a byte class, and a trailing `/**` also matches the
//! directory itself (so `/var/cache/**` hides `/var/cache` as well as what is in it).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Any,      // ?
    Star,     // *
    DeepStar, // **
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    Relative,
    UnclosedClass(usize),
    TrailingEscape,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::Relative => {
                f.write_str("must be absolute (start with \"/\"), like \"/var/cache/**\"")
            }
            GlobError::UnclosedClass(at) => {
                write!(f, "has a \"[\" at byte {at} that is never closed; close it with \"]\" or escape it as \"\\[\"")
            }
            GlobError::TrailingEscape => {
                f.write_str("ends with a lone \"\\\"; remove it or escape it as \"\\\\\"")
            }
        }
    }
}

impl Glob {
    pub fn parse(text: &str) -> Result<Glob, GlobError> {
        if !text.starts_with('/') {
            return Err(GlobError::Relative);
        }
        let b = text.as_bytes();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    let Some(&next) = b.get(i + 1) else {
                        return Err(GlobError::TrailingEscape);
                    };
                    tokens.push(Token::Byte(next));
                    i += 2;
                }
                b'?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                b'*' if b.get(i + 1) == Some(&b'*') => {
                    tokens.push(Token::DeepStar);
                    i += 2;
                    while b.get(i) == Some(&b'*') {
                        i += 1;
                    }
                }
                b'*' => {
                    tokens.push(Token::Star);
                    i += 1;
                }
                b'[' => {
                    let start = i;
                    i += 1;
                    let negated = matches!(b.get(i), Some(b'!' | b'^'));
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = b.get(i) else {
                            return Err(GlobError::UnclosedClass(start));
                        };
                        if c == b']' && !first {
                            i += 1;
                            break;
                        }
                        first = false;
                        if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_some_and(|&e| e != b']') {
                            ranges.push((c, b[i + 2]));
                            i += 3;
                        } else {
                            ranges.push((c, c));
                            i += 1;
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => {
                    tokens.push(Token::Byte(c));
                    i += 1;
                }
            }
        }
        Ok(Glob {
            text: text.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn is_match(&self, path: &[u8]) -> bool {
        if matches(&self.tokens, path) {
            return true;
        }
        // "/dir/**" also names "/dir".
        if let [rest @ .., Token::Byte(b'/'), Token::DeepStar] = self.tokens.as_slice() {
            return matches(rest, path);
        }
        false
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

/// Backtracking matcher; patterns are short and config-sized, paths are bounded by PATH_MAX.
fn matches(tokens: &[Token], path: &[u8]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match first {
        Token::Byte(c) => path.first() == Some(c) && matches(rest, &path[1..]),
        Token::Any => path.first().is_some_and(|&c| c != b'/') && matches(rest, &path[1..]),
        Token::Class { negated, ranges } => match path.first() {
            Some(&c) if c != b'/' => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated && matches(rest, &path[1..])
            }
            _ => false,
        },
        Token::Star => {
            let limit = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
            (0..=limit).any(|n| matches(rest, &path[n..]))
        }
        Token::DeepStar => {
            // "/**/x" also matches "/x": the deep star may stand for no directory at all.
            if let Some((Token::Byte(b'/'), after)) = rest.split_first() {
                if matches(after, path) {
                    return true;
                }
            }
            (0..=path.len()).any(|n| matches(rest, &path[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("/var/cache/**", b"/var/cache/apt/pkgcache.bin", true),
            ("/var/cache/**", b"/var/cache", true),
            ("/var/cache/**", b"/var/cached", false),
            ("/etc/.clean", b"/etc/.clean", true),
            ("/etc/.clean", b"/etc/.cleaner", false),
            ("/tmp/*", b"/tmp/a", true),
            ("/tmp/*", b"/tmp/a/b", false),
            ("/home/*/.cache/**", b"/home/alice/.cache/x/y", true),
            ("/home/*/.cache/**", b"/home/alice/docs/.cache", false),
            ("/**/*.pyc", b"/usr/lib/x.pyc", true),
            ("/**/*.pyc", b"/x.pyc", true),
            ("/var/log/?.log", b"/var/log/a.log", true),
            ("/var/log/?.log", b"/var/log/ab.log", false),
            ("/var/log/?", b"/var/log//", false),
            ("/dev[0-9]", b"/dev7", true),
            ("/dev[!0-9]", b"/dev7", false),
            ("/dev[!0-9]", b"/devx", true),
            ("/a\\*b", b"/a*b", true),
            ("/a\\*b", b"/axb", false),
            ("/bad*", b"/bad\xff\xfe", true),
            ("/[]]", b"/]", true),
        ];
        for (pattern, path, want) in cases {
            let g = Glob::parse(pattern).unwrap();
            assert_eq!(
                g.is_match(path),
                *want,
                "{pattern} vs {:?}",
                String::from_utf8_lossy(path)
            );
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(Glob::parse("var/**"), Err(GlobError::Relative));
        assert_eq!(Glob::parse("/a[bc"), Err(GlobError::UnclosedClass(2)));
        assert_eq!(Glob::parse("/a\\"), Err(GlobError::TrailingEscape));
    }
}
