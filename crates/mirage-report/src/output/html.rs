//! The HTML report: one self-contained page (inline CSS and SVG, no script,
//! no external resource), with the seed's charts and the tables behind
//! them. The tables come from [`super::tables`]; this module adds the
//! sections, prose and charts around them. Every value is escaped here, at
//! rendering; payload excerpts are escaped twice over (printable ASCII
//! first, when the report is built, then HTML).

use std::fmt::Write as _;

use super::escape_html as esc;
use super::svg;
use super::tables::{self, Table, opt};
use crate::report::Report;
use crate::time;

const CSS: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}td.n{text-align:right}\
th{background:#f4f4f4}code{font-size:12px;word-break:break-all}\
.chart{display:block;margin:10px 0;border:1px solid #eee}\
.ct{font-size:14px;font-weight:bold}.ax{font-size:11px;fill:#444}.note{color:#555}";

fn table(out: &mut String, t: &Table) {
    if t.rows.is_empty() {
        out.push_str("<p class=\"note\">none</p>");
        return;
    }
    out.push_str("<table><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in &t.rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if t.numeric.get(i).copied().unwrap_or(false) {
                let _ = write!(out, "<td class=\"n\">{}</td>", esc(c));
            } else {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn ts(s: &str) -> i64 {
    time::parse_rfc3339(s.as_bytes()).unwrap_or(0)
}

/// Render the report as HTML.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let t = &r.totals;
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>mirage report</title><style>{CSS}</style></head><body><h1>mirage report</h1>"
    );
    let _ = write!(
        o,
        "<p>{} events ({} connections) from {} sources to {} ports and {} addresses, {} to {}. \
         {} lines read from {} inputs, {} skipped.</p>",
        t.events,
        t.connections,
        t.distinct_sources,
        t.distinct_ports,
        t.distinct_destinations,
        esc(t.first.as_deref().unwrap_or("-")),
        esc(t.last.as_deref().unwrap_or("-")),
        t.lines,
        r.inputs.len(),
        t.skipped
    );

    o.push_str("<h2>Events over time</h2>");
    let series = |rows: &[crate::report::Bucket]| {
        vec![
            (
                "events",
                rows.iter().map(|b| b.events as f64).collect(),
                "#2563eb",
            ),
            (
                "distinct sources",
                rows.iter().map(|b| b.distinct_sources as f64).collect(),
                "#16a34a",
            ),
            (
                "distinct ports",
                rows.iter().map(|b| b.distinct_ports as f64).collect(),
                "#dc2626",
            ),
        ]
    };
    let day_x: Vec<i64> = r.days.iter().map(|b| ts(&b.start)).collect();
    o.push_str(&svg::line_chart(
        "Per day (UTC)",
        &day_x,
        &series(&r.days),
        true,
    ));
    let bucket_x: Vec<i64> = r.buckets.iter().map(|b| ts(&b.start)).collect();
    o.push_str(&svg::line_chart(
        &format!("Per {}", time::fmt_duration(r.params.bucket_seconds)),
        &bucket_x,
        &series(&r.buckets),
        false,
    ));
    table(&mut o, &tables::days(r));

    o.push_str("<h2>Ports</h2>");
    let items: Vec<_> = r
        .top_ports
        .iter()
        .map(|p| (format!("port {}", p.port), p.events))
        .collect();
    o.push_str(&svg::bar_chart("Top ports by events", &items, "#2563eb"));
    let items: Vec<_> = r
        .top_ports_by_sources
        .iter()
        .map(|p| (format!("port {}", p.port), p.distinct_sources))
        .collect();
    o.push_str(&svg::bar_chart(
        "Top ports by distinct sources",
        &items,
        "#16a34a",
    ));

    o.push_str("<h2>Sources</h2>");
    table(&mut o, &tables::top_sources(r));

    o.push_str("<h2>Countries</h2>");
    match &r.geo.note {
        Some(note) => {
            let _ = write!(o, "<p class=\"note\">{}</p>", esc(note));
        }
        None => {
            let items: Vec<_> = r
                .geo
                .countries
                .iter()
                .take(r.params.top)
                .map(|c| (format!("{} {}", c.code, c.name), c.events))
                .collect();
            o.push_str(&svg::bar_chart("Events by country", &items, "#7c3aed"));
            let asns = tables::asns(r);
            if !asns.rows.is_empty() {
                table(&mut o, &asns);
            }
        }
    }

    let _ = write!(
        o,
        "<h2>Scans</h2><p>{} sources first contacted at least {} ports or {} addresses within {} s.</p>",
        r.scans.len(),
        r.params.scan_min_ports,
        r.params.scan_min_hosts,
        r.params.scan_window_seconds
    );
    let shown: Vec<_> = r.scans.iter().take(r.params.top.max(10)).collect();
    let rows: Vec<_> = shown
        .iter()
        .map(|s| {
            (
                s.src.clone(),
                ts(&s.first_seen),
                ts(&s.last_seen),
                s.kind.clone(),
            )
        })
        .collect();
    o.push_str(&svg::timeline("Scan timeline", &rows));
    table(&mut o, &tables::scans(r, &shown));

    let p = &r.payloads;
    let _ = write!(
        o,
        "<h2>Payloads</h2><p>{} events carry payload bytes; {} match a tag or pattern.</p>",
        p.events_with_payload, p.hits_total
    );
    table(&mut o, &tables::payload_tags(r));
    table(&mut o, &tables::payload_hits(r));

    if let Some(sessions) = &r.sessions {
        let _ = write!(o, "<h2>Sessions</h2><p>{} sessions.</p>", sessions.len());
        for s in sessions {
            let _ = write!(
                o,
                "<h3><code>{}</code> {} &rarr; port {} ({})</h3>",
                esc(&s.id),
                esc(&s.src),
                opt(&s.dst_port),
                esc(&s.service)
            );
            table(&mut o, &tables::session_events(s));
        }
    }

    if r.skipped.total > 0 {
        let _ = write!(
            o,
            "<h2>Skipped lines</h2><p>{} lines skipped.</p>",
            r.skipped.total
        );
        table(&mut o, &tables::skipped(r));
    }
    let _ = writeln!(
        o,
        "<p class=\"note\">Distinct counts are exact up to {} values per interval, then HyperLogLog \
         estimates (relative standard error {:.2} %).</p></body></html>",
        r.params.sketch_threshold,
        r.params.sketch_relative_error * 100.0
    );
    o
}
