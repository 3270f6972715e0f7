//! RESP2 request decoding and RESP2/RESP3 reply encoding, as Redis does it.
//!
//! The decoder follows Redis's `processInputBuffer` closely enough that a
//! client (or scanner) cannot tell the difference: a request starting with
//! `*` is multibulk, anything else is an inline command split with the rules
//! of `sdssplitargs` (quotes, `\xNN` escapes, "unbalanced quotes"). The quirks
//! are kept on purpose: the two bytes after a bulk are skipped without being
//! checked, the `\r` of a length line need only be followed by *some* byte,
//! and a NUL byte hides a line end (Redis searches with `strchr`), so such a
//! request waits until the 64 KiB "too big" limit, exactly like the real
//! server.
//!
//! Unlike Redis, every length here is a hard limit chosen by the caller
//! ([`Limits`]), and nothing is allocated ahead of the bytes received: a
//! declared `*2147483647` or `$2147483647` reserves nothing; an argument is
//! copied out only once all its bytes are buffered.
//!
//! The decoder is incremental ([`RequestDecoder::decode`] reports how many
//! bytes it consumed, possibly without a finished request) so a request that
//! arrives in many reads is scanned once, not once per read.

use crate::offset_of;
use std::fmt::Write as _;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline request, and the
/// longest a length line may grow before it is refused.
pub const INLINE_MAX: usize = 64 * 1024;

/// Longest string `string2ll` accepts (Redis's `LONG_STR_SIZE` is 21, and
/// it rejects `slen >= LONG_STR_SIZE`).
const LONG_STR_SIZE: usize = 21;

/// Most nested levels [`parse_value`] accepts in a reply.
pub const MAX_VALUE_DEPTH: usize = 16;

/// Limits applied while decoding requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument in bytes (Redis: `proto-max-bulk-len`).
    pub max_bulk_len: u64,
    /// Most arguments in one multibulk request (Redis 5/6: 1048576).
    pub max_multibulk_len: u64,
    /// Whether the server applies the small pre-authentication limits
    /// (Redis 5.0.14+, 6.0.16+, 6.2.6+, 7.x: at most 10 arguments and 16384
    /// bytes per argument before AUTH).
    pub unauth_limits: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 8 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            unauth_limits: true,
        }
    }
}

/// Why a request was refused. Each maps to Redis's exact reply
/// ([`ProtoError::reply_text`]); Redis then closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// More than [`INLINE_MAX`] bytes without a line end.
    #[error("too big inline request")]
    TooBigInline,
    /// An inline request with a quote left open (or a closing quote not
    /// followed by a space).
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` count line longer than [`INLINE_MAX`].
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    /// A `*` count that is not a number or is above the limit.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A count above 10 before authentication.
    #[error("unauthenticated multibulk length")]
    UnauthMultibulkLength,
    /// A `$` length line longer than [`INLINE_MAX`].
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// Something other than `$` where a bulk length was due.
    #[error("expected '$', got {0:#04x}")]
    ExpectedDollar(u8),
    /// A `$` length that is not a number, negative or above the limit.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// A bulk above 16384 bytes before authentication.
    #[error("unauthenticated bulk length")]
    UnauthBulkLength,
}

impl ProtoError {
    /// The error line Redis sends (without `-` and CRLF), as bytes because
    /// `expected '$', got 'X'` echoes an arbitrary byte.
    pub fn reply_text(&self) -> Vec<u8> {
        let tail: &str = match self {
            ProtoError::TooBigInline => "too big inline request",
            ProtoError::UnbalancedQuotes => "unbalanced quotes in request",
            ProtoError::TooBigMbulkCount => "too big mbulk count string",
            ProtoError::InvalidMultibulkLength => "invalid multibulk length",
            ProtoError::UnauthMultibulkLength => "unauthenticated multibulk length",
            ProtoError::TooBigBulkCount => "too big bulk count string",
            ProtoError::InvalidBulkLength => "invalid bulk length",
            ProtoError::UnauthBulkLength => "unauthenticated bulk length",
            ProtoError::ExpectedDollar(b) => {
                let mut v = b"ERR Protocol error: expected '$', got '".to_vec();
                // addReplyErrorFormat maps CR and LF to spaces so the reply
                // stays one line.
                v.push(if *b == b'\r' || *b == b'\n' { b' ' } else { *b });
                v.push(b'\'');
                return v;
            }
        };
        format!("ERR Protocol error: {tail}").into_bytes()
    }
}

/// How a request was framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `*N` followed by N `$len` bulks.
    Multibulk,
    /// A text line split like a shell would.
    Inline,
}

/// One decoded request. `args` may be empty (`*0`, `*-1`, a blank inline
/// line): Redis runs nothing and sends nothing for those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Arguments, the command name first.
    pub args: Vec<Vec<u8>>,
    /// How it was framed.
    pub framing: Framing,
}

/// What one call to [`RequestDecoder::decode`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input now consumed; the caller drops them from its buffer.
    pub consumed: usize,
    /// A finished request, if one was completed.
    pub request: Option<Request>,
}

/// A multibulk request in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    /// Arguments still to come.
    remaining: u64,
    /// Arguments received so far (each copied only once complete).
    args: Vec<Vec<u8>>,
    /// Length of the bulk whose `$len` line was read, if any.
    bulk_len: Option<usize>,
}

/// Incremental RESP2 request decoder (one per connection).
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    partial: Option<Partial>,
}

impl RequestDecoder {
    /// A decoder applying `limits`.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            partial: None,
        }
    }

    /// True while a multibulk request is half received.
    pub fn in_request(&self) -> bool {
        self.partial.is_some()
    }

    /// Decode from `buf` (the unconsumed input). `auth_required` says whether
    /// the client still has to authenticate (for the pre-auth limits).
    ///
    /// Returns the bytes consumed, which can be non-zero without a request
    /// (part of a multibulk request was taken in); call again after removing
    /// them, and after reading more when nothing was consumed. After an
    /// error the connection must be closed: the decoder state is undefined.
    pub fn decode(&mut self, buf: &[u8], auth_required: bool) -> Result<Progress, ProtoError> {
        if self.partial.is_none() {
            match buf.first() {
                None => {
                    return Ok(Progress {
                        consumed: 0,
                        request: None,
                    });
                }
                Some(b'*') => {}
                Some(_) => return decode_inline(buf),
            }
            // The count line.
            let Some(cr) = find_before_nul(buf, b'\r') else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtoError::TooBigMbulkCount);
                }
                return Ok(Progress {
                    consumed: 0,
                    request: None,
                });
            };
            // Redis wants one more byte after the CR (and never looks at it).
            let Some((line, after)) = split_skip(buf, cr, 2) else {
                return Ok(Progress {
                    consumed: 0,
                    request: None,
                });
            };
            let count = line
                .get(1..)
                .and_then(string2ll)
                .ok_or(ProtoError::InvalidMultibulkLength)?;
            if count > 0 && count as u64 > self.limits.max_multibulk_len {
                return Err(ProtoError::InvalidMultibulkLength);
            }
            if count > 10 && auth_required && self.limits.unauth_limits {
                return Err(ProtoError::UnauthMultibulkLength);
            }
            if count <= 0 {
                return Ok(Progress {
                    consumed: offset_of(buf, after),
                    request: Some(Request {
                        args: Vec::new(),
                        framing: Framing::Multibulk,
                    }),
                });
            }
            self.partial = Some(Partial {
                remaining: count as u64,
                args: Vec::new(),
                bulk_len: None,
            });
            let (request, rest) = self.continue_multibulk(after, auth_required)?;
            return Ok(Progress {
                consumed: offset_of(buf, rest),
                request,
            });
        }
        let (request, rest) = self.continue_multibulk(buf, auth_required)?;
        Ok(Progress {
            consumed: offset_of(buf, rest),
            request,
        })
    }

    /// Takes in what `buf` holds of the request in progress: the request if
    /// it is finished, and the bytes not consumed.
    fn continue_multibulk<'a>(
        &mut self,
        buf: &'a [u8],
        auth_required: bool,
    ) -> Result<(Option<Request>, &'a [u8]), ProtoError> {
        let limits = self.limits;
        let Some(partial) = self.partial.as_mut() else {
            return Ok((None, buf));
        };
        let mut rest = buf;
        while let Some(left) = partial.remaining.checked_sub(1) {
            let len = match partial.bulk_len {
                Some(len) => len,
                None => {
                    let Some(cr) = find_before_nul(rest, b'\r') else {
                        if rest.len() > INLINE_MAX {
                            return Err(ProtoError::TooBigBulkCount);
                        }
                        break;
                    };
                    let Some((line, after)) = split_skip(rest, cr, 2) else {
                        break;
                    };
                    // Not `line.first()`: an empty line is `got '\r'`.
                    match rest.first() {
                        Some(b'$') => {}
                        Some(&other) => return Err(ProtoError::ExpectedDollar(other)),
                        None => break,
                    }
                    let ll = line
                        .get(1..)
                        .and_then(string2ll)
                        .ok_or(ProtoError::InvalidBulkLength)?;
                    if ll < 0 || ll as u64 > limits.max_bulk_len {
                        return Err(ProtoError::InvalidBulkLength);
                    }
                    if ll > 16384 && auth_required && limits.unauth_limits {
                        return Err(ProtoError::UnauthBulkLength);
                    }
                    let len = usize::try_from(ll).map_err(|_| ProtoError::InvalidBulkLength)?;
                    rest = after;
                    partial.bulk_len = Some(len);
                    len
                }
            };
            // The bulk and the two bytes after it (Redis skips them unread).
            if len.checked_add(2).is_none() {
                return Err(ProtoError::InvalidBulkLength);
            }
            let Some((bulk, after)) = split_skip(rest, len, 2) else {
                break;
            };
            partial.args.push(bulk.to_vec());
            rest = after;
            partial.bulk_len = None;
            partial.remaining = left;
        }
        if partial.remaining == 0 {
            let args = std::mem::take(&mut partial.args);
            self.partial = None;
            return Ok((
                Some(Request {
                    args,
                    framing: Framing::Multibulk,
                }),
                rest,
            ));
        }
        Ok((None, rest))
    }
}

fn decode_inline(buf: &[u8]) -> Result<Progress, ProtoError> {
    // The split cannot fail once the LF is found.
    let Some((mut line, after)) = find_before_nul(buf, b'\n').and_then(|nl| split_skip(buf, nl, 1))
    else {
        if buf.len() > INLINE_MAX {
            return Err(ProtoError::TooBigInline);
        }
        return Ok(Progress {
            consumed: 0,
            request: None,
        });
    };
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    let args = split_args(line).ok_or(ProtoError::UnbalancedQuotes)?;
    Ok(Progress {
        consumed: offset_of(buf, after),
        request: Some(Request {
            args,
            framing: Framing::Inline,
        }),
    })
}

/// `buf[..at]` and what follows the `skip` bytes after it, if `buf` holds
/// them all.
fn split_skip(buf: &[u8], at: usize, skip: usize) -> Option<(&[u8], &[u8])> {
    let (head, tail) = buf.split_at_checked(at)?;
    Some((head, tail.get(skip..)?))
}

/// Position of `needle`, as C's `strchr` would see it: a NUL ends the search.
fn find_before_nul(hay: &[u8], needle: u8) -> Option<usize> {
    for (i, &b) in hay.iter().enumerate() {
        if b == needle {
            return Some(i);
        }
        if b == 0 {
            return None;
        }
    }
    None
}

/// Redis's `string2ll`: strict decimal, no `+`, no leading zeros, no spaces.
pub fn string2ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= LONG_STR_SIZE {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        let d = char::from(d).to_digit(10)?;
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    if negative {
        // Down to i64::MIN, whose magnitude is one past i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The byte two hex digits spell, if both are hex digits.
fn hex_byte(h: u8, l: u8) -> Option<u8> {
    let h = char::from(h).to_digit(16)?;
    let l = char::from(l).to_digit(16)?;
    u8::try_from(h.checked_mul(16)?.checked_add(l)?).ok()
}

/// What follows the first `n` bytes of `s`; empty when `s` is shorter.
fn skip(s: &[u8], n: usize) -> &[u8] {
    s.get(n..).unwrap_or_default()
}

/// The byte `k` places into `s`, as a C string reads it: past the end is NUL.
fn byte_at(s: &[u8], k: usize) -> u8 {
    s.get(k).copied().unwrap_or(0)
}

/// Split an inline request as Redis's `sdssplitargs` does; `None` is the
/// "unbalanced quotes" case. The line is treated as a C string: it ends at
/// the first NUL.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    // What is left of the line; `byte_at(rest, 0)` is the C code's `*p`.
    let mut rest = line;
    let mut out = Vec::new();
    loop {
        let Some(start) = rest.iter().position(|&b| !is_c_space(b)) else {
            return Some(out);
        };
        rest = skip(rest, start);
        let mut cur = Vec::new();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            let c = byte_at(rest, 0);
            if inq {
                if c == b'\\' && byte_at(rest, 1) == b'x' {
                    if let Some(b) = hex_byte(byte_at(rest, 2), byte_at(rest, 3)) {
                        cur.push(b);
                        rest = skip(rest, 3);
                    } else {
                        // `\x` without two hex digits: the generic escape.
                        cur.push(b'x');
                        rest = skip(rest, 1);
                    }
                } else if c == b'\\' && byte_at(rest, 1) != 0 {
                    rest = skip(rest, 1);
                    cur.push(match byte_at(rest, 0) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    let next = byte_at(rest, 1);
                    if next != 0 && !is_c_space(next) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if c == b'\\' && byte_at(rest, 1) == b'\'' {
                    rest = skip(rest, 1);
                    cur.push(b'\'');
                } else if c == b'\'' {
                    let next = byte_at(rest, 1);
                    if next != 0 && !is_c_space(next) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    cur.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    other => cur.push(other),
                }
            }
            if c != 0 {
                rest = skip(rest, 1);
            }
        }
        out.push(cur);
    }
}

/// Encode a request as a multibulk (what clients send).
pub fn encode_request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = write!(Counter(&mut out), "*{}\r\n", args.len());
    for a in args {
        let a = a.as_ref();
        let _ = write!(Counter(&mut out), "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `fmt::Write` into a byte vector.
struct Counter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Counter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Writes replies in RESP2 or RESP3 (chosen per connection by HELLO).
#[derive(Debug, Default)]
pub struct ReplyWriter {
    out: Vec<u8>,
    resp3: bool,
}

impl ReplyWriter {
    /// An empty writer for protocol 2 (`resp3 == false`) or 3.
    pub fn new(resp3: bool) -> Self {
        ReplyWriter {
            out: Vec::new(),
            resp3,
        }
    }
    /// Whether RESP3 types are written.
    pub fn resp3(&self) -> bool {
        self.resp3
    }
    /// Switch protocol (HELLO).
    pub fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }
    /// True when nothing is written.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
    /// Take the bytes written, leaving the writer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
    /// Append raw, already-encoded bytes.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn line(&mut self, prefix: u8, body: &[u8]) {
        self.out.push(prefix);
        // A reply line must stay one line whatever it echoes.
        self.out.extend(
            body.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }
    /// `+status`
    pub fn simple(&mut self, s: &str) {
        self.line(b'+', s.as_bytes());
    }
    /// `-ERR ...`: `e` is the whole line after `-`, e.g. `ERR syntax error`.
    pub fn error(&mut self, e: &[u8]) {
        self.line(b'-', e);
    }
    /// `:n`
    pub fn integer(&mut self, n: i64) {
        let _ = write!(Counter(&mut self.out), ":{n}\r\n");
    }
    /// `$len\r\nbytes\r\n`
    pub fn bulk(&mut self, b: &[u8]) {
        let _ = write!(Counter(&mut self.out), "${}\r\n", b.len());
        self.out.extend_from_slice(b);
        self.out.extend_from_slice(b"\r\n");
    }
    /// A null bulk: `$-1` (RESP2) or `_` (RESP3).
    pub fn null(&mut self) {
        self.out
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }
    /// A null array: `*-1` (RESP2) or `_` (RESP3).
    pub fn null_array(&mut self) {
        self.out
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }
    /// Array header for `n` elements.
    pub fn array(&mut self, n: usize) {
        let _ = write!(Counter(&mut self.out), "*{n}\r\n");
    }
    /// Map header for `n` pairs (`%n`, or a flat array of 2n in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            let _ = write!(Counter(&mut self.out), "%{n}\r\n");
        } else {
            self.array(n.saturating_mul(2));
        }
    }
    /// Set header for `n` elements (`~n`, or an array in RESP2).
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            let _ = write!(Counter(&mut self.out), "~{n}\r\n");
        } else {
            self.array(n);
        }
    }
    /// Verbatim text (`=len\r\ntxt:...`, a bulk in RESP2).
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            // why it cannot panic: a slice holds at most isize::MAX bytes.
            #[allow(clippy::arithmetic_side_effects)]
            let len = text.len() + 4;
            let _ = write!(Counter(&mut self.out), "={len}\r\ntxt:");
            self.out.extend_from_slice(text);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }
    /// Array of bulks.
    pub fn bulks<A: AsRef<[u8]>>(&mut self, items: &[A]) {
        self.array(items.len());
        for i in items {
            self.bulk(i.as_ref());
        }
    }
}

/// A parsed reply value (used for embedded reply data and in tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+...`
    Simple(Vec<u8>),
    /// `-...`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$n` bulk.
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`.
    Null,
    /// `*n`
    Array(Vec<Value>),
    /// `%n` (pairs, flattened).
    Map(Vec<(Value, Value)>),
    /// `~n`
    Set(Vec<Value>),
}

impl Value {
    /// Encode as RESP2 (maps flattened into arrays, sets as arrays).
    pub fn encode(&self, w: &mut ReplyWriter) {
        match self {
            Value::Simple(s) => w.line(b'+', s),
            Value::Error(e) => w.line(b'-', e),
            Value::Integer(n) => w.integer(*n),
            Value::Bulk(b) => w.bulk(b),
            Value::Null => w.null(),
            Value::Array(v) => {
                w.array(v.len());
                for x in v {
                    x.encode(w);
                }
            }
            Value::Map(m) => {
                w.map(m.len());
                for (k, v) in m {
                    k.encode(w);
                    v.encode(w);
                }
            }
            Value::Set(v) => {
                w.set(v.len());
                for x in v {
                    x.encode(w);
                }
            }
        }
    }

    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Simple(b) => Some(b),
            _ => None,
        }
    }
}

/// Parse one reply value (RESP2 plus RESP3 `%`, `~`, `_`) from `buf`.
/// `Ok(None)` when more bytes are needed. Depth is capped at
/// [`MAX_VALUE_DEPTH`]; element counts are never trusted for allocation.
pub fn parse_value(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtoError> {
    Ok(parse_value_at(buf, 0)?.map(|(value, rest)| (value, offset_of(buf, rest))))
}

/// One value from the front of `buf` and the bytes after it.
fn parse_value_at(buf: &[u8], depth: usize) -> Result<Option<(Value, &[u8])>, ProtoError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(ProtoError::InvalidMultibulkLength);
    }
    // The split cannot fail once the CR LF is found.
    let Some((line, mut rest)) = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .and_then(|nl| split_skip(buf, nl, 2))
    else {
        return Ok(None);
    };
    let Some((&kind, line)) = line.split_first() else {
        return Err(ProtoError::InvalidMultibulkLength);
    };
    let value = match kind {
        b'+' => Value::Simple(line.to_vec()),
        b'-' => Value::Error(line.to_vec()),
        b':' => Value::Integer(string2ll(line).ok_or(ProtoError::InvalidBulkLength)?),
        b'_' => Value::Null,
        b'$' => {
            let n = string2ll(line).ok_or(ProtoError::InvalidBulkLength)?;
            if n < 0 {
                Value::Null
            } else {
                let n = usize::try_from(n).map_err(|_| ProtoError::InvalidBulkLength)?;
                // A bulk ending past usize::MAX is malformed (only a 32-bit
                // target can be asked for one).
                if offset_of(buf, rest).checked_add(n).is_none() {
                    return Err(ProtoError::InvalidBulkLength);
                }
                // The bulk, then two bytes that are not checked.
                let Some((bulk, after)) = split_skip(rest, n, 2) else {
                    return Ok(None);
                };
                rest = after;
                Value::Bulk(bulk.to_vec())
            }
        }
        b'*' | b'~' | b'%' => {
            let n = string2ll(line).ok_or(ProtoError::InvalidMultibulkLength)?;
            if n < 0 {
                Value::Null
            } else {
                let items = if kind == b'%' { n.saturating_mul(2) } else { n };
                let mut v = Vec::new();
                for _ in 0..items {
                    // `depth` is at most MAX_VALUE_DEPTH here.
                    match parse_value_at(rest, depth.saturating_add(1))? {
                        Some((x, after)) => {
                            v.push(x);
                            rest = after;
                        }
                        None => return Ok(None),
                    }
                }
                match kind {
                    b'*' => Value::Array(v),
                    b'~' => Value::Set(v),
                    _ => {
                        let mut pairs = Vec::new();
                        let mut it = v.into_iter();
                        while let (Some(k), Some(x)) = (it.next(), it.next()) {
                            pairs.push((k, x));
                        }
                        Value::Map(pairs)
                    }
                }
            }
        }
        _ => return Err(ProtoError::ExpectedDollar(kind)),
    };
    Ok(Some((value, rest)))
}

/// Outcome of decoding a whole input, request by request (fuzzing, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Requests in order (including empty ones).
    pub requests: Vec<Request>,
    /// The error that ended decoding, if any.
    pub error: Option<ProtoError>,
    /// Bytes left over, not yet a whole request (0 after an error).
    pub pending: usize,
}

/// Feed `data` to a fresh decoder in chunks of `chunk` bytes (0 = all at
/// once), the way a connection would, and record what came out.
pub fn decode_all(data: &[u8], chunk: usize, limits: Limits, auth_required: bool) -> Transcript {
    let mut dec = RequestDecoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = Vec::new();
    let step = if chunk == 0 { data.len().max(1) } else { chunk };
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&buf, auth_required) {
                Err(e) => {
                    return Transcript {
                        requests,
                        error: Some(e),
                        pending: 0,
                    };
                }
                Ok(p) => {
                    buf.drain(..p.consumed.min(buf.len()));
                    let got = p.request.is_some();
                    if let Some(r) = p.request {
                        requests.push(r);
                    }
                    if !got && p.consumed == 0 {
                        break;
                    }
                }
            }
        }
    }
    Transcript {
        requests,
        error: None,
        pending: buf.len(),
    }
}

/// Fuzz entry point: decoding must never panic, and must not depend on how
/// the input was split into reads (for inputs that never reach the 64 KiB
/// line limit, where Redis itself depends on the split). Also runs the reply
/// parser over the same bytes.
pub fn fuzz_parse(data: &[u8]) {
    let limits = Limits {
        max_bulk_len: 4096,
        max_multibulk_len: 1024,
        unauth_limits: data.first().is_some_and(|b| b & 1 == 1),
    };
    let whole = decode_all(data, 0, limits, true);
    if data.len() < INLINE_MAX {
        for chunk in [1usize, 7] {
            let parts = decode_all(data, chunk, limits, true);
            assert_eq!(whole, parts, "chunked decoding differs (chunk {chunk})");
        }
    }
    let _ = parse_value(data);
    let _ = split_args(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(data: &[u8]) -> Transcript {
        decode_all(data, 0, Limits::default(), false)
    }

    fn args(t: &Transcript) -> Vec<Vec<Vec<u8>>> {
        t.requests.iter().map(|r| r.args.clone()).collect()
    }

    fn v(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipeline() {
        let t = one(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$3\r\nhi!\r\n");
        assert_eq!(args(&t), vec![v(&["PING"]), v(&["ECHO", "hi!"])]);
        assert_eq!(t.pending, 0);
        assert_eq!(t.error, None);
    }

    #[test]
    fn inline_rules() {
        let t = one(b"set \"a b\" 'c\\'d' \"\\x41\\n\\q\"\r\n  \r\nping\n");
        assert_eq!(
            args(&t),
            vec![
                vec![
                    b"set".to_vec(),
                    b"a b".to_vec(),
                    b"c'd".to_vec(),
                    b"A\nq".to_vec()
                ],
                vec![],
                v(&["ping"])
            ]
        );
        assert_eq!(
            one(b"get \"abc\r\n").error,
            Some(ProtoError::UnbalancedQuotes)
        );
        assert_eq!(
            one(b"get \"a\"b\r\n").error,
            Some(ProtoError::UnbalancedQuotes)
        );
        assert_eq!(one(b"get 'a\r\n").error, Some(ProtoError::UnbalancedQuotes));
        // A quote in the middle of a token opens a quoted part of it.
        assert_eq!(args(&one(b"a\"b c\"\n")), vec![v(&["ab c"])]);
        // Vertical tab separates between tokens but not inside one.
        assert_eq!(args(&one(b"\x0ba\x0bb c\n")), vec![v(&["a\x0bb", "c"])]);
    }

    #[test]
    fn exact_error_texts() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"*x\r\n", b"ERR Protocol error: invalid multibulk length"),
            (b"*1\r\n$x\r\n", b"ERR Protocol error: invalid bulk length"),
            (b"*1\r\n$-1\r\n", b"ERR Protocol error: invalid bulk length"),
            (
                b"*1\r\nx4\r\n",
                b"ERR Protocol error: expected '$', got 'x'",
            ),
            (b"*1\r\n\r\n", b"ERR Protocol error: expected '$', got ' '"),
            (b"*+1\r\n", b"ERR Protocol error: invalid multibulk length"),
            (b"*01\r\n", b"ERR Protocol error: invalid multibulk length"),
        ];
        for (input, want) in cases {
            let t = one(input);
            let e = t.error.unwrap_or_else(|| panic!("no error for {input:?}"));
            assert_eq!(e.reply_text(), want.to_vec(), "{input:?}");
        }
    }

    #[test]
    fn huge_declared_lengths_allocate_nothing() {
        let mut dec = RequestDecoder::new(Limits {
            max_bulk_len: u64::MAX,
            max_multibulk_len: u64::MAX,
            unauth_limits: false,
        });
        let p = dec.decode(b"*2147483647\r\n", false).unwrap();
        assert_eq!(p.consumed, 13);
        assert!(p.request.is_none());
        let part = dec.partial.as_ref().unwrap();
        assert_eq!(part.args.capacity(), 0);
        let p = dec.decode(b"$2147483647\r\n", false).unwrap();
        assert_eq!(p.consumed, 13);
        let part = dec.partial.as_ref().unwrap();
        assert_eq!(part.bulk_len, Some(2147483647));
        assert_eq!(part.args.capacity(), 0);
        // With the default limits both are refused outright.
        assert_eq!(
            one(b"*2147483647\r\n").error,
            Some(ProtoError::InvalidMultibulkLength)
        );
        assert_eq!(
            one(b"*1\r\n$2147483647\r\n").error,
            Some(ProtoError::InvalidBulkLength)
        );
    }

    #[test]
    fn size_limits() {
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(one(&long).error, Some(ProtoError::TooBigInline));
        let mut m = b"*".to_vec();
        m.extend_from_slice(&long);
        assert_eq!(one(&m).error, Some(ProtoError::TooBigMbulkCount));
        let mut b = b"*1\r\n$".to_vec();
        b.extend_from_slice(&long);
        assert_eq!(one(&b).error, Some(ProtoError::TooBigBulkCount));
        // Under the limit it just waits.
        let t = one(&long[..INLINE_MAX]);
        assert_eq!((t.error, t.pending), (None, INLINE_MAX));
    }

    #[test]
    fn unauthenticated_limits() {
        let t = decode_all(b"*11\r\n", 0, Limits::default(), true);
        assert_eq!(t.error, Some(ProtoError::UnauthMultibulkLength));
        let t = decode_all(b"*1\r\n$16385\r\n", 0, Limits::default(), true);
        assert_eq!(t.error, Some(ProtoError::UnauthBulkLength));
        let old = Limits {
            unauth_limits: false,
            ..Limits::default()
        };
        assert_eq!(decode_all(b"*11\r\n", 0, old, true).error, None);
    }

    #[test]
    fn redis_quirks() {
        // The two bytes after a bulk are skipped unchecked.
        assert_eq!(args(&one(b"*1\r\n$4\r\nPINGxx")), vec![v(&["PING"])]);
        // A NUL hides the line end: nothing happens yet.
        let t = one(b"GET a\x00b\r\n");
        assert_eq!((t.requests.len(), t.pending), (0, 9));
        // Zero and negative counts are empty requests.
        assert_eq!(
            args(&one(b"*0\r\n*-1\r\n")),
            vec![Vec::<Vec<u8>>::new(), Vec::new()]
        );
    }

    #[test]
    fn string2ll_matches_redis() {
        assert_eq!(string2ll(b"0"), Some(0));
        assert_eq!(string2ll(b"-0"), None);
        assert_eq!(string2ll(b"007"), None);
        assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(string2ll(b"9223372036854775808"), None);
        assert_eq!(string2ll(b" 1"), None);
        assert_eq!(string2ll(b""), None);
    }

    #[test]
    fn reply_encoding() {
        let mut w = ReplyWriter::new(false);
        w.simple("OK");
        w.error(b"ERR x\r\ny");
        w.integer(-3);
        w.bulk(b"a\r\nb");
        w.null();
        w.null_array();
        w.map(1);
        assert_eq!(
            w.as_bytes(),
            b"+OK\r\n-ERR x  y\r\n:-3\r\n$4\r\na\r\nb\r\n$-1\r\n*-1\r\n*2\r\n"
        );
        let mut w = ReplyWriter::new(true);
        w.null();
        w.map(2);
        w.verbatim(b"hi");
        assert_eq!(w.as_bytes(), b"_\r\n%2\r\n=6\r\ntxt:hi\r\n");
    }

    #[test]
    fn value_round_trip() {
        let raw = b"*3\r\n$3\r\nabc\r\n:5\r\n*2\r\n+ok\r\n$-1\r\n";
        let (val, used) = parse_value(raw).unwrap().unwrap();
        assert_eq!(used, raw.len());
        let mut w = ReplyWriter::new(false);
        val.encode(&mut w);
        assert_eq!(w.as_bytes(), raw);
        assert_eq!(parse_value(&raw[..raw.len() - 1]).unwrap(), None);
        let deep = "*1\r\n".repeat(MAX_VALUE_DEPTH + 2);
        assert!(parse_value(deep.as_bytes()).is_err());
    }

    /// Replays the committed fuzz corpus (and any crash inputs saved there).
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("resp", fuzz_parse);
    }

    proptest! {
        #[test]
        fn encoded_requests_round_trip(reqs in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6), 1..5)) {
            let mut wire = Vec::new();
            for r in &reqs {
                wire.extend(encode_request(r));
            }
            let t = decode_all(&wire, 0, Limits::default(), false);
            prop_assert_eq!(t.error, None);
            prop_assert_eq!(t.pending, 0);
            prop_assert_eq!(args(&t), reqs);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_parse(&data);
        }

        #[test]
        fn resp_like_bytes_chunk_independent(
            parts in proptest::collection::vec(prop_oneof![
                Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                Just(b"\"".to_vec()), Just(b"'".to_vec()), Just(b" ".to_vec()),
                Just(b"\\x4".to_vec()), Just(b"-1".to_vec()), Just(b"\n".to_vec()),
                "[0-9]{1,3}".prop_map(|s| s.into_bytes()),
                "[a-z]{1,4}".prop_map(|s| s.into_bytes()),
            ], 0..60),
            chunk in 1usize..9,
            auth in any::<bool>(),
        ) {
            let data: Vec<u8> = parts.concat();
            let whole = decode_all(&data, 0, Limits::default(), auth);
            let split = decode_all(&data, chunk, Limits::default(), auth);
            prop_assert_eq!(whole, split);
        }

        #[test]
        fn inline_words_round_trip(words in proptest::collection::vec("[!-)+-~&&[^\"']][!-~&&[^\"']]{0,9}", 1..6)) {
            let line = format!("{}\r\n", words.join(" "));
            let t = one(line.as_bytes());
            let want: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            prop_assert_eq!(args(&t), vec![want]);
        }
    }
}
