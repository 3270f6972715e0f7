//! `[services.telnet]`: the Telnet honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ssh::{LoginCredential, addr, check_hostname};

/// What the Telnet honeypot imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelnetFlavor {
    /// A Debian host running telnetd: asks for TERMINAL-TYPE, TSPEED,
    /// XDISPLOC and NEW-ENVIRON first, prints `/etc/issue.net`, bash shell.
    Linux,
    /// An embedded device running BusyBox telnetd: DO ECHO, DO NAWS, WILL
    /// ECHO, WILL SGA, then `login:`, BusyBox ash shell.
    Busybox,
}

/// Telnet honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelnetConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:23` and `[::]:23`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound; empty =
    /// no fallback. Default `0.0.0.0:2323` and `[::]:2323`.
    pub fallback_listen: Vec<SocketAddr>,
    /// `linux` (Debian telnetd) or `busybox` (an IoT device). Default `linux`.
    pub flavor: TelnetFlavor,
    /// Credentials that log in. Default none.
    pub accept: Vec<LoginCredential>,
    /// Let a source in on its next attempt after this many failed logins;
    /// 0 = never. Default 0.
    pub accept_after_failures: u32,
    /// Delay before `Login incorrect`, in milliseconds (login(1) waits
    /// about 3 s). Default 3000.
    pub failed_auth_delay_ms: u64,
    /// Login attempts per connection before the close. Default 3.
    pub max_auth_tries: u32,
    /// Host name shown in the prompts. Default `srv01`.
    pub hostname: String,
    /// Record sessions as asciicast v2 files under
    /// `<log_dir>/recordings/`. Default true.
    pub record_sessions: bool,
}

impl Default for TelnetConfig {
    fn default() -> Self {
        TelnetConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:23"), addr("[::]:23")],
            fallback_listen: vec![addr("0.0.0.0:2323"), addr("[::]:2323")],
            flavor: TelnetFlavor::Linux,
            accept: Vec::new(),
            accept_after_failures: 0,
            failed_auth_delay_ms: 3000,
            max_auth_tries: 3,
            hostname: "srv01".into(),
            record_sessions: true,
        }
    }
}

impl TelnetConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        if self.max_auth_tries == 0 || self.max_auth_tries > 100 {
            return Err(("max_auth_tries".into(), "must be 1-100".into()));
        }
        if self.failed_auth_delay_ms > 60_000 {
            return Err((
                "failed_auth_delay_ms".into(),
                "must be at most 60000".into(),
            ));
        }
        check_hostname(&self.hostname)
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn flavor_parses_and_errors_name_keys() {
        let c = Config::parse("[services.telnet]\nflavor = \"busybox\"\n", "c.toml").unwrap();
        assert_eq!(c.services.telnet.flavor, super::TelnetFlavor::Busybox);
        let e = Config::parse("[services.telnet]\nflavor = \"cisco\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.telnet.flavor"), "{e}");
        let e = Config::parse("[services.telnet]\nmax_auth_tries = 0\n", "c.toml").unwrap_err();
        assert!(
            e.to_string().contains("services.telnet.max_auth_tries"),
            "{e}"
        );
    }
}
