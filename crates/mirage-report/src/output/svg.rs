//! Inline SVG charts, written by hand so the HTML report needs no script,
//! no font and no network: a time-series line chart, a horizontal bar chart
//! and a timeline of scans. All labels are escaped.

use std::fmt::Write as _;

use super::escape_html as esc;
use crate::time;

const W: f64 = 960.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 20.0;
const PAD_T: f64 = 30.0;
const PAD_B: f64 = 50.0;

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn open(out: &mut String, h: f64, title: &str, class: &str) {
    let _ = write!(
        out,
        r##"<svg class="chart {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{W}" height="{h}" fill="#fff"/><text x="{PAD_L}" y="18" class="ct">{t}</text>"##,
        t = esc(title)
    );
}

/// A line chart over time: `xs` are µs timestamps, each series a name,
/// values (same length as `xs`) and a colour.
pub fn line_chart(
    title: &str,
    xs: &[i64],
    series: &[(&str, Vec<f64>, &str)],
    label_dates_only: bool,
) -> String {
    let h = 320.0;
    let mut out = String::new();
    open(&mut out, h, title, "line");
    let (plot_w, plot_h) = (W - PAD_L - PAD_R, h - PAD_T - PAD_B);
    let (x0, x1) = match (xs.first(), xs.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => {
            out.push_str("<text x=\"480\" y=\"160\">no data</text></svg>");
            return out;
        }
    };
    let span = (x1 - x0).max(1) as f64;
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max),
    );
    let px = |x: i64| {
        if xs.len() == 1 {
            PAD_L + plot_w / 2.0
        } else {
            PAD_L + (x - x0) as f64 / span * plot_w
        }
    };
    let py = |y: f64| PAD_T + plot_h - y / ymax * plot_h;
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            out,
            r##"<line x1="{PAD_L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text>"##,
            W - PAD_R,
            PAD_L - 6.0,
            y + 4.0,
            v.round()
        );
    }
    let ticks = xs.len().min(6);
    for i in 0..ticks {
        let idx = if ticks <= 1 {
            0
        } else {
            i * (xs.len() - 1) / (ticks - 1)
        };
        let x = xs[idx];
        let label = time::fmt_secs(x);
        let label = if label_dates_only {
            &label[..10]
        } else {
            &label[5..16]
        };
        let anchor = match i {
            _ if ticks <= 1 => "middle",
            0 => "start",
            _ if i + 1 == ticks => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" class="ax">{}</text>"#,
            px(x),
            h - PAD_B + 18.0,
            esc(label)
        );
    }
    for (n, (name, values, color)) in series.iter().enumerate() {
        let mut pts = String::new();
        for (x, y) in xs.iter().zip(values) {
            let _ = write!(pts, "{:.1},{:.1} ", px(*x), py(*y));
        }
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
            pts.trim_end()
        );
        if xs.len() == 1 {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                px(xs[0]),
                py(values.first().copied().unwrap_or(0.0))
            );
        }
        let lx = PAD_L + 10.0 + n as f64 * 170.0;
        let _ = write!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" class="ax">{}</text>"#,
            h - 22.0,
            lx + 16.0,
            h - 12.0,
            esc(name)
        );
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one per (label, value), in the given order.
pub fn bar_chart(title: &str, items: &[(String, u64)], color: &str) -> String {
    let bar = 22.0;
    let h = PAD_T + 10.0 + bar * items.len().max(1) as f64 + 10.0;
    let mut out = String::new();
    open(&mut out, h, title, "bar");
    let label_w = 170.0;
    let plot_w = W - label_w - PAD_R - 80.0;
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1) as f64;
    if items.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{label_w}" y="{:.1}" class="ax">no data</text>"#,
            PAD_T + 20.0
        );
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let y = PAD_T + 10.0 + i as f64 * bar;
        let w = (*v as f64 / max * plot_w).max(1.0);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" class="ax">{v}</text>"#,
            label_w - 8.0,
            y + 15.0,
            esc(label),
            bar - 6.0,
            label_w + w + 6.0,
            y + 15.0
        );
    }
    out.push_str("</svg>");
    out
}

/// One bar per scan from its first to its last event.
pub fn timeline(title: &str, rows: &[(String, i64, i64, String)]) -> String {
    let bar = 20.0;
    let h = PAD_T + 10.0 + bar * rows.len().max(1) as f64 + 40.0;
    let mut out = String::new();
    open(&mut out, h, title, "timeline");
    let label_w = 170.0;
    let plot_w = W - label_w - PAD_R;
    let t0 = rows.iter().map(|r| r.1).min().unwrap_or(0);
    let t1 = rows.iter().map(|r| r.2).max().unwrap_or(1);
    let span = (t1 - t0).max(1) as f64;
    let px = |t: i64| label_w + (t - t0) as f64 / span * plot_w;
    if rows.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{label_w}" y="{:.1}" class="ax">no scans</text>"#,
            PAD_T + 20.0
        );
    }
    for (i, (label, a, b, kind)) in rows.iter().enumerate() {
        let y = PAD_T + 10.0 + i as f64 * bar;
        let color = match kind.as_str() {
            "horizontal" => "#d97706",
            "mixed" => "#7c3aed",
            _ => "#dc2626",
        };
        let x = px(*a);
        let w = (px(*b) - x).max(3.0);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="ax">{}</text><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{} {}</title></rect>"#,
            label_w - 8.0,
            y + 14.0,
            esc(label),
            bar - 6.0,
            esc(label),
            esc(kind)
        );
    }
    if !rows.is_empty() {
        for (t, anchor) in [(t0, "start"), (t1, "end")] {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" class="ax">{}</text>"#,
                px(t),
                h - 16.0,
                esc(&time::fmt_secs(t))
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        let s = bar_chart("<b>", &[("<script>".to_owned(), 3)], "#000");
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;"));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
    }

    #[test]
    fn nice_axis() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(2400.0), 2500.0);
    }
}
