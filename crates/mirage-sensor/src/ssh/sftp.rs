//! The `sftp` subsystem: OpenSSH's `sftp-server` (protocol 3, the same
//! extensions announced) over the session's virtual filesystem, so the
//! `sftp` client and modern `scp` (which speaks SFTP by default) can list,
//! fetch and upload.
//!
//! Packets are framed and parsed by [`mirage_proto::sftp`] (bounded,
//! fuzzed). Uploads are collected per handle and, on CLOSE, stored in the
//! quarantine by sha256 and written into the session's tree, like scp's.
//! Every request is recorded as a `command` event (`command: "sftp"`,
//! `args: [op, path…]`), except READ, WRITE and READDIR, which move data
//! for a handle already recorded at OPEN/OPENDIR; an upload adds `payload`
//! and an `ssh.sftp_upload` attack event. A malformed or oversized packet
//! is a `protocol.error` and ends the subsystem, as it ends sftp-server.
//!
//! Limits: [`MAX_HANDLES`] open handles, [`MAX_UPLOAD`] bytes per file and
//! in all write buffers of one channel, reads of at most [`MAX_READ`].

use std::collections::HashMap;

use mirage_core::{BytesText, EventKind, PayloadData};
use mirage_proto::sftp::{self as proto, Attrs, NameEntry, Request, StatusCode, fxp, pflags};
use serde_json::{Map, Value};

use crate::quarantine::Quarantine;
use crate::shell::Shell;
use crate::shell::fs::{FsError, Node, Vfs};
use crate::shell::report::{RAW_CAP, Report, effect_events, payload};

/// Most handles open at once (files and directories).
pub const MAX_HANDLES: usize = 64;
/// Largest upload per file, and most bytes held by one channel's write
/// buffers together.
pub const MAX_UPLOAD: usize = 16 * 1024 * 1024;
/// Most bytes one READ returns (OpenSSH's sftp-server: 256 KiB - 1 KiB).
pub const MAX_READ: u32 = 261_120;
/// Directory entries per READDIR reply.
const DIR_CHUNK: usize = 100;
/// The modification time every file shows (2024-11-22 00:00 UTC).
const MTIME: u32 = 1_732_233_600;

/// What sftp-server 9.2 announces in its VERSION reply.
const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("lsetstat@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
    ("home-directory", "1"),
    ("users-groups-by-id@openssh.com", "1"),
];

enum Open {
    /// A file opened for reading and/or writing.
    File {
        path: String,
        /// Contents at OPEN (reads) and as written (writes).
        data: Vec<u8>,
        writing: bool,
        written: u64,
        /// A write went past [`MAX_UPLOAD`]; the rest was refused.
        truncated: bool,
    },
    /// A directory listing in progress.
    Dir { path: String, pos: usize },
}

/// What one chunk of channel data produced.
#[derive(Default)]
pub struct Step {
    /// Bytes to send on the channel.
    pub reply: Vec<u8>,
    /// Events to emit.
    pub reports: Vec<Report>,
    /// The subsystem ends (malformed input).
    pub end: bool,
}

/// One `sftp` channel.
#[derive(Default)]
pub struct SftpServer {
    framer: proto::Framer,
    handles: HashMap<u32, Open>,
    next_handle: u32,
    /// Bytes held by write buffers.
    buffered: usize,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(e: FsError) -> StatusCode {
    match e {
        FsError::NotFound => StatusCode::NoSuchFile,
        FsError::Denied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

fn op_name(op: u8) -> &'static str {
    match op {
        fxp::INIT => "init",
        fxp::OPEN => "open",
        fxp::CLOSE => "close",
        fxp::LSTAT => "lstat",
        fxp::FSTAT => "fstat",
        fxp::SETSTAT => "setstat",
        fxp::FSETSTAT => "fsetstat",
        fxp::OPENDIR => "opendir",
        fxp::REMOVE => "remove",
        fxp::MKDIR => "mkdir",
        fxp::RMDIR => "rmdir",
        fxp::REALPATH => "realpath",
        fxp::STAT => "stat",
        fxp::RENAME => "rename",
        fxp::READLINK => "readlink",
        fxp::SYMLINK => "symlink",
        fxp::EXTENDED => "extended",
        _ => "unknown",
    }
}

/// Owner of a path as `ls -l` shows it: the user's home is theirs.
fn owner(shell: &Shell, path: &str) -> (u32, String) {
    let user = &shell.profile.user;
    if user != "root" && (path == shell.home || path.starts_with(&format!("{}/", shell.home))) {
        (1000, user.clone())
    } else {
        (0, "root".to_owned())
    }
}

fn attrs_of(shell: &Shell, path: &str, node: &Node) -> Attrs {
    let (uid, _) = owner(shell, path);
    let (size, perm) = match node {
        Node::Dir => (4096, 0o040_000 | 0o755),
        Node::File { data, mode } => (data.len() as u64, 0o100_000 | mode),
    };
    Attrs {
        size: Some(size),
        uid_gid: Some((uid, uid)),
        permissions: Some(perm),
        atime_mtime: Some((MTIME, MTIME)),
    }
}

/// `ls -l` line as sftp-server's `ls_file` formats it.
fn longname(shell: &Shell, path: &str, name: &str, node: &Node) -> Vec<u8> {
    let (_, who) = owner(shell, path);
    let (size, mode, kind) = match node {
        Node::Dir => (4096, 0o755, 'd'),
        Node::File { data, mode } => (data.len(), *mode, '-'),
    };
    let mut perm = String::with_capacity(10);
    perm.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perm.push(if bits & 4 != 0 { 'r' } else { '-' });
        perm.push(if bits & 2 != 0 { 'w' } else { '-' });
        perm.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let links = if matches!(node, Node::Dir) { 2 } else { 1 };
    format!("{perm} {links:>3} {who:<8.8} {who:<8.8} {size:>8} Nov 22  2024 {name}").into_bytes()
}

impl SftpServer {
    /// Feed channel data.
    pub fn feed(&mut self, input: &[u8], shell: &mut Shell, quarantine: &Quarantine) -> Step {
        let mut step = Step::default();
        self.framer.push(input);
        while let Some(p) = self.framer.next_packet() {
            let parsed = match p {
                Ok(pkt) => proto::parse(&pkt).map_err(|e| (e, pkt)),
                Err(e) => Err((e, input.to_vec())),
            };
            match parsed {
                Ok(r) => self.request(r, shell, quarantine, &mut step),
                Err((e, bytes)) => {
                    step.reports.push((
                        EventKind::ProtocolError {
                            error: e.to_string(),
                            data: PayloadData::new(&bytes, 256),
                        },
                        Vec::new(),
                    ));
                    step.end = true;
                    break;
                }
            }
        }
        step
    }

    /// Uploads still open when the channel ends are kept like closed ones.
    pub fn finish(&mut self, shell: &mut Shell, quarantine: &Quarantine) -> Vec<Report> {
        let mut reports = Vec::new();
        let ids: Vec<u32> = self.handles.keys().copied().collect();
        for h in ids {
            if let Some(o) = self.handles.remove(&h) {
                self.close(o, shell, quarantine, &mut reports);
            }
        }
        reports
    }

    fn record(
        &self,
        step: &mut Step,
        op: &str,
        paths: &[&str],
        error: bool,
        details: Map<String, Value>,
    ) {
        let mut args = vec![BytesText::capped(op.as_bytes(), RAW_CAP).0];
        let mut raw = format!("sftp {op}");
        for p in paths {
            args.push(BytesText::capped(p.as_bytes(), RAW_CAP).0);
            raw.push(' ');
            raw.push_str(p);
        }
        let (raw, truncated) = BytesText::capped(raw.as_bytes(), RAW_CAP);
        step.reports.push((
            EventKind::Command {
                command: "sftp".into(),
                args,
                raw,
                truncated,
                error,
                details,
            },
            Vec::new(),
        ));
    }

    fn new_handle(&mut self, o: Open) -> Option<Vec<u8>> {
        if self.handles.len() >= MAX_HANDLES {
            return None;
        }
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        self.handles.insert(h, o);
        Some(h.to_string().into_bytes())
    }

    fn handle_id(h: &[u8]) -> Option<u32> {
        std::str::from_utf8(h).ok()?.parse().ok()
    }

    fn resolve(shell: &Shell, p: &[u8]) -> String {
        // sftp-server's working directory is the home directory; `~` is
        // expanded only by expand-path (see `extended`).
        let p = text(p);
        if p.starts_with('~') {
            return Vfs::resolve(&shell.home, &format!("./{p}"), &shell.home);
        }
        Vfs::resolve(&shell.home, &p, &shell.home)
    }

    fn request(&mut self, req: Request, shell: &mut Shell, q: &Quarantine, step: &mut Step) {
        let none = Map::new;
        match req {
            Request::Init { version } => {
                let mut d = none();
                d.insert("version".into(), Value::from(version));
                self.record(step, "init", &[], false, d);
                step.reply.extend(proto::version(EXTENSIONS));
            }
            Request::Open {
                id,
                path,
                pflags: fl,
                attrs,
            } => {
                let path = Self::resolve(shell, &path);
                let mut d = none();
                d.insert("flags".into(), Value::from(fl));
                let writing = fl & (pflags::WRITE | pflags::APPEND) != 0;
                let result = self.open(shell, &path, fl, &attrs);
                let status = match result {
                    Ok((data, exists)) => {
                        d.insert(
                            "mode".into(),
                            Value::from(if writing { "write" } else { "read" }),
                        );
                        d.insert("created".into(), Value::from(writing && !exists));
                        self.buffered += if writing { data.len() } else { 0 };
                        match self.new_handle(Open::File {
                            path: path.clone(),
                            data,
                            writing,
                            written: 0,
                            truncated: false,
                        }) {
                            Some(h) => {
                                step.reply.extend(proto::handle(id, &h));
                                None
                            }
                            None => Some(StatusCode::Failure),
                        }
                    }
                    Err(c) => Some(c),
                };
                if let Some(c) = status {
                    step.reply.extend(proto::status(id, c));
                }
                self.record(step, "open", &[&path], status.is_some(), d);
            }
            Request::Close { id, handle } => {
                match Self::handle_id(&handle).and_then(|h| self.handles.remove(&h)) {
                    Some(o) => {
                        self.close(o, shell, q, &mut step.reports);
                        step.reply.extend(proto::status(id, StatusCode::Ok));
                    }
                    None => step.reply.extend(proto::status(id, StatusCode::Failure)),
                }
            }
            Request::Read {
                id,
                handle,
                offset,
                len,
            } => {
                let reply = match Self::handle_id(&handle).and_then(|h| self.handles.get(&h)) {
                    Some(Open::File { data, .. }) => {
                        let start = usize::try_from(offset).unwrap_or(usize::MAX);
                        if start >= data.len() {
                            proto::status(id, StatusCode::Eof)
                        } else {
                            let end = data.len().min(start + len.min(MAX_READ) as usize);
                            proto::data(id, &data[start..end])
                        }
                    }
                    _ => proto::status(id, StatusCode::Failure),
                };
                step.reply.extend(reply);
            }
            Request::Write {
                id,
                handle,
                offset,
                data: chunk,
            } => {
                let code = match Self::handle_id(&handle).and_then(|h| self.handles.get_mut(&h)) {
                    Some(Open::File {
                        data,
                        writing: true,
                        written,
                        truncated,
                        ..
                    }) => {
                        let start = usize::try_from(offset).unwrap_or(usize::MAX);
                        let end = start.saturating_add(chunk.len());
                        let grow = end.saturating_sub(data.len());
                        if end > MAX_UPLOAD || self.buffered.saturating_add(grow) > MAX_UPLOAD {
                            *truncated = true;
                            StatusCode::Failure
                        } else {
                            if data.len() < end {
                                data.resize(end, 0);
                            }
                            data[start..end].copy_from_slice(&chunk);
                            self.buffered += grow;
                            *written += chunk.len() as u64;
                            StatusCode::Ok
                        }
                    }
                    Some(Open::File { .. }) => StatusCode::PermissionDenied,
                    _ => StatusCode::Failure,
                };
                step.reply.extend(proto::status(id, code));
            }
            Request::Path { op, id, path } => self.path_op(op, id, &path, shell, step),
            Request::Handle { op, id, handle } => {
                let h = Self::handle_id(&handle);
                match op {
                    fxp::READDIR => {
                        let reply = match h.and_then(|h| self.handles.get_mut(&h)) {
                            Some(Open::Dir { path, pos }) => match shell.fs.list(path) {
                                Ok(list) => {
                                    let mut entries: Vec<NameEntry> = Vec::new();
                                    let all = [".", ".."]
                                        .iter()
                                        .map(|n| (n.to_string(), &Node::Dir))
                                        .chain(list.iter().map(|(n, node)| (n.clone(), *node)));
                                    for (n, node) in all.skip(*pos).take(DIR_CHUNK) {
                                        let full = if path == "/" {
                                            format!("/{n}")
                                        } else {
                                            format!("{path}/{n}")
                                        };
                                        entries.push((
                                            n.clone().into_bytes(),
                                            longname(shell, &full, &n, node),
                                            attrs_of(shell, &full, node),
                                        ));
                                    }
                                    *pos += entries.len();
                                    if entries.is_empty() {
                                        proto::status(id, StatusCode::Eof)
                                    } else {
                                        proto::name(id, &entries)
                                    }
                                }
                                Err(_) => proto::status(id, StatusCode::Eof),
                            },
                            _ => proto::status(id, StatusCode::Failure),
                        };
                        step.reply.extend(reply);
                    }
                    _ => {
                        // FSTAT
                        let reply = match h.and_then(|h| self.handles.get(&h)) {
                            Some(Open::File { path, data, .. }) => {
                                let node = Node::File {
                                    data: Vec::new(),
                                    mode: shell.fs.mode(path).unwrap_or(0o644),
                                };
                                let mut a = attrs_of(shell, path, &node);
                                a.size = Some(data.len() as u64);
                                proto::attrs(id, &a)
                            }
                            Some(Open::Dir { path, .. }) => {
                                proto::attrs(id, &attrs_of(shell, path, &Node::Dir))
                            }
                            None => proto::status(id, StatusCode::Failure),
                        };
                        step.reply.extend(reply);
                        self.record(step, "fstat", &[], false, none());
                    }
                }
            }
            Request::SetAttrs {
                op,
                id,
                path,
                attrs,
            } => {
                let target = if op == fxp::FSETSTAT {
                    match Self::handle_id(&path).and_then(|h| self.handles.get(&h)) {
                        Some(Open::File { path, .. } | Open::Dir { path, .. }) => Ok(path.clone()),
                        None => Err(StatusCode::Failure),
                    }
                } else {
                    Ok(Self::resolve(shell, &path))
                };
                let mut d = none();
                if let Some(p) = attrs.permissions {
                    d.insert(
                        "permissions".into(),
                        Value::String(format!("{:o}", p & 0o7777)),
                    );
                }
                let (shown, code) = match target {
                    Err(c) => (String::new(), c),
                    Ok(p) if op == fxp::MKDIR => {
                        let c = match shell.fs.mkdir(&p, false) {
                            Ok(()) => StatusCode::Ok,
                            Err(e) => code(e),
                        };
                        (p, c)
                    }
                    Ok(p) => {
                        let c = if shell.fs.get(&p).is_none() && !self.is_open_upload(&p) {
                            StatusCode::NoSuchFile
                        } else {
                            if let Some(m) = attrs.permissions {
                                let _ = shell.fs.set_mode(&p, m);
                            }
                            StatusCode::Ok
                        };
                        (p, c)
                    }
                };
                step.reply.extend(proto::status(id, code));
                self.record(step, op_name(op), &[&shown], code != StatusCode::Ok, d);
            }
            Request::TwoPaths {
                op,
                id,
                first,
                second,
            } => {
                let (a, b) = (Self::resolve(shell, &first), Self::resolve(shell, &second));
                let code = if op == fxp::RENAME {
                    match shell.fs.rename(&a, &b, false) {
                        Ok(()) => StatusCode::Ok,
                        Err(e) => code(e),
                    }
                } else {
                    // symlink: the tree has no links.
                    StatusCode::PermissionDenied
                };
                step.reply.extend(proto::status(id, code));
                self.record(step, op_name(op), &[&a, &b], code != StatusCode::Ok, none());
            }
            Request::Extended { id, name, data } => self.extended(id, &name, &data, shell, step),
            Request::Unknown { op, id } => {
                let mut d = none();
                d.insert("type".into(), Value::from(op));
                step.reply
                    .extend(proto::status(id.unwrap_or(0), StatusCode::OpUnsupported));
                self.record(step, "unknown", &[], true, d);
            }
        }
    }

    fn is_open_upload(&self, path: &str) -> bool {
        self.handles
            .values()
            .any(|o| matches!(o, Open::File { path: p, writing: true, .. } if p == path))
    }

    /// Check an OPEN against the tree; the contents to start from and
    /// whether the file existed.
    fn open(
        &self,
        shell: &Shell,
        path: &str,
        fl: u32,
        attrs: &Attrs,
    ) -> Result<(Vec<u8>, bool), StatusCode> {
        let _ = attrs;
        let writing = fl & (pflags::WRITE | pflags::APPEND) != 0;
        match shell.fs.get(path) {
            Some(Node::Dir) => Err(StatusCode::Failure),
            Some(Node::File { data, .. }) => {
                if writing && fl & pflags::CREAT != 0 && fl & pflags::EXCL != 0 {
                    return Err(StatusCode::Failure);
                }
                if writing && (path.starts_with("/proc/") || path.starts_with("/sys/")) {
                    return Err(StatusCode::PermissionDenied);
                }
                if writing && fl & pflags::TRUNC != 0 {
                    Ok((Vec::new(), true))
                } else if writing && data.len() > MAX_UPLOAD.saturating_sub(self.buffered) {
                    Err(StatusCode::Failure)
                } else {
                    Ok((data.clone(), true))
                }
            }
            None => {
                if !writing || fl & pflags::CREAT == 0 {
                    return Err(StatusCode::NoSuchFile);
                }
                let parent = match path.rfind('/') {
                    Some(0) | None => "/",
                    Some(i) => &path[..i],
                };
                if !shell.fs.is_dir(parent) {
                    return Err(StatusCode::NoSuchFile);
                }
                if path.starts_with("/proc/") || path.starts_with("/sys/") {
                    return Err(StatusCode::PermissionDenied);
                }
                Ok((Vec::new(), false))
            }
        }
    }

    fn close(&mut self, o: Open, shell: &mut Shell, q: &Quarantine, reports: &mut Vec<Report>) {
        let Open::File {
            path,
            data,
            writing: true,
            written,
            truncated,
        } = o
        else {
            return;
        };
        self.buffered = self.buffered.saturating_sub(data.len());
        let (kind, tags) = payload(&data, q);
        let sha = match &kind {
            EventKind::Payload { data, .. } => data.sha256.clone(),
            _ => String::new(),
        };
        reports.push((kind, tags));
        // The tree keeps what fits its own caps; the quarantine has it all.
        let _ = shell.fs.write(&path, &data, false);
        let mut ev = Map::new();
        ev.insert(
            "path".into(),
            Value::String(BytesText::capped(path.as_bytes(), RAW_CAP).0.0),
        );
        ev.insert("len".into(), Value::from(data.len()));
        ev.insert("written".into(), Value::from(written));
        ev.insert("sha256".into(), Value::String(sha));
        if truncated {
            ev.insert("truncated".into(), Value::Bool(true));
        }
        reports.push((
            EventKind::Attack {
                technique: "ssh.sftp_upload".into(),
                summary: format!(
                    "sftp upload of {} bytes to {}",
                    data.len(),
                    BytesText::capped(path.as_bytes(), 256).0.0
                ),
                evidence: ev,
            },
            Vec::new(),
        ));
        shell.check_persistence(&path);
        for e in shell.take_effects() {
            reports.extend(effect_events(e, q));
        }
    }

    fn path_op(&mut self, op: u8, id: u32, raw: &[u8], shell: &mut Shell, step: &mut Step) {
        let path = Self::resolve(shell, raw);
        let code = match op {
            fxp::REALPATH => {
                // realpath(3): the path must exist.
                if shell.fs.get(&path).is_some() {
                    step.reply.extend(proto::name(
                        id,
                        &[(
                            path.clone().into_bytes(),
                            path.clone().into_bytes(),
                            Attrs::default(),
                        )],
                    ));
                    None
                } else {
                    Some(StatusCode::NoSuchFile)
                }
            }
            fxp::STAT | fxp::LSTAT => match shell.fs.get(&path) {
                Some(n) => {
                    let a = attrs_of(shell, &path, n);
                    step.reply.extend(proto::attrs(id, &a));
                    None
                }
                None => Some(StatusCode::NoSuchFile),
            },
            fxp::OPENDIR => match shell.fs.get(&path) {
                Some(Node::Dir) => match self.new_handle(Open::Dir {
                    path: path.clone(),
                    pos: 0,
                }) {
                    Some(h) => {
                        step.reply.extend(proto::handle(id, &h));
                        None
                    }
                    None => Some(StatusCode::Failure),
                },
                Some(_) => Some(StatusCode::Failure),
                None => Some(StatusCode::NoSuchFile),
            },
            fxp::REMOVE => match shell.fs.get(&path) {
                Some(Node::File { .. }) => Some(match shell.fs.remove(&path, false) {
                    Ok(()) => StatusCode::Ok,
                    Err(e) => code(e),
                }),
                Some(Node::Dir) => Some(StatusCode::Failure),
                None => Some(StatusCode::NoSuchFile),
            },
            fxp::RMDIR => match shell.fs.list(&path) {
                Ok(l) if l.is_empty() => Some(match shell.fs.remove(&path, true) {
                    Ok(()) => StatusCode::Ok,
                    Err(e) => code(e),
                }),
                Ok(_) => Some(StatusCode::Failure),
                Err(e) => Some(code(e)),
            },
            // READLINK: nothing in the tree is a link (EINVAL).
            _ => Some(if shell.fs.get(&path).is_some() {
                StatusCode::Failure
            } else {
                StatusCode::NoSuchFile
            }),
        };
        let error = match code {
            Some(c) => {
                step.reply.extend(proto::status(id, c));
                c != StatusCode::Ok
            }
            None => false,
        };
        self.record(step, op_name(op), &[&path], error, Map::new());
    }

    fn extended(&mut self, id: u32, name: &[u8], data: &[u8], shell: &mut Shell, step: &mut Step) {
        let ext = text(name);
        // The first string of the body, for the extensions that take a path.
        let arg = |i: usize| -> Option<Vec<u8>> {
            let mut rest = data;
            let mut out = None;
            for _ in 0..=i {
                if rest.len() < 4 {
                    return None;
                }
                let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let s = rest.get(4..4usize.checked_add(n)?)?;
                out = Some(s.to_vec());
                rest = &rest[4 + n..];
            }
            out
        };
        let mut paths = Vec::new();
        let reply = match ext.as_str() {
            "posix-rename@openssh.com" => match (arg(0), arg(1)) {
                (Some(a), Some(b)) => {
                    let (a, b) = (Self::resolve(shell, &a), Self::resolve(shell, &b));
                    let c = match shell.fs.rename(&a, &b, true) {
                        Ok(()) => StatusCode::Ok,
                        Err(e) => code(e),
                    };
                    paths = vec![a, b];
                    proto::status(id, c)
                }
                _ => proto::status(id, StatusCode::BadMessage),
            },
            "statvfs@openssh.com" | "fstatvfs@openssh.com" => {
                // A 20 GiB ext4 root, 4 KiB blocks, about half used.
                let mut body = Vec::with_capacity(88);
                for v in [
                    4096u64,
                    4096,
                    5_242_880,
                    2_771_340,
                    2_502_668,
                    1_310_720,
                    1_102_393,
                    1_102_393,
                    0x8f3a_21c4_55e0_7b19,
                    0x1000,
                    255,
                ] {
                    body.extend_from_slice(&proto::be64(v));
                }
                proto::extended_reply(id, &body)
            }
            "limits@openssh.com" => {
                let mut body = Vec::with_capacity(32);
                for v in [
                    proto::MAX_PACKET as u64,
                    MAX_READ as u64,
                    MAX_READ as u64,
                    0,
                ] {
                    body.extend_from_slice(&proto::be64(v));
                }
                proto::extended_reply(id, &body)
            }
            "expand-path@openssh.com" => match arg(0) {
                Some(p) => {
                    let full = Vfs::resolve(&shell.home, &text(&p), &shell.home);
                    paths = vec![full.clone()];
                    if shell.fs.get(&full).is_some() {
                        proto::name(
                            id,
                            &[(
                                full.clone().into_bytes(),
                                full.into_bytes(),
                                Attrs::default(),
                            )],
                        )
                    } else {
                        proto::status(id, StatusCode::NoSuchFile)
                    }
                }
                None => proto::status(id, StatusCode::BadMessage),
            },
            "home-directory" => {
                let h = shell.home.clone().into_bytes();
                proto::name(id, &[(h.clone(), h, Attrs::default())])
            }
            "users-groups-by-id@openssh.com" => match (arg(0), arg(1)) {
                (Some(uids), Some(gids)) => {
                    // Names for the ids `ls -l` shows: root and the user.
                    let names = |ids: &[u8]| -> Vec<u8> {
                        let mut out = Vec::new();
                        for c in ids.chunks_exact(4).take(proto::MAX_PACKET / 4) {
                            let n = match u32::from_be_bytes([c[0], c[1], c[2], c[3]]) {
                                0 => "root".to_owned(),
                                1000 if shell.profile.user != "root" => shell.profile.user.clone(),
                                _ => String::new(),
                            };
                            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
                            out.extend_from_slice(n.as_bytes());
                        }
                        out
                    };
                    let (u, g) = (names(&uids), names(&gids));
                    let mut body = Vec::with_capacity(u.len() + g.len() + 8);
                    for part in [u, g] {
                        body.extend_from_slice(&(part.len() as u32).to_be_bytes());
                        body.extend_from_slice(&part);
                    }
                    proto::extended_reply(id, &body)
                }
                _ => proto::status(id, StatusCode::BadMessage),
            },
            "fsync@openssh.com" => proto::status(id, StatusCode::Ok),
            "lsetstat@openssh.com" => match arg(0) {
                Some(p) => {
                    let p = Self::resolve(shell, &p);
                    let c = if shell.fs.get(&p).is_some() {
                        StatusCode::Ok
                    } else {
                        StatusCode::NoSuchFile
                    };
                    paths = vec![p];
                    proto::status(id, c)
                }
                None => proto::status(id, StatusCode::BadMessage),
            },
            _ => proto::status(id, StatusCode::OpUnsupported),
        };
        step.reply.extend(reply);
        // Recorded under the extension's name (`posix-rename@openssh.com`).
        let op = BytesText::capped(name, 256).0.0;
        let shown: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.record(step, &op, &shown, false, Map::new());
    }
}
