//! Terminal tables: the tables of [`super::tables`] laid out in aligned
//! columns, with the text-only parts (summary lines, the session listing)
//! around them. Every string in a report is already printable ASCII, so
//! nothing here can emit control sequences and cells are printed as they
//! are.

use std::fmt::Write as _;

use super::tables::{self, Table, opt};
use crate::report::Report;

fn table(out: &mut String, t: &Table) {
    let (headers, rows) = (&t.headers, &t.rows);
    let _ = writeln!(out, "\n{}", t.title);
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    // Right-align every column whose cells all look numeric, not only the
    // columns the table declares numeric: that also lines up a column of
    // `-` (no GeoIP, no port), and keeps the terminal layout as it was.
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            rows.iter().all(|r| {
                r.get(i)
                    .is_some_and(|c| c.parse::<f64>().is_ok() || c == "-")
            })
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if numeric.get(i).copied().unwrap_or(false) {
                let _ = write!(s, " {c:>w$}");
            } else {
                let _ = write!(s, " {c:<w$}");
            }
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(&mut headers.iter().copied()));
    for r in rows {
        let _ = writeln!(out, "{}", line(&mut r.iter().map(String::as_str)));
    }
}

/// Render the report as text.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let t = &r.totals;
    let _ = writeln!(out, "mirage report");
    let _ = writeln!(
        out,
        "inputs: {}   lines: {}   parsed events: {}   skipped lines: {}",
        r.inputs.len(),
        t.lines,
        t.parsed,
        t.skipped
    );
    let _ = writeln!(
        out,
        "events: {}   connections: {}   sources: {}   ports: {}   destinations: {}",
        t.events, t.connections, t.distinct_sources, t.distinct_ports, t.distinct_destinations
    );
    let _ = writeln!(out, "from {} to {}", opt(&t.first), opt(&t.last));

    table(&mut out, &tables::days(r));
    table(&mut out, &tables::busiest_buckets(r));
    for t in tables::top_ports(r) {
        table(&mut out, &t);
    }
    table(&mut out, &tables::top_sources(r));
    let shown: Vec<_> = r.scans.iter().take(r.params.top).collect();
    table(&mut out, &tables::scans(r, &shown));

    match &r.geo.note {
        Some(note) => {
            let _ = writeln!(out, "\nCountries\n  {note}");
        }
        None => {
            table(&mut out, &tables::countries(r));
            if !r.geo.asns.is_empty() {
                table(&mut out, &tables::asns(r));
            }
            let _ = writeln!(
                out,
                "  unknown: {} events from {} sources",
                r.geo.unknown_events, r.geo.unknown_sources
            );
        }
    }

    table(&mut out, &tables::payload_tags(r));
    table(&mut out, &tables::payload_hits(r));

    if let Some(sessions) = &r.sessions {
        let _ = writeln!(out, "\nSessions: {}", sessions.len());
        for s in sessions {
            let _ = writeln!(
                out,
                "  {} {} -> port {} ({}) {} .. {}",
                s.id,
                s.src,
                opt(&s.dst_port),
                s.service,
                s.start,
                s.end
            );
            for e in &s.events {
                let _ = writeln!(out, "    {} {:<16} {}", e.ts, e.kind, e.detail);
            }
        }
    }

    if r.skipped.total > 0 {
        table(&mut out, &tables::skipped(r));
    }
    out
}
