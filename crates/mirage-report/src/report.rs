//! The finished report: plain data, serialised as is for `--format json`
//! and rendered by the other writers. Times are RFC 3339 UTC strings;
//! every text that came from the capture is already escaped to printable
//! ASCII (see `payload::escape_into`).

use serde::Serialize;

/// Everything a report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Report format version (bumped on incompatible JSON changes).
    pub report_version: u32,
    /// The inputs read, in order.
    pub inputs: Vec<InputSummary>,
    /// Totals over the events that passed the filters.
    pub totals: Totals,
    /// The parameters that shaped the figures.
    pub params: Params,
    /// Events by kind.
    pub kinds: Vec<NameCount>,
    /// Events by service.
    pub services: Vec<NameCount>,
    /// Per UTC day.
    pub days: Vec<Bucket>,
    /// Per `--bucket` interval (only intervals with events).
    pub buckets: Vec<Bucket>,
    /// Top destination ports by events.
    pub top_ports: Vec<PortRow>,
    /// Top destination ports by distinct source addresses.
    pub top_ports_by_sources: Vec<PortRow>,
    /// Top sources by events.
    pub top_sources: Vec<SourceRow>,
    /// Detected scans, the widest first.
    pub scans: Vec<Scan>,
    /// Countries and ASNs, when a database was given.
    pub geo: Geo,
    /// Payload search.
    pub payloads: Payloads,
    /// Sessions of the selected sources (`--sessions`).
    pub sessions: Option<Vec<Session>>,
    /// Lines that could not be read.
    pub skipped: Skipped,
}

/// One input.
#[derive(Debug, Clone, Serialize)]
pub struct InputSummary {
    /// Path (`-` for standard input).
    pub path: String,
    /// Lines read.
    pub lines: u64,
    /// Events parsed (before filters).
    pub events: u64,
    /// Lines skipped.
    pub skipped: u64,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Lines read.
    pub lines: u64,
    /// Events parsed (before filters).
    pub parsed: u64,
    /// Events that passed the filters (all other figures count these).
    pub events: u64,
    /// Of which connections (session.connect, tcppc-go sessions, LOG lines).
    pub connections: u64,
    /// Lines skipped.
    pub skipped: u64,
    /// Distinct source addresses (exact).
    pub distinct_sources: u64,
    /// Distinct destination ports (exact).
    pub distinct_ports: u64,
    /// Distinct destination addresses (exact).
    pub distinct_destinations: u64,
    /// First event time.
    pub first: Option<String>,
    /// Last event time.
    pub last: Option<String>,
}

/// Parameters in force.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Bucket size, seconds.
    pub bucket_seconds: i64,
    /// Rows in top-N tables.
    pub top: usize,
    /// Scan rule: at least this many distinct ports within the window.
    pub scan_min_ports: usize,
    /// Scan rule: at least this many distinct destination addresses within the window.
    pub scan_min_hosts: usize,
    /// Scan window, seconds.
    pub scan_window_seconds: i64,
    /// Distinct counts are exact up to this cardinality, estimated above.
    pub sketch_threshold: usize,
    /// HyperLogLog precision.
    pub sketch_precision: u8,
    /// Relative standard error of an estimated count.
    pub sketch_relative_error: f64,
}

/// A name and a count.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameCount {
    /// Name (escaped).
    pub name: String,
    /// Events.
    pub events: u64,
}

/// A time interval's counts.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Start of the interval.
    pub start: String,
    /// Events.
    pub events: u64,
    /// Connections.
    pub connections: u64,
    /// Distinct source addresses.
    pub distinct_sources: u64,
    /// Distinct destination ports.
    pub distinct_ports: u64,
    /// True when a distinct count is a sketch estimate.
    pub estimated: bool,
}

/// A destination port's counts.
#[derive(Debug, Clone, Serialize)]
pub struct PortRow {
    /// Port.
    pub port: u16,
    /// Events.
    pub events: u64,
    /// Connections.
    pub connections: u64,
    /// Distinct source addresses.
    pub distinct_sources: u64,
}

/// A source's counts.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    /// Address.
    pub ip: String,
    /// Events.
    pub events: u64,
    /// Connections.
    pub connections: u64,
    /// Distinct destination ports.
    pub distinct_ports: u64,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
    /// Country code, with `--geoip`.
    pub country: Option<String>,
}

/// One scanning source.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    /// Source address.
    pub src: String,
    /// `vertical` (many ports), `horizontal` (many addresses) or `mixed`.
    pub kind: String,
    /// Distinct destination ports over the whole capture.
    pub distinct_ports: u64,
    /// Distinct destination addresses over the whole capture.
    pub distinct_hosts: u64,
    /// Most distinct ports first contacted within one window.
    pub peak_ports: u64,
    /// Most distinct addresses first contacted within one window.
    pub peak_hosts: u64,
    /// Start of the densest window (first contact of its first port/address).
    pub window_start: String,
    /// End of the densest window (first contact of its last port/address).
    pub window_end: String,
    /// First event of the source.
    pub first_seen: String,
    /// Last event of the source.
    pub last_seen: String,
    /// Seconds from first to last event.
    pub span_seconds: i64,
    /// Events of the source.
    pub events: u64,
    /// Country code, with `--geoip`.
    pub country: Option<String>,
}

/// GeoIP results.
#[derive(Debug, Clone, Serialize)]
pub struct Geo {
    /// Databases used: path and type; empty without `--geoip`.
    pub databases: Vec<(String, String)>,
    /// Why there are no figures, when there are none.
    pub note: Option<String>,
    /// Countries by events.
    pub countries: Vec<CountryRow>,
    /// Autonomous systems by events.
    pub asns: Vec<AsnRow>,
    /// Events from sources no database knows.
    pub unknown_events: u64,
    /// Sources no database knows.
    pub unknown_sources: u64,
}

/// A country's counts.
#[derive(Debug, Clone, Serialize)]
pub struct CountryRow {
    /// ISO 3166 code.
    pub code: String,
    /// English name.
    pub name: String,
    /// Events.
    pub events: u64,
    /// Distinct sources.
    pub sources: u64,
}

/// An autonomous system's counts.
#[derive(Debug, Clone, Serialize)]
pub struct AsnRow {
    /// AS number.
    pub asn: u32,
    /// Organisation (escaped).
    pub org: String,
    /// Events.
    pub events: u64,
    /// Distinct sources.
    pub sources: u64,
}

/// Payload search results.
#[derive(Debug, Clone, Serialize)]
pub struct Payloads {
    /// Events that carried payload bytes.
    pub events_with_payload: u64,
    /// Built-in tags with counts (all tags, zero counts included).
    pub tags: Vec<MatchCount>,
    /// `--grep` patterns with counts.
    pub grep: Vec<MatchCount>,
    /// Events that matched a tag or pattern.
    pub hits_total: u64,
    /// The earliest matches (`--max-hits`).
    pub hits: Vec<Hit>,
}

/// A tag or pattern with its counts.
#[derive(Debug, Clone, Serialize)]
pub struct MatchCount {
    /// Tag name, or the pattern (escaped).
    pub name: String,
    /// What a tag detects (empty for patterns).
    pub description: String,
    /// Matching events.
    pub events: u64,
    /// Distinct sources among them.
    pub sources: u64,
}

/// One matching payload.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Time.
    pub ts: String,
    /// Source address.
    pub src: String,
    /// Destination port.
    pub dst_port: Option<u16>,
    /// Service (escaped).
    pub service: String,
    /// Matching tags.
    pub tags: Vec<String>,
    /// Matching `--grep` patterns (escaped).
    pub patterns: Vec<String>,
    /// Payload length in bytes (inline part).
    pub len: usize,
    /// Printable excerpt around the first match.
    pub excerpt: String,
}

/// One session of a selected source.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// Session id, or `src:port->dport` when the input has none (escaped).
    pub id: String,
    /// Source address.
    pub src: String,
    /// Destination port.
    pub dst_port: Option<u16>,
    /// Service (escaped).
    pub service: String,
    /// First event.
    pub start: String,
    /// Last event.
    pub end: String,
    /// Its events in time order.
    pub events: Vec<SessionEvent>,
}

/// One event in a session listing.
#[derive(Debug, Clone, Serialize)]
pub struct SessionEvent {
    /// Time.
    pub ts: String,
    /// Kind.
    pub kind: String,
    /// Detail or payload excerpt (escaped).
    pub detail: String,
}

/// Skipped lines.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// All skipped lines.
    pub total: u64,
    /// By reason.
    pub by_reason: Vec<NameCount>,
    /// The first ones, with where they are.
    pub lines: Vec<SkippedLine>,
}

/// Where a skipped line is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SkippedLine {
    /// Input path.
    pub input: String,
    /// Line number (from 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}
