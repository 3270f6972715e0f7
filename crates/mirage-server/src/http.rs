//! One HTTP listener loop for the server's HTTP APIs (sensor ingest, the
//! agents' policy API), with the limits an Internet-facing listener needs:
//! a cap on connections in all and per source address, a deadline for the
//! request head (slow-loris clients are cut), optional TLS, and a shared
//! budget for request bodies being read. Handlers read bodies through
//! [`read_body`] only after the request's signature checked out on its
//! headers ([`mirage_core::request_auth::Verifier::verify_headers`]), so a
//! client without a key cannot make the server buffer a byte of its body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use mirage_net::limits::{ConnLimiter, Limits};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits of one HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections at once from one source address; more are closed.
    pub max_per_ip: usize,
    /// Time for a client to send a request's head (and for the TLS
    /// handshake).
    pub header_timeout: Duration,
    /// Time for a client to send a body once its head was accepted.
    pub body_timeout: Duration,
    /// Largest request body.
    pub max_body: usize,
    /// Bytes of request bodies being read at once, across connections.
    pub body_budget: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 8192,
            max_per_ip: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_body: 16 << 20,
            body_budget: 64 << 20,
        }
    }
}

/// The body budget a listener's handlers share, as request state.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    limits: Arc<HttpLimits>,
}

impl BodyBudget {
    /// A budget for `limits`.
    pub fn new(limits: &HttpLimits) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(limits.body_budget.max(1))),
            limits: Arc::new(limits.clone()),
        }
    }
}

/// Why a body could not be read; each maps to the status a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// No `Content-Length` (411).
    NoLength,
    /// Over the limit (413).
    TooLarge,
    /// The client did not send it in time, or sent less or more than it
    /// announced (408).
    Timeout,
    /// The server is reading too many bodies now (503, try again).
    Busy,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            BodyError::NoLength => (StatusCode::LENGTH_REQUIRED, "content-length required"),
            BodyError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
            BodyError::Timeout => (StatusCode::REQUEST_TIMEOUT, "body not received in time"),
            BodyError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy, try again"),
        };
        (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

/// Read `body` (its head said `content_length`) within the listener's
/// limits, holding that many bytes of the shared budget while it arrives.
pub async fn read_body(
    budget: &BodyBudget,
    content_length: Option<&str>,
    body: Body,
) -> Result<bytes::Bytes, BodyError> {
    let len: usize = content_length
        .and_then(|v| v.trim().parse().ok())
        .ok_or(BodyError::NoLength)?;
    if len > budget.limits.max_body {
        return Err(BodyError::TooLarge);
    }
    let permits = u32::try_from(len.max(1)).map_err(|_| BodyError::TooLarge)?;
    let _held = tokio::time::timeout(
        Duration::from_secs(1),
        budget.bytes.clone().acquire_many_owned(permits),
    )
    .await
    .map_err(|_| BodyError::Busy)?
    .map_err(|_| BodyError::Busy)?;
    let limited = http_body_util::Limited::new(body, len);
    let bytes = tokio::time::timeout(budget.limits.body_timeout, limited.collect())
        .await
        .map_err(|_| BodyError::Timeout)?
        .map_err(|_| BodyError::TooLarge)?
        .to_bytes();
    if bytes.len() != len {
        return Err(BodyError::Timeout);
    }
    Ok(bytes)
}

/// Serve `app` on `listener` until `cancel` (in-flight requests get a few
/// seconds to finish). Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: HttpLimits,
    cancel: CancellationToken,
) {
    let limiter = ConnLimiter::new(&Limits {
        max_connections: limits.max_connections,
        max_connections_per_ip: limits.max_per_ip,
        ..Limits::default()
    });
    let tracker = tokio_util::task::TaskTracker::new();
    let mut accept_errors = 0u64;
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = limiter.global_slot() => p,
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!("http: accept failed ({accept_errors} times): {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let Some(slot) = limiter.claim(permit, peer.ip()) else {
            // Over the per-address cap: closed at once.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, cancel, header_timeout) = (
            app.clone(),
            tls.clone(),
            cancel.clone(),
            limits.header_timeout,
        );
        tracker.spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(TokioIo::new(stream), peer, app, header_timeout, cancel).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            connection(TokioIo::new(s), peer, app, header_timeout, cancel).await
                        }
                        Ok(Err(e)) => tracing::debug!("http: {peer}: TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("http: {peer}: TLS handshake timed out"),
                    }
                }
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await;
}

async fn connection<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    cancel: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.map(Body::new)).await;
            Ok::<_, Infallible>(match resp {
                Ok(r) => r,
                Err(never) => match never {},
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("http: {peer}: {e}");
            }
        }
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(3), conn).await;
        }
    }
}
