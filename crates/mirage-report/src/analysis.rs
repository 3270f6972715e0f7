//! The analyses: one [`Partial`] per worker thread folds records in; the
//! partials merge (every figure is a sum, min, max or set union, so the
//! order of records and chunks does not matter) and [`Partial::finish`]
//! turns the result into a [`Report`].
//!
//! Memory grows with distinct values only: one entry per source address,
//! per (source, port) and (source, destination) pair (these give the exact
//! per-port distinct-source counts and the scan detection), per time
//! bucket, and distinct sets per bucket that turn into sketches above the
//! threshold (see `sketch`). Hits and session events are capped.

use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};

use crate::geo::Geo;
use crate::parse::{Kind, Record, SkipReason};
use crate::payload::{self, Matchers, TAGS};
use crate::report::{self as rep, Report};
use crate::sketch::{DistinctSet, SketchConfig, hash_u128};
use crate::time::{self, MICROS};

/// Settings of the analyses.
#[derive(Clone)]
pub struct Settings {
    /// Bucket size in seconds.
    pub bucket_secs: i64,
    /// Rows in top-N tables.
    pub top: usize,
    /// Scan rule: distinct ports within the window.
    pub scan_min_ports: usize,
    /// Scan rule: distinct destination addresses within the window.
    pub scan_min_hosts: usize,
    /// Scan window in seconds.
    pub scan_window_secs: i64,
    /// Distinct-count sketches.
    pub sketch: SketchConfig,
    /// Matches kept in the hit list.
    pub max_hits: usize,
    /// Collect session listings.
    pub sessions: bool,
    /// Session events kept.
    pub max_session_events: usize,
    /// Skipped lines listed.
    pub max_skipped_listed: usize,
    /// Tags and patterns.
    pub matchers: Arc<Matchers>,
}

#[derive(Debug, Clone)]
struct SourceAcc {
    ip: IpAddr,
    events: u64,
    connections: u64,
    first: i64,
    last: i64,
}

#[derive(Debug, Default, Clone)]
struct BucketAcc {
    events: u64,
    connections: u64,
    ips: DistinctSet,
    ports: DistinctSet,
}

#[derive(Debug, Default, Clone, Copy)]
struct PortAcc {
    events: u64,
    connections: u64,
}

#[derive(Debug, Default, Clone)]
struct MatchAcc {
    events: u64,
    sources: HashSet<u32>,
}

#[derive(Debug, Clone)]
struct HitAcc {
    ts: i64,
    src: IpAddr,
    dst_port: Option<u16>,
    service: String,
    tags: u32,
    greps: Vec<usize>,
    len: usize,
    excerpt: String,
}

#[derive(Debug, Clone)]
struct SessionEventAcc {
    ts: i64,
    key: String,
    src: IpAddr,
    dst_port: Option<u16>,
    service: String,
    kind: Kind,
    detail: String,
}

/// Per-input line and event counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct InputAcc {
    /// Lines.
    pub lines: u64,
    /// Events parsed.
    pub events: u64,
    /// Lines skipped.
    pub skipped: u64,
}

/// A skipped line: input, chunk, line within the chunk (from 0), reason.
type SkipAt = (u32, u64, u64, SkipReason);

/// One worker's share of the analyses.
pub struct Partial {
    cfg: Settings,
    source_idx: HashMap<IpAddr, u32>,
    sources: Vec<SourceAcc>,
    dst_idx: HashMap<IpAddr, u32>,
    pairs: HashMap<(u32, u16), i64>,
    hosts: HashMap<(u32, u32), i64>,
    ports: Vec<PortAcc>,
    days: HashMap<i64, BucketAcc>,
    buckets: HashMap<i64, BucketAcc>,
    kinds: HashMap<Kind, u64>,
    services: HashMap<String, u64>,
    /// Consecutive events mostly share service, source and destination:
    /// these caches skip the map lookups then.
    last_service: (String, u64),
    last_src: Option<(IpAddr, u32)>,
    last_dst: Option<(IpAddr, u32)>,
    events: u64,
    connections: u64,
    first: i64,
    last: i64,
    payload_events: u64,
    tags: Vec<MatchAcc>,
    greps: Vec<MatchAcc>,
    hits_total: u64,
    hits: Vec<HitAcc>,
    hits_cutoff: Option<i64>,
    session_events: Vec<SessionEventAcc>,
    /// Per-input counts.
    pub inputs: HashMap<u32, InputAcc>,
    /// Lines per chunk: (input, seq) -> lines.
    pub chunk_lines: Vec<(u32, u64, u64)>,
    skipped_by_reason: HashMap<SkipReason, u64>,
    skipped: Vec<SkipAt>,
}

fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) ^ (1 << 127),
    }
}

impl Partial {
    /// An empty partial.
    pub fn new(cfg: Settings) -> Self {
        let n_greps = cfg.matchers.grep_patterns.len();
        Partial {
            source_idx: HashMap::new(),
            sources: Vec::new(),
            dst_idx: HashMap::new(),
            pairs: HashMap::new(),
            hosts: HashMap::new(),
            ports: vec![PortAcc::default(); 65_536],
            days: HashMap::new(),
            buckets: HashMap::new(),
            kinds: HashMap::new(),
            services: HashMap::new(),
            last_service: (String::new(), 0),
            last_src: None,
            last_dst: None,
            events: 0,
            connections: 0,
            first: i64::MAX,
            last: i64::MIN,
            payload_events: 0,
            tags: vec![MatchAcc::default(); TAGS.len()],
            greps: vec![MatchAcc::default(); n_greps],
            hits_total: 0,
            hits: Vec::new(),
            hits_cutoff: None,
            session_events: Vec::new(),
            inputs: HashMap::new(),
            chunk_lines: Vec::new(),
            skipped_by_reason: HashMap::new(),
            skipped: Vec::new(),
            cfg,
        }
    }

    /// Record a skipped line.
    pub fn skip(&mut self, input: u32, seq: u64, line_in_chunk: u64, reason: SkipReason) {
        *self.skipped_by_reason.entry(reason).or_default() += 1;
        self.inputs.entry(input).or_default().skipped += 1;
        self.skipped.push((input, seq, line_in_chunk, reason));
        let cap = self.cfg.max_skipped_listed;
        if self.skipped.len() >= cap.saturating_mul(2).max(16) {
            self.skipped.sort_unstable();
            self.skipped.truncate(cap);
        }
    }

    /// Fold in one record that passed the filters.
    pub fn add(&mut self, r: &Record<'_>) {
        let is_conn = u64::from(r.kind.is_connection());
        self.events += 1;
        self.connections += is_conn;
        self.first = self.first.min(r.ts);
        self.last = self.last.max(r.ts);
        *self.kinds.entry(r.kind).or_default() += 1;
        if self.last_service.0 == r.service {
            self.last_service.1 += 1;
        } else {
            self.flush_service();
            self.last_service = (r.service.to_owned(), 1);
        }

        let next = self.sources.len() as u32;
        let si = match self.last_src {
            Some((ip, i)) if ip == r.src => i,
            _ => {
                let i = *self.source_idx.entry(r.src).or_insert(next);
                self.last_src = Some((r.src, i));
                i
            }
        };
        if si == next {
            self.sources.push(SourceAcc {
                ip: r.src,
                events: 0,
                connections: 0,
                first: r.ts,
                last: r.ts,
            });
        }
        if let Some(s) = self.sources.get_mut(si as usize) {
            s.events += 1;
            s.connections += is_conn;
            s.first = s.first.min(r.ts);
            s.last = s.last.max(r.ts);
        }

        if let Some(port) = r.dst_port {
            let p = &mut self.ports[usize::from(port)];
            p.events += 1;
            p.connections += is_conn;
            self.pairs
                .entry((si, port))
                .and_modify(|t| *t = (*t).min(r.ts))
                .or_insert(r.ts);
        }
        if let Some(dst) = r.dst {
            let next = self.dst_idx.len() as u32;
            let di = match self.last_dst {
                Some((ip, i)) if ip == dst => i,
                _ => {
                    let i = *self.dst_idx.entry(dst).or_insert(next);
                    self.last_dst = Some((dst, i));
                    i
                }
            };
            self.hosts
                .entry((si, di))
                .and_modify(|t| *t = (*t).min(r.ts))
                .or_insert(r.ts);
        }

        let ip_hash = hash_u128(ip_key(r.src));
        let port_hash = r.dst_port.map(|p| hash_u128(u128::from(p) | (1 << 100)));
        let sketch = self.cfg.sketch;
        let secs = r.ts.div_euclid(MICROS);
        let separate_days = !self.days_from_buckets();
        let day = self.days.entry(secs.div_euclid(86_400)).or_default();
        day.events += 1;
        day.connections += is_conn;
        if separate_days {
            day.ips.insert(ip_hash, &sketch);
            if let Some(h) = port_hash {
                day.ports.insert(h, &sketch);
            }
        }
        let b = self
            .buckets
            .entry(secs.div_euclid(self.cfg.bucket_secs))
            .or_default();
        b.events += 1;
        b.connections += is_conn;
        b.ips.insert(ip_hash, &sketch);
        if let Some(h) = port_hash {
            b.ports.insert(h, &sketch);
        }

        if let Some(data) = r.payload {
            self.payload_events += 1;
            self.search(r, si, data);
        } else if let (Kind::Command, Some(line)) = (r.kind, &r.detail) {
            // Shell and redis command lines carry droppers just as payloads do.
            self.search(r, si, line.as_bytes());
        }
        if self.cfg.sessions {
            self.session_event(r);
        }
    }

    /// When buckets tile days, a day's distinct sets are the union of its
    /// buckets' (built in [`Partial::finish`]), which halves the set
    /// updates per event.
    fn days_from_buckets(&self) -> bool {
        86_400 % self.cfg.bucket_secs == 0
    }

    fn flush_service(&mut self) {
        let (name, n) = std::mem::take(&mut self.last_service);
        if n > 0 {
            match self.services.get_mut(name.as_str()) {
                Some(c) => *c += n,
                None => {
                    self.services.insert(name, n);
                }
            }
        }
    }

    fn search(&mut self, r: &Record<'_>, si: u32, data: &[u8]) {
        let m = Arc::clone(&self.cfg.matchers);
        let tags = m.tags(data);
        let greps = m.greps(data);
        if tags == 0 && greps.is_empty() {
            return;
        }
        for (i, t) in self.tags.iter_mut().enumerate() {
            if tags & (1 << i) != 0 {
                t.events += 1;
                t.sources.insert(si);
            }
        }
        for &g in &greps {
            if let Some(acc) = self.greps.get_mut(g) {
                acc.events += 1;
                acc.sources.insert(si);
            }
        }
        self.hits_total += 1;
        if self.hits_cutoff.is_some_and(|c| r.ts > c) || self.cfg.max_hits == 0 {
            return;
        }
        let at = m.first_match(data, &greps, tags);
        self.hits.push(HitAcc {
            ts: r.ts,
            src: r.src,
            dst_port: r.dst_port,
            service: payload::safe_text(r.service.as_bytes(), 64),
            tags,
            greps,
            len: data.len(),
            excerpt: payload::excerpt(data, at, 200),
        });
        if self.hits.len() >= self.cfg.max_hits * 2 {
            self.trim_hits();
        }
    }

    fn trim_hits(&mut self) {
        self.hits
            .sort_by(|a, b| (a.ts, a.src, &a.excerpt).cmp(&(b.ts, b.src, &b.excerpt)));
        self.hits.truncate(self.cfg.max_hits);
        if self.hits.len() == self.cfg.max_hits {
            self.hits_cutoff = self.hits.last().map(|h| h.ts);
        }
    }

    fn session_event(&mut self, r: &Record<'_>) {
        let key = match r.session {
            Some(s) => payload::safe_text(s.as_bytes(), 64),
            None => format!(
                "{}:{}->{}",
                r.src,
                r.src_port.map_or("?".to_owned(), |p| p.to_string()),
                r.dst_port.map_or("?".to_owned(), |p| p.to_string())
            ),
        };
        let detail = match (&r.detail, r.payload) {
            (Some(d), _) => payload::safe_text(d.as_bytes(), 200),
            (None, Some(p)) => payload::safe_text(p, 200),
            (None, None) => String::new(),
        };
        self.session_events.push(SessionEventAcc {
            ts: r.ts,
            key,
            src: r.src,
            dst_port: r.dst_port,
            service: payload::safe_text(r.service.as_bytes(), 64),
            kind: r.kind,
            detail,
        });
        let cap = self.cfg.max_session_events;
        if self.session_events.len() >= cap.saturating_mul(2).max(16) {
            self.trim_sessions();
        }
    }

    fn trim_sessions(&mut self) {
        self.session_events
            .sort_by(|a, b| (a.ts, &a.key, &a.detail).cmp(&(b.ts, &b.key, &b.detail)));
        self.session_events.truncate(self.cfg.max_session_events);
    }

    /// Union `other` into `self`.
    pub fn merge(&mut self, mut other: Partial) {
        let sketch = self.cfg.sketch;
        self.flush_service();
        other.flush_service();
        self.last_src = None;
        self.last_dst = None;
        let mut remap = Vec::with_capacity(other.sources.len());
        for s in other.sources {
            let next = self.sources.len() as u32;
            let si = *self.source_idx.entry(s.ip).or_insert(next);
            if si == next {
                self.sources.push(s);
            } else if let Some(mine) = self.sources.get_mut(si as usize) {
                mine.events += s.events;
                mine.connections += s.connections;
                mine.first = mine.first.min(s.first);
                mine.last = mine.last.max(s.last);
            }
            remap.push(si);
        }
        let mut dst_remap = vec![0u32; other.dst_idx.len()];
        for (ip, oi) in other.dst_idx {
            let next = self.dst_idx.len() as u32;
            let di = *self.dst_idx.entry(ip).or_insert(next);
            if let Some(slot) = dst_remap.get_mut(oi as usize) {
                *slot = di;
            }
        }
        let rs = |i: u32| remap.get(i as usize).copied().unwrap_or(0);
        for ((s, p), t) in other.pairs {
            self.pairs
                .entry((rs(s), p))
                .and_modify(|x| *x = (*x).min(t))
                .or_insert(t);
        }
        for ((s, d), t) in other.hosts {
            let d = dst_remap.get(d as usize).copied().unwrap_or(0);
            self.hosts
                .entry((rs(s), d))
                .and_modify(|x| *x = (*x).min(t))
                .or_insert(t);
        }
        for (mine, o) in self.ports.iter_mut().zip(other.ports) {
            mine.events += o.events;
            mine.connections += o.connections;
        }
        for (mine, theirs) in [
            (&mut self.days, other.days),
            (&mut self.buckets, other.buckets),
        ] {
            for (k, b) in theirs {
                let m = mine.entry(k).or_default();
                m.events += b.events;
                m.connections += b.connections;
                m.ips.merge(b.ips, &sketch);
                m.ports.merge(b.ports, &sketch);
            }
        }
        for (k, v) in other.kinds {
            *self.kinds.entry(k).or_default() += v;
        }
        for (k, v) in other.services {
            *self.services.entry(k).or_default() += v;
        }
        self.events += other.events;
        self.connections += other.connections;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.payload_events += other.payload_events;
        for (mine, o) in self
            .tags
            .iter_mut()
            .chain(self.greps.iter_mut())
            .zip(other.tags.into_iter().chain(other.greps))
        {
            mine.events += o.events;
            mine.sources.extend(o.sources.into_iter().map(rs));
        }
        self.hits_total += other.hits_total;
        self.hits.extend(other.hits);
        self.trim_hits();
        self.session_events.extend(other.session_events);
        self.trim_sessions();
        for (k, v) in other.inputs {
            let m = self.inputs.entry(k).or_default();
            m.lines += v.lines;
            m.events += v.events;
            m.skipped += v.skipped;
        }
        self.chunk_lines.extend(other.chunk_lines);
        for (k, v) in other.skipped_by_reason {
            *self.skipped_by_reason.entry(k).or_default() += v;
        }
        self.skipped.extend(other.skipped);
        self.skipped.sort_unstable();
        self.skipped.truncate(self.cfg.max_skipped_listed);
    }

    /// Build the report. `names` are the inputs' names, `geo` the open
    /// databases (if any).
    pub fn finish(mut self, names: &[String], geo: Option<&Geo>) -> Report {
        self.flush_service();
        if self.days_from_buckets() {
            let sketch = self.cfg.sketch;
            let size = self.cfg.bucket_secs;
            for (&k, b) in &self.buckets {
                let day = self.days.entry((k * size).div_euclid(86_400)).or_default();
                day.ips.merge(b.ips.clone(), &sketch);
                day.ports.merge(b.ports.clone(), &sketch);
            }
        }
        let cfg = self.cfg.clone();
        let top = cfg.top;
        self.trim_hits();
        self.trim_sessions();

        // Line numbers: prefix sums of lines per chunk, per input.
        self.chunk_lines.sort_unstable();
        let mut offsets: HashMap<(u32, u64), u64> = HashMap::new();
        let mut running: HashMap<u32, u64> = HashMap::new();
        for &(input, seq, lines) in &self.chunk_lines {
            let r = running.entry(input).or_default();
            offsets.insert((input, seq), *r);
            *r += lines;
        }
        let name = |i: u32| names.get(i as usize).cloned().unwrap_or_default();
        let skipped_lines = self
            .skipped
            .iter()
            .map(|&(input, seq, l, reason)| rep::SkippedLine {
                input: name(input),
                line: offsets.get(&(input, seq)).copied().unwrap_or(0) + l + 1,
                reason: reason.describe().to_owned(),
            })
            .collect();
        let mut by_reason: Vec<_> = self
            .skipped_by_reason
            .iter()
            .map(|(r, &n)| rep::NameCount {
                name: r.describe().to_owned(),
                events: n,
            })
            .collect();
        sort_counts(&mut by_reason);

        let inputs: Vec<rep::InputSummary> = (0..names.len() as u32)
            .map(|i| {
                let a = self.inputs.get(&i).copied().unwrap_or_default();
                rep::InputSummary {
                    path: name(i),
                    lines: a.lines,
                    events: a.events,
                    skipped: a.skipped,
                }
            })
            .collect();

        // Per-source and per-port distinct counts from the pairs.
        let mut src_ports = vec![0u64; self.sources.len()];
        let mut port_srcs = vec![0u64; 65_536];
        for &(s, p) in self.pairs.keys() {
            if let Some(c) = src_ports.get_mut(s as usize) {
                *c += 1;
            }
            port_srcs[usize::from(p)] += 1;
        }
        let mut src_hosts = vec![0u64; self.sources.len()];
        for &(s, _) in self.hosts.keys() {
            if let Some(c) = src_hosts.get_mut(s as usize) {
                *c += 1;
            }
        }

        let geo_info: Vec<crate::geo::GeoInfo> = match geo {
            Some(g) => self.sources.iter().map(|s| g.lookup(s.ip)).collect(),
            None => Vec::new(),
        };
        let country_of = |i: usize| -> Option<String> {
            geo_info
                .get(i)
                .and_then(|g| g.country.as_ref())
                .map(|c| c.0.clone())
        };

        let bucket_rows = |map: &HashMap<i64, BucketAcc>, size: i64| {
            let mut keys: Vec<_> = map.keys().copied().collect();
            keys.sort_unstable();
            keys.iter()
                .filter_map(|k| map.get(k).map(|b| (k, b)))
                .map(|(k, b)| {
                    let (ips, e1) = b.ips.count();
                    let (ports, e2) = b.ports.count();
                    rep::Bucket {
                        start: time::fmt_secs(k * size * MICROS),
                        events: b.events,
                        connections: b.connections,
                        distinct_sources: ips,
                        distinct_ports: ports,
                        estimated: e1 || e2,
                    }
                })
                .collect::<Vec<_>>()
        };
        let days = bucket_rows(&self.days, 86_400);
        let buckets = bucket_rows(&self.buckets, cfg.bucket_secs);

        let port_row = |p: usize| rep::PortRow {
            port: p as u16,
            events: self.ports[p].events,
            connections: self.ports[p].connections,
            distinct_sources: port_srcs[p],
        };
        let mut used: Vec<usize> = (0..65_536).filter(|&p| self.ports[p].events > 0).collect();
        used.sort_by(|&a, &b| {
            self.ports[b]
                .events
                .cmp(&self.ports[a].events)
                .then(a.cmp(&b))
        });
        let top_ports = used.iter().take(top).map(|&p| port_row(p)).collect();
        used.sort_by(|&a, &b| port_srcs[b].cmp(&port_srcs[a]).then(a.cmp(&b)));
        let top_ports_by_sources = used.iter().take(top).map(|&p| port_row(p)).collect();

        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.sources[a], &self.sources[b]);
            y.events.cmp(&x.events).then(x.ip.cmp(&y.ip))
        });
        let top_sources = order
            .iter()
            .take(top)
            .map(|&i| {
                let s = &self.sources[i];
                rep::SourceRow {
                    ip: s.ip.to_string(),
                    events: s.events,
                    connections: s.connections,
                    distinct_ports: src_ports[i],
                    first_seen: time::fmt_secs(s.first),
                    last_seen: time::fmt_secs(s.last),
                    country: country_of(i),
                }
            })
            .collect();

        let scans = self.scans(&src_ports, &src_hosts, &country_of);
        let geo_section = self.geo_section(geo, &geo_info, top);

        let mut kinds: Vec<_> = self
            .kinds
            .iter()
            .map(|(k, &n)| rep::NameCount {
                name: k.name().to_owned(),
                events: n,
            })
            .collect();
        sort_counts(&mut kinds);
        let mut services: Vec<_> = self
            .services
            .iter()
            .map(|(k, &n)| rep::NameCount {
                name: payload::safe_text(k.as_bytes(), 64),
                events: n,
            })
            .collect();
        sort_counts(&mut services);

        let payloads = rep::Payloads {
            events_with_payload: self.payload_events,
            tags: TAGS
                .iter()
                .zip(&self.tags)
                .map(|(t, a)| rep::MatchCount {
                    name: t.name.to_owned(),
                    description: t.description.to_owned(),
                    events: a.events,
                    sources: a.sources.len() as u64,
                })
                .collect(),
            grep: cfg
                .matchers
                .grep_patterns
                .iter()
                .zip(&self.greps)
                .map(|(g, a)| rep::MatchCount {
                    name: payload::safe_text(g.as_bytes(), 200),
                    description: String::new(),
                    events: a.events,
                    sources: a.sources.len() as u64,
                })
                .collect(),
            hits_total: self.hits_total,
            hits: self
                .hits
                .iter()
                .map(|h| rep::Hit {
                    ts: time::fmt_micros(h.ts),
                    src: h.src.to_string(),
                    dst_port: h.dst_port,
                    service: h.service.clone(),
                    tags: TAGS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| h.tags & (1 << i) != 0)
                        .map(|(_, t)| t.name.to_owned())
                        .collect(),
                    patterns: h
                        .greps
                        .iter()
                        .filter_map(|&g| cfg.matchers.grep_patterns.get(g))
                        .map(|g| payload::safe_text(g.as_bytes(), 200))
                        .collect(),
                    len: h.len,
                    excerpt: h.excerpt.clone(),
                })
                .collect(),
        };

        let sessions = cfg.sessions.then(|| self.sessions());

        let distinct_ports = self.ports.iter().filter(|p| p.events > 0).count() as u64;
        let skipped_total = self.skipped_by_reason.values().sum();
        Report {
            report_version: 1,
            totals: rep::Totals {
                lines: inputs.iter().map(|i| i.lines).sum(),
                parsed: inputs.iter().map(|i| i.events).sum(),
                events: self.events,
                connections: self.connections,
                skipped: skipped_total,
                distinct_sources: self.sources.len() as u64,
                distinct_ports,
                distinct_destinations: self.dst_idx.len() as u64,
                first: (self.events > 0).then(|| time::fmt_micros(self.first)),
                last: (self.events > 0).then(|| time::fmt_micros(self.last)),
            },
            inputs,
            params: rep::Params {
                bucket_seconds: cfg.bucket_secs,
                top,
                scan_min_ports: cfg.scan_min_ports,
                scan_min_hosts: cfg.scan_min_hosts,
                scan_window_seconds: cfg.scan_window_secs,
                sketch_threshold: cfg.sketch.threshold,
                sketch_precision: cfg.sketch.precision,
                sketch_relative_error: cfg.sketch.relative_error(),
            },
            kinds,
            services,
            days,
            buckets,
            top_ports,
            top_ports_by_sources,
            top_sources,
            scans,
            geo: geo_section,
            payloads,
            sessions,
            skipped: rep::Skipped {
                total: skipped_total,
                by_reason,
                lines: skipped_lines,
            },
        }
    }

    fn scans(
        &self,
        src_ports: &[u64],
        src_hosts: &[u64],
        country_of: &dyn Fn(usize) -> Option<String>,
    ) -> Vec<rep::Scan> {
        let cfg = &self.cfg;
        let window = cfg.scan_window_secs * MICROS;
        let min_ports = cfg.scan_min_ports.max(1) as u64;
        let min_hosts = cfg.scan_min_hosts.max(1) as u64;
        let is_candidate = |s: u32| {
            src_ports.get(s as usize).is_some_and(|&n| n >= min_ports)
                || src_hosts.get(s as usize).is_some_and(|&n| n >= min_hosts)
        };
        let mut port_times: HashMap<u32, Vec<i64>> = HashMap::new();
        for (&(s, _), &t) in &self.pairs {
            if is_candidate(s) {
                port_times.entry(s).or_default().push(t);
            }
        }
        let mut host_times: HashMap<u32, Vec<i64>> = HashMap::new();
        for (&(s, _), &t) in &self.hosts {
            if is_candidate(s) {
                host_times.entry(s).or_default().push(t);
            }
        }
        let mut candidates: Vec<u32> = port_times
            .keys()
            .chain(host_times.keys())
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut scans = Vec::new();
        for s in candidates {
            let pw = port_times.get_mut(&s).map(|v| densest(v, window));
            let hw = host_times.get_mut(&s).map(|v| densest(v, window));
            let (pp, ps, pe) = pw.unwrap_or((0, 0, 0));
            let (hp, hs, he) = hw.unwrap_or((0, 0, 0));
            let vertical = pp >= min_ports;
            let horizontal = hp >= min_hosts;
            let kind = match (vertical, horizontal) {
                (true, true) => "mixed",
                (true, false) => "vertical",
                (false, true) => "horizontal",
                (false, false) => continue,
            };
            let (ws, we) = if vertical { (ps, pe) } else { (hs, he) };
            let Some(src) = self.sources.get(s as usize) else {
                continue;
            };
            scans.push(rep::Scan {
                src: src.ip.to_string(),
                kind: kind.to_owned(),
                distinct_ports: src_ports.get(s as usize).copied().unwrap_or(0),
                distinct_hosts: src_hosts.get(s as usize).copied().unwrap_or(0),
                peak_ports: pp,
                peak_hosts: hp,
                window_start: time::fmt_secs(ws),
                window_end: time::fmt_secs(we),
                first_seen: time::fmt_secs(src.first),
                last_seen: time::fmt_secs(src.last),
                span_seconds: (src.last - src.first) / MICROS,
                events: src.events,
                country: country_of(s as usize),
            });
        }
        scans.sort_by(|a, b| {
            b.peak_ports
                .cmp(&a.peak_ports)
                .then(b.peak_hosts.cmp(&a.peak_hosts))
                .then(a.first_seen.cmp(&b.first_seen))
                .then(a.src.cmp(&b.src))
        });
        scans
    }

    fn geo_section(&self, geo: Option<&Geo>, info: &[crate::geo::GeoInfo], top: usize) -> rep::Geo {
        let Some(g) = geo else {
            return rep::Geo {
                databases: Vec::new(),
                note: Some(
                    "no GeoIP database given: pass --geoip FILE (a MaxMind GeoLite2/GeoIP2 \
                     Country, City or ASN .mmdb) for countries and ASNs"
                        .to_owned(),
                ),
                countries: Vec::new(),
                asns: Vec::new(),
                unknown_events: 0,
                unknown_sources: 0,
            };
        };
        let mut countries: HashMap<String, (String, u64, u64)> = HashMap::new();
        let mut asns: HashMap<u32, (String, u64, u64)> = HashMap::new();
        let (mut unknown_events, mut unknown_sources) = (0, 0);
        for (s, i) in self.sources.iter().zip(info) {
            match &i.country {
                Some((code, name)) => {
                    let e = countries
                        .entry(code.clone())
                        .or_insert_with(|| (name.clone(), 0, 0));
                    e.1 += s.events;
                    e.2 += 1;
                }
                None if i.asn.is_none() => {
                    unknown_events += s.events;
                    unknown_sources += 1;
                }
                None => {}
            }
            if let Some((n, org)) = &i.asn {
                let e = asns.entry(*n).or_insert_with(|| (org.clone(), 0, 0));
                e.1 += s.events;
                e.2 += 1;
            }
        }
        let mut countries: Vec<_> = countries
            .into_iter()
            .map(|(code, (name, events, sources))| rep::CountryRow {
                code: payload::safe_text(code.as_bytes(), 8),
                name: payload::safe_text(name.as_bytes(), 80),
                events,
                sources,
            })
            .collect();
        countries.sort_by(|a, b| b.events.cmp(&a.events).then(a.code.cmp(&b.code)));
        countries.truncate(top.max(1) * 5);
        let mut asns: Vec<_> = asns
            .into_iter()
            .map(|(asn, (org, events, sources))| rep::AsnRow {
                asn,
                org: payload::safe_text(org.as_bytes(), 80),
                events,
                sources,
            })
            .collect();
        asns.sort_by(|a, b| b.events.cmp(&a.events).then(a.asn.cmp(&b.asn)));
        asns.truncate(top.max(1) * 5);
        rep::Geo {
            databases: g.databases(),
            note: None,
            countries,
            asns,
            unknown_events,
            unknown_sources,
        }
    }

    fn sessions(&self) -> Vec<rep::Session> {
        let mut by_key: HashMap<&str, Vec<&SessionEventAcc>> = HashMap::new();
        for e in &self.session_events {
            by_key.entry(e.key.as_str()).or_default().push(e);
        }
        let mut out: Vec<rep::Session> = by_key
            .into_iter()
            .filter_map(|(k, mut evs)| {
                evs.sort_by(|a, b| (a.ts, &a.detail).cmp(&(b.ts, &b.detail)));
                let first = evs.first()?;
                let last = evs.last()?;
                Some(rep::Session {
                    id: k.to_owned(),
                    src: first.src.to_string(),
                    dst_port: first.dst_port,
                    service: first.service.clone(),
                    start: time::fmt_micros(first.ts),
                    end: time::fmt_micros(last.ts),
                    events: evs
                        .iter()
                        .map(|e| rep::SessionEvent {
                            ts: time::fmt_micros(e.ts),
                            kind: e.kind.name().to_owned(),
                            detail: e.detail.clone(),
                        })
                        .collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.start, &a.id).cmp(&(&b.start, &b.id)));
        out
    }
}

/// The most times within any window of `window` µs: (count, first, last).
fn densest(times: &mut [i64], window: i64) -> (u64, i64, i64) {
    times.sort_unstable();
    let mut best = (0u64, 0i64, 0i64);
    let mut lo = 0usize;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        let n = (hi - lo + 1) as u64;
        if n > best.0 {
            best = (n, times[lo], times[hi]);
        }
    }
    best
}

fn sort_counts(v: &mut [rep::NameCount]) {
    v.sort_by(|a, b| b.events.cmp(&a.events).then(a.name.cmp(&b.name)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densest_window() {
        let mut t = vec![50, 0, 10, 20, 100, 105, 110, 115, 119];
        // Window of 20: 100..=119 holds five.
        assert_eq!(densest(&mut t, 20), (5, 100, 119));
        assert_eq!(densest(&mut [], 20), (0, 0, 0));
        assert_eq!(densest(&mut [5], 1), (1, 5, 5));
    }
}
