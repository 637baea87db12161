//! The [diff] and [report] tables.

use super::*;

pub(super) fn validate_report(raw: Option<&RawReport>, c: &mut Problems) -> ReportConfig {
    let mut out = ReportConfig::default();
    let Some(raw) = raw else { return out };
    if let Some(j) = &raw.journald {
        out.journald = j.v;
    }
    if let Some(p) = &raw.prometheus {
        if let Some(path) = c.abs("report.prometheus", p) {
            // node_exporter's textfile collector reads `*.prom` only: another name is a file
            // nobody would ever scrape.
            if !path.as_bytes().ends_with(b".prom") || path.as_bytes().ends_with(b"/.prom") {
                c.at(p.span.clone(), format!("report.prometheus {path} is not a .prom file, and node_exporter's textfile collector reads only those; write e.g. \"/var/lib/prometheus/node-exporter/darlings.prom\""));
            } else if let Some(d) = ["/proc", "/sys", "/dev"]
                .iter()
                .find(|d| path.as_bytes().starts_with(format!("{d}/").as_bytes()))
            {
                c.at(p.span.clone(), format!("report.prometheus {path} is inside {d}, a kernel filesystem; put it in node_exporter's textfile directory, e.g. /var/lib/prometheus/node-exporter"));
            } else {
                out.prometheus = Some(path);
            }
        }
    }
    out
}

pub(super) fn validate_diff(
    raw: Option<&RawDiff>,
    stores: &[Store],
    c: &mut Problems,
) -> DiffConfig {
    let mut out = DiffConfig {
        on_boot: false,
        report_dir: None,
        ignore: Vec::new(),
        max_entries: 100_000,
        time_budget: Duration::from_secs(10),
        keep_reports: 30,
    };
    let Some(raw) = raw else { return out };
    out.on_boot = raw.on_boot.as_ref().is_some_and(|v| v.v);
    if let Some(rd) = &raw.report_dir {
        if let Some(p) = c.abs("report-dir", rd) {
            if !stores.iter().any(|s| p.is_inside(&s.path)) {
                let names: Vec<String> = stores.iter().map(|s| s.path.to_string()).collect();
                c.at(
                    rd.span.clone(),
                    format!(
                        "report-dir {p} is not inside a store, so reports would be erased at the next boot; put it under {}",
                        if names.is_empty() { "a [[persist]] store".to_string() } else { names.join(" or ") }
                    ),
                );
            }
            out.report_dir = Some(p);
        }
    } else if out.on_boot {
        c.nowhere("diff.on-boot is true but diff.report-dir is not set; add report-dir = \"/persist/var/log/darlings\" (inside a store)");
    }
    for g in &raw.ignore {
        match Glob::parse(&g.v) {
            Ok(glob) => out.ignore.push(glob),
            Err(e) => c.at(g.span.clone(), format!("ignore pattern {:?} {e}", g.v)),
        }
    }
    if let Some(k) = &raw.keep_reports {
        match usize::try_from(k.v) {
            Ok(n) if n > 0 => out.keep_reports = n,
            _ => c.at(
                k.span.clone(),
                format!(
                    "keep-reports {} must be a positive number of reports, e.g. 30",
                    k.v
                ),
            ),
        }
    }
    if let Some(m) = &raw.max_entries {
        match usize::try_from(m.v) {
            Ok(n) if n > 0 => out.max_entries = n,
            _ => c.at(
                m.span.clone(),
                format!("max-entries {} must be a positive number, e.g. 100000", m.v),
            ),
        }
    }
    if let Some(t) = &raw.time_budget {
        match parse_duration(&t.v) {
            Some(d) if d.is_zero() => c.at(
                t.span.clone(),
                format!(
                    "time-budget {:?} leaves the diff no time at all; give it some, e.g. \"10s\", or set on-boot = false",
                    t.v
                ),
            ),
            Some(d) => out.time_budget = d,
            None => c.at(
                t.span.clone(),
                format!(
                    "time-budget {:?} is not a duration; write e.g. \"10s\" or \"500ms\"",
                    t.v
                ),
            ),
        }
    }
    out
}
