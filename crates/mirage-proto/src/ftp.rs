//! FTP control connection (RFC 959, RFC 2428, RFC 4217), server side, sans-IO.
//!
//! - Framing: [`LineReader`] takes one command line off a buffer. A line is
//!   whatever precedes `\n` (a trailing `\r` is dropped, as vsftpd does for
//!   clients that send bare LF). A line longer than the limit is never
//!   buffered whole: the reader reports [`Frame::TooLong`] once and then
//!   discards bytes up to the next `\n`, so an endless line costs nothing.
//! - Commands: [`Command::parse`] splits the verb (upper-cased, at most
//!   [`MAX_VERB`] bytes) from its argument, skipping the Telnet IAC
//!   sequences clients put before an urgent ABOR.
//! - Data-connection addresses: [`parse_port`] (`h1,h2,h3,h4,p1,p2`),
//!   [`parse_eprt`] (`|1|addr|port|`, any delimiter), and the replies that
//!   announce a passive listener, [`pasv_reply`] and [`epsv_reply`].
//! - Replies: [`reply`] and [`reply_multi`] frame one- and multi-line
//!   replies; text is cleaned of CR/LF so echoed attacker bytes cannot
//!   forge extra reply lines.
//!
//! [`fuzz_parse`] is the fuzz target's entry point.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

/// Longest command line kept, in bytes, without its line ending (vsftpd's
/// `VSFTP_MAX_COMMAND_LINE`, 4 KiB).
pub const MAX_LINE: usize = 4096;
/// Longest verb recognised; a longer first word is kept as the verb, cut.
pub const MAX_VERB: usize = 16;

/// One framing result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line (without `\r\n`).
    Line(&'a [u8]),
    /// The line in progress passed the limit: what arrived of it so far
    /// (at most the limit) is given once, for the record; the rest of it is
    /// dropped as it arrives.
    TooLong(&'a [u8]),
}

/// Splits a byte stream into command lines with a hard length limit.
#[derive(Debug, Clone)]
pub struct LineReader {
    max: usize,
    /// Inside an over-long line: drop bytes until the next `\n`.
    skipping: bool,
}

impl LineReader {
    /// A reader for lines of at most `max` bytes (not counting `\r\n`).
    pub fn new(max: usize) -> Self {
        LineReader {
            max: max.max(1),
            skipping: false,
        }
    }

    /// The next frame in `buf` and how many bytes it consumed. `(None, n)`
    /// means: drop `n` bytes (maybe 0) and read more.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> (Option<Frame<'a>>, usize) {
        let nl = first_line(buf);
        if self.skipping {
            return match nl {
                Some((_, used)) => {
                    self.skipping = false;
                    (None, used)
                }
                None => (None, buf.len()),
            };
        }
        match nl {
            Some((mut line, used)) => {
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                match line.split_at_checked(self.max) {
                    Some((kept, over)) if !over.is_empty() => (Some(Frame::TooLong(kept)), used),
                    _ => (Some(Frame::Line(line)), used),
                }
            }
            // One byte of slack for a `\r` still to be followed by `\n`.
            None => match buf.split_at_checked(self.max) {
                Some((kept, over)) if over.len() > 1 => {
                    self.skipping = true;
                    (Some(Frame::TooLong(kept)), buf.len())
                }
                _ => (None, 0),
            },
        }
    }

    /// True while the rest of an over-long line is being dropped.
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }
}

/// The bytes of `buf` before its first `\n`, and how many bytes the line
/// takes with the `\n`; `None` while no `\n` has arrived.
fn first_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let with_nl = buf.split_inclusive(|&b| b == b'\n').next()?;
    let line = with_nl.strip_suffix(b"\n")?;
    Some((line, with_nl.len()))
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The verb, upper-cased ASCII (`USER`, `RETR`); at most [`MAX_VERB`]
    /// bytes of the first word, lossily decoded.
    pub verb: String,
    /// Everything after the first space (may be empty, may hold spaces).
    pub arg: &'a [u8],
    /// True when the verb is not plain ASCII letters (binary garbage or a
    /// different protocol).
    pub garbage: bool,
}

impl<'a> Command<'a> {
    /// Split `line` into verb and argument.
    pub fn parse(line: &'a [u8]) -> Command<'a> {
        let line = skip_telnet(line);
        let mut halves = line.splitn(2, |&b| b == b' ');
        let word = halves.next().unwrap_or_default();
        let arg = halves.next().unwrap_or_default();
        let cut = word.get(..MAX_VERB).unwrap_or(word);
        let garbage = word.is_empty()
            || word.len() > MAX_VERB
            || !word.iter().all(|b| b.is_ascii_alphabetic() || *b == b'@');
        let verb = String::from_utf8_lossy(cut).to_ascii_uppercase();
        Command { verb, arg, garbage }
    }
}

/// Skip Telnet `IAC x` pairs (e.g. `IAC IP IAC DM` before `ABOR`).
fn skip_telnet(mut line: &[u8]) -> &[u8] {
    while let [0xff, _, rest @ ..] = line {
        line = rest;
    }
    line
}

/// Parse a PORT argument `h1,h2,h3,h4,p1,p2` (each 0-255, optional spaces).
pub fn parse_port(arg: &[u8]) -> Option<SocketAddrV4> {
    let text = std::str::from_utf8(arg).ok()?;
    let mut v = [0u8; 6];
    let mut parts = text.trim().split(',');
    for slot in &mut v {
        let p = parts.next()?.trim();
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = p.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let [h1, h2, h3, h4, p1, p2] = v;
    let port = u16::from(p1) << 8 | u16::from(p2);
    Some(SocketAddrV4::new(Ipv4Addr::new(h1, h2, h3, h4), port))
}

/// What an EPRT argument says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eprt {
    /// A well-formed address.
    Addr(SocketAddr),
    /// A network protocol other than 1 (IPv4) or 2 (IPv6).
    BadProtocol,
}

/// Parse an EPRT argument `<d>proto<d>addr<d>port<d>` (RFC 2428; the
/// delimiter is the first byte, printable ASCII 33-126).
pub fn parse_eprt(arg: &[u8]) -> Option<Eprt> {
    let text = std::str::from_utf8(arg).ok()?.trim();
    let d = text.chars().next()?;
    if !(d.is_ascii_graphic()) || d.is_ascii_digit() || d == '.' || d == ':' {
        return None;
    }
    let parts: Vec<&str> = text.split(d).collect();
    let &["", proto, addr, port, ""] = parts.as_slice() else {
        return None;
    };
    let ip: IpAddr = match proto {
        "1" => IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?),
        "2" => IpAddr::V6(addr.parse::<Ipv6Addr>().ok()?),
        p if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            return Some(Eprt::BadProtocol);
        }
        _ => return None,
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    Some(Eprt::Addr(SocketAddr::new(ip, port)))
}

/// The PASV reply text (after `227 `): `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn pasv_reply(ip: Ipv4Addr, port: u16) -> String {
    let o = ip.octets();
    format!(
        "Entering Passive Mode ({},{},{},{},{},{}).",
        o[0],
        o[1],
        o[2],
        o[3],
        port >> 8,
        port & 0xff
    )
}

/// The EPSV reply text (after `229 `): `Entering Extended Passive Mode (|||port|)`.
pub fn epsv_reply(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Parse a PASV/227 reply back into its address (what a client does; used
/// by tests and by the fuzz target to check the round trip).
pub fn parse_pasv_reply(text: &str) -> Option<SocketAddrV4> {
    let (_, after_open) = text.split_once('(')?;
    let (inside, _) = after_open.split_once(')')?;
    parse_port(inside.as_bytes())
}

/// Replace CR and LF (and NUL) in reply text with spaces, so text that
/// echoes attacker bytes stays on one reply line.
pub fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A one-line reply: `CODE text\r\n`.
pub fn reply(code: u16, text: &str) -> Vec<u8> {
    format!("{code} {}\r\n", clean_text(text)).into_bytes()
}

/// A multi-line reply: `CODE-first`, then each of `lines` as given (each
/// should start with a space so no line can look like an end line), then
/// `CODE last`.
pub fn reply_multi(code: u16, first: &str, lines: &[String], last: &str) -> Vec<u8> {
    let mut out = format!("{code}-{}\r\n", clean_text(first));
    for l in lines {
        out.push_str(&clean_text(l));
        out.push_str("\r\n");
    }
    out.push_str(&format!("{code} {}\r\n", clean_text(last)));
    out.into_bytes()
}

/// Fuzz entry point: frame `data` into lines under several limits and
/// feed in several chunkings, parse every line as a command and as PORT and
/// EPRT arguments. Must never panic, and must consume every byte.
pub fn fuzz_parse(data: &[u8]) {
    for max in [1usize, 8, 64, MAX_LINE] {
        for chunk in [1usize, 7, data.len().max(1)] {
            let mut reader = LineReader::new(max);
            let mut buf: Vec<u8> = Vec::new();
            let mut lines = 0usize;
            for piece in data.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    let (frame, used) = reader.next(&buf);
                    assert!(used <= buf.len());
                    let progressed = used > 0;
                    if let Some(f) = frame {
                        lines = lines.saturating_add(1);
                        let line = match f {
                            Frame::Line(l) => l,
                            Frame::TooLong(l) => {
                                assert!(l.len() <= max);
                                l
                            }
                        };
                        assert!(line.len() <= max);
                        let cmd = Command::parse(line);
                        assert!(cmd.verb.len() <= MAX_VERB * 3);
                        let _ = parse_port(cmd.arg);
                        let _ = parse_eprt(cmd.arg);
                        let _ = reply(500, &String::from_utf8_lossy(cmd.arg));
                    }
                    buf.drain(..used);
                    if !progressed {
                        break;
                    }
                }
                // Nothing beyond one line (plus its CR) is ever buffered.
                // A line and its CR's byte of slack (`max` is small, so
                // saturating never bites).
                let bound = max.saturating_add(1);
                assert!(buf.len() <= bound, "{} > {bound}", buf.len());
            }
            assert!(lines <= data.len().saturating_add(1));
        }
    }
    if let Some(a) = parse_port(data) {
        let text = pasv_reply(*a.ip(), a.port());
        assert_eq!(parse_pasv_reply(&text), Some(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, Vec<u8>>> {
        let mut r = LineReader::new(max);
        let mut buf = input.to_vec();
        let mut out = vec![];
        loop {
            let (f, used) = r.next(&buf);
            match f {
                Some(Frame::Line(l)) => out.push(Ok(l.to_vec())),
                Some(Frame::TooLong(l)) => out.push(Err(l.to_vec())),
                None => {}
            }
            buf.drain(..used);
            if used == 0 {
                break;
            }
        }
        out
    }

    #[test]
    fn lines_split_on_lf_and_drop_cr() {
        assert_eq!(
            frames(b"USER a\r\nPASS b\nNOOP", 100),
            vec![Ok(b"USER a".to_vec()), Ok(b"PASS b".to_vec())]
        );
    }

    #[test]
    fn long_lines_are_reported_once_and_skipped() {
        let mut input = vec![b'A'; 50];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let f = frames(&input, 10);
        assert_eq!(f, vec![Err(vec![b'A'; 10]), Ok(b"NOOP".to_vec())]);
        // Streamed: the reader never holds more than the limit.
        let mut r = LineReader::new(10);
        let (f, used) = r.next(&[b'B'; 12]);
        assert_eq!(f, Some(Frame::TooLong(&[b'B'; 10][..])));
        assert_eq!(used, 12);
        assert!(r.is_skipping());
        assert_eq!(r.next(b"BBBB"), (None, 4));
        assert_eq!(r.next(b"B\nQUIT\r\n"), (None, 2));
        assert_eq!(r.next(b"QUIT\r\n"), (Some(Frame::Line(b"QUIT")), 6));
        // A line of exactly the limit, with its CR not yet followed by LF.
        let mut r = LineReader::new(4);
        assert_eq!(r.next(b"NOOP\r"), (None, 0));
        assert_eq!(r.next(b"NOOP\r\n"), (Some(Frame::Line(b"NOOP")), 6));
    }

    #[test]
    fn commands_split_verb_and_argument() {
        let c = Command::parse(b"retr  pub/a b");
        assert_eq!(c.verb, "RETR");
        assert_eq!(c.arg, b" pub/a b");
        assert!(!c.garbage);
        let c = Command::parse(b"\xff\xf4\xff\xf2ABOR");
        assert_eq!(c.verb, "ABOR");
        let c = Command::parse(b"\x16\x03\x01\x02\x00");
        assert!(c.garbage);
        let c = Command::parse(b"");
        assert!(c.garbage && c.verb.is_empty());
        let c = Command::parse(&[b'X'; 40]);
        assert!(c.garbage && c.verb.len() == MAX_VERB);
    }

    #[test]
    fn port_and_eprt() {
        assert_eq!(
            parse_port(b"127,0,0,1,4,1"),
            Some("127.0.0.1:1025".parse().unwrap())
        );
        assert_eq!(parse_port(b"127,0,0,1,4"), None);
        assert_eq!(parse_port(b"127,0,0,1,4,1,1"), None);
        assert_eq!(parse_port(b"256,0,0,1,4,1"), None);
        assert_eq!(parse_port(b"1,2,3,4,-1,1"), None);
        assert_eq!(
            parse_eprt(b"|1|10.0.0.9|6275|"),
            Some(Eprt::Addr("10.0.0.9:6275".parse().unwrap()))
        );
        assert_eq!(
            parse_eprt(b"!2!::1!21!"),
            Some(Eprt::Addr("[::1]:21".parse().unwrap()))
        );
        assert_eq!(parse_eprt(b"|3|x|1|"), Some(Eprt::BadProtocol));
        assert_eq!(parse_eprt(b"|1|10.0.0.9|70000|"), None);
        assert_eq!(parse_eprt(b"|1|::1|21|"), None);
        assert_eq!(parse_eprt(b""), None);
    }

    #[test]
    fn passive_replies() {
        let ip = Ipv4Addr::new(192, 168, 1, 2);
        assert_eq!(
            pasv_reply(ip, 40001),
            "Entering Passive Mode (192,168,1,2,156,65)."
        );
        assert_eq!(
            parse_pasv_reply(&pasv_reply(ip, 40001)),
            Some(SocketAddrV4::new(ip, 40001))
        );
        assert_eq!(
            epsv_reply(40001),
            "Entering Extended Passive Mode (|||40001|)"
        );
    }

    #[test]
    fn replies_cannot_be_forged() {
        assert_eq!(reply(550, "a\r\n230 x"), b"550 a  230 x\r\n");
        assert_eq!(
            reply_multi(211, "Features:", &[" PASV".into()], "End"),
            b"211-Features:\r\n PASV\r\n211 End\r\n"
        );
    }

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("ftp", fuzz_parse);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            fuzz_parse(&data);
        }

        #[test]
        fn framing_is_chunk_independent(
            lines in proptest::collection::vec("[ -~]{0,20}", 1..6),
            chunk in 1usize..30,
        ) {
            let input: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut r = LineReader::new(64);
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    let (f, used) = r.next(&buf);
                    if let Some(Frame::Line(l)) = f {
                        got.push(String::from_utf8(l.to_vec()).unwrap());
                    }
                    buf.drain(..used);
                    if used == 0 { break; }
                }
            }
            prop_assert_eq!(got, lines);
        }
    }
}

#[cfg(test)]
mod chunking_tests {
    use super::*;

    /// However the stream is cut into reads, an over-long line is reported
    /// once and the next command is found.
    #[test]
    fn an_overlong_line_then_a_command_in_any_chunking() {
        let mut stream = vec![b'A'; 1 << 20];
        stream.extend_from_slice(b"\r\nUSER ftp\r\n");
        for chunk in [1usize, 7, 4095, 4096, 4097, 4098, 8192, 65536, 1 << 20] {
            let mut r = LineReader::new(MAX_LINE);
            let mut buf: Vec<u8> = Vec::new();
            let mut frames = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    let (f, used) = r.next(&buf);
                    let f = f.map(|f| match f {
                        Frame::Line(l) => format!("line {}", String::from_utf8_lossy(l)),
                        Frame::TooLong(_) => "too long".to_owned(),
                    });
                    buf.drain(..used);
                    match f {
                        Some(f) => frames.push(f),
                        // Dropped bytes: what follows may be a whole line.
                        None if used > 0 => {}
                        None => break,
                    }
                }
            }
            assert_eq!(frames, ["too long", "line USER ftp"], "chunk {chunk}");
        }
    }
}
