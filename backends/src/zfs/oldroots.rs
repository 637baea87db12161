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
use crate::Keep;

pub fn container(dataset: &str) -> String {
    format!("{dataset}-old")
}

pub fn next(dataset: &str) -> String {
    format!("{}/next", container(dataset))
}

/// `20261122T023000Z`: no `:` or `-` in the stamp so the `-N` suffix stays unambiguous.
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

/// The old roots (full names, children of the container) that retention destroys: beyond the
/// `count` newest, or older than `days`. Names retention did not make are never chosen.
pub fn to_prune(dataset: &str, old: &[String], keep: Keep, now: i64) -> Vec<String> {
    let prefix = format!("{}/", container(dataset));
    let mut dated: Vec<((i64, u32), &String)> = old
        .iter()
        .filter_map(|n| {
            let leaf = n.strip_prefix(&prefix)?;
            (!leaf.contains('/')).then_some(())?;
            Some((parse(leaf)?, n))
        })
        .collect();
    dated.sort_by_key(|d| std::cmp::Reverse(d.0));
    dated
        .into_iter()
        .enumerate()
        .filter(|(i, ((secs, _), _))| {
            let too_many = keep.count.is_some_and(|c| *i >= c as usize);
            let too_old = keep
                .days
                .is_some_and(|d| now.saturating_sub(*secs) > i64::from(d) * 86_400);
            too_many || too_old
        })
        .map(|(_, (_, n))| n.clone())
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

    #[test]
    fn retention() {
        let day = 86_400;
        let now = 100 * day;
        let old: Vec<String> = [99, 98, 90, 50]
            .iter()
            .map(|d| format!("t/r-old/{}", stamp(d * day)))
            .chain(["t/r-old/next".to_string(), "t/r-old/mine".to_string()])
            .collect();
        let name = |d: i64| format!("t/r-old/{}", stamp(d * day));
        let cases: [(Keep, Vec<String>); 4] = [
            (Keep::default(), vec![]),
            (
                Keep {
                    count: Some(2),
                    days: None,
                },
                vec![name(90), name(50)],
            ),
            (
                Keep {
                    count: None,
                    days: Some(5),
                },
                vec![name(90), name(50)],
            ),
            (
                Keep {
                    count: Some(3),
                    days: Some(30),
                },
                vec![name(50)],
            ),
        ];
        for (keep, want) in cases {
            assert_eq!(to_prune("t/r", &old, keep, now), want, "{keep:?}");
        }
        assert_eq!(
            to_prune(
                "t/r",
                &old,
                Keep {
                    count: Some(0),
                    days: None
                },
                now
            )
            .len(),
            4
        );
    }
}
