//! The texts that differ between the imitated servers.
//!
//! vsftpd 3.0.3 is the default (`220 (vsFTPd 3.0.3)`, Debian's package);
//! ProFTPD changes the greeting, the USER/PASS answers, the unknown-command
//! text and answers `SITE CPFR/CPTO` as its mod_copy does. Every other reply
//! is vsftpd's text for both (see `docs/services.md`).

use std::net::IpAddr;

use mirage_config::FtpConfig;

/// The imitated server.
#[derive(Debug, Clone)]
pub struct Flavor {
    proftpd: bool,
    version: String,
    hostname: String,
}

impl Flavor {
    /// From the configuration.
    pub fn new(cfg: &FtpConfig) -> Flavor {
        Flavor {
            proftpd: cfg.flavor == "proftpd",
            version: cfg.version.clone(),
            hostname: cfg.hostname.clone(),
        }
    }

    /// True for ProFTPD.
    pub fn is_proftpd(&self) -> bool {
        self.proftpd
    }

    /// The 220 greeting text; `local` is the address the client reached.
    pub fn greeting(&self, local: IpAddr) -> String {
        if self.proftpd {
            format!(
                "ProFTPD {} Server ({}) [{local}]",
                self.version, self.hostname
            )
        } else {
            format!("(vsFTPd {})", self.version)
        }
    }

    /// The 331 text after USER.
    pub fn user_ok(&self, user: &str, anonymous: bool) -> String {
        if !self.proftpd {
            "Please specify the password.".into()
        } else if anonymous {
            "Anonymous login ok, send your complete email address as your password".into()
        } else {
            format!("Password required for {}", short(user))
        }
    }

    /// The 230 text after a good PASS.
    pub fn login_ok(&self, user: &str, anonymous: bool) -> String {
        if !self.proftpd {
            "Login successful.".into()
        } else if anonymous {
            "Anonymous access granted, restrictions apply".into()
        } else {
            format!("User {} logged in", short(user))
        }
    }

    /// The 500 text for an unknown command.
    pub fn unknown(&self, verb: &str) -> String {
        if self.proftpd {
            format!("{} not understood", short(verb))
        } else {
            "Unknown command.".into()
        }
    }

    /// The 530 text for a command before login.
    pub fn need_login(&self) -> &'static str {
        if self.proftpd {
            "Please login with USER and PASS"
        } else {
            "Please login with USER and PASS."
        }
    }

    /// The last line of STAT.
    pub fn stat_banner(&self) -> String {
        if self.proftpd {
            format!("ProFTPD {} Server ({})", self.version, self.hostname)
        } else {
            format!("vsFTPd {} - secure, fast, stable", self.version)
        }
    }
}

/// Attacker text echoed in a reply: at most 64 characters.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}
