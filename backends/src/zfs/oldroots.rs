//! Names of the keep-old-roots protocol's datasets and the retention rule (pure).
//!
//! Layout, for a root dataset `D` (e.g. `rpool/local/root`):
//!
//! - `D-old`: a container (`canmount=off`, `mountpoint=none`) created on first use;
//! - `D-old/next`: the clone of `D@blank` while the protocol runs (never outside it);
//! - `D-old/<YYYYMMDD>T<HHMMSS>Z[-N]`: an old root, named by the UTC time it was retired, `-N`
//!   when that name was taken. Retention only ever destroys names of this shape.

pub use crate::clock::unix_secs;
use crate::clock::{civil_from_days, days_from_civil};
use crate::{Keep, Pruned};

pub fn container(dataset: &str) -> String {
    format!("{dataset}-old")
}

pub fn next(dataset: &str) -> String {
    format!("{}/next", container(dataset))
}

/// `20261122T023000Z`: no `-` in the stamp, so the `-N` suffix splits off at the first `-`.
/// btrfs's old roots are `2026-11-22T02:30:00Z.N` (`btrfs::rollback::format_ts` says why the
/// two differ and must stay as they are).
pub fn stamp(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The time and collision number of an old root's last component; `None` for anything
/// [`stamp`] (plus `-N`) would not have produced.
pub fn parse(leaf: &str) -> Option<(i64, u32)> {
    let (ts, seq) = match leaf.split_once('-') {
        Some((ts, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (ts, n.parse().ok()?)
        }
        Some(_) => return None,
        None => (leaf, 0),
    };
    let b = ts.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = ts.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    (stamp(secs) == ts).then_some((secs, seq))
}

/// A free old-root name for `now` among the container's children (full names).
pub fn fresh_name(dataset: &str, now: i64, existing: &[String]) -> String {
    let base = format!("{}/{}", container(dataset), stamp(now));
    if !existing.contains(&base) {
        return base;
    }
    (1u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !existing.contains(c))
        .unwrap_or(base)
}

/// The old roots (full names, children of the container) that retention destroys, with why
/// (`Keep::select`, the rule btrfs shares), newest first. Names retention did not make are
/// never chosen.
pub fn to_prune(dataset: &str, old: &[String], keep: Keep, now: i64) -> Vec<(String, Pruned)> {
    let prefix = format!("{}/", container(dataset));
    let dated: Vec<((i64, u32), &String)> = old
        .iter()
        .filter_map(|n| {
            let leaf = n.strip_prefix(&prefix)?;
            (!leaf.contains('/')).then_some(())?;
            Some((parse(leaf)?, n))
        })
        .collect();
    let times: Vec<(i64, u32)> = dated.iter().map(|d| d.0).collect();
    keep.select(&times, now)
        .into_iter()
        .map(|(i, why)| (dated[i].1.clone(), why))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let cases = [
            (0, "19700101T000000Z"),
            (1_795_000_000, "20261118T110640Z"),
            (951_782_400, "20000229T000000Z"),
        ];
        for (secs, text) in cases {
            assert_eq!(stamp(secs), text);
            assert_eq!(parse(text), Some((secs, 0)));
        }
        assert_eq!(parse("20000229T000000Z-3"), Some((951_782_400, 3)));
    }

    #[test]
    fn foreign_names_do_not_parse() {
        for name in [
            "next",
            "20261018T075320",
            "20261018T075320Z-",
            "20261018T075320Z-x",
            "20260231T000000Z",
            "20261018T256000Z",
            "2026-10-18T07:53:20Z",
            "20261018T075320Zx",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }

    #[test]
    fn fresh_names_avoid_collisions() {
        let base = "t/r-old/19700101T000000Z".to_string();
        assert_eq!(fresh_name("t/r", 0, &[]), base);
        assert_eq!(
            fresh_name("t/r", 0, &[base.clone(), format!("{base}-1")]),
            format!("{base}-2")
        );
    }

    /// The rule is `Keep::select`'s; this table checks it on zfs's own names, suffixes and
    /// foreign children included.
    #[test]
    fn retention() {
        let old: Vec<String> = [
            "t/r-old/20261122T023000Z-1",
            "t/r-old/20261122T023000Z",
            "t/r-old/20261121T023000Z",
            "t/r-old/20261101T000000Z",
            "t/r-old/next",
            "t/r-old/mine",
            "t/r-old/2026-11-20T02:30:00Z",
            "t/other-old/20261122T023000Z",
        ]
        .map(String::from)
        .to_vec();
        let now = parse("20261122T030000Z").unwrap().0;
        let keep = |count, days| Keep { count, days };
        let c = Pruned::BeyondCount;
        let d = Pruned::OlderThan;
        let cases: Vec<(Keep, Vec<(&str, Pruned)>)> = vec![
            (keep(None, None), vec![]),
            (
                keep(Some(2), None),
                vec![
                    ("t/r-old/20261121T023000Z", c(2)),
                    ("t/r-old/20261101T000000Z", c(2)),
                ],
            ),
            (
                keep(Some(1), None),
                vec![
                    ("t/r-old/20261122T023000Z", c(1)),
                    ("t/r-old/20261121T023000Z", c(1)),
                    ("t/r-old/20261101T000000Z", c(1)),
                ],
            ),
            (
                keep(None, Some(5)),
                vec![("t/r-old/20261101T000000Z", d(5))],
            ),
            (
                keep(Some(3), Some(30)),
                vec![("t/r-old/20261101T000000Z", c(3))],
            ),
            (keep(Some(9), Some(30)), vec![]),
        ];
        for (k, want) in cases {
            let want: Vec<(String, Pruned)> =
                want.into_iter().map(|(n, w)| (n.to_string(), w)).collect();
            assert_eq!(to_prune("t/r", &old, k, now), want, "{k:?}");
        }
    }
}
