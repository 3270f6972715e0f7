//! RELP, the Reliable Event Logging Protocol (rsyslog's `omrelp`/`imrelp`,
//! librelp): syslog over TCP where the receiver answers every message, so a
//! sender can forget a message only once the receiver said it has it.
//!
//! Every frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`: a transaction
//! number of up to 9 digits, a command of 1 to 32 letters, the length of
//! DATA in up to 9 digits, DATA itself (absent when DATALEN is 0) and a
//! trailing LF. A client sends `open` with its offers
//! (`relp_version=0\ncommands=syslog\n…`), then one `syslog` command per
//! message, then `close`; the server answers each with `rsp`, whose DATA is
//! `CODE [SP TEXT] [LF DATA]` (200 OK, 500 error), in the order the commands
//! came. Transaction number 0 carries hints that get no answer, such as the
//! server's `serverclose`. See `doc/relp.md` in librelp.
//!
//! [`decode`] is sans-IO and bounded: it never buffers beyond `max_data`
//! plus a header of at most 53 bytes, and reports a broken frame as an error
//! (after which, as the specification says, the connection is closed: the
//! stream can no longer be split).

use crate::offset_of;

/// Longest header: 9 + 1 + 32 + 1 + 9 digits and separators, plus the SP
/// before DATA.
pub const MAX_HEADER: usize = 53;
/// Largest transaction number; the next one after it is 1.
pub const MAX_TXNR: u32 = 999_999_999;
/// librelp's default, and what mirage's sender uses: 128 KiB of DATA.
pub const DEFAULT_MAX_DATA: usize = 128 * 1024;
/// Most offers read from an `open`, and values per offer.
const MAX_OFFERS: usize = 32;

/// One frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Transaction number (0: a hint).
    pub txnr: u32,
    /// The command, as sent (letters only).
    pub command: &'a str,
    /// DATA (empty when DATALEN is 0).
    pub data: &'a [u8],
}

/// Why a byte stream is not RELP (any of these ends the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelpError {
    /// The transaction number is not 1 to 9 digits.
    #[error("bad transaction number")]
    BadTxnr,
    /// The command is not 1 to 32 letters.
    #[error("bad command")]
    BadCommand,
    /// DATALEN is not 1 to 9 digits.
    #[error("bad data length")]
    BadDataLen,
    /// DATALEN over the negotiated maximum.
    #[error("data of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// What the frame announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A separator or the trailing LF is missing.
    #[error("frame not terminated by LF")]
    BadTrailer,
}

/// Whether a stream that starts with `head` is RELP rather than RFC 6587
/// syslog: both begin with digits and a space, then RELP has a command
/// (letters) where octet-counted syslog has `<PRI>`; LF-framed syslog
/// starts with `<` at once. `None` until enough bytes are there to tell.
pub fn looks_like_relp(head: &[u8]) -> Option<bool> {
    let digits = head.iter().take_while(|b| b.is_ascii_digit()).count();
    match head.get(digits..).unwrap_or_default() {
        [] if digits <= 9 => None,
        [b' ', after @ ..] if (1..=9).contains(&digits) => {
            after.first().map(u8::is_ascii_alphabetic)
        }
        _ => Some(false),
    }
}

/// `s` split at the first byte among its first `max` that `is_sep` accepts:
/// the bytes before it, the byte, and the bytes after it.
fn split_at_sep(s: &[u8], max: usize, is_sep: impl Fn(u8) -> bool) -> Option<(&[u8], u8, &[u8])> {
    let at = s.iter().take(max).position(|&b| is_sep(b))?;
    let (before, from) = s.split_at_checked(at)?;
    let (&sep, after) = from.split_first()?;
    Some((before, sep, after))
}

fn number(field: &[u8]) -> Option<u32> {
    if field.is_empty() || field.len() > 9 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// Decode the first frame of `buf`: `Ok(None)` when more bytes are needed,
/// else the frame and how many bytes it took.
pub fn decode(buf: &[u8], max_data: usize) -> Result<Option<(usize, Frame<'_>)>, RelpError> {
    // TXNR
    let Some((txnr, _, rest)) = split_at_sep(buf, 10, |b| b == b' ') else {
        return if buf.len() >= 10 || !buf.iter().all(u8::is_ascii_digit) {
            Err(RelpError::BadTxnr)
        } else {
            Ok(None)
        };
    };
    let txnr = number(txnr).ok_or(RelpError::BadTxnr)?;
    // COMMAND
    let Some((command, _, rest)) = split_at_sep(rest, 33, |b| b == b' ') else {
        return if rest.len() >= 33 || !rest.iter().all(u8::is_ascii_alphabetic) {
            Err(RelpError::BadCommand)
        } else {
            Ok(None)
        };
    };
    if command.is_empty() || !command.iter().all(u8::is_ascii_alphabetic) {
        return Err(RelpError::BadCommand);
    }
    let command = std::str::from_utf8(command).map_err(|_| RelpError::BadCommand)?;
    // DATALEN, ended by SP (data follows) or LF (no data)
    let Some((datalen, sep, rest)) = split_at_sep(rest, 10, |b| b == b' ' || b == b'\n') else {
        return if rest.len() >= 10 || !rest.iter().all(u8::is_ascii_digit) {
            Err(RelpError::BadDataLen)
        } else {
            Ok(None)
        };
    };
    let len = number(datalen).ok_or(RelpError::BadDataLen)? as usize;
    if len > max_data {
        return Err(RelpError::TooLong { len, max: max_data });
    }
    let (data, rest) = match (sep, len) {
        (b'\n', 0) => (&[][..], rest),
        (b'\n', _) => return Err(RelpError::BadTrailer),
        // `0 serverclose 0 \n` style: a space, no data, then LF.
        (_, _) => {
            let Some((data, [trailer, rest @ ..])) = rest.split_at_checked(len) else {
                return Ok(None);
            };
            if *trailer != b'\n' {
                return Err(RelpError::BadTrailer);
            }
            (data, rest)
        }
    };
    Ok(Some((
        offset_of(buf, rest),
        Frame {
            txnr,
            command,
            data,
        },
    )))
}

/// Append one frame to `out`.
pub fn encode(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// The DATA of an `rsp`: `CODE [SP TEXT] [LF DATA]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// 200 OK; anything else is an error.
    pub code: u16,
    /// The human-readable text.
    pub text: &'a str,
    /// What follows the first LF (the offers, for `open`).
    pub data: &'a [u8],
}

/// Parse an `rsp`'s DATA; `None` when it does not start with a 3-digit
/// code. (The answer to `close` has empty DATA: [`Response::code`] 200.)
pub fn parse_response(data: &[u8]) -> Option<Response<'_>> {
    if data.is_empty() {
        return Some(Response {
            code: 200,
            text: "",
            data: &[],
        });
    }
    let (line, rest) = match split_at_sep(data, usize::MAX, |b| b == b'\n') {
        Some((line, _, rest)) => (line, rest),
        None => (data, &[][..]),
    };
    let (code, after) = line.split_at_checked(3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    let text = match after {
        [] => "",
        [b' ', text @ ..] => std::str::from_utf8(text).unwrap_or(""),
        _ => return None,
    };
    Some(Response {
        code,
        text,
        data: rest,
    })
}

/// One offer of an `open` (or of its answer): a name and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer<'a> {
    /// Feature name (`relp_version`, `commands`, …).
    pub name: &'a str,
    /// Its comma-separated values.
    pub values: Vec<&'a str>,
}

/// Parse offers (`name=v1,v2` lines), at most 32, ignoring lines that are
/// not UTF-8 or have an empty name.
pub fn parse_offers(data: &[u8]) -> Vec<Offer<'_>> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if out.len() == MAX_OFFERS {
            break;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let (name, values) = line.split_once('=').unwrap_or((line, ""));
        if name.is_empty() || name.len() > 32 {
            continue;
        }
        let values = values
            .split(',')
            .filter(|v| !v.is_empty())
            .take(MAX_OFFERS)
            .collect();
        out.push(Offer { name, values });
    }
    out
}

/// The fuzz target: decode a stream frame by frame, and parse every
/// frame's DATA as a response and as offers; must never panic.
pub fn fuzz_relp(data: &[u8]) {
    let _ = looks_like_relp(data);
    let mut buf = data;
    while let Ok(Some((n, f))) = decode(buf, 4096) {
        let _ = parse_response(f.data);
        let _ = parse_offers(f.data);
        assert!(n <= buf.len(), "decode consumed more than it was given");
        buf = buf.get(n..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_librelp_writes_them() {
        let open = b"1 open 86 relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n";
        let (n, f) = decode(open, DEFAULT_MAX_DATA).unwrap().unwrap();
        assert_eq!(n, open.len());
        assert_eq!((f.txnr, f.command), (1, "open"));
        let offers = parse_offers(f.data);
        assert_eq!(offers[0].name, "relp_version");
        assert_eq!(offers[0].values, ["0"]);
        assert_eq!(
            offers[1].values,
            ["librelp", "1.11.0", "http://librelp.adiscon.com"]
        );
        assert_eq!(offers[2].values, ["syslog"]);

        let two = b"2 syslog 5 hello\n3 close 0\n";
        let (n, f) = decode(two, 64).unwrap().unwrap();
        assert_eq!((f.txnr, f.command, f.data), (2, "syslog", &b"hello"[..]));
        let (m, f) = decode(&two[n..], 64).unwrap().unwrap();
        assert_eq!((f.txnr, f.command, f.data), (3, "close", &b""[..]));
        assert_eq!(n + m, two.len());
    }

    #[test]
    fn every_prefix_waits_for_more() {
        let frame = b"12 syslog 11 <13>1 - x y\n";
        for i in 0..frame.len() {
            assert_eq!(decode(&frame[..i], 64), Ok(None), "prefix {i}");
        }
        assert!(decode(frame, 64).unwrap().is_some());
    }

    #[test]
    fn broken_frames_are_errors() {
        for (bad, want) in [
            (&b"x open 0\n"[..], RelpError::BadTxnr),
            (b"1234567890 open 0\n", RelpError::BadTxnr),
            (b"1 op3n 0\n", RelpError::BadCommand),
            (
                b"1 abcdefghijklmnopqrstuvwxyzabcdefg 0\n",
                RelpError::BadCommand,
            ),
            (b"1 syslog x\n", RelpError::BadDataLen),
            (b"1 syslog 3 abcX", RelpError::BadTrailer),
            (b"1 syslog 3\n", RelpError::BadTrailer),
        ] {
            assert_eq!(
                decode(bad, 64),
                Err(want),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            decode(b"1 syslog 999999999 ", 64),
            Err(RelpError::TooLong {
                len: 999_999_999,
                max: 64
            })
        );
    }

    #[test]
    fn encode_round_trips() {
        let mut out = Vec::new();
        encode(&mut out, 7, "rsp", b"200 OK");
        encode(&mut out, 0, "serverclose", b"");
        assert_eq!(out, b"7 rsp 6 200 OK\n0 serverclose 0\n");
        let (n, f) = decode(&out, 64).unwrap().unwrap();
        assert_eq!(parse_response(f.data).unwrap().code, 200);
        let (_, f) = decode(&out[n..], 64).unwrap().unwrap();
        assert_eq!(f.command, "serverclose");
    }

    #[test]
    fn responses() {
        let r = parse_response(b"200 OK\nrelp_version=0\ncommands=syslog").unwrap();
        assert_eq!((r.code, r.text), (200, "OK"));
        assert_eq!(parse_offers(r.data)[1].values, ["syslog"]);
        let r = parse_response(b"500 store unavailable: disk full").unwrap();
        assert_eq!((r.code, r.text), (500, "store unavailable: disk full"));
        assert_eq!(parse_response(b"").unwrap().code, 200);
        assert!(parse_response(b"OK").is_none());
        assert!(parse_response(b"2000").is_none());
    }

    #[test]
    fn relp_is_told_from_syslog() {
        assert_eq!(looks_like_relp(b"1 open 85 relp"), Some(true));
        assert_eq!(looks_like_relp(b"120 <38>1 2026"), Some(false));
        assert_eq!(looks_like_relp(b"<38>Nov 21"), Some(false));
        assert_eq!(looks_like_relp(b"12"), None);
        assert_eq!(looks_like_relp(b"12 "), None);
        assert_eq!(looks_like_relp(b""), None);
        assert_eq!(looks_like_relp(b"1234567890"), Some(false));
    }

    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("relp", fuzz_relp);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics_and_stays_in_bounds(data: Vec<u8>) {
            if let Ok(Some((n, f))) = decode(&data, 256) {
                proptest::prop_assert!(n <= data.len());
                proptest::prop_assert!(f.data.len() <= 256);
            }
            fuzz_relp(&data);
        }
    }
}
