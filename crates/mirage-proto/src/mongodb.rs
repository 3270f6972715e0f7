//! The MongoDB wire protocol, server side, sans-IO, with a small bounded
//! BSON codec.
//!
//! - Framing: [`next_message`] checks a message header (16 bytes:
//!   `messageLength`, `requestID`, `responseTo`, `opCode`, little-endian) and
//!   the declared length against a caller's limit *before* waiting for the
//!   bytes, so a declared 2 GiB message reserves nothing. A length below 16
//!   or above the limit is a [`FrameError`], as mongod's "message len … is
//!   invalid" is: the server closes the connection.
//! - [`parse_message`]: `OP_MSG` (flag bits, a kind 0 body section, kind 1
//!   document sequences, the optional CRC-32C checksum) and the legacy
//!   `OP_QUERY` (old drivers' and scanners' `admin.$cmd` isMaster); other
//!   opcodes are reported by number.
//! - Replies: [`encode_op_msg`] and [`encode_op_reply`] (`OP_REPLY`, what an
//!   `OP_QUERY` gets).
//! - BSON: [`Value`] and [`Document`], [`parse_document`] and
//!   [`Document::encode`], and [`relaxed_ejson`], relaxed Extended JSON v2
//!   (what events carry), written with a cap.
//!
//! The BSON reader is our own rather than the `bson` crate: it checks every
//! length against the bytes that are there, refuses nesting deeper than a
//! limit (deep nesting is recursion, so a stack overflow otherwise), and
//! counts elements across a whole message so a message of tiny elements
//! cannot expand into a tree many times its size. Malformed input is a
//! [`BsonError`], never a panic; [`fuzz_parse`] is the fuzz target's entry
//! point.

use std::fmt::Write as _;

/// Bytes of a message header.
pub const HEADER_LEN: usize = 16;
/// The server's largest BSON document (`maxBsonObjectSize`).
pub const MAX_BSON_OBJECT_SIZE: usize = 16 * 1024 * 1024;
/// The server's largest message (`maxMessageSizeBytes`).
pub const MAX_MESSAGE_SIZE_BYTES: usize = 48_000_000;

/// Opcodes.
pub mod opcode {
    /// Reply to `OP_QUERY` (legacy).
    pub const REPLY: i32 = 1;
    /// Legacy update (removed in 6.0).
    pub const UPDATE: i32 = 2001;
    /// Legacy insert (removed in 6.0).
    pub const INSERT: i32 = 2002;
    /// Legacy query; still used for the first `isMaster`/`hello`.
    pub const QUERY: i32 = 2004;
    /// Legacy getMore (removed in 6.0).
    pub const GET_MORE: i32 = 2005;
    /// Legacy delete (removed in 6.0).
    pub const DELETE: i32 = 2006;
    /// Legacy killCursors (removed in 6.0).
    pub const KILL_CURSORS: i32 = 2007;
    /// A compressed message (only after compression was negotiated).
    pub const COMPRESSED: i32 = 2012;
    /// The extensible message format (3.6+).
    pub const MSG: i32 = 2013;
}

/// `OP_MSG` flag bits.
pub mod msg_flags {
    /// The message ends with a CRC-32C checksum.
    pub const CHECKSUM_PRESENT: u32 = 1;
    /// The sender will send another message without waiting for a reply
    /// (requests: no reply is expected).
    pub const MORE_TO_COME: u32 = 1 << 1;
    /// The client accepts several replies to this request (exhaust).
    pub const EXHAUST_ALLOWED: u32 = 1 << 16;
    /// Bits 0-15 are required: a receiver must reject unknown ones.
    pub const REQUIRED_MASK: u32 = 0xffff;
}

/// Limits on what one message may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message, header included, in bytes.
    pub max_message: usize,
    /// Deepest nesting of documents and arrays (the top document is 1).
    pub max_depth: usize,
    /// Most BSON elements in one message, at any depth.
    pub max_elements: usize,
    /// Most sections in one `OP_MSG`.
    pub max_sections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 4 * 1024 * 1024,
            max_depth: 100,
            max_elements: 100_000,
            max_sections: 64,
        }
    }
}

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whole message length, header included.
    pub length: usize,
    /// The sender's id for this message.
    pub request_id: i32,
    /// For replies, the request answered.
    pub response_to: i32,
    /// The opcode.
    pub op_code: i32,
}

/// A header the server refuses (and closes the connection for).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Declared length below the header size or above the limit.
    #[error("recv(): message msgLen {len} is invalid. Min 16 Max: {max}")]
    BadLength {
        /// The declared length.
        len: i64,
        /// The limit in force.
        max: usize,
    },
}

/// The next whole message at the start of `buf`: its header, once all its
/// bytes are there (`Ok(None)` while more are needed). The length is checked
/// against `max` as soon as the 4 length bytes have arrived.
pub fn next_message(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    let mut r = Cursor { b: buf };
    let Some(raw) = r.i32() else {
        return Ok(None);
    };
    let len = usize::try_from(raw)
        .ok()
        .filter(|&len| len >= HEADER_LEN && i64::from(raw) <= max as i64)
        .ok_or(FrameError::BadLength {
            len: i64::from(raw),
            max,
        })?;
    if buf.len() < len {
        return Ok(None);
    }
    // `len` is at least HEADER_LEN, so the header is there.
    let (Some(request_id), Some(response_to), Some(op_code)) = (r.i32(), r.i32(), r.i32()) else {
        return Ok(None);
    };
    Ok(Some(Header {
        length: len,
        request_id,
        response_to,
        op_code,
    }))
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `OP_MSG`.
    Msg(OpMsg),
    /// `OP_QUERY`.
    Query(OpQuery),
    /// Any other opcode (legacy writes, `OP_COMPRESSED`, garbage).
    Other(i32),
}

/// An `OP_MSG`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpMsg {
    /// Flag bits (see [`msg_flags`]).
    pub flags: u32,
    /// The kind 0 section: the command document.
    pub body: Document,
    /// Kind 1 sections: (identifier, documents).
    pub sequences: Vec<(String, Vec<Document>)>,
    /// The checksum, when present (not verified).
    pub checksum: Option<u32>,
}

impl OpMsg {
    /// The command with its document sequences folded in as array fields,
    /// as the server sees it (`insert` with `documents`, …).
    pub fn command(&self) -> Document {
        let mut doc = self.body.clone();
        for (id, docs) in &self.sequences {
            doc.0.retain(|(k, _)| k != id);
            doc.0.push((
                id.clone(),
                Value::Array(docs.iter().cloned().map(Value::Document).collect()),
            ));
        }
        doc
    }
}

/// An `OP_QUERY`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpQuery {
    /// Flag bits.
    pub flags: i32,
    /// `db.collection` (`admin.$cmd` for commands).
    pub collection: String,
    /// Documents to skip.
    pub skip: i32,
    /// Documents to return.
    pub n_return: i32,
    /// The query (for `$cmd`, the command), possibly wrapped in `$query`.
    pub query: Document,
    /// The optional projection.
    pub fields: Option<Document>,
}

impl OpQuery {
    /// The command: the query, unwrapped from `$query`/`query` when the
    /// driver wrapped it to add a read preference.
    pub fn command(&self) -> Document {
        for k in ["$query", "query"] {
            if let Some(Value::Document(d)) = self.query.get(k)
                && self.query.0.first().map(|(f, _)| f.as_str()) == Some(k)
            {
                return d.clone();
            }
        }
        self.query.clone()
    }

    /// The database of a `db.$cmd` namespace.
    pub fn database(&self) -> &str {
        self.collection
            .split_once('.')
            .map(|(d, _)| d)
            .unwrap_or(&self.collection)
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A BSON document in it is malformed.
    #[error("{0}")]
    Bson(#[from] BsonError),
    /// Unknown required `OP_MSG` flag bits.
    #[error("Message contains illegal flags value: Flag {0:#x}")]
    IllegalFlags(u32),
    /// No kind 0 section, or more than one.
    #[error("OP_MSG requires exactly one body section, found {0}")]
    BodyCount(usize),
    /// An unknown section kind.
    #[error("Unknown section kind {0}")]
    SectionKind(u8),
    /// A section runs past the message or is malformed.
    #[error("invalid {0}")]
    Truncated(&'static str),
    /// More sections than allowed.
    #[error("too many sections")]
    TooManySections,
    /// A document sequence names a field the body also has.
    #[error("Duplicate field name in OP_MSG: {0}")]
    DuplicateField(String),
}

/// Decode the message `msg` (whole, header included; see [`next_message`]).
pub fn parse_message(header: &Header, msg: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    let body = msg
        .get(HEADER_LEN..header.length)
        .ok_or(ParseError::Truncated("message"))?;
    let mut budget = limits.max_elements;
    match header.op_code {
        opcode::MSG => parse_op_msg(body, limits, &mut budget).map(Message::Msg),
        opcode::QUERY => parse_op_query(body, limits, &mut budget).map(Message::Query),
        other => Ok(Message::Other(other)),
    }
}

fn parse_op_msg(b: &[u8], limits: &Limits, budget: &mut usize) -> Result<OpMsg, ParseError> {
    let mut r = Cursor { b };
    let flags = r
        .array()
        .map(u32::from_le_bytes)
        .ok_or(ParseError::Truncated("OP_MSG flags"))?;
    let known = msg_flags::CHECKSUM_PRESENT | msg_flags::MORE_TO_COME;
    if flags & msg_flags::REQUIRED_MASK & !known != 0 {
        return Err(ParseError::IllegalFlags(flags));
    }
    let mut checksum = None;
    if flags & msg_flags::CHECKSUM_PRESENT != 0 {
        let (sections, sum) =
            r.b.split_last_chunk()
                .ok_or(ParseError::Truncated("OP_MSG checksum"))?;
        r.b = sections;
        checksum = Some(u32::from_le_bytes(*sum));
    }
    let mut body = None;
    let mut bodies = 0usize;
    let mut sequences = Vec::new();
    let mut sections = 0usize;
    while let Some(kind) = r.u8() {
        // Each section takes a byte at least, so these counters never get
        // near usize::MAX: saturating never bites.
        sections = sections.saturating_add(1);
        if sections > limits.max_sections {
            return Err(ParseError::TooManySections);
        }
        match kind {
            0 => {
                body = Some(r.document(1, limits, budget)?);
                bodies = bodies.saturating_add(1);
            }
            1 => {
                // The size counts its own 4 bytes.
                let seq = r
                    .i32()
                    .and_then(|size| usize::try_from(size).ok())
                    .and_then(|size| size.checked_sub(4))
                    .and_then(|n| r.take(n))
                    .ok_or(ParseError::Truncated("document sequence"))?;
                let mut seq = Cursor { b: seq };
                let id = seq
                    .cstring()
                    .ok_or(ParseError::Truncated("document sequence identifier"))?;
                let id = String::from_utf8_lossy(id).into_owned();
                let mut docs = Vec::new();
                while !seq.b.is_empty() {
                    docs.push(seq.document(1, limits, budget)?);
                }
                sequences.push((id, docs));
            }
            k => return Err(ParseError::SectionKind(k)),
        }
    }
    let body = match (bodies, body) {
        (1, Some(b)) => b,
        (n, _) => return Err(ParseError::BodyCount(n)),
    };
    for (id, _) in &sequences {
        if body.get(id).is_some() {
            return Err(ParseError::DuplicateField(id.clone()));
        }
    }
    Ok(OpMsg {
        flags,
        body,
        sequences,
        checksum,
    })
}

fn parse_op_query(b: &[u8], limits: &Limits, budget: &mut usize) -> Result<OpQuery, ParseError> {
    let mut r = Cursor { b };
    let flags = r.i32().ok_or(ParseError::Truncated("OP_QUERY"))?;
    let collection = r.cstring().ok_or(ParseError::Truncated("OP_QUERY"))?;
    let skip = r.i32().ok_or(ParseError::Truncated("OP_QUERY"))?;
    let n_return = r.i32().ok_or(ParseError::Truncated("OP_QUERY"))?;
    let query = r.document(1, limits, budget)?;
    let fields = if r.b.is_empty() {
        None
    } else {
        Some(r.document(1, limits, budget)?)
    };
    if !r.b.is_empty() {
        return Err(ParseError::Truncated("OP_QUERY"));
    }
    Ok(OpQuery {
        flags,
        collection: String::from_utf8_lossy(collection).into_owned(),
        skip,
        n_return,
        query,
        fields,
    })
}

fn header(out: &mut Vec<u8>, request_id: i32, response_to: i32, op: i32) {
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
}

/// Fill the 4-byte length placeholder the caller wrote at `start` with the
/// length of everything from there on (the placeholder included).
fn patch_len(out: &mut [u8], start: usize) {
    if let Some(tail) = out.get_mut(start..) {
        let len = len32(tail.len());
        if let Some(placeholder) = tail.first_chunk_mut() {
            *placeholder = len;
        }
    }
}

/// `n` as a little-endian int32 length field: its low 32 bits. What is
/// encoded here stays far below 4 GiB (it answers requests capped far below).
fn len32(n: usize) -> [u8; 4] {
    let [a, b, c, d, ..] = n.to_le_bytes();
    [a, b, c, d]
}

/// An `OP_MSG` reply with one body section.
pub fn encode_op_msg(request_id: i32, response_to: i32, flags: u32, body: &Document) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    header(&mut out, request_id, response_to, opcode::MSG);
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(0);
    body.encode(&mut out);
    patch_len(&mut out, 0);
    out
}

/// `OP_REPLY` flag: the server supports `awaitData` (always set by mongod).
pub const REPLY_AWAIT_CAPABLE: i32 = 8;

/// An `OP_REPLY` (to an `OP_QUERY`).
pub fn encode_op_reply(
    request_id: i32,
    response_to: i32,
    flags: i32,
    docs: &[Document],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    header(&mut out, request_id, response_to, opcode::REPLY);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0i64.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&len32(docs.len()));
    for d in docs {
        d.encode(&mut out);
    }
    patch_len(&mut out, 0);
    out
}

// ---------------------------------------------------------------------------
// BSON

/// A BSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 0x01 double.
    Double(f64),
    /// 0x02 string (invalid UTF-8 replaced).
    String(String),
    /// 0x03 embedded document.
    Document(Document),
    /// 0x04 array (keys dropped).
    Array(Vec<Value>),
    /// 0x05 binary.
    Binary {
        /// Subtype.
        subtype: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// 0x06 undefined (deprecated).
    Undefined,
    /// 0x07 ObjectId.
    ObjectId([u8; 12]),
    /// 0x08 boolean.
    Bool(bool),
    /// 0x09 UTC datetime, milliseconds since the epoch.
    DateTime(i64),
    /// 0x0A null.
    Null,
    /// 0x0B regular expression.
    Regex {
        /// The pattern.
        pattern: String,
        /// The options.
        options: String,
    },
    /// 0x0C DBPointer (deprecated).
    DbPointer {
        /// Namespace.
        ns: String,
        /// Id.
        id: [u8; 12],
    },
    /// 0x0D JavaScript code.
    JavaScript(String),
    /// 0x0E symbol (deprecated).
    Symbol(String),
    /// 0x0F JavaScript code with scope.
    JavaScriptWithScope {
        /// Code.
        code: String,
        /// Scope.
        scope: Document,
    },
    /// 0x10 int32.
    Int32(i32),
    /// 0x11 timestamp.
    Timestamp {
        /// Seconds.
        t: u32,
        /// Increment.
        i: u32,
    },
    /// 0x12 int64.
    Int64(i64),
    /// 0x13 decimal128 (little-endian bytes).
    Decimal128([u8; 16]),
    /// 0xFF min key.
    MinKey,
    /// 0x7F max key.
    MaxKey,
}

impl Value {
    /// The string, for string values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The document, for document values.
    pub fn as_document(&self) -> Option<&Document> {
        match self {
            Value::Document(d) => Some(d),
            _ => None,
        }
    }

    /// A number as i64 (doubles truncated), for numeric values.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int32(i) => Some(i64::from(i)),
            Value::Int64(i) => Some(i),
            // why it cannot panic: a float-to-int `as` never does; it
            // truncates toward zero and saturates, as documented above.
            #[allow(clippy::cast_possible_truncation)]
            Value::Double(d) if d.is_finite() => Some(d as i64),
            _ => None,
        }
    }

    /// MongoDB's truthiness for options: false, null, 0 are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Null | Value::Undefined => false,
            Value::Int32(0) | Value::Int64(0) => false,
            Value::Double(d) => *d != 0.0,
            _ => true,
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            Value::Double(_) => 0x01,
            Value::String(_) => 0x02,
            Value::Document(_) => 0x03,
            Value::Array(_) => 0x04,
            Value::Binary { .. } => 0x05,
            Value::Undefined => 0x06,
            Value::ObjectId(_) => 0x07,
            Value::Bool(_) => 0x08,
            Value::DateTime(_) => 0x09,
            Value::Null => 0x0A,
            Value::Regex { .. } => 0x0B,
            Value::DbPointer { .. } => 0x0C,
            Value::JavaScript(_) => 0x0D,
            Value::Symbol(_) => 0x0E,
            Value::JavaScriptWithScope { .. } => 0x0F,
            Value::Int32(_) => 0x10,
            Value::Timestamp { .. } => 0x11,
            Value::Int64(_) => 0x12,
            Value::Decimal128(_) => 0x13,
            Value::MinKey => 0xFF,
            Value::MaxKey => 0x7F,
        }
    }
}

/// A BSON document: fields in order (duplicates kept, as BSON allows).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document(pub Vec<(String, Value)>);

impl Document {
    /// An empty document.
    pub fn new() -> Self {
        Document(Vec::new())
    }

    /// The first field named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Append a field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.push((key.to_owned(), value.into()));
        self
    }

    /// Append a field.
    pub fn push(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push((key.to_owned(), value.into()));
    }

    /// The first field (a command's name and argument).
    pub fn first(&self) -> Option<(&str, &Value)> {
        self.0.first().map(|(k, v)| (k.as_str(), v))
    }

    /// Append the document's BSON encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        for (k, v) in &self.0 {
            out.push(v.type_byte());
            put_cstring(out, k);
            encode_value(v, out);
        }
        out.push(0);
        patch_len(out, start);
    }

    /// The BSON encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int32(i)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int64(i)
    }
}
impl From<f64> for Value {
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Document> for Value {
    fn from(d: Document) -> Self {
        Value::Document(d)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

fn put_cstring(out: &mut Vec<u8>, s: &str) {
    // A NUL inside a key would end it early; drop such bytes.
    out.extend(s.bytes().filter(|&b| b != 0));
    out.push(0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // With its NUL (a string is at most isize::MAX bytes: no saturation).
    out.extend_from_slice(&len32(s.len().saturating_add(1)));
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Double(d) => out.extend_from_slice(&d.to_le_bytes()),
        Value::String(s) | Value::JavaScript(s) | Value::Symbol(s) => put_string(out, s),
        Value::Document(d) => d.encode(out),
        Value::Array(a) => {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            for (i, v) in a.iter().enumerate() {
                out.push(v.type_byte());
                put_cstring(out, &i.to_string());
                encode_value(v, out);
            }
            out.push(0);
            patch_len(out, start);
        }
        Value::Binary { subtype, bytes } => {
            out.extend_from_slice(&len32(bytes.len()));
            out.push(*subtype);
            out.extend_from_slice(bytes);
        }
        Value::Undefined | Value::Null | Value::MinKey | Value::MaxKey => {}
        Value::ObjectId(id) => out.extend_from_slice(id),
        Value::Bool(b) => out.push(u8::from(*b)),
        Value::DateTime(t) | Value::Int64(t) => out.extend_from_slice(&t.to_le_bytes()),
        Value::Regex { pattern, options } => {
            put_cstring(out, pattern);
            put_cstring(out, options);
        }
        Value::DbPointer { ns, id } => {
            put_string(out, ns);
            out.extend_from_slice(id);
        }
        Value::JavaScriptWithScope { code, scope } => {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            put_string(out, code);
            scope.encode(out);
            patch_len(out, start);
        }
        Value::Int32(i) => out.extend_from_slice(&i.to_le_bytes()),
        Value::Timestamp { t, i } => {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
        }
        Value::Decimal128(b) => out.extend_from_slice(b),
    }
}

/// Malformed BSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BsonError {
    /// A length runs past the data or is impossible.
    #[error("BSONObj size: {0} (0x{0:x}) is invalid. Size must be between 0 and 16793600(16MB)")]
    BadSize(i64),
    /// The data ended inside an element.
    #[error("incomplete BSON element")]
    Truncated,
    /// An unknown element type.
    #[error("Unrecognized BSON type: {0}")]
    BadType(u8),
    /// A string without its terminating NUL or with a bad length.
    #[error("invalid BSON string")]
    BadString,
    /// Nested deeper than allowed.
    #[error("BSONObj exceeds maximum nested object depth: {0}")]
    TooDeep(usize),
    /// More elements than allowed in one message.
    #[error("too many BSON elements")]
    TooManyElements,
    /// A document's bytes end before its declared size or lack the final NUL.
    #[error("BSON document not terminated")]
    Unterminated,
}

/// Parse one document from the start of `b` under `limits`; returns it and
/// the bytes it used.
pub fn parse_document(b: &[u8], limits: &Limits) -> Result<(Document, usize), BsonError> {
    let mut budget = limits.max_elements;
    let raw = split_doc(b)?;
    let doc = parse_doc_body(raw.elements, 1, limits, &mut budget)?;
    Ok((doc, raw.len))
}

/// A document split off the start of some bytes by its declared size.
struct RawDoc<'a> {
    /// The declared size: the bytes the document takes.
    len: usize,
    /// The bytes between the 4-byte size and the final NUL.
    elements: &'a [u8],
    /// The bytes after the document.
    rest: &'a [u8],
}

/// The document at the start of `b`, its declared size checked to fit
/// (at least the size and the final NUL) and its final NUL checked.
fn split_doc(b: &[u8]) -> Result<RawDoc<'_>, BsonError> {
    let raw = b
        .first_chunk()
        .map(|&s| i32::from_le_bytes(s))
        .ok_or(BsonError::Truncated)?;
    let bad_size = || BsonError::BadSize(i64::from(raw));
    let len = usize::try_from(raw).map_err(|_| bad_size())?;
    let (doc, rest) = b.split_at_checked(len).ok_or_else(bad_size)?;
    let (_size, body) = doc.split_first_chunk::<4>().ok_or_else(bad_size)?;
    let (&nul, elements) = body.split_last().ok_or_else(bad_size)?;
    if nul != 0 {
        return Err(BsonError::Unterminated);
    }
    Ok(RawDoc {
        len,
        elements,
        rest,
    })
}

/// A document's `elements` (its bytes between the size and the final NUL),
/// nested `depth` deep.
fn parse_doc_body(
    elements: &[u8],
    depth: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Result<Document, BsonError> {
    if depth > limits.max_depth {
        return Err(BsonError::TooDeep(limits.max_depth));
    }
    let mut r = Cursor { b: elements };
    let mut out = Vec::new();
    while !r.b.is_empty() {
        *budget = budget.checked_sub(1).ok_or(BsonError::TooManyElements)?;
        let t = r.u8().ok_or(BsonError::Truncated)?;
        let key = r.cstring().ok_or(BsonError::BadString)?;
        let key = String::from_utf8_lossy(key).into_owned();
        let v = parse_value(&mut r, t, depth, limits, budget)?;
        out.push((key, v));
    }
    Ok(Document(out))
}

fn parse_value(
    r: &mut Cursor<'_>,
    t: u8,
    depth: usize,
    limits: &Limits,
    budget: &mut usize,
) -> Result<Value, BsonError> {
    let trunc = BsonError::Truncated;
    // The depth of a nested document or array. Bounded by max_depth (checked
    // on the way in) and the stack, so saturating never bites.
    let inner = depth.saturating_add(1);
    Ok(match t {
        0x01 => Value::Double(f64::from_le_bytes(r.array::<8>().ok_or(trunc)?)),
        0x02 => Value::String(r.string()?),
        0x03 | 0x04 => {
            let doc = r.document(inner, limits, budget)?;
            if t == 0x03 {
                Value::Document(doc)
            } else {
                Value::Array(doc.0.into_iter().map(|(_, v)| v).collect())
            }
        }
        0x05 => {
            let n = r.i32().ok_or(BsonError::Truncated)?;
            let n = usize::try_from(n).map_err(|_| BsonError::BadSize(i64::from(n)))?;
            let subtype = r.u8().ok_or(BsonError::Truncated)?;
            let bytes = r.take(n).ok_or(BsonError::Truncated)?.to_vec();
            Value::Binary { subtype, bytes }
        }
        0x06 => Value::Undefined,
        0x07 => Value::ObjectId(r.array::<12>().ok_or(trunc)?),
        0x08 => Value::Bool(r.u8().ok_or(trunc)? != 0),
        0x09 => Value::DateTime(i64::from_le_bytes(r.array::<8>().ok_or(trunc)?)),
        0x0A => Value::Null,
        0x0B => {
            let pattern = r.cstring().ok_or(BsonError::BadString)?;
            let pattern = String::from_utf8_lossy(pattern).into_owned();
            let options = r.cstring().ok_or(BsonError::BadString)?;
            let options = String::from_utf8_lossy(options).into_owned();
            Value::Regex { pattern, options }
        }
        0x0C => {
            let ns = r.string()?;
            Value::DbPointer {
                ns,
                id: r.array::<12>().ok_or(trunc)?,
            }
        }
        0x0D => Value::JavaScript(r.string()?),
        0x0E => Value::Symbol(r.string()?),
        0x0F => {
            let start = r.b;
            let total = r.i32().ok_or(BsonError::Truncated)?;
            let code = r.string()?;
            let scope = r.document(inner, limits, budget)?;
            // The declared total counts every byte read since `start`.
            let used = start
                .len()
                .checked_sub(r.b.len())
                .and_then(|n| i64::try_from(n).ok());
            if used != Some(i64::from(total)) {
                return Err(BsonError::BadSize(i64::from(total)));
            }
            Value::JavaScriptWithScope { code, scope }
        }
        0x10 => Value::Int32(i32::from_le_bytes(r.array::<4>().ok_or(trunc)?)),
        0x11 => {
            let i = u32::from_le_bytes(r.array::<4>().ok_or(BsonError::Truncated)?);
            let t = u32::from_le_bytes(r.array::<4>().ok_or(BsonError::Truncated)?);
            Value::Timestamp { t, i }
        }
        0x12 => Value::Int64(i64::from_le_bytes(r.array::<8>().ok_or(trunc)?)),
        0x13 => Value::Decimal128(r.array::<16>().ok_or(trunc)?),
        0xFF => Value::MinKey,
        0x7F => Value::MaxKey,
        other => return Err(BsonError::BadType(other)),
    })
}

/// A bounded cursor over the bytes not read yet: every read returns `None`
/// rather than reading past the end.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (s, rest) = self.b.split_at_checked(n)?;
        self.b = rest;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (s, rest) = self.b.split_first_chunk()?;
        self.b = rest;
        Some(*s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.array().map(|[c]| c)
    }
    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }
    /// Bytes up to a NUL, and the NUL.
    fn cstring(&mut self) -> Option<&'a [u8]> {
        let mut parts = self.b.splitn(2, |&c| c == 0);
        let s = parts.next()?;
        // No second part: there is no NUL.
        self.b = parts.next()?;
        Some(s)
    }
    /// int32 length (including the NUL), bytes, NUL.
    fn string(&mut self) -> Result<String, BsonError> {
        let n = self.i32().ok_or(BsonError::Truncated)?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or(BsonError::BadString)?;
        let s = self.take(n).ok_or(BsonError::BadString)?;
        let Some((0, s)) = s.split_last() else {
            return Err(BsonError::BadString);
        };
        Ok(String::from_utf8_lossy(s).into_owned())
    }
    /// A whole document (see [`split_doc`]), nested `depth` deep.
    fn document(
        &mut self,
        depth: usize,
        limits: &Limits,
        budget: &mut usize,
    ) -> Result<Document, BsonError> {
        let raw = split_doc(self.b)?;
        let doc = parse_doc_body(raw.elements, depth, limits, budget)?;
        self.b = raw.rest;
        Ok(doc)
    }
}

// ---------------------------------------------------------------------------
// Relaxed Extended JSON

/// `doc` as relaxed Extended JSON v2, stopping once `cap` bytes are written;
/// returns the text and whether it was cut. A cut text is not valid JSON
/// (it ends with `…`); events say `truncated`.
pub fn relaxed_ejson(doc: &Document, cap: usize) -> (String, bool) {
    let mut w = JsonOut {
        s: String::new(),
        cap,
    };
    w.doc(doc);
    if w.s.len() > cap {
        // The last char boundary at or before `cap` (0 always is one).
        let end = (0..=cap)
            .rev()
            .find(|&i| w.s.is_char_boundary(i))
            .unwrap_or(0);
        w.s.truncate(end);
        w.s.push('…');
        (w.s, true)
    } else {
        (w.s, false)
    }
}

/// One value as relaxed Extended JSON (for evidence fields).
pub fn relaxed_ejson_value(v: &Value, cap: usize) -> (String, bool) {
    let d = Document(vec![(String::new(), v.clone())]);
    let (s, cut) = relaxed_ejson(&d, cap.saturating_add(5));
    // Strip the `{"":` … `}` wrapper.
    let inner = s
        .strip_prefix("{\"\":")
        .map(|x| x.strip_suffix('}').unwrap_or(x))
        .unwrap_or(&s);
    (inner.to_owned(), cut)
}

struct JsonOut {
    s: String,
    cap: usize,
}

impl JsonOut {
    fn full(&self) -> bool {
        self.s.len() > self.cap
    }

    fn str(&mut self, v: &str) {
        self.s.push('"');
        for c in v.chars() {
            match c {
                '"' => self.s.push_str("\\\""),
                '\\' => self.s.push_str("\\\\"),
                '\n' => self.s.push_str("\\n"),
                '\r' => self.s.push_str("\\r"),
                '\t' => self.s.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.s, "\\u{:04x}", c as u32);
                }
                c => self.s.push(c),
            }
            if self.full() {
                return;
            }
        }
        self.s.push('"');
    }

    fn doc(&mut self, d: &Document) {
        self.s.push('{');
        for (i, (k, v)) in d.0.iter().enumerate() {
            if self.full() {
                return;
            }
            if i > 0 {
                self.s.push(',');
            }
            self.str(k);
            self.s.push(':');
            self.value(v);
        }
        self.s.push('}');
    }

    fn value(&mut self, v: &Value) {
        if self.full() {
            return;
        }
        match v {
            Value::Double(d) => {
                if d.is_finite() {
                    if d.fract() == 0.0 && d.abs() < 1e15 {
                        let _ = write!(self.s, "{d:.1}");
                    } else {
                        let _ = write!(self.s, "{d}");
                    }
                } else {
                    let t = if d.is_nan() {
                        "NaN"
                    } else if *d > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    };
                    let _ = write!(self.s, "{{\"$numberDouble\":\"{t}\"}}");
                }
            }
            Value::String(s) => self.str(s),
            Value::Document(d) => self.doc(d),
            Value::Array(a) => {
                self.s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if self.full() {
                        return;
                    }
                    if i > 0 {
                        self.s.push(',');
                    }
                    self.value(v);
                }
                self.s.push(']');
            }
            Value::Binary { subtype, bytes } => {
                let _ = write!(
                    self.s,
                    "{{\"$binary\":{{\"base64\":\"{}\",\"subType\":\"{subtype:02x}\"}}}}",
                    base64(bytes.get(..self.cap).unwrap_or(bytes))
                );
            }
            Value::Undefined => self.s.push_str("{\"$undefined\":true}"),
            Value::ObjectId(id) => {
                let _ = write!(self.s, "{{\"$oid\":\"{}\"}}", hex(id));
            }
            Value::Bool(b) => self.s.push_str(if *b { "true" } else { "false" }),
            Value::DateTime(ms) => {
                // Relaxed form: ISO-8601 for years 1970-9999, else canonical.
                if (0..253_402_300_800_000).contains(ms) {
                    let _ = write!(self.s, "{{\"$date\":\"{}\"}}", iso8601(*ms));
                } else {
                    let _ = write!(self.s, "{{\"$date\":{{\"$numberLong\":\"{ms}\"}}}}");
                }
            }
            Value::Null => self.s.push_str("null"),
            Value::Regex { pattern, options } => {
                self.s.push_str("{\"$regularExpression\":{\"pattern\":");
                self.str(pattern);
                self.s.push_str(",\"options\":");
                self.str(options);
                self.s.push_str("}}");
            }
            Value::DbPointer { ns, id } => {
                self.s.push_str("{\"$dbPointer\":{\"$ref\":");
                self.str(ns);
                let _ = write!(self.s, ",\"$id\":{{\"$oid\":\"{}\"}}}}}}", hex(id));
            }
            Value::JavaScript(c) => {
                self.s.push_str("{\"$code\":");
                self.str(c);
                self.s.push('}');
            }
            Value::Symbol(c) => {
                self.s.push_str("{\"$symbol\":");
                self.str(c);
                self.s.push('}');
            }
            Value::JavaScriptWithScope { code, scope } => {
                self.s.push_str("{\"$code\":");
                self.str(code);
                self.s.push_str(",\"$scope\":");
                self.doc(scope);
                self.s.push('}');
            }
            Value::Int32(i) => {
                let _ = write!(self.s, "{i}");
            }
            Value::Timestamp { t, i } => {
                let _ = write!(self.s, "{{\"$timestamp\":{{\"t\":{t},\"i\":{i}}}}}");
            }
            Value::Int64(i) => {
                let _ = write!(self.s, "{i}");
            }
            Value::Decimal128(b) => {
                let _ = write!(self.s, "{{\"$numberDecimal\":\"{}\"}}", decimal128(b));
            }
            Value::MinKey => self.s.push_str("{\"$minKey\":1}"),
            Value::MaxKey => self.s.push_str("{\"$maxKey\":1}"),
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    // Only a capacity hint: saturating cannot change the text.
    let mut s = String::with_capacity(b.len().saturating_mul(2));
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn base64(b: &[u8]) -> String {
    /// The letter for the low 6 bits of `n`.
    // why it cannot panic: the index is masked to 6 bits and A has 64 letters.
    #[allow(clippy::indexing_slicing)]
    fn letter(n: u32) -> char {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        A[n as usize & 63] as char
    }
    // Only a capacity hint: saturating cannot change the text.
    let mut s = String::with_capacity(b.len().div_ceil(3).saturating_mul(4));
    for c in b.chunks(3) {
        // The last chunk may be short: its missing bytes count as zero.
        let byte = |i: usize| c.get(i).copied().unwrap_or(0);
        let n = u32::from_be_bytes([0, byte(0), byte(1), byte(2)]);
        s.push(letter(n >> 18));
        s.push(letter(n >> 12));
        s.push(if c.len() > 1 { letter(n >> 6) } else { '=' });
        s.push(if c.len() > 2 { letter(n) } else { '=' });
    }
    s
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch (>= 0).
// why it cannot overflow: for any i64, `days` is within ±1.1e11, `era`
// within ±7.4e5 and `y` within ±3e8; every other value is below 1.5e5 in
// magnitude, and the divisors are positive constants.
#[allow(clippy::arithmetic_side_effects)]
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The string form of an IEEE 754-2008 decimal128 (BID encoding), as the
/// Extended JSON spec gives it.
// why it cannot overflow or truncate: the biased exponent has 14 bits, so
// `exp` is -6176..=10207, and `n` is 1..=34 digits; `point` is cast only
// when it is 1..n (exp < 0 there) or, negated, 0..=5 (adjusted >= -6).
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
pub fn decimal128(b: &[u8; 16]) -> String {
    let bits = u128::from_le_bytes(*b);
    let neg = bits >> 127 == 1;
    let sign = if neg { "-" } else { "" };
    let comb = (bits >> 122) & 0x1f;
    if comb == 0x1f {
        return "NaN".into();
    }
    if comb == 0x1e {
        return format!("{sign}Infinity");
    }
    let (exp, coef) = if (bits >> 125) & 3 == 3 {
        // Coefficients of this form exceed 10^34: non-canonical, zero.
        (((bits >> 111) & 0x3fff) as i64, 0u128)
    } else {
        (((bits >> 113) & 0x3fff) as i64, bits & ((1u128 << 113) - 1))
    };
    let exp = exp - 6176;
    let coef = if coef > 9_999_999_999_999_999_999_999_999_999_999_999u128 {
        0
    } else {
        coef
    };
    let digits = coef.to_string();
    let n = digits.len() as i64;
    let adjusted = exp + n - 1;
    if exp <= 0 && adjusted >= -6 {
        if exp == 0 {
            return format!("{sign}{digits}");
        }
        let point = n + exp;
        if point > 0 {
            let (a, b) = digits.split_at(point as usize);
            format!("{sign}{a}.{b}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        }
    } else {
        let (a, b) = digits.split_at(1);
        let frac = if b.is_empty() {
            String::new()
        } else {
            format!(".{b}")
        };
        let e = if adjusted >= 0 {
            format!("+{adjusted}")
        } else {
            adjusted.to_string()
        };
        format!("{sign}{a}{frac}E{e}")
    }
}

/// The fuzz target: frame, decode and render whatever `data` holds under
/// small and default limits. Panics only on a broken invariant.
pub fn fuzz_parse(data: &[u8]) {
    for limits in [
        Limits::default(),
        Limits {
            max_message: 512,
            max_depth: 4,
            max_elements: 32,
            max_sections: 3,
        },
    ] {
        let mut buf = data;
        while let Ok(Some(h)) = next_message(buf, limits.max_message) {
            assert!(h.length >= HEADER_LEN && h.length <= buf.len());
            let Some((msg, rest)) = buf.split_at_checked(h.length) else {
                break; // asserted above
            };
            if let Ok(m) = parse_message(&h, msg, &limits) {
                let doc = match m {
                    Message::Msg(m) => m.command(),
                    Message::Query(q) => q.command(),
                    Message::Other(_) => Document::new(),
                };
                let (s, _) = relaxed_ejson(&doc, 256);
                assert!(s.len() <= 256 + 4);
                // What we decoded re-encodes and decodes to the same thing.
                let bytes = doc.to_bytes();
                let again = parse_document(&bytes, &Limits::default());
                if let Ok((d, used)) = again {
                    assert_eq!(used, bytes.len());
                    assert_eq!(d.0.len(), doc.0.len());
                }
            }
            buf = rest;
        }
        let _ = parse_document(data, &limits).map(|(d, _)| relaxed_ejson(&d, 64));
    }
}

#[cfg(test)]
mod tests;
