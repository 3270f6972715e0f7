//! The HTML report in a real browser: Debian's headless Chromium opens it
//! from a file, with no console errors (a control page proves errors would
//! be seen), takes a screenshot whose size is checked, and its DOM holds the
//! SVG charts and the escaped hostile payload. The page is also checked to
//! be self-contained (no script, no external reference).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn chromium(dir: &Path, extra: &[&str], page: &Path) -> Output {
    let chromium = mirage_testkit::require_tool("chromium");
    let timeout = mirage_testkit::require_tool("timeout");
    let profile = dir.join(format!("profile-{}", mirage_testkit::unique_suffix()));
    std::fs::create_dir_all(&profile).unwrap();
    let out = Command::new(timeout)
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Refused to") || l.contains("Uncaught"))
        .map(str::to_owned)
        .collect()
}

fn png_size(path: &Path) -> (u32, u32, u64) {
    let b = std::fs::read(path).expect("screenshot written");
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h, b.len() as u64)
}

#[test]
fn html_report_renders_in_chromium() {
    let dir = tmp_dir("chromium");
    write_fixture(&dir);
    let db = tiny_mmdb(&dir);
    let page = dir.join("report.html");
    let d = dir.to_string_lossy().into_owned();
    let html = run(&[
        &d,
        "--log-year",
        "2026",
        "--geoip",
        &db.to_string_lossy(),
        "--grep",
        "shell",
        "--format",
        "html",
    ])
    .unwrap();
    std::fs::write(&page, &html).unwrap();

    // Self-contained: no script, no reference to anything outside the page.
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<script", "src=", "href=", "url(", "@import", "<link", "<iframe", "<img",
    ] {
        assert!(!lower.contains(banned), "HTML contains {banned}");
    }
    // The hostile payload is text, not markup.
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[31m shell=bash"));

    // Control: a page that logs an error is caught by the same check.
    let control = dir.join("control.html");
    std::fs::write(
        &control,
        "<html><body><script>console.error('control-error')</script></body></html>",
    )
    .unwrap();
    let out = chromium(&dir, &["--dump-dom"], &control);
    assert!(
        console_lines(&out)
            .iter()
            .any(|l| l.contains("control-error")),
        "console errors are not visible in chromium's log: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The report: no console output at all, a screenshot of the full size.
    let shot = dir.join("report.png");
    let out = chromium(
        &dir,
        &[
            "--window-size=1200,3000",
            &format!("--screenshot={}", shot.display()),
        ],
        &page,
    );
    assert_eq!(console_lines(&out), Vec::<String>::new());
    let (w, h, bytes) = png_size(&shot);
    assert_eq!((w, h), (1200, 3000));
    // A blank page of that size compresses to a few KiB; charts and tables
    // take far more.
    assert!(bytes > 40_000, "screenshot only {bytes} bytes");

    // The parsed DOM holds the charts as SVG, and no script element.
    let out = chromium(&dir, &["--dump-dom"], &page);
    assert_eq!(console_lines(&out), Vec::<String>::new());
    let dom = String::from_utf8_lossy(&out.stdout);
    let charts = dom.matches("<svg class=\"chart").count();
    assert_eq!(
        charts, 6,
        "per day, per bucket, two port charts, countries, scan timeline"
    );
    for title in [
        "<title>Per day (UTC)</title>",
        "<title>Per 30 minutes</title>",
        "<title>Top ports by events</title>",
        "<title>Top ports by distinct sources</title>",
        "<title>Events by country</title>",
        "<title>Scan timeline</title>",
    ] {
        assert!(dom.contains(title), "missing chart {title}");
    }
    assert!(dom.contains("<polyline"), "line charts have lines");
    assert!(!dom.contains("<script"), "no script element in the DOM");
    let _ = std::fs::remove_dir_all(&dir);
}
