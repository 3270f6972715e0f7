//! HTTP/1.x requests, bounded: the request line, at most `max_headers`
//! header fields in at most `max_head` bytes, and a body framed by
//! `Content-Length` or `chunked` of at most `max_body` bytes.
//!
//! [`parse_request`] is sans-IO: it looks at the bytes buffered so far and
//! answers "incomplete", one whole request with the bytes it used (so
//! pipelined requests follow in the same buffer), or the error a real
//! server would answer with (400, 413, 414, 501, 505). Nothing is allocated
//! before the bytes it describes have arrived, every length is checked and
//! the chunked decoder refuses sizes past the cap before reading them.
//! [`fuzz_parse`] is the fuzz target's entry point.

use crate::offset_of;

/// Hard limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most bytes of request line plus headers (nginx: 4 x 8 KiB buffers,
    /// one line at most 8 KiB).
    pub max_head: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Most body bytes (nginx `client_max_body_size`, 1 MiB by default).
    pub max_body: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_head: 8192,
            max_headers: 100,
            max_body: 1024 * 1024,
        }
    }
}

/// Why a request was refused; each maps to the status a server sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Malformed request line, header or chunk framing.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request line is longer than the head limit.
    #[error("request URI too long")]
    UriTooLong,
    /// Request line plus headers exceed the limit, or too many headers.
    #[error("request header too large")]
    HeaderTooLarge,
    /// The declared or chunked body exceeds the limit.
    #[error("request entity too large")]
    BodyTooLarge,
    /// A transfer coding other than `chunked`.
    #[error("transfer encoding not implemented")]
    NotImplemented,
    /// A major HTTP version other than 1.
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl HttpError {
    /// The status code a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeaderTooLarge => 400,
            HttpError::BodyTooLarge => 413,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

/// One complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method as sent (case kept).
    pub method: String,
    /// Request target as sent (path and query, or an absolute URI).
    pub target: Vec<u8>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// True when the body was chunked.
    pub chunked: bool,
}

impl Request {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &[u8] {
        split_once(&self.target, b'?').map_or(&self.target, |(path, _)| path)
    }

    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&[u8]> {
        split_once(&self.target, b'?').map(|(_, query)| query)
    }

    /// Whether the connection stays open after the response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or_default();
        let has = |tok: &[u8]| {
            conn.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(tok))
        };
        if self.minor >= 1 {
            !has(b"close")
        } else {
            has(b"keep-alive")
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `s` split around the byte at `at`, which neither half keeps.
fn split_around(s: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    let (before, from_at) = s.split_at_checked(at)?;
    Some((before, from_at.get(1..)?))
}

/// `s` split around its first `sep`, which neither half keeps.
fn split_once(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    split_around(s, s.iter().position(|&b| b == sep)?)
}

/// Index just past the blank line ending the head, if buffered.
fn head_end(buf: &[u8]) -> Option<usize> {
    // The line after each LF: the head ends at the first empty one (LF LF
    // or LF CR LF); what comes before the first LF never counts.
    let (_, mut rest) = split_once(buf, b'\n')?;
    while let Some((line, after)) = split_once(rest, b'\n') {
        if line.is_empty() || line == b"\r" {
            return Some(offset_of(buf, after));
        }
        rest = after;
    }
    None
}

/// Split off one line (without its CR LF or LF).
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// Parse one request from the front of `buf`. `Ok(None)`: more bytes are
/// needed (and may arrive within the limits); `Ok(Some((req, used)))`: a
/// whole request occupying `buf[..used]`.
pub fn parse_request(buf: &[u8], lim: &HttpLimits) -> Result<Option<(Request, usize)>, HttpError> {
    // Empty lines before a request line are skipped, as servers do.
    let skip = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let buf_all = buf;
    let buf = buf.get(skip..).unwrap_or_default();
    // A cap, so it saturates where the sum would have wrapped.
    let head_cap = lim.max_head.saturating_add(4);
    let window = buf.get(..head_cap).unwrap_or(buf);
    // `head_end` answers at most `window.len()`, so the split always succeeds.
    let Some((head, rest)) = head_end(window).and_then(|end| buf.split_at_checked(end)) else {
        if buf.len() > lim.max_head {
            let first_line_done = buf.iter().take(lim.max_head).any(|&b| b == b'\n');
            return Err(if first_line_done {
                HttpError::HeaderTooLarge
            } else {
                HttpError::UriTooLong
            });
        }
        // A request line must start with a token: reject binary garbage
        // (TLS hellos, other protocols) without waiting for a blank line.
        if let Some(&b) = buf.first()
            && !is_tchar(b)
        {
            return Err(HttpError::BadRequest("invalid method"));
        }
        return Ok(None);
    };
    if head.len() > head_cap {
        return Err(HttpError::HeaderTooLarge);
    }
    let mut it = lines(head);
    let line = it.next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), version, None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest("invalid request line"));
    };
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::BadRequest("invalid method"));
    }
    if target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::BadRequest("invalid target"));
    }
    let minor = match version {
        // HTTP/0.9 simple requests are not served.
        None => return Err(HttpError::BadRequest("missing version")),
        Some(v) => {
            let Some(rest) = v.strip_prefix(b"HTTP/") else {
                return Err(HttpError::BadRequest("invalid version"));
            };
            match rest {
                b"1.0" => 0,
                b"1.1" => 1,
                [b'1', b'.', d] if d.is_ascii_digit() => 1,
                [d, b'.', m] if d.is_ascii_digit() && m.is_ascii_digit() => {
                    return Err(HttpError::VersionNotSupported);
                }
                _ => return Err(HttpError::BadRequest("invalid version")),
            }
        }
    };
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    for l in it {
        if l.is_empty() {
            break;
        }
        if headers.len() >= lim.max_headers {
            return Err(HttpError::HeaderTooLarge);
        }
        let Some((name, value)) = split_once(l, b':') else {
            return Err(HttpError::BadRequest("invalid header line"));
        };
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::BadRequest("invalid header name"));
        }
        let value = value.trim_ascii();
        // The name is all tchars, hence ASCII.
        headers.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    let mut req = Request {
        method: String::from_utf8_lossy(method).into_owned(),
        target: target.to_vec(),
        minor,
        headers,
        body: Vec::new(),
        chunked: false,
    };
    if let Some(te) = req.header("transfer-encoding") {
        let last = te.rsplit(|&b| b == b',').next().unwrap_or_default();
        if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(HttpError::NotImplemented);
        }
        req.chunked = true;
        return match dechunk(rest, lim)? {
            None => Ok(None),
            Some((body, after)) => {
                req.body = body;
                Ok(Some((req, offset_of(buf_all, after))))
            }
        };
    }
    let mut len: Option<usize> = None;
    for (n, v) in &req.headers {
        if !n.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::BadRequest("invalid Content-Length"));
        }
        let n: u64 = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
        if len.is_some_and(|l| l as u64 != n) {
            return Err(HttpError::BadRequest("conflicting Content-Length"));
        }
        if n > lim.max_body as u64 {
            return Err(HttpError::BodyTooLarge);
        }
        // `n` is at most `max_body`, a usize, so this always converts.
        len = Some(usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?);
    }
    let len = len.unwrap_or(0);
    let Some((body, after)) = rest.split_at_checked(len) else {
        return Ok(None);
    };
    req.body = body.to_vec();
    Ok(Some((req, offset_of(buf_all, after))))
}

/// Longest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// The line at the front of `buf` without its LF, and the bytes after the
/// LF, if the LF is among the first `MAX_CHUNK_LINE + 1` bytes.
fn chunk_line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = buf
        .iter()
        .take(MAX_CHUNK_LINE + 1)
        .position(|&b| b == b'\n')?;
    split_around(buf, nl)
}

/// A de-chunked body and the bytes after its last chunk and trailers.
type Dechunked<'a> = (Vec<u8>, &'a [u8]);

/// Decode a chunked body at the front of `buf`: `Ok(None)` until the last
/// chunk and trailers have arrived.
fn dechunk<'a>(buf: &'a [u8], lim: &HttpLimits) -> Result<Option<Dechunked<'a>>, HttpError> {
    let mut rest = buf;
    let mut total = 0usize;
    // First pass checks framing and sizes without copying; the body is
    // assembled only once all of it is here.
    let mut spans: Vec<&[u8]> = Vec::new();
    loop {
        let Some((line, after)) = chunk_line(rest) else {
            if rest.len() > MAX_CHUNK_LINE {
                return Err(HttpError::BadRequest("chunk size line too long"));
            }
            return Ok(None);
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let hex = line.split(|&b| b == b';').next().unwrap_or_default();
        let hex = hex.trim_ascii();
        if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(HttpError::BadRequest("invalid chunk size"));
        }
        let size = hex
            .iter()
            .try_fold(0u64, |acc, &d| {
                let v = u64::from(char::from(d).to_digit(16)?);
                acc.checked_mul(16)?.checked_add(v)
            })
            .ok_or(HttpError::BadRequest("invalid chunk size"))?;
        rest = after;
        if size == 0 {
            // Trailer fields until an empty line; they count against the
            // chunk-line limit each and are dropped.
            loop {
                let Some((line, after)) = chunk_line(rest) else {
                    if rest.len() > MAX_CHUNK_LINE {
                        return Err(HttpError::BadRequest("trailer too long"));
                    }
                    return Ok(None);
                };
                rest = after;
                if line == b"\r" || line.is_empty() {
                    let mut body = Vec::with_capacity(total);
                    for span in spans {
                        body.extend_from_slice(span);
                    }
                    return Ok(Some((body, rest)));
                }
            }
        }
        // A size or a total that does not fit a usize is past the cap too.
        let size = usize::try_from(size).map_err(|_| HttpError::BodyTooLarge)?;
        total = total
            .checked_add(size)
            .filter(|&t| t <= lim.max_body)
            .ok_or(HttpError::BodyTooLarge)?;
        // data, then CR LF (or LF)
        let Some((data, after)) = rest.split_at_checked(size) else {
            return Ok(None);
        };
        spans.push(data);
        rest = match after {
            [b'\r', b'\n', next @ ..] | [b'\n', next @ ..] => next,
            [] | [b'\r'] => return Ok(None),
            _ => return Err(HttpError::BadRequest("chunk not followed by CRLF")),
        };
    }
}

/// The byte two hex digits spell, if both are hex digits.
fn hex_byte(h: u8, l: u8) -> Option<u8> {
    let h = char::from(h).to_digit(16)?;
    let l = char::from(l).to_digit(16)?;
    u8::try_from(h.checked_mul(16)?.checked_add(l)?).ok()
}

/// Percent-decode `s` (`+` kept); invalid escapes are kept as they are.
pub fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%'
            && let [h, l, after @ ..] = tail
            && let Some(byte) = hex_byte(*h, *l)
        {
            out.push(byte);
            rest = after;
            continue;
        }
        out.push(b);
        rest = tail;
    }
    out
}

/// Pairs of an `application/x-www-form-urlencoded` body or query, decoded
/// (`+` is a space); at most `max` pairs.
pub fn form_pairs(s: &[u8], max: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    s.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(max)
        .map(|p| {
            let (k, v) = split_once(p, b'=').unwrap_or((p, b""));
            let plus = |x: &[u8]| -> Vec<u8> {
                let x: Vec<u8> = x
                    .iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect();
                percent_decode(&x)
            };
            (plus(k), plus(v))
        })
        .collect()
}

/// Fuzz entry point: parse `data` as a stream of pipelined requests under
/// small and default limits, checking the parser's promises.
pub fn fuzz_parse(data: &[u8]) {
    for lim in [
        HttpLimits::default(),
        HttpLimits {
            max_head: 64,
            max_headers: 2,
            max_body: 16,
        },
    ] {
        let mut buf = data;
        while let Ok(Some((req, used))) = parse_request(buf, &lim) {
            assert!(used > 0 && used <= buf.len());
            assert!(req.body.len() <= lim.max_body);
            assert!(req.headers.len() <= lim.max_headers);
            let _ = req.keep_alive();
            buf = buf.get(used..).unwrap_or_default();
        }
        let _ = form_pairs(data, 16);
        let _ = percent_decode(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Option<(Request, usize)>, HttpError> {
        parse_request(s, &HttpLimits::default())
    }

    #[test]
    fn simple_get_and_pipelining() {
        let two = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\n\r\n";
        let (r, used) = parse(two).unwrap().unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path(), b"/a");
        assert_eq!(r.query(), Some(&b"x=1"[..]));
        assert_eq!(r.header("HOST"), Some(&b"h"[..]));
        assert!(r.keep_alive());
        let (r2, used2) = parse(&two[used..]).unwrap().unwrap();
        assert_eq!(r2.path(), b"/b");
        assert_eq!(r2.minor, 0);
        assert!(!r2.keep_alive());
        assert_eq!(used + used2, two.len());
    }

    #[test]
    fn incomplete_then_complete() {
        let full = b"POST /login HTTP/1.1\r\nContent-Length: 5\r\n\r\nab=cd";
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]).unwrap(), None, "{n}");
        }
        let (r, _) = parse(full).unwrap().unwrap();
        assert_eq!(r.body, b"ab=cd");
    }

    #[test]
    fn chunked_bodies() {
        let req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nNEXT";
        let (r, used) = parse(req).unwrap().unwrap();
        assert_eq!(r.body, b"abcde");
        assert_eq!(&req[used..], b"NEXT");
        for n in 0..req.len() - 4 {
            assert_eq!(parse(&req[..n]).unwrap(), None, "{n}");
        }
        let huge = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert_eq!(parse(huge).unwrap_err(), HttpError::BodyTooLarge);
        let over = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n";
        assert_eq!(parse(over).unwrap_err(), HttpError::BodyTooLarge);
        let gz = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(parse(gz).unwrap_err(), HttpError::NotImplemented);
    }

    #[test]
    fn limits_and_garbage() {
        let bad_len = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(bad_len).unwrap_err().status(), 400);
        let two_len = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(two_len).unwrap_err().status(), 400);
        let big = b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
        assert_eq!(parse(big).unwrap_err().status(), 413);
        let long_uri = [b"GET /".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(parse(&long_uri).unwrap_err(), HttpError::UriTooLong);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..101 {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).unwrap_err(), HttpError::HeaderTooLarge);
        assert_eq!(parse(b"\x16\x03\x01\x02\x00").unwrap_err().status(), 400);
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n").unwrap_err().status(), 505);
        assert_eq!(parse(b"GET /\r\n\r\n").unwrap_err().status(), 400);
    }

    #[test]
    fn forms() {
        let p = form_pairs(b"user=ad%6Din&pass=a+b%21&x", 8);
        assert_eq!(p[0], (b"user".to_vec(), b"admin".to_vec()));
        assert_eq!(p[1], (b"pass".to_vec(), b"a b!".to_vec()));
        assert_eq!(p[2], (b"x".to_vec(), b"".to_vec()));
        assert_eq!(percent_decode(b"%2e%2E/%zz%"), b"../%zz%");
    }

    /// Replays the committed fuzz corpus (and any crash inputs saved there).
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("http", fuzz_parse);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            fuzz_parse(&data);
        }
    }
}
