//! SFTP version 3 (draft-ietf-secsh-filexfer-02, what OpenSSH's
//! `sftp-server` speaks) for the SSH honeypot's `sftp` subsystem: framing
//! of the channel byte stream into packets, requests parsed into
//! [`Request`], and the reply encoders. Sans-IO and bounded: a packet is
//! at most [`MAX_PACKET`] bytes (OpenSSH's own limit, 256 KiB), the framer
//! never buffers more than one packet, and every string and count is read
//! through the packet's remaining bytes, so nothing is allocated ahead of
//! received bytes.

/// Longest packet accepted (length field value), as OpenSSH's
/// `SFTP_MAX_MSG_LENGTH`.
pub const MAX_PACKET: usize = 256 * 1024;
/// Most extended attribute pairs read from one ATTRS (the rest is skipped
/// with the packet).
pub const MAX_EXTENDED_ATTRS: usize = 16;

/// Packet types.
pub mod fxp {
    #![allow(missing_docs)]
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// Status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StatusCode {
    /// SSH_FX_OK.
    Ok = 0,
    /// SSH_FX_EOF.
    Eof = 1,
    /// SSH_FX_NO_SUCH_FILE.
    NoSuchFile = 2,
    /// SSH_FX_PERMISSION_DENIED.
    PermissionDenied = 3,
    /// SSH_FX_FAILURE.
    Failure = 4,
    /// SSH_FX_BAD_MESSAGE.
    BadMessage = 5,
    /// SSH_FX_OP_UNSUPPORTED.
    OpUnsupported = 8,
}

impl StatusCode {
    /// The message OpenSSH's sftp-server sends with the code.
    pub fn message(self) -> &'static str {
        match self {
            StatusCode::Ok => "Success",
            StatusCode::Eof => "End of file",
            StatusCode::NoSuchFile => "No such file",
            StatusCode::PermissionDenied => "Permission denied",
            StatusCode::Failure => "Failure",
            StatusCode::BadMessage => "Bad message",
            StatusCode::OpUnsupported => "Operation unsupported",
        }
    }
}

/// Open flags (`pflags`).
pub mod pflags {
    #![allow(missing_docs)]
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// File attributes; absent fields are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Size in bytes.
    pub size: Option<u64>,
    /// Owner and group ids.
    pub uid_gid: Option<(u32, u32)>,
    /// Mode bits including the file type (0o100644, 0o40755).
    pub permissions: Option<u32>,
    /// Access and modification times (Unix seconds).
    pub atime_mtime: Option<(u32, u32)>,
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// SSH_FXP_INIT.
    Init {
        /// The client's protocol version.
        version: u32,
    },
    /// SSH_FXP_OPEN.
    Open {
        /// Request id.
        id: u32,
        /// Path as sent.
        path: Vec<u8>,
        /// Open flags.
        pflags: u32,
        /// Attributes for a created file.
        attrs: Attrs,
    },
    /// SSH_FXP_CLOSE.
    Close {
        /// Request id.
        id: u32,
        /// Handle.
        handle: Vec<u8>,
    },
    /// SSH_FXP_READ.
    Read {
        /// Request id.
        id: u32,
        /// Handle.
        handle: Vec<u8>,
        /// Offset.
        offset: u64,
        /// Bytes wanted.
        len: u32,
    },
    /// SSH_FXP_WRITE.
    Write {
        /// Request id.
        id: u32,
        /// Handle.
        handle: Vec<u8>,
        /// Offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// SSH_FXP_STAT, LSTAT, OPENDIR, REMOVE, RMDIR, REALPATH, READLINK:
    /// an operation on one path.
    Path {
        /// Packet type.
        op: u8,
        /// Request id.
        id: u32,
        /// Path as sent.
        path: Vec<u8>,
    },
    /// SSH_FXP_FSTAT, READDIR: an operation on a handle.
    Handle {
        /// Packet type.
        op: u8,
        /// Request id.
        id: u32,
        /// Handle.
        handle: Vec<u8>,
    },
    /// SSH_FXP_SETSTAT, MKDIR (path) and FSETSTAT (handle in `path`).
    SetAttrs {
        /// Packet type.
        op: u8,
        /// Request id.
        id: u32,
        /// Path or handle.
        path: Vec<u8>,
        /// Attributes.
        attrs: Attrs,
    },
    /// SSH_FXP_RENAME and SYMLINK: two paths.
    TwoPaths {
        /// Packet type.
        op: u8,
        /// Request id.
        id: u32,
        /// First path (old path; link path).
        first: Vec<u8>,
        /// Second path (new path; target).
        second: Vec<u8>,
    },
    /// SSH_FXP_EXTENDED.
    Extended {
        /// Request id.
        id: u32,
        /// Extension name.
        name: Vec<u8>,
        /// The rest of the packet.
        data: Vec<u8>,
    },
    /// A type this server does not know (answered with OP_UNSUPPORTED).
    Unknown {
        /// Packet type.
        op: u8,
        /// Request id, if the packet had one.
        id: Option<u32>,
    },
}

impl Request {
    /// The request id (INIT has none).
    pub fn id(&self) -> Option<u32> {
        match self {
            Request::Init { .. } => None,
            Request::Open { id, .. }
            | Request::Close { id, .. }
            | Request::Read { id, .. }
            | Request::Write { id, .. }
            | Request::Path { id, .. }
            | Request::Handle { id, .. }
            | Request::SetAttrs { id, .. }
            | Request::TwoPaths { id, .. }
            | Request::Extended { id, .. } => Some(*id),
            Request::Unknown { id, .. } => *id,
        }
    }
}

/// Why a packet could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SftpError {
    /// The length field is over [`MAX_PACKET`] (the stream cannot be
    /// resynchronised: the channel ends).
    #[error("sftp packet of {0} bytes is over the limit")]
    TooLong(usize),
    /// The length field is zero.
    #[error("empty sftp packet")]
    Empty,
    /// A field runs past the packet's end, or bytes are left over.
    #[error("malformed sftp packet of type {0}")]
    Malformed(u8),
}

/// Splits the channel's byte stream into packets.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    broken: bool,
}

impl Framer {
    /// Add received bytes. Call [`Framer::next_packet`] until it returns
    /// `None` before the next push: only what completes the current packet
    /// and one length field is kept beyond it.
    pub fn push(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered (at most one packet and the start of the next).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole packet (type byte and body), if buffered.
    pub fn next_packet(&mut self) -> Option<Result<Vec<u8>, SftpError>> {
        if self.broken {
            return None;
        }
        let (&head, _) = self.buf.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(head) as usize;
        if len > MAX_PACKET {
            self.broken = true;
            self.buf = Vec::new();
            return Some(Err(SftpError::TooLong(len)));
        }
        if len == 0 {
            self.broken = true;
            self.buf = Vec::new();
            return Some(Err(SftpError::Empty));
        }
        // A packet ending past `usize::MAX` could never be buffered whole
        // (and `len` is at most MAX_PACKET here).
        let end = len.checked_add(4)?;
        let packet = self.buf.get(4..end)?.to_vec();
        self.buf.drain(..end);
        Some(Ok(packet))
    }
}

/// A bounded reader over one packet's bytes.
struct Reader<'a> {
    data: &'a [u8],
    op: u8,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SftpError> {
        let (a, b) = self
            .data
            .split_at_checked(n)
            .ok_or(SftpError::Malformed(self.op))?;
        self.data = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, SftpError> {
        let (&b, rest) = self
            .data
            .split_first_chunk::<4>()
            .ok_or(SftpError::Malformed(self.op))?;
        self.data = rest;
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, SftpError> {
        let hi = u64::from(self.u32()?);
        let lo = u64::from(self.u32()?);
        Ok(hi << 32 | lo)
    }
    fn string(&mut self) -> Result<Vec<u8>, SftpError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn attrs(&mut self) -> Result<Attrs, SftpError> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.atime_mtime = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            let count = self.u32()? as usize;
            // Each pair is at least 8 bytes: a count past what is left is
            // malformed, and only the first few are even looked at.
            if count.saturating_mul(8) > self.data.len() {
                return Err(SftpError::Malformed(self.op));
            }
            for _ in 0..count.min(MAX_EXTENDED_ATTRS) {
                self.string()?;
                self.string()?;
            }
        }
        Ok(a)
    }
    fn end(&self) -> Result<(), SftpError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(SftpError::Malformed(self.op))
        }
    }
}

/// Parse one packet (type byte and body) from [`Framer::next_packet`].
pub fn parse(packet: &[u8]) -> Result<Request, SftpError> {
    let Some((&op, body)) = packet.split_first() else {
        return Err(SftpError::Empty);
    };
    let mut r = Reader { data: body, op };
    let req = match op {
        fxp::INIT => {
            let version = r.u32()?;
            // Extension pairs may follow; v3 clients send none.
            return Ok(Request::Init { version });
        }
        fxp::OPEN => Request::Open {
            id: r.u32()?,
            path: r.string()?,
            pflags: r.u32()?,
            attrs: r.attrs()?,
        },
        fxp::CLOSE => Request::Close {
            id: r.u32()?,
            handle: r.string()?,
        },
        fxp::READ => Request::Read {
            id: r.u32()?,
            handle: r.string()?,
            offset: r.u64()?,
            len: r.u32()?,
        },
        fxp::WRITE => Request::Write {
            id: r.u32()?,
            handle: r.string()?,
            offset: r.u64()?,
            data: r.string()?,
        },
        fxp::STAT
        | fxp::LSTAT
        | fxp::OPENDIR
        | fxp::REMOVE
        | fxp::RMDIR
        | fxp::REALPATH
        | fxp::READLINK => Request::Path {
            op,
            id: r.u32()?,
            path: r.string()?,
        },
        fxp::FSTAT | fxp::READDIR => Request::Handle {
            op,
            id: r.u32()?,
            handle: r.string()?,
        },
        fxp::SETSTAT | fxp::FSETSTAT | fxp::MKDIR => Request::SetAttrs {
            op,
            id: r.u32()?,
            path: r.string()?,
            attrs: r.attrs()?,
        },
        fxp::RENAME | fxp::SYMLINK => Request::TwoPaths {
            op,
            id: r.u32()?,
            first: r.string()?,
            second: r.string()?,
        },
        fxp::EXTENDED => {
            let id = r.u32()?;
            let name = r.string()?;
            return Ok(Request::Extended {
                id,
                name,
                data: r.data.to_vec(),
            });
        }
        _ => {
            let id = r.u32().ok();
            return Ok(Request::Unknown { op, id });
        }
    };
    r.end()?;
    Ok(req)
}

/// Builds one reply packet.
struct Out(Vec<u8>);

impl Out {
    fn new(op: u8) -> Out {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0, 0, 0, 0, op]);
        Out(v)
    }
    fn u32(mut self, n: u32) -> Out {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn u64(mut self, n: u64) -> Out {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn string(mut self, s: &[u8]) -> Out {
        self.0.extend_from_slice(&low32(s.len()).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    fn attrs(mut self, a: &Attrs) -> Out {
        let mut flags = 0;
        if a.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if a.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if a.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if a.atime_mtime.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self = self.u32(flags);
        if let Some(s) = a.size {
            self = self.u64(s);
        }
        if let Some((u, g)) = a.uid_gid {
            self = self.u32(u).u32(g);
        }
        if let Some(p) = a.permissions {
            self = self.u32(p);
        }
        if let Some((at, mt)) = a.atime_mtime {
            self = self.u32(at).u32(mt);
        }
        self
    }
    fn done(mut self) -> Vec<u8> {
        // `Out::new` wrote the length field this fills in, so the split
        // always succeeds.
        if let Some((len, body)) = self.0.split_first_chunk_mut::<4>() {
            *len = low32(body.len()).to_be_bytes();
        }
        self.0
    }
}

/// The low 32 bits of a length or count, as the wire's uint32 carries it
/// (what an `as u32` cast kept; replies stay far below 4 GiB).
fn low32(n: usize) -> u32 {
    let [.., a, b, c, d] = n.to_be_bytes();
    u32::from_be_bytes([a, b, c, d])
}

/// SSH_FXP_VERSION 3 with `(name, data)` extensions.
pub fn version(extensions: &[(&str, &str)]) -> Vec<u8> {
    let mut o = Out::new(fxp::VERSION).u32(3);
    for (n, d) in extensions {
        o = o.string(n.as_bytes()).string(d.as_bytes());
    }
    o.done()
}

/// SSH_FXP_STATUS with the code's usual message.
pub fn status(id: u32, code: StatusCode) -> Vec<u8> {
    Out::new(fxp::STATUS)
        .u32(id)
        .u32(code as u32)
        .string(code.message().as_bytes())
        .string(b"")
        .done()
}

/// SSH_FXP_HANDLE.
pub fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    Out::new(fxp::HANDLE).u32(id).string(h).done()
}

/// SSH_FXP_DATA.
pub fn data(id: u32, d: &[u8]) -> Vec<u8> {
    Out::new(fxp::DATA).u32(id).string(d).done()
}

/// SSH_FXP_ATTRS.
pub fn attrs(id: u32, a: &Attrs) -> Vec<u8> {
    Out::new(fxp::ATTRS).u32(id).attrs(a).done()
}

/// One SSH_FXP_NAME entry: file name, `ls -l` style long name, attributes.
pub type NameEntry = (Vec<u8>, Vec<u8>, Attrs);

/// SSH_FXP_NAME.
pub fn name(id: u32, entries: &[NameEntry]) -> Vec<u8> {
    let mut o = Out::new(fxp::NAME).u32(id).u32(low32(entries.len()));
    for (n, l, a) in entries {
        o = o.string(n).string(l).attrs(a);
    }
    o.done()
}

/// SSH_FXP_EXTENDED_REPLY with raw data.
pub fn extended_reply(id: u32, body: &[u8]) -> Vec<u8> {
    let mut o = Out::new(fxp::EXTENDED_REPLY).u32(id);
    o.0.extend_from_slice(body);
    o.done()
}

/// Encode an SFTP uint64 (for extended replies).
pub fn be64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Fuzz entry: frame the input in two chunks and parse every packet; the
/// framer never holds more than one packet plus a length field.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_parse(input: &[u8]) {
    let mut f = Framer::default();
    let (a, b) = input.split_at(input.len() / 2);
    for part in [a, b] {
        f.push(part);
        while let Some(p) = f.next_packet() {
            match p {
                Ok(pkt) => {
                    assert!(pkt.len() <= MAX_PACKET);
                    if let Ok(req) = parse(&pkt) {
                        // Encoders take anything a request carries.
                        if let Request::Open { path, attrs, .. } = &req {
                            let _ = name(0, &[(path.clone(), path.clone(), attrs.clone())]);
                        }
                        let _ = req.id();
                    }
                }
                Err(_) => break,
            }
        }
        assert!(f.buffered() <= input.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(op: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(op);
        v.extend_from_slice(body);
        v
    }

    fn s(x: &[u8]) -> Vec<u8> {
        let mut v = (x.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(x);
        v
    }

    /// Replays the committed fuzz corpus.
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("sftp", fuzz_parse);
    }

    #[test]
    fn frames_split_packets_and_parses_requests() {
        let mut body = 7u32.to_be_bytes().to_vec();
        body.extend(s(b"/tmp/x"));
        body.extend((pflags::WRITE | pflags::CREAT).to_be_bytes());
        body.extend((ATTR_PERMISSIONS).to_be_bytes());
        body.extend(0o644u32.to_be_bytes());
        let mut stream = packet(fxp::INIT, &3u32.to_be_bytes());
        stream.extend(packet(fxp::OPEN, &body));
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in stream.chunks(3) {
            f.push(b);
            while let Some(p) = f.next_packet() {
                got.push(parse(&p.unwrap()).unwrap());
            }
        }
        assert_eq!(got[0], Request::Init { version: 3 });
        assert_eq!(
            got[1],
            Request::Open {
                id: 7,
                path: b"/tmp/x".to_vec(),
                pflags: pflags::WRITE | pflags::CREAT,
                attrs: Attrs {
                    permissions: Some(0o644),
                    ..Attrs::default()
                }
            }
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn rejects_oversized_and_malformed() {
        let mut f = Framer::default();
        f.push(&((MAX_PACKET + 1) as u32).to_be_bytes());
        assert_eq!(
            f.next_packet(),
            Some(Err(SftpError::TooLong(MAX_PACKET + 1)))
        );
        f.push(&[0; 100]);
        assert_eq!(f.next_packet(), None);
        assert_eq!(f.buffered(), 0);
        // A string length past the end.
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend(1000u32.to_be_bytes());
        assert_eq!(
            parse(&[&[fxp::STAT][..], &body].concat()),
            Err(SftpError::Malformed(fxp::STAT))
        );
        // An extended attribute count no packet could hold.
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend(s(b"/d"));
        body.extend(ATTR_EXTENDED.to_be_bytes());
        body.extend(u32::MAX.to_be_bytes());
        assert_eq!(
            parse(&[&[fxp::MKDIR][..], &body].concat()),
            Err(SftpError::Malformed(fxp::MKDIR))
        );
        assert!(matches!(
            parse(&[99, 0, 0, 0, 5]),
            Ok(Request::Unknown {
                op: 99,
                id: Some(5)
            })
        ));
    }

    #[test]
    fn encodes_replies() {
        assert_eq!(
            status(9, StatusCode::Eof),
            [
                &[0, 0, 0, 28, fxp::STATUS][..],
                &9u32.to_be_bytes(),
                &1u32.to_be_bytes(),
                &s(b"End of file"),
                &s(b"")
            ]
            .concat()
        );
        let n = name(
            1,
            &[(
                b"a".to_vec(),
                b"-rw".to_vec(),
                Attrs {
                    size: Some(5),
                    ..Attrs::default()
                },
            )],
        );
        assert_eq!(&n[4..6], &[fxp::NAME, 0]);
        assert_eq!(
            u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize,
            n.len() - 4
        );
    }
}
