//! The client side of mirage's signed HTTP APIs: one `POST` with the
//! HMAC headers of [`mirage_core::request_auth`], over a fresh HTTP/1.1
//! connection (hyper), with an overall timeout.
//!
//! Used by the sensor's event shipper and the agent's policy client. A new
//! connection per request keeps the clients stateless across server
//! restarts; at their request rates (a batch every few hundred
//! milliseconds at most, one long poll at a time) the handshake is noise.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mirage_core::request_auth::signed_headers;

/// Largest answer body read.
const MAX_REPLY: usize = 64 << 20;

/// POST `body` to `http://{server}{path}`, signed with `key` when given,
/// plus `extra` headers. Returns the status and the body; errors are
/// transport failures (connect, protocol, timeout) as one line.
pub async fn post(
    server: &str,
    path: &str,
    key: Option<&[u8]>,
    extra: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let mut req = Request::post(path)
        .header(hyper::header::HOST, server)
        .header(hyper::header::CONTENT_TYPE, content_type);
    if let Some(key) = key {
        for (name, value) in signed_headers(key, "POST", path, &body) {
            req = req.header(name, value);
        }
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(server)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("http: {e}"))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_REPLY);
        let body = limited
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
