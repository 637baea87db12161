//! The kernel command line's `darlings.*` parameters, which win over the config (a user at the
//! boot loader must be able to skip or change darlings without editing a file on the disk).

use crate::config::OnFailure;

/// What the command line asked for; `None` leaves the config's choice.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// `darlings.skip`: no diff and no rollback this boot.
    pub skip: bool,
    /// A `darlings.skip` word was given (either way): `darlings.skip=0` then asks for the
    /// rollback explicitly, which wins over a `darlings hold`.
    pub skip_given: bool,
    /// `darlings.diff=0|1`.
    pub diff: Option<bool>,
    /// `darlings.on-failure=boot-old-root|halt`.
    pub on_failure: Option<OnFailure>,
    /// Every `darlings.*` word as written, for the boot record.
    pub seen: Vec<String>,
    /// `darlings.*` words that mean nothing, or values that do not parse: warned about, ignored.
    pub warnings: Vec<String>,
}

/// Splits like the kernel does: on spaces, with double quotes grouping (and dropped).
fn words(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    let mut any = false;
    for &b in text {
        match b {
            b'"' => {
                quoted = !quoted;
                any = true;
            }
            b' ' | b'\t' | b'\n' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(b);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `/proc/cmdline`'s content. Later words win, as with most kernel parameters.
pub fn parse(text: &[u8]) -> Cmdline {
    let mut c = Cmdline::default();
    for w in words(text) {
        let Some(rest) = w.strip_prefix(b"darlings.") else {
            continue;
        };
        let word = String::from_utf8_lossy(&w).into_owned();
        let rest = String::from_utf8_lossy(rest).into_owned();
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (rest.clone(), None),
        };
        match (key.as_str(), value.as_deref()) {
            ("skip", None) => {
                c.skip = true;
                c.skip_given = true;
            }
            ("skip", Some(v)) => match flag(v) {
                Some(b) => {
                    c.skip = b;
                    c.skip_given = true;
                }
                None => c.warnings.push(format!(
                    "kernel parameter {word}: {v:?} is not 0 or 1; ignored"
                )),
            },
            ("diff", Some(v)) => match flag(v) {
                Some(b) => c.diff = Some(b),
                None => c.warnings.push(format!(
                    "kernel parameter {word}: {v:?} is not 0 or 1; ignored"
                )),
            },
            ("on-failure", Some(v)) => match OnFailure::parse(v) {
                Some(p) => c.on_failure = Some(p),
                None => c.warnings.push(format!(
                    "kernel parameter {word}: write darlings.on-failure=boot-old-root or darlings.on-failure=halt; ignored"
                )),
            },
            _ => c.warnings.push(format!(
                "unknown kernel parameter {word}; darlings knows darlings.skip, darlings.diff=0|1 and darlings.on-failure=boot-old-root|halt"
            )),
        }
        c.seen.push(word);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        // (command line, skip, diff, on_failure, warnings)
        type Case = (&'static str, bool, Option<bool>, Option<OnFailure>, usize);
        let cases: &[Case] = &[
            ("", false, None, None, 0),
            ("quiet root=/dev/sda1", false, None, None, 0),
            ("quiet darlings.skip", true, None, None, 0),
            ("darlings.skip=0", false, None, None, 0),
            ("darlings.skip=1 darlings.skip=0", false, None, None, 0),
            ("darlings.diff=0", false, Some(false), None, 0),
            ("darlings.diff=1\n", false, Some(true), None, 0),
            ("darlings.diff=maybe", false, None, None, 1),
            ("darlings.diff", false, None, None, 1),
            (
                "darlings.on-failure=halt",
                false,
                None,
                Some(OnFailure::Halt),
                0,
            ),
            (
                "darlings.on-failure=halt darlings.on-failure=boot-old-root",
                false,
                None,
                Some(OnFailure::BootOldRoot),
                0,
            ),
            ("darlings.on-failure=reboot", false, None, None, 1),
            ("darlings.skp", false, None, None, 1),
            ("xdarlings.skip", false, None, None, 0),
            ("\"darlings.skip\" init=/bin/sh", true, None, None, 0),
            ("foo=\"a darlings.skip b\"", false, None, None, 0),
        ];
        for (text, skip, diff, on_failure, warnings) in cases {
            let c = parse(text.as_bytes());
            assert_eq!(c.skip, *skip, "{text:?}");
            assert_eq!(c.diff, *diff, "{text:?}");
            assert_eq!(c.on_failure, *on_failure, "{text:?}");
            assert_eq!(c.warnings.len(), *warnings, "{text:?}: {:?}", c.warnings);
        }
    }

    #[test]
    fn only_an_explicit_skip_0_asks_for_the_rollback() {
        let forced = |t: &str| {
            let c = parse(t.as_bytes());
            c.skip_given && !c.skip
        };
        assert!(forced("darlings.skip=0"));
        assert!(forced("darlings.skip darlings.skip=no"));
        assert!(!forced(""));
        assert!(!forced("darlings.skip"));
        assert!(!forced("darlings.skip=0 darlings.skip"));
        assert!(!forced("darlings.skip=maybe"));
    }

    #[test]
    fn unknown_parameter_warning_names_the_known_ones() {
        let c = parse(b"darlings.skp");
        assert_eq!(
            c.warnings,
            vec!["unknown kernel parameter darlings.skp; darlings knows darlings.skip, darlings.diff=0|1 and darlings.on-failure=boot-old-root|halt"]
        );
        assert_eq!(c.seen, vec!["darlings.skp"]);
    }
}
