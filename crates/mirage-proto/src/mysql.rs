//! The MySQL client/server protocol (protocol version 10, the "4.1"
//! protocol MySQL 5.x/8.x and MariaDB speak), server side, sans-IO.
//!
//! - Framing: [`next_packet`] takes one packet (3-byte little-endian length,
//!   1-byte sequence id, payload) off a buffer, checking the sequence id
//!   before anything else (as `my_net_read` does) and the declared length
//!   against a caller's limit *before* waiting for the bytes, so a declared
//!   16 MiB packet reserves nothing. Payloads of 0xFFFFFF bytes continue in
//!   the next packet; the pieces are joined only once all have arrived.
//!   [`PacketWriter`] frames replies and numbers them.
//! - Connection phase: [`Handshake`] (HandshakeV10, what the server sends
//!   first), [`parse_client_hello`] (HandshakeResponse41/320 or SSLRequest),
//!   auth switch and "more data" packets, [`parse_change_user`].
//! - Command phase: [`Command::parse`] for every command byte, including
//!   MySQL 8's query attributes ahead of the SQL text.
//! - Replies: OK, ERR and EOF payloads, column definitions and text rows.
//!
//! Every read goes through [`Reader`], a bounded cursor whose methods return
//! `None` instead of reading past the end, so malformed input becomes a
//! parse error (the server's "Bad handshake" or "Malformed packet"), never
//! a panic. [`fuzz_parse`] is the fuzz target's entry point.

use std::fmt::Write as _;

/// Bytes of a packet header.
pub const HEADER_LEN: usize = 4;
/// Largest payload of one packet; a payload this long continues in the next.
pub const MAX_FRAGMENT: usize = 0xFF_FFFF;
/// Length of the authentication scramble (nonce).
pub const SCRAMBLE_LEN: usize = 20;
/// The auth-plugin-data length the handshake announces: the scramble and
/// its NUL.
const AUTH_DATA_LEN: u8 = 21;
const _: () = assert!(AUTH_DATA_LEN as usize == SCRAMBLE_LEN + 1);
/// Most connection attributes kept from one handshake; the rest are skipped
/// (MySQL itself caps the attribute block at 64 KiB).
pub const MAX_ATTRS: usize = 64;
/// Most query attributes (MySQL 8 `CLIENT_QUERY_ATTRIBUTES`) parsed.
pub const MAX_QUERY_ATTRS: u64 = 64;
/// MariaDB's extended capability (in the handshake's reserved bytes) for
/// extended type info in column definitions.
pub const MARIADB_CLIENT_EXTENDED_METADATA: u32 = 1 << 3;
/// MariaDB's extended capability for metadata caching: the column count of
/// a result set is followed by a "metadata follows" byte.
pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 1 << 4;

/// Capability flags (`CLIENT_*` in `mysql_com.h`).
pub mod caps {
    /// New (4.1) password hashing.
    pub const LONG_PASSWORD: u32 = 1;
    /// Found rows instead of affected rows.
    pub const FOUND_ROWS: u32 = 1 << 1;
    /// All column flags.
    pub const LONG_FLAG: u32 = 1 << 2;
    /// A database name may follow the user in the handshake response.
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    /// No `db.table.column`.
    pub const NO_SCHEMA: u32 = 1 << 4;
    /// zlib compression.
    pub const COMPRESS: u32 = 1 << 5;
    /// ODBC client.
    pub const ODBC: u32 = 1 << 6;
    /// LOAD DATA LOCAL.
    pub const LOCAL_FILES: u32 = 1 << 7;
    /// Ignore spaces before '('.
    pub const IGNORE_SPACE: u32 = 1 << 8;
    /// The 4.1 protocol.
    pub const PROTOCOL_41: u32 = 1 << 9;
    /// Interactive client (wait_timeout vs interactive_timeout).
    pub const INTERACTIVE: u32 = 1 << 10;
    /// TLS: the client sends an SSLRequest and then speaks TLS.
    pub const SSL: u32 = 1 << 11;
    /// Ignore SIGPIPE (client only).
    pub const IGNORE_SIGPIPE: u32 = 1 << 12;
    /// Transaction status in OK/EOF.
    pub const TRANSACTIONS: u32 = 1 << 13;
    /// Old 4.1 flag.
    pub const RESERVED: u32 = 1 << 14;
    /// 4.1 authentication (a length-prefixed auth response).
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    /// Several statements in one COM_QUERY.
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    /// Multiple result sets.
    pub const MULTI_RESULTS: u32 = 1 << 17;
    /// Multiple result sets from prepared statements.
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    /// Authentication plugins.
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    /// Connection attributes.
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    /// Length-encoded auth response.
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    /// Client can handle expired passwords.
    pub const CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
    /// Session state tracking in OK packets.
    pub const SESSION_TRACK: u32 = 1 << 23;
    /// OK packets instead of EOF packets.
    pub const DEPRECATE_EOF: u32 = 1 << 24;
    /// Optional result set metadata (MySQL 8).
    pub const OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
    /// zstd compression (MySQL 8).
    pub const ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
    /// Query attributes (MySQL 8.0.23+).
    pub const QUERY_ATTRIBUTES: u32 = 1 << 27;
    /// Multi-factor authentication (MySQL 8.0.27+).
    pub const MULTI_FACTOR_AUTHENTICATION: u32 = 1 << 28;
    /// Capability extension.
    pub const CAPABILITY_EXTENSION: u32 = 1 << 29;
    /// Verify the server certificate (client only).
    pub const SSL_VERIFY_SERVER_CERT: u32 = 1 << 30;
    /// Remember options (client only).
    pub const REMEMBER_OPTIONS: u32 = 1 << 31;
}

/// Server status flags (`SERVER_*`).
pub mod status {
    /// A transaction is open.
    pub const IN_TRANS: u16 = 1;
    /// Autocommit is on.
    pub const AUTOCOMMIT: u16 = 1 << 1;
    /// More results follow.
    pub const MORE_RESULTS_EXISTS: u16 = 1 << 3;
    /// The query did not use a good index.
    pub const QUERY_NO_GOOD_INDEX_USED: u16 = 1 << 4;
    /// The query used no index (a full scan).
    pub const QUERY_NO_INDEX_USED: u16 = 1 << 5;
    /// Session state changed (session tracking info follows in OK).
    pub const SESSION_STATE_CHANGED: u16 = 1 << 14;
}

/// Command bytes (`enum_server_command`).
pub mod com {
    /// COM_SLEEP (internal; clients never send it).
    pub const SLEEP: u8 = 0x00;
    /// COM_QUIT.
    pub const QUIT: u8 = 0x01;
    /// COM_INIT_DB (`USE db`).
    pub const INIT_DB: u8 = 0x02;
    /// COM_QUERY.
    pub const QUERY: u8 = 0x03;
    /// COM_FIELD_LIST.
    pub const FIELD_LIST: u8 = 0x04;
    /// COM_CREATE_DB (obsolete).
    pub const CREATE_DB: u8 = 0x05;
    /// COM_DROP_DB (obsolete).
    pub const DROP_DB: u8 = 0x06;
    /// COM_REFRESH.
    pub const REFRESH: u8 = 0x07;
    /// COM_SHUTDOWN (removed in 8.0; MariaDB keeps it).
    pub const SHUTDOWN: u8 = 0x08;
    /// COM_STATISTICS.
    pub const STATISTICS: u8 = 0x09;
    /// COM_PROCESS_INFO.
    pub const PROCESS_INFO: u8 = 0x0a;
    /// COM_CONNECT (internal).
    pub const CONNECT: u8 = 0x0b;
    /// COM_PROCESS_KILL.
    pub const PROCESS_KILL: u8 = 0x0c;
    /// COM_DEBUG.
    pub const DEBUG: u8 = 0x0d;
    /// COM_PING.
    pub const PING: u8 = 0x0e;
    /// COM_CHANGE_USER.
    pub const CHANGE_USER: u8 = 0x11;
    /// COM_BINLOG_DUMP.
    pub const BINLOG_DUMP: u8 = 0x12;
    /// COM_STMT_PREPARE.
    pub const STMT_PREPARE: u8 = 0x16;
    /// COM_STMT_EXECUTE.
    pub const STMT_EXECUTE: u8 = 0x17;
    /// COM_STMT_SEND_LONG_DATA.
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    /// COM_STMT_CLOSE.
    pub const STMT_CLOSE: u8 = 0x19;
    /// COM_STMT_RESET.
    pub const STMT_RESET: u8 = 0x1a;
    /// COM_SET_OPTION.
    pub const SET_OPTION: u8 = 0x1b;
    /// COM_STMT_FETCH.
    pub const STMT_FETCH: u8 = 0x1c;
    /// COM_RESET_CONNECTION.
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// Column types (`enum_field_types`) the emulator uses.
pub mod types {
    /// DECIMAL (old).
    pub const DECIMAL: u8 = 0;
    /// TINYINT.
    pub const TINY: u8 = 1;
    /// SMALLINT.
    pub const SHORT: u8 = 2;
    /// INT.
    pub const LONG: u8 = 3;
    /// FLOAT.
    pub const FLOAT: u8 = 4;
    /// DOUBLE.
    pub const DOUBLE: u8 = 5;
    /// NULL.
    pub const NULL: u8 = 6;
    /// TIMESTAMP.
    pub const TIMESTAMP: u8 = 7;
    /// BIGINT.
    pub const LONGLONG: u8 = 8;
    /// MEDIUMINT.
    pub const INT24: u8 = 9;
    /// DATE.
    pub const DATE: u8 = 10;
    /// TIME.
    pub const TIME: u8 = 11;
    /// DATETIME.
    pub const DATETIME: u8 = 12;
    /// YEAR.
    pub const YEAR: u8 = 13;
    /// VARCHAR.
    pub const VARCHAR: u8 = 15;
    /// NEWDECIMAL.
    pub const NEWDECIMAL: u8 = 246;
    /// BLOB/TEXT.
    pub const BLOB: u8 = 252;
    /// VARCHAR as sent in results.
    pub const VAR_STRING: u8 = 253;
    /// CHAR.
    pub const STRING: u8 = 254;
}

/// Column definition flags.
pub mod flags {
    /// NOT NULL.
    pub const NOT_NULL: u16 = 1;
    /// Part of the primary key.
    pub const PRI_KEY: u16 = 2;
    /// Part of a unique key.
    pub const UNIQUE_KEY: u16 = 4;
    /// Part of a key.
    pub const MULTIPLE_KEY: u16 = 8;
    /// BLOB.
    pub const BLOB: u16 = 16;
    /// UNSIGNED.
    pub const UNSIGNED: u16 = 32;
    /// BINARY.
    pub const BINARY: u16 = 128;
    /// AUTO_INCREMENT.
    pub const AUTO_INCREMENT: u16 = 512;
    /// NUM.
    pub const NUM: u16 = 32768;
}

/// Why a packet could not be framed. Both are fatal for the connection:
/// the server answers with the matching error ([`FrameError::code`]) and
/// closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The declared payload is longer than the limit.
    #[error("packet of {0} bytes is bigger than the limit")]
    TooLarge(usize),
    /// The sequence id is not the one expected.
    #[error("sequence id {got}, expected {expected}")]
    OutOfOrder {
        /// The id the server was waiting for.
        expected: u8,
        /// The id received.
        got: u8,
    },
}

impl FrameError {
    /// The server's error: (code, SQLSTATE, message).
    pub fn code(&self) -> (u16, &'static str, &'static str) {
        match self {
            FrameError::TooLarge(_) => (
                1153,
                "08S01",
                "Got a packet bigger than 'max_allowed_packet' bytes",
            ),
            FrameError::OutOfOrder { .. } => (1156, "08S01", "Got packets out of order"),
        }
    }
}

/// One framed packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the last piece (the next expected id is this plus one).
    pub seq: u8,
    /// The payload (all pieces joined).
    pub payload: Vec<u8>,
    /// Bytes of the buffer this packet took.
    pub consumed: usize,
}

/// Take one packet off the front of `buf` if it is complete.
///
/// The sequence id must be `expected` (and count up across the pieces of a
/// long payload); the total payload may not exceed `max_len`. Errors are
/// reported as soon as the header shows them, before the payload arrives.
pub fn next_packet(buf: &[u8], expected: u8, max_len: usize) -> Result<Option<Packet>, FrameError> {
    let mut pos = 0usize;
    let mut seq = expected;
    let mut total = 0usize;
    // First pass: check headers and find the end without copying.
    loop {
        let Some((len, got, _)) = buf.get(pos..).and_then(split_header) else {
            return Ok(None);
        };
        if got != seq {
            return Err(FrameError::OutOfOrder { expected: seq, got });
        }
        total = total.saturating_add(len);
        if total > max_len {
            return Err(FrameError::TooLarge(total));
        }
        // A piece that would end past usize::MAX has not arrived either.
        let Some(end) = pos
            .checked_add(HEADER_LEN)
            .and_then(|p| p.checked_add(len))
            .filter(|&end| end <= buf.len())
        else {
            return Ok(None);
        };
        pos = end;
        if len < MAX_FRAGMENT {
            break;
        }
        // Sequence ids count modulo 256, as `my_net_read` counts them.
        seq = seq.wrapping_add(1);
    }
    // Second pass: everything is here; copy the pieces out.
    let mut payload = Vec::with_capacity(total);
    let mut framed = buf.get(..pos).unwrap_or_default();
    while let Some((len, _, rest)) = split_header(framed)
        && let Some((piece, next)) = rest.split_at_checked(len)
    {
        payload.extend_from_slice(piece);
        framed = next;
    }
    Ok(Some(Packet {
        seq,
        payload,
        consumed: pos,
    }))
}

/// A packet header at the start of `b`: the payload length, the sequence
/// id, and the bytes after the header.
fn split_header(b: &[u8]) -> Option<(usize, u8, &[u8])> {
    let (&[l0, l1, l2, seq], rest) = b.split_first_chunk::<HEADER_LEN>()?;
    let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
    Some((len, seq, rest))
}

/// Frames outgoing payloads and numbers them.
#[derive(Debug, Clone, Default)]
pub struct PacketWriter {
    out: Vec<u8>,
    seq: u8,
}

impl PacketWriter {
    /// A writer whose next packet gets sequence id `seq`.
    pub fn new(seq: u8) -> Self {
        PacketWriter {
            out: Vec::new(),
            seq,
        }
    }

    /// The sequence id the next packet will get.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// Set the sequence id of the next packet.
    pub fn set_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    /// Frame `payload` (splitting it at 0xFFFFFF bytes, with the empty
    /// trailing packet the protocol needs when it ends on a boundary).
    pub fn packet(&mut self, payload: &[u8]) {
        let mut rest = payload;
        loop {
            let (piece, tail) = rest.split_at_checked(MAX_FRAGMENT).unwrap_or((rest, &[]));
            // A piece is at most 0xFFFFFF bytes: its length fits the 3 bytes.
            let [l0, l1, l2, ..] = piece.len().to_le_bytes();
            self.out.extend_from_slice(&[l0, l1, l2, self.seq]);
            self.out.extend_from_slice(piece);
            // Sequence ids count modulo 256.
            self.seq = self.seq.wrapping_add(1);
            rest = tail;
            if piece.len() < MAX_FRAGMENT {
                break;
            }
        }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The queued bytes, leaving the writer empty (the sequence id stays).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// A bounded cursor over a payload: every read checks the remaining length.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.get(self.pos..).map_or(0, <[u8]>::len)
    }
    /// Take `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// Take `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.array().map(u8::from_le_bytes)
    }
    /// Little-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    /// Little-endian u24.
    pub fn u24(&mut self) -> Option<u32> {
        self.array()
            .map(|[b0, b1, b2]| u32::from_le_bytes([b0, b1, b2, 0]))
    }
    /// Little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    /// Little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// A NUL-terminated string (without the NUL).
    pub fn nul_str(&mut self) -> Option<&'a [u8]> {
        let n = self.buf.get(self.pos..)?.iter().position(|&b| b == 0)?;
        let s = self.take(n)?;
        self.u8()?; // the NUL
        Some(s)
    }
    /// A NUL-terminated string, or the rest of the payload when no NUL is
    /// left (the 4.0 protocol's way of ending the last field).
    pub fn nul_or_rest(&mut self) -> &'a [u8] {
        match self.nul_str() {
            Some(s) => s,
            None => self.rest(),
        }
    }
    /// A length-encoded integer; `None` for the NULL/EOF markers (0xFB,
    /// 0xFF) and for truncated input.
    pub fn lenenc_int(&mut self) -> Option<u64> {
        match self.u8()? {
            b @ 0..=0xfa => Some(u64::from(b)),
            0xfc => self.u16().map(u64::from),
            0xfd => self.u24().map(u64::from),
            0xfe => self.u64(),
            _ => None,
        }
    }
    /// A length-encoded string.
    pub fn lenenc_str(&mut self) -> Option<&'a [u8]> {
        let n = self.lenenc_int()?;
        let n = usize::try_from(n).ok()?;
        self.take(n)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        s
    }
}

/// Append a length-encoded integer.
pub fn put_lenenc_int(out: &mut Vec<u8>, v: u64) {
    let le = v.to_le_bytes();
    let [b0, b1, b2, ..] = le;
    match v {
        0..=250 => out.push(b0),
        251..=0xffff => out.extend_from_slice(&[0xfc, b0, b1]),
        0x1_0000..=0xff_ffff => out.extend_from_slice(&[0xfd, b0, b1, b2]),
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&le);
        }
    }
}

/// Append a length-encoded string.
pub fn put_lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    put_lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The server's first packet (Protocol::HandshakeV10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// Version string (`8.0.36`, `5.5.5-10.11.6-MariaDB-0+deb12u1`).
    pub server_version: &'a str,
    /// Connection (thread) id.
    pub connection_id: u32,
    /// The 20-byte scramble.
    pub scramble: [u8; SCRAMBLE_LEN],
    /// Capability flags.
    pub capabilities: u32,
    /// Default collation id.
    pub charset: u8,
    /// Status flags.
    pub status: u16,
    /// Name of the default authentication plugin.
    pub auth_plugin: &'a str,
    /// MariaDB's extended capabilities, written into the last 4 of the 10
    /// reserved bytes (MariaDB only; MySQL leaves them zero).
    pub mariadb_caps: Option<u32>,
}

impl Handshake<'_> {
    /// The payload, byte for byte as `send_server_handshake_packet` writes
    /// it: the scramble split 8 + 12 and NUL-terminated, its length given
    /// as 21.
    pub fn encode(&self) -> Vec<u8> {
        // A capacity hint: a slice's length plus a few bytes never saturates.
        let mut p = Vec::with_capacity(self.server_version.len().saturating_add(80));
        let [caps0, caps1, caps2, caps3] = self.capabilities.to_le_bytes();
        p.push(10);
        p.extend_from_slice(self.server_version.as_bytes());
        p.push(0);
        p.extend_from_slice(&self.connection_id.to_le_bytes());
        p.extend_from_slice(&self.scramble[..8]);
        p.push(0);
        p.extend_from_slice(&[caps0, caps1]);
        p.push(self.charset);
        p.extend_from_slice(&self.status.to_le_bytes());
        p.extend_from_slice(&[caps2, caps3]);
        p.push(AUTH_DATA_LEN);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&self.mariadb_caps.unwrap_or(0).to_le_bytes());
        p.extend_from_slice(&self.scramble[8..]);
        p.push(0);
        p.extend_from_slice(self.auth_plugin.as_bytes());
        p.push(0);
        p
    }
}

/// Why a handshake response was refused (MySQL: `ER_HANDSHAKE_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Shorter than the fixed header.
    #[error("handshake response too short")]
    TooShort,
    /// A field runs past the end of the packet.
    #[error("handshake response field truncated: {0}")]
    Truncated(&'static str),
}

/// The client's handshake response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeResponse {
    /// Capability flags the client asked for.
    pub capabilities: u32,
    /// Largest packet the client accepts.
    pub max_packet: u32,
    /// Collation id (0 for 4.0 clients, which have none).
    pub charset: u8,
    /// MariaDB extended capabilities (the last 4 filler bytes).
    pub mariadb_caps: u32,
    /// User name.
    pub username: Vec<u8>,
    /// Authentication response (scramble answer), raw.
    pub auth_response: Vec<u8>,
    /// Database, when `CONNECT_WITH_DB`.
    pub database: Option<Vec<u8>>,
    /// Client plugin, when `PLUGIN_AUTH` (empty if the client left it out).
    pub auth_plugin: Option<Vec<u8>>,
    /// Connection attributes (at most [`MAX_ATTRS`]).
    pub attrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// True when attributes beyond [`MAX_ATTRS`] were skipped.
    pub attrs_truncated: bool,
    /// zstd compression level, when negotiated.
    pub zstd_level: Option<u8>,
}

/// What the client sent after the server's handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    /// A request to switch to TLS (capabilities, max packet, charset).
    SslRequest {
        /// Capability flags.
        capabilities: u32,
    },
    /// The handshake response.
    Response(HandshakeResponse),
}

/// Parse the client's reply to the handshake, following
/// `parse_client_handshake_packet`. `server_caps` are the capabilities the
/// server offered (zstd's level byte is only present if both agree).
pub fn parse_client_hello(payload: &[u8], server_caps: u32) -> Result<ClientHello, HandshakeError> {
    let mut r = Reader::new(payload);
    let Some(&low) = payload.first_chunk() else {
        return Err(HandshakeError::TooShort);
    };
    let low = u32::from(u16::from_le_bytes(low));
    // Connector/J sends only the capability word before starting TLS.
    if payload.len() == 4 && low & caps::SSL != 0 {
        let capabilities = r.u32().ok_or(HandshakeError::TooShort)?;
        return Ok(ClientHello::SslRequest { capabilities });
    }
    let mut h = HandshakeResponse::default();
    if low & caps::PROTOCOL_41 != 0 {
        if payload.len() < 32 {
            return Err(HandshakeError::TooShort);
        }
        h.capabilities = r.u32().ok_or(HandshakeError::TooShort)?;
        h.max_packet = r.u32().ok_or(HandshakeError::TooShort)?;
        h.charset = r.u8().ok_or(HandshakeError::TooShort)?;
        // 23 filler bytes, MariaDB's capabilities in the last 4.
        r.take(19).ok_or(HandshakeError::TooShort)?;
        h.mariadb_caps = r.u32().ok_or(HandshakeError::TooShort)?;
    } else {
        if payload.len() < 5 {
            return Err(HandshakeError::TooShort);
        }
        h.capabilities = u32::from(r.u16().ok_or(HandshakeError::TooShort)?);
        h.max_packet = r.u24().ok_or(HandshakeError::TooShort)?;
    }
    if h.capabilities & caps::SSL != 0 {
        // The SSLRequest: the response proper comes after the TLS handshake.
        return Ok(ClientHello::SslRequest {
            capabilities: h.capabilities,
        });
    }
    let p41 = h.capabilities & caps::PROTOCOL_41 != 0;
    let string = |r: &mut Reader<'_>, what| -> Result<Vec<u8>, HandshakeError> {
        if p41 {
            r.nul_str()
                .map(<[u8]>::to_vec)
                .ok_or(HandshakeError::Truncated(what))
        } else {
            Ok(r.nul_or_rest().to_vec())
        }
    };
    h.username = string(&mut r, "user")?;
    h.auth_response = if h.capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_str()
            .ok_or(HandshakeError::Truncated("auth response"))?
            .to_vec()
    } else if h.capabilities & caps::SECURE_CONNECTION != 0 {
        let n = r.u8().ok_or(HandshakeError::Truncated("auth response"))?;
        r.take(usize::from(n))
            .ok_or(HandshakeError::Truncated("auth response"))?
            .to_vec()
    } else {
        // Pre-4.1 clients: a NUL-terminated (old, 8-byte) scramble.
        r.nul_or_rest().to_vec()
    };
    if h.capabilities & caps::CONNECT_WITH_DB != 0 {
        h.database = Some(string(&mut r, "database")?);
    }
    if h.capabilities & caps::PLUGIN_AUTH != 0 {
        // Absent is allowed: the server then assumes its default.
        h.auth_plugin = Some(r.nul_str().unwrap_or_default().to_vec());
    }
    if h.capabilities & caps::CONNECT_ATTRS != 0 && r.remaining() > 0 {
        let block = r
            .lenenc_str()
            .ok_or(HandshakeError::Truncated("connect attributes"))?;
        let mut a = Reader::new(block);
        while a.remaining() > 0 {
            let (Some(k), Some(v)) = (a.lenenc_str(), a.lenenc_str()) else {
                return Err(HandshakeError::Truncated("connect attributes"));
            };
            if h.attrs.len() < MAX_ATTRS {
                h.attrs.push((k.to_vec(), v.to_vec()));
            } else {
                h.attrs_truncated = true;
            }
        }
    }
    if h.capabilities & server_caps & caps::COMPRESS == 0
        && h.capabilities & server_caps & caps::ZSTD_COMPRESSION_ALGORITHM != 0
    {
        h.zstd_level = r.u8();
    }
    Ok(ClientHello::Response(h))
}

/// Protocol::AuthSwitchRequest: ask the client to restart authentication
/// with `plugin`, giving it `data` (the scramble and its NUL).
pub fn auth_switch_request(plugin: &str, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(plugin.len().saturating_add(data.len()).saturating_add(2));
    p.push(0xfe);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p.extend_from_slice(data);
    p
}

/// Protocol::AuthMoreData: plugin data wrapped with the 0x01 marker.
pub fn auth_more_data(data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(data.len().saturating_add(1));
    p.push(0x01);
    p.extend_from_slice(data);
    p
}

/// COM_CHANGE_USER's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangeUser {
    /// User name.
    pub username: Vec<u8>,
    /// Authentication response.
    pub auth_response: Vec<u8>,
    /// Database (may be empty).
    pub database: Vec<u8>,
    /// Collation id, when sent.
    pub charset: Option<u16>,
    /// Client plugin, when sent.
    pub auth_plugin: Option<Vec<u8>>,
}

/// Parse COM_CHANGE_USER's body (after the command byte).
pub fn parse_change_user(body: &[u8], client_caps: u32) -> Option<ChangeUser> {
    let mut r = Reader::new(body);
    let mut c = ChangeUser {
        username: r.nul_str()?.to_vec(),
        ..ChangeUser::default()
    };
    c.auth_response = if client_caps & caps::SECURE_CONNECTION != 0 {
        let n = r.u8()?;
        r.take(usize::from(n))?.to_vec()
    } else {
        r.nul_str()?.to_vec()
    };
    c.database = r.nul_str()?.to_vec();
    if r.remaining() >= 2 {
        c.charset = r.u16();
    }
    if client_caps & caps::PLUGIN_AUTH != 0 && r.remaining() > 0 {
        c.auth_plugin = Some(r.nul_or_rest().to_vec());
    }
    Some(c)
}

/// One query attribute (MySQL 8 `CLIENT_QUERY_ATTRIBUTES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAttr {
    /// Its name.
    pub name: Vec<u8>,
    /// Its value as sent (binary protocol encoding), `None` for NULL.
    pub value: Option<Vec<u8>>,
}

/// A command as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// COM_QUIT.
    Quit,
    /// COM_INIT_DB.
    InitDb(Vec<u8>),
    /// COM_QUERY: the SQL text and any query attributes before it.
    Query {
        /// The statement.
        sql: Vec<u8>,
        /// Query attributes.
        attrs: Vec<QueryAttr>,
    },
    /// COM_FIELD_LIST.
    FieldList {
        /// Table.
        table: Vec<u8>,
        /// Column wildcard.
        wildcard: Vec<u8>,
    },
    /// COM_PING.
    Ping,
    /// COM_STATISTICS.
    Statistics,
    /// COM_PROCESS_INFO.
    ProcessInfo,
    /// COM_PROCESS_KILL.
    ProcessKill(u32),
    /// COM_DEBUG.
    Debug,
    /// COM_REFRESH.
    Refresh(u8),
    /// COM_SHUTDOWN.
    Shutdown,
    /// COM_CHANGE_USER (body unparsed: see [`parse_change_user`]).
    ChangeUser(Vec<u8>),
    /// COM_RESET_CONNECTION.
    ResetConnection,
    /// COM_SET_OPTION.
    SetOption(u16),
    /// COM_STMT_PREPARE.
    StmtPrepare(Vec<u8>),
    /// COM_STMT_EXECUTE, COM_STMT_CLOSE, COM_STMT_RESET, COM_STMT_FETCH,
    /// COM_STMT_SEND_LONG_DATA: the command byte and statement id.
    Stmt {
        /// The command byte.
        command: u8,
        /// Statement id.
        id: u32,
    },
    /// COM_BINLOG_DUMP and friends: replication, recorded only.
    Replication(u8),
    /// Something the parser refused or does not know (the server's
    /// "Unknown command" / "Malformed packet"): the command byte (None for
    /// an empty packet).
    Unknown(Option<u8>),
    /// A known command whose body is malformed.
    Malformed(u8),
}

impl Command {
    /// Parse a command-phase packet. `client_caps` decides whether COM_QUERY
    /// carries query attributes.
    pub fn parse(payload: &[u8], client_caps: u32) -> Command {
        let Some((&c, body)) = payload.split_first() else {
            return Command::Unknown(None);
        };
        let mut r = Reader::new(body);
        match c {
            com::QUIT => Command::Quit,
            com::INIT_DB => Command::InitDb(body.to_vec()),
            com::QUERY => {
                if client_caps & caps::QUERY_ATTRIBUTES != 0 {
                    match parse_query_attrs(&mut r) {
                        Some(attrs) => Command::Query {
                            sql: r.rest().to_vec(),
                            attrs,
                        },
                        None => Command::Malformed(c),
                    }
                } else {
                    Command::Query {
                        sql: body.to_vec(),
                        attrs: Vec::new(),
                    }
                }
            }
            com::FIELD_LIST => {
                let table = r.nul_or_rest().to_vec();
                Command::FieldList {
                    table,
                    wildcard: r.rest().to_vec(),
                }
            }
            com::PING => Command::Ping,
            com::STATISTICS => Command::Statistics,
            com::PROCESS_INFO => Command::ProcessInfo,
            com::PROCESS_KILL => match r.u32() {
                Some(id) => Command::ProcessKill(id),
                None => Command::Malformed(c),
            },
            com::DEBUG => Command::Debug,
            com::REFRESH => Command::Refresh(r.u8().unwrap_or(0)),
            com::SHUTDOWN => Command::Shutdown,
            com::CHANGE_USER => Command::ChangeUser(body.to_vec()),
            com::RESET_CONNECTION => Command::ResetConnection,
            com::SET_OPTION => match r.u16() {
                Some(o) => Command::SetOption(o),
                None => Command::Malformed(c),
            },
            com::STMT_PREPARE => Command::StmtPrepare(body.to_vec()),
            com::STMT_EXECUTE
            | com::STMT_CLOSE
            | com::STMT_RESET
            | com::STMT_FETCH
            | com::STMT_SEND_LONG_DATA => match r.u32() {
                Some(id) => Command::Stmt { command: c, id },
                None => Command::Malformed(c),
            },
            com::BINLOG_DUMP | 0x13 | 0x14 | 0x15 | 0x1e | 0x20 | 0x21 => Command::Replication(c),
            _ => Command::Unknown(Some(c)),
        }
    }

    /// The command's name as MySQL's `command_name[]` spells it
    /// (`Query`, `Init DB`, …), for events.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Quit => "Quit",
            Command::InitDb(_) => "Init DB",
            Command::Query { .. } => "Query",
            Command::FieldList { .. } => "Field List",
            Command::Ping => "Ping",
            Command::Statistics => "Statistics",
            Command::ProcessInfo => "Processlist",
            Command::ProcessKill(_) => "Kill",
            Command::Debug => "Debug",
            Command::Refresh(_) => "Refresh",
            Command::Shutdown => "Shutdown",
            Command::ChangeUser(_) => "Change user",
            Command::ResetConnection => "Reset Connection",
            Command::SetOption(_) => "Set option",
            Command::StmtPrepare(_) => "Prepare",
            Command::Stmt { command, .. } => match *command {
                com::STMT_EXECUTE => "Execute",
                com::STMT_CLOSE => "Close stmt",
                com::STMT_RESET => "Reset stmt",
                com::STMT_FETCH => "Fetch",
                _ => "Long Data",
            },
            Command::Replication(_) => "Binlog Dump",
            Command::Unknown(_) => "Error",
            Command::Malformed(_) => "Error",
        }
    }
}

/// Query attributes ahead of the SQL text: parameter count, parameter set
/// count (always 1), then NULL bitmap, types and names, and values in the
/// binary protocol encoding.
fn parse_query_attrs(r: &mut Reader<'_>) -> Option<Vec<QueryAttr>> {
    let count = r.lenenc_int()?;
    let _sets = r.lenenc_int()?;
    if count == 0 {
        return Some(Vec::new());
    }
    if count > MAX_QUERY_ATTRS {
        return None;
    }
    let n = usize::try_from(count).ok()?;
    let bitmap = r.take(n.div_ceil(8))?;
    if r.u8()? != 1 {
        // Without types (new_params_bind_flag 0) the values cannot be read.
        return None;
    }
    let mut meta = Vec::with_capacity(n);
    for _ in 0..n {
        // The type byte, then a flags byte (0x80: unsigned) not needed here.
        let [ty, _flags] = r.u16()?.to_le_bytes();
        let name = r.lenenc_str()?.to_vec();
        meta.push((ty, name));
    }
    let mut out = Vec::with_capacity(n);
    for (i, (ty, name)) in meta.into_iter().enumerate() {
        let is_null = bitmap.get(i / 8).is_some_and(|&b| b & (1 << (i % 8)) != 0);
        let value = if is_null {
            None
        } else {
            Some(binary_value(r, ty)?.to_vec())
        };
        out.push(QueryAttr { name, value });
    }
    Some(out)
}

/// One value in the binary protocol encoding of `ty`.
fn binary_value<'a>(r: &mut Reader<'a>, ty: u8) -> Option<&'a [u8]> {
    match ty {
        types::NULL => Some(&[]),
        types::TINY => r.take(1),
        types::SHORT | types::YEAR => r.take(2),
        types::LONG | types::INT24 | types::FLOAT => r.take(4),
        types::LONGLONG | types::DOUBLE => r.take(8),
        types::DATE | types::DATETIME | types::TIMESTAMP | types::TIME => {
            let n = r.u8()?;
            r.take(usize::from(n))
        }
        _ => r.lenenc_str(),
    }
}

/// An OK packet's fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket<'a> {
    /// Affected rows.
    pub affected_rows: u64,
    /// Last insert id.
    pub last_insert_id: u64,
    /// Status flags.
    pub status: u16,
    /// Warnings.
    pub warnings: u16,
    /// Human-readable info (`Rows matched: 1  Changed: 1  Warnings: 0`).
    pub info: &'a [u8],
    /// Session state changes, already encoded (sent only with
    /// `SESSION_TRACK` and `SESSION_STATE_CHANGED`).
    pub session_state: &'a [u8],
}

/// The payload of an OK packet (header 0x00), or of the OK that ends a
/// result set under `DEPRECATE_EOF` (header 0xFE), for a client with
/// `client_caps`.
pub fn ok_payload(ok: &OkPacket<'_>, client_caps: u32, eof_header: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(
        ok.info
            .len()
            .saturating_add(ok.session_state.len())
            .saturating_add(16),
    );
    p.push(if eof_header { 0xfe } else { 0x00 });
    put_lenenc_int(&mut p, ok.affected_rows);
    put_lenenc_int(&mut p, ok.last_insert_id);
    if client_caps & caps::PROTOCOL_41 != 0 {
        p.extend_from_slice(&ok.status.to_le_bytes());
        p.extend_from_slice(&ok.warnings.to_le_bytes());
    } else if client_caps & caps::TRANSACTIONS != 0 {
        p.extend_from_slice(&ok.status.to_le_bytes());
    }
    if client_caps & caps::SESSION_TRACK != 0 {
        let changed = ok.status & status::SESSION_STATE_CHANGED != 0;
        // The info string is length-encoded here, and written even when
        // empty only if something follows or it is not empty.
        if !ok.info.is_empty() || changed {
            put_lenenc_str(&mut p, ok.info);
        }
        if changed {
            put_lenenc_str(&mut p, ok.session_state);
        }
    } else {
        p.extend_from_slice(ok.info);
    }
    p
}

/// A session-state entry for `SESSION_TRACK_SCHEMA` (the current database).
pub fn session_track_schema(db: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    put_lenenc_str(&mut inner, db);
    let mut p = vec![1u8];
    put_lenenc_str(&mut p, &inner);
    p
}

/// A session-state entry for `SESSION_TRACK_SYSTEM_VARIABLES`.
pub fn session_track_variable(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    put_lenenc_str(&mut inner, name);
    put_lenenc_str(&mut inner, value);
    let mut p = vec![0u8];
    put_lenenc_str(&mut p, &inner);
    p
}

/// The payload of an ERR packet. The SQLSTATE marker is written only for
/// 4.1 clients, as the server does.
pub fn err_payload(code: u16, sqlstate: &str, message: &[u8], protocol_41: bool) -> Vec<u8> {
    let mut p = Vec::with_capacity(message.len().saturating_add(9));
    p.push(0xff);
    p.extend_from_slice(&code.to_le_bytes());
    if protocol_41 {
        p.push(b'#');
        let mut s = [b'H', b'Y', b'0', b'0', b'0'];
        for (d, b) in s.iter_mut().zip(sqlstate.bytes()) {
            *d = b;
        }
        p.extend_from_slice(&s);
    }
    p.extend_from_slice(message);
    p
}

/// The payload of an EOF packet.
pub fn eof_payload(warnings: u16, status: u16) -> Vec<u8> {
    let mut p = vec![0xfe];
    p.extend_from_slice(&warnings.to_le_bytes());
    p.extend_from_slice(&status.to_le_bytes());
    p
}

/// A column definition (Protocol::ColumnDefinition41).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    /// Schema (database).
    pub schema: String,
    /// Table alias.
    pub table: String,
    /// Table.
    pub org_table: String,
    /// Column alias.
    pub name: String,
    /// Column.
    pub org_name: String,
    /// Collation id of the values (63 = binary for numbers).
    pub charset: u16,
    /// Display length in bytes.
    pub length: u32,
    /// Type.
    pub column_type: u8,
    /// Flags.
    pub flags: u16,
    /// Decimals.
    pub decimals: u8,
}

impl Column {
    /// The payload; `field_list` adds the (NULL) default value that
    /// COM_FIELD_LIST answers carry; `extended_metadata` adds the empty
    /// extended type info MariaDB sends to clients that negotiated
    /// `MARIADB_CLIENT_EXTENDED_METADATA`.
    pub fn encode(&self, field_list: bool, extended_metadata: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.name.len().saturating_mul(2).saturating_add(48));
        put_lenenc_str(&mut p, b"def");
        put_lenenc_str(&mut p, self.schema.as_bytes());
        put_lenenc_str(&mut p, self.table.as_bytes());
        put_lenenc_str(&mut p, self.org_table.as_bytes());
        put_lenenc_str(&mut p, self.name.as_bytes());
        put_lenenc_str(&mut p, self.org_name.as_bytes());
        if extended_metadata {
            p.push(0);
        }
        p.push(0x0c);
        p.extend_from_slice(&self.charset.to_le_bytes());
        p.extend_from_slice(&self.length.to_le_bytes());
        p.push(self.column_type);
        p.extend_from_slice(&self.flags.to_le_bytes());
        p.push(self.decimals);
        p.extend_from_slice(&[0, 0]);
        if field_list {
            p.push(0xfb);
        }
        p
    }
}

/// A text-protocol row: each value length-encoded, NULL as 0xFB.
pub fn text_row<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> Vec<u8> {
    let mut p = Vec::new();
    for v in values {
        match v {
            Some(v) => put_lenenc_str(&mut p, v),
            None => p.push(0xfb),
        }
    }
    p
}

/// Longest character of a collation in bytes (`mbmaxlen`), which scales
/// the column lengths a server reports.
pub fn charset_mbmaxlen(id: u16) -> u32 {
    match id {
        // utf8mb4 (MySQL 8's 0900 collations are 255-323), utf16, utf32, gb18030.
        45
        | 46
        | 54
        | 55
        | 56
        | 60
        | 61
        | 62
        | 101..=124
        | 160..=183
        | 224..=247
        | 248..=250
        | 255..=323 => 4,
        // utf8mb3, ujis, eucjpms.
        12 | 33 | 76 | 83 | 91 | 97 | 98 | 192..=215 => 3,
        // big5, sjis, euckr, gb2312, gbk, ucs2, cp932.
        1 | 13 | 19 | 24 | 28 | 35 | 84..=88 | 90 | 95 | 96 | 128..=151 => 2,
        _ => 1,
    }
}

/// Lower-case hex of bytes (for auth responses in events).
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Fuzz entry point: frame `data` as packets (every starting sequence id
/// the server uses), and parse each payload as a handshake response, a
/// COM_CHANGE_USER body and a command, with every capability set the
/// parsers branch on. Must never panic.
pub fn fuzz_parse(data: &[u8]) {
    let caps_sets = [
        0u32,
        caps::PROTOCOL_41 | caps::SECURE_CONNECTION,
        u32::MAX,
        !caps::COMPRESS,
    ];
    for &(expected, max) in &[(0u8, 1 << 20), (1u8, 64), (0u8, MAX_FRAGMENT * 3)] {
        let mut buf = data;
        let mut seq = expected;
        // At most 65 packets from one framing.
        for _ in 0..=64 {
            let Ok(Some(p)) = next_packet(buf, seq, max) else {
                break;
            };
            assert!(p.consumed > 0 && p.consumed <= buf.len());
            buf = buf.get(p.consumed..).unwrap_or_default();
            seq = p.seq.wrapping_add(1);
            for &c in &caps_sets {
                let _ = parse_client_hello(&p.payload, c);
                let _ = parse_change_user(&p.payload, c);
                let cmd = Command::parse(&p.payload, c);
                let _ = cmd.name();
            }
        }
    }
    for &c in &caps_sets {
        let _ = parse_client_hello(data, c);
        let _ = Command::parse(data, c);
        let _ = ok_payload(
            &OkPacket {
                info: data,
                session_state: data,
                status: status::SESSION_STATE_CHANGED,
                ..OkPacket::default()
            },
            c,
            false,
        );
    }
    let mut r = Reader::new(data);
    while r.remaining() > 0 {
        if r.lenenc_str().is_none() && r.u8().is_none() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut w = PacketWriter::new(seq);
        w.packet(payload);
        w.take()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A handshake captured from Debian's mariadb-server 10.11.19
    /// (`tests/data` has no binary fixtures; the bytes are inline).
    const MARIADB_HANDSHAKE: &str = "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100040000007d6d2c2e413e505b00fef7080200ff81150000000000001d000000567d34296e716c49684f3351006d7973716c5f6e61746976655f70617373776f726400";

    #[test]
    fn handshake_matches_mariadb_bytes() {
        let want = unhex(MARIADB_HANDSHAKE);
        let mut scramble = [0u8; 20];
        scramble[..8].copy_from_slice(b"}m,.A>P[");
        scramble[8..].copy_from_slice(b"V}4)nqlIhO3Q");
        let h = Handshake {
            server_version: "5.5.5-10.11.19-MariaDB-0+deb12u1",
            connection_id: 4,
            scramble,
            capabilities: 0x81ff_f7fe,
            charset: 8,
            status: 2,
            auth_plugin: "mysql_native_password",
            mariadb_caps: Some(0x1d),
        };
        assert_eq!(h.encode(), want);
    }

    #[test]
    fn mariadb_client_response_parses() {
        // libmariadb 3.3.20 (the `mariadb` CLI) logging in as root with a
        // password, captured against mariadb-server.
        let p = unhex(
            "84a2bf000000100021000000000000000000000000000000000000001d000000726f6f74001401c252d971c0fb56a723a02d709f7d9c3872b1196d7973716c5f6e61746976655f70617373776f7264007f035f6f73054c696e75780c5f636c69656e745f6e616d650a6c69626d617269616462045f7069640532373031370f5f636c69656e745f76657273696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f7365727665725f686f7374093132372e302e302e31",
        );
        let ClientHello::Response(h) = parse_client_hello(&p, 0x81ff_f7fe).unwrap() else {
            panic!("ssl")
        };
        assert_eq!(h.username, b"root");
        assert_eq!(h.auth_response.len(), 20);
        assert_eq!(h.database, None);
        assert_eq!(
            h.auth_plugin.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert_eq!(h.charset, 33);
        assert_eq!(h.mariadb_caps, 0x1d);
        assert_eq!(h.attrs.len(), 7);
        assert_eq!(
            h.attrs[1],
            (b"_client_name".to_vec(), b"libmariadb".to_vec())
        );
    }

    #[test]
    fn ssl_request_and_short_packets() {
        let mut p = (caps::PROTOCOL_41 | caps::SSL).to_le_bytes().to_vec();
        assert_eq!(
            parse_client_hello(&p, 0).unwrap(),
            ClientHello::SslRequest {
                capabilities: caps::PROTOCOL_41 | caps::SSL
            }
        );
        p.extend_from_slice(&[0; 28]);
        assert!(matches!(
            parse_client_hello(&p, 0),
            Ok(ClientHello::SslRequest { .. })
        ));
        assert_eq!(
            parse_client_hello(b"\x05", 0),
            Err(HandshakeError::TooShort)
        );
        assert_eq!(
            parse_client_hello(b"\x05\xa2\x3a\x00", 0),
            Err(HandshakeError::TooShort)
        );
        // A 4.1 header with a user that never ends.
        let mut p = (caps::PROTOCOL_41).to_le_bytes().to_vec();
        p.extend_from_slice(&[0; 28]);
        p.extend_from_slice(b"rootroot");
        assert_eq!(
            parse_client_hello(&p, 0),
            Err(HandshakeError::Truncated("user"))
        );
    }

    #[test]
    fn old_protocol_response() {
        // hydra's own 3.23-era packet: 2-byte caps, 3-byte max packet.
        let ClientHello::Response(h) =
            parse_client_hello(b"\x85\x24\x00\x00\x00root\x00abcdefgh\x00", 0).unwrap()
        else {
            panic!()
        };
        assert_eq!(h.username, b"root");
        assert_eq!(h.auth_response, b"abcdefgh");
    }

    #[test]
    fn framing_checks_sequence_then_length_before_bytes() {
        let two = [frame(0, b"\x03select 1"), frame(0, b"\x0e")].concat();
        let p = next_packet(&two, 0, 100).unwrap().unwrap();
        assert_eq!(p.payload, b"\x03select 1");
        let p2 = next_packet(&two[p.consumed..], 0, 100).unwrap().unwrap();
        assert_eq!((p2.payload.as_slice(), p2.seq), (&b"\x0e"[..], 0));
        assert_eq!(next_packet(&two[..5], 0, 100), Ok(None));
        assert_eq!(
            next_packet(b"\x01\x00\x00\x05\x0e", 0, 100),
            Err(FrameError::OutOfOrder {
                expected: 0,
                got: 5
            })
        );
        // A declared 16 MiB packet is refused from its header alone.
        assert_eq!(
            next_packet(b"\xff\xff\xff\x00", 0, 1 << 20),
            Err(FrameError::TooLarge(MAX_FRAGMENT))
        );
        // "GET / HTTP" read as a header: out of order, like the real server.
        assert!(matches!(
            next_packet(b"GET / HTTP/1.0\r\n", 1, 1 << 24),
            Err(FrameError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn long_payloads_split_and_join() {
        let big = vec![7u8; MAX_FRAGMENT + 10];
        let wire = frame(3, &big);
        assert_eq!(wire.len(), big.len() + 8);
        let p = next_packet(&wire, 3, MAX_FRAGMENT * 2).unwrap().unwrap();
        assert_eq!(
            (p.payload.len(), p.seq, p.consumed),
            (big.len(), 4, wire.len())
        );
        assert!(next_packet(&wire, 3, MAX_FRAGMENT).is_err());
        let exact = frame(0, &vec![1u8; MAX_FRAGMENT]);
        assert_eq!(exact.len(), MAX_FRAGMENT + 8, "an empty packet must follow");
    }

    #[test]
    fn replies_match_mariadb_bytes() {
        // ERR for a wrong password, as mariadb-server sent it.
        let msg = b"Access denied for user 'root'@'127.0.0.1' (using password: YES)";
        assert_eq!(
            frame(2, &err_payload(1045, "28000", msg, true)),
            unhex(
                "48000002ff15042332383030304163636573732064656e69656420666f7220757365722027726f6f742740273132372e302e302e312720287573696e672070617373776f72643a2059455329"
            )
        );
        // OK after login with database `shop`, with session tracking.
        let state = session_track_schema(b"shop");
        let ok = OkPacket {
            status: status::AUTOCOMMIT | status::SESSION_STATE_CHANGED,
            session_state: &state,
            ..OkPacket::default()
        };
        assert_eq!(
            frame(
                2,
                &ok_payload(&ok, caps::PROTOCOL_41 | caps::SESSION_TRACK, false)
            ),
            unhex("1000000200000002400000000701050473686f70")
        );
        // The same OK for a client without session tracking (pymysql).
        let ok = OkPacket {
            status: status::AUTOCOMMIT,
            ..OkPacket::default()
        };
        assert_eq!(
            frame(2, &ok_payload(&ok, caps::PROTOCOL_41, false)),
            unhex("0700000200000002000000")
        );
        // Column definition of `select @@version_comment limit 1`.
        let c = Column {
            name: "@@version_comment".into(),
            charset: 33,
            length: 27,
            column_type: types::VAR_STRING,
            decimals: 39,
            ..Column::default()
        };
        assert_eq!(
            frame(2, &c.encode(false, true)),
            unhex(
                "280000020364656600000011404076657273696f6e5f636f6d6d656e7400000c21001b000000fd0000270000"
            )
        );
        assert_eq!(frame(3, &eof_payload(0, 2)), unhex("05000003fe00000200"));
        assert_eq!(
            frame(4, &text_row([Some(&b"Debian 12"[..])])),
            unhex("0a0000040944656269616e203132")
        );
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse(b"\x03select 1", 0),
            Command::Query {
                sql: b"select 1".to_vec(),
                attrs: vec![]
            }
        );
        // MySQL 8 clients with query attributes: "no attributes" prefix.
        assert_eq!(
            Command::parse(b"\x03\x00\x01select 1", caps::QUERY_ATTRIBUTES),
            Command::Query {
                sql: b"select 1".to_vec(),
                attrs: vec![]
            }
        );
        // One string attribute.
        let mut q = vec![0x03, 1, 1, 0, 1];
        q.extend_from_slice(&[types::VAR_STRING, 0]);
        put_lenenc_str(&mut q, b"trace");
        put_lenenc_str(&mut q, b"abc");
        q.extend_from_slice(b"select 2");
        let Command::Query { sql, attrs } = Command::parse(&q, caps::QUERY_ATTRIBUTES) else {
            panic!()
        };
        assert_eq!(sql, b"select 2");
        assert_eq!(attrs[0].value.as_deref(), Some(&b"abc"[..]));
        assert_eq!(Command::parse(b"", 0), Command::Unknown(None));
        assert_eq!(Command::parse(b"\x99", 0), Command::Unknown(Some(0x99)));
        assert_eq!(Command::parse(b"\x1b\x00", 0), Command::Malformed(0x1b));
        assert_eq!(
            Command::parse(b"\x04users\x00", 0),
            Command::FieldList {
                table: b"users".to_vec(),
                wildcard: vec![]
            }
        );
        let c = parse_change_user(
            b"root\x00\x00db\x00\x21\x00mysql_native_password\x00",
            u32::MAX,
        )
        .unwrap();
        assert_eq!(
            (c.username.as_slice(), c.database.as_slice()),
            (&b"root"[..], &b"db"[..])
        );
    }

    #[test]
    fn lenenc_round_trip() {
        for v in [
            0u64,
            250,
            251,
            65535,
            65536,
            (1 << 24) - 1,
            1 << 24,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_lenenc_int(&mut b, v);
            assert_eq!(Reader::new(&b).lenenc_int(), Some(v));
        }
        assert_eq!(Reader::new(&[0xfc, 1]).lenenc_int(), None);
        assert_eq!(
            Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]).lenenc_str(),
            None
        );
    }

    /// Replays the committed fuzz corpus (and any crash inputs saved there).
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("mysql", fuzz_parse);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_parse(&data);
        }

        #[test]
        fn framing_is_chunk_independent(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            chunk in 1usize..50,
        ) {
            let mut w = PacketWriter::new(0);
            for p in &payloads {
                w.set_seq(0);
                w.packet(p);
            }
            let wire = w.take();
            let mut got = Vec::new();
            let mut buf = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(p) = next_packet(&buf, 0, 1 << 20).unwrap() {
                    buf.drain(..p.consumed);
                    got.push(p.payload);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn responses_round_trip(
            user in proptest::collection::vec(1u8..=255, 0..40),
            auth in proptest::collection::vec(any::<u8>(), 0..40),
            db in proptest::option::of(proptest::collection::vec(1u8..=255, 0..20)),
            attrs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..10), proptest::collection::vec(any::<u8>(), 0..10)), 0..5),
        ) {
            let mut c = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH
                | caps::PLUGIN_AUTH_LENENC_CLIENT_DATA | caps::CONNECT_ATTRS;
            if db.is_some() { c |= caps::CONNECT_WITH_DB; }
            let mut p = c.to_le_bytes().to_vec();
            p.extend_from_slice(&[0, 0, 0, 1, 45]);
            p.extend_from_slice(&[0; 23]);
            p.extend_from_slice(&user); p.push(0);
            put_lenenc_str(&mut p, &auth);
            if let Some(d) = &db { p.extend_from_slice(d); p.push(0); }
            p.extend_from_slice(b"caching_sha2_password\0");
            let mut block = Vec::new();
            for (k, v) in &attrs { put_lenenc_str(&mut block, k); put_lenenc_str(&mut block, v); }
            put_lenenc_str(&mut p, &block);
            let ClientHello::Response(h) = parse_client_hello(&p, u32::MAX).unwrap() else { panic!() };
            prop_assert_eq!(h.username, user);
            prop_assert_eq!(h.auth_response, auth);
            prop_assert_eq!(h.database, db);
            prop_assert_eq!(h.attrs, attrs);
        }
    }
}
