//! File modes as the config writes them: octal (`"0750"`) or chmod's symbolic form
//! (`"u=rwx,g=rx,o="`), which impermanence's README and the NixOS wiki use.

/// Parses `s` into a mode. Symbolic clauses that add or remove bits (`g+w`, `o-rx`) start from
/// `base`, darlings' default for the entry; `=` clauses set their classes outright. `X` is
/// execute for directories, and for files only when `base` already has an execute bit, as in
/// chmod. A clause with no classes (`=rx`, `+t`) means all of them; unlike chmod, the umask plays
/// no part, because darlings applies modes with fchmod, which ignores it.
pub fn parse(s: &str, base: u32, is_dir: bool) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 => Ok(m),
            Ok(_) => Err("is larger than 07777".into()),
            Err(_) => Err("has a digit that is not octal (0-7)".into()),
        };
    }
    symbolic(s, base & 0o7777, is_dir)
}

fn symbolic(s: &str, base: u32, is_dir: bool) -> Result<u32, String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    let mut mode = base;
    for clause in s.split(',') {
        let b = clause.as_bytes();
        let mut i = 0;
        let mut who = 0u32;
        while i < b.len() && matches!(b[i], b'u' | b'g' | b'o' | b'a') {
            who |= match b[i] {
                b'u' => 0o4700,
                b'g' => 0o2070,
                b'o' => 0o1007,
                _ => 0o7777,
            };
            i += 1;
        }
        if who == 0 {
            who = 0o7777;
        }
        if i == b.len() {
            return Err(format!(
                "has a clause {clause:?} with no operator; write e.g. \"u=rwx,g=rx,o=\""
            ));
        }
        while i < b.len() {
            let op = b[i];
            if !matches!(op, b'=' | b'+' | b'-') {
                return Err(format!(
                    "has {:?} where an operator (=, + or -) belongs in {clause:?}",
                    char::from(op)
                ));
            }
            i += 1;
            let mut perms = 0u32;
            while i < b.len() && !matches!(b[i], b'=' | b'+' | b'-') {
                perms |= match b[i] {
                    b'r' => 0o444,
                    b'w' => 0o222,
                    b'x' => 0o111,
                    b'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    b'X' => 0,
                    b's' => 0o6000,
                    b't' => 0o1000,
                    other => {
                        return Err(format!(
                            "has {:?}, which is not a permission (r, w, x, X, s, t), in {clause:?}",
                            char::from(other)
                        ))
                    }
                };
                i += 1;
            }
            let bits = perms & who;
            match op {
                b'=' => mode = (mode & !who) | bits,
                b'+' => mode |= bits,
                _ => mode &= !bits,
            }
        }
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn modes_table() {
        // (text, base, is_dir, expected)
        let ok: &[(&str, u32, bool, u32)] = &[
            ("0750", 0o755, true, 0o750),
            ("750", 0o755, true, 0o750),
            ("0o700", 0o755, true, 0o700),
            ("7", 0o755, true, 0o7),
            ("4755", 0o755, false, 0o4755),
            ("u=rwx,g=rx,o=", 0o755, true, 0o750),
            ("u=rwx,g=,o=", 0o755, true, 0o700),
            ("u=rw,go=r", 0o600, false, 0o644),
            ("a=rX", 0o644, false, 0o444),
            ("a=rX", 0o644, true, 0o555),
            ("a+X", 0o744, false, 0o755),
            ("go-rwx", 0o755, true, 0o700),
            ("g+w", 0o755, true, 0o775),
            ("+t", 0o755, true, 0o1755),
            ("o+t", 0o777, true, 0o1777),
            ("u+s", 0o755, false, 0o4755),
            ("g+s", 0o755, true, 0o2755),
            ("=rx", 0o755, true, 0o555),
            ("u=rwx,g=rx,o=rx", 0o700, true, 0o755),
            ("u=rw-w", 0o000, false, 0o400),
        ];
        for &(text, base, is_dir, want) in ok {
            assert_eq!(parse(text, base, is_dir), Ok(want), "{text}");
        }
        let bad: &[(&str, &str)] = &[
            ("", "is empty"),
            ("0789", "not octal"),
            ("17777", "larger than 07777"),
            ("rwx", "where an operator"),
            ("u", "no operator"),
            ("u=rwz", "not a permission"),
            ("u=rwx,", "no operator"),
            ("q=r", "where an operator"),
        ];
        for &(text, want) in bad {
            match parse(text, 0o755, true) {
                Err(e) => assert!(e.contains(want), "{text:?}: {e}"),
                Ok(m) => panic!("{text:?} accepted as {m:o}"),
            }
        }
    }
}
