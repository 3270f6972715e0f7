//! The nftables backend: applies snapshots and deltas to the kernel with
//! one `nft -f -` process per transaction, keeps what it applied in memory
//! so a delta becomes a small element batch, and removes the table on a
//! clean exit.
//!
//! Every transaction is atomic in the kernel: a refused batch changes
//! nothing, so the backend's memory is updated only after nft succeeded.
//! When a delta is refused (someone deleted the table, say), the backend
//! re-applies its whole state once (a full snapshot from memory) before
//! giving up.

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::io::Write as _;
use std::process::Command;
use std::sync::mpsc;

use super::guard::Guard;
use super::policy::{Cidr, Delta, Policy, PolicyError};
use super::render;
use super::state::{DeltaPlan, Enforcement};

/// How the backend runs.
#[derive(Debug, Clone)]
pub struct NftConfig {
    /// Table name (`table inet <name>`); must start with `mirage` (see
    /// [`render::valid_table_name`]). Default `mirage`.
    pub table: String,
    /// The argv that runs nft, before `-f -`. Default `["nft"]`; tests use
    /// `["ip", "netns", "exec", NS, "nft"]`.
    pub nft: Vec<OsString>,
    /// The argv that runs conntrack, before `-D -s IP`; `None` (the
    /// default) leaves existing connections alone. With it, a source newly
    /// put into a set loses its tracked connections, so an attacker already
    /// connected to the real service is cut off (its next packet is NATed
    /// as a new connection, to the honeypot, which resets it).
    pub conntrack: Option<Vec<OsString>>,
    /// At most this many sources get their conntrack entries flushed per
    /// transaction (one process each, a few ms apiece); the rest keep their
    /// established connections. Default 64.
    pub conntrack_max: usize,
    /// Sources always whitelisted, whatever the policy says: the server's
    /// address, the operators' management network. Decisions on them (and
    /// on the policy's whitelist, and on non-unicast addresses) are not
    /// even put in the sets ([`super::guard`]).
    pub protect: Vec<Cidr>,
    /// Longest decision enforced, seconds from now; longer ones are cut.
    /// Default 7 days.
    pub max_ttl_secs: i64,
    /// How long one nft (or conntrack) run may take before it is killed.
    /// Default 30 s.
    pub timeout: Duration,
}

impl Default for NftConfig {
    fn default() -> Self {
        NftConfig {
            table: "mirage".into(),
            nft: vec!["nft".into()],
            conntrack: None,
            conntrack_max: 64,
            protect: Vec::new(),
            max_ttl_secs: super::guard::DEFAULT_MAX_TTL_SECS,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why enforcement could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// The policy's static part is unusable; nothing was changed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The configured table name is not allowed.
    #[error(
        "table name {0:?}: must be `mirage` followed by letters, digits or `_` (32 bytes at most)"
    )]
    TableName(String),
    /// A delta arrived before any snapshot: the agent must fetch one.
    #[error("a delta needs a snapshot first")]
    NoSnapshot,
    /// nft (or conntrack) could not be started or did not finish in time.
    #[error("{program}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// What went wrong.
        message: String,
    },
    /// nft refused the transaction; the kernel is unchanged.
    #[error("nft refused the transaction ({status}): {stderr}")]
    Refused {
        /// Exit status.
        status: String,
        /// What nft said (its first lines).
        stderr: String,
    },
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Version now enforced.
    pub version: u64,
    /// `false` when a delta was older than what is enforced and ignored.
    pub applied: bool,
    /// Whether the whole table was (re)created rather than only elements
    /// changed.
    pub full: bool,
    /// Set elements written (added or replaced).
    pub elements_put: usize,
    /// Set elements removed.
    pub elements_removed: usize,
    /// Sources whose conntrack entries were flushed.
    pub conntrack_flushed: usize,
    /// Wall time from the call to the kernel's commit (conntrack flushing
    /// excluded).
    pub commit_time: Duration,
}

/// The nftables backend. One owner applies snapshots and deltas in order.
///
/// Calls block while nft runs (a few milliseconds for a delta, about half a
/// second for 100,000 elements); from async code, call them through
/// `tokio::task::block_in_place` or `spawn_blocking`.
#[derive(Debug)]
pub struct Nft {
    config: NftConfig,
    state: Option<Enforcement>,
    /// The table definition last committed, when the kernel is known to
    /// hold it; `None` forces the next snapshot to recreate the table.
    applied_skeleton: Option<String>,
}

/// One line for what the guard dropped (attacker-chosen input cannot make
/// more than one per transaction).
fn report_filtered(f: super::guard::Filtered) {
    if f.dropped() > 0 {
        tracing::warn!(
            protected = f.protected,
            not_unicast = f.not_unicast,
            example = ?f.example,
            "refused decisions on protected or non-unicast addresses (own, gateway, servers, management session, whitelist)"
        );
    }
    if f.clamped > 0 {
        tracing::info!(
            clamped = f.clamped,
            "decisions longer than the cap were cut to it"
        );
    }
}

impl Nft {
    /// The policy without the decisions the guard refuses.
    fn guarded(&self, policy: &Policy, now_ms: i64) -> Policy {
        let mut p = policy.clone();
        let guard = Guard::new(
            &self.config.protect,
            &policy.whitelist.sources,
            self.config.max_ttl_secs,
        );
        report_filtered(guard.filter(&mut p.decisions, now_ms / 1000));
        p
    }

    /// A backend; nothing touches the kernel until the first apply.
    pub fn new(config: NftConfig) -> Result<Nft, FirewallError> {
        if !render::valid_table_name(&config.table) {
            return Err(FirewallError::TableName(config.table));
        }
        Ok(Nft {
            config,
            state: None,
            applied_skeleton: None,
        })
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.config.table
    }

    /// A lister of the connections this table steered, usable while this
    /// backend is busy applying.
    pub fn hit_lister(&self) -> super::hits::HitLister {
        super::hits::HitLister {
            nft: self.config.nft.clone(),
            table: self.config.table.clone(),
            timeout: self.config.timeout,
        }
    }

    /// Version of what is enforced, `None` before the first snapshot.
    pub fn version(&self) -> Option<u64> {
        self.state.as_ref().map(Enforcement::version)
    }

    /// The transaction a snapshot would run (the full form: the table
    /// recreated), for `--dry-run`. Pure: no process, no kernel.
    pub fn render(&self, policy: &Policy, now: SystemTime) -> Result<String, FirewallError> {
        let now_ms = unix_ms(now);
        let policy = self.guarded(policy, now_ms);
        let state = Enforcement::from_policy(&policy, &self.config.protect, now_ms)?;
        Ok(render::full(&self.config.table, &state, now_ms))
    }

    /// Makes the kernel enforce exactly `policy` (one atomic transaction).
    /// When the table already has this policy's layout (mode, whitelist,
    /// services), only the decision sets are emptied and refilled; else the
    /// table is recreated. Re-applying the same snapshot is harmless.
    pub fn apply_snapshot(&mut self, policy: &Policy) -> Result<ApplyReport, FirewallError> {
        let start = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        let policy = &self.guarded(policy, now_ms);
        let state = Enforcement::from_policy(policy, &self.config.protect, now_ms)?;
        let skeleton = render::skeleton(&self.config.table, state.layout());
        let elements = state.elements(now_ms).len();
        let same_layout = self.applied_skeleton.as_deref() == Some(skeleton.as_str());
        let mut full = !same_layout;
        let result = if same_layout {
            match self.run_nft(&render::refill(&self.config.table, &state, now_ms)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // The table may have been changed behind our back:
                    // rebuild it whole.
                    tracing::warn!(error = %e, "refilling the decision sets failed; recreating the table");
                    full = true;
                    self.run_nft(&render::full(&self.config.table, &state, now_ms))
                }
            }
        } else {
            self.run_nft(&render::full(&self.config.table, &state, now_ms))
        };
        if let Err(e) = result {
            // Whatever the kernel holds now (unchanged, or unknown if nft
            // was killed mid-way), the next snapshot rebuilds the table.
            self.applied_skeleton = None;
            return Err(e);
        }
        let commit_time = start.elapsed();
        let newly: Vec<IpAddr> = match &self.state {
            Some(old) if self.config.conntrack.is_some() => {
                let before = old.elements(now_ms);
                let mut v: Vec<IpAddr> = state
                    .elements(now_ms)
                    .into_keys()
                    .filter(|k| !before.contains_key(k))
                    .map(|(_, ip)| ip)
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            // After a restart every connection predates us; flushing them
            // all could cut thousands. Left alone (documented).
            _ => Vec::new(),
        };
        self.state = Some(state);
        self.applied_skeleton = Some(skeleton);
        let conntrack_flushed = self.flush_conntrack(&newly);
        tracing::info!(
            version = policy.version,
            mode = %policy.mode,
            elements,
            full,
            commit_ms = commit_time.as_millis() as u64,
            "firewall snapshot applied"
        );
        Ok(ApplyReport {
            version: policy.version,
            applied: true,
            full,
            elements_put: elements,
            elements_removed: 0,
            conntrack_flushed,
            commit_time,
        })
    }

    /// Applies a delta as one element batch. A delta whose version is not
    /// newer than what is enforced is ignored (redelivery after a
    /// reconnect).
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<ApplyReport, FirewallError> {
        let start = Instant::now();
        let now_ms = unix_ms(SystemTime::now());
        let (version, plan) = {
            let state = self.state.as_mut().ok_or(FirewallError::NoSnapshot)?;
            let version = state.version();
            if delta.version <= version {
                return Ok(ApplyReport {
                    version,
                    applied: false,
                    full: false,
                    elements_put: 0,
                    elements_removed: 0,
                    conntrack_flushed: 0,
                    commit_time: start.elapsed(),
                });
            }
            state.prune(now_ms);
            let mut delta = delta.clone();
            let guard = Guard::new(
                &self.config.protect,
                &state.layout().whitelist(),
                self.config.max_ttl_secs,
            );
            report_filtered(guard.filter(&mut delta.new, now_ms / 1000));
            (version, state.plan(&delta, now_ms))
        };
        let (put, removed) = count(&plan);
        let mut full = false;
        if !plan.ops.is_empty() {
            let text = render::ops(&self.config.table, &plan.ops, now_ms);
            if let Err(e) = self.run_nft(&text) {
                tracing::warn!(error = %e, "element batch refused; recreating the table from memory");
                full = true;
                self.recreate_with(&plan, version, now_ms)?;
            }
        }
        let commit_time = start.elapsed();
        if let Some(state) = self.state.as_mut().filter(|_| !full) {
            // (After a rebuild the plan is already in.)
            state.commit(&plan);
        }
        let conntrack_flushed = self.flush_conntrack(&plan.newly_enforced());
        tracing::debug!(
            version = delta.version,
            put,
            removed,
            commit_us = commit_time.as_micros() as u64,
            "firewall delta applied"
        );
        Ok(ApplyReport {
            version: delta.version,
            applied: true,
            full,
            elements_put: put,
            elements_removed: removed,
            conntrack_flushed,
            commit_time,
        })
    }

    /// Recreates the table from memory with `plan` taken in; on failure the
    /// memory is as before and the error is returned.
    fn recreate_with(
        &mut self,
        plan: &DeltaPlan,
        version: u64,
        now_ms: i64,
    ) -> Result<(), FirewallError> {
        let text = {
            let Some(state) = self.state.as_mut() else {
                return Err(FirewallError::NoSnapshot);
            };
            state.commit(plan);
            render::full(&self.config.table, state, now_ms)
        };
        match self.run_nft(&text) {
            Ok(()) => {
                if let Some(state) = &self.state {
                    self.applied_skeleton =
                        Some(render::skeleton(&self.config.table, state.layout()));
                }
                Ok(())
            }
            Err(e) => {
                if let Some(state) = self.state.as_mut() {
                    state.revert(plan, version);
                }
                self.applied_skeleton = None;
                Err(e)
            }
        }
    }

    /// Removes the table (and everything it enforces). Succeeds when there
    /// is no table. The backend forgets its state: the next apply must be a
    /// snapshot.
    pub fn remove(&mut self) -> Result<(), FirewallError> {
        self.run_nft(&render::remove(&self.config.table))?;
        self.state = None;
        self.applied_skeleton = None;
        Ok(())
    }

    /// The live table as nft lists it (`nft list table inet NAME`).
    pub fn show(&self) -> Result<String, FirewallError> {
        let mut args = self.config.nft.clone();
        args.extend(["list", "table", "inet"].map(OsString::from));
        args.push(self.config.table.clone().into());
        let out = run(&args, None, self.config.timeout)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(refused(&out))
        }
    }

    fn run_nft(&self, text: &str) -> Result<(), FirewallError> {
        let mut args = self.config.nft.clone();
        args.extend(["-f", "-"].map(OsString::from));
        let out = run(&args, Some(text.as_bytes()), self.config.timeout)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(refused(&out))
        }
    }

    /// `conntrack -D -s IP` for each source (at most `conntrack_max`);
    /// returns how many were flushed. Failures are logged, not returned:
    /// the decision is enforced for new connections either way.
    fn flush_conntrack(&self, ips: &[IpAddr]) -> usize {
        let Some(base) = &self.config.conntrack else {
            return 0;
        };
        if ips.len() > self.config.conntrack_max {
            tracing::info!(
                sources = ips.len(),
                max = self.config.conntrack_max,
                "too many new sources to flush conntrack for all; the rest keep established connections"
            );
        }
        let mut flushed = 0;
        for ip in ips.iter().take(self.config.conntrack_max) {
            let mut args = base.clone();
            args.extend(["-D", "-s"].map(OsString::from));
            args.push(ip.to_string().into());
            match run(&args, None, self.config.timeout) {
                // conntrack exits 1 when nothing matched; its stderr then
                // says "0 flow entries have been deleted".
                Ok(out)
                    if out.status.success()
                        || String::from_utf8_lossy(&out.stderr).contains("flow entries") =>
                {
                    flushed += 1;
                }
                Ok(out) => tracing::warn!(%ip, error = %refused(&out), "conntrack flush failed"),
                Err(e) => tracing::warn!(%ip, error = %e, "conntrack flush failed"),
            }
        }
        flushed
    }
}

fn count(plan: &DeltaPlan) -> (usize, usize) {
    let put = plan
        .ops
        .iter()
        .filter(|o| matches!(o, super::state::ElementOp::Put { .. }))
        .count();
    (put, plan.ops.len() - put)
}

/// Milliseconds since the Unix epoch (0 for a clock before it).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(super) fn refused(out: &std::process::Output) -> FirewallError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The first lines name the problem; a 100k-element batch can echo a lot.
    let stderr: String = stderr.lines().take(6).collect::<Vec<_>>().join(" | ");
    FirewallError::Refused {
        status: out.status.to_string(),
        stderr: stderr.chars().take(1000).collect(),
    }
}

pub(super) fn run(
    args: &[OsString],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<std::process::Output, FirewallError> {
    let program = args
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spawn_err = |message: String| FirewallError::Spawn {
        program: program.clone(),
        message,
    };
    let (first, rest) = args
        .split_first()
        .ok_or_else(|| spawn_err("empty command".into()))?;
    let mut child = Command::new(first)
        .args(rest)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_err(e.to_string()))?;
    let pid = child.id();
    // Input is written by its own thread while the output is read, so a
    // program that reports errors before it has read everything cannot
    // deadlock on a full pipe; dropping the pipe at the end is what tells
    // nft the transaction is complete.
    let feeder = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(input)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&input)))
        }
        _ => None,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(spawn_err(e.to_string())),
        Err(_) => {
            // Our own child, not yet reaped (the waiting thread holds it), so
            // its PID cannot have been reused.
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return Err(spawn_err(format!("did not finish within {timeout:?}")));
        }
    };
    let fed = feeder.map(|t| t.join());
    if out.status.success() {
        match fed {
            Some(Ok(Err(e))) => return Err(spawn_err(format!("writing its input: {e}"))),
            Some(Err(_)) => return Err(spawn_err("input writer panicked".into())),
            _ => {}
        }
    }
    // A failed write with a failure status means the program gave up early:
    // its status and stderr say why.
    Ok(out)
}
