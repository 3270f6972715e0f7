//! rsync daemon protocol (versions 30 and 31): the pieces a honeypot needs
//! to talk to a real `rsync` client, sans-IO and bounded.
//!
//! - The line-based daemon handshake (`clientserver.c`): the `@RSYNCD:`
//!   greeting with its digest list, module lines, and the client's
//!   arguments (NUL-terminated from protocol 30, newline before).
//! - The integers of `io.c`: little-endian `int`/`shortint`, and the
//!   variable-length `varint` / `varlong` whose first byte says how many
//!   bytes follow; file-list indexes (`ndx`) sent as differences.
//! - Multiplexed I/O frames: a 4-byte header (tag + 24-bit length).
//! - File-list entries (`flist.c`), with the compression of fields equal to
//!   the previous entry's, in the byte-flag and the varint-flag forms.
//! - Checksum headers (`sum_struct`) and the filter list.
//!
//! Every decoder takes a slice and returns [`Error::Incomplete`] when more
//! bytes are needed, so the caller can read more and retry; state changes
//! only on success. Lengths and counts are capped before anything is
//! allocated, and attacker integers go through checked arithmetic.

use thiserror::Error;

/// Longest daemon-handshake line (greeting, module name, auth response).
pub const MAX_LINE: usize = 4096;
/// Most arguments a client may send after `@RSYNCD: OK`.
pub const MAX_ARGS: usize = 256;
/// Longest single argument.
pub const MAX_ARG_LEN: usize = 4096;
/// Largest multiplexed frame accepted (real peers send at most ~32 KiB).
pub const MAX_FRAME: usize = 256 * 1024;
/// Longest file name in a file list (Linux PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// Longest symlink target in a file list.
pub const MAX_LINK: usize = 4096;
/// Largest literal data token (real senders use 32 KiB chunks).
pub const MAX_TOKEN: usize = 256 * 1024;
/// Most block checksums announced in a sum header.
pub const MAX_SUM_COUNT: i32 = 1 << 20;
/// Largest block length (rsync's `MAX_BLOCK_SIZE`).
pub const MAX_BLOCK_SIZE: i32 = 1 << 17;
/// Longest filter rule.
pub const MAX_FILTER_LEN: usize = 4096;
/// Longest negotiation string (rsync's `MAX_NSTR_STRLEN`).
pub const MAX_NSTR: usize = 256;

/// Multiplex tags (`MSG_*`); frames carry `tag + MPLEX_BASE`.
pub mod msg {
    /// File data.
    pub const DATA: u8 = 0;
    /// A fatal error message.
    pub const ERROR_XFER: u8 = 1;
    /// An informational message.
    pub const INFO: u8 = 2;
    /// An error message.
    pub const ERROR: u8 = 3;
    /// A warning.
    pub const WARNING: u8 = 4;
    /// The I/O error flag.
    pub const IO_ERROR: u8 = 22;
    /// Keep-alive.
    pub const NOOP: u8 = 42;
}
/// Added to a message tag in a frame header.
pub const MPLEX_BASE: u8 = 7;

/// `ndx` value: end of a phase.
pub const NDX_DONE: i32 = -1;

/// File-list transmit flags (`XMIT_*`).
pub mod xmit {
    /// A top-level directory (or filler bit on non-dirs).
    pub const TOP_DIR: u32 = 1 << 0;
    /// Same mode as the previous entry.
    pub const SAME_MODE: u32 = 1 << 1;
    /// Flags take two bytes (byte-flag form).
    pub const EXTENDED_FLAGS: u32 = 1 << 2;
    /// Same uid.
    pub const SAME_UID: u32 = 1 << 3;
    /// Same gid.
    pub const SAME_GID: u32 = 1 << 4;
    /// Name shares a prefix with the previous one.
    pub const SAME_NAME: u32 = 1 << 5;
    /// Name suffix length is a varint.
    pub const LONG_NAME: u32 = 1 << 6;
    /// Same mtime.
    pub const SAME_TIME: u32 = 1 << 7;
    /// Same device major (devices) / directory without content (dirs).
    pub const SAME_RDEV_MAJOR: u32 = 1 << 8;
    /// A directory sent without its content.
    pub const NO_CONTENT_DIR: u32 = 1 << 8;
    /// Hard-linked.
    pub const HLINKED: u32 = 1 << 9;
    /// A user name follows the uid.
    pub const USER_NAME_FOLLOWS: u32 = 1 << 10;
    /// A group name follows the gid.
    pub const GROUP_NAME_FOLLOWS: u32 = 1 << 11;
    /// First of a hard-link group.
    pub const HLINK_FIRST: u32 = 1 << 12;
    /// End of list with an I/O error (with `EXTENDED_FLAGS`).
    pub const IO_ERROR_ENDLIST: u32 = 1 << 12;
    /// Nanoseconds of the mtime follow.
    pub const MOD_NSEC: u32 = 1 << 13;
}

/// Compatibility flags the server sends (`CF_*`).
pub mod cf {
    /// Incremental recursion.
    pub const INC_RECURSE: u32 = 1 << 0;
    /// Symlink times can be set.
    pub const SYMLINK_TIMES: u32 = 1 << 1;
    /// Symlink targets are iconv'ed.
    pub const SYMLINK_ICONV: u32 = 1 << 2;
    /// Safe file-list end.
    pub const SAFE_FLIST: u32 = 1 << 3;
    /// Avoid the xattr optimisation.
    pub const AVOID_XATTR_OPTIM: u32 = 1 << 4;
    /// Checksum seed order fix.
    pub const CHKSUM_SEED_FIX: u32 = 1 << 5;
    /// Inplace partial-dir.
    pub const INPLACE_PARTIAL_DIR: u32 = 1 << 6;
    /// File-list flags as varints, and negotiated checksum/compression names.
    pub const VARINT_FLIST_FLAGS: u32 = 1 << 7;
    /// Names of id 0 are sent.
    pub const ID0_NAMES: u32 = 1 << 8;
}

/// Item flags (`ITEM_*`) sent with an index.
pub mod item {
    /// Basis type byte follows.
    pub const BASIS_TYPE_FOLLOWS: u16 = 1 << 11;
    /// A name (vstring) follows.
    pub const XNAME_FOLLOWS: u16 = 1 << 12;
    /// The file is new.
    pub const IS_NEW: u16 = 1 << 13;
    /// Local change.
    pub const LOCAL_CHANGE: u16 = 1 << 14;
    /// Data is transferred.
    pub const TRANSFER: u16 = 1 << 15;
}

/// File type bits of a mode.
pub mod mode {
    /// Type mask.
    pub const IFMT: u32 = 0o170000;
    /// Regular file.
    pub const IFREG: u32 = 0o100000;
    /// Directory.
    pub const IFDIR: u32 = 0o040000;
    /// Symlink.
    pub const IFLNK: u32 = 0o120000;
    /// Character device.
    pub const IFCHR: u32 = 0o020000;
    /// Block device.
    pub const IFBLK: u32 = 0o060000;
    /// FIFO.
    pub const IFIFO: u32 = 0o010000;
    /// Socket.
    pub const IFSOCK: u32 = 0o140000;
}

/// Why input could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// More bytes are needed.
    #[error("incomplete")]
    Incomplete,
    /// A length or count is over its cap.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// The bytes break the protocol.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

type Result<T> = std::result::Result<T, Error>;

/// A bounded reader over a slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Read `buf` from the start.
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    /// Bytes consumed so far.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.get(self.pos..).map_or(0, <[u8]>::len)
    }
    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Incomplete)?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Incomplete)?;
        self.pos = end;
        Ok(s)
    }
    /// The next `N` bytes, as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        // `bytes` gives exactly N bytes or an error, so the conversion
        // cannot fail.
        self.bytes(N)?.try_into().map_err(|_| Error::Incomplete)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        let [b] = self.array()?;
        Ok(b)
    }
    /// A little-endian 16-bit `shortint`.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A little-endian 32-bit `int`.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    /// A `varint` (`read_varint`).
    pub fn varint(&mut self) -> Result<i32> {
        let ch = self.u8()?;
        let (extra, mask) = extra_bytes(ch);
        if extra == 0 {
            return Ok(i32::from(ch));
        }
        if extra > 4 {
            return Err(Error::Invalid("varint"));
        }
        // At most 4 bytes and the first byte's value bits: 5 bytes, the
        // last of which must be clear.
        let b: [u8; 5] = le_value(self.bytes(extra)?.iter().chain([&(ch & mask)]));
        let [v @ .., 0] = b else {
            return Err(Error::Invalid("varint"));
        };
        Ok(i32::from_le_bytes(v))
    }
    /// A `varlong` with `min_bytes` fixed bytes (`read_varlong`).
    pub fn varlong(&mut self, min_bytes: usize) -> Result<i64> {
        debug_assert!((1..=8).contains(&min_bytes));
        let head = self.bytes(min_bytes)?;
        let Some((&ch, fixed)) = head.split_first() else {
            // min_bytes 0: there is no first byte to say the length.
            return Err(Error::Invalid("varlong"));
        };
        let (extra, mask) = extra_bytes(ch);
        if min_bytes.checked_add(extra).is_none_or(|n| n > 9) {
            return Err(Error::Invalid("varlong"));
        }
        // The fixed bytes, the extra ones and the first byte's value bits
        // fill at most 9 bytes (just checked), the last of which must be
        // clear.
        let tail = self.bytes(extra)?;
        let b: [u8; 9] = le_value(fixed.iter().chain(tail).chain([&(ch & mask)]));
        let [v @ .., 0] = b else {
            return Err(Error::Invalid("varlong"));
        };
        Ok(i64::from_le_bytes(v))
    }
    /// A `vstring`: one length byte (two when the high bit is set), then bytes.
    pub fn vstring(&mut self, max: usize) -> Result<&'a [u8]> {
        let mut len = usize::from(self.u8()?);
        if len & 0x80 != 0 {
            len = ((len & 0x7f) << 8) | usize::from(self.u8()?);
        }
        if len > max {
            return Err(Error::TooLong("vstring"));
        }
        self.bytes(len)
    }
}

/// Extra bytes after a varint's first byte (`int_byte_extra`), and the
/// mask of the first byte's bits that are the value's top bits
/// (`(1 << (8 - extra)) - 1`; the whole byte when nothing follows).
fn extra_bytes(ch: u8) -> (usize, u8) {
    match ch {
        0x00..=0x7f => (0, 0xff),
        0x80..=0xbf => (1, 0x7f),
        0xc0..=0xdf => (2, 0x3f),
        0xe0..=0xef => (3, 0x1f),
        0xf0..=0xf7 => (4, 0x0f),
        0xf8..=0xfb => (5, 0x07),
        _ => (6, 0x03),
    }
}

/// A little-endian value from its bytes, low first; bytes past the end of
/// `bytes` stay zero, and callers check that `bytes` fits.
fn le_value<'b, const N: usize>(bytes: impl IntoIterator<Item = &'b u8>) -> [u8; N] {
    let mut b = [0u8; N];
    for (slot, &v) in b.iter_mut().zip(bytes) {
        *slot = v;
    }
    b
}

/// Append a `varint`.
pub fn put_varint(out: &mut Vec<u8>, x: i32) {
    put_varlong(out, i64::from(x as u32), 1);
}

/// Append a `varlong` with `min_bytes` fixed bytes (`write_varlong`).
pub fn put_varlong(out: &mut Vec<u8>, x: i64, min_bytes: usize) {
    let le = x.to_le_bytes();
    // rsync's `cnt`: the low bytes of `x` up to its highest non-zero one,
    // but at least `min_bytes` (all 8 for a larger `min_bytes`).
    let mut sent: &[u8] = &le;
    while sent.len() > min_bytes
        && let [rest @ .., 0] = sent
    {
        sent = rest;
    }
    let Some((&top, low)) = sent.split_last() else {
        // min_bytes 0 and x 0: rsync writes nothing.
        return;
    };
    // The lead byte has a one bit per byte past `min_bytes`, a zero bit,
    // and `free` bits (0x7f >> that count) that carry `top` when it fits;
    // when it does not, `top` is sent as a byte of its own, behind one
    // more one bit. Past the table (only for a `min_bytes` of 0 or over 8,
    // which rsync never uses), the lead byte is `top` itself, as before.
    const FREE: [u8; 8] = [0x7f, 0x3f, 0x1f, 0x0f, 0x07, 0x03, 0x01, 0x00];
    let free = sent
        .len()
        .checked_sub(min_bytes)
        .and_then(|past_min| FREE.get(past_min));
    let (lead, body) = match free {
        Some(&free) if top > free => (!free, sent),
        Some(&free) => (top | !((free << 1) | 1), low),
        None => (top, low),
    };
    out.push(lead);
    out.extend_from_slice(body);
}

/// Append a little-endian `int`.
pub fn put_i32(out: &mut Vec<u8>, x: i32) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// Append a `vstring`.
pub fn put_vstring(out: &mut Vec<u8>, s: &[u8]) {
    let s = s.get(..0x7fff).unwrap_or(s);
    // At most 0x7fff: the two low bytes are the whole length.
    let [.., hi, lo] = s.len().to_be_bytes();
    if s.len() > 0x7f {
        out.push(0x80 | hi);
    }
    out.push(lo);
    out.extend_from_slice(s);
}

/// One handshake line (without `\n` and a trailing `\r`) and the bytes it
/// took, or `None` until a newline arrives.
pub fn take_line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>> {
    let piece = buf
        .split_inclusive(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    match piece.strip_suffix(b"\n") {
        Some(line) if line.len() > max => Err(Error::TooLong("line")),
        Some(line) => Ok(Some((
            line.strip_suffix(b"\r").unwrap_or(line),
            piece.len(),
        ))),
        None if buf.len() > max => Err(Error::TooLong("line")),
        None => Ok(None),
    }
}

/// A parsed `@RSYNCD: 31.0 sha512 …` greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Protocol version.
    pub protocol: u32,
    /// Sub-protocol (0 for releases).
    pub sub: u32,
    /// The daemon-auth digest names offered (protocol 30+), as sent.
    pub digests: Vec<String>,
}

/// Parse a greeting line (as `sscanf("@RSYNCD: %d.%d")` would accept it).
pub fn parse_greeting(line: &[u8]) -> Result<Greeting> {
    let rest = line
        .strip_prefix(b"@RSYNCD: ")
        .ok_or(Error::Invalid("greeting"))?;
    let text = std::str::from_utf8(rest).map_err(|_| Error::Invalid("greeting"))?;
    let mut words = text.split(' ');
    let version = words.next().unwrap_or("");
    let (major, minor) = match version.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (version, None),
    };
    let protocol: u32 = major.parse().map_err(|_| Error::Invalid("greeting"))?;
    if !(1..=1000).contains(&protocol) {
        return Err(Error::Invalid("greeting version"));
    }
    let sub = match minor {
        Some(m) => m.parse().map_err(|_| Error::Invalid("greeting"))?,
        None if protocol >= 30 => return Err(Error::Invalid("greeting: no subprotocol")),
        None => 0,
    };
    let digests = words
        .filter(|w| !w.is_empty())
        .take(32)
        .map(|w| w.chars().take(32).collect())
        .collect();
    Ok(Greeting {
        protocol,
        sub,
        digests,
    })
}

/// The client's arguments after `@RSYNCD: OK`: each ends with NUL
/// (`nul`, protocol 30+) or newline, and an empty one ends the list.
/// Returns the arguments and the bytes they took, or `None` until complete.
pub fn take_args(buf: &[u8], nul: bool) -> Result<Option<(Vec<Vec<u8>>, usize)>> {
    let sep = if nul { 0 } else { b'\n' };
    let mut args = Vec::new();
    let mut pos = 0usize;
    for piece in buf.split_inclusive(|&b| b == sep) {
        let Some(a) = piece.strip_suffix(&[sep]) else {
            if piece.len() > MAX_ARG_LEN {
                return Err(Error::TooLong("argument"));
            }
            return Ok(None);
        };
        if a.len() > MAX_ARG_LEN {
            return Err(Error::TooLong("argument"));
        }
        // Cannot overflow: at most MAX_ARGS + 1 pieces of at most
        // MAX_ARG_LEN + 1 bytes.
        pos = pos
            .checked_add(piece.len())
            .ok_or(Error::TooLong("argument list"))?;
        if a.is_empty() {
            return Ok(Some((args, pos)));
        }
        if args.len() == MAX_ARGS {
            return Err(Error::TooLong("argument list"));
        }
        args.push(a.strip_suffix(b"\r").unwrap_or(a).to_vec());
    }
    Ok(None)
}

/// A multiplexed frame header: message tag and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// `MSG_*` tag (header tag minus [`MPLEX_BASE`]).
    pub tag: u8,
    /// Payload bytes after the 4-byte header.
    pub len: usize,
}

/// The frame at the start of `buf` once its whole payload is buffered.
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<Frame>> {
    let Some((&head, payload)) = buf.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let v = u32::from_le_bytes(head);
    let raw_tag = (v >> 24) as u8;
    let len = (v & 0x00ff_ffff) as usize;
    let Some(tag) = raw_tag.checked_sub(MPLEX_BASE) else {
        return Err(Error::Invalid("multiplex tag"));
    };
    if len > max {
        return Err(Error::TooLong("multiplex frame"));
    }
    if payload.len() < len {
        return Ok(None);
    }
    Ok(Some(Frame { tag, len }))
}

/// Append `data` as frames of `tag`, at most 32 KiB each.
pub fn put_frames(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    // The header's top byte is the tag plus MPLEX_BASE, kept to a byte as
    // rsync's C does (only tags below 249 exist).
    let tag = tag.wrapping_add(MPLEX_BASE);
    for chunk in data.chunks(32 * 1024) {
        // Under 2^24 bytes: the three low bytes are the whole length.
        let [l0, l1, l2, ..] = chunk.len().to_le_bytes();
        out.extend_from_slice(&[l0, l1, l2, tag]);
        out.extend_from_slice(chunk);
    }
}

/// File-list indexes as sent from protocol 30: differences from the
/// previous positive (or negative) index (`write_ndx` / `read_ndx`). One
/// per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdxCodec {
    prev_pos: i32,
    prev_neg: i32,
}

impl Default for NdxCodec {
    fn default() -> Self {
        NdxCodec {
            prev_pos: -1,
            prev_neg: 1,
        }
    }
}

impl NdxCodec {
    /// Decode one index; the codec changes only on success.
    pub fn read(&mut self, c: &mut Cursor<'_>) -> Result<i32> {
        let mut b = c.u8()?;
        let negative = b == 0xff;
        if negative {
            b = c.u8()?;
        } else if b == 0 {
            return Ok(NDX_DONE);
        }
        let prev = if negative {
            self.prev_neg
        } else {
            self.prev_pos
        };
        // A difference that takes the index past i32::MAX is invalid.
        let num = if b == 0xfe {
            let [x0, x1] = c.array()?;
            if x0 & 0x80 != 0 {
                let [y0, y1] = c.array()?;
                Some(i32::from_le_bytes([x1, y0, y1, x0 & 0x7f]))
            } else {
                prev.checked_add(i32::from(u16::from_be_bytes([x0, x1])))
            }
        } else {
            prev.checked_add(i32::from(b))
        };
        let num = num.ok_or(Error::Invalid("file index"))?;
        if negative {
            // Never i32::MIN: negative indexes are sent as non-negative
            // numbers from prev_neg (1 at first) upwards.
            let ndx = num.checked_neg().ok_or(Error::Invalid("file index"))?;
            self.prev_neg = num;
            Ok(ndx)
        } else {
            self.prev_pos = num;
            Ok(num)
        }
    }

    /// Encode one index.
    pub fn write(&mut self, out: &mut Vec<u8>, ndx: i32) {
        let (diff, num) = if ndx >= 0 {
            let d = ndx.wrapping_sub(self.prev_pos);
            self.prev_pos = ndx;
            (d, ndx)
        } else if ndx == NDX_DONE {
            out.push(0);
            return;
        } else {
            out.push(0xff);
            let n = ndx.wrapping_neg();
            let d = n.wrapping_sub(self.prev_neg);
            self.prev_neg = n;
            (d, n)
        };
        if let Ok(d @ 1..=0xfd) = u8::try_from(diff) {
            out.push(d);
        } else if let Ok(d @ 0..=0x7fff) = u16::try_from(diff) {
            out.push(0xfe);
            out.extend_from_slice(&d.to_be_bytes());
        } else {
            let [n0, n1, n2, n3] = num.to_le_bytes();
            out.extend_from_slice(&[0xfe, n3 | 0x80, n0, n1, n2]);
        }
    }
}

/// What the transfer options say a file-list entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlistOpts {
    /// Flags are varints (`CF_VARINT_FLIST_FLAGS`).
    pub varint_flags: bool,
    /// `-o`: uids are sent.
    pub uid: bool,
    /// `-g`: gids are sent.
    pub gid: bool,
    /// `-l`: symlink targets are sent.
    pub links: bool,
    /// `--devices`: device numbers are sent.
    pub devices: bool,
    /// `--specials`.
    pub specials: bool,
    /// `-H`: hard-link indexes are sent.
    pub hard_links: bool,
    /// `-c`: bytes of whole-file checksum per regular file (0 = none).
    pub checksum_len: usize,
    /// Negotiated protocol (30 or 31).
    pub protocol: u32,
}

/// One file-list entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileEntry {
    /// Path relative to the transfer root, as sent.
    pub name: Vec<u8>,
    /// Size in bytes.
    pub len: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Mode with type bits.
    pub mode: u32,
    /// Owner (when `-o`).
    pub uid: u32,
    /// Group (when `-g`).
    pub gid: u32,
    /// Owner name, when sent.
    pub user: Option<Vec<u8>>,
    /// Group name, when sent.
    pub group: Option<Vec<u8>>,
    /// Symlink target.
    pub link: Option<Vec<u8>>,
    /// The transmit flags.
    pub flags: u32,
}

impl FileEntry {
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.mode & mode::IFMT == mode::IFREG
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & mode::IFMT == mode::IFDIR
    }
}

/// One item of a file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlistItem {
    /// An entry.
    Entry(FileEntry),
    /// The end of the list, with the sender's I/O error flags.
    End {
        /// `io_error` bits (0 = none).
        io_error: i32,
    },
}

/// Decodes a file list entry by entry (`recv_file_entry`).
#[derive(Debug, Clone, Default)]
pub struct FlistDecoder {
    opts: FlistOpts,
    last_name: Vec<u8>,
    mode: u32,
    mtime: i64,
    uid: u32,
    gid: u32,
    rdev_major: i32,
    /// (len, mtime, mode) of earlier entries, for abbreviated hard links.
    seen: Vec<(u64, i64, u32)>,
}

impl FlistDecoder {
    /// A decoder for a list sent with `opts`.
    pub fn new(opts: FlistOpts) -> Self {
        FlistDecoder {
            opts,
            ..Default::default()
        }
    }

    /// Entries decoded so far.
    pub fn count(&self) -> usize {
        self.seen.len()
    }

    /// The next item and the bytes it took, or `Ok(None)` until the whole
    /// item is buffered (the decoder is unchanged then).
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<(FlistItem, usize)>> {
        let mut trial = self.clone();
        let mut c = Cursor::new(buf);
        match trial.decode(&mut c) {
            Ok(item) => {
                let used = c.pos();
                *self = trial;
                Ok(Some((item, used)))
            }
            Err(Error::Incomplete) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn decode(&mut self, c: &mut Cursor<'_>) -> Result<FlistItem> {
        let o = self.opts;
        let flags = if o.varint_flags {
            let f = c.varint()?;
            if f == 0 {
                let io_error = c.varint()?;
                return Ok(FlistItem::End { io_error });
            }
            f as u32
        } else {
            let mut f = u32::from(c.u8()?);
            if f == 0 {
                return Ok(FlistItem::End { io_error: 0 });
            }
            if f & xmit::EXTENDED_FLAGS != 0 {
                f |= u32::from(c.u8()?) << 8;
            }
            if f == xmit::EXTENDED_FLAGS | xmit::IO_ERROR_ENDLIST {
                let io_error = c.varint()?;
                return Ok(FlistItem::End { io_error });
            }
            f
        };
        let l1 = if flags & xmit::SAME_NAME != 0 {
            usize::from(c.u8()?)
        } else {
            0
        };
        let l2 = if flags & xmit::LONG_NAME != 0 {
            usize::try_from(c.varint()?).map_err(|_| Error::Invalid("name length"))?
        } else {
            usize::from(c.u8()?)
        };
        let prefix = self
            .last_name
            .get(..l1)
            .ok_or(Error::Invalid("name prefix"))?;
        match l1.checked_add(l2) {
            Some(0) => return Err(Error::Invalid("empty file name")),
            Some(n) if n <= MAX_NAME => {}
            _ => return Err(Error::TooLong("file name")),
        }
        let mut name = prefix.to_vec();
        name.extend_from_slice(c.bytes(l2)?);
        if name.contains(&0) {
            return Err(Error::Invalid("file name"));
        }
        let mut e = FileEntry {
            name,
            flags,
            ..Default::default()
        };
        if o.hard_links && flags & xmit::HLINKED != 0 && flags & xmit::HLINK_FIRST == 0 {
            let first = c.varint()?;
            let Some(&(len, mtime, mode)) =
                usize::try_from(first).ok().and_then(|i| self.seen.get(i))
            else {
                return Err(Error::Invalid("hard-link index"));
            };
            e.len = len;
            e.mtime = mtime;
            e.mode = mode;
            self.last_name.clone_from(&e.name);
            self.seen.push((len, mtime, mode));
            return Ok(FlistItem::Entry(e));
        }
        let len = c.varlong(3)?;
        e.len = u64::try_from(len).map_err(|_| Error::Invalid("file length"))?;
        if flags & xmit::SAME_TIME == 0 {
            self.mtime = c.varlong(4)?;
        }
        e.mtime = self.mtime;
        if flags & xmit::MOD_NSEC != 0 {
            c.varint()?;
        }
        if flags & xmit::SAME_MODE == 0 {
            self.mode = c.i32()? as u32;
        }
        e.mode = self.mode;
        if o.uid && flags & xmit::SAME_UID == 0 {
            self.uid = c.varint()? as u32;
            if flags & xmit::USER_NAME_FOLLOWS != 0 {
                let n = usize::from(c.u8()?);
                e.user = Some(c.bytes(n)?.to_vec());
            }
        }
        e.uid = self.uid;
        if o.gid && flags & xmit::SAME_GID == 0 {
            self.gid = c.varint()? as u32;
            if flags & xmit::GROUP_NAME_FOLLOWS != 0 {
                let n = usize::from(c.u8()?);
                e.group = Some(c.bytes(n)?.to_vec());
            }
        }
        e.gid = self.gid;
        let t = e.mode & mode::IFMT;
        let device = t == mode::IFCHR || t == mode::IFBLK;
        let special = t == mode::IFIFO || t == mode::IFSOCK;
        if (o.devices && device) || (o.specials && special && o.protocol < 31) {
            if flags & xmit::SAME_RDEV_MAJOR == 0 {
                self.rdev_major = c.varint()?;
            }
            c.varint()?;
        }
        if o.links && t == mode::IFLNK {
            let n = usize::try_from(c.varint()?).map_err(|_| Error::Invalid("link length"))?;
            if n > MAX_LINK {
                return Err(Error::TooLong("symlink target"));
            }
            e.link = Some(c.bytes(n)?.to_vec());
        }
        if o.checksum_len > 0 && t == mode::IFREG {
            c.bytes(o.checksum_len)?;
        }
        self.last_name.clone_from(&e.name);
        self.seen.push((e.len, e.mtime, e.mode));
        Ok(FlistItem::Entry(e))
    }
}

/// Encodes a file list (`send_file_entry`) for entries the honeypot serves
/// (no uid/gid names, devices, links or hard links).
#[derive(Debug, Clone, Default)]
pub struct FlistEncoder {
    opts: FlistOpts,
    last_name: Vec<u8>,
    mode: u32,
    mtime: i64,
    uid: u32,
    gid: u32,
    first: bool,
}

impl FlistEncoder {
    /// An encoder for a list sent with `opts`.
    pub fn new(opts: FlistOpts) -> Self {
        FlistEncoder {
            opts,
            first: true,
            ..Default::default()
        }
    }

    /// Append `e`; `top_dir` / `no_content` mark directories as rsync does.
    /// `checksum` is the whole-file sum when `opts.checksum_len > 0`.
    pub fn entry(
        &mut self,
        out: &mut Vec<u8>,
        e: &FileEntry,
        top_dir: bool,
        no_content: bool,
        checksum: &[u8],
    ) {
        let o = self.opts;
        let mut x = 0u32;
        // As rsync: a directory sent without content is never a top dir
        // (that pair means an implied directory, which listings hide).
        if e.is_dir() {
            if no_content {
                x |= xmit::NO_CONTENT_DIR;
            } else if top_dir {
                x |= xmit::TOP_DIR;
            }
        }
        if e.mode == self.mode && !self.first {
            x |= xmit::SAME_MODE;
        } else {
            self.mode = e.mode;
        }
        if !o.uid || (e.uid == self.uid && !self.first) {
            x |= xmit::SAME_UID;
        } else {
            self.uid = e.uid;
        }
        if !o.gid || (e.gid == self.gid && !self.first) {
            x |= xmit::SAME_GID;
        } else {
            self.gid = e.gid;
        }
        if e.mtime == self.mtime && !self.first {
            x |= xmit::SAME_TIME;
        } else {
            self.mtime = e.mtime;
        }
        // The bytes shared with the previous name (at most 255: the count
        // is one byte) and the rest, which is sent.
        let (mut l1, mut suffix, mut prev) = (0u8, e.name.as_slice(), self.last_name.as_slice());
        while let ([a, s @ ..], [b, p @ ..]) = (suffix, prev)
            && a == b
            && let Some(n) = l1.checked_add(1)
        {
            (l1, suffix, prev) = (n, s, p);
        }
        let l2 = suffix.len();
        let short_l2 = u8::try_from(l2).ok();
        if l1 > 0 {
            x |= xmit::SAME_NAME;
        }
        if short_l2.is_none() {
            x |= xmit::LONG_NAME;
        }
        if o.varint_flags {
            put_varint(
                out,
                if x == 0 {
                    xmit::EXTENDED_FLAGS as i32
                } else {
                    x as i32
                },
            );
        } else {
            if x == 0 && !e.is_dir() {
                x |= xmit::TOP_DIR;
            }
            if x & 0xff00 != 0 || x == 0 {
                x |= xmit::EXTENDED_FLAGS;
                put_flags16(out, x);
            } else {
                let [low, ..] = x.to_le_bytes();
                out.push(low);
            }
        }
        if x & xmit::SAME_NAME != 0 {
            out.push(l1);
        }
        match short_l2 {
            Some(n) => out.push(n),
            None => put_varint(out, low_i32(l2)),
        }
        out.extend_from_slice(suffix);
        put_varlong(out, e.len as i64, 3);
        if x & xmit::SAME_TIME == 0 {
            put_varlong(out, e.mtime, 4);
        }
        if x & xmit::SAME_MODE == 0 {
            put_i32(out, e.mode as i32);
        }
        if o.uid && x & xmit::SAME_UID == 0 {
            put_varint(out, e.uid as i32);
        }
        if o.gid && x & xmit::SAME_GID == 0 {
            put_varint(out, e.gid as i32);
        }
        if o.checksum_len > 0 && e.is_file() {
            let mut sum = checksum.to_vec();
            sum.resize(o.checksum_len, 0);
            out.extend_from_slice(&sum);
        }
        self.first = false;
        self.last_name.clone_from(&e.name);
    }

    /// Append the end of the list.
    pub fn end(&self, out: &mut Vec<u8>, io_error: i32) {
        if self.opts.varint_flags {
            put_varint(out, 0);
            put_varint(out, io_error);
        } else if io_error != 0 {
            put_flags16(out, xmit::EXTENDED_FLAGS | xmit::IO_ERROR_ENDLIST);
            put_varint(out, io_error);
        } else {
            out.push(0);
        }
    }
}

/// Append byte-form transmit flags as a `shortint`: their low 16 bits (no
/// flag is higher).
fn put_flags16(out: &mut Vec<u8>, x: u32) {
    let [b0, b1, ..] = x.to_le_bytes();
    out.extend_from_slice(&[b0, b1]);
}

/// The low 32 bits of `n` as an `int`, what C's `(int)` cast keeps.
fn low_i32(n: usize) -> i32 {
    let [b0, b1, b2, b3, ..] = n.to_le_bytes();
    i32::from_le_bytes([b0, b1, b2, b3])
}

/// rsync's file-list order (`f_name_cmp`, protocol 29+): at each level a
/// directory's plain entries before its subdirectories, directory names
/// compared with their trailing `/`, a directory before its content, the
/// transfer root `.` first.
pub fn flist_cmp(a: &[u8], a_dir: bool, b: &[u8], b_dir: bool) -> std::cmp::Ordering {
    fn key(name: &[u8], dir: bool) -> Vec<(u8, Vec<u8>)> {
        if name == b"." {
            return Vec::new();
        }
        let mut parts = name.split(|&c| c == b'/').peekable();
        let mut key = Vec::new();
        while let Some(p) = parts.next() {
            // Every component but the last is a directory.
            let is_path = parts.peek().is_some() || dir;
            let mut v = p.to_vec();
            if is_path {
                v.push(b'/');
            }
            key.push((u8::from(is_path), v));
        }
        key
    }
    key(a, a_dir).cmp(&key(b, b_dir))
}

/// A checksum header (`sum_struct`): block count, block length, strong-sum
/// bytes per block, length of the last block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SumHead {
    /// Number of blocks.
    pub count: i32,
    /// Block length.
    pub blength: i32,
    /// Strong checksum bytes per block.
    pub s2length: i32,
    /// Length of the last block.
    pub remainder: i32,
}

impl SumHead {
    /// Decode and check a header.
    pub fn read(c: &mut Cursor<'_>) -> Result<SumHead> {
        let h = SumHead {
            count: c.i32()?,
            blength: c.i32()?,
            s2length: c.i32()?,
            remainder: c.i32()?,
        };
        if !(0..=MAX_SUM_COUNT).contains(&h.count) {
            return Err(Error::Invalid("sum count"));
        }
        if !(0..=MAX_BLOCK_SIZE).contains(&h.blength) {
            return Err(Error::Invalid("block length"));
        }
        if !(0..=64).contains(&h.s2length) {
            return Err(Error::Invalid("checksum length"));
        }
        if h.remainder < 0 || h.remainder > h.blength {
            return Err(Error::Invalid("remainder length"));
        }
        Ok(h)
    }

    /// Bytes of block checksums that follow the header (rolling + strong).
    /// For a header that [`SumHead::read`] accepted this is at most 2^20
    /// blocks of 68 bytes; one with a negative field (which `read`
    /// refuses) gives `usize::MAX`, more than can ever follow.
    pub fn sums_len(&self) -> usize {
        let count = usize::try_from(self.count).ok();
        let per_block = usize::try_from(self.s2length)
            .ok()
            .and_then(|s2| s2.checked_add(4));
        count
            .zip(per_block)
            .and_then(|(count, per_block)| count.checked_mul(per_block))
            .unwrap_or(usize::MAX)
    }

    /// Append the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        for v in [self.count, self.blength, self.s2length, self.remainder] {
            put_i32(out, v);
        }
    }
}

/// One filter rule (`int` length then text), or `None` at the list's end
/// (length 0). Returns the bytes taken too.
pub fn take_filter(buf: &[u8]) -> Result<Option<(Option<Vec<u8>>, usize)>> {
    let mut c = Cursor::new(buf);
    let len = match c.i32() {
        Ok(l) => l,
        Err(Error::Incomplete) => return Ok(None),
        Err(e) => return Err(e),
    };
    if len == 0 {
        return Ok(Some((None, 4)));
    }
    let len = usize::try_from(len).map_err(|_| Error::Invalid("filter length"))?;
    if len > MAX_FILTER_LEN {
        return Err(Error::TooLong("filter rule"));
    }
    match c.bytes(len) {
        Ok(b) => Ok(Some((Some(b.to_vec()), c.pos()))),
        Err(Error::Incomplete) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Decode everything the emulator decodes from attacker bytes, to find
/// panics (the fuzz target and the corpus replay call it).
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(Some((line, used))) = take_line(data, MAX_LINE) {
        assert!(used <= data.len());
        let _ = parse_greeting(line);
    }
    let _ = take_args(data, true);
    let _ = take_args(data, false);
    let _ = take_filter(data);
    let mut buf = data;
    while let Ok(Some(f)) = next_frame(buf, MAX_FRAME) {
        // next_frame saw the header and the whole payload.
        let Some(rest) = buf.get(4..).and_then(|b| b.get(f.len..)) else {
            break;
        };
        buf = rest;
    }
    let mut ndx = NdxCodec::default();
    let mut c = Cursor::new(data);
    while ndx.read(&mut c).is_ok() {}
    let _ = SumHead::read(&mut Cursor::new(data));
    let mut c = Cursor::new(data);
    while c.varlong(3).is_ok() {}
    for opts in [
        FlistOpts {
            varint_flags: true,
            protocol: 31,
            ..Default::default()
        },
        FlistOpts {
            varint_flags: false,
            uid: true,
            gid: true,
            links: true,
            devices: true,
            specials: true,
            hard_links: true,
            checksum_len: 16,
            protocol: 30,
        },
    ] {
        let mut d = FlistDecoder::new(opts);
        let mut rest = data;
        while let Ok(Some((item, used))) = d.next(rest) {
            assert!(used > 0 && used <= rest.len());
            rest = rest.get(used..).unwrap_or_default();
            if matches!(item, FlistItem::End { .. }) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Replays the committed fuzz corpus (seeded with bytes captured
    /// between a real rsync client and daemon).
    #[test]
    fn fuzz_corpus_replays() {
        crate::replay_fuzz_corpus("rsync", fuzz_parse);
    }

    #[test]
    fn varints_match_captured_bytes() {
        // Bytes from a real rsync 3.x daemon: compat flags 0x1fe, a
        // directory size of 4096 as varlong(3), an mtime as varlong(4).
        let mut v = Vec::new();
        put_varint(&mut v, 0x1fe);
        assert_eq!(v, [0x81, 0xfe]);
        assert_eq!(Cursor::new(&[0xa0, 0x19]).varint(), Ok(0x2019));
        let mut v = Vec::new();
        put_varlong(&mut v, 4096, 3);
        assert_eq!(v, [0, 0, 0x10]);
        assert_eq!(Cursor::new(b"k\x1a\xe2\x01").varlong(4), Ok(0x6b01e21a));
        assert_eq!(
            Cursor::new(&[0xf0, 0xe4, 0x41, 0xf5, 0x12]).varint(),
            Ok(0x12f541e4)
        );
    }

    proptest! {
        #[test]
        fn varint_roundtrip(x in any::<i32>()) {
            let mut v = Vec::new();
            put_varint(&mut v, x);
            prop_assert_eq!(Cursor::new(&v).varint(), Ok(x));
        }

        #[test]
        fn varlong_roundtrip(x in 0i64..i64::MAX, m in 3usize..=4) {
            let mut v = Vec::new();
            put_varlong(&mut v, x, m);
            let mut c = Cursor::new(&v);
            prop_assert_eq!(c.varlong(m), Ok(x));
            prop_assert_eq!(c.remaining(), 0);
        }

        #[test]
        fn ndx_roundtrip(xs in proptest::collection::vec(-100_000i32..10_000_000, 1..50)) {
            let (mut w, mut r) = (NdxCodec::default(), NdxCodec::default());
            let mut v = Vec::new();
            for &x in &xs { w.write(&mut v, x); }
            let mut c = Cursor::new(&v);
            for &x in &xs { prop_assert_eq!(r.read(&mut c), Ok(x)); }
        }

        #[test]
        fn fuzz_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_parse(&data);
        }
    }

    #[test]
    fn greeting_and_args() {
        let g = parse_greeting(b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!((g.protocol, g.sub), (31, 0));
        assert_eq!(g.digests, ["sha512", "sha256", "sha1", "md5", "md4"]);
        assert_eq!(parse_greeting(b"@RSYNCD: 29").unwrap().protocol, 29);
        assert!(parse_greeting(b"@RSYNCD: 31").is_err());
        assert!(parse_greeting(b"SSH-2.0-x").is_err());
        let (args, used) = take_args(b"--server\0-e.LsfxCIvu\0.\0www/\0\0rest", true)
            .unwrap()
            .unwrap();
        assert_eq!(args.len(), 4);
        assert_eq!(used, 29);
        assert_eq!(take_args(b"--server\0", true), Ok(None));
        assert!(take_line(&[b'a'; MAX_LINE + 2], MAX_LINE).is_err());
    }

    #[test]
    fn captured_upload_file_list_decodes() {
        // The file list rsync 3.x sent for `rsync upfile.txt rsync://h/www/`.
        let raw = b"\xa0\x18\nupfile.txt\x00\x07\x00k\x1a\xe2\x01\xf0\xac\x1bZ\x13\xa4\x81\x00\x00\x00\x00";
        let mut d = FlistDecoder::new(FlistOpts {
            varint_flags: true,
            protocol: 31,
            ..Default::default()
        });
        let (item, used) = d.next(raw).unwrap().unwrap();
        let FlistItem::Entry(e) = item else { panic!() };
        assert_eq!(e.name, b"upfile.txt");
        assert_eq!((e.len, e.mode), (7, 0o100644));
        assert!(e.is_file());
        let (end, used2) = d.next(&raw[used..]).unwrap().unwrap();
        assert_eq!(end, FlistItem::End { io_error: 0 });
        assert_eq!(used + used2, raw.len());
        // Short input is "not yet", and leaves the decoder as it was.
        let mut d2 = FlistDecoder::new(FlistOpts {
            varint_flags: true,
            protocol: 31,
            ..Default::default()
        });
        assert_eq!(d2.next(&raw[..10]), Ok(None));
        assert!(d2.next(raw).unwrap().is_some());
    }

    #[test]
    fn encoder_output_decodes() {
        let opts = FlistOpts {
            varint_flags: true,
            protocol: 31,
            ..Default::default()
        };
        let mut enc = FlistEncoder::new(opts);
        let mut v = Vec::new();
        let dir = FileEntry {
            name: b".".to_vec(),
            len: 4096,
            mtime: 1_700_000_000,
            mode: 0o040755,
            ..Default::default()
        };
        let f = FileEntry {
            name: b"a.txt".to_vec(),
            len: 6,
            mtime: 1_700_000_000,
            mode: 0o100644,
            ..Default::default()
        };
        enc.entry(&mut v, &dir, true, false, &[]);
        enc.entry(&mut v, &f, false, false, &[]);
        enc.end(&mut v, 0);
        let mut d = FlistDecoder::new(opts);
        let mut rest = &v[..];
        let mut names = vec![];
        while let Some((item, used)) = d.next(rest).unwrap() {
            rest = &rest[used..];
            match item {
                FlistItem::Entry(e) => names.push((e.name, e.len, e.mode, e.mtime)),
                FlistItem::End { .. } => break,
            }
        }
        assert_eq!(
            names,
            vec![
                (b".".to_vec(), 4096, 0o040755, 1_700_000_000),
                (b"a.txt".to_vec(), 6, 0o100644, 1_700_000_000)
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn flist_order_is_rsyncs() {
        let mut v = [
            ("sub/x", false),
            ("sub", true),
            ("a-b", true),
            ("z.txt", false),
            (".", true),
            ("a", true),
        ];
        v.sort_by(|a, b| flist_cmp(a.0.as_bytes(), a.1, b.0.as_bytes(), b.1));
        let names: Vec<_> = v.iter().map(|x| x.0).collect();
        assert_eq!(names, [".", "z.txt", "a-b", "a", "sub", "sub/x"]);
    }

    #[test]
    fn frames_are_bounded() {
        let mut v = Vec::new();
        put_frames(&mut v, msg::DATA, b"abc");
        assert_eq!(v, [3, 0, 0, 7, b'a', b'b', b'c']);
        assert_eq!(
            next_frame(&v, MAX_FRAME),
            Ok(Some(Frame { tag: 0, len: 3 }))
        );
        assert_eq!(
            next_frame(&[0xff, 0xff, 0xff, 0x07], MAX_FRAME),
            Err(Error::TooLong("multiplex frame"))
        );
        assert_eq!(
            next_frame(&[0, 0, 0, 0x03], MAX_FRAME),
            Err(Error::Invalid("multiplex tag"))
        );
    }
}
