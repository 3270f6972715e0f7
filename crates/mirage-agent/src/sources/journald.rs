//! The journald source: follows the systemd journal through
//! `journalctl -o json -f`, one [`Record`] per entry.
//!
//! journalctl is the journal's stable interface (the file format is not),
//! and running it keeps the agent free of libsystemd. It is started as
//!
//! ```text
//! journalctl -o json -f --merge --no-pager --all
//!            [--after-cursor CURSOR | -n 0 | --no-tail | --since @T]
//!            [JOURNALCTL_ARGS…] [_SYSTEMD_UNIT=U + … + FIELD=VALUE + …]
//! ```
//!
//! Units become `_SYSTEMD_UNIT=` matches (`.service` added to a bare name)
//! and every match is joined with `+`, so an entry of any listed unit or
//! matching any expression is shipped (journalctl's own `-u` would AND
//! with the expressions instead). `--all` keeps fields over 4 KiB, which
//! journalctl otherwise prints as `null`. `--merge` is there because
//! `-f` alone implies `-b 0` (systemd 252 and later): after a reboot,
//! the entries between the saved cursor and the agent's start (the end of
//! the last boot, the start of this one, sshd included) would be skipped.
//! As a side effect, journals that systemd-journal-remote stores on this
//! host are read too; the units and matches still select what is shipped.
//!
//! # Mapping
//! `MESSAGE` (a string, or an array of bytes when it is not UTF-8) is the
//! message, cut at `max_line_bytes`; `SYSLOG_IDENTIFIER` (else `_COMM`, else
//! the service's name) the program; `_PID` (else `SYSLOG_PID`) the procid;
//! `_HOSTNAME` the host; `__REALTIME_TIMESTAMP` the time; `PRIORITY` and
//! `SYSLOG_FACILITY` the severity and facility. An entry whose JSON is
//! longer than `8 × max_line_bytes + 16 KiB` (binary messages take four
//! bytes of JSON per byte) is skipped and counted.
//!
//! # Ids and delivery
//! A record's id is a hash of the entry's `__CURSOR`, which names the entry
//! in its journal: an entry read again has the same id. The cursor of the
//! last pushed entry is saved to `<state_dir>/<name>.journald.cursor` (about
//! once a second, after the queue was synced, and at shutdown) and passed
//! as `--after-cursor` on the next start, so a crash repeats entries and
//! never skips them. Without a cursor, the first start begins at the end
//! (`-n 0`) or the start (`--no-tail`) per `read_from`, and saves its start
//! time (`@SECS.MICROS`) in place of a cursor: a restart before any entry arrived
//! resumes from that time (`--since`), so nothing logged while the agent was
//! down is skipped by a second "end".
//!
//! If journalctl exits, it is restarted with a backoff doubling from 0.1 s
//! to `retry_max_secs`; its last line of standard error is the health
//! detail.

use std::io;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::lines::CappedLines;
use super::{BACKOFF_MIN, SourceContext, back_off, stable_id, write_atomic};
use crate::output::Record;
use mirage_config::agent::StartAt;

/// How often the cursor is saved while entries flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Most entries pushed in one batch.
const BATCH: usize = 512;
/// Longest line of journalctl's standard error kept for the health detail.
const MAX_STDERR_LINE: usize = 512;
/// How long journalctl must stay up before the source reports healthy.
const SETTLE: Duration = Duration::from_secs(1);
/// A journalctl that ran this long is considered to have worked: the next
/// restart starts again from the shortest wait.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// The fields the agent uses; the rest of the entry is ignored.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "__CURSOR")]
    cursor: Option<String>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Value>,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Value>,
    #[serde(rename = "_COMM")]
    comm: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<Value>,
    #[serde(rename = "_HOSTNAME")]
    hostname: Option<Value>,
    #[serde(rename = "PRIORITY")]
    priority: Option<Value>,
    #[serde(rename = "SYSLOG_FACILITY")]
    facility: Option<Value>,
}

/// A journal field's bytes: a string, an array of byte values (binary
/// data), or for a field present several times, the first value.
fn field_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Array(a) if a.iter().all(Value::is_u64) => a
            .iter()
            .map(|n| n.as_u64().and_then(|n| u8::try_from(n).ok()))
            .collect(),
        Value::Array(a) => a.first().and_then(field_bytes),
        _ => None,
    }
}

/// A short text field (program name, pid, host), only if it is text.
fn field_text(v: Option<&Value>) -> Option<String> {
    let b = field_bytes(v?)?;
    let s = String::from_utf8(b).ok()?;
    (!s.is_empty()).then_some(s)
}

fn field_number(v: Option<&Value>) -> Option<u64> {
    field_text(v)?.trim().parse().ok()
}

/// Follows the journal until `cancel` fires.
pub async fn run(ctx: &SourceContext, cancel: &CancellationToken) {
    let mut state = State {
        cursor_path: ctx.state_file("journald.cursor"),
        cursor: None,
        saved: None,
        first_start: None,
        problem: None,
    };
    let saved = match std::fs::read_to_string(&state.cursor_path) {
        Ok(c) => Some(c.trim().to_owned()).filter(|c| !c.is_empty()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            ctx.health.set(
                false,
                format!("cannot read {}: {e}", state.cursor_path.display()),
            );
            None
        }
    };
    // `@SECS.MICROS` is the time of a first start that has seen no entry.
    match saved.as_deref().map(|s| s.strip_prefix('@')) {
        Some(Some(t)) => state.first_start = parse_since(t),
        Some(None) => state.cursor = saved.clone(),
        None => {}
    }
    state.saved = saved;
    let max_backoff = Duration::from_secs(ctx.config.retry_max_secs());
    let mut backoff = BACKOFF_MIN;
    while !cancel.is_cancelled() {
        let started = Instant::now();
        let outcome = follow(ctx, &mut state, cancel).await;
        save_cursor(ctx, &mut state).await;
        match outcome {
            Outcome::Cancelled => break,
            Outcome::Ended(detail) => {
                ctx.health.set(false, detail);
                if started.elapsed() >= STABLE_RUN {
                    backoff = BACKOFF_MIN;
                }
                if !back_off(&mut backoff, max_backoff, cancel).await {
                    break;
                }
            }
        }
    }
}

#[derive(Debug)]
struct State {
    cursor_path: std::path::PathBuf,
    /// Cursor of the last entry pushed to the queue.
    cursor: Option<String>,
    /// The cursor last written to disk.
    saved: Option<String>,
    /// When journalctl was first started (Unix microseconds), for a restart
    /// that has no cursor yet.
    first_start: Option<i64>,
    /// Why the cursor could not be saved, until it can: the health says so
    /// instead of flapping with every batch.
    problem: Option<String>,
}

enum Outcome {
    Cancelled,
    /// journalctl ended or could not start; the detail says why.
    Ended(String),
}

fn command(ctx: &SourceContext, state: &mut State) -> Command {
    let cfg = &ctx.config;
    let mut cmd = Command::new(cfg.journalctl());
    cmd.args(["-o", "json", "-f", "--merge", "--no-pager", "--all"]);
    match (&state.cursor, state.first_start) {
        (Some(c), _) => {
            cmd.arg("--after-cursor").arg(c);
        }
        (None, Some(t)) => {
            cmd.arg("--since").arg(since_arg(t));
        }
        (None, None) => {
            state.first_start = Some(Utc::now().timestamp_micros());
            match cfg.read_from() {
                StartAt::End => cmd.args(["-n", "0"]),
                StartAt::Start => cmd.arg("--no-tail"),
            };
        }
    }
    cmd.args(cfg.journalctl_args());
    let mut terms: Vec<String> = cfg
        .units()
        .iter()
        .map(|u| {
            if u.contains('.') {
                format!("_SYSTEMD_UNIT={u}")
            } else {
                format!("_SYSTEMD_UNIT={u}.service")
            }
        })
        .collect();
    terms.extend(cfg.matches().iter().cloned());
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            cmd.arg("+");
        }
        cmd.arg(t);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs one journalctl until it ends or `cancel` fires.
async fn follow(ctx: &SourceContext, state: &mut State, cancel: &CancellationToken) -> Outcome {
    let program = ctx.config.journalctl().display().to_string();
    let mut child = match command(ctx, state).spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Ended(format!("cannot run {program}: {e}")),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Outcome::Ended(format!("{program}: no output pipes"));
    };
    let stderr_task = tokio::spawn(last_line(stderr));
    let mut out = BufReader::with_capacity(64 * 1024, stdout);
    let max_json = ctx.config.max_line_bytes.saturating_mul(8) + 16 * 1024;
    let mut lines = CappedLines::new(max_json);
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut skipped = 0u64;
    let following = describe(ctx);
    // Healthy once journalctl has stayed up past its start-up checks (or
    // delivered an entry): one that exits at once (no journal files, a bad
    // argument) must not flap the health, and its log line, on every retry.
    let spawned = Instant::now();
    let end = loop {
        tokio::select! {
            _ = cancel.cancelled() => break None,
            _ = tick.tick() => {
                save_cursor(ctx, state).await;
                if spawned.elapsed() >= SETTLE {
                    report(ctx, state, &following, skipped);
                }
            }
            line = lines.next(&mut out) => {
                let first = match line {
                    Ok(Some(l)) => l,
                    Ok(None) => break Some(String::new()),
                    Err(e) => break Some(format!("reading its output: {e}")),
                };
                // Take whatever else is already buffered, so a burst is
                // pushed in a few batches rather than one entry at a time.
                let mut batch = vec![first];
                while batch.len() < BATCH && out.buffer().contains(&b'\n') {
                    match lines.next(&mut out).await {
                        Ok(Some(l)) => batch.push(l),
                        _ => break,
                    }
                }
                let mut records = Vec::with_capacity(batch.len());
                let mut cursors = Vec::with_capacity(batch.len());
                for (json, truncated) in batch {
                    match (!truncated).then(|| entry_record(ctx, &json)).flatten() {
                        Some((r, c)) => {
                            records.push(r);
                            cursors.push(c);
                        }
                        None => skipped += 1,
                    }
                }
                let n = records.len();
                let pushed = ctx.push(records, cancel).await;
                if pushed > 0 {
                    state.cursor = Some(cursors.swap_remove(pushed - 1));
                }
                if pushed < n {
                    break None;
                }
                report(ctx, state, &following, skipped);
            }
        }
    };
    let Some(reason) = end else {
        stop(&mut child).await;
        return Outcome::Cancelled;
    };
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s.to_string(),
        _ => {
            stop(&mut child).await;
            "killed".to_owned()
        }
    };
    let err_line = stderr_task.await.unwrap_or_default();
    if err_line.contains("cursor") && state.cursor.is_some() {
        // A cursor journalctl cannot parse (a damaged state file) would fail
        // every restart: drop it and start as on a first run.
        tracing::warn!(source = %ctx.config.name, "journalctl refused the saved cursor; starting without it");
        state.cursor = None;
    }
    let mut detail = format!("{program} exited ({status})");
    for part in [reason, err_line] {
        if !part.is_empty() {
            detail.push_str(": ");
            detail.push_str(&part);
        }
    }
    Outcome::Ended(detail)
}

/// `@SECS.MICROS`, journalctl's form of an exact time.
fn since_arg(micros: i64) -> String {
    format!(
        "@{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

/// The microseconds of a saved `SECS.MICROS` (after its `@`).
fn parse_since(text: &str) -> Option<i64> {
    let (secs, micros) = text.split_once('.')?;
    if micros.len() != 6 || !micros.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    secs.parse::<i64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros.parse().ok()?)
}

/// Sets the health of a running journalctl.
fn report(ctx: &SourceContext, state: &State, following: &str, skipped: u64) {
    if let Some(p) = &state.problem {
        ctx.health.set(false, p.as_str());
    } else if skipped > 0 {
        ctx.health.set(
            true,
            format!("{following}; {skipped} oversized or unreadable entries skipped"),
        );
    } else {
        ctx.health.set(true, following);
    }
}

async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

/// What the source follows, for the health detail.
fn describe(ctx: &SourceContext) -> String {
    let cfg = &ctx.config;
    let mut what: Vec<String> = cfg.units().to_vec();
    what.extend(cfg.matches().iter().cloned());
    if what.is_empty() {
        "following the journal".to_owned()
    } else {
        format!("following the journal ({})", what.join(", "))
    }
}

/// The last non-empty line of a child's standard error, capped.
async fn last_line(stderr: impl AsyncRead + Unpin) -> String {
    let mut r = BufReader::new(stderr);
    let mut lines = CappedLines::new(MAX_STDERR_LINE);
    let mut last = String::new();
    while let Ok(Some((l, _))) = lines.next(&mut r).await {
        let l = String::from_utf8_lossy(&l).trim().to_owned();
        if !l.is_empty() {
            last = l;
        }
    }
    last
}

/// Saves the cursor if it moved, after syncing the queue. Before the first
/// entry, the time of the first start is saved instead (`@SECS.MICROS`), so that a
/// restart resumes from it rather than from its own "end" (which would skip
/// what was logged while the agent was down).
async fn save_cursor(ctx: &SourceContext, state: &mut State) {
    let cursor = match (&state.cursor, state.first_start) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => since_arg(t),
        (None, None) => return,
    };
    if state.saved.as_ref() == Some(&cursor) {
        return;
    }
    if let Err(e) = ctx.sync_queue().await {
        state.problem = Some(format!("cannot sync the queue (retrying): {e}"));
        return;
    }
    let path = state.cursor_path.clone();
    let bytes = format!("{cursor}\n");
    let r = tokio::task::spawn_blocking(move || write_atomic(&path, bytes.as_bytes())).await;
    match r {
        Ok(Ok(())) => {
            state.saved = Some(cursor);
            state.problem = None;
        }
        Ok(Err(e)) => {
            state.problem = Some(format!(
                "cannot write {} (retrying): {e}",
                state.cursor_path.display()
            ))
        }
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The record of one JSON entry and its cursor; `None` for a line that is
/// not an entry with a cursor.
fn entry_record(ctx: &SourceContext, json: &[u8]) -> Option<(Record, String)> {
    let e: Entry = serde_json::from_slice(json).ok()?;
    let cursor = e.cursor?;
    let mut message = e.message.as_ref().and_then(field_bytes).unwrap_or_default();
    message.truncate(ctx.config.max_line_bytes);
    let mut r = ctx.record(stable_id(&[b"journald", cursor.as_bytes()]), message);
    if let Some(app) = field_text(e.identifier.as_ref()).or_else(|| field_text(e.comm.as_ref())) {
        r.app_name = app;
    }
    r.procid = field_text(e.pid.as_ref()).or_else(|| field_text(e.syslog_pid.as_ref()));
    if let Some(h) = field_text(e.hostname.as_ref()) {
        r.hostname = h;
    }
    if let Some(t) = field_number(e.realtime.as_ref())
        .and_then(|us| i64::try_from(us).ok())
        .and_then(DateTime::<Utc>::from_timestamp_micros)
    {
        r.timestamp = t;
    }
    if let Some(p) = field_number(e.priority.as_ref()).filter(|p| *p <= 7) {
        r.severity = p as u8;
    }
    if let Some(f) = field_number(e.facility.as_ref()).filter(|f| *f <= 23) {
        r.facility = f as u8;
    }
    Some((r, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{DiskQueue, QueueConfig, QueueHandle};
    use crate::sources::Health;
    use mirage_config::agent::{SourceConfig, SourceKind, SourceService};

    fn ctx(dir: &std::path::Path) -> SourceContext {
        let mut config = SourceConfig::new("j", SourceKind::Journald, SourceService::Ssh);
        config.max_line_bytes = 64;
        config.units = Some(vec!["ssh".into()]);
        config.matches = Some(vec!["SYSLOG_IDENTIFIER=sshd".into()]);
        SourceContext {
            config,
            agent_id: "a".into(),
            hostname: "agent-host".into(),
            queue: QueueHandle::new(
                DiskQueue::open(dir.join("q"), QueueConfig::default()).unwrap(),
                65536,
            ),
            state_dir: dir.to_owned(),
            health: Health::new("j"),
        }
    }

    #[test]
    fn entries_map_to_records() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let (r, cursor) = entry_record(
            &c,
            br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795272563148202","MESSAGE":[98,105,110,255],"SYSLOG_IDENTIFIER":"sshd","_PID":"4242","_HOSTNAME":"vm1","PRIORITY":"4","SYSLOG_FACILITY":"10"}"#,
        )
        .unwrap();
        assert_eq!(cursor, "s=1;i=2");
        assert_eq!(r.message, b"bin\xff");
        assert_eq!(r.app_name, "sshd");
        assert_eq!(r.procid.as_deref(), Some("4242"));
        assert_eq!(r.hostname, "vm1");
        assert_eq!(r.timestamp.timestamp_micros(), 1_795_272_563_148_202);
        assert_eq!((r.facility, r.severity), (10, 4));
        assert_eq!(r.id, stable_id(&[b"journald", b"s=1;i=2"]));
        // Defaults, a multi-valued field, a long message cut.
        let (r, _) = entry_record(
            &c,
            format!(
                r#"{{"__CURSOR":"c","MESSAGE":["{}","second"],"_COMM":"sshd-session"}}"#,
                "x".repeat(100)
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.message.len(), 64);
        assert_eq!(r.app_name, "sshd-session");
        assert_eq!(r.hostname, "agent-host");
        assert!(entry_record(&c, b"{\"MESSAGE\":\"no cursor\"}").is_none());
        assert!(entry_record(&c, b"garbage").is_none());
    }

    #[test]
    fn matches_are_ored_with_units() {
        let dir = tempfile::tempdir().unwrap();
        let c = ctx(dir.path());
        let mut state = State {
            cursor_path: dir.path().join("c"),
            cursor: None,
            saved: None,
            first_start: None,
            problem: None,
        };
        let cmd = command(&c, &mut state);
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-o",
                "json",
                "-f",
                "--merge",
                "--no-pager",
                "--all",
                "-n",
                "0",
                "_SYSTEMD_UNIT=ssh.service",
                "+",
                "SYSLOG_IDENTIFIER=sshd"
            ]
        );
        // A restart before any entry resumes from the first start's time.
        let cmd = command(&c, &mut state);
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let since = &args[args.iter().position(|a| a == "--since").unwrap() + 1];
        assert_eq!(
            parse_since(&since[1..]),
            state.first_start,
            "{since} round-trips"
        );
        state.cursor = Some("s=1".into());
        let cmd = command(&c, &mut state);
        assert!(cmd.as_std().get_args().any(|a| a == "--after-cursor"));
    }
}
