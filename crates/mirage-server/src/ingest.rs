//! The sensor event ingest: `POST /api/v1/events` with newline-delimited
//! schema events, signed with HMAC-SHA256 ([`mirage_core::request_auth`]).
//!
//! The reply comes after the pipeline has stored the batch, so a sensor
//! that gets `200` may forget the events; on any other answer it retries
//! with the same events (their ids make the retry idempotent).
//!
//! The signature is checked on the request's head (the body's digest is in
//! a header) before a byte of the body is read, and every reply to a signed
//! request is signed for it ([`crate::signed_http`]): a sensor advances its
//! checkpoint only on a `200` it verified. Each sensor (header
//! `x-mirage-sensor`) has its own nonce memory and persisted replay floor
//! ([`Senders`]).
//!
//! Replies: `200 {"accepted":N,"duplicates":M}`; `401` bad or missing
//! signature, stale timestamp, replayed nonce; `400` a line that is not a
//! schema event (`{"error":"line 3: …"}`), nothing of the batch stored;
//! `413` body over 16 MiB; `503` the store cannot write (disk full) or the
//! server is shutting down: nothing was stored, send again.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mirage_core::Event;
use mirage_store::Store;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::http::{BodyBudget, HttpLimits};
use crate::receiver::{Inbound, InboundTx, Payload, now_micros};
use crate::signed_http::{Senders, signed_reply};
use crate::stats::ServerStats;
use crate::store_health::{StoreHealth, StoreRefusal};

/// The path events are posted to.
pub const EVENTS_PATH: &str = "/api/v1/events";
/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;
/// Most events in one request.
pub const MAX_EVENTS: usize = 10_000;
pub use mirage_core::request_auth::HEADER_SENSOR;
/// Most sensors with a nonce memory of their own.
const MAX_SENDERS: usize = 4096;
/// Nonces remembered per sensor within the freshness window.
const NONCES_PER_SENDER: usize = 100_000;

/// The ingest's settings.
pub struct IngestConfig {
    /// The shared key sensors sign with.
    pub key: Vec<u8>,
    /// Freshness window of a signed request, seconds.
    pub max_skew_secs: u64,
    /// TLS, when on.
    pub tls: Option<TlsAcceptor>,
    /// Listener limits.
    pub limits: HttpLimits,
}

struct IngestState {
    key: Vec<u8>,
    senders: Senders,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    health: Arc<StoreHealth>,
    budget: BodyBudget,
}

/// Longest wait for the pipeline's answer before the sensor is told to try
/// again (it keeps its events; their ids make the retry idempotent).
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serve the ingest endpoint on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    config: IngestConfig,
    store: Arc<dyn Store>,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    health: Arc<StoreHealth>,
    cancel: CancellationToken,
) {
    let mut limits = config.limits;
    limits.max_body = MAX_BODY;
    let state = Arc::new(IngestState {
        senders: Senders::new(
            "sensor",
            store,
            config.max_skew_secs,
            NONCES_PER_SENDER,
            MAX_SENDERS,
        ),
        key: config.key,
        tx,
        stats,
        health,
        budget: BodyBudget::new(&limits),
    });
    let app = Router::new()
        .route(EVENTS_PATH, post(post_events))
        .with_state(state);
    crate::http::serve(listener, app, config.tls, limits, cancel).await;
}

/// The sensor a request names (`-` when none, or a name not made of
/// `[A-Za-z0-9._-]`, at most 64 characters).
fn sender(headers: &HeaderMap) -> String {
    headers
        .get(HEADER_SENSOR)
        .and_then(|v| v.to_str().ok())
        .filter(|s| mirage_core::request_auth::valid_sender_name(s))
        .unwrap_or("-")
        .to_owned()
}

async fn post_events(
    State(st): State<Arc<IngestState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let who = sender(&headers);
    let authed = st
        .senders
        .authenticate(&who, &st.key, &method, &uri, &headers, body, &st.budget)
        .await;
    let authed = match authed {
        Ok(a) => a,
        Err(refused) => {
            ServerStats::add(&st.stats.ingest_refused, 1);
            tracing::debug!("ingest: {peer}: refused: {}", refused.reason());
            return refused.into_response();
        }
    };
    let answer = |status: StatusCode, body: serde_json::Value| {
        let extra: Vec<(HeaderName, HeaderValue)> = if status == StatusCode::SERVICE_UNAVAILABLE {
            vec![(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            )]
        } else {
            Vec::new()
        };
        signed_reply(&st.key, &authed.nonce, status, &body, &extra)
    };
    let refused = |why: &StoreRefusal| {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": why.to_string() }),
        )
    };
    let mut events = Vec::new();
    for (n, line) in authed.body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == MAX_EVENTS {
            ServerStats::add(&st.stats.ingest_refused, 1);
            return answer(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("more than {MAX_EVENTS} events") }),
            );
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => events.push(e),
            Err(e) => {
                ServerStats::add(&st.stats.ingest_refused, 1);
                return answer(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": format!("line {}: {e}", n + 1) }),
                );
            }
        }
    }
    if st.health.is_failing() {
        return refused(&st.health.refusal());
    }
    let (done, wait) = tokio::sync::oneshot::channel();
    let sent = st
        .tx
        .send(Inbound {
            peer,
            received_micros: now_micros(),
            trusted: true,
            payload: Payload::Events { events, done },
        })
        .await;
    if sent.is_err() {
        return refused(&StoreRefusal::ShuttingDown);
    }
    match tokio::time::timeout(STORE_WAIT, wait).await {
        Ok(Ok(Ok(receipt))) => answer(StatusCode::OK, serde_json::json!(receipt)),
        Ok(Ok(Err(e))) => refused(&e),
        Ok(Err(_)) => refused(&StoreRefusal::ShuttingDown),
        Err(_) => refused(&StoreRefusal::Unavailable("store is slow".into())),
    }
}
