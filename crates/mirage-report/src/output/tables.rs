//! The report's tables as plain data, defined once for every writer that
//! shows tables (text and HTML): which columns, which rows, in which
//! order. How a table looks — alignment, markup, escaping — and the prose
//! and charts around it belong to each writer.
//!
//! Cells hold the report's strings as they are: already printable ASCII
//! (see `payload::escape_into`), not escaped for any output format. Each
//! writer escapes when it renders a cell, so nothing here is escaped twice
//! or skipped.

use crate::report::{Report, Scan, Session};

/// One table: a title, column headers and rows of cells.
pub(super) struct Table {
    /// Caption (the text writer prints it; HTML has its own section prose).
    pub title: String,
    /// Column headers.
    pub headers: Vec<&'static str>,
    /// Per column: does it hold numbers (rendered right-aligned)?
    pub numeric: Vec<bool>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with columns given as `(header, numeric)` pairs, so a
    /// header and its alignment cannot drift apart.
    fn new(
        title: impl Into<String>,
        columns: &[(&'static str, bool)],
        rows: Vec<Vec<String>>,
    ) -> Self {
        Table {
            title: title.into(),
            headers: columns.iter().map(|c| c.0).collect(),
            numeric: columns.iter().map(|c| c.1).collect(),
            rows,
        }
    }
}

/// A missing value as `-`.
pub(super) fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_owned(), T::to_string)
}

const INTERVAL_COLUMNS: [(&str, bool); 4] = [
    ("events", true),
    ("connections", true),
    ("sources", true),
    ("ports", true),
];

/// Interval counts after a first column `key`.
fn interval_table(title: impl Into<String>, key: &'static str, rows: Vec<Vec<String>>) -> Table {
    let mut columns = vec![(key, false)];
    columns.extend(INTERVAL_COLUMNS);
    Table::new(title, &columns, rows)
}

fn interval_row(start: String, b: &crate::report::Bucket) -> Vec<String> {
    vec![
        start,
        b.events.to_string(),
        b.connections.to_string(),
        b.distinct_sources.to_string(),
        b.distinct_ports.to_string(),
    ]
}

/// Per UTC day.
pub(super) fn days(r: &Report) -> Table {
    let rows = r
        .days
        .iter()
        .map(|d| interval_row(d.start[..10].to_owned(), d))
        .collect();
    interval_table("Per day (UTC)", "day", rows)
}

/// The `--top` busiest buckets, most events first (ties: earliest first).
pub(super) fn busiest_buckets(r: &Report) -> Table {
    let mut busiest: Vec<_> = r.buckets.iter().collect();
    busiest.sort_by(|a, b| b.events.cmp(&a.events).then(a.start.cmp(&b.start)));
    let rows = busiest
        .iter()
        .take(r.params.top)
        .map(|b| interval_row(b.start.clone(), b))
        .collect();
    interval_table(
        format!(
            "Busiest {} buckets ({} with events; all in --format json/csv/html)",
            crate::time::fmt_duration(r.params.bucket_seconds),
            r.buckets.len()
        ),
        "start",
        rows,
    )
}

/// Top ports by events, then top ports by distinct sources.
pub(super) fn top_ports(r: &Report) -> [Table; 2] {
    let table = |title: &str, rows: &[crate::report::PortRow]| {
        let rows = rows
            .iter()
            .map(|p| {
                vec![
                    p.port.to_string(),
                    p.events.to_string(),
                    p.connections.to_string(),
                    p.distinct_sources.to_string(),
                ]
            })
            .collect();
        Table::new(
            title,
            &[
                ("port", true),
                ("events", true),
                ("connections", true),
                ("sources", true),
            ],
            rows,
        )
    };
    [
        table("Top ports by events", &r.top_ports),
        table("Top ports by distinct sources", &r.top_ports_by_sources),
    ]
}

/// Top sources.
pub(super) fn top_sources(r: &Report) -> Table {
    let rows = r
        .top_sources
        .iter()
        .map(|s| {
            vec![
                s.ip.clone(),
                s.events.to_string(),
                s.connections.to_string(),
                s.distinct_ports.to_string(),
                opt(&s.country),
                s.first_seen.clone(),
                s.last_seen.clone(),
            ]
        })
        .collect();
    Table::new(
        "Top sources",
        &[
            ("source", false),
            ("events", true),
            ("connections", true),
            ("ports", true),
            ("country", false),
            ("first seen", false),
            ("last seen", false),
        ],
        rows,
    )
}

/// The scans `shown` (each writer picks how many: HTML matches its
/// timeline chart).
pub(super) fn scans(r: &Report, shown: &[&Scan]) -> Table {
    let rows = shown
        .iter()
        .map(|s| {
            vec![
                s.src.clone(),
                s.kind.clone(),
                s.distinct_ports.to_string(),
                s.peak_ports.to_string(),
                s.distinct_hosts.to_string(),
                s.span_seconds.to_string(),
                s.first_seen.clone(),
                s.last_seen.clone(),
                opt(&s.country),
            ]
        })
        .collect();
    Table::new(
        format!(
            "Scans: {} sources (>= {} ports or >= {} addresses within {}s)",
            r.scans.len(),
            r.params.scan_min_ports,
            r.params.scan_min_hosts,
            r.params.scan_window_seconds
        ),
        &[
            ("source", false),
            ("kind", false),
            ("ports", true),
            ("peak", true),
            ("hosts", true),
            ("span s", true),
            ("first seen", false),
            ("last seen", false),
            ("country", false),
        ],
        rows,
    )
}

/// The `--top` countries by events.
pub(super) fn countries(r: &Report) -> Table {
    let rows = r
        .geo
        .countries
        .iter()
        .take(r.params.top)
        .map(|c| {
            vec![
                c.code.clone(),
                c.name.clone(),
                c.events.to_string(),
                c.sources.to_string(),
            ]
        })
        .collect();
    Table::new(
        "Countries",
        &[
            ("code", false),
            ("country", false),
            ("events", true),
            ("sources", true),
        ],
        rows,
    )
}

/// The `--top` autonomous systems by events.
pub(super) fn asns(r: &Report) -> Table {
    let rows = r
        .geo
        .asns
        .iter()
        .take(r.params.top)
        .map(|a| {
            vec![
                format!("AS{}", a.asn),
                a.org.clone(),
                a.events.to_string(),
                a.sources.to_string(),
            ]
        })
        .collect();
    Table::new(
        "Autonomous systems",
        &[
            ("asn", false),
            ("organisation", false),
            ("events", true),
            ("sources", true),
        ],
        rows,
    )
}

/// Built-in tags, then `--grep` patterns, with their counts.
pub(super) fn payload_tags(r: &Report) -> Table {
    let p = &r.payloads;
    let mut rows: Vec<_> = p
        .tags
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.events.to_string(),
                t.sources.to_string(),
                t.description.clone(),
            ]
        })
        .collect();
    rows.extend(p.grep.iter().map(|g| {
        vec![
            format!("grep {}", g.name),
            g.events.to_string(),
            g.sources.to_string(),
            String::new(),
        ]
    }));
    Table::new(
        format!(
            "Payloads: {} events carry payload bytes",
            p.events_with_payload
        ),
        &[
            ("tag / pattern", false),
            ("events", true),
            ("sources", true),
            ("what", false),
        ],
        rows,
    )
}

/// The payload matches kept (`--max-hits`).
pub(super) fn payload_hits(r: &Report) -> Table {
    let p = &r.payloads;
    let rows = p
        .hits
        .iter()
        .map(|h| {
            let mut what = h.tags.clone();
            what.extend(h.patterns.iter().map(|g| format!("/{g}/")));
            vec![
                h.ts.clone(),
                h.src.clone(),
                opt(&h.dst_port),
                what.join(","),
                h.excerpt.clone(),
            ]
        })
        .collect();
    Table::new(
        format!(
            "Payload matches: {} (first {} shown)",
            p.hits_total,
            p.hits.len()
        ),
        &[
            ("time", false),
            ("source", false),
            ("port", true),
            ("matched", false),
            ("excerpt", false),
        ],
        rows,
    )
}

/// One session's events.
pub(super) fn session_events(s: &Session) -> Table {
    let rows = s
        .events
        .iter()
        .map(|e| vec![e.ts.clone(), e.kind.clone(), e.detail.clone()])
        .collect();
    Table::new(
        format!("Session {}", s.id),
        &[("time", false), ("kind", false), ("detail", false)],
        rows,
    )
}

/// The skipped lines kept, with the total by reason in the title.
pub(super) fn skipped(r: &Report) -> Table {
    let rows = r
        .skipped
        .lines
        .iter()
        .map(|l| vec![l.input.clone(), l.line.to_string(), l.reason.clone()])
        .collect();
    Table::new(
        format!(
            "Skipped lines: {} ({})",
            r.skipped.total,
            r.skipped
                .by_reason
                .iter()
                .map(|c| format!("{}: {}", c.name, c.events))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        &[("input", false), ("line", true), ("reason", false)],
        rows,
    )
}
