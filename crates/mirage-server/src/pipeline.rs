//! The pipeline: one task that owns the log parsers and the rule engine.
//!
//! For each batch taken from the receivers' channel it
//! 1. parses syslog headers (garbage is counted, never logged above debug);
//! 2. drops messages whose record id (the agent's `[mirage@32473 id=…]`, or
//!    a sensor event's id) was stored before: agents deliver at least once,
//!    and a re-delivered line must not count twice towards a threshold;
//! 3. turns agent heartbeats into agent rows, other messages into log
//!    records (`mirage-logparse`, chosen by APP-NAME, one parser state per
//!    sending host) and schema events;
//! 4. runs every record and sensor event through the rules;
//! 5. writes ids, events, alerts, decisions and heartbeats in one store
//!    transaction; only then are senders that wait for it answered (ingest
//!    `200`, RELP `rsp 200`).
//!
//! When the write fails (a full disk) the senders that wait are refused at
//! once (they keep their copies and send again; the record ids drop
//! whatever of it gets stored meanwhile), [`StoreHealth`] makes new ones be
//! refused on arrival, and the batch is retried every second until it is
//! written: meanwhile the channel fills and the plain syslog receivers stop
//! reading (back-pressure, not loss). At shutdown the retries stop after a
//! deadline ([`Pipeline::abandon_token`]) and what could not be stored is
//! counted in one line.
//!
//! Once a second it expires decisions, applies decisions operators added
//! or deleted with the CLI (read from the store's change log), reloads the
//! rule file when it changed (pruning is beside it, in [`crate::retention`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mirage_core::Event;
use mirage_logparse::{LogParser, LogRecord, Service};
use mirage_proto::syslog::{self, SyslogMessage};
use mirage_rules::{Alert, Decision, Engine, LogEvent, Observation, Outcome, Severity};
use mirage_store::StoreError;
use mirage_store::{AlertRow, DecisionRow, EventRow, Store, WriteBatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::heartbeat;
use crate::receiver::{Ack, Inbound, Payload, now_micros};
use crate::rules_file::RuleSource;
use crate::sender_budget::SenderBudget;
use crate::stats::ServerStats;
use crate::steer;
use crate::store_health::{StoreHealth, StoreRefusal};

/// Most messages processed (and written) per batch.
const MAX_BATCH: usize = 2048;
/// Most sending hosts with their own parser state.
const MAX_HOSTS: usize = 10_000;
/// Event times further ahead of the server's clock than this are replaced
/// by the receive time: one wrong (or forged, over UDP) timestamp must not
/// push the engine's clock ahead and expire every decision.
const MAX_FUTURE_MICROS: i64 = 300_000_000;
/// SD-ID carrying the agent's record id.
const RECORD_SD_ID: &str = "mirage@32473";

/// What the pipeline did with a batch of ingested sensor events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IngestReceipt {
    /// Events stored now.
    pub accepted: usize,
    /// Events dropped because they were stored before.
    pub duplicates: usize,
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// How often to check the rule file.
    pub reload_every: Duration,
    /// Events per second one syslog sender may add, on average.
    pub sender_rate: u32,
    /// Events one sender may add in a burst.
    pub sender_burst: u32,
}

/// The pipeline state.
pub struct Pipeline {
    store: Arc<dyn Store>,
    engine: Engine,
    rules: RuleSource,
    parsers: HashMap<String, LogParser>,
    stats: Arc<ServerStats>,
    config: PipelineConfig,
    change_cursor: i64,
    records: Vec<LogRecord>,
    outcome: Outcome,
    changes: Option<Arc<tokio::sync::watch::Sender<i64>>>,
    health: Arc<StoreHealth>,
    abandon: CancellationToken,
    budget: SenderBudget,
    last_budget_warning: Option<Instant>,
    /// Messages and events received but never stored (shutdown while the
    /// store could not write).
    unstored: u64,
}

/// Publish `seq` as the newest change-log sequence if it is newer.
pub fn publish_change(tx: &tokio::sync::watch::Sender<i64>, seq: i64) {
    tx.send_if_modified(|v| {
        if seq > *v {
            *v = seq;
            true
        } else {
            false
        }
    });
}

/// One syslog message taken off the channel.
struct SyslogIn {
    peer: SocketAddr,
    received: i64,
    trusted: bool,
    bytes: Vec<u8>,
}

/// One ingest request taken off the channel.
struct EventsIn {
    events: Vec<Event>,
    done: tokio::sync::oneshot::Sender<Result<IngestReceipt, StoreRefusal>>,
}

/// Who waits for a batch's commit.
#[derive(Default)]
struct Waiting {
    acks: Vec<Ack>,
    ingests: Vec<(EventsIn, IngestReceipt)>,
}

impl Waiting {
    fn refuse(&mut self, why: &StoreRefusal) {
        for a in self.acks.drain(..) {
            let _ = a.send(Err(why.clone()));
        }
        for (ing, _) in self.ingests.drain(..) {
            let _ = ing.done.send(Err(why.clone()));
        }
    }

    fn confirm(&mut self) {
        for a in self.acks.drain(..) {
            let _ = a.send(Ok(()));
        }
        for (ing, receipt) in self.ingests.drain(..) {
            let _ = ing.done.send(Ok(receipt));
        }
    }
}

impl Pipeline {
    /// Build the pipeline: load the rules, then the decisions still active
    /// in the store (so renewals and expiry continue across restarts).
    pub async fn new(
        store: Arc<dyn Store>,
        mut rules: RuleSource,
        stats: Arc<ServerStats>,
        config: PipelineConfig,
    ) -> Result<Self, String> {
        let set = rules.load()?;
        let mut engine = Engine::new(set);
        let now = now_micros();
        let active = store
            .list_decisions(Some(now))
            .await
            .map_err(|e| format!("store: {e}"))?;
        for row in &active {
            if let Some(d) = decision_of_row(row) {
                engine.insert_decision(d);
            }
        }
        let change_cursor = store
            .last_change_seq()
            .await
            .map_err(|e| format!("store: {e}"))?;
        let budget = SenderBudget::new(config.sender_rate, config.sender_burst);
        Ok(Pipeline {
            store,
            engine,
            rules,
            parsers: HashMap::new(),
            stats,
            config,
            change_cursor,
            records: Vec::new(),
            outcome: Outcome::default(),
            changes: None,
            health: Arc::new(StoreHealth::default()),
            abandon: CancellationToken::new(),
            budget,
            last_budget_warning: None,
            unstored: 0,
        })
    }

    /// The health the pipeline reports its writes to (shared with the
    /// inputs that acknowledge).
    pub fn health(&self) -> Arc<StoreHealth> {
        self.health.clone()
    }

    /// Cancelled by the server when its shutdown deadline passes: from then
    /// on a batch the store refuses is not retried but counted as unstored.
    pub fn abandon_token(&self) -> CancellationToken {
        self.abandon.clone()
    }

    /// Publish the change-log sequence of every stored decision on `tx`
    /// (the policy API's long polls wait on it).
    pub fn notify_changes(&mut self, tx: Arc<tokio::sync::watch::Sender<i64>>) {
        self.changes = Some(tx);
    }

    /// The rule names running now.
    pub fn rule_names(&self) -> Vec<String> {
        self.engine
            .rule_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Run until every sender of `rx` is gone and the channel is drained.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Inbound>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reload = Instant::now();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        break;
                    }
                    self.process(&mut batch).await;
                }
                _ = tick.tick() => {
                    self.housekeeping(&mut last_reload).await;
                }
            }
        }
        if self.unstored > 0 {
            tracing::warn!(
                "shutdown: {} received messages and events were not stored (the store could not write); senders that wait for acknowledgements keep theirs",
                self.unstored
            );
        }
        tracing::debug!("pipeline: channel closed, stopping");
    }

    async fn housekeeping(&mut self, last_reload: &mut Instant) {
        let now = now_micros();
        self.outcome.clear();
        self.engine.expire(now, &mut self.outcome);
        for d in &self.outcome.expired {
            tracing::info!(
                "decision expired: {} {} ({})",
                d.decision.as_str(),
                d.ip,
                d.rule
            );
        }
        self.apply_operator_changes().await;
        if last_reload.elapsed() >= self.config.reload_every {
            *last_reload = Instant::now();
            if let Some(result) = self.rules.reload_if_changed() {
                match result {
                    Ok(set) => {
                        let n = set.rules().len();
                        self.engine.replace_rules(set);
                        ServerStats::add(&self.stats.rule_reloads, 1);
                        tracing::info!("rules reloaded: {n} rules");
                    }
                    Err(e) => {
                        ServerStats::add(&self.stats.rule_reload_errors, 1);
                        tracing::warn!("rules not reloaded, keeping the running ones: {e}");
                    }
                }
            }
        }
    }

    /// Decisions added or deleted by operators (CLI, API) since the last
    /// look, applied to the engine so it neither re-adds a deleted one early
    /// nor misses a manual one when renewing.
    async fn apply_operator_changes(&mut self) {
        loop {
            let changes = match self.store.decision_changes(self.change_cursor, 1000).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("reading decision changes: {e}");
                    return;
                }
            };
            let Some(last) = changes.last() else { return };
            self.change_cursor = last.seq;
            for c in &changes {
                if c.decision.origin == "engine" {
                    continue;
                }
                let Some(d) = decision_of_row(&c.decision) else {
                    continue;
                };
                if c.op == "delete" {
                    self.engine.remove_decision(d.ip, d.decision);
                    tracing::info!(
                        "decision deleted by {}: {} {}",
                        c.decision.origin,
                        d.decision.as_str(),
                        d.ip
                    );
                } else {
                    let (ip, kind) = (d.ip, d.decision);
                    if self.engine.insert_decision(d) {
                        tracing::info!(
                            "decision added by {}: {} {}",
                            c.decision.origin,
                            kind.as_str(),
                            ip
                        );
                    }
                }
            }
            if changes.len() < 1000 {
                return;
            }
        }
    }

    async fn process(&mut self, batch: &mut Vec<Inbound>) {
        let now = now_micros();
        let mut messages: Vec<SyslogIn> = Vec::with_capacity(batch.len());
        let mut ingests: Vec<EventsIn> = Vec::new();
        let mut waiting = Waiting::default();
        for m in batch.drain(..) {
            match m.payload {
                Payload::Syslog { bytes, ack } => {
                    waiting.acks.extend(ack);
                    messages.push(SyslogIn {
                        peer: m.peer,
                        received: m.received_micros,
                        trusted: m.trusted,
                        bytes,
                    })
                }
                Payload::Events { events, done } => ingests.push(EventsIn { events, done }),
            }
        }
        let unacked = messages.len() - waiting.acks.len();
        // Nothing the senders that wait send is taken while the store
        // cannot write: they keep it and send again.
        if self.health.is_failing() {
            let why = self.health.refusal();
            waiting.refuse(&why);
            for ing in ingests.drain(..) {
                let _ = ing.done.send(Err(why.clone()));
            }
        }

        // Headers and record ids.
        let mut parsed: Vec<(usize, SyslogMessage<'_>)> = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            match syslog::parse(&m.bytes) {
                Ok(msg) => parsed.push((i, msg)),
                Err(e) => {
                    ServerStats::add(&self.stats.malformed, 1);
                    tracing::debug!("syslog: {}: not syslog: {e}", m.peer);
                }
            }
        }
        let mut ids: Vec<String> = Vec::new();
        let mut id_of_msg: Vec<Option<usize>> = Vec::with_capacity(parsed.len());
        for (_, msg) in &parsed {
            id_of_msg.push(record_id(msg).map(|id| {
                ids.push(format!("r:{id}"));
                ids.len() - 1
            }));
        }
        let mut id_of_event: Vec<Vec<usize>> = Vec::with_capacity(ingests.len());
        for ing in &ingests {
            id_of_event.push(
                ing.events
                    .iter()
                    .map(|e| {
                        ids.push(format!("e:{}", e.id));
                        ids.len() - 1
                    })
                    .collect(),
            );
        }
        let Some(known) = self.known_ids(&ids, &mut waiting, &mut ingests).await else {
            self.unstored += (unacked + ingests.len()) as u64;
            return;
        };
        // A duplicate within the batch counts as known after its first use.
        let mut fresh_in_batch: HashSet<&str> = HashSet::new();
        let mut is_dup = |slot: usize| -> bool {
            known.get(slot).copied().unwrap_or(false) || !fresh_in_batch.insert(ids[slot].as_str())
        };

        let mut wb = WriteBatch {
            seen_micros: now,
            ..WriteBatch::default()
        };
        let mut new_ids: Vec<usize> = Vec::new();
        for ((i, msg), slot) in parsed.iter().zip(&id_of_msg) {
            if let Some(slot) = *slot {
                if is_dup(slot) {
                    ServerStats::add(&self.stats.duplicates, 1);
                    continue;
                }
                new_ids.push(slot);
            }
            let m = &messages[*i];
            self.handle_message(m, msg, now, &mut wb);
        }
        let mut receipts: Vec<IngestReceipt> = Vec::with_capacity(ingests.len());
        for (ing, slots) in ingests.iter().zip(&id_of_event) {
            let mut receipt = IngestReceipt {
                accepted: 0,
                duplicates: 0,
            };
            for (ev, &slot) in ing.events.iter().zip(slots) {
                if is_dup(slot) {
                    receipt.duplicates += 1;
                    ServerStats::add(&self.stats.duplicates, 1);
                    continue;
                }
                new_ids.push(slot);
                receipt.accepted += 1;
                self.observe(ev, &mut wb);
                wb.events.push(event_row(ev));
            }
            ServerStats::add(&self.stats.ingested_events, receipt.accepted as u64);
            receipts.push(receipt);
        }
        wb.record_ids = new_ids.into_iter().map(|s| ids[s].clone()).collect();

        waiting.ingests = ingests.into_iter().zip(receipts).collect();
        if self.write(&wb, &mut waiting).await {
            ServerStats::add(&self.stats.events, wb.events.len() as u64);
        } else {
            self.unstored += (unacked + waiting.ingests.len()) as u64;
        }
    }

    /// The store's answer for `ids`; on a failure the waiting senders are
    /// refused and the read retried, until shutdown gives up (`None`).
    async fn known_ids(
        &self,
        ids: &[String],
        waiting: &mut Waiting,
        ingests: &mut Vec<EventsIn>,
    ) -> Option<Vec<bool>> {
        loop {
            match self.store.known_record_ids(ids).await {
                Ok(k) => return Some(k),
                Err(e) => {
                    self.store_failed(&e, waiting);
                    for ing in ingests.drain(..) {
                        let _ = ing.done.send(Err(self.health.refusal()));
                    }
                    if !self.pause().await {
                        return None;
                    }
                }
            }
        }
    }

    fn store_failed(&self, e: &StoreError, waiting: &mut Waiting) {
        self.health.failed(e);
        waiting.refuse(&self.health.refusal());
    }

    /// A second between retries; false once shutdown gave up on the store.
    async fn pause(&self) -> bool {
        tokio::select! {
            _ = self.abandon.cancelled() => false,
            _ = tokio::time::sleep(Duration::from_secs(1)) => true,
        }
    }

    /// Write `wb`, answering `waiting` on the first attempt's outcome, then
    /// retrying a failed write each second. False when it was never written
    /// (shutdown gave up).
    async fn write(&self, wb: &WriteBatch, waiting: &mut Waiting) -> bool {
        loop {
            match self.store.write_batch(wb).await {
                Ok(r) => {
                    self.health.succeeded();
                    if let (Some(tx), Some(&seq)) = (&self.changes, r.change_seqs.last()) {
                        publish_change(tx, seq);
                    }
                    waiting.confirm();
                    return true;
                }
                Err(e) => {
                    self.store_failed(&e, waiting);
                    if self.abandon.is_cancelled() || !self.pause().await {
                        return false;
                    }
                }
            }
        }
    }

    fn handle_message(
        &mut self,
        m: &SyslogIn,
        msg: &SyslogMessage<'_>,
        now: i64,
        wb: &mut WriteBatch,
    ) {
        let mut ts = msg
            .timestamp
            .and_then(|t| t.to_unix_micros(t.resolve_year(m.received), 0))
            .unwrap_or(m.received);
        if ts > now + MAX_FUTURE_MICROS {
            ts = m.received;
        }
        // Agents' own reports change agent rows and events about the
        // firewall: only from senders that may be agents.
        if (heartbeat::is_heartbeat(msg) || steer::is_steer(msg)) && !m.trusted {
            ServerStats::add(&self.stats.untrusted, 1);
            return;
        }
        if heartbeat::is_heartbeat(msg) {
            match heartbeat::parse(msg, ts, m.received, &m.peer.to_string()) {
                Some(row) => {
                    ServerStats::add(&self.stats.heartbeats, 1);
                    wb.agents.push(row);
                }
                None => ServerStats::add(&self.stats.malformed, 1),
            }
            return;
        }
        if steer::is_steer(msg) {
            let time = DateTime::<Utc>::from_timestamp_micros(ts).unwrap_or_else(Utc::now);
            match steer::parse(msg, time) {
                Some(event) => wb.events.push(event_row(&event)),
                None => ServerStats::add(&self.stats.malformed, 1),
            }
            return;
        }
        let Some(service) = msg.app_name.and_then(Service::from_app_name) else {
            ServerStats::add(&self.stats.ignored, 1);
            return;
        };
        let host = match msg.hostname {
            Some(h) => h.to_owned(),
            None => m.peer.ip().to_canonical().to_string(),
        };
        if !self.parsers.contains_key(&host) && self.parsers.len() >= MAX_HOSTS {
            // Forget one host's multi-line state (MySQL threads) to make room.
            if let Some(k) = self.parsers.keys().next().cloned() {
                self.parsers.remove(&k);
            }
        }
        let parser = self.parsers.entry(host.clone()).or_default();
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        if parser.parse(service, msg.message, &mut records) == 0 {
            ServerStats::add(&self.stats.ignored, 1);
        }
        let time = DateTime::<Utc>::from_timestamp_micros(ts).unwrap_or_else(Utc::now);
        if !m.trusted {
            ServerStats::add(&self.stats.untrusted, 1);
        }
        for r in &records {
            if !self.budget.take(m.peer.ip(), now) {
                self.over_budget(m.peer);
                continue;
            }
            let mut event = r.to_event(&host, time);
            if m.trusted {
                let obs = LogEvent::new(r, &host, ts);
                self.observe(&obs, wb);
            } else {
                // Stored for the record; it decides nothing.
                event.tags.push("untrusted".into());
            }
            wb.events.push(event_row(&event));
        }
        self.records = records;
    }

    fn over_budget(&mut self, peer: SocketAddr) {
        ServerStats::add(&self.stats.over_budget, 1);
        if self
            .last_budget_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_budget_warning = Some(Instant::now());
            tracing::warn!(
                "syslog: {} is over its event budget; dropping its events ({} dropped so far from all senders)",
                peer.ip(),
                ServerStats::get(&self.stats.over_budget)
            );
        }
    }

    fn observe(&mut self, obs: &dyn Observation, wb: &mut WriteBatch) {
        self.outcome.clear();
        self.engine.process(obs, &mut self.outcome);
        for a in &self.outcome.alerts {
            ServerStats::add(&self.stats.alerts, 1);
            wb.alerts.push(alert_row(a));
        }
        for d in &self.outcome.decisions {
            ServerStats::add(&self.stats.decisions, 1);
            // The key and reason can hold attacker-chosen text (user names):
            // escape control characters so a log line stays one line.
            tracing::info!(
                "decision {}: {} {} for {}s by {} ({})",
                if d.renewed { "renewed" } else { "new" },
                d.decision.as_str(),
                d.ip,
                d.ttl_secs_at(d.renewed_micros.max(obs.time_micros())),
                d.rule,
                d.reason.escape_debug()
            );
            wb.decisions.push(decision_row(d, "engine"));
        }
    }
}

/// The agent's record id in a message's structured data.
fn record_id<'a>(msg: &'a SyslogMessage<'_>) -> Option<&'a str> {
    msg.structured_data
        .iter()
        .find(|e| e.id == RECORD_SD_ID)?
        .params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v.as_ref())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// The stored row of an event.
pub fn event_row(e: &Event) -> EventRow {
    let origin = if matches!(e.kind, mirage_core::event::EventKind::Steer { .. }) {
        "agent"
    } else if e.tags.iter().any(|t| t == "from_log") {
        "log"
    } else {
        "sensor"
    };
    EventRow {
        id: e.id.to_string(),
        ts_micros: e.ts.timestamp_micros(),
        kind: e.kind.name().to_owned(),
        service: e.service.clone(),
        src_ip: ip_text(e.src_ip),
        host: e.sensor.clone(),
        origin: origin.to_owned(),
        json: e.to_json(),
    }
}

fn alert_row(a: &Alert) -> AlertRow {
    AlertRow {
        ts_micros: a.ts_micros,
        rule: a.rule.clone(),
        severity: a.severity.as_str().to_owned(),
        src_ip: a.ip.map(ip_text),
        key: a.key.clone(),
        evidence: a.evidence,
        reason: a.reason.clone(),
    }
}

/// The stored row of an engine decision.
pub fn decision_row(d: &Decision, origin: &str) -> DecisionRow {
    DecisionRow {
        ip: ip_text(d.ip),
        decision: d.decision.as_str().to_owned(),
        rule: d.rule.clone(),
        severity: d.severity.as_str().to_owned(),
        reason: d.reason.clone(),
        key: d.key.clone(),
        created_micros: d.created_micros,
        renewed_micros: d.renewed_micros,
        expires_micros: d.expires_micros,
        evidence: d.evidence,
        origin: origin.to_owned(),
    }
}

/// The engine decision of a stored row (`None` when a field does not
/// parse, e.g. written by a newer version).
pub fn decision_of_row(r: &DecisionRow) -> Option<Decision> {
    Some(Decision {
        ip: r.ip.parse().ok()?,
        decision: r.decision.parse().ok()?,
        rule: r.rule.clone(),
        severity: r.severity.parse().unwrap_or(Severity::Medium),
        reason: r.reason.clone(),
        key: r.key.clone(),
        created_micros: r.created_micros,
        renewed_micros: r.renewed_micros,
        expires_micros: r.expires_micros,
        evidence: r.evidence,
        renewed: false,
    })
}
