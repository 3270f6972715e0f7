//! Long-format CSV: one row per figure, `table,key,field,value`, so one
//! file holds every table and loads into a spreadsheet or a data frame
//! (pivot on `field`). Cells that a spreadsheet would run as a formula
//! (starting with `=`, `+`, `-`, `@`) get a leading `'`.

use crate::report::Report;

fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

struct Rows(String);

impl Rows {
    fn row(&mut self, table: &str, key: &str, field: &str, value: &dyn ToString) {
        for (i, c) in [table, key, field, &value.to_string()].iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(&cell(c));
        }
        self.0.push('\n');
    }

    /// One row per `(field, value)` of the same record.
    fn fields(&mut self, table: &str, key: &str, fields: &[(&str, &dyn ToString)]) {
        for (field, value) in fields {
            self.row(table, key, field, *value);
        }
    }
}

/// Render the report as CSV.
pub fn render(r: &Report) -> String {
    let mut w = Rows(String::from("table,key,field,value\n"));
    let t = &r.totals;
    for (f, v) in [
        ("lines", t.lines),
        ("parsed", t.parsed),
        ("events", t.events),
        ("connections", t.connections),
        ("skipped", t.skipped),
        ("distinct_sources", t.distinct_sources),
        ("distinct_ports", t.distinct_ports),
        ("distinct_destinations", t.distinct_destinations),
    ] {
        w.row("totals", "all", f, &v);
    }
    for (name, rows) in [("day", &r.days), ("bucket", &r.buckets)] {
        for b in rows.iter() {
            w.fields(
                name,
                &b.start,
                &[
                    ("events", &b.events),
                    ("connections", &b.connections),
                    ("distinct_sources", &b.distinct_sources),
                    ("distinct_ports", &b.distinct_ports),
                    ("estimated", &b.estimated),
                ],
            );
        }
    }
    for (name, rows) in [
        ("top_ports", &r.top_ports),
        ("top_ports_by_sources", &r.top_ports_by_sources),
    ] {
        for p in rows.iter() {
            w.fields(
                name,
                &p.port.to_string(),
                &[
                    ("events", &p.events),
                    ("connections", &p.connections),
                    ("distinct_sources", &p.distinct_sources),
                ],
            );
        }
    }
    for s in &r.top_sources {
        w.fields(
            "top_sources",
            &s.ip,
            &[
                ("events", &s.events),
                ("connections", &s.connections),
                ("distinct_ports", &s.distinct_ports),
                ("first_seen", &s.first_seen),
                ("last_seen", &s.last_seen),
                ("country", &s.country.clone().unwrap_or_default()),
            ],
        );
    }
    for s in &r.scans {
        w.fields(
            "scan",
            &s.src,
            &[
                ("kind", &s.kind),
                ("distinct_ports", &s.distinct_ports),
                ("distinct_hosts", &s.distinct_hosts),
                ("peak_ports", &s.peak_ports),
                ("peak_hosts", &s.peak_hosts),
                ("first_seen", &s.first_seen),
                ("last_seen", &s.last_seen),
                ("span_seconds", &s.span_seconds),
            ],
        );
    }
    for c in &r.geo.countries {
        w.row("country", &c.code, "name", &c.name);
        w.row("country", &c.code, "events", &c.events);
        w.row("country", &c.code, "sources", &c.sources);
    }
    for a in &r.geo.asns {
        let k = a.asn.to_string();
        w.row("asn", &k, "org", &a.org);
        w.row("asn", &k, "events", &a.events);
        w.row("asn", &k, "sources", &a.sources);
    }
    for m in &r.payloads.tags {
        w.row("tag", &m.name, "events", &m.events);
        w.row("tag", &m.name, "sources", &m.sources);
    }
    for m in &r.payloads.grep {
        w.row("grep", &m.name, "events", &m.events);
        w.row("grep", &m.name, "sources", &m.sources);
    }
    for (i, h) in r.payloads.hits.iter().enumerate() {
        let k = i.to_string();
        w.row("hit", &k, "ts", &h.ts);
        w.row("hit", &k, "src", &h.src);
        w.row(
            "hit",
            &k,
            "dst_port",
            &h.dst_port.map(|p| p.to_string()).unwrap_or_default(),
        );
        w.row(
            "hit",
            &k,
            "matched",
            &[h.tags.join(" "), h.patterns.join(" ")]
                .join(" ")
                .trim()
                .to_owned(),
        );
        w.row("hit", &k, "excerpt", &h.excerpt);
    }
    for l in &r.skipped.lines {
        w.row(
            "skipped",
            &format!("{}:{}", l.input, l.line),
            "reason",
            &l.reason,
        );
    }
    w.0
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(cell("plain"), "plain");
    }
}
