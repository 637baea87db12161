//! How paths and sizes are shown: to people (sizes in powers of 1024, long paths cut in the
//! middle) and in JSON (a byte path as a string, with its exact bytes when it is not UTF-8).

use darlings_backends::bytes::Show;
use serde_json::Value;

/// Puts a byte path into a JSON object: `name` as a string (lossy when the bytes are not UTF-8),
/// plus `name_bytes`, the exact bytes, only when they are not UTF-8. Consumers that care about
/// exotic names read `_bytes` when present.
pub fn path_fields(obj: &mut Value, name: &str, bytes: &[u8]) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            map.insert(name.to_string(), Value::String(s.to_string()));
        }
        Err(_) => {
            map.insert(
                name.to_string(),
                Value::String(String::from_utf8_lossy(bytes).into_owned()),
            );
            map.insert(format!("{name}_bytes"), Value::from(bytes.to_vec()));
        }
    }
}

/// A path for a terminal: one past `LONG` bytes (a user can make them up to PATH_MAX and past)
/// keeps its start and its end around a count; `--json` has every byte.
pub(crate) struct Long<'a>(pub(crate) &'a [u8]);

const LONG: usize = 160;

impl std::fmt::Display for Long<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.0;
        if p.len() <= LONG {
            return write!(f, "{}", Show(p));
        }
        let keep = LONG / 2 - 16;
        write!(
            f,
            "{}…[{} bytes in all]…{}",
            Show(&p[..keep]),
            p.len(),
            Show(&p[p.len() - keep..])
        )
    }
}

/// Sizes for people, powers of 1024.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn long_paths_keep_both_ends() {
        let p = [b'a'; 300];
        let s = Long(&p).to_string();
        assert!(s.contains("[300 bytes in all]"), "{s}");
        assert!(s.len() < 200, "{s}");
        assert_eq!(Long(b"/etc/x").to_string(), "/etc/x");
    }
}
