//! The server side of mirage's signed HTTP requests
//! ([`mirage_core::request_auth`]), shared by the ingest and the policy
//! API: the signature is checked on the request's head, and only then is
//! the body read (within [`crate::http`]'s budget) and compared with the
//! digest the signature covered. Replies are signed for the request they
//! answer, so a client takes them only from the holder of its key.
//!
//! [`Senders`] keeps one verifier per sender (nonce memory of its own, so
//! one sender cannot push another's nonces out) and a replay floor per
//! sender and key persisted in the store, so a request captured before a
//! restart, when the nonces in memory are gone, is refused after it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mirage_core::request_auth::{
    AuthError, HEADER_CONTENT_SHA256, HEADER_NONCE, HEADER_REPLY_SIGNATURE, HEADER_SIGNATURE,
    HEADER_TIMESTAMP, SignedHeaders, Verifier, body_digest, body_matches, sign_reply,
};
use mirage_store::Store;

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

/// The verifiers of one API's senders (sensors, agents), by name.
pub struct Senders {
    kind: &'static str,
    store: Arc<dyn Store>,
    max_skew_secs: u64,
    nonces_per_sender: usize,
    max_senders: usize,
    /// Per sender: the key its verifier checks with (a re-enrolled agent
    /// has a new one) and the verifier.
    verifiers: Mutex<HashMap<String, (Vec<u8>, Verifier)>>,
}

impl Senders {
    /// Verifiers for senders of `kind` (`agent`, `sensor`: the prefix of
    /// their floors in the store), at most `max_senders` of them.
    pub fn new(
        kind: &'static str,
        store: Arc<dyn Store>,
        max_skew_secs: u64,
        nonces_per_sender: usize,
        max_senders: usize,
    ) -> Senders {
        Senders {
            kind,
            store,
            max_skew_secs,
            nonces_per_sender,
            max_senders,
            verifiers: Mutex::new(HashMap::new()),
        }
    }

    /// [`authenticate`] a request from sender `name` signed with `key`,
    /// then persist the newest timestamp accepted from it.
    #[allow(clippy::too_many_arguments)]
    pub async fn authenticate(
        &self,
        name: &str,
        key: &[u8],
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
        budget: &BodyBudget,
    ) -> Result<Authenticated, Refused> {
        // Per key: after a re-enrollment the new key's requests cannot be
        // replays of the old one's, and must not meet its floor.
        let floor_name = format!("{}:{name}:{}", self.kind, &body_digest(key)[..16]);
        let known = self
            .lock()
            .get(name)
            .is_some_and(|(k, _)| k.as_slice() == key);
        // A verifier starts with the floor persisted before a restart.
        let floor = if known {
            None
        } else {
            self.store.auth_floor(&floor_name).await.ok().flatten()
        };
        let now = chrono::Utc::now().timestamp();
        let mut newest = None;
        let authed = authenticate(method, uri, headers, body, budget, |head| {
            let mut verifiers = self.lock();
            if !verifiers.contains_key(name) && verifiers.len() >= self.max_senders {
                return Err(AuthError::Replayed);
            }
            let fresh = || {
                (
                    key.to_vec(),
                    Verifier::new(key.to_vec(), self.max_skew_secs, self.nonces_per_sender),
                )
            };
            let entry = verifiers.entry(name.to_owned()).or_insert_with(fresh);
            if entry.0 != key {
                *entry = fresh();
            }
            if let Some(f) = floor {
                entry.1.set_floor(f);
            }
            let before = entry.1.newest();
            let r = entry.1.verify_headers(head, now);
            if entry.1.newest() > before {
                newest = Some(entry.1.newest());
            }
            r
        })
        .await?;
        // Best effort: a store that cannot write (disk full) must not
        // refuse senders; only the floor across a restart is then older.
        if let Some(ts) = newest {
            let _ = self.store.set_auth_floor(&floor_name, ts).await;
        }
        Ok(authed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, Verifier)>> {
        // Each use is one lookup or one verification: a panic in another
        // cannot leave an entry half updated.
        self.verifiers.lock().unwrap_or_else(|e| e.into_inner())
    }
}
