//! The policy API: agents enroll with a one-time token, then long-poll
//! their policy, every request signed with their own key.
//!
//! * `POST /api/v1/enroll` `{"token","agent_id","hostname","settings"}` →
//!   `{"agent_id","key"}`. The token (made by `mirage server tokens create`,
//!   stored only as its SHA-256) works once and until it expires; the key is
//!   32 random bytes the agent signs with from then on.
//! * `POST /api/v1/policy` `{"since":N,"wait_secs":S}`, signed
//!   ([`mirage_core::request_auth`]) and naming the agent in `x-mirage-agent`.
//!   No `since` (or a version whose changes were pruned) gets a snapshot;
//!   otherwise the request is held until a decision changes (at most
//!   `max_wait_secs`) and answered with the net delta since `since`.
//!
//! The signature is checked with the key of the agent the request names,
//! so an agent can neither read another's settings nor sign as it. Stale,
//! replayed, unsigned and wrongly signed requests get `401` and a log line
//! (at most one per second, with a count of the suppressed ones, so a flood
//! cannot fill the log). A new decision wakes every waiting request at
//! once: the pipeline publishes the change-log sequence on a watch channel
//! right after storing it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mirage_core::policy::{
    AgentSettings, DeletedDecision, ENROLL_PATH, EnrollReply, EnrollRequest, HEADER_AGENT,
    POLICY_PATH, Policy, PolicyDecision, PolicyDelta, PolicyReply, PolicyRequest, settings_id,
};

use crate::http::{BodyBudget, HttpLimits, read_body};
use crate::signed_http::{Senders, signed_reply};
use mirage_store::{AgentKeyRow, Redeemed, Store, StoreError};

use crate::identity::ServerSecret;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Most changes read for one delta; a longer backlog is sent in pages.
const PAGE: u32 = 10_000;
/// Nonces remembered per agent within the freshness window.
const NONCES_PER_AGENT: usize = 100_000;
/// Most agents with a verifier in memory.
const MAX_AGENTS: usize = 100_000;
/// Largest request body.
const MAX_BODY: usize = 64 * 1024;
/// How often a held request looks for edited agent settings.
const SETTINGS_RECHECK: Duration = Duration::from_secs(1);

/// Shared state of the API.
pub struct PolicyApi {
    store: Arc<dyn Store>,
    budget: BodyBudget,
    changes: watch::Receiver<i64>,
    /// Each agent's verifier and persisted replay floor.
    senders: Senders,
    secret: ServerSecret,
    max_wait: Duration,
    last_refusal_log: AtomicI64,
    refusals_unlogged: AtomicU64,
}

pub use crate::identity::token_hash;

/// 16 random bytes, hex (an agent's key salt).
fn random_salt() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    Ok(mirage_core::event::hex(&b))
}

impl PolicyApi {
    /// The API over `store`, woken by `changes` (the newest change-log
    /// sequence number).
    pub fn new(
        store: Arc<dyn Store>,
        secret: ServerSecret,
        changes: watch::Receiver<i64>,
        max_skew_secs: u64,
        max_wait_secs: u64,
    ) -> Self {
        PolicyApi {
            store: store.clone(),
            secret,
            budget: BodyBudget::new(&HttpLimits {
                max_body: MAX_BODY,
                ..HttpLimits::default()
            }),
            changes,
            senders: Senders::new("agent", store, max_skew_secs, NONCES_PER_AGENT, MAX_AGENTS),
            max_wait: Duration::from_secs(max_wait_secs),
            last_refusal_log: AtomicI64::new(0),
            refusals_unlogged: AtomicU64::new(0),
        }
    }

    fn refused(&self, peer: SocketAddr, agent: &str, why: &str) {
        let now = chrono::Utc::now().timestamp();
        let last = self.last_refusal_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_refusal_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let more = self.refusals_unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                "policy API: refused a request from {peer} as agent {:?}: {why} ({more} more refused since the last report)",
                agent.escape_debug().to_string()
            );
        } else {
            self.refusals_unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Serve the API on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    api: Arc<PolicyApi>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    cancel: CancellationToken,
) {
    let app = Router::new()
        .route(ENROLL_PATH, post(enroll))
        .route(POLICY_PATH, post(policy))
        .with_state(api);
    crate::http::serve(listener, app, tls, limits, cancel).await;
}

fn json_reply(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    json_reply(status, serde_json::json!({ "error": msg }))
}

fn internal(e: StoreError) -> Response {
    tracing::error!("policy API: store: {e}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "store unavailable")
}

async fn enroll(
    State(api): State<Arc<PolicyApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    let body = match read_body(&api.budget, length, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Ok(req) = serde_json::from_slice::<EnrollRequest>(&body) else {
        api.refused(peer, "-", "enrollment body is not JSON");
        return error(StatusCode::BAD_REQUEST, "bad enrollment request");
    };
    if !mirage_config::agent::valid_agent_id(&req.agent_id) || req.hostname.len() > 255 {
        return error(StatusCode::BAD_REQUEST, "bad agent_id or hostname");
    }
    let salt = match random_salt() {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("policy API: {e}");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
        }
    };
    let key = mirage_core::event::hex(&api.secret.agent_key(&req.agent_id, &salt));
    let settings_json = serde_json::to_string(&req.settings).unwrap_or_else(|_| "{}".into());
    let row = AgentKeyRow {
        agent_id: req.agent_id.clone(),
        key_hex: String::new(),
        key_salt: salt,
        revoked_micros: None,
        enrolled_micros: crate::receiver::now_micros(),
        hostname: req.hostname.clone(),
        settings_json,
    };
    match api
        .store
        .redeem_token(&token_hash(&req.token), &row, row.enrolled_micros)
        .await
    {
        Ok(Redeemed::Enrolled) => {
            tracing::info!(
                "policy API: agent {} ({}) enrolled from {peer}",
                req.agent_id,
                req.hostname.escape_debug()
            );
            json_reply(
                StatusCode::OK,
                EnrollReply {
                    agent_id: req.agent_id,
                    key,
                },
            )
        }
        Ok(Redeemed::BadToken) => {
            api.refused(peer, &req.agent_id, "unknown, used or expired token");
            error(StatusCode::UNAUTHORIZED, "unknown, used or expired token")
        }
        Ok(Redeemed::AgentExists) => {
            api.refused(peer, &req.agent_id, "agent id enrolled already");
            error(
                StatusCode::CONFLICT,
                "this agent id is enrolled already; a token made with `mirage server tokens create --replace ID` may replace it",
            )
        }
        Err(e) => internal(e),
    }
}

async fn policy(
    State(api): State<Arc<PolicyApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let agent_id = h(HEADER_AGENT).unwrap_or("").to_owned();
    if !mirage_config::agent::valid_agent_id(&agent_id) {
        api.refused(peer, &agent_id, "no agent id");
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or malformed authentication headers",
        );
    }
    let agent = match api.store.agent_key(&agent_id).await {
        Ok(Some(a)) if a.revoked_micros.is_none() => a,
        Ok(Some(_)) => {
            api.refused(peer, &agent_id, "revoked agent");
            return error(StatusCode::UNAUTHORIZED, "bad signature");
        }
        Ok(None) => {
            api.refused(peer, &agent_id, "unknown agent");
            return error(StatusCode::UNAUTHORIZED, "bad signature");
        }
        Err(e) => return internal(e),
    };
    let key = api.secret.key_of(&agent);
    let authed = match api
        .senders
        .authenticate(&agent_id, &key, &method, &uri, &headers, body, &api.budget)
        .await
    {
        Ok(a) => a,
        Err(refused) => {
            api.refused(peer, &agent_id, &refused.reason());
            return refused.into_response();
        }
    };
    let _ = api
        .store
        .note_agent_address(
            &agent_id,
            &peer.ip().to_canonical().to_string(),
            crate::receiver::now_micros(),
        )
        .await;
    let reply = |status: StatusCode, body: serde_json::Value| {
        signed_reply(&key, &authed.nonce, status, &body, &[])
    };
    let Ok(req) = serde_json::from_slice::<PolicyRequest>(&authed.body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "bad policy request" }),
        );
    };
    let settings: AgentSettings = serde_json::from_str(&agent.settings_json).unwrap_or_default();
    let wait = Duration::from_secs(req.wait_secs).min(api.max_wait);
    // The agent holds other settings than ours (changed by an operator
    // while it was away): it needs a snapshot.
    let since = match &req.settings_id {
        Some(id) if *id != settings_id(&settings) => None,
        _ => req.since,
    };
    let answered = match &req.snapshot_after {
        // The next page of a snapshot the agent is reading: at once.
        Some(after) => snapshot(api.store.as_ref(), &settings, Some(after)).await,
        None => answer(&api, &agent_id, &settings, since, wait).await,
    };
    match answered {
        Ok(r) => reply(
            StatusCode::OK,
            serde_json::to_value(r).unwrap_or(serde_json::Value::Null),
        ),
        Err(e) => {
            tracing::error!("policy API: store: {e}");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "store unavailable" }),
            )
        }
    }
}

/// The reply to a policy request: a snapshot, a delta, or (after waiting
/// `wait` without a change) an empty delta at the same version.
pub async fn answer(
    api: &PolicyApi,
    agent_id: &str,
    settings: &AgentSettings,
    since: Option<i64>,
    wait: Duration,
) -> Result<PolicyReply, StoreError> {
    let Some(since) = since else {
        return snapshot(api.store.as_ref(), settings, None).await;
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = api.changes.clone();
    let held = settings_id(settings);
    // Settings are edited by another process (`mirage server agents set`)
    // that cannot wake this request: look at them once a second.
    let mut recheck = tokio::time::interval(SETTINGS_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        let latest = *changes.borrow_and_update();
        let first = api.store.first_change_seq().await?;
        // Snapshot: asked for, or the agent missed pruned changes, or it is
        // ahead of this server (a restored or replaced database).
        if since < 0
            || (first > 0 && since < first - 1)
            || since > latest.max(api.store.last_change_seq().await?)
        {
            return snapshot(api.store.as_ref(), settings, None).await;
        }
        // A backlog longer than a page (an agent back after a long outage,
        // a bulk import) is one snapshot rather than many delta pages: one
        // round trip, and the agent applies it as one transaction.
        if latest - since > i64::from(PAGE) {
            return snapshot(api.store.as_ref(), settings, None).await;
        }
        if latest > since {
            let delta = delta(api.store.as_ref(), since).await?;
            if delta.version > since {
                return Ok(PolicyReply::Delta(delta));
            }
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    // The server is stopping.
                    break;
                }
            }
            _ = recheck.tick() => {
                if let Some(now) = api.store.agent_key(agent_id).await? {
                    let current: AgentSettings =
                        serde_json::from_str(&now.settings_json).unwrap_or_default();
                    if settings_id(&current) != held {
                        return snapshot(api.store.as_ref(), &current, None).await;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    Ok(PolicyReply::Delta(PolicyDelta {
        version: since,
        new: Vec::new(),
        deleted: Vec::new(),
    }))
}

/// Decisions per snapshot page: at the engine's cap (a million) a whole
/// snapshot would be ~85 MB of JSON, over what an agent reads in one
/// answer; a page is ~9 MB.
pub const SNAPSHOT_PAGE: u32 = 100_000;

/// Every decision in force now, with the agent's settings: the first page,
/// or the page after `after` (a [`Policy::next`] cursor).
pub async fn snapshot(
    store: &dyn Store,
    settings: &AgentSettings,
    after: Option<&str>,
) -> Result<PolicyReply, StoreError> {
    // The version first: a change stored between the two reads is then
    // sent again in the next delta rather than missed.
    let version = store.last_change_seq().await?;
    let now = crate::receiver::now_micros();
    let after = after.and_then(|c| c.split_once(' '));
    let rows = store.list_decisions_page(now, after, SNAPSHOT_PAGE).await?;
    let next = (rows.len() == SNAPSHOT_PAGE as usize)
        .then(|| rows.last().map(|d| format!("{} {}", d.ip, d.decision)))
        .flatten();
    let decisions = rows
        .into_iter()
        .filter_map(|d| {
            Some(PolicyDecision {
                ip: d.ip.parse().ok()?,
                decision: d.decision,
                expires_unix: d.expires_micros.div_euclid(1_000_000),
            })
        })
        .collect();
    Ok(PolicyReply::Snapshot(Policy {
        version,
        settings: settings.clone(),
        decisions,
        settings_id: Some(settings_id(settings)),
        next,
    }))
}

/// The net change after version `since` (at most one page of changes).
pub async fn delta(store: &dyn Store, since: i64) -> Result<PolicyDelta, StoreError> {
    let changes = store.decision_changes(since, PAGE).await?;
    let version = changes.last().map_or(since, |c| c.seq);
    let now_unix = chrono::Utc::now().timestamp();
    // Net effect per (address, type), in change order: an add then a
    // delete inside one delta is a delete, a delete then an add an add.
    let mut net: Vec<((String, String), Option<i64>)> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for c in &changes {
        let key = (c.decision.ip.clone(), c.decision.decision.clone());
        let value = (c.op == "add").then(|| c.decision.expires_micros.div_euclid(1_000_000));
        match index.get(&key) {
            Some(&i) => net[i].1 = value,
            None => {
                index.insert(key.clone(), net.len());
                net.push((key, value));
            }
        }
    }
    let mut delta = PolicyDelta {
        version,
        new: Vec::new(),
        deleted: Vec::new(),
    };
    for ((ip, decision), value) in net {
        let Ok(ip) = ip.parse() else { continue };
        match value {
            // Already over: nothing to enforce (nft would refuse a
            // non-positive timeout anyway).
            Some(exp) if exp <= now_unix => {}
            Some(expires_unix) => delta.new.push(PolicyDecision {
                ip,
                decision,
                expires_unix,
            }),
            None => delta.deleted.push(DeletedDecision { ip, decision }),
        }
    }
    Ok(delta)
}
