//! FTP honeypot: answers like vsftpd 3.0.3 (or ProFTPD), records every
//! login attempt and command, keeps every uploaded file in the quarantine,
//! and recognises FTP bounce attempts and SITE EXEC/CPFR/CPTO.
//!
//! - [`vfs`]: the per-session virtual file tree.
//! - [`flavor`]: the texts that differ between vsftpd and ProFTPD.
//!
//! The control connection is read through `mirage_proto::ftp::LineReader`
//! (4 KiB lines, as vsftpd). Data connections follow vsftpd's defaults:
//! PASV/EPSV bind an ephemeral port on the control connection's local
//! address and accept only the client's own address. Active mode is off
//! by default (vsftpd's `port_enable=NO`: `550 Permission denied.`), so
//! the honeypot never connects out; with `active_mode` on, PORT/EPRT are
//! taken only towards the client's own address and an unprivileged port
//! (`port_promiscuous=NO`). Either way a third-party address is refused
//! with vsftpd's text and recorded as an `ftp.bounce` attack, never
//! connected. Explicit TLS (`AUTH
//! TLS`) upgrades the control connection; after `PROT P` the data
//! connections are TLS too.

pub mod flavor;
pub mod vfs;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use chrono::Utc;
use mirage_config::FtpConfig;
use mirage_core::{AuthResult, BytesText, EventKind, PayloadData};
use mirage_net::tls::TlsAcceptor;
use mirage_net::{Emulator, Session, SessionEnd};
use mirage_proto::ftp::{self as proto, Command, Eprt, Frame, LineReader};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use self::flavor::Flavor;
use self::vfs::{Kind, Node, Tree};
use crate::quarantine::Quarantine;

/// Cap on each argument and on `raw` in `command` events.
pub const FIELD_CAP: usize = 1024;
/// Bytes of an upload kept inline in its `payload` event.
pub const PAYLOAD_INLINE: usize = 4096;
/// Bytes of uploads one session keeps in memory to serve back on RETR.
const SESSION_KEEP: usize = 1024 * 1024;
/// Users that are anonymous when `anonymous` is on.
const ANONYMOUS: &[&[u8]] = &[b"anonymous", b"ftp"];

/// State shared by every session of one emulator.
pub struct Server {
    cfg: FtpConfig,
    flavor: Flavor,
    quarantine: Arc<Quarantine>,
    tls: Option<TlsAcceptor>,
    base: Tree,
    clients: AtomicU64,
}

/// The FTP emulator.
pub struct FtpEmulator {
    server: Arc<Server>,
}

impl FtpEmulator {
    /// Build from configuration. Uploads go to `quarantine`; with `tls` on,
    /// the certificate is loaded from (or made once under) `data_dir/tls`.
    pub fn new(
        cfg: FtpConfig,
        quarantine: Arc<Quarantine>,
        data_dir: &Path,
    ) -> anyhow::Result<FtpEmulator> {
        let tls = if cfg.tls {
            let config = mirage_net::tls::self_signed_server_config(
                &data_dir.join("tls"),
                "ftp",
                &cfg.hostname,
            )
            .map_err(anyhow::Error::msg)?;
            Some(TlsAcceptor::from(config))
        } else {
            None
        };
        // Files look a few weeks old, as on a server that has been up a while.
        let mtime = Utc::now() - chrono::Duration::days(23);
        let mtime = mtime
            .with_timezone(&Utc)
            .date_naive()
            .and_hms_opt(9, 14, 0)
            .map(|t| t.and_utc())
            .unwrap_or(mtime);
        let base = Tree::new(
            cfg.dirs.iter().map(String::as_str),
            cfg.files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_bytes())),
            mtime,
        );
        Ok(FtpEmulator {
            server: Arc::new(Server {
                flavor: Flavor::new(&cfg),
                cfg,
                quarantine,
                tls,
                base,
                clients: AtomicU64::new(0),
            }),
        })
    }
}

/// Anything a data connection can be: TCP, or TLS over TCP.
trait DataIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> DataIo for T {}

/// How the next transfer connects.
enum DataPlan {
    None,
    Passive(TcpListener),
    Active(SocketAddr),
}

/// Who is logged in.
struct Login {
    /// The name STAT shows (`ftp` for anonymous logins, as vsftpd).
    user: String,
}

/// One control connection.
struct Ftp<'s> {
    server: &'s Server,
    session: &'s mut Session,
    buf: BytesMut,
    reader: LineReader,
    user: Option<Vec<u8>>,
    login: Option<Login>,
    fails: u32,
    cwd: String,
    binary: bool,
    tree: Tree,
    data: DataPlan,
    pbsz: bool,
    prot_private: bool,
    epsv_all: bool,
    rnfr: Option<String>,
    cpfr: Option<String>,
    rest: u64,
    kept: usize,
    clients_at_start: u64,
    /// The reply code of the last command (for the `error` flag).
    last_code: u16,
}

/// What to do after a command.
enum Next {
    Go,
    Close,
}

#[async_trait]
impl Emulator for FtpEmulator {
    fn service(&self) -> &str {
        "ftp"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let server = &*self.server;
        let clients = server.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let _live = LiveGuard(&server.clients);
        let greeting = server.flavor.greeting(session.local().ip());
        let mut ftp = Ftp {
            server,
            session,
            buf: BytesMut::new(),
            reader: LineReader::new(proto::MAX_LINE),
            user: None,
            login: None,
            fails: 0,
            cwd: "/".into(),
            binary: false,
            tree: server.base.clone(),
            data: DataPlan::None,
            pbsz: false,
            prot_private: false,
            epsv_all: false,
            rnfr: None,
            cpfr: None,
            rest: 0,
            kept: 0,
            clients_at_start: clients,
            last_code: 0,
        };
        ftp.session.write_all(&proto::reply(220, &greeting)).await?;
        loop {
            let line = ftp.next_line().await?;
            let line = match line {
                FrameOwned::Line(l) => l,
                FrameOwned::TooLong(head) => {
                    // Answered like any line that is not a command.
                    if ftp.login.is_some() {
                        ftp.reply(500, server.flavor.unknown("")).await?;
                    } else {
                        ftp.reply(530, server.flavor.need_login()).await?;
                    }
                    ftp.session
                        .emit(EventKind::ProtocolError {
                            error: format!("command line longer than {} bytes", proto::MAX_LINE),
                            data: PayloadData::new(&head, 256),
                        })
                        .await;
                    continue;
                }
            };
            if let Next::Close = ftp.command(&line).await? {
                return Ok(());
            }
        }
    }
}

struct LiveGuard<'a>(&'a AtomicU64);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<'s> Ftp<'s> {
    async fn next_line(&mut self) -> Result<FrameOwned, SessionEnd> {
        loop {
            let (frame, used) = self.reader.next(&self.buf);
            let out = frame.map(|f| match f {
                Frame::Line(l) => FrameOwned::Line(l.to_vec()),
                Frame::TooLong(l) => FrameOwned::TooLong(l.to_vec()),
            });
            self.buf.advance(used);
            if let Some(f) = out {
                return Ok(f);
            }
            // The end of an over-long line was dropped: the bytes after it
            // (the next command) are already here, so look again before
            // waiting for more.
            if used > 0 {
                continue;
            }
            self.session.read_some(&mut self.buf).await?;
        }
    }

    async fn reply(&mut self, code: u16, text: impl AsRef<str>) -> Result<(), SessionEnd> {
        self.last_code = code;
        self.session
            .write_all(&proto::reply(code, text.as_ref()))
            .await
    }

    async fn reply_multi(
        &mut self,
        code: u16,
        first: &str,
        lines: &[String],
        last: &str,
    ) -> Result<(), SessionEnd> {
        self.last_code = code;
        self.session
            .write_all(&proto::reply_multi(code, first, lines, last))
            .await
    }

    fn peer_ip(&self) -> IpAddr {
        self.session.peer().ip().to_canonical()
    }

    async fn attack(&self, technique: &str, summary: String, evidence: Map<String, Value>) {
        let mut ev = self.session.event(EventKind::Attack {
            technique: technique.into(),
            summary,
            evidence,
        });
        ev.tags = vec!["exploit".into()];
        self.session.emit_event(ev).await;
    }

    /// Handle one command line and record it.
    async fn command(&mut self, line: &[u8]) -> Result<Next, SessionEnd> {
        let cmd = Command::parse(line);
        self.last_code = 0;
        if cmd.garbage {
            if line.is_empty() && self.login.is_none() {
                // vsftpd ignores empty lines before login (NAT keepalives).
                return Ok(Next::Go);
            }
            let text = if self.login.is_some() {
                self.server.flavor.unknown(&cmd.verb)
            } else {
                self.server.flavor.need_login().to_owned()
            };
            let code = if self.login.is_some() { 500 } else { 530 };
            self.reply(code, text).await?;
            self.session
                .emit(EventKind::ProtocolError {
                    error: "not an FTP command".into(),
                    data: PayloadData::new(line, 256),
                })
                .await;
            return Ok(Next::Go);
        }
        let verb = cmd.verb.clone();
        let arg = cmd.arg.to_vec();
        let next = if self.login.is_some() {
            self.post_login(&verb, &arg).await?
        } else {
            self.pre_login(&verb, &arg).await?
        };
        if verb == "AUTH" && self.last_code == 234 {
            // Recorded before the handshake, which may end the session.
            return Ok(next);
        }
        let args = if arg.is_empty() { vec![] } else { vec![arg] };
        self.session
            .emit(command_event(
                &verb.to_ascii_lowercase(),
                &args,
                line,
                self.last_code >= 400,
            ))
            .await;
        Ok(next)
    }

    async fn pre_login(&mut self, verb: &str, arg: &[u8]) -> Result<Next, SessionEnd> {
        match verb {
            "USER" => {
                self.user = Some(arg[..arg.len().min(FIELD_CAP)].to_vec());
                let anon = self.server.cfg.anonymous && ANONYMOUS.contains(&arg);
                let text = self
                    .server
                    .flavor
                    .user_ok(&String::from_utf8_lossy(arg), anon);
                self.reply(331, text).await?;
            }
            "PASS" => return self.pass(arg).await,
            "QUIT" => {
                self.reply(221, "Goodbye.").await?;
                return Ok(Next::Close);
            }
            "FEAT" => self.feat().await?,
            "OPTS" => self.opts(arg).await?,
            "AUTH" => return self.auth(arg).await,
            "PBSZ" | "PROT" => self.pbsz_prot(verb, arg).await?,
            _ => {
                let text = self.server.flavor.need_login().to_owned();
                self.reply(530, text).await?;
            }
        }
        Ok(Next::Go)
    }

    async fn pass(&mut self, password: &[u8]) -> Result<Next, SessionEnd> {
        let Some(user) = self.user.take() else {
            self.reply(503, "Login with USER first.").await?;
            return Ok(Next::Go);
        };
        let cfg = &self.server.cfg;
        let anonymous = cfg.anonymous && ANONYMOUS.contains(&user.as_slice());
        let ok = anonymous
            || cfg
                .accept
                .iter()
                .any(|c| c.user.as_bytes() == user.as_slice() && c.password.as_bytes() == password);
        let mut details = Map::new();
        details.insert("anonymous".into(), json!(anonymous));
        details.insert("tls".into(), json!(self.session.is_tls()));
        self.session
            .emit(EventKind::AuthAttempt {
                method: "password".into(),
                username: Some(BytesText::capped(&user, FIELD_CAP).0),
                password: Some(BytesText::capped(password, FIELD_CAP).0),
                key_fingerprint: None,
                result: if ok {
                    AuthResult::Success
                } else {
                    AuthResult::Failure
                },
                details,
            })
            .await;
        if ok {
            let name = String::from_utf8_lossy(&user).into_owned();
            let text = self.server.flavor.login_ok(&name, anonymous);
            self.login = Some(Login {
                user: if anonymous { "ftp".into() } else { name },
            });
            self.reply(230, text).await?;
            return Ok(Next::Go);
        }
        self.fails += 1;
        if cfg.fail_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(cfg.fail_delay_ms)).await;
        }
        self.reply(530, "Login incorrect.").await?;
        if self.fails >= cfg.max_login_fails {
            return Ok(Next::Close);
        }
        Ok(Next::Go)
    }

    async fn feat(&mut self) -> Result<(), SessionEnd> {
        let tls = self.server.tls.is_some();
        let mut lines = Vec::new();
        if tls {
            lines.push(" AUTH TLS".to_owned());
        }
        if self.server.cfg.active_mode {
            lines.push(" EPRT".to_owned());
        }
        lines.extend([" EPSV", " MDTM", " PASV"].map(String::from));
        if tls {
            lines.extend([" PBSZ", " PROT"].map(String::from));
        }
        lines.extend([" REST STREAM", " SIZE", " TVFS", " UTF8"].map(String::from));
        self.reply_multi(211, "Features:", &lines, "End").await
    }

    async fn opts(&mut self, arg: &[u8]) -> Result<(), SessionEnd> {
        if arg.eq_ignore_ascii_case(b"UTF8 ON") {
            self.reply(200, "Always in UTF8 mode.").await
        } else {
            self.reply(501, "Option not understood.").await
        }
    }

    async fn auth(&mut self, arg: &[u8]) -> Result<Next, SessionEnd> {
        let Some(acceptor) = self.server.tls.clone() else {
            let text = self.server.flavor.need_login().to_owned();
            self.reply(530, text).await?;
            return Ok(Next::Go);
        };
        if self.session.is_tls() {
            let text = self.server.flavor.unknown("AUTH");
            self.reply(500, text).await?;
            return Ok(Next::Go);
        }
        let kind = arg.to_ascii_uppercase();
        if !matches!(kind.as_slice(), b"TLS" | b"TLS-C" | b"SSL" | b"TLS-P") {
            self.reply(504, "Unknown AUTH type.").await?;
            return Ok(Next::Go);
        }
        self.reply(234, "Proceeding with negotiation.").await?;
        // Anything the client sent after AUTH in clear text is dropped, so
        // it cannot be taken as if it came over TLS (STARTTLS injection).
        self.buf.clear();
        self.reader = LineReader::new(proto::MAX_LINE);
        self.session
            .emit(command_event(
                "auth",
                &[arg.to_vec()],
                &[b"AUTH ", arg].concat(),
                false,
            ))
            .await;
        match self.session.start_tls(&acceptor).await {
            Ok(()) => Ok(Next::Go),
            Err(SessionEnd::Io(e)) => {
                self.session
                    .emit(EventKind::ProtocolError {
                        error: format!("TLS handshake failed: {e}"),
                        data: PayloadData::new(b"", 0),
                    })
                    .await;
                Err(SessionEnd::ProtocolError)
            }
            Err(e) => Err(e),
        }
    }

    async fn pbsz_prot(&mut self, verb: &str, arg: &[u8]) -> Result<(), SessionEnd> {
        if self.server.tls.is_none() {
            let (code, text) = if self.login.is_some() {
                (500, self.server.flavor.unknown(verb))
            } else {
                (530, self.server.flavor.need_login().to_owned())
            };
            return self.reply(code, text).await;
        }
        if !self.session.is_tls() {
            return self
                .reply(
                    503,
                    format!("{verb} not allowed on insecure control connection."),
                )
                .await;
        }
        if verb == "PBSZ" {
            self.pbsz = true;
            return self.reply(200, "PBSZ set to 0.").await;
        }
        if !self.pbsz {
            return self.reply(503, "PROT needs PBSZ first.").await;
        }
        match arg.to_ascii_uppercase().as_slice() {
            b"P" => {
                self.prot_private = true;
                self.reply(200, "PROT now Private.").await
            }
            b"C" => {
                self.prot_private = false;
                self.reply(200, "PROT now Clear.").await
            }
            b"S" | b"E" => self.reply(536, "PROT not supported.").await,
            _ => self.reply(504, "Bad PROT command.").await,
        }
    }

    async fn post_login(&mut self, verb: &str, arg: &[u8]) -> Result<Next, SessionEnd> {
        match verb {
            "QUIT" => {
                self.reply(221, "Goodbye.").await?;
                return Ok(Next::Close);
            }
            "USER" => self.reply(530, "Can't change to another user.").await?,
            "PASS" => self.reply(230, "Already logged in.").await?,
            "PWD" | "XPWD" => {
                let text = format!(
                    "\"{}\" is the current directory",
                    self.cwd.replace('"', "\"\"")
                );
                self.reply(257, text).await?;
            }
            "CWD" | "XCWD" | "CDUP" | "XCUP" => {
                let target = if verb.ends_with("UP") {
                    b"..".as_slice()
                } else {
                    arg
                };
                match vfs::resolve(&self.cwd, target).filter(|p| self.tree.is_dir(p)) {
                    Some(p) => {
                        self.cwd = p;
                        self.reply(250, "Directory successfully changed.").await?;
                    }
                    None => self.reply(550, "Failed to change directory.").await?,
                }
            }
            "SYST" => self.reply(215, "UNIX Type: L8").await?,
            "NOOP" => self.reply(200, "NOOP ok.").await?,
            "HELP" => {
                let lines = [
                    " ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD",
                    " MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR",
                    " RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD",
                    " XPWD XRMD",
                ]
                .map(String::from);
                self.reply_multi(
                    214,
                    "The following commands are recognized.",
                    &lines,
                    "Help OK.",
                )
                .await?;
            }
            "FEAT" => self.feat().await?,
            "OPTS" => self.opts(arg).await?,
            "PBSZ" | "PROT" => self.pbsz_prot(verb, arg).await?,
            "TYPE" => match arg.to_ascii_uppercase().as_slice() {
                b"I" | b"L8" | b"L 8" => {
                    self.binary = true;
                    self.reply(200, "Switching to Binary mode.").await?;
                }
                b"A" | b"A N" => {
                    self.binary = false;
                    self.reply(200, "Switching to ASCII mode.").await?;
                }
                _ => self.reply(500, "Unrecognised TYPE command.").await?,
            },
            "MODE" => {
                if arg.eq_ignore_ascii_case(b"S") {
                    self.reply(200, "Mode set to S.").await?;
                } else {
                    self.reply(504, "Bad MODE command.").await?;
                }
            }
            "STRU" => {
                if arg.eq_ignore_ascii_case(b"F") {
                    self.reply(200, "Structure set to F.").await?;
                } else {
                    self.reply(504, "Bad STRU command.").await?;
                }
            }
            "ALLO" => self.reply(202, "ALLO command ignored.").await?,
            "REIN" | "ACCT" | "SMNT" => self.reply(502, format!("{verb} not implemented.")).await?,
            "ABOR" => self.reply(225, "No transfer to ABOR.").await?,
            "REST" => {
                let v = std::str::from_utf8(arg)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                self.rest = v;
                self.reply(350, format!("Restart position accepted ({v})."))
                    .await?;
            }
            "STAT" if arg.is_empty() => self.stat().await?,
            "STAT" => {
                let lines = self.listing(arg, true);
                self.reply_multi(213, "Status follows:", &lines, "End of status")
                    .await?;
            }
            "PASV" | "P@SW" if !self.epsv_all => self.pasv(false, arg).await?,
            "EPSV" => self.pasv(true, arg).await?,
            "PORT" if !self.epsv_all => self.port(arg).await?,
            "EPRT" => self.eprt(arg).await?,
            "LIST" | "NLST" => self.list(verb == "LIST", arg).await?,
            "RETR" => self.retr(arg).await?,
            "STOR" | "APPE" | "STOU" => self.store(verb, arg).await?,
            "SIZE" => match self.file_at(arg) {
                Some((_, n)) => {
                    let size = match &n.kind {
                        Kind::File { size, .. } => *size,
                        Kind::Dir => 0,
                    };
                    self.reply(213, size.to_string()).await?;
                }
                None => self.reply(550, "Could not get file size.").await?,
            },
            "MDTM" => match self.file_at(arg) {
                Some((_, n)) => {
                    let t = n.mtime.format("%Y%m%d%H%M%S").to_string();
                    self.reply(213, t).await?;
                }
                None => {
                    self.reply(550, "Could not get file modification time.")
                        .await?
                }
            },
            "DELE" => {
                let ok = vfs::resolve(&self.cwd, arg).is_some_and(|p| self.tree.remove_file(&p));
                if ok {
                    self.reply(250, "Delete operation successful.").await?;
                } else {
                    self.reply(550, "Delete operation failed.").await?;
                }
            }
            "MKD" | "XMKD" => {
                let made = vfs::resolve(&self.cwd, arg).filter(|p| {
                    self.tree.get(p).is_none()
                        && self.tree.put(
                            p,
                            Node {
                                kind: Kind::Dir,
                                mtime: Utc::now(),
                                owner: 1000,
                            },
                        )
                });
                match made {
                    Some(p) => {
                        self.reply(257, format!("\"{}\" created", p.replace('"', "\"\"")))
                            .await?
                    }
                    None => {
                        self.reply(550, "Create directory operation failed.")
                            .await?
                    }
                }
            }
            "RMD" | "XRMD" => {
                let ok = vfs::resolve(&self.cwd, arg).is_some_and(|p| self.tree.remove_dir(&p));
                if ok {
                    self.reply(250, "Remove directory operation successful.")
                        .await?;
                } else {
                    self.reply(550, "Remove directory operation failed.")
                        .await?;
                }
            }
            "RNFR" => {
                self.rnfr = vfs::resolve(&self.cwd, arg).filter(|p| self.tree.get(p).is_some());
                if self.rnfr.is_some() {
                    self.reply(350, "Ready for RNTO.").await?;
                } else {
                    self.reply(550, "RNFR command failed.").await?;
                }
            }
            "RNTO" => match self.rnfr.take() {
                None => self.reply(503, "RNFR required first.").await?,
                Some(from) => {
                    let ok =
                        vfs::resolve(&self.cwd, arg).is_some_and(|to| self.tree.rename(&from, &to));
                    if ok {
                        self.reply(250, "Rename successful.").await?;
                    } else {
                        self.reply(550, "Rename failed.").await?;
                    }
                }
            },
            "SITE" => self.site(arg).await?,
            _ => {
                let text = self.server.flavor.unknown(verb);
                self.reply(500, text).await?;
            }
        }
        Ok(Next::Go)
    }

    fn file_at(&self, arg: &[u8]) -> Option<(String, &Node)> {
        let p = vfs::resolve(&self.cwd, arg)?;
        let n = self.tree.get(&p)?;
        matches!(n.kind, Kind::File { .. }).then_some((p, n))
    }

    async fn stat(&mut self) -> Result<(), SessionEnd> {
        let login = self
            .login
            .as_ref()
            .map(|l| l.user.clone())
            .unwrap_or_default();
        let lines = vec![
            format!("     Connected to {}", self.peer_ip()),
            format!("     Logged in as {login}"),
            format!(
                "     TYPE: {}",
                if self.binary { "BINARY" } else { "ASCII" }
            ),
            "     No session bandwidth limit".to_owned(),
            "     Session timeout in seconds is 300".to_owned(),
            format!(
                "     Control connection is {}",
                if self.session.is_tls() {
                    "encrypted"
                } else {
                    "plain text"
                }
            ),
            format!(
                "     Data connections will be {}",
                if self.prot_private {
                    "encrypted"
                } else {
                    "plain text"
                }
            ),
            format!(
                "     At session startup, client count was {}",
                self.clients_at_start
            ),
            format!("     {}", self.server.flavor.stat_banner()),
        ];
        self.reply_multi(211, "FTP server status:", &lines, "End of status")
            .await
    }

    async fn site(&mut self, arg: &[u8]) -> Result<(), SessionEnd> {
        let (sub, rest) = match arg.iter().position(|&b| b == b' ') {
            Some(i) => (&arg[..i], &arg[i + 1..]),
            None => (arg, &arg[arg.len()..]),
        };
        let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
        let rest_text = BytesText::capped(rest, FIELD_CAP).0;
        if matches!(sub.as_str(), "EXEC" | "CPFR" | "CPTO") {
            let mut ev = Map::new();
            ev.insert("site_command".into(), json!(sub));
            ev.insert("argument".into(), json!(rest_text.as_str()));
            if sub == "CPTO"
                && let Some(from) = &self.cpfr
            {
                ev.insert("copy_from".into(), json!(from));
            }
            let summary = format!(
                "SITE {sub} {}",
                rest_text.as_str().chars().take(200).collect::<String>()
            );
            self.attack("ftp.site_exec", summary, ev).await;
        }
        let proftpd = self.server.flavor.is_proftpd();
        match sub.as_str() {
            // ProFTPD's mod_copy (CVE-2015-3306 answered it before login
            // too); vsftpd has no such commands.
            "CPFR" if proftpd => {
                let from = vfs::resolve(&self.cwd, rest).filter(|p| self.tree.get(p).is_some());
                match from {
                    Some(p) => {
                        self.cpfr = Some(p);
                        self.reply(350, "File or directory exists, ready for destination name")
                            .await
                    }
                    None => {
                        let name = String::from_utf8_lossy(rest).into_owned();
                        self.reply(550, format!("{name}: No such file or directory"))
                            .await
                    }
                }
            }
            "CPTO" if proftpd => match self.cpfr.take() {
                Some(_) => self.reply(250, "Copy successful").await,
                None => self.reply(503, "Bad sequence of commands").await,
            },
            "CHMOD" => {
                if rest.iter().filter(|&&b| b == b' ').count() >= 1 {
                    self.reply(200, "SITE CHMOD command ok.").await
                } else {
                    self.reply(500, "SITE CHMOD needs 2 arguments.").await
                }
            }
            "UMASK" => {
                if rest.is_empty() {
                    self.reply(200, "Your current UMASK is 0022").await
                } else {
                    let text = format!("UMASK set to {}", String::from_utf8_lossy(rest).trim());
                    self.reply(200, text).await
                }
            }
            "HELP" => self.reply(214, "CHMOD UMASK HELP").await,
            _ => self.reply(500, "Unknown SITE command.").await,
        }
    }

    async fn pasv(&mut self, extended: bool, arg: &[u8]) -> Result<(), SessionEnd> {
        let local = self.session.local().ip();
        if extended && !arg.is_empty() {
            let a = arg.to_ascii_uppercase();
            if a == b"ALL" {
                self.epsv_all = true;
                return self.reply(200, "EPSV ALL ok.").await;
            }
            let ok = match a.as_slice() {
                b"1" => true,
                b"2" => local.is_ipv6(),
                _ => false,
            };
            if !ok {
                return self.reply(522, "Bad network protocol.").await;
            }
        }
        self.data = DataPlan::None;
        let listener = match TcpListener::bind(SocketAddr::new(local, 0)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot bind a passive port");
                return self.reply(425, "Failed to enter passive mode.").await;
            }
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        self.data = DataPlan::Passive(listener);
        if extended {
            return self.reply(229, proto::epsv_reply(port)).await;
        }
        let v4 = match local {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        };
        self.reply(227, proto::pasv_reply(v4, port)).await
    }

    async fn port(&mut self, arg: &[u8]) -> Result<(), SessionEnd> {
        self.data = DataPlan::None;
        let addr = proto::parse_port(arg);
        if !self.server.cfg.active_mode {
            return self.active_disabled(addr.map(SocketAddr::V4), "PORT").await;
        }
        let Some(addr) = addr else {
            return self.reply(500, "Illegal PORT command.").await;
        };
        self.active(SocketAddr::V4(addr), "PORT").await
    }

    async fn eprt(&mut self, arg: &[u8]) -> Result<(), SessionEnd> {
        self.data = DataPlan::None;
        let parsed = proto::parse_eprt(arg);
        if !self.server.cfg.active_mode {
            let addr = match parsed {
                Some(Eprt::Addr(a)) => Some(a),
                _ => None,
            };
            return self.active_disabled(addr, "EPRT").await;
        }
        match parsed {
            Some(Eprt::Addr(a)) => {
                if a.is_ipv6() && !self.session.local().is_ipv6() {
                    return self.reply(500, "Bad EPRT protocol.").await;
                }
                self.active(a, "EPRT").await
            }
            Some(Eprt::BadProtocol) => self.reply(500, "Bad EPRT protocol.").await,
            None => self.reply(500, "Bad EPRT command.").await,
        }
    }

    /// Record `verb` towards `addr` as an FTP bounce when `addr` is not the
    /// client's own; true when it is.
    async fn note_bounce(&self, addr: SocketAddr, verb: &str) -> bool {
        let own = addr.ip().to_canonical() == self.peer_ip();
        if !own {
            let mut ev = Map::new();
            ev.insert("command".into(), json!(verb));
            ev.insert("target_ip".into(), json!(addr.ip().to_string()));
            ev.insert("target_port".into(), json!(addr.port()));
            let summary = format!("{verb} to third-party address {addr} (FTP bounce)");
            self.attack("ftp.bounce", summary, ev).await;
        }
        own
    }

    /// PORT/EPRT with active mode off: vsftpd's `port_enable=NO` answer;
    /// a bounce attempt is still recorded.
    async fn active_disabled(
        &mut self,
        addr: Option<SocketAddr>,
        verb: &str,
    ) -> Result<(), SessionEnd> {
        if let Some(addr) = addr {
            self.note_bounce(addr, verb).await;
        }
        self.reply(550, "Permission denied.").await
    }

    /// Accept an active-mode address only if it is the client's own, on an
    /// unprivileged port (vsftpd's `port_promiscuous=NO`).
    async fn active(&mut self, addr: SocketAddr, verb: &str) -> Result<(), SessionEnd> {
        let own = self.note_bounce(addr, verb).await;
        if !own || addr.port() < 1024 {
            return self.reply(500, format!("Illegal {verb} command.")).await;
        }
        self.data = DataPlan::Active(addr);
        if verb == "PORT" {
            self.reply(200, "PORT command successful. Consider using PASV.")
                .await
        } else {
            self.reply(200, "EPRT command successful. Consider using EPSV.")
                .await
        }
    }

    /// Open the data connection the last PASV/PORT prepared, announce it
    /// with `mark` (150), and switch it to TLS after PROT P. `None` after
    /// the failure was answered.
    async fn open_data(&mut self, mark: &str) -> Result<Option<Box<dyn DataIo>>, SessionEnd> {
        let wait = Duration::from_secs(self.server.cfg.data_timeout_secs);
        let plan = std::mem::replace(&mut self.data, DataPlan::None);
        let stream: Option<TcpStream> = match plan {
            DataPlan::None => {
                self.reply(425, "Use PORT or PASV first.").await?;
                return Ok(None);
            }
            DataPlan::Passive(listener) => {
                match tokio::time::timeout(wait, listener.accept()).await {
                    Ok(Ok((s, from))) => {
                        if from.ip().to_canonical() != self.peer_ip() {
                            self.reply(425, "Security: Bad IP connecting.").await?;
                            return Ok(None);
                        }
                        Some(s)
                    }
                    _ => None,
                }
            }
            DataPlan::Active(addr) => {
                // Only ever the client's own address (checked at PORT/EPRT).
                match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => Some(s),
                    _ => None,
                }
            }
        };
        let Some(stream) = stream else {
            self.reply(425, "Failed to establish connection.").await?;
            return Ok(None);
        };
        let _ = stream.set_nodelay(true);
        self.reply(150, mark).await?;
        if self.prot_private
            && let Some(acceptor) = self.server.tls.clone()
        {
            match tokio::time::timeout(wait, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return Ok(Some(Box::new(tls))),
                Ok(Err(e)) => {
                    self.session
                        .emit(EventKind::ProtocolError {
                            error: format!("data connection TLS handshake failed: {e}"),
                            data: PayloadData::new(b"", 0),
                        })
                        .await;
                    self.reply(522, "SSL connection failed.").await?;
                    return Ok(None);
                }
                Err(_) => {
                    self.reply(425, "Failed to establish connection.").await?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(Box::new(stream)))
    }

    /// Send `data` on a data connection and close it; true when all went.
    async fn send(&self, mut conn: Box<dyn DataIo>, data: &[u8]) -> bool {
        let wait = Duration::from_secs(self.server.cfg.data_timeout_secs);
        let sent = tokio::time::timeout(wait, async {
            conn.write_all(data).await?;
            conn.flush().await?;
            conn.shutdown().await
        })
        .await;
        matches!(sent, Ok(Ok(())))
    }

    fn listing(&self, arg: &[u8], long: bool) -> Vec<String> {
        // Options first (`-la`), then an optional path, as vsftpd reads them.
        let mut path = arg;
        if path.first() == Some(&b'-') {
            path = match path.iter().position(|&b| b == b' ') {
                Some(i) => &path[i + 1..],
                None => &path[path.len()..],
            };
        }
        let now = Utc::now();
        let Some(p) = vfs::resolve(&self.cwd, path) else {
            return vec![];
        };
        let Some(node) = self.tree.get(&p) else {
            return vec![];
        };
        let entries: Vec<(String, &Node)> = match node.kind {
            Kind::Dir => self
                .tree
                .children(&p)
                .into_iter()
                .map(|(n, node)| (n.to_owned(), node))
                .collect(),
            Kind::File { .. } => vec![(
                if path.is_empty() {
                    vfs::base_name(&p).to_owned()
                } else {
                    String::from_utf8_lossy(path).into_owned()
                },
                node,
            )],
        };
        entries
            .into_iter()
            .map(|(name, n)| {
                let name = proto::clean_text(&name);
                if long {
                    vfs::list_line(&name, n, now)
                } else {
                    name
                }
            })
            .collect()
    }

    async fn list(&mut self, long: bool, arg: &[u8]) -> Result<(), SessionEnd> {
        let lines = self.listing(arg, long);
        let Some(conn) = self.open_data("Here comes the directory listing.").await? else {
            return Ok(());
        };
        let mut body = String::new();
        for l in &lines {
            body.push_str(l);
            body.push_str("\r\n");
        }
        if self.send(conn, body.as_bytes()).await {
            self.reply(226, "Directory send OK.").await
        } else {
            self.reply(426, "Failure writing network stream.").await
        }
    }

    async fn retr(&mut self, arg: &[u8]) -> Result<(), SessionEnd> {
        let offset = std::mem::take(&mut self.rest);
        let found = self.file_at(arg).and_then(|(_, n)| match &n.kind {
            Kind::File {
                size,
                data: Some(d),
            } => Some((*size, d.clone())),
            _ => None,
        });
        let Some((size, data)) = found else {
            self.reply(550, "Failed to open file.").await?;
            return Ok(());
        };
        if !self.binary && offset != 0 {
            self.reply(550, "No support for resume of ASCII transfer.")
                .await?;
            return Ok(());
        }
        let mark = format!(
            "Opening {} mode data connection for {} ({size} bytes).",
            if self.binary { "BINARY" } else { "ASCII" },
            String::from_utf8_lossy(arg)
        );
        let Some(conn) = self.open_data(&mark).await? else {
            return Ok(());
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        if self.send(conn, &data[start..]).await {
            self.reply(226, "Transfer complete.").await
        } else {
            self.reply(426, "Failure writing network stream.").await
        }
    }

    async fn store(&mut self, verb: &str, arg: &[u8]) -> Result<(), SessionEnd> {
        self.rest = 0;
        let target = if verb == "STOU" {
            let base = if arg.is_empty() {
                b"file".as_slice()
            } else {
                arg
            };
            vfs::resolve(&self.cwd, base).map(|b| {
                let mut n = 1u32;
                let mut name = format!("{b}.{n}");
                while self.tree.get(&name).is_some() && n < 10_000 {
                    n += 1;
                    name = format!("{b}.{n}");
                }
                name
            })
        } else {
            vfs::resolve(&self.cwd, arg)
        };
        let target = target
            .filter(|_| !arg.is_empty() || verb == "STOU")
            .filter(|p| self.tree.is_dir(vfs::parent(p)) && !self.tree.is_dir(p));
        let Some(target) = target else {
            self.reply(553, "Could not create file.").await?;
            return Ok(());
        };
        let mark = if verb == "STOU" {
            format!("FILE: {}", vfs::base_name(&target))
        } else {
            "Ok to send data.".to_owned()
        };
        let Some(mut conn) = self.open_data(&mark).await? else {
            return Ok(());
        };
        let wait = Duration::from_secs(self.server.cfg.data_timeout_secs);
        let cap = self.session.limits().byte_budget;
        let mut upload = self.server.quarantine.begin();
        let mut head: Vec<u8> = Vec::new();
        let mut keep: Option<Vec<u8>> = Some(Vec::new());
        let mut chunk = vec![0u8; 16 * 1024];
        let mut complete = true;
        loop {
            match tokio::time::timeout(wait, conn.read(&mut chunk)).await {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    let part = &chunk[..n];
                    if let Err(e) = upload.write(part) {
                        tracing::warn!(error = %e, "quarantine write failed");
                    }
                    if head.len() < PAYLOAD_INLINE {
                        let take = (PAYLOAD_INLINE - head.len()).min(n);
                        head.extend_from_slice(&part[..take]);
                    }
                    if let Some(k) = keep.as_mut() {
                        // Kept in memory only within the session's share
                        // and the sensor's memory budget; the quarantine
                        // has the file either way.
                        if self.kept + k.len() + n <= SESSION_KEEP && self.session.hold(n as u64) {
                            k.extend_from_slice(part);
                        } else {
                            self.session.unhold(k.len() as u64);
                            keep = None;
                        }
                    }
                    if upload.len() >= cap {
                        complete = false;
                        break;
                    }
                }
                // A reset or a stall ends the upload; what arrived is kept.
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        drop(conn);
        let stored = match upload.finish() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "quarantine store failed");
                None
            }
        };
        if let Some(s) = &stored {
            self.session
                .emit(EventKind::Payload {
                    data: PayloadData {
                        data_b64: base64_std(&head),
                        sha256: s.sha256.clone(),
                        len: s.len,
                        truncated: (head.len() as u64) < s.len,
                    },
                    stored: s.stored.clone(),
                })
                .await;
        }
        let len = stored.as_ref().map(|s| s.len).unwrap_or(0);
        let data: Option<Arc<[u8]>> = keep.map(|k| {
            self.kept += k.len();
            if verb == "APPE"
                && let Some(Node {
                    kind:
                        Kind::File {
                            data: Some(old), ..
                        },
                    ..
                }) = self.tree.get(&target)
            {
                let mut all = old.to_vec();
                all.extend_from_slice(&k);
                return Arc::from(all);
            }
            Arc::from(k)
        });
        let size = data.as_ref().map(|d| d.len() as u64).unwrap_or(len);
        self.tree.put(
            &target,
            Node {
                kind: Kind::File { size, data },
                mtime: Utc::now(),
                owner: 1000,
            },
        );
        if complete {
            self.reply(226, "Transfer complete.").await
        } else {
            self.reply(426, "Failure reading network stream.").await
        }
    }
}

/// A frame copied out of the buffer (which moves on before it is handled).
enum FrameOwned {
    Line(Vec<u8>),
    TooLong(Vec<u8>),
}

fn base64_std(data: &[u8]) -> String {
    // PayloadData::new computes the hash of what it is given; here the hash
    // covers the whole upload, so only the inline part is encoded.
    PayloadData::new(data, data.len()).data_b64
}

/// A `command` event: `name` lower-case, the whole line as `raw`.
pub fn command_event(name: &str, args: &[Vec<u8>], raw: &[u8], error: bool) -> EventKind {
    let mut truncated = false;
    let args = args
        .iter()
        .map(|a| {
            let (t, cut) = BytesText::capped(a, FIELD_CAP);
            truncated |= cut;
            t
        })
        .collect();
    let (raw, cut) = BytesText::capped(raw, FIELD_CAP);
    EventKind::Command {
        command: name.to_owned(),
        args,
        raw,
        truncated: truncated || cut,
        error,
        details: Default::default(),
    }
}
