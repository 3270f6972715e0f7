//! `[services.ssh]`: the SSH honeypot, and the login policy it shares with
//! `[services.telnet]`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A user name and password an interactive honeypot (SSH, Telnet) lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginCredential {
    /// User name, compared exactly.
    pub user: String,
    /// Password, compared exactly.
    pub password: String,
}

/// SSH honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:22` and `[::]:22`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound; empty =
    /// no fallback. Default `0.0.0.0:2222` and `[::]:2222`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Identification string sent first (without CR LF). Default
    /// `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10`.
    pub banner: String,
    /// Key exchange algorithms offered, in order; names the SSH library
    /// does not implement are skipped. Default: Debian 12 sshd's list.
    pub kex_algorithms: Vec<String>,
    /// Host key algorithms offered, in order. Default: Debian 12 sshd's
    /// (`rsa-sha2-512`, `rsa-sha2-256`, `ecdsa-sha2-nistp256`, `ssh-ed25519`).
    pub host_key_algorithms: Vec<String>,
    /// Ciphers offered, in order. Default: Debian 12 sshd's list.
    pub ciphers: Vec<String>,
    /// MACs offered, in order; unknown names skipped. Default:
    /// Debian 12 sshd's list.
    pub macs: Vec<String>,
    /// OpenSSH moduli file the group exchange picks its primes from, as
    /// sshd does; missing or without a usable prime = the RFC 3526 groups
    /// sshd falls back to. Default `/etc/ssh/moduli`.
    pub moduli_file: std::path::PathBuf,
    /// Credentials that log in; every other attempt fails (unless
    /// `accept_after_failures`). Default none.
    pub accept: Vec<LoginCredential>,
    /// Let a source in on its next attempt after this many failed
    /// passwords (any user, any password); 0 = never. Default 0.
    pub accept_after_failures: u32,
    /// Delay before a failed password is answered, in milliseconds
    /// (sshd with pam_unix waits about 2 s). Default 2000.
    pub failed_auth_delay_ms: u64,
    /// Authentication attempts per connection before the disconnect
    /// (sshd's MaxAuthTries). Default 6.
    pub max_auth_tries: u32,
    /// Host name the emulated shell shows. Default `srv01`.
    pub hostname: String,
    /// Record interactive sessions as asciicast v2 files under
    /// `<log_dir>/recordings/`. Default true.
    pub record_sessions: bool,
}

/// Debian 12 (OpenSSH 9.2p1-2+deb12u10) sshd's default key exchange list,
/// sntrup761's IETF name first as that package offers it.
pub const DEBIAN12_KEX: &[&str] = &[
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
];
/// Debian 12 sshd's host key algorithms (RSA, ECDSA, Ed25519 keys).
pub const DEBIAN12_HOST_KEYS: &[&str] = &[
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ecdsa-sha2-nistp256",
    "ssh-ed25519",
];
/// Debian 12 sshd's ciphers.
pub const DEBIAN12_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
];
/// Debian 12 sshd's MACs.
pub const DEBIAN12_MACS: &[&str] = &[
    "umac-64-etm@openssh.com",
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha1-etm@openssh.com",
    "umac-64@openssh.com",
    "umac-128@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:22"), addr("[::]:22")],
            fallback_listen: vec![addr("0.0.0.0:2222"), addr("[::]:2222")],
            banner: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10".into(),
            kex_algorithms: strings(DEBIAN12_KEX),
            host_key_algorithms: strings(DEBIAN12_HOST_KEYS),
            ciphers: strings(DEBIAN12_CIPHERS),
            macs: strings(DEBIAN12_MACS),
            moduli_file: "/etc/ssh/moduli".into(),
            accept: Vec::new(),
            accept_after_failures: 0,
            failed_auth_delay_ms: 2000,
            max_auth_tries: 6,
            hostname: "srv01".into(),
            record_sessions: true,
        }
    }
}

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A host name the shell prompt can show: 1-63 of `[A-Za-z0-9.-]`.
pub(crate) fn check_hostname(h: &str) -> Result<(), (String, String)> {
    if h.is_empty()
        || h.len() > 63
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err((
            "hostname".into(),
            format!("'{h}' must be 1-63 letters, digits, '-' or '.'"),
        ));
    }
    Ok(())
}

impl SshConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        // RFC 4253 4.2: at most 255 bytes with CR LF, printable US-ASCII.
        let b = self.banner.as_bytes();
        if !self.banner.starts_with("SSH-2.0-")
            || b.len() > 253
            || !b.iter().all(|c| (0x20..0x7f).contains(c))
        {
            return Err((
                "banner".into(),
                "must start with 'SSH-2.0-', be printable ASCII and at most 253 bytes".into(),
            ));
        }
        for (key, list) in [
            ("kex_algorithms", &self.kex_algorithms),
            ("host_key_algorithms", &self.host_key_algorithms),
            ("ciphers", &self.ciphers),
            ("macs", &self.macs),
        ] {
            if list.is_empty() {
                return Err((key.into(), "must name at least one algorithm".into()));
            }
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
    fn defaults_validate_and_errors_name_keys() {
        let c = Config::parse(
            "[services.ssh]\naccept = [{ user = \"root\", password = \"toor\" }]\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.services.ssh.accept[0].password, "toor");
        let e = Config::parse("[services.ssh]\nbanner = \"OpenSSH\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.ssh.banner"), "{e}");
        let e = Config::parse("[services.ssh]\nmacs = []\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.ssh.macs"), "{e}");
        let e = Config::parse("[services.ssh]\nhostname = \"a b\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.ssh.hostname"), "{e}");
    }

    #[test]
    fn only_services_picks_ssh() {
        let mut c = Config::default();
        c.only_services(&[("ssh".into(), "127.0.0.1:2022".parse().unwrap())])
            .unwrap();
        assert!(c.services.ssh.enabled && !c.services.telnet.enabled);
        assert!(c.services.ssh.fallback_listen.is_empty());
    }
}
