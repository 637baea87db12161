//! The [root] table: each backend's keys and names, checked by the backend's own rules.

use super::*;

pub(super) fn validate_root(r: &RawRoot, c: &mut Problems) -> Option<RootConfig> {
    let Some(backend_sp) = &r.backend else {
        c.at(
            r.span.clone(),
            "[root] has no backend; add backend = \"tmpfs\", \"btrfs\" or \"zfs\"",
        );
        return None;
    };
    let backend = backend_sp.v.as_str();
    let backend_span = backend_sp.span.clone();
    // Keys that belong to another backend are mistakes worth naming, not silently ignored.
    let foreign: &[ForeignKey] = &[
        ("size", span_of(&r.size), &["tmpfs"]),
        ("device", span_of(&r.device), &["btrfs"]),
        ("subvolume", span_of(&r.subvolume), &["btrfs"]),
        ("old-roots", span_of(&r.old_roots), &["btrfs"]),
        ("blank", span_of(&r.blank), &["btrfs", "zfs"]),
        ("keep", span_of(&r.keep), &["btrfs", "zfs"]),
        ("dataset", span_of(&r.dataset), &["zfs"]),
        (
            "destroy-newer-snapshots",
            span_of(&r.destroy_newer_snapshots),
            &["zfs"],
        ),
        #[cfg(test)]
        ("fake-root", span_of(&r.fake_root), &["fake"]),
        #[cfg(test)]
        ("fake-blank", span_of(&r.fake_blank), &["fake"]),
        #[cfg(test)]
        (
            "fake-fail-rollback",
            span_of(&r.fake_fail_rollback),
            &["fake"],
        ),
    ];
    if crate::backends::known(backend) {
        for (key, span, owners) in foreign {
            if let Some(span) = span {
                if !owners.contains(&backend) {
                    let names: Vec<String> = owners.iter().map(|o| format!("\"{o}\"")).collect();
                    c.at(
                        span.clone(),
                        format!(
                            "root.{key} applies only to backend {}, not \"{backend}\"; remove it",
                            names.join(" or ")
                        ),
                    );
                }
            }
        }
    }
    match backend {
        "tmpfs" => {
            let size = match &r.size {
                None => None,
                Some(s) if valid_size(&s.v) => Some(s.v.clone()),
                Some(s) => {
                    c.at(s.span.clone(), format!("root size {:?} is not a tmpfs size; write a number with an optional k, m, g or % suffix, e.g. \"2G\" or \"25%\"", s.v));
                    None
                }
            };
            Some(RootConfig::Tmpfs { size })
        }
        "btrfs" => {
            let device = match &r.device {
                Some(d) => c.abs("root.device", d),
                None => {
                    c.at(backend_span.clone(), "backend \"btrfs\" needs root.device, the block device of the filesystem, e.g. device = \"/dev/disk/by-label/nixos\"");
                    None
                }
            };
            let mut name = |key: &str, v: &Option<Sp<String>>, default: &str| -> Option<String> {
                let Some(v) = v else {
                    return Some(default.to_string());
                };
                let n = &v.v;
                // The backend's own rule (crate::names), so a valid config is never refused
                // at preflight for its names.
                if !btrfs_name_ok(n.as_bytes()) {
                    c.at(v.span.clone(), format!("root.{key} {n:?} must be one name in the top-level subvolume (no \"/\", at most 255 bytes), e.g. \"{default}\""));
                    return None;
                }
                Some(n.clone())
            };
            let subvolume = name("subvolume", &r.subvolume, "root");
            let blank = name("blank", &r.blank, "root-blank");
            let old_roots = name("old-roots", &r.old_roots, "old-roots");
            if let (Some(s), Some(b), Some(o)) = (&subvolume, &blank, &old_roots) {
                let at = |key: &Option<Sp<String>>| span_of(key).unwrap_or(backend_span.clone());
                match btrfs_clash(s.as_bytes(), b.as_bytes(), o.as_bytes()) {
                    None => {}
                    Some(BtrfsClash::BlankIsRoot) => c.at(at(&r.blank), format!("root.blank {b:?} is the root subvolume itself; name the read-only blank snapshot, e.g. \"{s}-blank\"")),
                    Some(BtrfsClash::IsRootNew) => {
                        let (key, name, raw, eg) = if *b == format!("{s}.new") {
                            ("blank", b, &r.blank, "root-blank")
                        } else {
                            ("old-roots", o, &r.old_roots, "old-roots")
                        };
                        c.at(at(raw), format!("root.{key} {name:?} is where rollback snapshots the blank to (the root subvolume's name and .new); pick another, e.g. \"{eg}\""));
                    }
                    Some(BtrfsClash::OldRootsCollide) => c.at(at(&r.old_roots), format!("root.old-roots {o:?} collides with the root or blank name; pick another, e.g. \"old-roots\"")),
                }
            }
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Btrfs {
                device: device?,
                subvolume: subvolume?,
                blank: blank?,
                old_roots: old_roots?,
                keep,
            })
        }
        "zfs" => {
            let dataset = match &r.dataset {
                Some(d) if zfs_dataset_ok(&d.v) => Some(d.v.clone()),
                Some(d) => {
                    c.at(d.span.clone(), format!("root.dataset {:?} is not a ZFS dataset name darlings accepts; write pool/path with letters, digits and _-.: (no component \".\", \"..\" or starting with \"-\"), e.g. \"rpool/local/root\"", d.v));
                    None
                }
                None => {
                    c.at(backend_span.clone(), "backend \"zfs\" needs root.dataset, the root's dataset, e.g. dataset = \"rpool/local/root\"");
                    None
                }
            };
            let blank = match &r.blank {
                None => Some("blank".to_string()),
                Some(b) if zfs_component_ok(&b.v) => Some(b.v.clone()),
                Some(b) => {
                    c.at(b.span.clone(), format!("root.blank {:?} is not a snapshot name; write the part after the @, e.g. \"blank\"", b.v));
                    None
                }
            };
            let keep = validate_keep(&r.keep, c);
            Some(RootConfig::Zfs {
                dataset: dataset?,
                blank: blank?,
                destroy_newer_snapshots: r.destroy_newer_snapshots.as_ref().is_some_and(|v| v.v),
                keep,
            })
        }
        #[cfg(test)]
        "fake" => {
            let mut dir = |key: &str, v: &Option<Sp<String>>| match v {
                Some(v) => c.abs(&format!("root.{key}"), v),
                None => {
                    c.at(
                        backend_span.clone(),
                        format!("backend \"fake\" needs root.{key}"),
                    );
                    None
                }
            };
            let root = dir("fake-root", &r.fake_root);
            let blank = dir("fake-blank", &r.fake_blank);
            Some(RootConfig::Fake {
                root: root?,
                blank: blank?,
                fail_rollback: r.fake_fail_rollback.as_ref().is_some_and(|v| v.v),
            })
        }
        other => {
            c.at(
                backend_span,
                format!("unknown backend {other:?}; use one of \"tmpfs\", \"btrfs\", \"zfs\""),
            );
            None
        }
    }
}

pub(super) fn validate_keep(k: &Option<Sp<RawKeep>>, c: &mut Problems) -> Option<Keep> {
    let k = k.as_ref()?;
    let raw = &k.v;
    let mut bound = |what: &str, v: &Option<Sp<i64>>| match v {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n.v) => u32::try_from(n.v).ok(),
        Some(n) => {
            c.at(
                n.span.clone(),
                format!("root.keep.{what} {} must be a positive number", n.v),
            );
            None
        }
    };
    let (count, days) = (bound("count", &raw.count), bound("days", &raw.days));
    if raw.count.is_none() && raw.days.is_none() {
        c.at(k.span.clone(), "root.keep is empty; give count = N and/or days = D, or remove keep to discard old roots");
    }
    Some(Keep { count, days })
}

pub(super) fn valid_size(s: &str) -> bool {
    let digits = s.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T', '%']);
    s.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}
