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
//! characters of `[A-Za-z0-9_-]`), [`HEADER_SIGNATURE`] (lower-case hex),
//! [`HEADER_CONTENT_SHA256`] (the hex SHA-256 of the body, which the
//! signature covers): with the digest in a header a server checks the
//! signature before it reads a byte of the body ([`Verifier::verify_headers`]),
//! so an unsigned sender cannot make it buffer anything, and compares the
//! body with the digest once read ([`body_matches`]).
//!
//! Replies are signed too ([`sign_reply`], [`HEADER_REPLY_SIGNATURE`]): over
//! the status, the request's nonce and the reply body, with the same key,
//! so a client takes an answer only from the holder of its key and only for
//! the request it sent (an old answer cannot be replayed to it).
//!
//! Replays across a server restart, when the nonces in memory are gone,
//! are refused by a floor: the server persists the newest timestamp it
//! accepted from each sender and refuses anything signed at or before it
//! ([`Verifier::set_floor`]).

use std::collections::{HashSet, VecDeque};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Header carrying the request time, Unix seconds.
pub const HEADER_TIMESTAMP: &str = "x-mirage-timestamp";
/// Header carrying the request's one-time nonce.
pub const HEADER_NONCE: &str = "x-mirage-nonce";
/// Header carrying the hex HMAC-SHA256 signature.
pub const HEADER_SIGNATURE: &str = "x-mirage-signature";
/// Header carrying the hex SHA-256 of the body.
pub const HEADER_CONTENT_SHA256: &str = "x-mirage-content-sha256";
/// Header carrying the hex HMAC-SHA256 of a reply ([`sign_reply`]).
pub const HEADER_REPLY_SIGNATURE: &str = "x-mirage-reply-signature";
/// Header naming the sensor that signs an ingest request: the server keeps
/// each sensor's nonces and replay floor apart, so one cannot crowd out
/// another's. Its value is a [`valid_sender_name`].
pub const HEADER_SENSOR: &str = "x-mirage-sensor";

/// Whether `name` may stand in [`HEADER_SENSOR`]: 1 to 64 characters of
/// `[A-Za-z0-9._-]`.
pub fn valid_sender_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(sender_name_byte)
}

/// `name` in the form [`valid_sender_name`] allows: other characters
/// become `_`, cut at 64 (empty stays empty: the server then files the
/// sender under `-`).
pub fn sender_name(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii() && sender_name_byte(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn sender_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Shortest key accepted, bytes.
pub const MIN_KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The bytes that are signed.
fn canonical_digest(
    method: &str,
    path: &str,
    timestamp: i64,
    nonce: &str,
    body_hex: &str,
) -> String {
    format!(
        "{}\n{path}\n{timestamp}\n{nonce}\n{body_hex}",
        method.to_ascii_uppercase()
    )
}

/// The hex SHA-256 of `body`, as [`HEADER_CONTENT_SHA256`] carries it.
pub fn body_digest(body: &[u8]) -> String {
    crate::event::hex(&Sha256::digest(body))
}

/// Whether `body` is the one whose digest the signature covered.
pub fn body_matches(digest_hex: &str, body: &[u8]) -> bool {
    use subtle_eq::ct_eq;
    ct_eq(
        body_digest(body).as_bytes(),
        digest_hex.to_ascii_lowercase().as_bytes(),
    )
}

mod subtle_eq {
    /// Constant-time comparison of equal-length byte strings.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn reply_canonical(status: u16, request_nonce: &str, body: &[u8]) -> String {
    format!("REPLY\n{status}\n{request_nonce}\n{}", body_digest(body))
}

/// The [`HEADER_REPLY_SIGNATURE`] of a reply with `status` and `body` to
/// the request that carried `request_nonce`.
pub fn sign_reply(key: &[u8], status: u16, request_nonce: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(reply_canonical(status, request_nonce, body).as_bytes());
    crate::event::hex(&mac.finalize().into_bytes())
}

/// Check a reply's signature (`None`: the header was missing).
pub fn verify_reply(
    key: &[u8],
    status: u16,
    request_nonce: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), AuthError> {
    let sig = signature
        .and_then(decode_hex)
        .filter(|b| b.len() == 32)
        .ok_or(AuthError::Malformed)?;
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(reply_canonical(status, request_nonce, body).as_bytes());
    mac.verify_slice(&sig).map_err(|_| AuthError::BadSignature)
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
    sign_digest(key, method, path, timestamp, nonce, &body_digest(body))
}

/// The four authentication headers for a request sent now, with a fresh
/// random nonce: `[(name, value); 4]` (timestamp, nonce, signature, body
/// digest). The nonce is the second; a client keeps it to check the reply.
pub fn signed_headers(
    key: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> [(&'static str, String); 4] {
    let ts = chrono::Utc::now().timestamp();
    // UUID v7: 74 random bits, plenty for a nonce that also has to be
    // unique only within the freshness window.
    let nonce = crate::new_id().simple().to_string();
    let digest = body_digest(body);
    let sig = sign_digest(key, method, path, ts, &nonce, &digest);
    [
        (HEADER_TIMESTAMP, ts.to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, sig),
        (HEADER_CONTENT_SHA256, digest),
    ]
}

fn sign_digest(key: &[u8], method: &str, path: &str, ts: i64, nonce: &str, digest: &str) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(canonical_digest(method, path, ts, nonce, digest).as_bytes());
    crate::event::hex(&mac.finalize().into_bytes())
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

/// A request's headers, before its body is read: what
/// [`Verifier::verify_headers`] checks. Values are `None` when absent.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
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
    /// [`HEADER_CONTENT_SHA256`] value.
    pub content_sha256: Option<&'a str>,
}

/// Checks signed requests: freshness and the replay floor, signature, then
/// nonce replay (in that order, so an unsigned flood cannot fill the nonce
/// cache).
#[derive(Debug)]
pub struct Verifier {
    key: Vec<u8>,
    max_skew_secs: i64,
    nonces: NonceCache,
    floor: i64,
    newest: i64,
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
            floor: i64::MIN,
            newest: i64::MIN,
        }
    }

    /// The key requests are checked with (replies are signed with it).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Refuse every request signed at or before `ts` (Unix seconds): the
    /// newest timestamp accepted before a restart, whose nonces are gone.
    pub fn set_floor(&mut self, ts: i64) {
        self.floor = self.floor.max(ts);
    }

    /// The newest timestamp accepted so far (`i64::MIN`: none), for the
    /// caller to persist as the next start's floor.
    pub fn newest(&self) -> i64 {
        self.newest
    }

    /// Verify a request from its headers alone, trusting the body digest
    /// they carry; the caller then reads the body and refuses it unless
    /// [`body_matches`] the digest.
    pub fn verify_headers(&mut self, req: &SignedHeaders<'_>, now: i64) -> Result<(), AuthError> {
        let (Some(ts), Some(nonce), Some(sig), Some(digest)) =
            (req.timestamp, req.nonce, req.signature, req.content_sha256)
        else {
            return Err(AuthError::Malformed);
        };
        let (method, path) = (req.method, req.path);
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthError::Malformed);
        }
        let digest = digest.to_ascii_lowercase();
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
        if (now - ts).abs() > self.max_skew_secs || ts <= self.floor {
            return Err(AuthError::Stale);
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(canonical_digest(method, path, ts, nonce, &digest).as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| AuthError::BadSignature)?;
        // A nonce only has to be remembered while its timestamp is fresh.
        if !self.nonces.insert(nonce, ts + self.max_skew_secs, now) {
            return Err(AuthError::Replayed);
        }
        self.newest = self.newest.max(ts);
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

    #[test]
    fn sender_names_are_made_valid() {
        assert!(valid_sender_name("hp-1.dmz_a"));
        assert!(!valid_sender_name("") && !valid_sender_name("a b"));
        assert!(!valid_sender_name(&"a".repeat(65)));
        assert_eq!(sender_name("hp 1/é"), "hp_1__");
        assert!(valid_sender_name(&sender_name(&"ü".repeat(100))));
        assert_eq!(sender_name(""), "");
    }

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
        let digest = body_digest(body);
        let req = SignedHeaders {
            method: "POST",
            path: "/api/v1/events",
            timestamp: Some(&ts),
            nonce: Some(nonce),
            signature: Some(sig),
            content_sha256: Some(&digest),
        };
        v.verify_headers(&req, now)
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
        let digest = body_digest(b"");
        let no_ts = SignedHeaders {
            method: "POST",
            path: "/",
            timestamp: None,
            nonce: Some(nonce),
            signature: Some(&sig),
            content_sha256: Some(&digest),
        };
        assert_eq!(v.verify_headers(&no_ts, 0), Err(AuthError::Malformed));
        // A bad signature must not burn the nonce.
        assert_eq!(check(&mut v, &sig, nonce, 1000, b"{}", 1000), Ok(()));
    }

    #[test]
    fn headers_alone_authenticate_and_the_body_must_match_their_digest() {
        let mut v = Verifier::new(KEY.to_vec(), 300, 100);
        let h = signed_headers(KEY, "POST", "/api/v1/events", b"body");
        let now = chrono::Utc::now().timestamp();
        fn req<'a>(h: &'a [(&str, String); 4], digest: Option<&'a str>) -> SignedHeaders<'a> {
            SignedHeaders {
                method: "POST",
                path: "/api/v1/events",
                timestamp: Some(&h[0].1),
                nonce: Some(&h[1].1),
                signature: Some(&h[2].1),
                content_sha256: digest,
            }
        }
        assert_eq!(
            v.verify_headers(&req(&h, None), now),
            Err(AuthError::Malformed)
        );
        let other = body_digest(b"other");
        assert_eq!(
            v.verify_headers(&req(&h, Some(&other)), now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(v.verify_headers(&req(&h, Some(&h[3].1)), now), Ok(()));
        assert!(body_matches(&h[3].1, b"body"));
        assert!(!body_matches(&h[3].1, b"bodY"));
        // The floor refuses what was signed before a restart.
        let mut again = Verifier::new(KEY.to_vec(), 300, 100);
        again.set_floor(v.newest());
        assert_eq!(
            again.verify_headers(&req(&h, Some(&h[3].1)), now),
            Err(AuthError::Stale)
        );
    }

    #[test]
    fn replies_are_bound_to_key_status_nonce_and_body() {
        let sig = sign_reply(KEY, 200, "nonce-of-the-request", b"{}");
        assert_eq!(
            verify_reply(KEY, 200, "nonce-of-the-request", Some(&sig), b"{}"),
            Ok(())
        );
        for (status, nonce, body) in [
            (503, "nonce-of-the-request", &b"{}"[..]),
            (200, "nonce-of-another-one", b"{}"),
            (200, "nonce-of-the-request", b"{ }"),
        ] {
            assert_eq!(
                verify_reply(KEY, status, nonce, Some(&sig), body),
                Err(AuthError::BadSignature)
            );
        }
        assert_eq!(
            verify_reply(
                b"another key, also thirty-two b..",
                200,
                "nonce-of-the-request",
                Some(&sig),
                b"{}"
            ),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_reply(KEY, 200, "n", None, b"{}"),
            Err(AuthError::Malformed)
        );
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
