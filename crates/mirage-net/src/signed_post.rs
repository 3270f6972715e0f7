//! The client side of mirage's signed HTTP APIs: one `POST` with the
//! HMAC headers of [`mirage_core::request_auth`], over a fresh HTTP/1.1
//! connection (hyper), with an overall timeout.
//!
//! When the request is signed, so must the reply be, for this request
//! ([`mirage_core::request_auth::verify_reply`]): an answer without a valid
//! signature (a fake server, a tampering proxy, an old answer replayed) is
//! an error, never a status the caller acts on.
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
use mirage_core::request_auth::{HEADER_REPLY_SIGNATURE, signed_headers, verify_reply};

use crate::pinned_tls::{Pin, client_config};

/// Largest answer body read.
const MAX_REPLY: usize = 64 << 20;

/// POST `body` to `http://{server}{path}` (`https://` with the server's
/// certificate pinned when `pin` is given), signed with `key` when given,
/// plus `extra` headers. Returns the status and the body; errors are
/// transport failures (connect, TLS, protocol, timeout) and answers not
/// signed by the server's key, as one line.
#[allow(clippy::too_many_arguments)]
pub async fn post(
    server: &str,
    pin: Option<Pin>,
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
    let mut nonce = None;
    if let Some(key) = key {
        let headers = signed_headers(key, "POST", path, &body);
        nonce = Some(headers[1].1.clone());
        for (name, value) in headers {
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
        let mut sender = match pin {
            None => handshake(stream).await?,
            Some(pin) => {
                let connector = tokio_rustls::TlsConnector::from(client_config(pin));
                // The pin, not the name, identifies the server.
                let name = rustls::pki_types::ServerName::try_from("mirage-server")
                    .map_err(|e| e.to_string())?;
                let tls = connector.connect(name, stream).await.map_err(|e| {
                    format!(
                        "TLS: {e} (is this the server whose certificate the token or config pins?)"
                    )
                })?;
                handshake(tls).await?
            }
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("http: {e}"))?;
        let status = resp.status().as_u16();
        let reply_sig = resp
            .headers()
            .get(HEADER_REPLY_SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_REPLY);
        let body = limited
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        if let (Some(key), Some(nonce)) = (key, &nonce) {
            // 401 and errors before authentication are not signed: the
            // server could not know the client holds the key. They are
            // reported, never acted on as success.
            let checked = verify_reply(key, status, nonce, reply_sig.as_deref(), &body);
            if checked.is_err() && status != 401 {
                return Err(format!(
                    "answer {status} is not signed by the server's key (a fake server, or a proxy in between)"
                ));
            }
        }
        Ok((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn handshake<S>(io: S) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}
