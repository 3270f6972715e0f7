//! SSH honeypot: a Debian 12 OpenSSH look-alike built on `russh`.
//!
//! - [`hassh`]: the client's version line and KEXINIT, read before russh
//!   sees them, for the client version and the HASSH fingerprint.
//! - [`keys`]: host keys generated once and kept under the data dir.
//! - [`scp`]: the receiving side of `scp -t`.
//! - [`sftp`]: the `sftp` subsystem (sftp, and scp in its default SFTP
//!   mode).
//!
//! The version line is sent at once, as sshd does, but russh (its task,
//! pipe and buffers) starts only when the client's first bytes arrive, so
//! a connection that never speaks costs little more than its session.
//!
//! The harness's [`Session`] stays the only owner of the socket: russh runs
//! over one end of an in-memory duplex pipe and [`SshEmulator::serve`]
//! pumps bytes between the pipe and the session, so the harness's byte
//! budget, timeouts and shutdown apply as for every other emulator. russh's
//! event loop is polled by the pump in the session's own task (the
//! vendored russh's `run_stream_inline`), not spawned, so nothing crosses
//! tasks between the socket and russh. Events
//! the russh handler produces travel over a channel to the pump, which
//! emits them with the session's envelope.
//!
//! Every password and public-key attempt is an `auth.attempt` (with the
//! client version and HASSH in `details`); the login policy (listed
//! credentials, or any after N failures from a source) decides. After
//! login, `exec` and the pty shell share one [`Shell`] per connection;
//! files the attacker writes (shell redirections, scp and sftp uploads) go to
//! the quarantine; direct-tcpip and tcpip-forward requests are recorded
//! and refused; the terminal is recorded as asciicast v2.

pub mod gex;
pub mod hassh;
pub mod keys;
pub mod scp;
pub mod sftp;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_config::SshConfig;
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_net::{Emulator, Session, SessionEnd};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session as RSession};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Preferred};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use self::hassh::{ClientHello, HelloPeek, Peek};
use self::scp::ScpSink;
use self::sftp::SftpServer;
use crate::quarantine::Quarantine;
use crate::shell::line::LineEditor;
use crate::shell::record::Recorder;
use crate::shell::report::{Report, effect_events, payload};
use crate::shell::{Flavor, Profile, Shell};

/// Cap on user names and passwords kept in events.
pub const FIELD_CAP: usize = 256;
/// Most sources remembered by the login policy before it forgets them all.
const MAX_SOURCES: usize = 65_536;
/// Bytes of the pipe between the pump and russh.
const PIPE_BYTES: usize = 64 * 1024;

/// Lock a mutex, recovering from poisoning.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who gets in: listed credentials, or anyone after N failures from a source.
pub struct LoginPolicy {
    accept: Vec<(String, String)>,
    after: u32,
    failures: Mutex<HashMap<IpAddr, u32>>,
    /// Credentials let in by `after`, so the same pair works again.
    granted: Mutex<HashSet<(IpAddr, String, String)>>,
}

impl LoginPolicy {
    /// A policy from the configured pairs and failure count (0 = never).
    pub fn new(accept: Vec<(String, String)>, after: u32) -> LoginPolicy {
        LoginPolicy {
            accept,
            after,
            failures: Mutex::new(HashMap::new()),
            granted: Mutex::new(HashSet::new()),
        }
    }

    /// Decide one attempt from `ip`.
    pub fn check(&self, ip: IpAddr, user: &str, password: &str) -> bool {
        if self.accept.iter().any(|(u, p)| u == user && p == password) {
            return true;
        }
        if self.after == 0 {
            return false;
        }
        let key = (ip, user.to_owned(), password.to_owned());
        if lock(&self.granted).contains(&key) {
            return true;
        }
        let mut f = lock(&self.failures);
        if f.len() >= MAX_SOURCES && !f.contains_key(&ip) {
            f.clear();
        }
        let n = f.entry(ip).or_insert(0);
        if *n >= self.after {
            f.remove(&ip);
            let mut g = lock(&self.granted);
            if g.len() >= MAX_SOURCES {
                g.clear();
            }
            g.insert(key);
            return true;
        }
        *n += 1;
        false
    }
}

/// State shared by every connection.
struct Shared {
    cfg: SshConfig,
    russh: Arc<russh::server::Config>,
    data_dir: PathBuf,
    quarantine: Arc<Quarantine>,
    policy: LoginPolicy,
    /// Primes for diffie-hellman-group-exchange, read once at start.
    moduli: gex::Moduli,
}

/// The SSH emulator.
pub struct SshEmulator {
    shared: Arc<Shared>,
}

/// The algorithm lists russh can offer out of the configured ones, and the
/// configured names it does not know (typos, or algorithms from a newer
/// OpenSSH). Debian 12's defaults are all known: the vendored russh adds
/// sntrup761 and UMAC (vendor/russh/PATCH.md).
pub fn preferred(cfg: &SshConfig) -> (Preferred, Vec<String>) {
    let mut skipped = Vec::new();
    let mut kex = Vec::new();
    for n in &cfg.kex_algorithms {
        match russh::kex::Name::try_from(n.as_str()) {
            Ok(k) => kex.push(k),
            Err(()) => skipped.push(n.clone()),
        }
    }
    // Debian's 9.2p1-2+deb12u2 and later announce strict key exchange (the
    // Terrapin fix); russh implements it when the marker is in the list.
    kex.push(russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER);
    let mut key = Vec::new();
    for n in &cfg.host_key_algorithms {
        match russh::keys::Algorithm::new(n) {
            Ok(a) => key.push(a),
            Err(_) => skipped.push(n.clone()),
        }
    }
    let mut cipher = Vec::new();
    for n in &cfg.ciphers {
        match russh::cipher::Name::try_from(n.as_str()) {
            Ok(c) => cipher.push(c),
            Err(()) => skipped.push(n.clone()),
        }
    }
    let mut mac = Vec::new();
    for n in &cfg.macs {
        match russh::mac::Name::try_from(n.as_str()) {
            Ok(m) => mac.push(m),
            Err(()) => skipped.push(n.clone()),
        }
    }
    let compression: Vec<russh::compression::Name> = ["none", "zlib@openssh.com"]
        .iter()
        .filter_map(|n| russh::compression::Name::try_from(*n).ok())
        .collect();
    (
        Preferred {
            kex: kex.into(),
            key: key.into(),
            host_key_certificates: Vec::new().into(),
            cipher: cipher.into(),
            mac: mac.into(),
            compression: compression.into(),
        },
        skipped,
    )
}

impl SshEmulator {
    /// Build from configuration: load (or generate once) the host keys under
    /// `data_dir/ssh/`.
    pub fn new(
        cfg: SshConfig,
        data_dir: &std::path::Path,
        quarantine: Arc<Quarantine>,
    ) -> anyhow::Result<SshEmulator> {
        let keys = keys::load_or_generate(data_dir)?;
        let (preferred, skipped) = preferred(&cfg);
        if !skipped.is_empty() {
            tracing::info!(algorithms = ?skipped, "SSH algorithms not offered (unknown names)");
        }
        if preferred.kex.is_empty()
            || preferred.cipher.is_empty()
            || preferred.mac.is_empty()
            || preferred.key.is_empty()
        {
            anyhow::bail!("services.ssh: no configured algorithm of some kind is implemented");
        }
        let delay = Duration::from_millis(cfg.failed_auth_delay_ms);
        let russh = russh::server::Config {
            server_id: russh::SshId::Standard(cfg.banner.clone().into()),
            methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
            auth_rejection_time: delay,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys,
            preferred,
            // Enforced by the handler, as sshd counts (see `Conn::failed`).
            max_auth_attempts: 0,
            // The harness owns timeouts.
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        let policy = LoginPolicy::new(
            cfg.accept
                .iter()
                .map(|c| (c.user.clone(), c.password.clone()))
                .collect(),
            cfg.accept_after_failures,
        );
        let moduli = gex::Moduli::load(&cfg.moduli_file);
        Ok(SshEmulator {
            shared: Arc::new(Shared {
                moduli,
                cfg,
                russh: Arc::new(russh),
                data_dir: data_dir.to_owned(),
                quarantine,
                policy,
            }),
        })
    }
}

#[async_trait]
impl Emulator for SshEmulator {
    fn service(&self) -> &str {
        "ssh"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        // sshd speaks first, and so do we; russh (its task, pipe, buffers
        // and key-exchange state: tens of KiB) starts only once the client
        // has said something, so a scanner that connects and waits costs
        // no more than its session. The first bytes are given back for the
        // pump below to pass on, and russh's own copy of the version line
        // is dropped from its output.
        let id_line = format!("{}\r\n", self.shared.cfg.banner);
        session.write_all(id_line.as_bytes()).await?;
        let mut first = BytesMut::new();
        session.read_some(&mut first).await?;
        session.unread(first);
        // Boxed: inline, the pump's state (its select over three futures)
        // would be allocated with this future, before the client spoke.
        Box::pin(self.pump(session, SentPrefix::new(id_line.into_bytes()))).await
    }
}

impl SshEmulator {
    /// Run russh for `session` (whose first bytes were given back) and
    /// pump bytes and events between the two until either side ends.
    async fn pump(&self, session: &mut Session, mut sent_id: SentPrefix) -> Result<(), SessionEnd> {
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let handle = Arc::new(std::sync::OnceLock::new());
        let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
        let hello: Arc<Mutex<Option<ClientHello>>> = Arc::new(Mutex::new(None));
        let handler = Conn {
            shared: self.shared.clone(),
            tx: tx.clone(),
            hello: hello.clone(),
            peer: session.peer().ip(),
            session_id: session.id().to_string(),
            user: String::new(),
            shell: None,
            channels: HashMap::new(),
            recorder: None,
            failures: 0,
            handle: handle.clone(),
        };
        let config = self.shared.russh.clone();
        // russh's event loop runs in this task, polled by the selects
        // below, not spawned: bytes and events then never cross tasks or
        // threads between the socket and russh, which was most of the CPU
        // an attempt cost under load (docs/benchmarks.md, SSH).
        let russh = async move {
            let (running, run) = russh::server::run_stream_inline(config, theirs, handler).await?;
            let _ = handle.set(running);
            run.await
        };
        let mut russh = std::pin::pin!(russh);
        let mut russh_end: Option<Result<(), russh::Error>> = None;
        drop(tx);
        let (mut rd, mut wr) = tokio::io::split(ours);
        // Neither buffer is held while its side is quiet: the input is
        // dropped once russh has taken it (the session grows it again only
        // when bytes are there) and russh's output is read into an
        // exact-size chunk ([`read_chunk`]). An idle session after key
        // exchange keeps russh's state and nothing of ours.
        let mut inbuf = BytesMut::new();
        // What the socket gave and russh has yet to take.
        let mut pending = BytesMut::new();
        let mut peek = HelloPeek::default();
        let mut events_open = true;
        let end: Option<SessionEnd> = loop {
            tokio::select! {
                r = &mut russh, if russh_end.is_none() => russh_end = Some(r),
                // The socket is read only once russh has taken the last
                // read: with russh in this task, a blocking write into the
                // pipe here would stop it from ever draining the pipe.
                r = session.read_some(&mut inbuf), if pending.is_empty() => match r {
                    Ok(_) => {
                        if !peek.finished() {
                            match peek.feed(&inbuf) {
                                Peek::More => {}
                                Peek::Done(h) => *lock(&hello) = Some(h),
                                Peek::Invalid(why) => {
                                    session.emit(EventKind::ProtocolError {
                                        error: why.into(),
                                        data: PayloadData::new(&inbuf, 256),
                                    }).await;
                                }
                            }
                        }
                        pending = std::mem::take(&mut inbuf);
                    }
                    Err(e) => break Some(e),
                },
                w = wr.write(&pending), if !pending.is_empty() => match w {
                    Ok(n) if n > 0 => {
                        let _ = pending.split_to(n);
                        if pending.is_empty() {
                            pending = BytesMut::new();
                        }
                    }
                    _ => break None,
                },
                out = read_chunk(&mut rd) => match out {
                    Ok(out) if !out.is_empty() => session.write_all(sent_id.strip(&out)).await?,
                    _ => break None,
                },
                ev = rx.recv(), if events_open => match ev {
                    Some((kind, tags)) => {
                        emit_report(session, kind, tags).await;
                    }
                    None => events_open = false,
                },
            }
        };
        // Let russh see the end of input, then flush what it still says and
        // report what its handler still has.
        drop(wr);
        let finish = async {
            loop {
                tokio::select! {
                    r = &mut russh, if russh_end.is_none() => russh_end = Some(r),
                    out = read_chunk(&mut rd) => match out {
                        Ok(out) if !out.is_empty() => if end.is_none() && session.write_all(sent_id.strip(&out)).await.is_err() { break },
                        _ => break,
                    },
                    ev = rx.recv(), if events_open => match ev {
                        Some((kind, tags)) => {
                            emit_report(session, kind, tags).await;
                        }
                        None => events_open = false,
                    },
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), finish).await;
        drop(rd);
        if russh_end.is_none() {
            russh_end = tokio::time::timeout(Duration::from_secs(2), &mut russh)
                .await
                .ok();
        }
        while let Ok((kind, tags)) = rx.try_recv() {
            emit_report(session, kind, tags).await;
        }
        if let Some(Err(e)) = russh_end
            && !benign(&e)
        {
            session
                .emit(EventKind::ProtocolError {
                    error: e.to_string(),
                    data: PayloadData::new(b"", 0),
                })
                .await;
            if end.is_none() {
                return Err(SessionEnd::ProtocolError);
            }
        }
        match end {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Emit a report of the russh handler with the session's envelope.
async fn emit_report(session: &Session, kind: EventKind, tags: Vec<String>) {
    let mut e = session.event(kind);
    e.tags = tags;
    session.emit_event(e).await;
}

/// The next bytes russh wrote (empty at its end), in a buffer of their
/// size: the 16 KiB read area lives on the stack for the poll only, so a
/// session waiting on a quiet russh holds no output buffer.
fn read_chunk<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
) -> impl std::future::Future<Output = std::io::Result<Vec<u8>>> + '_ {
    std::future::poll_fn(move |cx| {
        let mut area = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
        let mut rb = tokio::io::ReadBuf::uninit(&mut area);
        std::pin::Pin::new(&mut *rd)
            .poll_read(cx, &mut rb)
            .map_ok(|()| rb.filled().to_vec())
    })
}

/// Output already sent on russh's behalf (its version line): removed once
/// from the start of what russh writes.
struct SentPrefix {
    bytes: Vec<u8>,
    matched: usize,
}

impl SentPrefix {
    fn new(bytes: Vec<u8>) -> SentPrefix {
        SentPrefix { bytes, matched: 0 }
    }

    /// `data` without the part of the prefix it repeats. russh always
    /// starts with exactly this line; should it not, its output passes
    /// through untouched.
    fn strip<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let left = &self.bytes[self.matched..];
        if left.is_empty() {
            return data;
        }
        let n = left.len().min(data.len());
        if data[..n] != left[..n] {
            self.matched = self.bytes.len();
            return data;
        }
        self.matched += n;
        &data[n..]
    }
}

/// A refusal that keeps offering both methods, as sshd does (russh would
/// otherwise drop the method just refused from the list it sends).
fn refuse() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(
            &[MethodKind::PublicKey, MethodKind::Password][..],
        )),
        partial_success: false,
    }
}

/// Errors that are a client going away, not a protocol violation.
fn benign(e: &russh::Error) -> bool {
    matches!(
        e,
        russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::IO(_)
            | russh::Error::ConnectionTimeout
            | russh::Error::InactivityTimeout
            | russh::Error::KeepaliveTimeout
            | russh::Error::SendError
    )
}

/// What a channel is doing.
enum Mode {
    /// Opened, nothing requested yet.
    Idle,
    /// An interactive shell.
    Shell,
    /// `scp -t`: receiving files into `dir`.
    Scp { sink: ScpSink, dir: String },
    /// The `sftp` subsystem.
    Sftp(Box<SftpServer>),
    /// Finished (exec done); input ignored.
    Closed,
}

struct Chan {
    pty: bool,
    editor: LineEditor,
    mode: Mode,
}

/// One connection's russh handler.
struct Conn {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Report>,
    hello: Arc<Mutex<Option<ClientHello>>>,
    peer: IpAddr,
    session_id: String,
    user: String,
    shell: Option<Shell>,
    channels: HashMap<ChannelId, Chan>,
    recorder: Option<Recorder>,
    /// Failed password and public-key attempts so far ("none" is not one).
    failures: u32,
    /// russh's handle to this session, set once it runs: the way to send
    /// sshd's "Too many authentication failures".
    handle: Arc<std::sync::OnceLock<russh::server::Handle>>,
}

const MOTD: &str = "\nThe programs included with the Debian GNU/Linux system are free software;\n\
the exact distribution terms for each program are described in the\n\
individual files in /usr/share/doc/*/copyright.\n\n\
Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\npermitted by applicable law.\n";

/// `\n` -> `\r\n` for a terminal.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

impl Conn {
    fn report(&self, kind: EventKind, tags: Vec<String>) {
        let _ = self.tx.send((kind, tags));
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        if let Some(h) = lock(&self.hello).as_ref() {
            d.insert(
                "client_version".into(),
                Value::String(BytesText::capped(h.version.as_bytes(), FIELD_CAP).0.0),
            );
            d.insert("hassh".into(), Value::String(h.hassh()));
            d.insert(
                "hassh_algorithms".into(),
                Value::String(BytesText::capped(h.hassh_algorithms().as_bytes(), 4096).0.0),
            );
        }
        d
    }

    fn shell(&mut self) -> &mut Shell {
        let profile = Profile {
            hostname: self.shared.cfg.hostname.clone(),
            user: self.user.clone(),
            flavor: Flavor::Bash,
            client_ip: self.peer.to_string(),
        };
        self.shell.get_or_insert_with(|| Shell::new(profile, true))
    }

    fn record_out(&mut self, data: &[u8]) {
        if let Some(r) = self.recorder.as_mut() {
            r.output(data);
        }
    }

    fn record_in(&mut self, data: &[u8]) {
        if let Some(r) = self.recorder.as_mut() {
            r.input(data);
        }
    }

    fn effects(&mut self, effects: Vec<crate::shell::Effect>) {
        for e in effects {
            for (kind, tags) in effect_events(e, &self.shared.quarantine) {
                self.report(kind, tags);
            }
        }
    }

    fn send(&mut self, s: &mut RSession, ch: ChannelId, data: &[u8]) -> Result<(), russh::Error> {
        if data.is_empty() {
            return Ok(());
        }
        self.record_out(data);
        s.data(ch, bytes::Bytes::copy_from_slice(data))
    }

    fn finish_channel(
        &mut self,
        s: &mut RSession,
        ch: ChannelId,
        status: u32,
    ) -> Result<(), russh::Error> {
        s.exit_status_request(ch, status)?;
        s.eof(ch)?;
        s.close(ch)?;
        if let Some(c) = self.channels.get_mut(&ch) {
            c.mode = Mode::Closed;
        }
        if let Some(r) = self.recorder.as_mut() {
            r.flush();
        }
        Ok(())
    }

    fn on_lines(
        &mut self,
        s: &mut RSession,
        ch: ChannelId,
        input: &[u8],
    ) -> Result<(), russh::Error> {
        let Some(c) = self.channels.get_mut(&ch) else {
            return Ok(());
        };
        let pty = c.pty;
        let edited = c.editor.feed(input);
        if pty {
            self.send(s, ch, &edited.echo)?;
        }
        for line in edited.lines {
            let res = self.shell().run_line(&line);
            let out = if pty {
                crlf(&res.terminal)
            } else {
                res.terminal.clone()
            };
            self.send(s, ch, &out)?;
            self.effects(res.effects);
            if res.exit {
                if pty {
                    self.send(s, ch, b"logout\r\n")?;
                }
                let status = self.shell().status as u32;
                return self.finish_channel(s, ch, status);
            }
            if pty {
                let p = self.shell().prompt();
                self.send(s, ch, &p)?;
            }
        }
        if edited.eof {
            if pty {
                self.send(s, ch, b"logout\r\n")?;
            }
            return self.finish_channel(s, ch, 0);
        }
        Ok(())
    }

    fn on_scp(
        &mut self,
        s: &mut RSession,
        ch: ChannelId,
        input: &[u8],
    ) -> Result<(), russh::Error> {
        let Some(Chan {
            mode: Mode::Scp { sink, dir },
            ..
        }) = self.channels.get_mut(&ch)
        else {
            return Ok(());
        };
        let step = sink.feed(input);
        let dir = dir.clone();
        if !step.reply.is_empty() {
            s.data(ch, bytes::Bytes::copy_from_slice(&step.reply))?;
        }
        for f in step.files {
            let (kind, tags) = payload(&f.data, &self.shared.quarantine);
            let sha = match &kind {
                EventKind::Payload { data, .. } => data.sha256.clone(),
                _ => String::new(),
            };
            self.report(kind, tags);
            let name = if f.name.is_empty() {
                "unnamed".to_owned()
            } else {
                f.name.clone()
            };
            let target = if self.shell().fs.is_dir(&dir) {
                format!("{dir}/{name}")
            } else {
                dir.clone()
            };
            let sh = self.shell();
            let path = crate::shell::fs::Vfs::resolve(&sh.cwd, &target, &sh.home);
            let _ = sh.fs.write(&path, &f.data, false);
            let mut ev = Map::new();
            ev.insert("path".into(), Value::String(path.clone()));
            ev.insert("len".into(), Value::from(f.data.len()));
            ev.insert("sha256".into(), Value::String(sha));
            self.report(
                EventKind::Attack {
                    technique: "ssh.scp_upload".into(),
                    summary: format!("scp upload of {} bytes to {path}", f.data.len()),
                    evidence: ev,
                },
                Vec::new(),
            );
        }
        if step.finished {
            self.finish_channel(s, ch, 1)?;
        }
        Ok(())
    }

    fn on_sftp(
        &mut self,
        s: &mut RSession,
        ch: ChannelId,
        input: &[u8],
    ) -> Result<(), russh::Error> {
        let Some(Chan {
            mode: Mode::Sftp(server),
            ..
        }) = self.channels.get_mut(&ch)
        else {
            return Ok(());
        };
        let Some(shell) = self.shell.as_mut() else {
            return Ok(());
        };
        let step = server.feed(input, shell, &self.shared.quarantine);
        if !step.reply.is_empty() {
            s.data(ch, bytes::Bytes::from(step.reply))?;
        }
        for (kind, tags) in step.reports {
            self.report(kind, tags);
        }
        if step.end {
            self.end_sftp(ch);
            return self.finish_channel(s, ch, 1);
        }
        Ok(())
    }

    /// Keep the uploads of an sftp channel that ends with files open.
    fn end_sftp(&mut self, ch: ChannelId) {
        let reports = match (self.channels.get_mut(&ch), self.shell.as_mut()) {
            (
                Some(Chan {
                    mode: Mode::Sftp(server),
                    ..
                }),
                Some(shell),
            ) => server.finish(shell, &self.shared.quarantine),
            _ => Vec::new(),
        };
        for (kind, tags) in reports {
            self.report(kind, tags);
        }
    }
}

impl Conn {
    /// Count a failed attempt (already reported) and refuse it. As sshd
    /// with MaxAuthTries: the attempt that reaches the limit is still
    /// received and recorded, then the client is disconnected with sshd's
    /// words. (russh's own cap counts "none" and drops the request over
    /// the limit unread, so it is off: that request would go unrecorded.)
    fn failed(&mut self) -> Result<Auth, russh::Error> {
        self.failures += 1;
        let max = self.shared.cfg.max_auth_tries;
        if self.failures == max
            && let Some(h) = self.handle.get().cloned()
        {
            // Sent from a task of its own: the session loop reads this
            // channel only after the handler returns.
            tokio::spawn(async move {
                let _ = h
                    .disconnect(
                        russh::Disconnect::ProtocolError,
                        "Too many authentication failures".into(),
                        String::new(),
                    )
                    .await;
            });
        } else if self.failures > max {
            // Still talking past the limit (no handle yet, or the
            // disconnect not yet through): end it here.
            return Err(russh::Error::Disconnect);
        }
        Ok(refuse())
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn lookup_dh_gex_group(
        &mut self,
        p: &russh::client::GexParams,
    ) -> Result<Option<russh::kex::dh::groups::DhGroup>, Self::Error> {
        Ok(self.shared.moduli.choose(
            p.min_group_size(),
            p.preferred_group_size(),
            p.max_group_size(),
        ))
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let ok = self.shared.policy.check(self.peer, user, password);
        let mut details = self.details();
        if ok {
            self.user = user.to_owned();
            if self.shared.cfg.record_sessions {
                match Recorder::create(&self.shared.data_dir, &self.session_id, 80, 24, "xterm") {
                    Ok(r) => {
                        details.insert("recording".into(), Value::String(r.relative.clone()));
                        self.recorder = Some(r);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot create a session recording"),
                }
            }
        }
        self.report(
            EventKind::AuthAttempt {
                method: "password".into(),
                username: Some(BytesText::capped(user.as_bytes(), FIELD_CAP).0),
                password: Some(BytesText::capped(password.as_bytes(), FIELD_CAP).0),
                key_fingerprint: None,
                result: if ok {
                    AuthResult::Success
                } else {
                    AuthResult::Failure
                },
                details,
            },
            Vec::new(),
        );
        if ok { Ok(Auth::Accept) } else { self.failed() }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let mut details = self.details();
        details.insert(
            "key_algorithm".into(),
            Value::String(offer.algorithm.to_string()),
        );
        if let Ok(k) = offer.public_key.to_openssh() {
            details.insert("public_key".into(), Value::String(k));
        }
        self.report(
            EventKind::AuthAttempt {
                method: "publickey".into(),
                username: Some(BytesText::capped(user.as_bytes(), FIELD_CAP).0),
                password: None,
                key_fingerprint: Some(
                    offer
                        .public_key
                        .fingerprint(russh::keys::HashAlg::Sha256)
                        .to_string(),
                ),
                result: AuthResult::Failure,
                details,
            },
            Vec::new(),
        );
        self.failed()
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _s: &mut RSession,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= 10 {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(
            channel.id(),
            Chan {
                pty: false,
                editor: LineEditor::new(),
                mode: Mode::Idle,
            },
        );
        drop(channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        orig_addr: &str,
        orig_port: u32,
        reply: ChannelOpenHandle,
        _s: &mut RSession,
    ) -> Result<(), Self::Error> {
        drop(channel);
        self.report(
            EventKind::Attack {
                technique: "ssh.direct_tcpip".into(),
                summary: format!("port forwarding to {host}:{port} refused"),
                evidence: json!({"host": BytesText::capped(host.as_bytes(), FIELD_CAP).0 .0, "port": port,
                    "originator": BytesText::capped(orig_addr.as_bytes(), FIELD_CAP).0 .0, "originator_port": orig_port})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            },
            vec!["proxy".into()],
        );
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _s: &mut RSession,
    ) -> Result<bool, Self::Error> {
        self.report(
            EventKind::Attack {
                technique: "ssh.tcpip_forward".into(),
                summary: format!("remote forwarding of {address}:{port} refused"),
                evidence: json!({"address": BytesText::capped(address.as_bytes(), FIELD_CAP).0 .0, "port": *port})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            vec!["proxy".into()],
        );
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        ch: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        s: &mut RSession,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.channels.get_mut(&ch) {
            c.pty = true;
        }
        if let Some(r) = self.recorder.as_mut() {
            r.resize(cols, rows);
        }
        let _ = term;
        s.channel_success(ch)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        ch: ChannelId,
        _k: &str,
        _v: &str,
        s: &mut RSession,
    ) -> Result<(), Self::Error> {
        // sshd's default AcceptEnv is LANG LC_*; refusing all is also normal.
        s.channel_failure(ch)?;
        Ok(())
    }

    async fn shell_request(&mut self, ch: ChannelId, s: &mut RSession) -> Result<(), Self::Error> {
        let pty = match self.channels.get_mut(&ch) {
            Some(c) => {
                c.mode = Mode::Shell;
                c.editor.echo = c.pty;
                c.pty
            }
            None => return Ok(()),
        };
        s.channel_success(ch)?;
        if pty {
            let host = self.shared.cfg.hostname.clone();
            let mut banner = format!(
                "Linux {host} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64\n{MOTD}"
            );
            let last = chrono::Utc::now() - chrono::Duration::hours(31);
            banner.push_str(&format!(
                "Last login: {} from 10.0.0.5\n",
                last.format("%a %b %e %H:%M:%S %Y")
            ));
            let mut out = crlf(banner.as_bytes());
            out.extend_from_slice(&self.shell().prompt());
            self.send(s, ch, &out)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        ch: ChannelId,
        data: &[u8],
        s: &mut RSession,
    ) -> Result<(), Self::Error> {
        s.channel_success(ch)?;
        let text = String::from_utf8_lossy(data).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.first() == Some(&"scp")
            && words.iter().any(|w| w.starts_with('-') && w.contains('t'))
        {
            let dir = words
                .last()
                .filter(|w| !w.starts_with('-'))
                .map_or(".".to_owned(), |w| (*w).to_owned());
            let shell = self.shell();
            let dir = crate::shell::fs::Vfs::resolve(&shell.cwd, &dir, &shell.home);
            let raw = data.to_vec();
            let args = words[1..].iter().map(|w| w.as_bytes().to_vec()).collect();
            self.effects(vec![crate::shell::Effect::Command {
                name: "scp".into(),
                args,
                raw,
                error: false,
            }]);
            if let Some(c) = self.channels.get_mut(&ch) {
                c.mode = Mode::Scp {
                    sink: ScpSink::default(),
                    dir,
                };
            }
            s.data(ch, bytes::Bytes::from_static(ScpSink::READY))?;
            return Ok(());
        }
        self.record_in(data);
        self.record_in(b"\n");
        let sh = self.shell();
        sh.interactive = false;
        let res = sh.run_line(data);
        sh.interactive = true;
        let status = sh.status as u32;
        if !res.stdout.is_empty() {
            self.record_out(&res.stdout);
            s.data(ch, bytes::Bytes::from(res.stdout))?;
        }
        if !res.stderr.is_empty() {
            self.record_out(&res.stderr);
            s.extended_data(ch, 1, bytes::Bytes::from(res.stderr))?;
        }
        self.effects(res.effects);
        self.finish_channel(s, ch, status)
    }

    async fn subsystem_request(
        &mut self,
        ch: ChannelId,
        name: &str,
        s: &mut RSession,
    ) -> Result<(), Self::Error> {
        let sftp = name == "sftp" && self.channels.contains_key(&ch);
        self.report(
            EventKind::Command {
                command: "subsystem".into(),
                args: vec![BytesText::capped(name.as_bytes(), FIELD_CAP).0],
                raw: BytesText::capped(format!("subsystem {name}").as_bytes(), FIELD_CAP).0,
                truncated: false,
                error: !sftp,
                details: Default::default(),
            },
            Vec::new(),
        );
        if !sftp {
            s.channel_failure(ch)?;
            return Ok(());
        }
        // The shell's tree is the one sftp sees (created on first use).
        self.shell();
        if let Some(c) = self.channels.get_mut(&ch) {
            c.mode = Mode::Sftp(Box::default());
        }
        s.channel_success(ch)?;
        Ok(())
    }

    async fn data(
        &mut self,
        ch: ChannelId,
        data: &[u8],
        s: &mut RSession,
    ) -> Result<(), Self::Error> {
        let scp = matches!(
            self.channels.get(&ch).map(|c| &c.mode),
            Some(Mode::Scp { .. })
        );
        if scp {
            return self.on_scp(s, ch, data);
        }
        if matches!(self.channels.get(&ch).map(|c| &c.mode), Some(Mode::Sftp(_))) {
            return self.on_sftp(s, ch, data);
        }
        if !matches!(self.channels.get(&ch).map(|c| &c.mode), Some(Mode::Shell)) {
            return Ok(());
        }
        self.record_in(data);
        self.on_lines(s, ch, data)
    }

    async fn channel_eof(&mut self, ch: ChannelId, s: &mut RSession) -> Result<(), Self::Error> {
        match self.channels.get(&ch).map(|c| &c.mode) {
            Some(Mode::Scp { .. }) => self.finish_channel(s, ch, 0),
            Some(Mode::Sftp(_)) => {
                self.end_sftp(ch);
                self.finish_channel(s, ch, 0)
            }
            Some(Mode::Shell) => {
                // A shell without a terminal runs what it was given, then ends.
                let pending = self
                    .channels
                    .get_mut(&ch)
                    .map(|c| c.editor.feed(b"\n"))
                    .unwrap_or_default();
                if let Some(line) = pending.lines.into_iter().next().filter(|l| !l.is_empty()) {
                    let res = self.shell().run_line(&line);
                    self.send(s, ch, &res.terminal)?;
                    self.effects(res.effects);
                }
                let status = self.shell().status as u32;
                self.finish_channel(s, ch, status)
            }
            _ => Ok(()),
        }
    }

    async fn channel_close(&mut self, ch: ChannelId, _s: &mut RSession) -> Result<(), Self::Error> {
        self.end_sftp(ch);
        self.channels.remove(&ch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SentPrefix;

    #[test]
    fn the_version_line_sent_early_is_dropped_once_across_reads() {
        let mut p = SentPrefix::new(b"SSH-2.0-X\r\n".to_vec());
        assert_eq!(p.strip(b"SSH-2."), b"");
        assert_eq!(p.strip(b"0-X\r\n\x00\x00\x01"), b"\x00\x00\x01");
        assert_eq!(p.strip(b"SSH-2.0-X\r\n"), b"SSH-2.0-X\r\n");
    }

    #[test]
    fn output_that_does_not_repeat_it_passes_through() {
        let mut p = SentPrefix::new(b"SSH-2.0-X\r\n".to_vec());
        assert_eq!(p.strip(b"SSH-1.99"), b"SSH-1.99");
        assert_eq!(p.strip(b"\r\n"), b"\r\n");
    }
}
