//! Syslog over TCP: framing (RFC 6587) and header parsing (RFC 5424, RFC 3164).
//!
//! Agents and stock producers (rsyslog, util-linux `logger`) send syslog to
//! `mirage server` in several byte layouts, sometimes mixed on one stream:
//!
//! * octet counting (RFC 6587 §3.4.1): `LEN SP MSG`. rsyslog counts the
//!   trailing LF it appends (`124 <38>1 … ssh2\n`); `logger --octet-count`
//!   sends no LF at all, so the next frame starts right after the count;
//! * LF framing (non-transparent, RFC 6587 §3.4.2): `MSG LF`, as sent by
//!   `logger --tcp` and rsyslog's traditional forwarding.
//!
//! [`FrameDecoder`] detects the framing per frame (a frame that starts with a
//! digit followed by digits and a space is octet counted; anything else is a
//! line) and never allocates: it returns slices of the caller's buffer.
//!
//! [`parse`] splits one message into its header fields. RFC 5424 is
//! recognised by `<PRI>1 `; everything else is read as RFC 3164, whose
//! timestamp may be the classic `Mmm dd hh:mm:ss` (no year) or an RFC 3339
//! stamp (rsyslog's `RSYSLOG_ForwardFormat` and modern file formats).
//! [`parse_unprefixed`] reads file lines (`/var/log/auth.log`) that have no
//! `<PRI>`.
//!
//! Every length is capped ([`Limits`]), every number parsed with checked
//! arithmetic, and garbage comes back as a [`SyslogError`], never a panic.

use std::borrow::Cow;

/// Hard limits on what the decoder and the parser accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (message bytes, without count or LF), in bytes.
    /// Default 64 KiB, rsyslog's largest `maxMessageSize` in common use.
    pub max_frame: usize,
    /// Most structured-data elements in one RFC 5424 message. Default 32.
    pub max_sd_elements: usize,
    /// Most parameters in one structured-data element. Default 64.
    pub max_sd_params: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 64 * 1024,
            max_sd_elements: 32,
            max_sd_params: 64,
        }
    }
}

/// Why a frame or a message was rejected. The peer sent it: callers count it
/// and move on (or, for framing errors, close the stream), they do not log an
/// error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyslogError {
    /// An octet count has more digits than any allowed frame needs, or
    /// starts with `0`.
    #[error("invalid octet count")]
    BadOctetCount,
    /// The message does not start with `<PRI>`.
    #[error("missing <PRI>")]
    MissingPri,
    /// `<PRI>` is not 0..=191 written with 1 to 3 digits.
    #[error("invalid <PRI>")]
    BadPri,
    /// The timestamp is not one of the accepted forms or out of range.
    #[error("invalid timestamp")]
    BadTimestamp,
    /// A header field is missing, too long or not printable ASCII.
    #[error("invalid header field: {0}")]
    BadHeader(&'static str),
    /// RFC 5424 structured data is malformed or over its limits.
    #[error("invalid structured data")]
    BadStructuredData,
    /// The message is larger than [`Limits::max_frame`].
    #[error("message too long")]
    TooLong,
}

/// How a frame was delimited on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6587 octet counting.
    OctetCounted,
    /// One message per line (LF, optional CR before it).
    LineFeed,
}

/// One result of [`FrameDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A whole frame: the message bytes, with the framing's LF (and CR)
    /// removed.
    Frame {
        /// How it was framed.
        framing: Framing,
        /// The message.
        data: &'a [u8],
    },
    /// A frame larger than the limit was skipped (its bytes are being, or
    /// have been, discarded).
    Oversized {
        /// How it was framed.
        framing: Framing,
    },
}

/// Splits a TCP byte stream into syslog frames, auto-detecting octet counting
/// or LF framing for each frame.
///
/// Sans-IO: feed it the bytes buffered so far; it says how many it consumed.
/// Oversized frames are skipped without buffering them (an octet-counted one
/// by its declared length, a line up to its LF), so a peer cannot make the
/// caller hold more than [`Limits::max_frame`] plus a few bytes.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Bytes of an oversized octet-counted frame still to drop.
    skip: usize,
    /// Dropping an oversized line up to its LF.
    skip_line: bool,
}

/// Most digits an octet count may have (`max_frame` is far below 10^9).
const MAX_COUNT_DIGITS: usize = 9;

impl FrameDecoder {
    /// A decoder that accepts frames up to `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            skip: 0,
            skip_line: false,
        }
    }

    /// Decode the next frame from the start of `buf`.
    ///
    /// Returns the number of bytes consumed (drop them from the buffer) and
    /// the event, if any. `(n, None)` with `n > 0` means bytes were skipped
    /// (separators or an oversized frame's body); `(0, None)` means more
    /// bytes are needed. A framing error means the stream can no longer be
    /// split reliably: close it.
    pub fn decode<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<(usize, Option<FrameEvent<'a>>), SyslogError> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            self.skip = self.skip.saturating_sub(n);
            return Ok((n, None));
        }
        if self.skip_line {
            return Ok(match first_line(buf) {
                Some((_, n)) => {
                    self.skip_line = false;
                    (n, None)
                }
                None => (buf.len(), None),
            });
        }
        // Separators between frames: LF after a count that excluded it, CR,
        // NUL (some senders pad), spaces.
        let lead = buf
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0' | b' '))
            .count();
        if lead > 0 {
            return Ok((lead, None));
        }
        let Some(&first) = buf.first() else {
            return Ok((0, None));
        };
        if first.is_ascii_digit() {
            let (count, rest) = split_while(buf, usize::MAX, u8::is_ascii_digit);
            match rest {
                [] if count.len() <= MAX_COUNT_DIGITS => return Ok((0, None)),
                [b' ', ..] => {
                    if count.len() > MAX_COUNT_DIGITS || first == b'0' {
                        return Err(SyslogError::BadOctetCount);
                    }
                    let len = parse_digits(count).ok_or(SyslogError::BadOctetCount)?;
                    // The frame follows the count and its space; it may end
                    // beyond what has arrived.
                    let start = count
                        .len()
                        .checked_add(1)
                        .ok_or(SyslogError::BadOctetCount)?;
                    let Some(end) = start.checked_add(len) else {
                        return Err(SyslogError::BadOctetCount);
                    };
                    if len > self.max_frame {
                        // Drop what has arrived of it now, the rest as it comes.
                        self.skip = end.saturating_sub(buf.len());
                        return Ok((
                            end.min(buf.len()),
                            Some(FrameEvent::Oversized {
                                framing: Framing::OctetCounted,
                            }),
                        ));
                    }
                    let Some(frame) = buf.get(start..end) else {
                        return Ok((0, None));
                    };
                    let data = trim_line_end(frame);
                    return Ok((
                        end,
                        Some(FrameEvent::Frame {
                            framing: Framing::OctetCounted,
                            data,
                        }),
                    ));
                }
                // Digits not followed by a space: a line that starts with
                // a digit (e.g. a file line `2026-…`), LF framed.
                _ => {}
            }
        }
        // A line may have one byte more than a frame: its CR. Saturating, as
        // `max_frame` may be `usize::MAX` (no limit).
        let max_line = self.max_frame.saturating_add(1);
        match first_line(buf) {
            Some((line, n)) if line.len() <= max_line => Ok((
                n,
                Some(FrameEvent::Frame {
                    framing: Framing::LineFeed,
                    data: trim_line_end(line),
                }),
            )),
            Some((_, n)) => Ok((
                n,
                Some(FrameEvent::Oversized {
                    framing: Framing::LineFeed,
                }),
            )),
            None if buf.len() > max_line => {
                self.skip_line = true;
                Ok((
                    buf.len(),
                    Some(FrameEvent::Oversized {
                        framing: Framing::LineFeed,
                    }),
                ))
            }
            None => Ok((0, None)),
        }
    }

    /// At end of stream: the last LF-framed message may lack its LF.
    /// Returns it (trimmed) if `buf` holds one.
    pub fn finish<'a>(&mut self, buf: &'a [u8]) -> Option<&'a [u8]> {
        if self.skip > 0 || self.skip_line {
            return None;
        }
        let (_, data) = split_while(trim_line_end(buf), usize::MAX, |b| {
            matches!(b, b'\n' | b'\r' | b'\0' | b' ')
        });
        (!data.is_empty() && data.len() <= self.max_frame).then_some(data)
    }
}

/// The first line of `buf` without its LF, and how many bytes it takes with
/// the LF; `None` until the LF has arrived.
fn first_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let with_lf = buf.split_inclusive(|&b| b == b'\n').next()?;
    Some((with_lf.strip_suffix(b"\n")?, with_lf.len()))
}

/// `s` split after its longest prefix, of at most `max` bytes, whose bytes
/// all satisfy `keep`.
fn split_while(s: &[u8], max: usize, keep: impl Fn(&u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().take(max).take_while(|b| keep(b)).count();
    // `n` counts bytes of `s`, so the split is always there.
    s.split_at_checked(n).unwrap_or((s, &[]))
}

/// `s` before and after its byte at `i`.
fn split_around(s: &[u8], i: usize) -> Option<(&[u8], &[u8])> {
    let (before, from) = s.split_at_checked(i)?;
    Some((before, from.split_first()?.1))
}

/// The value of an ASCII digit.
fn digit(b: u8) -> Option<u8> {
    b.checked_sub(b'0').filter(|&d| d < 10)
}

fn trim_line_end(mut data: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r' | b'\0'] = data {
        data = rest;
    }
    data
}

fn parse_digits(d: &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for &b in d {
        n = n.checked_mul(10)?.checked_add(usize::from(digit(b)?))?;
    }
    Some(n)
}

/// Which header layout a message used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`).
    Rfc5424,
    /// RFC 3164 / BSD (`<PRI>TIMESTAMP HOST TAG[PID]: MSG`), including
    /// RFC 3339 timestamps in that position.
    Rfc3164,
}

/// A syslog timestamp as written. The classic BSD form has no year and no
/// zone; RFC 3339 forms have both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Year, when the form carries one.
    pub year: Option<i32>,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=60 (a leap second is kept as written).
    pub second: u8,
    /// Fraction of the second in microseconds (finer digits are dropped).
    pub micros: u32,
    /// Offset from UTC in minutes, when the form carries one.
    pub offset_minutes: Option<i16>,
}

impl Timestamp {
    /// Microseconds since the Unix epoch (UTC).
    ///
    /// A missing year is taken from `default_year`; a missing offset from
    /// `default_offset_minutes` (the sender's local zone, usually UTC for
    /// servers). Returns `None` for impossible dates (Feb 30), and for dates
    /// too far from 1970 (some 292 000 years) to count in microseconds.
    pub fn to_unix_micros(&self, default_year: i32, default_offset_minutes: i16) -> Option<i64> {
        let year = self.year.unwrap_or(default_year);
        if self.day > days_in_month(year, self.month) {
            return None;
        }
        let days = days_from_civil(year, self.month, self.day);
        // why it cannot overflow: the days of an i32 year are below 2^40, so
        // in seconds below 2^57, and the other terms are u8 and i16 values.
        #[allow(clippy::arithmetic_side_effects)]
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes.unwrap_or(default_offset_minutes)) * 60;
        secs.checked_mul(1_000_000)?
            .checked_add(i64::from(self.micros))
    }

    /// For a year-less (BSD) stamp: the year that puts it closest to
    /// `reference_unix_micros` (a receiver clock), so `Dec 31` read on
    /// January 1st lands in the previous year. Stamps with a year keep it.
    pub fn resolve_year(&self, reference_unix_micros: i64) -> i32 {
        if let Some(y) = self.year {
            return y;
        }
        let ref_year = civil_year(reference_unix_micros.div_euclid(86_400_000_000));
        let mut best = ref_year;
        let mut best_dist = u64::MAX;
        let candidates = [
            ref_year.checked_sub(1),
            Some(ref_year),
            ref_year.checked_add(1),
        ];
        for y in candidates.into_iter().flatten() {
            if let Some(t) = self.to_unix_micros(y, 0) {
                let d = t.abs_diff(reference_unix_micros);
                if d < best_dist {
                    best = y;
                    best_dist = d;
                }
            }
        }
        best
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
// why it cannot overflow: an i32 year and u8 month and day keep every
// intermediate within ±2^40 in i64.
#[allow(clippy::arithmetic_side_effects)]
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// why it cannot overflow: once `z` is in range, `doe` is below 146 097 and
// `era` within ±2^46, so every intermediate is far within i64.
#[allow(clippy::arithmetic_side_effects)]
fn civil_year(days: i64) -> i32 {
    // Only a day count within 719 468 of i64::MAX overflows here: a year far
    // beyond i32, where the result saturates anyway.
    let Some(z) = days.checked_add(719_468) else {
        return i32::MAX;
    };
    let era = z.div_euclid(146_097);
    // The same as `z - era * 146_097`, which could overflow near i64::MIN.
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    i32::try_from(y).unwrap_or(if y < 0 { i32::MIN } else { i32::MAX })
}

/// One RFC 5424 structured-data element: `[id name="value" …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    /// SD-ID (`timeQuality`, `origin`, `mirage@32473`, …).
    pub id: &'a str,
    /// Parameters in order, values unescaped (`\"`, `\\`, `\]`).
    pub params: Vec<(&'a str, Cow<'a, str>)>,
}

/// A parsed syslog message. Header fields borrow from the frame; absent
/// (`-` or not present in the format) fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    /// Header layout.
    pub format: Format,
    /// Facility, 0..=23 (`None` for file lines without `<PRI>`).
    pub facility: Option<u8>,
    /// Severity, 0..=7 (`None` for file lines without `<PRI>`).
    pub severity: Option<u8>,
    /// Timestamp, if the message has one.
    pub timestamp: Option<Timestamp>,
    /// Originating host.
    pub hostname: Option<&'a str>,
    /// Application (RFC 5424 APP-NAME, RFC 3164 TAG without `[pid]`).
    pub app_name: Option<&'a str>,
    /// Process id (RFC 5424 PROCID, RFC 3164 `[pid]`).
    pub procid: Option<&'a str>,
    /// RFC 5424 MSGID.
    pub msgid: Option<&'a str>,
    /// RFC 5424 structured data.
    pub structured_data: Vec<SdElement<'a>>,
    /// The free-form message, raw bytes (a UTF-8 BOM is removed).
    pub message: &'a [u8],
}

const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;
const MAX_SD_NAME: usize = 32;
/// Longest RFC 3164 tag we accept before deciding the token is not a tag.
const MAX_TAG: usize = 64;

/// Parse one syslog message (a frame, or a UDP datagram) that starts with
/// `<PRI>`, with the default [`Limits`].
pub fn parse(frame: &[u8]) -> Result<SyslogMessage<'_>, SyslogError> {
    parse_with(frame, &Limits::default())
}

/// [`parse`] with explicit limits.
pub fn parse_with<'a>(frame: &'a [u8], limits: &Limits) -> Result<SyslogMessage<'a>, SyslogError> {
    if frame.len() > limits.max_frame {
        return Err(SyslogError::TooLong);
    }
    let (pri, rest) = parse_pri(frame)?;
    let (facility, severity) = (Some(pri / 8), Some(pri % 8));
    let mut msg = if let Some(rest) = rest.strip_prefix(b"1 ") {
        parse_5424(rest, limits)?
    } else {
        parse_3164(rest)?
    };
    msg.facility = facility;
    msg.severity = severity;
    Ok(msg)
}

/// Parse a syslog file line without `<PRI>` (`/var/log/auth.log`,
/// `/var/log/syslog`): `TIMESTAMP HOST TAG[PID]: MSG`, the timestamp classic
/// or RFC 3339.
pub fn parse_unprefixed(line: &[u8]) -> Result<SyslogMessage<'_>, SyslogError> {
    if line.len() > Limits::default().max_frame {
        return Err(SyslogError::TooLong);
    }
    let msg = parse_3164(trim_line_end(line))?;
    if msg.timestamp.is_none() {
        return Err(SyslogError::BadTimestamp);
    }
    Ok(msg)
}

fn parse_pri(frame: &[u8]) -> Result<(u8, &[u8]), SyslogError> {
    let rest = frame.strip_prefix(b"<").ok_or(SyslogError::MissingPri)?;
    let (digits, rest) = split_while(rest, 4, u8::is_ascii_digit);
    let rest = match rest {
        [b'>', rest @ ..] if (1..=3).contains(&digits.len()) => rest,
        _ => return Err(SyslogError::BadPri),
    };
    if digits.len() > 1 && digits.starts_with(b"0") {
        return Err(SyslogError::BadPri);
    }
    let v = parse_digits(digits).ok_or(SyslogError::BadPri)?;
    match u8::try_from(v) {
        Ok(v) if v <= 191 => Ok((v, rest)),
        _ => Err(SyslogError::BadPri),
    }
}

/// Split off the next space-delimited token.
fn token(input: &[u8]) -> (&[u8], &[u8]) {
    input
        .iter()
        .position(|&b| b == b' ')
        .and_then(|i| split_around(input, i))
        .unwrap_or((input, &[]))
}

fn header_field<'a>(
    tok: &'a [u8],
    max: usize,
    what: &'static str,
) -> Result<Option<&'a str>, SyslogError> {
    if tok.is_empty() || tok.len() > max || !tok.iter().all(|b| (33..=126).contains(b)) {
        return Err(SyslogError::BadHeader(what));
    }
    if tok == b"-" {
        return Ok(None);
    }
    // Printable ASCII is valid UTF-8.
    std::str::from_utf8(tok)
        .map(Some)
        .map_err(|_| SyslogError::BadHeader(what))
}

fn strip_bom(msg: &[u8]) -> &[u8] {
    msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg)
}

fn parse_5424<'a>(input: &'a [u8], limits: &Limits) -> Result<SyslogMessage<'a>, SyslogError> {
    let (ts, rest) = token(input);
    let timestamp = if ts == b"-" {
        None
    } else {
        Some(parse_rfc3339(ts).ok_or(SyslogError::BadTimestamp)?)
    };
    let (host, rest) = token(rest);
    let hostname = header_field(host, MAX_HOSTNAME, "hostname")?;
    let (app, rest) = token(rest);
    let app_name = header_field(app, MAX_APP_NAME, "app-name")?;
    let (pid, rest) = token(rest);
    let procid = header_field(pid, MAX_PROCID, "procid")?;
    let (mid, rest) = token(rest);
    let msgid = header_field(mid, MAX_MSGID, "msgid")?;
    let (structured_data, rest) = parse_sd(rest, limits)?;
    // After SD: nothing, or one SP then MSG. rsyslog writes `- -  msg`
    // for an empty MSGID/SD, which leaves a space that belongs to MSG's
    // separator; any further spaces are part of the message as sent.
    let message = match rest {
        [] => rest,
        [b' ', msg @ ..] => strip_bom(msg),
        _ => return Err(SyslogError::BadStructuredData),
    };
    Ok(SyslogMessage {
        format: Format::Rfc5424,
        facility: None,
        severity: None,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        message,
    })
}

fn parse_sd<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Vec<SdElement<'a>>, &'a [u8]), SyslogError> {
    if let Some(rest) = input.strip_prefix(b"-") {
        return Ok((Vec::new(), rest));
    }
    let mut elements = Vec::new();
    let mut rest = input;
    if rest.first() != Some(&b'[') {
        return Err(SyslogError::BadStructuredData);
    }
    while let Some(after) = rest.strip_prefix(b"[") {
        if elements.len() >= limits.max_sd_elements {
            return Err(SyslogError::BadStructuredData);
        }
        let (id, mut r) = sd_name(after)?;
        let mut params = Vec::new();
        loop {
            match r {
                [b']', tail @ ..] => {
                    rest = tail;
                    break;
                }
                [b' ', tail @ ..] => {
                    if params.len() >= limits.max_sd_params {
                        return Err(SyslogError::BadStructuredData);
                    }
                    let (name, tail) = sd_name(tail)?;
                    let tail = tail
                        .strip_prefix(b"=\"")
                        .ok_or(SyslogError::BadStructuredData)?;
                    let (value, tail) = sd_value(tail)?;
                    params.push((name, value));
                    r = tail;
                }
                _ => return Err(SyslogError::BadStructuredData),
            }
        }
        elements.push(SdElement { id, params });
    }
    Ok((elements, rest))
}

fn sd_name(input: &[u8]) -> Result<(&str, &[u8]), SyslogError> {
    let (name, rest) = split_while(input, usize::MAX, |&b| {
        (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"' | b' ')
    });
    if name.is_empty() || name.len() > MAX_SD_NAME {
        return Err(SyslogError::BadStructuredData);
    }
    let name = std::str::from_utf8(name).map_err(|_| SyslogError::BadStructuredData)?;
    Ok((name, rest))
}

/// A PARAM-VALUE up to its closing quote; `\"`, `\\` and `\]` unescaped
/// (other backslashes kept, as RFC 5424 §6.3.3 says).
fn sd_value(input: &[u8]) -> Result<(Cow<'_, str>, &[u8]), SyslogError> {
    let mut bytes = input.iter().enumerate();
    let mut escaped = false;
    let mut close = None;
    while let Some((i, &b)) = bytes.next() {
        match b {
            b'\\' => {
                escaped = true;
                // The escaped byte, even a quote, does not end the value.
                bytes.next();
            }
            b'"' => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let (raw, rest) = close
        .and_then(|i| split_around(input, i))
        .ok_or(SyslogError::BadStructuredData)?;
    let raw = std::str::from_utf8(raw).map_err(|_| SyslogError::BadStructuredData)?;
    let value = if escaped {
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(n @ ('"' | '\\' | ']')) => out.push(n),
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    Ok((value, rest))
}

fn two(tens: u8, ones: u8) -> Option<u8> {
    digit(tens)?.checked_mul(10)?.checked_add(digit(ones)?)
}

/// RFC 3339 (`2026-11-21T11:09:34.324895+00:00`, `…Z`), fraction optional.
fn parse_rfc3339(s: &[u8]) -> Option<Timestamp> {
    if s.len() < 20 || s.len() > 40 {
        return None;
    }
    let (h, mut rest) = s.split_first_chunk::<19>()?;
    if h[4] != b'-'
        || h[7] != b'-'
        || !matches!(h[10], b'T' | b't')
        || h[13] != b':'
        || h[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(parse_digits(&h[0..4])?).ok()?;
    let month = two(h[5], h[6])?;
    let day = two(h[8], h[9])?;
    let hour = two(h[11], h[12])?;
    let minute = two(h[14], h[15])?;
    let second = two(h[17], h[18])?;
    let mut micros = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let (digits, after) = split_while(frac, usize::MAX, u8::is_ascii_digit);
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        // Microseconds are the first six digits, the missing ones zeros.
        let mut six = *b"000000";
        for (to, from) in six.iter_mut().zip(digits) {
            *to = *from;
        }
        micros = u32::try_from(parse_digits(&six)?).ok()?;
        rest = after;
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0i16,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = two(*h1, *h2)?;
            let m = two(*m1, *m2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let v = i16::from(h).checked_mul(60)?.checked_add(i16::from(m))?;
            if *sign == b'-' { v.checked_neg()? } else { v }
        }
        _ => return None,
    };
    let ts = Timestamp {
        year: Some(year),
        month,
        day,
        hour,
        minute,
        second,
        micros,
        offset_minutes: Some(offset),
    };
    valid_time(&ts).then_some(ts)
}

fn valid_time(t: &Timestamp) -> bool {
    (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= 31
        && t.hour <= 23
        && t.minute <= 59
        && t.second <= 60
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Classic BSD stamp `Mmm dd hh:mm:ss` (day space-padded), exactly 15 bytes.
fn parse_bsd_time(s: &[u8]) -> Option<Timestamp> {
    let s = s.first_chunk::<15>()?;
    if s[3] != b' ' || s[6] != b' ' || s[9] != b':' || s[12] != b':' {
        return None;
    }
    let month = (1..=12)
        .zip(MONTHS)
        .find_map(|(n, m)| (m[..] == s[..3]).then_some(n))?;
    let day = match (s[4], s[5]) {
        (b' ', d) => digit(d)?,
        (t, d) => two(t, d)?,
    };
    let ts = Timestamp {
        year: None,
        month,
        day,
        hour: two(s[7], s[8])?,
        minute: two(s[10], s[11])?,
        second: two(s[13], s[14])?,
        micros: 0,
        offset_minutes: None,
    };
    (valid_time(&ts) && ts.day >= 1).then_some(ts)
}

fn parse_3164(input: &[u8]) -> Result<SyslogMessage<'_>, SyslogError> {
    let (timestamp, rest) = if let Some((ts, rest)) = parse_bsd_time(input).zip(input.get(15..)) {
        (Some(ts), rest.strip_prefix(b" ").unwrap_or(rest))
    } else if input.first().is_some_and(u8::is_ascii_digit) {
        let (tok, rest) = token(input);
        (
            Some(parse_rfc3339(tok).ok_or(SyslogError::BadTimestamp)?),
            rest,
        )
    } else {
        (None, input)
    };
    // Next: HOSTNAME SP TAG, or (local senders) just TAG. A token that ends
    // in ':' or carries '[' is a tag.
    let (first, after_first) = token(rest);
    let looks_like_tag = |t: &[u8]| t.ends_with(b":") || t.contains(&b'[');
    let (hostname, tag_area) = if timestamp.is_some() && !first.is_empty() && !looks_like_tag(first)
    {
        let h = if first.len() <= MAX_HOSTNAME && first.iter().all(|b| (33..=126).contains(b)) {
            std::str::from_utf8(first).ok()
        } else {
            None
        };
        match h {
            Some(h) => (Some(h), after_first),
            None => return Err(SyslogError::BadHeader("hostname")),
        }
    } else {
        (None, rest)
    };
    let (app_name, procid, message) = split_tag(tag_area);
    Ok(SyslogMessage {
        format: Format::Rfc3164,
        facility: None,
        severity: None,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid: None,
        structured_data: Vec::new(),
        message: strip_bom(message),
    })
}

/// `TAG[PID]: MSG` or `TAG: MSG`; if the text does not start with a tag, the
/// whole text is the message.
fn split_tag(input: &[u8]) -> (Option<&str>, Option<&str>, &[u8]) {
    let (tag, mut rest) = split_while(input, MAX_TAG + 1, |&b| {
        (33..=126).contains(&b) && !matches!(b, b'[' | b':')
    });
    if tag.is_empty() || tag.len() > MAX_TAG {
        return (None, None, input);
    }
    let Ok(tag) = std::str::from_utf8(tag) else {
        return (None, None, input);
    };
    let mut procid = None;
    if let Some(r) = rest.strip_prefix(b"[") {
        let Some((pid, after)) = r
            .iter()
            .take(MAX_PROCID + 1)
            .position(|&b| b == b']')
            .and_then(|close| split_around(r, close))
        else {
            return (None, None, input);
        };
        if pid.is_empty() || !pid.iter().all(|b| (33..=126).contains(b)) {
            return (None, None, input);
        }
        procid = std::str::from_utf8(pid).ok();
        rest = after;
    }
    match rest {
        [b':', b' ', msg @ ..] => (Some(tag), procid, msg),
        [b':', msg @ ..] => (Some(tag), procid, msg),
        // `TAG[PID] msg` without a colon happens (some daemons); a bare word
        // without either is ordinary message text.
        [b' ', msg @ ..] if procid.is_some() => (Some(tag), procid, msg),
        [] if procid.is_some() => (Some(tag), procid, rest),
        _ => (None, None, input),
    }
}

/// Fuzz entry point: framing then parsing must never panic, and a parsed
/// message must point inside the input.
pub fn fuzz_syslog(data: &[u8]) {
    let mut dec = FrameDecoder::new(4096);
    let mut buf = data;
    let mut guard = 0usize;
    loop {
        guard = guard.saturating_add(1);
        assert!(
            guard <= data.len().saturating_add(2),
            "decoder made no progress"
        );
        match dec.decode(buf) {
            Ok((0, None)) => break,
            Ok((n, ev)) => {
                assert!(n <= buf.len());
                if let Some(FrameEvent::Frame { data: frame, .. }) = ev {
                    let _ = parse(frame);
                }
                buf = buf.get(n..).unwrap_or_default();
            }
            Err(_) => break,
        }
    }
    if let Some(last) = dec.finish(buf) {
        let _ = parse(last);
    }
    if let Ok(m) = parse(data) {
        let range = data.as_ptr_range();
        assert!(range.contains(&m.message.as_ptr()) || m.message.is_empty());
        if let Some(ts) = m.timestamp {
            let _ = ts.to_unix_micros(2026, 0);
            let _ = ts.resolve_year(0);
        }
    }
    let _ = parse_unprefixed(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(input: &[u8], max: usize) -> Vec<(Framing, Vec<u8>)> {
        let mut dec = FrameDecoder::new(max);
        let mut buf = input;
        let mut out = Vec::new();
        loop {
            let (n, ev) = dec.decode(buf).unwrap();
            if n == 0 && ev.is_none() {
                break;
            }
            match ev {
                Some(FrameEvent::Frame { framing, data }) => out.push((framing, data.to_vec())),
                Some(FrameEvent::Oversized { framing }) => {
                    out.push((framing, b"<oversized>".to_vec()))
                }
                None => {}
            }
            buf = &buf[n..];
        }
        if let Some(last) = dec.finish(buf) {
            out.push((Framing::LineFeed, last.to_vec()));
        }
        out
    }

    const RSYSLOG_5424: &[u8] = b"<38>1 2026-11-21T11:09:34.324895+00:00 vm sshd - - -  Failed password for root from 10.0.0.9 port 51544 ssh2\n";

    #[test]
    fn rsyslog_octet_count_includes_lf() {
        let mut stream = format!("{} ", RSYSLOG_5424.len()).into_bytes();
        stream.extend_from_slice(RSYSLOG_5424);
        stream.extend_from_slice(&stream.clone());
        let f = frames(&stream, 65536);
        assert_eq!(f.len(), 2);
        for (framing, data) in f {
            assert_eq!(framing, Framing::OctetCounted);
            assert_eq!(data, &RSYSLOG_5424[..RSYSLOG_5424.len() - 1]);
        }
    }

    #[test]
    fn logger_octet_count_without_lf_then_lf_frames() {
        let a = b"<13>1 2026-11-21T11:09:34.000001+01:00 h app 12 ID47 - hello";
        let mut stream = format!("{} ", a.len()).into_bytes();
        stream.extend_from_slice(a);
        stream.extend_from_slice(format!("{} ", a.len()).as_bytes());
        stream.extend_from_slice(a);
        stream.extend_from_slice(
            b"<38>Nov 21 11:09:34 vm sshd[7]: line one\n<38>Nov 21 11:09:35 vm sshd: tail",
        );
        let f = frames(&stream, 65536);
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f[0], (Framing::OctetCounted, a.to_vec()));
        assert_eq!(f[1], (Framing::OctetCounted, a.to_vec()));
        assert_eq!(f[2].0, Framing::LineFeed);
        assert_eq!(f[3].1, b"<38>Nov 21 11:09:35 vm sshd: tail".to_vec());
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut dec = FrameDecoder::new(100);
        assert_eq!(dec.decode(b"12").unwrap(), (0, None));
        assert_eq!(dec.decode(b"12 <13>abc").unwrap(), (0, None));
        assert_eq!(dec.decode(b"<13>abc").unwrap(), (0, None));
    }

    #[test]
    fn oversized_frames_are_skipped_not_buffered() {
        let mut stream = b"200 ".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 200));
        stream.extend_from_slice(b"5 <1>ab");
        let f = frames(&stream, 100);
        assert_eq!(f[0].1, b"<oversized>");
        assert_eq!(f[1], (Framing::OctetCounted, b"<1>ab".to_vec()));
        // Long line without LF: dropped in pieces, then resynchronised.
        let mut dec = FrameDecoder::new(10);
        let (n, ev) = dec.decode(&[b'a'; 50]).unwrap();
        assert_eq!(n, 50);
        assert!(matches!(ev, Some(FrameEvent::Oversized { .. })));
        assert_eq!(dec.decode(b"aaaa\n<1>x\n").unwrap(), (5, None));
        assert_eq!(
            dec.decode(b"<1>x\n").unwrap().1,
            Some(FrameEvent::Frame {
                framing: Framing::LineFeed,
                data: b"<1>x"
            })
        );
    }

    #[test]
    fn bad_counts_are_errors() {
        let mut dec = FrameDecoder::new(100);
        assert_eq!(dec.decode(b"0123 x"), Err(SyslogError::BadOctetCount));
        assert_eq!(
            dec.decode(b"99999999999999999999 x"),
            Err(SyslogError::BadOctetCount)
        );
        // A digit-led line without a space after the number is a line.
        assert!(matches!(
            dec.decode(b"2026-11-21 x\n").unwrap().1,
            Some(FrameEvent::Frame {
                framing: Framing::LineFeed,
                ..
            })
        ));
    }

    #[test]
    fn rfc5424_rsyslog() {
        let m = parse(&RSYSLOG_5424[..RSYSLOG_5424.len() - 1]).unwrap();
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!((m.facility, m.severity), (Some(4), Some(6)));
        assert_eq!(m.hostname, Some("vm"));
        assert_eq!(m.app_name, Some("sshd"));
        assert_eq!((m.procid, m.msgid), (None, None));
        assert!(m.structured_data.is_empty());
        // The second space after the empty SD is part of the message.
        assert_eq!(
            m.message,
            b" Failed password for root from 10.0.0.9 port 51544 ssh2"
        );
        let ts = m.timestamp.unwrap();
        assert_eq!(ts.micros, 324_895);
        assert_eq!(ts.to_unix_micros(0, 0), Some(1_795_259_374_324_895));
    }

    #[test]
    fn rfc5424_structured_data() {
        let mut frame = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\"ication" eventID="1011"][examplePriority@32473 class="high"] "#.to_vec();
        frame.extend_from_slice(b"\xEF\xBB\xBFAn application event");
        let m = parse(&frame).unwrap();
        assert_eq!((m.facility, m.severity), (Some(20), Some(5)));
        assert_eq!(m.msgid, Some("ID47"));
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
        assert_eq!(m.structured_data[0].params[1].1, "Appl\"ication");
        assert_eq!(
            m.structured_data[1].params[0],
            ("class", Cow::Borrowed("high"))
        );
        assert_eq!(m.message, b"An application event");
        assert_eq!(m.timestamp.unwrap().offset_minutes, Some(0));
        // No MSG at all.
        let m = parse(b"<14>1 - - - - - -").unwrap();
        assert_eq!(m.message, b"");
        assert_eq!(m.timestamp, None);
    }

    #[test]
    fn rfc3164_forms() {
        let m = parse(b"<38>Nov 21 11:09:34 vm sshd[4242]: Failed password").unwrap();
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("vm"), Some("sshd"), Some("4242"))
        );
        assert_eq!(m.message, b"Failed password");
        let ts = m.timestamp.unwrap();
        assert_eq!((ts.year, ts.month, ts.day, ts.hour), (None, 11, 21, 11));
        // RSYSLOG_ForwardFormat.
        let m = parse(b"<38>2026-11-21T11:09:34.324895+00:00 vm sshd: Accepted").unwrap();
        assert_eq!(m.timestamp.unwrap().year, Some(2026));
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("vm"), Some("sshd"), None)
        );
        assert_eq!(m.message, b"Accepted");
        // Space-padded day; no hostname (local logger).
        let m = parse(b"<13>Nov  1 01:02:03 tagonly: text").unwrap();
        assert_eq!(m.timestamp.unwrap().day, 1);
        assert_eq!((m.hostname, m.app_name), (None, Some("tagonly")));
        // A message with no tag keeps the whole text.
        let m = parse(b"<13>Nov  1 01:02:03 host just words here").unwrap();
        assert_eq!((m.hostname, m.app_name), (Some("host"), None));
        assert_eq!(m.message, b"just words here");
        // File line.
        let m = parse_unprefixed(
            b"Nov 21 11:09:34 vm sshd-session[99]: Invalid user a from 1.2.3.4 port 2\n",
        )
        .unwrap();
        assert_eq!(m.app_name, Some("sshd-session"));
        assert_eq!(m.message, b"Invalid user a from 1.2.3.4 port 2");
    }

    #[test]
    fn garbage_is_an_error() {
        for g in [
            &b""[..],
            b"hello",
            b"<>x",
            b"<192>x",
            b"<0001>x",
            b"<13>1 notatime h a p m - x",
            b"<13>1 2026-13-01T00:00:00Z h a p m - x",
            b"<13>1 2026-11-21T11:09:34Z h a p m [bad x",
            b"<13>1 2026-11-21T11:09:34Z h a p m [a b=\"c]",
            b"<13>1 2026-11-21T11:09:34Z h a p m -x",
            b"<13>2026-99-21T11:09:34Z h a: x",
        ] {
            assert!(parse(g).is_err(), "{:?}", String::from_utf8_lossy(g));
        }
        assert!(parse_unprefixed(b"no timestamp here").is_err());
    }

    #[test]
    fn year_resolution() {
        let ts = parse_bsd_time(b"Dec 31 23:59:59").unwrap();
        // Reference: 2027-01-01T00:00:10Z.
        let reference = Timestamp {
            year: Some(2027),
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 10,
            micros: 0,
            offset_minutes: Some(0),
        }
        .to_unix_micros(0, 0)
        .unwrap();
        assert_eq!(ts.resolve_year(reference), 2026);
        assert_eq!(civil_year(0), 1970);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let feb30 = Timestamp {
            day: 30,
            month: 2,
            ..ts
        };
        assert_eq!(feb30.to_unix_micros(2026, 0), None);
    }

    /// Replays the committed fuzz corpus (and any crash inputs saved there).
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("syslog", fuzz_syslog);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_syslog(&data);
        }

        #[test]
        fn framing_round_trip(msgs in proptest::collection::vec("[ -~]{1,60}", 1..8), counted in proptest::collection::vec(any::<bool>(), 8)) {
            // Messages start with '<' as real syslog does.
            let msgs: Vec<String> = msgs.into_iter().map(|m| format!("<13>{}", m.trim())).collect();
            let mut stream = Vec::new();
            for (m, c) in msgs.iter().zip(counted.iter()) {
                if *c {
                    stream.extend_from_slice(format!("{} {}", m.len(), m).as_bytes());
                } else {
                    stream.extend_from_slice(m.as_bytes());
                    stream.push(b'\n');
                }
            }
            let got: Vec<Vec<u8>> = frames(&stream, 1000).into_iter().map(|(_, d)| d).collect();
            let want: Vec<Vec<u8>> = msgs.iter().map(|m| m.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn rfc3339_round_trip(y in 1970i32..2100, mo in 1u8..=12, d in 1u8..=28, h in 0u8..24, mi in 0u8..60, s in 0u8..60, us in 0u32..1_000_000) {
            let text = format!("<1>1 {y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}Z h a - - - m");
            let m = parse(text.as_bytes()).unwrap();
            let ts = m.timestamp.unwrap();
            prop_assert_eq!((ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, ts.micros), (Some(y), mo, d, h, mi, s, us));
            let t = ts.to_unix_micros(0, 0).unwrap();
            prop_assert_eq!(civil_year(t.div_euclid(86_400_000_000)), y);
        }
    }
}
