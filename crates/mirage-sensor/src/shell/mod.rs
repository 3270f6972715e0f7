//! The emulated shell shared by the SSH (pty shell and `exec`) and Telnet
//! honeypots.
//!
//! - [`parse`]: the bounded command-line parser (`mirage_proto::shell`).
//! - [`fs`]: the per-session virtual filesystem.
//! - [`commands`]: what each command prints.
//! - [`line`]: the line editor of an interactive terminal.
//! - [`record`]: asciicast v2 recordings.
//!
//! [`Shell::run_line`] takes one line and returns what the terminal shows
//! and the [`Effect`]s the protocol side turns into events: one `command`
//! per simple command, files written (to the quarantine), and recognised
//! attack techniques (downloads, busybox probes, persistence). Nothing is
//! ever executed or fetched: `wget` records the URL and fails the way a
//! host without a route would.

pub mod commands;
pub mod fs;
pub mod line;
pub use mirage_proto::shell as parse;
pub mod record;
pub mod report;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use self::fs::Vfs;
use self::parse::{Connector, ParseError, Pipeline, Redirect, Simple};

/// Which shell the session believes it talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Debian 12 with bash.
    Bash,
    /// An embedded Linux device with BusyBox ash.
    Busybox,
}

/// Who is logged in where.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Host name in prompts and `uname -n`.
    pub hostname: String,
    /// The logged-in user.
    pub user: String,
    /// The shell imitated.
    pub flavor: Flavor,
    /// The client's address, for `w` and `who`.
    pub client_ip: String,
}

/// Something the protocol side reports as an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// One simple command was run.
    Command {
        /// `argv[0]`.
        name: String,
        /// The arguments after it.
        args: Vec<Vec<u8>>,
        /// The command as typed (words joined by spaces).
        raw: Vec<u8>,
        /// True when it failed (status not 0).
        error: bool,
    },
    /// A file was written; `data` is its whole content now.
    FileWritten {
        /// Absolute path in the virtual filesystem.
        path: String,
        /// The content.
        data: Vec<u8>,
    },
    /// A recognised technique.
    Attack {
        /// Dotted id: `shell.download`, `shell.busybox_probe`, …
        technique: String,
        /// One human line.
        summary: String,
        /// Evidence (URL, path, …).
        evidence: Map<String, Value>,
    },
}

/// What one line produced.
#[derive(Debug, Default, Clone)]
pub struct LineResult {
    /// Standard output (for `exec`, sent as channel data).
    pub stdout: Vec<u8>,
    /// Standard error (for `exec`, sent as extended data).
    pub stderr: Vec<u8>,
    /// Both, in the order written (what a terminal shows).
    pub terminal: Vec<u8>,
    /// Events to report.
    pub effects: Vec<Effect>,
    /// The shell ended (`exit`, `logout`).
    pub exit: bool,
}

/// Nesting limit for `sh -c` / `bash -c`.
const MAX_DEPTH: usize = 4;
/// Most simple commands one line may run (a line of `;` joined commands
/// can not make the sensor spin).
const MAX_COMMANDS: usize = 256;
/// Most lines kept for `history`.
const MAX_HISTORY: usize = 500;

/// One session's shell.
pub struct Shell {
    /// Who and where.
    pub profile: Profile,
    /// The virtual filesystem.
    pub fs: Vfs,
    /// Working directory.
    pub cwd: String,
    /// Home directory.
    pub home: String,
    /// Variables.
    pub env: BTreeMap<String, Vec<u8>>,
    /// Lines typed, for `history`.
    pub history: Vec<Vec<u8>>,
    /// `$?`.
    pub status: i32,
    /// True for a login shell on a terminal (`-bash: …` errors), false for
    /// `bash -c` from `exec` (`bash: line 1: …`).
    pub interactive: bool,
    effects: Vec<Effect>,
    commands_run: usize,
    exit: bool,
}

/// Output of one simple command.
#[derive(Debug, Default)]
pub struct Io {
    /// Bytes written to fd 1.
    pub out: Vec<u8>,
    /// Bytes written to fd 2.
    pub err: Vec<u8>,
}

impl Io {
    /// Append to stdout.
    pub fn out(&mut self, s: impl AsRef<[u8]>) {
        self.out.extend_from_slice(s.as_ref());
    }
    /// Append to stderr.
    pub fn err(&mut self, s: impl AsRef<[u8]>) {
        self.err.extend_from_slice(s.as_ref());
    }
}

impl Shell {
    /// A fresh shell for `profile`.
    pub fn new(profile: Profile, interactive: bool) -> Shell {
        let home = if profile.user == "root" {
            "/root".to_owned()
        } else {
            format!("/home/{}", profile.user)
        };
        let fs = Vfs::debian(&profile.hostname, &profile.user);
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("HOME", home.as_str()),
            ("USER", profile.user.as_str()),
            ("LOGNAME", profile.user.as_str()),
            ("SHELL", "/bin/bash"),
            (
                "PATH",
                if profile.user == "root" {
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                } else {
                    "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
                },
            ),
            ("LANG", "C.UTF-8"),
            ("HOSTNAME", profile.hostname.as_str()),
            ("PWD", home.as_str()),
        ] {
            env.insert(k.to_owned(), v.as_bytes().to_vec());
        }
        Shell {
            cwd: home.clone(),
            home,
            fs,
            env,
            history: Vec::new(),
            status: 0,
            interactive,
            effects: Vec::new(),
            commands_run: 0,
            exit: false,
            profile,
        }
    }

    /// The prompt bash (or ash) would print now.
    pub fn prompt(&self) -> Vec<u8> {
        let dir = if self.cwd == self.home {
            "~".to_owned()
        } else if let Some(rest) = self.cwd.strip_prefix(&format!("{}/", self.home)) {
            format!("~/{rest}")
        } else {
            self.cwd.clone()
        };
        let sign = if self.profile.user == "root" {
            '#'
        } else {
            '$'
        };
        match self.profile.flavor {
            Flavor::Bash => format!(
                "{}@{}:{dir}{sign} ",
                self.profile.user, self.profile.hostname
            ),
            Flavor::Busybox => format!("{dir} {sign} "),
        }
        .into_bytes()
    }

    /// The prefix of an error the shell itself prints.
    pub fn err_prefix(&self) -> String {
        match (self.profile.flavor, self.interactive) {
            (Flavor::Bash, true) => "-bash: ".into(),
            (Flavor::Bash, false) => "bash: line 1: ".into(),
            (Flavor::Busybox, true) => "-sh: ".into(),
            (Flavor::Busybox, false) => "sh: ".into(),
        }
    }

    /// Record an effect.
    pub fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    /// Take the effects recorded outside `run_line` (sftp writes).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Record an attack technique.
    pub fn attack(&mut self, technique: &str, summary: String, evidence: Map<String, Value>) {
        self.effects.push(Effect::Attack {
            technique: technique.into(),
            summary,
            evidence,
        });
    }

    fn var(&self, name: &str) -> Option<Vec<u8>> {
        match name {
            "?" => Some(self.status.to_string().into_bytes()),
            "$" => Some(b"41733".to_vec()),
            "#" => Some(b"0".to_vec()),
            "0" => Some(b"-bash".to_vec()),
            "PWD" => Some(self.cwd.as_bytes().to_vec()),
            n => self.env.get(n).cloned(),
        }
    }

    /// Run one line (without its line terminator).
    pub fn run_line(&mut self, line: &[u8]) -> LineResult {
        let mut res = LineResult::default();
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            if self.history.len() >= MAX_HISTORY {
                self.history.remove(0);
            }
            self.history.push(trimmed.to_vec());
        }
        self.commands_run = 0;
        self.run_text(line, 0, &mut res);
        res.effects = std::mem::take(&mut self.effects);
        res.exit = self.exit;
        res
    }

    fn run_text(&mut self, line: &[u8], depth: usize, res: &mut LineResult) {
        let script = match parse::parse(line) {
            Ok(s) => s,
            Err(e) => {
                let msg = match e {
                    ParseError::TooLong => format!("{}Argument list too long\n", self.err_prefix()),
                    e => format!("{}{e}\n", self.err_prefix()),
                };
                res.stderr.extend_from_slice(msg.as_bytes());
                res.terminal.extend_from_slice(msg.as_bytes());
                self.status = 2;
                return;
            }
        };
        for (conn, pipeline) in &script.items {
            if self.exit {
                break;
            }
            let run = match conn {
                Connector::Always => true,
                Connector::And => self.status == 0,
                Connector::Or => self.status != 0,
            };
            if run {
                self.status = self.run_pipeline(pipeline, depth, res);
            }
        }
    }

    fn run_pipeline(&mut self, p: &Pipeline, depth: usize, res: &mut LineResult) -> i32 {
        let mut stdin = Vec::new();
        let mut status = 0;
        let last = p.commands.len().saturating_sub(1);
        for (i, cmd) in p.commands.iter().enumerate() {
            let (io, st) = self.run_simple(cmd, std::mem::take(&mut stdin), depth);
            status = st;
            res.stderr.extend_from_slice(&io.err);
            res.terminal.extend_from_slice(&io.err);
            if i == last {
                res.stdout.extend_from_slice(&io.out);
                res.terminal.extend_from_slice(&io.out);
            } else {
                stdin = io.out;
            }
        }
        status
    }

    fn run_simple(&mut self, cmd: &Simple, stdin: Vec<u8>, depth: usize) -> (Io, i32) {
        let mut io = Io::default();
        self.commands_run += 1;
        if self.commands_run > MAX_COMMANDS {
            return (io, 1);
        }
        let argv: Vec<Vec<u8>> = cmd
            .argv
            .iter()
            .map(|w| w.expand(&|n: &str| self.var(n)))
            .collect();
        if argv.is_empty() {
            for (k, v) in &cmd.assigns {
                let v = v.expand(&|n: &str| self.var(n));
                self.env.insert(k.clone(), v);
            }
        }
        // Input redirection.
        let mut stdin = stdin;
        for r in &cmd.redirects {
            if let Redirect::In { source } = r {
                let source = source.expand(&|n: &str| self.var(n));
                let path = self.path(&source);
                match self.fs.read(&path) {
                    Ok(d) => stdin = d.to_vec(),
                    Err(e) => {
                        io.err(format!(
                            "{}{}: {}\n",
                            self.err_prefix(),
                            String::from_utf8_lossy(&source),
                            e.text()
                        ));
                        return (io, 1);
                    }
                }
            }
        }
        let status = if argv.is_empty() {
            0
        } else if depth < MAX_DEPTH
            && matches!(
                argv[0].as_slice(),
                b"sh" | b"bash" | b"/bin/sh" | b"/bin/bash"
            )
            && argv.get(1).map(|a| a.as_slice()) == Some(b"-c")
        {
            self.report_command(&argv, false);
            let text = argv.get(2).cloned().unwrap_or_default();
            let mut inner = LineResult::default();
            self.run_text(&text, depth + 1, &mut inner);
            io.out(&inner.stdout);
            io.err(&inner.stderr);
            self.status
        } else {
            let st = commands::run(self, &argv, &stdin, &mut io);
            self.report_command(&argv, st != 0);
            st
        };
        let status = self.apply_redirects(cmd, &mut io, status);
        (io, status)
    }

    fn report_command(&mut self, argv: &[Vec<u8>], error: bool) {
        let mut raw = Vec::new();
        for (i, w) in argv.iter().enumerate() {
            if i > 0 {
                raw.push(b' ');
            }
            raw.extend_from_slice(w);
        }
        let name = String::from_utf8_lossy(&argv[0]).to_lowercase();
        // Report the command before the effects it caused.
        let pos = self
            .effects
            .iter()
            .rposition(|e| matches!(e, Effect::Command { .. }))
            .map_or(0, |p| p + 1);
        let pos = pos.min(self.effects.len());
        self.effects.insert(
            pos,
            Effect::Command {
                name,
                args: argv[1..].to_vec(),
                raw,
                error,
            },
        );
    }

    fn apply_redirects(&mut self, cmd: &Simple, io: &mut Io, mut status: i32) -> i32 {
        for r in &cmd.redirects {
            match r {
                Redirect::ErrToOut => {
                    let e = std::mem::take(&mut io.err);
                    io.out.extend_from_slice(&e);
                }
                Redirect::Out { fd, append, target } => {
                    let target = target.expand(&|n: &str| self.var(n));
                    let data = if *fd == 2 {
                        std::mem::take(&mut io.err)
                    } else {
                        std::mem::take(&mut io.out)
                    };
                    if let Err(msg) = self.write_file(&target, &data, *append) {
                        io.err(msg);
                        status = 1;
                    }
                }
                Redirect::Both { target } => {
                    let target = target.expand(&|n: &str| self.var(n));
                    let mut data = std::mem::take(&mut io.out);
                    data.extend_from_slice(&std::mem::take(&mut io.err));
                    if let Err(msg) = self.write_file(&target, &data, false) {
                        io.err(msg);
                        status = 1;
                    }
                }
                Redirect::In { .. } => {}
            }
        }
        status
    }

    /// An absolute path for a word.
    pub fn path(&self, word: &[u8]) -> String {
        Vfs::resolve(&self.cwd, &String::from_utf8_lossy(word), &self.home)
    }

    /// Write a file the way a redirection or a command does: into the
    /// virtual filesystem, reported as [`Effect::FileWritten`], with
    /// persistence recognised. Errors come back as the shell's message.
    pub fn write_file(&mut self, target: &[u8], data: &[u8], append: bool) -> Result<(), String> {
        let path = self.path(target);
        if matches!(path.as_str(), "/dev/null" | "/dev/zero") {
            return Ok(());
        }
        if let Err(e) = self.fs.write(&path, data, append) {
            return Err(format!(
                "{}{}: {}\n",
                self.err_prefix(),
                String::from_utf8_lossy(target),
                e.text()
            ));
        }
        let content = self.fs.read(&path).map(|d| d.to_vec()).unwrap_or_default();
        if !content.is_empty() {
            self.effect(Effect::FileWritten {
                path: path.clone(),
                data: content,
            });
        }
        self.check_persistence(&path);
        Ok(())
    }

    /// Tag writes to places that survive a reboot or let the attacker back in.
    pub fn check_persistence(&mut self, path: &str) {
        let what = if path.ends_with("/.ssh/authorized_keys")
            || path.ends_with("/.ssh/authorized_keys2")
        {
            "ssh authorized_keys"
        } else if path.starts_with("/etc/cron") || path.starts_with("/var/spool/cron") {
            "cron"
        } else if path == "/etc/rc.local"
            || path.starts_with("/etc/init.d/")
            || path.starts_with("/etc/systemd/")
            || path.starts_with("/lib/systemd/")
        {
            "boot script"
        } else if path.ends_with("/.bashrc")
            || path.ends_with("/.profile")
            || path == "/etc/profile"
        {
            "shell startup file"
        } else if path == "/etc/passwd" || path == "/etc/shadow" {
            "account database"
        } else {
            return;
        };
        let mut ev = Map::new();
        ev.insert("path".into(), Value::String(path.to_owned()));
        ev.insert("mechanism".into(), Value::String(what.to_owned()));
        self.attack("shell.persistence", format!("write to {path} ({what})"), ev);
    }

    /// Mark the shell as ended.
    pub fn set_exit(&mut self) {
        self.exit = true;
    }
}

#[cfg(test)]
mod tests;
