//! `mirage report`: offline analytics of honeypot captures.
//!
//! The all-port honeypot seed analyses two weeks of logs by hand in pandas:
//! counts per day and per 30 minutes, distinct sources and ports, the most
//! hit ports (raw and per distinct source), port scans, countries, and a
//! grep of decoded payloads for droppers. This crate does all of that in one
//! streaming pass over any size of capture (mirage JSONL, tcppc-go JSONL,
//! netfilter LOG lines; plain, gzip, directories or stdin) and writes a
//! terminal table, JSON, CSV or a self-contained HTML page with SVG charts.
//!
//! Layout: [`input`] cuts inputs into chunks, [`parse`] turns lines into
//! records, [`filter`] selects them, [`analysis`] folds them (one partial
//! per thread, merged), [`geo`] and [`payload`] enrich, [`output`] renders
//! the [`report::Report`]. `docs/report.md` describes each figure.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod fastjson;
pub mod filter;
pub mod geo;
pub mod input;
pub mod output;
pub mod parse;
pub mod payload;
pub mod report;
pub mod sketch;
pub mod time;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, mpsc};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use analysis::{Partial, Settings};
use filter::Filter;
use input::{Chunk, Source};
use parse::{LineParser, SkipReason};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Terminal tables.
    Text,
    /// One JSON document.
    Json,
    /// Long-format CSV: table,key,field,value.
    Csv,
    /// One self-contained HTML page with SVG charts.
    Html,
}

/// Arguments of `mirage report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Event files (JSONL, .gz), directories of them, or `-` for standard
    /// input (the default). Also reads tcppc-go JSONL and netfilter LOG lines.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// MaxMind-format database (GeoLite2/GeoIP2 Country, City or ASN) for
    /// countries and ASNs. Repeatable (e.g. a Country and an ASN database).
    #[arg(long, value_name = "FILE")]
    pub geoip: Vec<PathBuf>,
    /// Regular expression searched in decoded payloads. Repeatable.
    #[arg(long, value_name = "REGEX")]
    pub grep: Vec<String>,
    /// Only events at or after this time (RFC 3339, or YYYY-MM-DD as UTC midnight).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339, or YYYY-MM-DD as UTC midnight).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only events from this address or CIDR network. Repeatable.
    #[arg(long, value_name = "CIDR")]
    pub src: Vec<String>,
    /// Only events to this destination port. Repeatable.
    #[arg(long, value_name = "PORT")]
    pub port: Vec<u16>,
    /// Only events of this service (`catchall`, `redis`, `tcppc`, a LOG prefix…). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub service: Vec<String>,
    /// Size of the time buckets (s, m, h, d suffix).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub bucket: String,
    /// Rows in the top-N tables.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// List the sessions of the sources selected with --src.
    #[arg(long, requires = "src")]
    pub sessions: bool,
    /// Scan rule: a source that first contacts at least this many distinct
    /// ports within the scan window is a (vertical) scanner.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub scan_min_ports: usize,
    /// Scan rule: ... or at least this many distinct destination addresses
    /// (horizontal).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub scan_min_hosts: usize,
    /// Scan rule: the window.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub scan_window: String,
    /// Distinct counts per bucket are exact up to this many values, then
    /// estimated with a HyperLogLog sketch.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub sketch_threshold: usize,
    /// HyperLogLog precision p (2^p registers; relative error 1.04/sqrt(2^p)).
    #[arg(long, value_name = "P", default_value_t = 14, value_parser = clap::value_parser!(u8).range(4..=18))]
    pub sketch_precision: u8,
    /// Lines longer than this many bytes are skipped.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
    /// Payload matches listed (all are counted).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_hits: usize,
    /// Skipped lines listed with their line numbers (all are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_skipped: usize,
    /// Year assumed for BSD syslog stamps (`May 24 10:00:01`), read as UTC
    /// (default: the current year).
    #[arg(long, value_name = "YEAR")]
    pub log_year: Option<i32>,
    /// Worker threads (default: the number of CPUs, at most 8).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Why a report could not be made.
#[derive(Debug)]
pub enum ReportError {
    /// Bad arguments (exit code 2).
    Usage(String),
    /// Failure while running (exit code 1).
    Runtime(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Usage(s) | ReportError::Runtime(s) => f.write_str(s),
        }
    }
}

/// Everything `run` needs, validated.
pub struct Plan {
    sources: Vec<Source>,
    filter: Filter,
    settings: Settings,
    geo: Option<geo::Geo>,
    max_line: usize,
    log_year: i32,
    threads: usize,
    progress: bool,
}

/// Check the arguments and open the inputs' list and databases.
pub fn plan(args: &ReportArgs) -> Result<Plan, ReportError> {
    let usage = ReportError::Usage;
    let bucket_secs = time::parse_duration(&args.bucket).ok_or_else(|| {
        usage(format!(
            "invalid --bucket '{}': use e.g. 30m, 1h, 1d",
            args.bucket
        ))
    })?;
    let scan_window_secs = time::parse_duration(&args.scan_window).ok_or_else(|| {
        usage(format!(
            "invalid --scan-window '{}': use e.g. 10m",
            args.scan_window
        ))
    })?;
    let flag_time = |v: &Option<String>, name: &str| -> Result<Option<i64>, ReportError> {
        v.as_deref()
            .map(|s| {
                time::parse_flag_time(s).ok_or_else(|| {
                    usage(format!(
                        "invalid --{name} '{s}': use RFC 3339 or YYYY-MM-DD"
                    ))
                })
            })
            .transpose()
    };
    let since = flag_time(&args.since, "since")?;
    let until = flag_time(&args.until, "until")?;
    let src = args
        .src
        .iter()
        .map(|s| filter::parse_net(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)?;
    if args.sessions && src.is_empty() {
        return Err(usage("--sessions needs --src".to_owned()));
    }
    if args.top == 0 {
        return Err(usage("--top must be at least 1".to_owned()));
    }
    if args.max_line_bytes < 64 {
        return Err(usage("--max-line-bytes must be at least 64".to_owned()));
    }
    let matchers = payload::Matchers::new(&args.grep).map_err(usage)?;
    let sources = input::expand(&args.paths).map_err(usage)?;
    let geo = if args.geoip.is_empty() {
        None
    } else {
        Some(geo::Geo::open(&args.geoip).map_err(usage)?)
    };
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .clamp(1, 8);
    Ok(Plan {
        sources,
        filter: Filter {
            since,
            until,
            src,
            ports: args.port.clone(),
            services: args.service.clone(),
        },
        settings: Settings {
            bucket_secs,
            top: args.top,
            scan_min_ports: args.scan_min_ports,
            scan_min_hosts: args.scan_min_hosts,
            scan_window_secs,
            sketch: sketch::SketchConfig {
                threshold: args.sketch_threshold,
                precision: args.sketch_precision,
            },
            max_hits: args.max_hits,
            sessions: args.sessions,
            max_session_events: 10_000,
            max_skipped_listed: args.max_skipped,
            matchers: Arc::new(matchers),
        },
        geo,
        max_line: args.max_line_bytes,
        log_year: args.log_year.unwrap_or_else(time::current_year),
        threads,
        progress: !args.no_progress,
    })
}

fn process_chunk(
    chunk: &Chunk,
    parser: &mut LineParser,
    filter: &Filter,
    max_line: usize,
    partial: &mut Partial,
) {
    let mut lines = 0u64;
    let mut events = 0u64;
    if chunk.corrupt {
        partial.skip(chunk.input, chunk.seq, 0, SkipReason::CorruptInput);
    } else if chunk.oversize.is_some() {
        lines = 1;
        partial.skip(chunk.input, chunk.seq, 0, SkipReason::TooLong);
    } else {
        let data = &chunk.data;
        let mut start = 0usize;
        let mut handle = |line: &[u8], n: u64, partial: &mut Partial| {
            if line.len() > max_line {
                partial.skip(chunk.input, chunk.seq, n, SkipReason::TooLong);
                return;
            }
            let res = parser.parse(line, &mut |rec| {
                events += 1;
                if filter.matches(rec) {
                    partial.add(rec);
                }
            });
            if let Err(reason) = res {
                partial.skip(chunk.input, chunk.seq, n, reason);
            }
        };
        for nl in memchr::memchr_iter(b'\n', data) {
            handle(&data[start..nl], lines, partial);
            lines += 1;
            start = nl + 1;
        }
        if start < data.len() {
            handle(&data[start..], lines, partial);
            lines += 1;
        }
    }
    let acc = partial.inputs.entry(chunk.input).or_default();
    acc.lines += lines;
    acc.events += events;
    partial.chunk_lines.push((chunk.input, chunk.seq, lines));
}

/// Parse one line with default settings and fold it into a throw-away
/// report: the fuzz target's body. Must never panic.
pub fn fuzz_line(data: &[u8]) {
    static MATCHERS: std::sync::OnceLock<Option<Arc<payload::Matchers>>> =
        std::sync::OnceLock::new();
    let Some(matchers) = MATCHERS
        .get_or_init(|| {
            payload::Matchers::new(&["wget".to_owned()])
                .ok()
                .map(Arc::new)
        })
        .clone()
    else {
        return;
    };
    let settings = Settings {
        bucket_secs: 1800,
        top: 3,
        scan_min_ports: 2,
        scan_min_hosts: 2,
        scan_window_secs: 600,
        sketch: sketch::SketchConfig {
            threshold: 4,
            precision: 4,
        },
        max_hits: 2,
        sessions: true,
        max_session_events: 4,
        max_skipped_listed: 2,
        matchers,
    };
    let mut partial = Partial::new(settings);
    let mut parser = LineParser::new(2020);
    let chunk = Chunk {
        input: 0,
        seq: 0,
        data: data.to_vec(),
        oversize: None,
        corrupt: false,
    };
    process_chunk(
        &chunk,
        &mut parser,
        &Filter::default(),
        1 << 20,
        &mut partial,
    );
    let report = partial.finish(&["fuzz".to_owned()], None);
    for f in [Format::Text, Format::Json, Format::Csv, Format::Html] {
        let _ = output::render(&report, f);
    }
}

/// Read every input and build the report.
pub fn analyse(plan: &Plan) -> Result<report::Report, ReportError> {
    let total = input::total_size(&plan.sources);
    let show =
        plan.progress && std::io::stderr().is_terminal() && total.is_none_or(|t| t >= 32 << 20);
    let progress = if show {
        let pb = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    };

    let (tx, rx) = mpsc::sync_channel::<Chunk>(plan.threads * 2);
    let rx = Arc::new(Mutex::new(rx));
    let names: Vec<String> = plan.sources.iter().map(Source::name).collect();
    let result = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..plan.threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                scope.spawn(move || {
                    let mut partial = Partial::new(plan.settings.clone());
                    let mut parser = LineParser::new(plan.log_year);
                    loop {
                        let next = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => break,
                        };
                        let Ok(chunk) = next else { break };
                        process_chunk(
                            &chunk,
                            &mut parser,
                            &plan.filter,
                            plan.max_line,
                            &mut partial,
                        );
                    }
                    partial
                })
            })
            .collect();
        let mut read_err = None;
        for (i, src) in plan.sources.iter().enumerate() {
            let r = input::read_source(src, i as u32, plan.max_line, &progress, &mut |c| {
                tx.send(c).is_ok()
            });
            if let Err(e) = r {
                read_err = Some(format!("cannot read {}: {e}", src.name()));
                break;
            }
        }
        drop(tx);
        let mut merged: Option<Partial> = None;
        for w in workers {
            let p = w
                .join()
                .map_err(|_| "a worker thread panicked".to_owned())?;
            match &mut merged {
                Some(m) => m.merge(p),
                None => merged = Some(p),
            }
        }
        match read_err {
            Some(e) => Err(e),
            None => merged.ok_or_else(|| "no worker threads".to_owned()),
        }
    });
    progress.finish_and_clear();
    let partial = result.map_err(ReportError::Runtime)?;
    Ok(partial.finish(&names, plan.geo.as_ref()))
}

/// Build the report for `args` and render it in the chosen format.
pub fn report_to_string(args: &ReportArgs) -> Result<String, ReportError> {
    let plan = plan(args)?;
    let report = analyse(&plan)?;
    Ok(output::render(&report, args.format))
}

/// Run `mirage report`: 0 on success, 2 on bad usage (one line on stderr),
/// 1 on a failure while running.
pub fn run(args: ReportArgs) -> ExitCode {
    let result = report_to_string(&args).and_then(|text| match &args.out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| ReportError::Runtime(format!("cannot write {}: {e}", path.display()))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| ReportError::Runtime(format!("cannot write output: {e}")))
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ReportError::Usage(msg)) => {
            eprintln!("mirage report: {msg}");
            ExitCode::from(2)
        }
        Err(ReportError::Runtime(msg)) => {
            eprintln!("mirage report: {msg}");
            ExitCode::FAILURE
        }
    }
}
