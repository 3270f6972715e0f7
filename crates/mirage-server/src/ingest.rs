//! The sensor event ingest: `POST /api/v1/events` with newline-delimited
//! schema events, signed with HMAC-SHA256 ([`mirage_core::request_auth`]).
//!
//! The reply comes after the pipeline has stored the batch, so a sensor
//! that gets `200` may forget the events; on any other answer it retries
//! with the same events (their ids make the retry idempotent).
//!
//! Replies: `200 {"accepted":N,"duplicates":M}`; `401` bad or missing
//! signature, stale timestamp, replayed nonce; `400` a line that is not a
//! schema event (`{"error":"line 3: …"}`), nothing of the batch stored;
//! `413` body over 16 MiB; `503` the store cannot write (disk full) or the
//! server is shutting down: nothing was stored, send again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use mirage_core::Event;
use mirage_core::request_auth::{
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, SignedRequest, Verifier,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::receiver::{Inbound, InboundTx, Payload, now_micros};
use crate::stats::ServerStats;
use crate::store_health::{StoreHealth, StoreRefusal};

/// The path events are posted to.
pub const EVENTS_PATH: &str = "/api/v1/events";
/// Largest request body.
pub const MAX_BODY: usize = 16 << 20;
/// Most events in one request.
pub const MAX_EVENTS: usize = 10_000;

struct IngestState {
    verifier: Mutex<Verifier>,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    health: Arc<StoreHealth>,
}

/// Longest wait for the pipeline's answer before the sensor is told to try
/// again (it keeps its events; their ids make the retry idempotent).
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serve the ingest endpoint on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    verifier: Verifier,
    tx: InboundTx,
    stats: Arc<ServerStats>,
    health: Arc<StoreHealth>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let state = Arc::new(IngestState {
        verifier: Mutex::new(verifier),
        tx,
        stats,
        health,
    });
    let app = Router::new()
        .route(EVENTS_PATH, post(post_events))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(cancel.cancelled_owned())
    .await
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn post_events(
    State(st): State<Arc<IngestState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = {
        let mut v = st.verifier.lock().unwrap_or_else(|e| e.into_inner());
        let req = SignedRequest {
            method: method.as_str(),
            path: uri.path(),
            timestamp: h(HEADER_TIMESTAMP),
            nonce: h(HEADER_NONCE),
            signature: h(HEADER_SIGNATURE),
            body: &body,
        };
        v.verify(&req, chrono::Utc::now().timestamp())
    };
    if let Err(e) = verdict {
        ServerStats::add(&st.stats.ingest_refused, 1);
        tracing::debug!("ingest: {peer}: refused: {e}");
        return reply(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": e.to_string() }),
        );
    }
    let mut events = Vec::new();
    for (n, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if events.len() == MAX_EVENTS {
            ServerStats::add(&st.stats.ingest_refused, 1);
            return reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("more than {MAX_EVENTS} events") }),
            );
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => events.push(e),
            Err(e) => {
                ServerStats::add(&st.stats.ingest_refused, 1);
                return reply(
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
            payload: Payload::Events { events, done },
        })
        .await;
    if sent.is_err() {
        return refused(&StoreRefusal::ShuttingDown);
    }
    match tokio::time::timeout(STORE_WAIT, wait).await {
        Ok(Ok(Ok(receipt))) => reply(StatusCode::OK, serde_json::json!(receipt)),
        Ok(Ok(Err(e))) => refused(&e),
        Ok(Err(_)) => refused(&StoreRefusal::ShuttingDown),
        Err(_) => refused(&StoreRefusal::Unavailable("store is slow".into())),
    }
}

/// `503` with the reason and a `Retry-After`: nothing of the request was
/// acknowledged, so the sensor keeps it and sends it again.
fn refused(why: &StoreRefusal) -> Response {
    let mut r = reply(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({ "error": why.to_string() }),
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}
