//! Byte paths shown to people: printable ASCII and valid UTF-8 as they are, everything else
//! escaped, so a name with a newline or invalid UTF-8 can neither forge a line nor get lost.

use std::fmt;

/// Displays a byte path with C-style escapes for control bytes, `\`, and invalid UTF-8.
pub struct Show<'a>(pub &'a [u8]);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() => write!(f, "\\x{:02x}", c as u32)?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Joins a directory path and a name with exactly one `/` between them.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name.strip_prefix(b"/").unwrap_or(name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_escapes_what_could_forge_output() {
        let cases: &[(&[u8], &str)] = &[
            (b"/var/log", "/var/log"),
            (b"/a b", "/a b"),
            (b"/new\nline", "/new\\nline"),
            (b"/back\\slash", "/back\\\\slash"),
            (b"/bad\xff\xfe", "/bad\\xff\\xfe"),
            ("/caf\u{e9}".as_bytes(), "/caf\u{e9}"),
            (b"/bell\x07", "/bell\\x07"),
        ];
        for (input, want) in cases {
            assert_eq!(Show(input).to_string(), *want, "input {input:?}");
        }
    }

    #[test]
    fn join_puts_one_slash() {
        assert_eq!(join(b"/", b"etc"), b"/etc");
        assert_eq!(join(b"/etc", b"passwd"), b"/etc/passwd");
        assert_eq!(join(b"/etc/", b"/passwd"), b"/etc/passwd");
    }
}
