//! The TLS ClientHello, sans-IO: what a client sends first, parsed into
//! the fields fingerprints are made of, with JA3 and JA4.
//!
//! The catch-all listener peeks the first bytes of a connection: when
//! [`looks_like_tls`] says they open a TLS handshake record, it buffers
//! until [`parse_client_hello`] stops answering [`HelloError::Incomplete`],
//! records SNI, ALPN, JA3 and JA4 from the [`ClientHello`], and hands the
//! same bytes to rustls to terminate the connection.
//!
//! - Framing: the hello may span several handshake records (TLS allows a
//!   handshake message to be fragmented); records are joined until the
//!   handshake message is complete. The message is capped at
//!   [`MAX_HANDSHAKE`] bytes, checked on the declared length *before*
//!   waiting for the bytes, so a client announcing a huge hello costs
//!   nothing. A record of another content type before the hello is whole,
//!   an empty record, a record longer than 2^14 bytes (RFC 8446 §5.1) or a
//!   handshake message that is not a ClientHello is [`HelloError::Invalid`],
//!   and so are more than [`MAX_RECORDS`] records or bytes after the hello
//!   in its last record: a buffer of [`MAX_WIRE_LEN`] bytes always gets an
//!   answer.
//! - Body: every length-prefixed field is read through a bounded
//!   sub-reader that must be consumed exactly, as rustls' codec does.
//!   Known extensions (server_name, supported_groups, ec_point_formats,
//!   signature_algorithms, ALPN, supported_versions) are decoded from their
//!   first occurrence; every extension type is kept in order as sent.
//! - SNI: the first `host_name` entry, kept raw (capped at
//!   [`MAX_SNI_RAW`] bytes) and, when it is DNS-shaped (letters, digits,
//!   `-`, `_`, dot-separated labels of 1 to 63 bytes, 253 bytes in all),
//!   lower-cased as [`ClientHello::sni`]. Anything else is attacker data,
//!   never a name to act on.
//! - Fingerprints: [`ClientHello::ja3_string`] / [`ClientHello::ja3_hash`]
//!   as Salesforce's JA3 (decimal values, GREASE removed from ciphers,
//!   extensions and groups, MD5 of the string);
//!   [`ClientHello::ja4`] / [`ClientHello::ja4_r`] as FoxIO's JA4 spec
//!   (`technical_details/JA4.md`): version from supported_versions (highest
//!   non-GREASE) else the hello's version; `d`/`i` by the presence of the
//!   server_name extension; counts capped at 99; first and last characters
//!   of the first ALPN value, or of its hex form when either end is not
//!   ASCII alphanumeric, `00` without one; sorted ciphers; sorted
//!   extensions without SNI and ALPN, then the signature algorithms in
//!   wire order; `000000000000` for an empty list. The two reference
//!   implementations differ from the spec only for non-alphanumeric ALPN
//!   values (they print `9` for a non-ASCII byte); real clients never send
//!   those.
//!
//! [`fuzz_parse`] is the fuzz target's entry point.

use crate::offset_of;
use std::fmt::Write as _;

use md5::Digest as _;

/// Largest ClientHello handshake message accepted (body, without the
/// 4-byte handshake header). Browsers with post-quantum key shares send
/// about 2 KiB; rustls accepts a handshake message of up to 64 KiB, but a
/// fingerprinting peek has no reason to buffer that much.
pub const MAX_HANDSHAKE: usize = 16 * 1024;
/// Largest TLS plaintext record body (RFC 8446 §5.1: 2^14 bytes).
pub const MAX_RECORD: usize = 16 * 1024;
/// Most records one ClientHello may be split into.
pub const MAX_RECORDS: usize = 32;
/// Most bytes of input a ClientHello can take: a buffer this long always
/// parses to a hello or [`HelloError::Invalid`], never
/// [`HelloError::Incomplete`], so it is the most a caller needs to buffer.
pub const MAX_WIRE_LEN: usize = MAX_RECORDS * RECORD_HEADER + HANDSHAKE_HEADER + MAX_HANDSHAKE;
/// Most bytes of the raw server name kept (a DNS name has at most 253).
pub const MAX_SNI_RAW: usize = 255;
/// Most ALPN protocol names kept (the rest are counted in the extension
/// list but not stored).
pub const MAX_ALPN: usize = 16;

/// TLS record content type of handshake records.
const CONTENT_HANDSHAKE: u8 = 0x16;
/// Handshake message type of a ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Bytes of a record header: type, version, length.
const RECORD_HEADER: usize = 5;
/// Bytes of a handshake message header: type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;

/// Extension type numbers this parser decodes (IANA TLS ExtensionType).
pub mod ext {
    /// server_name (RFC 6066).
    pub const SERVER_NAME: u16 = 0x0000;
    /// supported_groups, formerly elliptic_curves (RFC 8422).
    pub const SUPPORTED_GROUPS: u16 = 0x000a;
    /// ec_point_formats (RFC 8422).
    pub const EC_POINT_FORMATS: u16 = 0x000b;
    /// signature_algorithms (RFC 8446).
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    /// application_layer_protocol_negotiation (RFC 7301).
    pub const ALPN: u16 = 0x0010;
    /// supported_versions (RFC 8446).
    pub const SUPPORTED_VERSIONS: u16 = 0x002b;
}

/// Why no ClientHello came out of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The bytes so far are a consistent prefix of a ClientHello: read more.
    #[error("ClientHello incomplete")]
    Incomplete,
    /// Not TLS, or a malformed or oversized ClientHello.
    #[error("not a valid ClientHello: {0}")]
    Invalid(&'static str),
}

/// A parsed ClientHello. Lists hold values as sent, GREASE included; the
/// fingerprint methods remove GREASE where their specs say so.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientHello {
    /// Version in the header of the first record (often 0x0301 for
    /// compatibility).
    pub record_version: u16,
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// Length of the legacy session id (0 to 32).
    pub session_id_len: u8,
    /// Cipher suites in order.
    pub cipher_suites: Vec<u16>,
    /// Compression methods in order.
    pub compression_methods: Vec<u8>,
    /// Extension types in order, as sent (duplicates included).
    pub extensions: Vec<u16>,
    /// The supported_versions extension's list (empty when absent).
    pub supported_versions: Vec<u16>,
    /// The supported_groups extension's list (empty when absent).
    pub supported_groups: Vec<u16>,
    /// The ec_point_formats extension's list (empty when absent).
    pub ec_point_formats: Vec<u8>,
    /// The signature_algorithms extension's list, in order (empty when absent).
    pub signature_algorithms: Vec<u16>,
    /// Bytes of the input taken by the records that carried the hello.
    pub wire_len: usize,
    server_name_raw: Option<Vec<u8>>,
    server_name: Option<String>,
    alpn: Vec<String>,
    alpn_first_raw: Option<Vec<u8>>,
}

/// True when `first` opens a TLS handshake record: content type 0x16 and
/// a record version from SSL 3.0 to TLS 1.3 (0x0300..=0x0304). Needs the
/// first 3 bytes; a shorter prefix is `false`.
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [CONTENT_HANDSHAKE, 0x03, 0x00..=0x04, ..])
}

/// True for the 16 GREASE values of RFC 8701 (0x0a0a, 0x1a1a … 0xfafa).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Parse the ClientHello at the start of `buf`, the bytes a client sent
/// first. Bytes after the records carrying the hello are ignored (see
/// [`ClientHello::wire_len`]).
pub fn parse_client_hello(buf: &[u8]) -> Result<ClientHello, HelloError> {
    let (record_version, message, wire_len) = reassemble(buf)?;
    let mut hello = parse_body(message.get(HANDSHAKE_HEADER..).unwrap_or_default())?;
    hello.record_version = record_version;
    hello.wire_len = wire_len;
    Ok(hello)
}

/// Join the handshake records at the start of `buf` until one whole
/// handshake message is there; return the first record's version, the
/// message (header included) and the bytes its records took.
fn reassemble(buf: &[u8]) -> Result<(u16, Vec<u8>, usize), HelloError> {
    use HelloError::{Incomplete, Invalid};
    // The input after the records joined so far.
    let mut rest = buf;
    let mut message: Vec<u8> = Vec::new();
    let mut record_version = 0u16;
    for index in 0..MAX_RECORDS {
        // Judge the header bytes that are there before asking for more, so
        // garbage is refused at its first byte.
        if let Some(&t) = rest.first()
            && t != CONTENT_HANDSHAKE
        {
            return Err(Invalid(if index == 0 {
                "not a TLS handshake record"
            } else {
                "other record inside the ClientHello"
            }));
        }
        let bad_version = match rest {
            [_, major, ..] if *major != 0x03 => true,
            [_, _, minor, ..] => *minor > 0x04,
            _ => false,
        };
        if bad_version {
            return Err(Invalid("bad record version"));
        }
        let Some((&[_, major, minor, len_hi, len_lo], body)) =
            rest.split_first_chunk::<RECORD_HEADER>()
        else {
            return Err(Incomplete);
        };
        let version = u16::from_be_bytes([major, minor]);
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if len == 0 {
            return Err(Invalid("empty handshake record"));
        }
        if len > MAX_RECORD {
            return Err(Invalid("record longer than 2^14 bytes"));
        }
        if index == 0 {
            record_version = version;
        }
        let (avail, after) = body.split_at_checked(len).unwrap_or((body, &[]));
        // The handshake header is checked as soon as its bytes are there,
        // and the declared sizes before waiting for the bytes.
        let total = handshake_total(&message, avail)?;
        if let Some(total) = total
            && message.len().checked_add(len).is_none_or(|n| n > total)
        {
            // A second handshake message in the hello's record: no client
            // sends one before the server's reply.
            return Err(Invalid("data after the ClientHello in its record"));
        }
        if avail.len() < len {
            return Err(Incomplete);
        }
        message.extend_from_slice(avail);
        rest = after;
        if total == Some(message.len()) {
            let wire_len = offset_of(buf, rest);
            return Ok((record_version, message, wire_len));
        }
    }
    Err(Invalid("ClientHello split into too many records"))
}

/// The whole length (header included) of the handshake message that
/// `message` followed by `more` begins, once its 4 header bytes are there.
fn handshake_total(message: &[u8], more: &[u8]) -> Result<Option<usize>, HelloError> {
    let mut hdr = message.iter().chain(more).take(HANDSHAKE_HEADER).copied();
    match hdr.next() {
        None => return Ok(None),
        Some(HANDSHAKE_CLIENT_HELLO) => {}
        Some(_) => {
            return Err(HelloError::Invalid(
                "handshake message is not a ClientHello",
            ));
        }
    }
    let (Some(a), Some(b), Some(c)) = (hdr.next(), hdr.next(), hdr.next()) else {
        return Ok(None);
    };
    let declared = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let too_large = HelloError::Invalid("ClientHello too large");
    if declared > MAX_HANDSHAKE {
        return Err(too_large);
    }
    HANDSHAKE_HEADER
        .checked_add(declared)
        .map(Some)
        .ok_or(too_large)
}

/// A bounded cursor: reads return `None` instead of going past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.buf.split_first_chunk::<N>()?;
        self.buf = tail;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.array().map(|[b]| b)
    }
    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    /// A sub-reader over a field with a 1-byte length prefix.
    fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = self.u8()?;
        self.take(usize::from(n)).map(Reader::new)
    }
    /// A sub-reader over a field with a 2-byte length prefix.
    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()?;
        self.take(usize::from(n)).map(Reader::new)
    }
    /// The rest as big-endian u16 values; `None` for an odd length.
    fn u16_list(self) -> Option<Vec<u16>> {
        let (pairs, odd) = self.buf.as_chunks::<2>();
        if !odd.is_empty() {
            return None;
        }
        Some(pairs.iter().map(|&p| u16::from_be_bytes(p)).collect())
    }
}

fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    use HelloError::Invalid;
    let mut r = Reader::new(body);
    let legacy_version = r.u16().ok_or(Invalid("truncated version"))?;
    r.take(32).ok_or(Invalid("truncated random"))?;
    let session_id = r.vec8().ok_or(Invalid("truncated session id"))?;
    let session_id_len = u8::try_from(session_id.buf.len())
        .ok()
        .filter(|&n| n <= 32)
        .ok_or(Invalid("session id longer than 32 bytes"))?;
    let cipher_suites = r
        .vec16()
        .ok_or(Invalid("truncated cipher suites"))?
        .u16_list()
        .ok_or(Invalid("odd cipher suites length"))?;
    let compression_methods = r
        .vec8()
        .ok_or(Invalid("truncated compression methods"))?
        .buf
        .to_vec();
    let mut hello = ClientHello {
        record_version: 0,
        legacy_version,
        session_id_len,
        cipher_suites,
        compression_methods,
        extensions: Vec::new(),
        supported_versions: Vec::new(),
        supported_groups: Vec::new(),
        ec_point_formats: Vec::new(),
        signature_algorithms: Vec::new(),
        wire_len: 0,
        server_name_raw: None,
        server_name: None,
        alpn: Vec::new(),
        alpn_first_raw: None,
    };
    // Hellos of SSL 3.0-era clients end here, without an extensions block.
    if r.is_empty() {
        return Ok(hello);
    }
    let mut exts = r.vec16().ok_or(Invalid("truncated extensions"))?;
    if !r.is_empty() {
        return Err(Invalid("bytes after the extensions"));
    }
    let mut seen = SeenExtensions::default();
    while !exts.is_empty() {
        let typ = exts.u16().ok_or(Invalid("truncated extension"))?;
        let data = exts.vec16().ok_or(Invalid("truncated extension"))?;
        hello.extensions.push(typ);
        if seen.first(typ) {
            decode_extension(&mut hello, typ, data)?;
        }
    }
    Ok(hello)
}

/// Which of the decoded extension types were seen already (only the first
/// of a duplicated extension is decoded).
#[derive(Default)]
struct SeenExtensions(u8);

impl SeenExtensions {
    fn first(&mut self, typ: u16) -> bool {
        let bit = match typ {
            ext::SERVER_NAME => 1,
            ext::SUPPORTED_GROUPS => 2,
            ext::EC_POINT_FORMATS => 4,
            ext::SIGNATURE_ALGORITHMS => 8,
            ext::ALPN => 16,
            ext::SUPPORTED_VERSIONS => 32,
            _ => return false,
        };
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first
    }
}

fn decode_extension(
    hello: &mut ClientHello,
    typ: u16,
    mut data: Reader<'_>,
) -> Result<(), HelloError> {
    use HelloError::Invalid;
    match typ {
        ext::SERVER_NAME => {
            // An empty server_name extension is what a server sends back;
            // from a client it is odd but harmless.
            if data.is_empty() {
                return Ok(());
            }
            let mut list = data.vec16().ok_or(Invalid("bad server_name"))?;
            if !data.is_empty() {
                return Err(Invalid("bad server_name"));
            }
            while !list.is_empty() {
                let name_type = list.u8().ok_or(Invalid("bad server_name"))?;
                let name = list.vec16().ok_or(Invalid("bad server_name"))?.buf;
                if name_type == 0 && hello.server_name_raw.is_none() {
                    hello.server_name_raw = Some(name.get(..MAX_SNI_RAW).unwrap_or(name).to_vec());
                    hello.server_name = dns_name(name);
                }
            }
        }
        ext::SUPPORTED_GROUPS => {
            let list = data.vec16().ok_or(Invalid("bad supported_groups"))?;
            if !data.is_empty() {
                return Err(Invalid("bad supported_groups"));
            }
            hello.supported_groups = list.u16_list().ok_or(Invalid("bad supported_groups"))?;
        }
        ext::EC_POINT_FORMATS => {
            let list = data.vec8().ok_or(Invalid("bad ec_point_formats"))?;
            if !data.is_empty() {
                return Err(Invalid("bad ec_point_formats"));
            }
            hello.ec_point_formats = list.buf.to_vec();
        }
        ext::SIGNATURE_ALGORITHMS => {
            let list = data.vec16().ok_or(Invalid("bad signature_algorithms"))?;
            if !data.is_empty() {
                return Err(Invalid("bad signature_algorithms"));
            }
            hello.signature_algorithms =
                list.u16_list().ok_or(Invalid("bad signature_algorithms"))?;
        }
        ext::ALPN => {
            let mut list = data.vec16().ok_or(Invalid("bad ALPN"))?;
            if !data.is_empty() {
                return Err(Invalid("bad ALPN"));
            }
            while !list.is_empty() {
                let proto = list.vec8().ok_or(Invalid("bad ALPN"))?.buf;
                if hello.alpn_first_raw.is_none() {
                    hello.alpn_first_raw = Some(proto.to_vec());
                }
                if hello.alpn.len() < MAX_ALPN {
                    hello.alpn.push(String::from_utf8_lossy(proto).into_owned());
                }
            }
        }
        ext::SUPPORTED_VERSIONS => {
            let list = data.vec8().ok_or(Invalid("bad supported_versions"))?;
            if !data.is_empty() {
                return Err(Invalid("bad supported_versions"));
            }
            hello.supported_versions = list.u16_list().ok_or(Invalid("bad supported_versions"))?;
        }
        _ => {}
    }
    Ok(())
}

/// `name` lower-cased when it is DNS-shaped: dot-separated labels of 1 to
/// 63 letters, digits, `-` or `_`, at most 253 bytes without a trailing
/// dot (which is dropped).
pub fn dns_name(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let label_ok = |l: &[u8]| {
        !l.is_empty()
            && l.len() <= 63
            && l.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split(|&b| b == b'.').all(label_ok) {
        return None;
    }
    // All bytes are ASCII here.
    Some(String::from_utf8_lossy(name).to_ascii_lowercase())
}

fn join_decimal<T: std::fmt::Display>(out: &mut String, values: impl Iterator<Item = T>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push('-');
        }
        let _ = write!(out, "{v}");
    }
}

fn join_hex(values: &[u16]) -> String {
    // Only a capacity hint: saturating cannot change the text.
    let mut out = String::with_capacity(values.len().saturating_mul(5));
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v:04x}");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    // Only a capacity hint: saturating cannot change the text.
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// First 12 hex characters of the SHA-256 of `s`, or JA4's twelve zeros
/// when the list it stands for is empty.
fn hash12(s: &str, empty: bool) -> String {
    if empty {
        return "000000000000".to_owned();
    }
    let digest: [u8; 32] = sha2::Sha256::digest(s.as_bytes()).into();
    hex(&digest[..6])
}

impl ClientHello {
    /// The server name the client asked for, when it is DNS-shaped
    /// (lower-cased, trailing dot dropped, at most 253 bytes).
    pub fn sni(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The first `host_name` of the server_name extension as sent (at most
    /// [`MAX_SNI_RAW`] bytes), valid or not: escape before display.
    pub fn server_name_raw(&self) -> Option<&[u8]> {
        self.server_name_raw.as_deref()
    }

    /// ALPN protocol names offered, in order (non-UTF-8 bytes replaced; at
    /// most [`MAX_ALPN`]).
    pub fn alpn(&self) -> &[String] {
        &self.alpn
    }

    /// The JA3 string: `version,ciphers,extensions,groups,point_formats`,
    /// decimal values joined by `-`, GREASE values removed.
    pub fn ja3_string(&self) -> String {
        let mut s = String::with_capacity(256);
        let _ = write!(s, "{},", self.legacy_version);
        join_decimal(
            &mut s,
            self.cipher_suites.iter().filter(|v| !is_grease(**v)),
        );
        s.push(',');
        join_decimal(&mut s, self.extensions.iter().filter(|v| !is_grease(**v)));
        s.push(',');
        join_decimal(
            &mut s,
            self.supported_groups.iter().filter(|v| !is_grease(**v)),
        );
        s.push(',');
        join_decimal(&mut s, self.ec_point_formats.iter());
        s
    }

    /// The JA3 fingerprint: MD5 of [`ClientHello::ja3_string`], lower-case hex.
    pub fn ja3_hash(&self) -> String {
        hex(&md5::Md5::digest(self.ja3_string().as_bytes()))
    }

    /// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub fn ja4(&self) -> String {
        let p = self.ja4_parts();
        format!(
            "{}_{}_{}",
            p.prefix,
            hash12(&p.ciphers, p.ciphers.is_empty()),
            hash12(&p.exts_sigs, p.exts_empty)
        )
    }

    /// The raw JA4 (`JA4_r`): the prefix, the sorted cipher list, the
    /// sorted extension list and the signature algorithms, unhashed.
    pub fn ja4_r(&self) -> String {
        let p = self.ja4_parts();
        format!("{}_{}_{}", p.prefix, p.ciphers, p.exts_sigs)
    }

    /// The TLS version JA4 reports: the highest non-GREASE value of
    /// supported_versions when the extension is there, else the hello's.
    fn ja4_version(&self) -> &'static str {
        let version = if self.extensions.contains(&ext::SUPPORTED_VERSIONS) {
            self.supported_versions
                .iter()
                .copied()
                .filter(|v| !is_grease(*v))
                .max()
        } else {
            Some(self.legacy_version)
        };
        match version {
            Some(0x0304) => "13",
            Some(0x0303) => "12",
            Some(0x0302) => "11",
            Some(0x0301) => "10",
            Some(0x0300) => "s3",
            Some(0x0002) => "s2",
            Some(0xfeff) => "d1",
            Some(0xfefd) => "d2",
            Some(0xfefc) => "d3",
            _ => "00",
        }
    }

    /// JA4's two ALPN characters.
    fn ja4_alpn(&self) -> String {
        let (first, last) = match self.alpn_first_raw.as_deref() {
            Some(&[first, .., last]) => (first, last),
            Some(&[only]) => (only, only),
            _ => return "00".to_owned(),
        };
        if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
            return String::from_iter([char::from(first), char::from(last)]);
        }
        // The spec's rule for other bytes: the ends of the value's hex form.
        format!("{:x}{:x}", first >> 4, last & 0x0f)
    }

    fn ja4_parts(&self) -> Ja4Parts {
        let mut ciphers: Vec<u16> = self
            .cipher_suites
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let sni = if exts.contains(&ext::SERVER_NAME) {
            'd'
        } else {
            'i'
        };
        let alpn = self.ja4_alpn();
        let prefix = format!(
            "t{}{sni}{:02}{:02}{alpn}",
            self.ja4_version(),
            ciphers.len().min(99),
            exts.len().min(99),
        );
        ciphers.sort_unstable();
        let mut hashed_exts: Vec<u16> = exts
            .into_iter()
            .filter(|v| *v != ext::SERVER_NAME && *v != ext::ALPN)
            .collect();
        hashed_exts.sort_unstable();
        let sigs: Vec<u16> = self
            .signature_algorithms
            .iter()
            .copied()
            .filter(|v| !is_grease(*v))
            .collect();
        let mut exts_sigs = join_hex(&hashed_exts);
        if !sigs.is_empty() {
            exts_sigs.push('_');
            exts_sigs.push_str(&join_hex(&sigs));
        }
        Ja4Parts {
            prefix,
            ciphers: join_hex(&ciphers),
            exts_empty: hashed_exts.is_empty(),
            exts_sigs,
        }
    }
}

struct Ja4Parts {
    prefix: String,
    ciphers: String,
    exts_sigs: String,
    exts_empty: bool,
}

/// Fuzz entry point: parse, fingerprint, and check the invariants.
pub fn fuzz_parse(data: &[u8]) {
    let _ = looks_like_tls(data);
    match parse_client_hello(data) {
        Ok(h) => {
            assert!(h.wire_len <= data.len());
            assert!(h.wire_len > RECORD_HEADER);
            let used = data.get(..h.wire_len);
            // Every shorter prefix of what was used is only "read more".
            let shorter = used.and_then(<[u8]>::split_last).map(|(_, s)| s);
            assert_eq!(
                shorter.map(parse_client_hello),
                Some(Err(HelloError::Incomplete))
            );
            assert_eq!(used.map(parse_client_hello), Some(Ok(h.clone())));
            let ja4 = h.ja4();
            assert_eq!(ja4.len(), 36, "{ja4}");
            assert!(h.ja4_r().starts_with(&ja4[..10]));
            assert_eq!(h.ja3_hash().len(), 32);
            let _ = h.ja3_string();
            if let Some(s) = h.sni() {
                assert!(s.len() <= 253 && dns_name(s.as_bytes()).as_deref() == Some(s));
            }
            assert!(h.server_name_raw().is_none_or(|r| r.len() <= MAX_SNI_RAW));
            assert!(h.alpn().len() <= MAX_ALPN);
        }
        // A buffer of MAX_WIRE_LEN bytes always gets an answer, so a
        // caller never needs to hold more.
        Err(HelloError::Incomplete) => assert!(data.len() < MAX_WIRE_LEN),
        Err(HelloError::Invalid(_)) => {}
    }
}

#[cfg(test)]
mod tests;
