//! HMAC-SHA256 request signing for mirage's HTTP APIs (sensor event ingest,
//! agent policy).
//!
//! A request is signed over everything an attacker on the path could replay
//! or alter: method, path, timestamp, nonce and the SHA-256 of the body,
//! each on its own line. The server accepts it only when the timestamp is
//! within a freshness window of its clock and the nonce was not seen within
//! that window ([`NonceCache`]), so a captured request cannot be replayed,
//! and compares signatures in constant time. This fixes what the seed's
//! scheme (MD5 of timestamp plus key, no body, no nonce) left open.
//!
//! Headers: [`HEADER_TIMESTAMP`] (Unix seconds), [`HEADER_NONCE`] (16 to 64
//! characters of `[A-Za-z0-9_-]`), [`HEADER_SIGNATURE`] (lower-case hex).

use std::collections::{HashSet, VecDeque};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header carrying the request time, Unix seconds.
pub const HEADER_TIMESTAMP: &str = "x-mirage-timestamp";
/// Header carrying the request's one-time nonce.
pub const HEADER_NONCE: &str = "x-mirage-nonce";
/// Header carrying the hex HMAC-SHA256 signature.
pub const HEADER_SIGNATURE: &str = "x-mirage-signature";
/// Shortest key accepted, bytes.
pub const MIN_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The bytes that are signed.
fn canonical(method: &str, path: &str, timestamp: i64, nonce: &str, body: &[u8]) -> String {
    let body_hash = crate::event::hex(&Sha256::digest(body));
    format!(
        "{}\n{path}\n{timestamp}\n{nonce}\n{body_hash}",
        method.to_ascii_uppercase()
    )
}

/// The signature header value for a request.
pub fn sign(
    key: &[u8],
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(canonical(method, path, timestamp, nonce, body).as_bytes());
    crate::event::hex(&mac.finalize().into_bytes())
}

/// The three authentication headers for a request sent now, with a fresh
/// random nonce: `[(name, value); 3]`.
pub fn signed_headers(
    key: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let ts = chrono::Utc::now().timestamp();
    // UUID v7: 74 random bits, plenty for a nonce that also has to be
    // unique only within the freshness window.
    let nonce = crate::new_id().simple().to_string();
    let sig = sign(key, method, path, ts, &nonce, body);
    [
        (HEADER_TIMESTAMP, ts.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, sig),
    ]
}

/// Why a request was refused. Shown to the client (it reveals nothing the
/// client does not already know) and logged at debug level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing or malformed.
    Malformed,
    /// The timestamp is outside the freshness window.
    Stale,
    /// The nonce was already used within the window.
    Replayed,
    /// The signature does not match.
    BadSignature,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthError::Malformed => "missing or malformed authentication headers",
            AuthError::Stale => "request timestamp outside the allowed window",
            AuthError::Replayed => "nonce already used",
            AuthError::BadSignature => "bad signature",
        })
    }
}

impl std::error::Error for AuthError {}

/// A request as received: what [`Verifier::verify`] checks. The header
/// values are `None` when absent.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Request path (without query).
    pub path: &'a str,
    /// [`HEADER_TIMESTAMP`] value.
    pub timestamp: Option<&'a str>,
    /// [`HEADER_NONCE`] value.
    pub nonce: Option<&'a str>,
    /// [`HEADER_SIGNATURE`] value.
    pub signature: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// Checks signed requests: freshness, signature, then nonce replay (in that
/// order, so an unsigned flood cannot fill the nonce cache).
#[derive(Debug)]
pub struct Verifier {
    key: Vec<u8>,
    max_skew_secs: i64,
    nonces: NonceCache,
}

impl Verifier {
    /// A verifier for `key`, accepting timestamps within `max_skew_secs` of
    /// the caller's clock and remembering up to `max_nonces` nonces.
    pub fn new(key: Vec<u8>, max_skew_secs: u64, max_nonces: usize) -> Self {
        let max_skew_secs = i64::try_from(max_skew_secs).unwrap_or(i64::MAX / 4);
        Verifier {
            key,
            max_skew_secs,
            nonces: NonceCache::new(max_nonces),
        }
    }

    /// Verify one request. `now` is the server's clock, Unix seconds.
    pub fn verify(&mut self, req: &SignedRequest<'_>, now: i64) -> Result<(), AuthError> {
        let (Some(ts), Some(nonce), Some(sig)) = (req.timestamp, req.nonce, req.signature) else {
            return Err(AuthError::Malformed);
        };
        let (method, path, body) = (req.method, req.path, req.body);
        let ts: i64 = ts.parse().map_err(|_| AuthError::Malformed)?;
        if !(16..=64).contains(&nonce.len())
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AuthError::Malformed);
        }
        let sig = decode_hex(sig)
            .filter(|b| b.len() == 32)
            .ok_or(AuthError::Malformed)?;
        if (now - ts).abs() > self.max_skew_secs {
            return Err(AuthError::Stale);
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(canonical(method, path, ts, nonce, body).as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        // A nonce only has to be remembered while its timestamp is fresh.
        if !self.nonces.insert(nonce, ts + self.max_skew_secs, now) {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }
}

/// Decode lower- or upper-case hex (keys, signatures); `None` for an odd
/// length, an empty string or a non-hex character.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Nonces seen recently, each kept until its expiry, at most `cap` of them.
/// At the cap, new nonces are refused (reported as replayed) rather than
/// old ones forgotten early: forgetting would reopen the replay window,
/// refusing only delays an honest client's retry.
#[derive(Debug)]
pub struct NonceCache {
    cap: usize,
    seen: HashSet<String>,
    /// (expiry, nonce) in insertion order; expiries are close to monotonic
    /// because timestamps must be fresh.
    order: VecDeque<(i64, String)>,
}

impl NonceCache {
    /// An empty cache holding at most `cap` nonces.
    pub fn new(cap: usize) -> Self {
        NonceCache {
            cap: cap.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Remember `nonce` until `expires` (Unix seconds); false when it is
    /// already known or the cache is full.
    pub fn insert(&mut self, nonce: &str, expires: i64, now: i64) -> bool {
        while let Some((exp, _)) = self.order.front() {
            if *exp >= now {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.seen.remove(&n);
            }
        }
        if self.seen.contains(nonce) || self.seen.len() >= self.cap {
            return false;
        }
        self.seen.insert(nonce.to_owned());
        self.order.push_back((expires, nonce.to_owned()));
        true
    }

    /// Nonces held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn check(
        v: &mut Verifier,
        sig: &str,
        nonce: &str,
        ts: i64,
        body: &[u8],
        now: i64,
    ) -> Result<(), AuthError> {
        let ts = ts.to_string();
        let req = SignedRequest {
            method: "POST",
            path: "/api/v1/events",
            timestamp: Some(&ts),
            nonce: Some(nonce),
            signature: Some(sig),
            body,
        };
        v.verify(&req, now)
    }

    #[test]
    fn accepts_fresh_signed_request_once() {
        let mut v = Verifier::new(KEY.to_vec(), 300, 100);
        let nonce = "n0nce-0000000001";
        let sig = sign(KEY, "post", "/api/v1/events", 1000, nonce, b"{}");
        assert_eq!(check(&mut v, &sig, nonce, 1000, b"{}", 1010), Ok(()));
        assert_eq!(
            check(&mut v, &sig, nonce, 1000, b"{}", 1011),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn rejects_tampering_staleness_and_garbage() {
        let mut v = Verifier::new(KEY.to_vec(), 300, 100);
        let nonce = "n0nce-0000000002";
        let sig = sign(KEY, "POST", "/api/v1/events", 1000, nonce, b"{}");
        assert_eq!(
            check(&mut v, &sig, nonce, 1000, b"{ }", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&mut v, &sig, nonce, 1001, b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&mut v, &sig, nonce, 1000, b"{}", 1301),
            Err(AuthError::Stale)
        );
        let other = sign(
            b"another key, also thirty-two b..",
            "POST",
            "/api/v1/events",
            1000,
            nonce,
            b"{}",
        );
        assert_eq!(
            check(&mut v, &other, nonce, 1000, b"{}", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            check(&mut v, "zz", nonce, 1000, b"{}", 1000),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            check(&mut v, &sig, "short", 1000, b"{}", 1000),
            Err(AuthError::Malformed)
        );
        let no_ts = SignedRequest {
            method: "POST",
            path: "/",
            timestamp: None,
            nonce: Some(nonce),
            signature: Some(&sig),
            body: b"",
        };
        assert_eq!(v.verify(&no_ts, 0), Err(AuthError::Malformed));
        // A bad signature must not burn the nonce.
        assert_eq!(check(&mut v, &sig, nonce, 1000, b"{}", 1000), Ok(()));
    }

    #[test]
    fn nonce_cache_expires_and_is_bounded() {
        let mut c = NonceCache::new(2);
        assert!(c.insert("a", 10, 0));
        assert!(c.insert("b", 10, 0));
        assert!(!c.insert("c", 10, 0), "full: refuse rather than forget");
        assert!(!c.insert("a", 10, 5));
        assert!(c.insert("c", 30, 11), "a and b expired at 10");
        assert_eq!(c.len(), 1);
    }
}
