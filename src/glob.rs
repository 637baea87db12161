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

    /// Runs the pattern as a set of states over its tokens, one step per byte of the path: time
    /// O(path length × pattern length) and memory O(pattern length), whatever the two hold.
    /// A backtracking matcher is exponential in the stars: `/*a*a*a*a*a*a*a*a*a*a*a*b` against a
    /// name of 40 `a`s never returned (issue 10), and names in a root are anyone's to choose.
    pub fn is_match(&self, path: &[u8]) -> bool {
        let t = &self.tokens;
        let mut now = States::new(t.len() + 1);
        let mut next = States::new(t.len() + 1);
        now.insert(t, 0);
        for &c in path {
            if now.is_empty() {
                return false;
            }
            next.clear();
            for i in now.iter() {
                let Some(tok) = t.get(i) else { continue };
                match tok {
                    Token::Byte(b) if *b == c => next.insert(t, i + 1),
                    Token::Any if c != b'/' => next.insert(t, i + 1),
                    Token::Class { negated, ranges } if c != b'/' => {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if inside != *negated {
                            next.insert(t, i + 1);
                        }
                    }
                    Token::Star if c != b'/' => next.stay(t, i),
                    Token::DeepStar => next.stay(t, i),
                    _ => {}
                }
            }
            std::mem::swap(&mut now, &mut next);
        }
        if now.contains(t.len()) {
            return true;
        }
        // "/dir/**" also names "/dir".
        matches!(t.as_slice(), [.., Token::Byte(b'/'), Token::DeepStar])
            && now.contains(t.len() - 2)
    }
}

/// The set of pattern positions a match can be at, as a bit set, closed under the moves that
/// read no byte: a star may match nothing, and a `**/` just reached may stand for no directory
/// at all (so `/**/x` matches `/x`).
struct States {
    bits: Vec<u64>,
}

impl States {
    fn new(n: usize) -> States {
        States {
            bits: vec![0; n.div_ceil(64)],
        }
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
    }

    fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    fn contains(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Position `i` is reached by reading a byte (or at the start): adds it and what follows
    /// from it without reading one. Only here may `**/` stand for no directory: once the deep
    /// star has read a byte, its `/` must be a real one.
    fn insert(&mut self, t: &[Token], i: usize) {
        if let (Some(Token::DeepStar), Some(Token::Byte(b'/'))) = (t.get(i), t.get(i + 1)) {
            self.insert(t, i + 2);
        }
        self.stay(t, i);
    }

    /// Position `i` is reachable (a star that read a byte stays where it is): adds it, and the
    /// position after a star, which may stop matching here. Each position is added once, so a
    /// whole step costs O(pattern length).
    fn stay(&mut self, t: &[Token], i: usize) {
        if self.contains(i) {
            return;
        }
        if let Some(w) = self.bits.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
        if let Some(Token::Star | Token::DeepStar) = t.get(i) {
            self.insert(t, i + 1);
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
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

    /// Regression (issue 10): the backtracking matcher ran past 60 s on the first and 10 s on
    /// the second; a name in the root is anyone's to choose, and the boot waited on it.
    #[test]
    fn glob_matcher_backtracks_exponentially() {
        let mut forty_a = b"/".to_vec();
        forty_a.extend([b'a'; 40]);
        let mut deep = Vec::new();
        for i in 0..80 {
            deep.extend_from_slice(format!("/d{i}").as_bytes());
        }
        let mut deep_x = deep.clone();
        deep_x.extend_from_slice(b"/x");
        deep.extend_from_slice(b"/y");
        let mut long = b"/".to_vec();
        long.extend([b'a'; 4000]);
        let cases: &[(&str, &[u8], bool)] = &[
            ("/*a*a*a*a*a*a*a*a*a*a*a*b", &forty_a, false),
            ("/*a*a*a*a*a*a*a*a*a*a*a*a", &forty_a, true),
            ("/**/**/**/**/**/x", &deep, false),
            ("/**/**/**/**/**/x", &deep_x, true),
            ("/**/**/**/**/**/**/**/**/**/**/x", &deep, false),
            ("/*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", &long, false),
        ];
        for (pattern, path, want) in cases {
            let g = Glob::parse(pattern).unwrap();
            let t = std::time::Instant::now();
            assert_eq!(g.is_match(path), *want, "{pattern}");
            let took = t.elapsed();
            // Microseconds in a release build; an unoptimised one on a busy machine stays
            // far below this.
            assert!(
                took < std::time::Duration::from_millis(200),
                "{pattern}: {took:?}"
            );
        }
    }

    /// The matcher darlings had before: obviously right on small inputs, exponential on big
    /// ones. The state-set matcher must agree with it everywhere.
    fn reference(tokens: &[Token], path: &[u8]) -> bool {
        let Some((first, rest)) = tokens.split_first() else {
            return path.is_empty();
        };
        match first {
            Token::Byte(c) => path.first() == Some(c) && reference(rest, &path[1..]),
            Token::Any => path.first().is_some_and(|&c| c != b'/') && reference(rest, &path[1..]),
            Token::Class { negated, ranges } => match path.first() {
                Some(&c) if c != b'/' => {
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    inside != *negated && reference(rest, &path[1..])
                }
                _ => false,
            },
            Token::Star => {
                let limit = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
                (0..=limit).any(|n| reference(rest, &path[n..]))
            }
            Token::DeepStar => {
                if let Some((Token::Byte(b'/'), after)) = rest.split_first() {
                    if reference(after, path) {
                        return true;
                    }
                }
                (0..=path.len()).any(|n| reference(rest, &path[n..]))
            }
        }
    }

    fn reference_match(g: &Glob, path: &[u8]) -> bool {
        reference(&g.tokens, path)
            || matches!(g.tokens.as_slice(), [rest @ .., Token::Byte(b'/'), Token::DeepStar] if reference(rest, path))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        #[test]
        fn state_set_matcher_agrees_with_backtracking(
            pattern in proptest::collection::vec(
                proptest::sample::select(vec!["/", "a", "b", "*", "**", "?", "[ab]", "[!a]", "\\*"]),
                0..8,
            ),
            path in proptest::collection::vec(
                proptest::sample::select(vec![b'/', b'a', b'b', b'*', b'c']),
                0..12,
            ),
        ) {
            let text = format!("/{}", pattern.concat());
            let g = Glob::parse(&text).unwrap();
            let mut p = b"/".to_vec();
            p.extend(path);
            proptest::prop_assert_eq!(g.is_match(&p), reference_match(&g, &p), "{} vs {:?}", text, String::from_utf8_lossy(&p));
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(Glob::parse("var/**"), Err(GlobError::Relative));
        assert_eq!(Glob::parse("/a[bc"), Err(GlobError::UnclosedClass(2)));
        assert_eq!(Glob::parse("/a\\"), Err(GlobError::TrailingEscape));
    }
}
