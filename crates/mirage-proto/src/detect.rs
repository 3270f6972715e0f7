//! Which protocol a connection speaks, from its first bytes or its port.
//!
//! The catch-all receives every port, so it must guess before it can answer.
//! Clients of client-speaks-first protocols give themselves away in a few
//! bytes (a TLS record header, an HTTP method, `SSH-`, a RESP array, a
//! MongoDB message header, Telnet option negotiation); for
//! server-speaks-first protocols (FTP, SMTP, MySQL…) a real client waits for
//! a banner, so when the client stays silent through the peek window the
//! destination port decides ([`by_port`]).
//!
//! [`detect`] is pure and looks at most [`PEEK_MAX`] bytes; it answers
//! [`Detection::NeedMore`] only while a longer prefix could still change the
//! answer, so the caller stops reading after at most `PEEK_MAX` bytes.

/// Most bytes [`detect`] ever needs to decide.
pub const PEEK_MAX: usize = 24;

/// A recognised protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// A TLS ClientHello record.
    Tls,
    /// An HTTP/1.x request.
    Http,
    /// An SSH version exchange.
    Ssh,
    /// Redis RESP (array) or a Redis inline command.
    Redis,
    /// MongoDB wire protocol (OP_MSG, OP_QUERY).
    Mongodb,
    /// Telnet option negotiation.
    Telnet,
    /// rsync daemon greeting.
    Rsync,
    /// FTP (server speaks first).
    Ftp,
    /// SMTP (server speaks first).
    Smtp,
    /// POP3 (server speaks first).
    Pop3,
    /// IMAP (server speaks first).
    Imap,
    /// MySQL (server speaks first).
    Mysql,
    /// VNC / RFB (server speaks first).
    Vnc,
}

impl Protocol {
    /// The name written in `detect` events.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tls => "tls",
            Protocol::Http => "http",
            Protocol::Ssh => "ssh",
            Protocol::Redis => "redis",
            Protocol::Mongodb => "mongodb",
            Protocol::Telnet => "telnet",
            Protocol::Rsync => "rsync",
            Protocol::Ftp => "ftp",
            Protocol::Smtp => "smtp",
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
            Protocol::Mysql => "mysql",
            Protocol::Vnc => "vnc",
        }
    }
}

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// This protocol.
    Known(Protocol),
    /// Too few bytes to tell; read more (up to [`PEEK_MAX`]).
    NeedMore,
    /// No known client-speaks-first protocol starts like this.
    Unknown,
}

/// HTTP methods, each followed by a space in a request line. WebDAV and
/// the odd ones scanners use are included.
const HTTP_METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"TRACE ",
    b"PATCH ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
    b"SEARCH ",
    b"REPORT ",
];

/// Redis inline commands scanners send bare (`INFO\r\n`); matched
/// case-insensitively, followed by CR, LF or a space.
const REDIS_INLINE: &[&[u8]] = &[
    b"PING",
    b"INFO",
    b"AUTH",
    b"CONFIG",
    b"SLAVEOF",
    b"REPLICAOF",
    b"FLUSHALL",
    b"KEYS",
    b"QUIT",
    b"ECHO",
    b"EVAL",
    b"MODULE",
    b"CLIENT",
    b"DBSIZE",
];

/// Look at the first bytes of a connection.
pub fn detect(b: &[u8]) -> Detection {
    let b = b.get(..PEEK_MAX).unwrap_or(b);
    let Some(&first) = b.first() else {
        return Detection::NeedMore;
    };
    let mut undecided = false;
    let mut check = |d: Detection| -> Option<Protocol> {
        match d {
            Detection::Known(p) => Some(p),
            Detection::NeedMore => {
                undecided = true;
                None
            }
            Detection::Unknown => None,
        }
    };
    let candidates: [fn(&[u8], u8) -> Detection; 8] =
        [tls, ssh, http, resp, redis_inline, telnet, rsync, mongodb];
    for f in candidates {
        if let Some(p) = check(f(b, first)) {
            return Detection::Known(p);
        }
    }
    if undecided && b.len() < PEEK_MAX {
        Detection::NeedMore
    } else {
        Detection::Unknown
    }
}

/// `b` equals `sig` so far: Known when all of `sig` is there, NeedMore when
/// `b` is a proper prefix of it.
fn prefix(b: &[u8], sig: &[u8], p: Protocol) -> Detection {
    prefix_by(b, sig, p, |x, y| x == y)
}

fn prefix_ci(b: &[u8], sig: &[u8]) -> Detection {
    prefix_by(b, sig, Protocol::Redis, u8::eq_ignore_ascii_case)
}

/// [`prefix`] with the byte comparison given: the bytes both have must
/// match (`zip` stops at the shorter one).
fn prefix_by(b: &[u8], sig: &[u8], p: Protocol, eq: impl Fn(&u8, &u8) -> bool) -> Detection {
    if !b.iter().zip(sig).all(|(x, y)| eq(x, y)) {
        Detection::Unknown
    } else if b.len() >= sig.len() {
        Detection::Known(p)
    } else {
        Detection::NeedMore
    }
}

/// TLS record: handshake (22), version 3.x, then a ClientHello (1).
fn tls(b: &[u8], first: u8) -> Detection {
    if first != 0x16 {
        return Detection::Unknown;
    }
    match (b.get(1), b.get(2), b.get(5)) {
        (Some(&3), Some(&minor), _) if minor > 4 => Detection::Unknown,
        (Some(&3), Some(_), Some(&1)) => Detection::Known(Protocol::Tls),
        (Some(&3), Some(_), Some(_)) => Detection::Unknown,
        (Some(&v), _, _) if v != 3 => Detection::Unknown,
        _ => Detection::NeedMore,
    }
}

fn ssh(b: &[u8], first: u8) -> Detection {
    if first != b'S' {
        return Detection::Unknown;
    }
    prefix(b, b"SSH-", Protocol::Ssh)
}

fn http(b: &[u8], first: u8) -> Detection {
    if !first.is_ascii_uppercase() {
        return Detection::Unknown;
    }
    let mut out = Detection::Unknown;
    for m in HTTP_METHODS {
        match prefix(b, m, Protocol::Http) {
            Detection::Known(p) => return Detection::Known(p),
            Detection::NeedMore => out = Detection::NeedMore,
            Detection::Unknown => {}
        }
    }
    out
}

/// `*<digits>\r\n` then a bulk string (`$`), as every RESP client sends.
fn resp(b: &[u8], first: u8) -> Detection {
    if first != b'*' {
        return Detection::Unknown;
    }
    let Some((_, count)) = b.split_first() else {
        return Detection::Unknown;
    };
    // Up to 5 digits are a count; a sixth makes it Unknown (unless nothing
    // follows yet).
    let digits = count
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_digit())
        .count();
    let rest = count.get(digits..).unwrap_or_default();
    if rest.is_empty() {
        return Detection::NeedMore;
    }
    if digits == 0 || digits > 5 {
        return Detection::Unknown;
    }
    prefix(rest, b"\r\n$", Protocol::Redis)
}

fn redis_inline(b: &[u8], first: u8) -> Detection {
    if !first.is_ascii_alphabetic() {
        return Detection::Unknown;
    }
    let mut out = Detection::Unknown;
    for cmd in REDIS_INLINE {
        match prefix_ci(b, cmd) {
            Detection::Known(_) => match b.get(cmd.len()) {
                Some(b'\r' | b'\n' | b' ') => return Detection::Known(Protocol::Redis),
                Some(_) => {}
                None => out = Detection::NeedMore,
            },
            Detection::NeedMore => out = Detection::NeedMore,
            Detection::Unknown => {}
        }
    }
    out
}

/// IAC followed by WILL/WONT/DO/DONT (251-254).
fn telnet(b: &[u8], first: u8) -> Detection {
    if first != 0xff {
        return Detection::Unknown;
    }
    match b.get(1) {
        None => Detection::NeedMore,
        Some(251..=254) => Detection::Known(Protocol::Telnet),
        Some(_) => Detection::Unknown,
    }
}

fn rsync(b: &[u8], first: u8) -> Detection {
    if first != b'@' {
        return Detection::Unknown;
    }
    prefix(b, b"@RSYNCD:", Protocol::Rsync)
}

/// MongoDB header: length (LE i32, 16..48 MiB), request id, response-to,
/// then opcode 2013 (OP_MSG) or 2004 (OP_QUERY).
fn mongodb(b: &[u8], _first: u8) -> Detection {
    if let Some(len) = le_u32(b, 0)
        && !(16..=48 << 20).contains(&len)
    {
        return Detection::Unknown;
    }
    let Some(op) = le_u32(b, 12) else {
        return Detection::NeedMore;
    };
    // A fully zero response-to is what clients send.
    if le_u32(b, 8) != Some(0) {
        return Detection::Unknown;
    }
    match op {
        2013 | 2004 => Detection::Known(Protocol::Mongodb),
        _ => Detection::Unknown,
    }
}

/// The little-endian u32 at byte `at`, if `b` is long enough.
fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..)?.first_chunk()?;
    Some(u32::from_le_bytes(*bytes))
}

/// The protocol a silent client on `port` most likely expects: ports of
/// server-speaks-first services (and SSH and Redis, whose scanners often
/// wait for a banner or send nothing).
pub fn by_port(port: u16) -> Option<Protocol> {
    Some(match port {
        21 | 2121 => Protocol::Ftp,
        22 | 2222 => Protocol::Ssh,
        23 | 2323 => Protocol::Telnet,
        25 | 465 | 587 | 2525 => Protocol::Smtp,
        110 => Protocol::Pop3,
        143 => Protocol::Imap,
        873 => Protocol::Rsync,
        3306 => Protocol::Mysql,
        5900..=5903 => Protocol::Vnc,
        6379 => Protocol::Redis,
        _ => return None,
    })
}

/// Fuzzing entry: `detect` on every prefix must not panic, must decide
/// within [`PEEK_MAX`] bytes, and a Known answer must not change as more
/// bytes arrive.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_detect(data: &[u8]) {
    let mut known = None;
    for n in 0..=data.len().min(PEEK_MAX + 4) {
        let Some(seen) = data.get(..n) else { break };
        let d = detect(seen);
        if n >= PEEK_MAX {
            assert_ne!(d, Detection::NeedMore, "undecided after {n} bytes");
        }
        match (known, d) {
            (Some(k), d) => assert_eq!(d, Detection::Known(k), "changed after {n} bytes"),
            (None, Detection::Known(p)) => known = Some(p),
            _ => {}
        }
    }
    if let Some(&port) = data.first_chunk() {
        let _ = by_port(u16::from_be_bytes(port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(b: &[u8]) -> Option<Protocol> {
        match detect(b) {
            Detection::Known(p) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn real_first_bytes() {
        // curl's ClientHello record header
        assert_eq!(
            known(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
            Some(Protocol::Tls)
        );
        assert_eq!(
            known(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(Protocol::Http)
        );
        assert_eq!(
            known(b"POST /GponForm/diag_Form?images/ HTTP/1.1\r\n"),
            Some(Protocol::Http)
        );
        assert_eq!(known(b"SSH-2.0-OpenSSH_9.2p1\r\n"), Some(Protocol::Ssh));
        assert_eq!(known(b"*1\r\n$7\r\nCOMMAND\r\n"), Some(Protocol::Redis));
        assert_eq!(known(b"INFO\r\n"), Some(Protocol::Redis));
        assert_eq!(known(b"ping\n"), Some(Protocol::Redis));
        assert_eq!(known(&[0xff, 0xfd, 0x18]), Some(Protocol::Telnet));
        assert_eq!(known(b"@RSYNCD: 31.0\n"), Some(Protocol::Rsync));
        // mongosh hello: OP_MSG
        let mut m = 300u32.to_le_bytes().to_vec();
        m.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&2013u32.to_le_bytes());
        assert_eq!(known(&m), Some(Protocol::Mongodb));
    }

    #[test]
    fn prefixes_wait_and_others_are_unknown() {
        assert_eq!(detect(b""), Detection::NeedMore);
        assert_eq!(detect(b"GE"), Detection::NeedMore);
        assert_eq!(detect(b"PROP"), Detection::NeedMore);
        assert_eq!(detect(b"\x16\x03"), Detection::NeedMore);
        assert_eq!(detect(b"*12"), Detection::NeedMore);
        assert_eq!(detect(b"GET/"), Detection::Unknown);
        assert_eq!(detect(b"hello world\r\n"), Detection::Unknown);
        assert_eq!(detect(b"\x00\x00\x00\x00"), Detection::Unknown);
        assert_eq!(detect(b"INFOS\r\n"), Detection::Unknown);
        assert_eq!(detect(b"\x16\x03\x09\xff\x05\x01"), Detection::Unknown);
        assert_eq!(detect(&[0x30; 40]), Detection::Unknown);
    }

    #[test]
    fn silent_ports() {
        assert_eq!(by_port(21), Some(Protocol::Ftp));
        assert_eq!(by_port(3306), Some(Protocol::Mysql));
        assert_eq!(by_port(8443), None);
    }

    #[test]
    fn fuzz_invariants_on_samples() {
        for s in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"*3\r\n$3\r\nset",
            b"\x16\x03\x01\x00\x10\x01",
            b"\xff\xfb\x01",
            &[0u8; 30],
            &[0xffu8; 30],
            b"PROPFIND / HTTP/1.1",
        ] {
            fuzz_detect(s);
        }
        let mut state = 7u32;
        for _ in 0..20_000 {
            let len = (state % 30) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    // bias towards bytes that start signatures
                    match (state >> 24) % 4 {
                        0 => b"*$\r\n GETPOS@S"[(state >> 8) as usize % 13],
                        1 => [0x16, 0x03, 0x01, 0xff, 0xfb][(state >> 8) as usize % 5],
                        _ => (state >> 16) as u8,
                    }
                })
                .collect();
            fuzz_detect(&data);
        }
    }

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("detect", fuzz_detect);
    }
}
