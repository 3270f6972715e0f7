//! Telnet honeypot: a Debian host running telnetd, or a BusyBox device.
//!
//! The bounded IAC parser and option answers are `mirage_proto::telnet`.
//!
//! The first bytes are the imitated daemon's own option requests (Linux
//! telnetd: DO TERMINAL-TYPE, TSPEED, XDISPLOC, NEW-ENVIRON; BusyBox: DO
//! ECHO, DO NAWS, WILL ECHO, WILL SGA) — never a bare DO NAWS, which is how
//! scanners spot Cowrie. The Linux flavour, like telnetd, says nothing more
//! until the client answers (or a few seconds pass). Then `login:` and
//! `Password:` prompts capture credentials as `auth.attempt`; the login
//! policy is the SSH one; after login the shared [`Shell`] runs with the
//! same events, quarantine and asciicast recording as SSH.
//!
//! Option answers follow the imitated daemon, checked against the real
//! ones: inetutils telnetd (Debian 12's `telnetd`) accepts a client's
//! `WILL LINEMODE` during the first negotiation (`DO LINEMODE`, `SB
//! LINEMODE MODE`) and turns it off again with its `WILL ECHO` (`DONT
//! LINEMODE`), and its login(1) asks `Password:` even for an empty user
//! name; BusyBox telnetd answers no option at all and its login re-prompts
//! on an empty name. Tools key on exactly this: hydra's telnet module sends
//! each line a byte at a time when a server's first answer to its `WILL
//! LINEMODE` is a refusal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_config::{TelnetConfig, TelnetFlavor};
use mirage_core::{AuthResult, BytesText, EventKind};
use mirage_net::{Emulator, Session, SessionEnd};
use serde_json::{Map, Value};

use crate::quarantine::Quarantine;
use crate::shell::line::LineEditor;
use crate::shell::record::Recorder;
use crate::shell::report::effect_events;
use crate::shell::{Flavor, Profile, Shell};
use crate::ssh::{FIELD_CAP, LoginPolicy};
use mirage_proto::telnet::*;

/// How long the Linux flavour waits for the client's option answers
/// before going on with the login prompt (telnetd waits for them; a
/// client that never answers still gets a prompt eventually).
const NEGOTIATION_WAIT: Duration = Duration::from_secs(8);

/// Between BusyBox telnetd's options and its login's prompt (the fork and
/// exec of login on a small device).
const LOGIN_FORK_DELAY: Duration = Duration::from_millis(50);

/// The Telnet emulator.
pub struct TelnetEmulator {
    cfg: TelnetConfig,
    data_dir: PathBuf,
    quarantine: Arc<Quarantine>,
    policy: LoginPolicy,
}

impl TelnetEmulator {
    /// Build from configuration.
    pub fn new(
        cfg: TelnetConfig,
        data_dir: &std::path::Path,
        quarantine: Arc<Quarantine>,
    ) -> TelnetEmulator {
        let policy = LoginPolicy::new(
            cfg.accept
                .iter()
                .map(|c| (c.user.clone(), c.password.clone()))
                .collect(),
            cfg.accept_after_failures,
        );
        TelnetEmulator {
            cfg,
            data_dir: data_dir.to_owned(),
            quarantine,
            policy,
        }
    }

    fn first_bytes(&self) -> (&'static [u8], Vec<u8>, Vec<u8>) {
        match self.cfg.flavor {
            TelnetFlavor::Linux => (
                &[
                    IAC,
                    DO,
                    TTYPE,
                    IAC,
                    DO,
                    TSPEED,
                    IAC,
                    DO,
                    XDISPLOC,
                    IAC,
                    DO,
                    NEW_ENVIRON,
                ],
                // LINEMODE: a client's offer during the first negotiation
                // is taken (see the module doc), so the parser must not
                // refuse it; `Conn::end_negotiation` withdraws this.
                vec![TTYPE, TSPEED, XDISPLOC, NEW_ENVIRON, NAWS, LINEMODE],
                vec![ECHO, SGA],
            ),
            TelnetFlavor::Busybox => (
                &[
                    IAC, DO, ECHO, IAC, DO, NAWS, IAC, WILL, ECHO, IAC, WILL, SGA,
                ],
                vec![ECHO, NAWS],
                vec![ECHO, SGA],
            ),
        }
    }
}

enum Phase {
    Login,
    Password(Vec<u8>),
    Shell,
}

struct Conn<'a> {
    emu: &'a TelnetEmulator,
    parser: TelnetParser,
    editor: LineEditor,
    recorder: Option<Recorder>,
    terminal: Option<String>,
    failures: u32,
    /// Answer the client's option requests (BusyBox telnetd never does).
    answers: bool,
    /// Still in the first negotiation (Linux flavour, before `login:`).
    negotiating: bool,
    /// The client's `WILL LINEMODE` was accepted during negotiation.
    linemode: bool,
}

impl Conn<'_> {
    async fn send(&mut self, session: &mut Session, data: &[u8]) -> Result<(), SessionEnd> {
        if let Some(r) = self.recorder.as_mut() {
            r.output(data);
        }
        // Data bytes equal to IAC are doubled on the wire.
        if data.contains(&IAC) {
            let mut v = Vec::with_capacity(data.len() + 4);
            for &b in data {
                v.push(b);
                if b == IAC {
                    v.push(IAC);
                }
            }
            return session.write_all(&v).await;
        }
        session.write_all(data).await
    }

    /// Parse input: answer options, return the data bytes.
    async fn input(&mut self, session: &mut Session, raw: &[u8]) -> Result<Vec<u8>, SessionEnd> {
        let parsed = self.parser.feed(raw);
        if self.answers && !parsed.reply.is_empty() {
            session.write_all(&parsed.reply).await?;
        }
        for ev in &parsed.events {
            match ev {
                TelnetEvent::Option {
                    verb: WILL,
                    opt: TTYPE,
                } if self.answers => {
                    session.write_all(&[IAC, SB, TTYPE, 1, IAC, SE]).await?;
                }
                TelnetEvent::Option {
                    verb: WILL,
                    opt: LINEMODE,
                } if self.negotiating && !self.linemode => {
                    // inetutils: DO LINEMODE, then MODE with only
                    // LIT_ECHO set (no local editing).
                    self.linemode = true;
                    session
                        .write_all(&[IAC, DO, LINEMODE, IAC, SB, LINEMODE, 1, 0x10, IAC, SE])
                        .await?;
                }
                TelnetEvent::Sub { opt: TTYPE, data } if data.first() == Some(&0) => {
                    self.terminal =
                        Some(String::from_utf8_lossy(&data[1..data.len().min(64)]).into_owned());
                }
                _ => {}
            }
        }
        if let Some(r) = self.recorder.as_mut() {
            r.input(&parsed.data);
        }
        Ok(parsed.data)
    }

    /// The options sent with the login prompt once negotiation is over:
    /// linemode accepted earlier is switched off again, not offered later.
    fn end_negotiation(&mut self) -> Vec<u8> {
        self.negotiating = false;
        let mut out = vec![IAC, WILL, ECHO, IAC, WILL, SGA, IAC, DO, NAWS];
        if self.linemode {
            out.extend_from_slice(&[IAC, DONT, LINEMODE]);
        } else {
            self.parser.forget(DO, LINEMODE);
        }
        out
    }
}

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

const MOTD: &str = "\nThe programs included with the Debian GNU/Linux system are free software;\n\
the exact distribution terms for each program are described in the\n\
individual files in /usr/share/doc/*/copyright.\n\n\
Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\npermitted by applicable law.\n";

#[async_trait]
impl Emulator for TelnetEmulator {
    fn service(&self) -> &str {
        "telnet"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let (first, dos, wills) = self.first_bytes();
        let mut c = Conn {
            emu: self,
            parser: TelnetParser::new(&dos, &wills),
            editor: LineEditor::new(),
            recorder: None,
            terminal: None,
            failures: 0,
            answers: self.cfg.flavor == TelnetFlavor::Linux,
            negotiating: self.cfg.flavor == TelnetFlavor::Linux,
            linemode: false,
        };
        if self.cfg.record_sessions {
            match Recorder::create(&self.data_dir, &session.id().to_string(), 80, 24, "xterm") {
                Ok(r) => c.recorder = Some(r),
                Err(e) => tracing::warn!(error = %e, "cannot create a session recording"),
            }
        }
        session.write_all(first).await?;
        let mut buf = BytesMut::new();
        let mut pending = Vec::new();
        let host = self.cfg.hostname.clone();
        match self.cfg.flavor {
            TelnetFlavor::Linux => {
                // telnetd waits for the answers before starting login.
                match tokio::time::timeout(NEGOTIATION_WAIT, session.read_some(&mut buf)).await {
                    Ok(Ok(_)) => {
                        pending = c.input(session, &buf).await?;
                        buf.clear();
                        // Give the rest of the answers a moment to arrive.
                        if let Ok(Ok(_)) = tokio::time::timeout(
                            Duration::from_millis(200),
                            session.read_some(&mut buf),
                        )
                        .await
                        {
                            let more = c.input(session, &buf).await?;
                            pending.extend_from_slice(&more);
                            buf.clear();
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {}
                }
                let opts = c.end_negotiation();
                session.write_all(&opts).await?;
                c.send(
                    session,
                    format!("Debian GNU/Linux 12\r\n{host} login: ").as_bytes(),
                )
                .await?;
            }
            TelnetFlavor::Busybox => {
                // telnetd writes its options itself, the prompt comes from
                // the login(1) it forks a moment later: two segments, as
                // clients (hydra) that answer the options first expect.
                tokio::time::sleep(LOGIN_FORK_DELAY).await;
                c.send(session, format!("{host} login: ").as_bytes())
                    .await?;
            }
        }
        let mut phase = Phase::Login;
        let mut shell: Option<Shell> = None;
        loop {
            let data = if pending.is_empty() {
                session.read_some(&mut buf).await?;
                let d = c.input(session, &buf).await?;
                buf.clear();
                d
            } else {
                std::mem::take(&mut pending)
            };
            let edited = c.editor.feed(&data);
            c.send(session, &edited.echo).await?;
            if edited.eof && !matches!(phase, Phase::Shell) {
                return Ok(());
            }
            for line in edited.lines {
                match std::mem::replace(&mut phase, Phase::Login) {
                    Phase::Login => {
                        if line.is_empty() && self.cfg.flavor == TelnetFlavor::Busybox {
                            c.send(session, format!("{host} login: ").as_bytes())
                                .await?;
                            continue;
                        }
                        c.editor.echo = false;
                        c.send(session, b"Password: ").await?;
                        phase = Phase::Password(line);
                    }
                    Phase::Password(user) => {
                        c.editor.echo = true;
                        let u = String::from_utf8_lossy(&user).into_owned();
                        let p = String::from_utf8_lossy(&line).into_owned();
                        let ok = self.policy.check(session.peer().ip(), &u, &p);
                        let mut details = Map::new();
                        details.insert(
                            "flavor".into(),
                            Value::String(match self.cfg.flavor {
                                TelnetFlavor::Linux => "linux".into(),
                                TelnetFlavor::Busybox => "busybox".into(),
                            }),
                        );
                        if let Some(t) = &c.terminal {
                            details.insert(
                                "terminal_type".into(),
                                Value::String(BytesText::capped(t.as_bytes(), 64).0.0),
                            );
                        }
                        if let Some(r) = &c.recorder {
                            details.insert("recording".into(), Value::String(r.relative.clone()));
                        }
                        session
                            .emit(EventKind::AuthAttempt {
                                method: "password".into(),
                                username: Some(BytesText::capped(&user, FIELD_CAP).0),
                                password: Some(BytesText::capped(&line, FIELD_CAP).0),
                                key_fingerprint: None,
                                result: if ok {
                                    AuthResult::Success
                                } else {
                                    AuthResult::Failure
                                },
                                details,
                            })
                            .await;
                        if !ok {
                            c.failures += 1;
                            tokio::time::sleep(Duration::from_millis(
                                self.cfg.failed_auth_delay_ms,
                            ))
                            .await;
                            c.send(session, b"\r\nLogin incorrect\r\n").await?;
                            if c.failures >= self.cfg.max_auth_tries {
                                return Ok(());
                            }
                            c.send(session, format!("{host} login: ").as_bytes())
                                .await?;
                            continue;
                        }
                        let flavor = match self.cfg.flavor {
                            TelnetFlavor::Linux => Flavor::Bash,
                            TelnetFlavor::Busybox => Flavor::Busybox,
                        };
                        let sh = Shell::new(
                            Profile {
                                hostname: host.clone(),
                                user: u,
                                flavor,
                                client_ip: session.peer().ip().to_string(),
                            },
                            true,
                        );
                        let banner = match flavor {
                            Flavor::Bash => {
                                let last = chrono::Utc::now() - chrono::Duration::hours(31);
                                format!(
                                    "Linux {host} 6.1.0-28-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22) x86_64\n{MOTD}Last login: {} from 10.0.0.5 on pts/0\n",
                                    last.format("%a %b %e %H:%M:%S %Z %Y")
                                )
                            }
                            Flavor::Busybox => "\n\nBusyBox v1.35.0 (2023-02-11 09:16:05 UTC) built-in shell (ash)\n\n".into(),
                        };
                        let mut out = crlf(banner.as_bytes());
                        out.extend_from_slice(&sh.prompt());
                        c.send(session, &out).await?;
                        shell = Some(sh);
                        phase = Phase::Shell;
                    }
                    Phase::Shell => {
                        phase = Phase::Shell;
                        let Some(sh) = shell.as_mut() else {
                            return Ok(());
                        };
                        let res = sh.run_line(&line);
                        let out = crlf(&res.terminal);
                        c.send(session, &out).await?;
                        for e in res.effects {
                            for (kind, tags) in effect_events(e, &self.quarantine) {
                                let mut ev = session.event(kind);
                                ev.tags = tags;
                                session.emit_event(ev).await;
                            }
                        }
                        if res.exit {
                            c.send(session, b"logout\r\n").await?;
                            return Ok(());
                        }
                        let p = sh.prompt();
                        c.send(session, &p).await?;
                    }
                }
            }
            if edited.eof {
                c.send(session, b"logout\r\n").await?;
                return Ok(());
            }
            let _ = c.emu;
        }
    }
}
