//! `/proc/self/mountinfo`, parsed from bytes: read once per command, never once per entry
//! (systemd once re-parsed it per mount and 2,000 binds took ~20 s).

/// One line of mountinfo, with the kernel's octal escapes undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount ID (first field), unique among the mounts that exist at once.
    pub id: u64,
    /// The path inside its filesystem that is mounted (not `/` for bind mounts).
    pub root: Vec<u8>,
    /// Where it is mounted, as the reading process sees it.
    pub mount_point: Vec<u8>,
    /// The mount source after the `-` (a device, a dataset's name, `tmpfs`).
    pub source: Vec<u8>,
}

/// This process's mounts, from `/proc/self/mountinfo`.
pub fn read() -> Result<Vec<Mount>, crate::BackendError> {
    use crate::error::IoContext;
    let text = std::fs::read("/proc/self/mountinfo").ctx(|| {
        "cannot read /proc/self/mountinfo; mount /proc before running darlings".to_string()
    })?;
    Ok(parse(&text))
}

/// Every mount in the text of `/proc/<pid>/mountinfo`; a line that does not parse is skipped.
pub fn parse(text: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = f.iter().position(|x| *x == b"-") else {
            continue;
        };
        let (Some(id), Some(root), Some(mp), Some(source)) =
            (f.first(), f.get(3), f.get(4), f.get(sep + 2))
        else {
            continue;
        };
        let Some(id) = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()) else {
            continue;
        };
        out.push(Mount {
            id,
            root: unescape(root),
            mount_point: unescape(mp),
            source: unescape(source),
        });
    }
    out
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                out.push(
                    (d[0] - b'0')
                        .wrapping_mul(64)
                        .wrapping_add((d[1] - b'0') * 8)
                        .wrapping_add(d[2] - b'0'),
                );
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Mount points strictly below `top` (an absolute, canonical path), as paths relative to it
/// with a leading `/`: what a walk of `top` must not enter or report.
pub fn mount_points_below(mounts: &[Mount], top: &[u8]) -> Vec<Vec<u8>> {
    let top = if top.len() > 1 {
        top.strip_suffix(b"/").unwrap_or(top)
    } else {
        b""
    };
    mounts
        .iter()
        .filter_map(|m| {
            let rest = m.mount_point.strip_prefix(top)?;
            (rest.len() > 1 && rest.starts_with(b"/")).then(|| rest.to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let text = b"64 43 254:0 /tmp/ut/a /tmp/ut/b rw,relatime - ext4 /dev/vda rw\n65 43 0:5 /a\\040b /x shared:1 master:2 - tmpfs my\\040src rw\n\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            Mount {
                id: 64,
                root: b"/tmp/ut/a".to_vec(),
                mount_point: b"/tmp/ut/b".to_vec(),
                source: b"/dev/vda".to_vec()
            }
        );
        assert_eq!(
            (m[1].root.as_slice(), m[1].source.as_slice()),
            (&b"/a b"[..], &b"my src"[..])
        );
    }

    #[test]
    fn mount_points_below_a_top() {
        let mk = |p: &[u8]| Mount {
            id: 1,
            root: b"/".to_vec(),
            mount_point: p.to_vec(),
            source: b"x".to_vec(),
        };
        let ms = [
            mk(b"/"),
            mk(b"/sysroot"),
            mk(b"/sysroot/var/log"),
            mk(b"/sysrootx/a"),
            mk(b"/proc"),
        ];
        assert_eq!(
            mount_points_below(&ms, b"/sysroot"),
            vec![b"/var/log".to_vec()]
        );
        assert_eq!(
            mount_points_below(&ms, b"/"),
            vec![
                b"/sysroot".to_vec(),
                b"/sysroot/var/log".to_vec(),
                b"/sysrootx/a".to_vec(),
                b"/proc".to_vec()
            ]
        );
    }
}
