//! The server side of mirage's signed HTTP requests
//! ([`mirage_core::request_auth`]), shared by the ingest and the policy
//! API: the signature is checked on the request's head, and only then is
//! the body read (within [`crate::http`]'s budget) and compared with the
//! digest the signature covered. Replies are signed for the request they
//! answer, so a client takes them only from the holder of its key.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mirage_core::request_auth::{
    AuthError, HEADER_CONTENT_SHA256, HEADER_NONCE, HEADER_REPLY_SIGNATURE, HEADER_SIGNATURE,
    HEADER_TIMESTAMP, SignedHeaders, body_matches, sign_reply,
};

use crate::http::{BodyBudget, read_body};

/// A request whose signature and body checked out.
pub struct Authenticated {
    /// Its nonce (the reply is signed over it).
    pub nonce: String,
    /// Its body.
    pub body: Bytes,
}

/// Why a request was not taken: the answer to send (never signed: the
/// sender is not known to hold the key).
pub enum Refused {
    /// Authentication failed (401), with the reason.
    Auth(AuthError),
    /// The body could not be read, or does not match its digest.
    Body(Response),
}

impl Refused {
    /// The reason, for logs.
    pub fn reason(&self) -> String {
        match self {
            Refused::Auth(e) => e.to_string(),
            Refused::Body(r) => format!("body refused ({})", r.status()),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Auth(e) => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": e.to_string() })),
            )
                .into_response(),
            Refused::Body(r) => r,
        }
    }
}

/// The request's signed head, as [`SignedHeaders`].
pub fn signed_headers<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> SignedHeaders<'a> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    SignedHeaders {
        method: method.as_str(),
        path: uri.path(),
        timestamp: h(HEADER_TIMESTAMP),
        nonce: h(HEADER_NONCE),
        signature: h(HEADER_SIGNATURE),
        content_sha256: h(HEADER_CONTENT_SHA256),
    }
}

/// Check the head with `verify`, then read the body and check its digest.
pub async fn authenticate(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    budget: &BodyBudget,
    verify: impl FnOnce(&SignedHeaders<'_>) -> Result<(), AuthError>,
) -> Result<Authenticated, Refused> {
    let head = signed_headers(method, uri, headers);
    verify(&head).map_err(Refused::Auth)?;
    let (nonce, digest) = (
        head.nonce.unwrap_or_default().to_owned(),
        head.content_sha256.unwrap_or_default().to_owned(),
    );
    let length = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok());
    let body = read_body(budget, length, body)
        .await
        .map_err(|e| Refused::Body(e.into_response()))?;
    if !body_matches(&digest, &body) {
        return Err(Refused::Auth(AuthError::BadSignature));
    }
    Ok(Authenticated { nonce, body })
}

/// A JSON reply signed with `key` for the request that carried `nonce`.
pub fn signed_reply(
    key: &[u8],
    nonce: &str,
    status: StatusCode,
    body: &impl serde::Serialize,
    extra: &[(axum::http::HeaderName, HeaderValue)],
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let sig = sign_reply(key, status.as_u16(), nonce, &bytes);
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&sig) {
        r.headers_mut().insert(HEADER_REPLY_SIGNATURE, v);
    }
    for (k, v) in extra {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}
