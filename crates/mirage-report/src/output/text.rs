//! Terminal tables. Every string in a report is already printable ASCII,
//! so nothing here can emit control sequences.

use std::fmt::Write as _;

use crate::report::Report;

fn table(out: &mut String, title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "\n{title}");
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

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_owned(), T::to_string)
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

    let day_rows: Vec<_> = r
        .days
        .iter()
        .map(|d| {
            vec![
                d.start[..10].to_owned(),
                d.events.to_string(),
                d.connections.to_string(),
                d.distinct_sources.to_string(),
                d.distinct_ports.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        "Per day (UTC)",
        &["day", "events", "connections", "sources", "ports"],
        &day_rows,
    );

    let mut busiest: Vec<_> = r.buckets.iter().collect();
    busiest.sort_by(|a, b| b.events.cmp(&a.events).then(a.start.cmp(&b.start)));
    let bucket_rows: Vec<_> = busiest
        .iter()
        .take(r.params.top)
        .map(|b| {
            vec![
                b.start.clone(),
                b.events.to_string(),
                b.connections.to_string(),
                b.distinct_sources.to_string(),
                b.distinct_ports.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &format!(
            "Busiest {} buckets ({} with events; all in --format json/csv/html)",
            crate::time::fmt_duration(r.params.bucket_seconds),
            r.buckets.len()
        ),
        &["start", "events", "connections", "sources", "ports"],
        &bucket_rows,
    );

    let port_rows = |rows: &[crate::report::PortRow]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|p| {
                vec![
                    p.port.to_string(),
                    p.events.to_string(),
                    p.connections.to_string(),
                    p.distinct_sources.to_string(),
                ]
            })
            .collect()
    };
    let ph = ["port", "events", "connections", "sources"];
    table(
        &mut out,
        "Top ports by events",
        &ph,
        &port_rows(&r.top_ports),
    );
    table(
        &mut out,
        "Top ports by distinct sources",
        &ph,
        &port_rows(&r.top_ports_by_sources),
    );

    let src_rows: Vec<_> = r
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
    table(
        &mut out,
        "Top sources",
        &[
            "source",
            "events",
            "connections",
            "ports",
            "country",
            "first seen",
            "last seen",
        ],
        &src_rows,
    );

    let scan_rows: Vec<_> = r
        .scans
        .iter()
        .take(r.params.top)
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
    table(
        &mut out,
        &format!(
            "Scans: {} sources (>= {} ports or >= {} addresses within {}s)",
            r.scans.len(),
            r.params.scan_min_ports,
            r.params.scan_min_hosts,
            r.params.scan_window_seconds
        ),
        &[
            "source",
            "kind",
            "ports",
            "peak",
            "hosts",
            "span s",
            "first seen",
            "last seen",
            "country",
        ],
        &scan_rows,
    );

    match &r.geo.note {
        Some(note) => {
            let _ = writeln!(out, "\nCountries\n  {note}");
        }
        None => {
            let rows: Vec<_> = r
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
            table(
                &mut out,
                "Countries",
                &["code", "country", "events", "sources"],
                &rows,
            );
            if !r.geo.asns.is_empty() {
                let rows: Vec<_> = r
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
                table(
                    &mut out,
                    "Autonomous systems",
                    &["asn", "organisation", "events", "sources"],
                    &rows,
                );
            }
            let _ = writeln!(
                out,
                "  unknown: {} events from {} sources",
                r.geo.unknown_events, r.geo.unknown_sources
            );
        }
    }

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
    table(
        &mut out,
        &format!(
            "Payloads: {} events carry payload bytes",
            p.events_with_payload
        ),
        &["tag / pattern", "events", "sources", "what"],
        &rows,
    );
    let hit_rows: Vec<_> = p
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
    table(
        &mut out,
        &format!(
            "Payload matches: {} (first {} shown)",
            p.hits_total,
            p.hits.len()
        ),
        &["time", "source", "port", "matched", "excerpt"],
        &hit_rows,
    );

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
        let rows: Vec<_> = r
            .skipped
            .lines
            .iter()
            .map(|l| vec![l.input.clone(), l.line.to_string(), l.reason.clone()])
            .collect();
        table(
            &mut out,
            &format!(
                "Skipped lines: {} ({})",
                r.skipped.total,
                r.skipped
                    .by_reason
                    .iter()
                    .map(|c| format!("{}: {}", c.name, c.events))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &["input", "line", "reason"],
            &rows,
        );
    }
    out
}
