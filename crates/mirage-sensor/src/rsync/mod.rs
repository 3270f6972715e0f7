//! rsync daemon honeypot: speaks the daemon protocol of rsync 3.x
//! (`clientserver.c`) and enough of protocol 30/31 after it that a real
//! `rsync` client can list modules, list and download a module's virtual
//! files, log in to a protected module, and upload files, which land in the
//! quarantine by sha256.
//!
//! - The handshake: `@RSYNCD: 31.0 <auth digests>` greeting, optional MOTD,
//!   the module listing (`%-15s\t%s` lines then `@RSYNCD: EXIT`), the
//!   `@RSYNCD: AUTHREQD <challenge>` login (the response is the base64 of
//!   digest(password + challenge), verified for configured credentials),
//!   `@RSYNCD: OK`, then the client's `--server` arguments.
//! - The transfer ([`transfer`]): compat flags, checksum-name negotiation,
//!   the checksum seed, then multiplexed I/O. As sender (downloads and
//!   listings) the emulator sends the virtual file list and literal data;
//!   as receiver (uploads) it reads the client's file list, asks for every
//!   regular file with an empty checksum header (no basis file, so the
//!   client sends all data as literal tokens) and streams the tokens to
//!   the quarantine.
//!
//! Incremental recursion is never offered (a real daemon also turns it off
//! for some option sets), so a file list always arrives whole. Events:
//! `command` (module requests, transfer arguments, each file), `auth.attempt`,
//! `payload` (uploads, with `stored`), `attack` (writes to startup paths,
//! `authorized_keys`, cron, traversal, escaping symlinks) and
//! `protocol.error` for anything the parsers reject.

pub mod transfer;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::{Buf, BytesMut};
use mirage_config::{RsyncConfig, RsyncModule};
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::rsync as proto;
use serde_json::{Map, Value, json};

use crate::quarantine::Quarantine;

/// Cap on each argument / name kept in an event.
pub const FIELD_CAP: usize = 512;
/// Cap on a `raw` command line in an event.
pub const RAW_CAP: usize = 4096;
/// Bytes of an upload kept inline in its `payload` event.
pub const PAYLOAD_INLINE: usize = 4096;

/// One file or directory of a virtual module.
#[derive(Debug, Clone)]
pub struct VirtualEntry {
    /// Path inside the module (`.` is the module root).
    pub path: String,
    /// Directory.
    pub dir: bool,
    /// Mode with type bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: i64,
    /// Content (files).
    pub data: Arc<[u8]>,
}

impl VirtualEntry {
    /// The size rsync reports (4096 for directories).
    pub fn len(&self) -> u64 {
        if self.dir {
            4096
        } else {
            self.data.len() as u64
        }
    }
    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A module with its file tree.
#[derive(Debug, Clone)]
pub struct VirtualModule {
    /// Its configuration.
    pub cfg: RsyncModule,
    /// Every entry, `.` first, then in path order.
    pub entries: Vec<VirtualEntry>,
}

impl VirtualModule {
    fn new(cfg: RsyncModule) -> Self {
        let mut entries: Vec<VirtualEntry> = Vec::new();
        let newest = cfg
            .files
            .iter()
            .map(|f| f.mtime)
            .max()
            .unwrap_or(1_732_093_200);
        let dir = |path: &str, entries: &mut Vec<VirtualEntry>| {
            if !entries.iter().any(|e| e.path == path) {
                entries.push(VirtualEntry {
                    path: path.to_owned(),
                    dir: true,
                    mode: proto::mode::IFDIR | 0o755,
                    mtime: newest,
                    data: Arc::from(Vec::new()),
                });
            }
        };
        dir(".", &mut entries);
        for f in &cfg.files {
            let mut prefix = String::new();
            let parts: Vec<&str> = f.path.split('/').collect();
            for p in &parts[..parts.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(p);
                dir(&prefix, &mut entries);
            }
            let data: Vec<u8> = if f.content.is_empty() {
                filler(&f.path, f.size)
            } else {
                f.content.as_bytes().to_vec()
            };
            entries.retain(|e| e.path != f.path);
            entries.push(VirtualEntry {
                path: f.path.clone(),
                dir: false,
                mode: proto::mode::IFREG | (f.mode & 0o7777),
                mtime: f.mtime,
                data: Arc::from(data),
            });
        }
        VirtualModule { cfg, entries }
    }

    /// The entry at `path` (no leading or trailing slash; `.` for the root).
    pub fn get(&self, path: &str) -> Option<&VirtualEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Entries directly inside directory `dir` (`recursive`: at any depth).
    pub fn children(&self, dir: &str, recursive: bool) -> Vec<&VirtualEntry> {
        self.entries
            .iter()
            .filter(|e| e.path != ".")
            .filter(|e| {
                let rest = if dir == "." {
                    Some(e.path.as_str())
                } else {
                    e.path.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
                };
                rest.is_some_and(|r| recursive || !r.contains('/'))
            })
            .collect()
    }
}

/// Bytes that look like compressed data, the same for the same path and
/// size (so a file downloaded twice is identical).
fn filler(path: &str, size: u64) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in path.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::with_capacity(size as usize);
    if size >= 2 {
        // gzip magic for .gz names, so `file` says what the name promises.
        if path.ends_with(".gz") {
            out.extend_from_slice(&[0x1f, 0x8b, 0x08, 0x00]);
        }
    }
    while (out.len() as u64) < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size as usize);
    out
}

/// The daemon-auth digests, by rsync name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDigest {
    /// MD4 (protocols before 30).
    Md4,
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl AuthDigest {
    /// From an rsync digest name.
    pub fn from_name(n: &str) -> Option<Self> {
        Some(match n {
            "md4" => AuthDigest::Md4,
            "md5" => AuthDigest::Md5,
            "sha1" => AuthDigest::Sha1,
            "sha256" => AuthDigest::Sha256,
            "sha512" => AuthDigest::Sha512,
            _ => return None,
        })
    }
    /// The rsync name.
    pub fn name(self) -> &'static str {
        match self {
            AuthDigest::Md4 => "md4",
            AuthDigest::Md5 => "md5",
            AuthDigest::Sha1 => "sha1",
            AuthDigest::Sha256 => "sha256",
            AuthDigest::Sha512 => "sha512",
        }
    }
    /// Digest length in bytes (also the challenge's raw length).
    pub fn digest_len(self) -> usize {
        match self {
            AuthDigest::Md4 | AuthDigest::Md5 => 16,
            AuthDigest::Sha1 => 20,
            AuthDigest::Sha256 => 32,
            AuthDigest::Sha512 => 64,
        }
    }
    /// Digest of the concatenated parts.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        use sha2::Digest;
        fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            AuthDigest::Md4 => run::<md4::Md4>(parts),
            AuthDigest::Md5 => run::<md5::Md5>(parts),
            AuthDigest::Sha1 => run::<sha1::Sha1>(parts),
            AuthDigest::Sha256 => run::<sha2::Sha256>(parts),
            AuthDigest::Sha512 => {
                let mut d = sha2::Sha512::new();
                for p in parts {
                    d.update(p);
                }
                d.finalize().to_vec()
            }
        }
    }
    /// The response a client with `password` sends for `challenge`.
    pub fn response(self, password: &[u8], challenge: &[u8]) -> String {
        b64(&self.hash(&[password, challenge]))
    }
}

/// rsync's base64: standard alphabet, no padding.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(data)
}

/// The rsync emulator.
pub struct RsyncEmulator {
    cfg: RsyncConfig,
    modules: Vec<VirtualModule>,
    quarantine: Arc<Quarantine>,
}

impl RsyncEmulator {
    /// Build from configuration; uploads go to `quarantine`.
    pub fn new(cfg: RsyncConfig, quarantine: Arc<Quarantine>) -> Self {
        let modules = cfg
            .modules
            .iter()
            .cloned()
            .map(VirtualModule::new)
            .collect();
        RsyncEmulator {
            cfg,
            modules,
            quarantine,
        }
    }

    /// The greeting line (with newline).
    pub fn greeting(&self) -> String {
        format!(
            "@RSYNCD: {}.0 {}\n",
            self.cfg.protocol,
            self.cfg
                .auth_digests
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    /// The module listing a client gets for an empty module name.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        for m in self.modules.iter().filter(|m| m.cfg.list) {
            s.push_str(&format!("{:<15}\t{}\n", m.cfg.name, m.cfg.comment));
        }
        s.push_str("@RSYNCD: EXIT\n");
        s
    }
}

/// Why a session stops inside the emulator.
pub(crate) enum Stop {
    /// The session ended (closed, timeout, budget).
    End(SessionEnd),
    /// The client broke the protocol: the message and the offending bytes.
    Proto(String, Vec<u8>),
}

impl From<SessionEnd> for Stop {
    fn from(e: SessionEnd) -> Self {
        Stop::End(e)
    }
}

/// The socket side: raw bytes, demultiplexed data, queued output.
pub(crate) struct Wire<'s> {
    pub(crate) session: &'s mut Session,
    raw: BytesMut,
    data: BytesMut,
    mux_in: bool,
    mux_out: bool,
    out: Vec<u8>,
    /// Text of `MSG_INFO`/`MSG_ERROR` frames the client sent (capped).
    pub(crate) client_msgs: Vec<String>,
}

impl<'s> Wire<'s> {
    fn new(session: &'s mut Session) -> Self {
        Wire {
            session,
            raw: BytesMut::new(),
            data: BytesMut::new(),
            mux_in: false,
            mux_out: false,
            out: Vec::new(),
            client_msgs: Vec::new(),
        }
    }

    /// Queue protocol data (multiplexed as `MSG_DATA` once that is on).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        if self.mux_out {
            proto::put_frames(&mut self.out, proto::msg::DATA, bytes);
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Queue a message the client prints (`MSG_INFO`, `MSG_ERROR`).
    pub(crate) fn message(&mut self, tag: u8, text: &str) {
        proto::put_frames(&mut self.out, tag, text.as_bytes());
    }

    pub(crate) async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.session.write_all(&out).await
    }

    /// Turn multiplexing on in both directions.
    pub(crate) fn start_mux(&mut self) {
        self.mux_out = true;
        if !self.mux_in {
            self.mux_in = true;
            // Bytes already moved to `data` are frames now.
            let mut raw = std::mem::take(&mut self.data);
            raw.extend_from_slice(&self.raw);
            self.raw = raw;
        }
    }

    /// Make more data available: demultiplex buffered frames, else read.
    async fn more(&mut self) -> Result<(), Stop> {
        loop {
            if self.mux_in {
                let mut grew = false;
                loop {
                    match proto::next_frame(&self.raw, proto::MAX_FRAME) {
                        Ok(Some(f)) => {
                            let payload = &self.raw[4..4 + f.len];
                            match f.tag {
                                proto::msg::DATA => {
                                    self.data.extend_from_slice(payload);
                                    grew = true;
                                }
                                proto::msg::NOOP => {}
                                _ => {
                                    if self.client_msgs.len() < 32 {
                                        let t = String::from_utf8_lossy(
                                            &payload[..payload.len().min(FIELD_CAP)],
                                        )
                                        .into_owned();
                                        self.client_msgs.push(t);
                                    }
                                }
                            }
                            self.raw.advance(4 + f.len);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let head = self.raw[..self.raw.len().min(256)].to_vec();
                            return Err(Stop::Proto(format!("multiplexed input: {e}"), head));
                        }
                    }
                }
                if grew {
                    return Ok(());
                }
            } else if !self.raw.is_empty() {
                let raw = std::mem::take(&mut self.raw);
                self.data.extend_from_slice(&raw);
                return Ok(());
            }
            self.flush().await?;
            self.session.read_some(&mut self.raw).await?;
        }
    }

    /// Decode from the data stream with `f`, reading until it has enough.
    pub(crate) async fn decode<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, proto::Error>,
    ) -> Result<T, Stop> {
        loop {
            match f(&self.data) {
                Ok(Some((t, used))) => {
                    self.data.advance(used);
                    return Ok(t);
                }
                Ok(None) => self.more().await?,
                Err(e) => {
                    let head = self.data[..self.data.len().min(256)].to_vec();
                    return Err(Stop::Proto(format!("{what}: {e}"), head));
                }
            }
        }
    }

    /// Up to `max` data bytes (at least one), reading if none are buffered.
    pub(crate) async fn take_some(&mut self, max: usize) -> Result<bytes::Bytes, Stop> {
        while self.data.is_empty() {
            self.more().await?;
        }
        let n = self.data.len().min(max);
        Ok(self.data.split_to(n).freeze())
    }

    /// Decode with a [`proto::Cursor`] function (all-or-nothing).
    pub(crate) async fn read<T>(
        &mut self,
        what: &str,
        f: impl Fn(&mut proto::Cursor<'_>) -> Result<T, proto::Error>,
    ) -> Result<T, Stop> {
        self.decode(what, |buf| {
            let mut c = proto::Cursor::new(buf);
            match f(&mut c) {
                Ok(t) => Ok(Some((t, c.pos()))),
                Err(proto::Error::Incomplete) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// One handshake line from the raw stream.
    async fn line(&mut self) -> Result<Vec<u8>, Stop> {
        loop {
            match proto::take_line(&self.raw, proto::MAX_LINE) {
                Ok(Some((line, used))) => {
                    let l = line.to_vec();
                    self.raw.advance(used);
                    return Ok(l);
                }
                Ok(None) => {}
                Err(e) => {
                    let head = self.raw[..self.raw.len().min(256)].to_vec();
                    return Err(Stop::Proto(e.to_string(), head));
                }
            }
            self.flush().await?;
            self.session.read_some(&mut self.raw).await?;
        }
    }

    /// The client's arguments from the raw stream.
    async fn args(&mut self, nul: bool) -> Result<Vec<Vec<u8>>, Stop> {
        loop {
            match proto::take_args(&self.raw, nul) {
                Ok(Some((args, used))) => {
                    self.raw.advance(used);
                    return Ok(args);
                }
                Ok(None) => {}
                Err(e) => {
                    let head = self.raw[..self.raw.len().min(256)].to_vec();
                    return Err(Stop::Proto(format!("arguments: {e}"), head));
                }
            }
            self.flush().await?;
            self.session.read_some(&mut self.raw).await?;
        }
    }
}

pub(crate) fn text(b: &[u8]) -> BytesText {
    BytesText::capped(b, FIELD_CAP).0
}

/// Emit a `command` event.
pub(crate) async fn command(session: &Session, name: &str, args: &[&[u8]], error: bool) {
    let mut truncated = false;
    let args: Vec<BytesText> = args
        .iter()
        .map(|a| {
            let (t, cut) = BytesText::capped(a, FIELD_CAP);
            truncated |= cut;
            t
        })
        .collect();
    let joined = args
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let (raw, cut) = BytesText::capped(joined.as_bytes(), RAW_CAP);
    session
        .emit(EventKind::Command {
            command: name.into(),
            args,
            raw,
            truncated: truncated || cut,
            error,
            details: Default::default(),
        })
        .await;
}

pub(crate) async fn protocol_error(session: &Session, error: String, data: &[u8]) {
    session
        .emit(EventKind::ProtocolError {
            error,
            data: PayloadData::new(data, 256),
        })
        .await;
}

pub(crate) async fn attack(
    session: &Session,
    technique: &str,
    summary: String,
    evidence: Map<String, Value>,
) {
    session
        .emit(EventKind::Attack {
            technique: technique.into(),
            summary,
            evidence,
        })
        .await;
}

#[async_trait]
impl Emulator for RsyncEmulator {
    fn service(&self) -> &str {
        "rsync"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let mut w = Wire::new(session);
        match self.run(&mut w).await {
            Ok(()) => {
                let _ = w.flush().await;
                Ok(())
            }
            Err(Stop::End(e)) => {
                let _ = w.flush().await;
                Err(e)
            }
            Err(Stop::Proto(msg, data)) => {
                let _ = w.flush().await;
                protocol_error(w.session, msg, &data).await;
                Err(SessionEnd::ProtocolError)
            }
        }
    }
}

impl RsyncEmulator {
    async fn run(&self, w: &mut Wire<'_>) -> Result<(), Stop> {
        let mut hello = self.greeting();
        if !self.cfg.motd.is_empty() {
            hello.push_str(&self.cfg.motd);
            if !self.cfg.motd.ends_with('\n') {
                hello.push('\n');
            }
            hello.push('\n');
        }
        w.send(hello.as_bytes());
        let line = w.line().await?;
        let greeting = match proto::parse_greeting(&line) {
            Ok(g) => g,
            Err(e) => {
                w.send(b"@ERROR: protocol startup error\n");
                return Err(Stop::Proto(format!("greeting: {e}"), line));
            }
        };
        if greeting.protocol > 31 && greeting.digests.is_empty() {
            let msg = format!(
                "@ERROR: your client omitted the digest name list: {}\n",
                String::from_utf8_lossy(&line)
            );
            w.send(msg.as_bytes());
            return Err(Stop::Proto("greeting without digest list".into(), line));
        }
        let protocol = greeting.protocol.min(self.cfg.protocol);
        let request = w.line().await?;
        if request.is_empty() || request == b"#list" {
            command(w.session, "list", &[&request], false).await;
            w.send(self.listing().as_bytes());
            return Ok(());
        }
        if request.starts_with(b"#") {
            command(w.session, "unknown", &[&request], true).await;
            let msg = format!(
                "@ERROR: Unknown command '{}'\n",
                String::from_utf8_lossy(&request)
            );
            w.send(msg.as_bytes());
            return Ok(());
        }
        let Some(module) = self
            .modules
            .iter()
            .find(|m| m.cfg.name.as_bytes() == request.as_slice())
        else {
            command(w.session, "module", &[&request], true).await;
            let msg = format!(
                "@ERROR: Unknown module '{}'\n",
                String::from_utf8_lossy(&request)
            );
            w.send(msg.as_bytes());
            return Ok(());
        };
        command(w.session, "module", &[&request], false).await;
        let mut auth_user: Option<Vec<u8>> = None;
        if module.cfg.auth {
            match self.authenticate(w, module, &greeting, protocol).await? {
                Some(user) => auth_user = Some(user),
                None => {
                    let msg = format!("@ERROR: auth failed on module {}\n", module.cfg.name);
                    w.send(msg.as_bytes());
                    return Ok(());
                }
            }
        }
        w.send(b"@RSYNCD: OK\n");
        let args = w.args(protocol >= 30).await?;
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        command(w.session, "rsync", &refs, false).await;
        if protocol < 30 {
            return Err(Stop::Proto(
                format!("protocol {protocol} transfers are not emulated"),
                Vec::new(),
            ));
        }
        let ctx = transfer::Context {
            module,
            protocol,
            max_file_list: self.cfg.max_file_list as usize,
            quarantine: &self.quarantine,
            user: auth_user,
        };
        transfer::run(w, &ctx, &args).await
    }

    /// The challenge-response login. `Some(user)` when accepted.
    async fn authenticate(
        &self,
        w: &mut Wire<'_>,
        module: &VirtualModule,
        greeting: &proto::Greeting,
        protocol: u32,
    ) -> Result<Option<Vec<u8>>, Stop> {
        // The daemon's most preferred digest that the client offered;
        // without a list, md5 from protocol 30 and md4 before.
        let digest = if greeting.digests.is_empty() {
            Some(if protocol >= 30 {
                AuthDigest::Md5
            } else {
                AuthDigest::Md4
            })
        } else {
            self.cfg
                .auth_digests
                .split_whitespace()
                .find(|d| greeting.digests.iter().any(|c| c == d))
                .and_then(AuthDigest::from_name)
        };
        let Some(digest) = digest else {
            let msg = format!(
                "@ERROR: your client does not support one of our daemon-auth checksums: {}\n",
                self.cfg.auth_digests
            );
            w.send(msg.as_bytes());
            return Err(Stop::Proto(
                "no common daemon-auth digest".into(),
                greeting.digests.join(" ").into_bytes(),
            ));
        };
        let mut raw = vec![0u8; digest.digest_len()];
        if getrandom::fill(&mut raw).is_err() {
            // Never expected; a time-derived challenge still works.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            raw = digest.hash(&[&t.to_le_bytes()]);
        }
        let challenge = b64(&raw);
        w.send(format!("@RSYNCD: AUTHREQD {challenge}\n").as_bytes());
        let line = w.line().await?;
        let (user, response) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (&line[..], &b""[..]),
        };
        let ok = module.cfg.accept.iter().any(|c| {
            c.user.as_bytes() == user
                && digest
                    .response(c.password.as_bytes(), challenge.as_bytes())
                    .as_bytes()
                    == response
        });
        let mut details = Map::new();
        details.insert("module".into(), json!(module.cfg.name));
        details.insert("digest".into(), json!(digest.name()));
        details.insert("challenge".into(), json!(challenge));
        details.insert("response".into(), json!(text(response).0));
        if !line.contains(&b' ') {
            details.insert("malformed".into(), json!(true));
        }
        w.session
            .emit(EventKind::AuthAttempt {
                method: "challenge-response".into(),
                username: Some(text(user)),
                password: None,
                key_fingerprint: None,
                result: if ok {
                    AuthResult::Success
                } else {
                    AuthResult::Failure
                },
                details,
            })
            .await;
        Ok(ok.then(|| user.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_response_matches_rsync() {
        // rsync's generate_hash: base64 (no padding) of digest(password +
        // challenge); md5 of "pw" + "abc".
        let r = AuthDigest::Md5.response(b"pw", b"abc");
        assert_eq!(r.len(), 22);
        assert!(!r.ends_with('='));
        assert_eq!(AuthDigest::Sha512.response(b"a", b"b").len(), 86);
    }

    #[test]
    fn virtual_tree_implies_directories() {
        let m = VirtualModule::new(mirage_config::RsyncConfig::default().modules[0].clone());
        let names: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(names.contains(&"db") && names.contains(&"etc") && names.contains(&"."));
        assert_eq!(m.children(".", false).len(), 3);
        assert_eq!(m.get("db/shop-2024-11-19.sql.gz").unwrap().len(), 48213);
        let a = filler("x.gz", 100);
        assert_eq!(a, filler("x.gz", 100));
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
    }
}
