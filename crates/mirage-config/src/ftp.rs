//! `[services.ftp]`: the FTP honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A user name and password the honeypot lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpCredential {
    /// User name, compared exactly.
    pub user: String,
    /// Password, compared exactly.
    pub password: String,
}

/// A file in the virtual tree every session starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpFile {
    /// Path from the FTP root, `/`-separated (`pub/README`); parent
    /// directories are created as needed.
    pub path: String,
    /// The file's content (what RETR sends).
    pub content: String,
}

/// FTP honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:21` and `[::]:21`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound (port in
    /// use, or privileged); empty = no fallback. Default `0.0.0.0:2121` and
    /// `[::]:2121`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Server to imitate: `vsftpd` or `proftpd` (greeting and reply texts).
    /// Default `vsftpd`.
    pub flavor: String,
    /// Version shown in the greeting (and STAT). Default `3.0.3` (vsftpd
    /// on Debian 10/11).
    pub version: String,
    /// Host name in ProFTPD's greeting and in the TLS certificate. Default
    /// `ftp01`.
    pub hostname: String,
    /// Let `anonymous` and `ftp` in with any password. Default true.
    pub anonymous: bool,
    /// Credentials that log in; everything else gets `530 Login
    /// incorrect.`. Default none.
    pub accept: Vec<FtpCredential>,
    /// Failed logins allowed on one connection before it is closed
    /// (vsftpd's `max_login_fails`). Default 3.
    pub max_login_fails: u32,
    /// Milliseconds to wait before answering a failed login (vsftpd's
    /// `delay_failed_login`, 1 s). Default 1000.
    pub fail_delay_ms: u64,
    /// Seconds to wait for the client's data connection (PASV/EPSV) or to
    /// make it (PORT/EPRT), and without a byte on an open one. Default 60.
    pub data_timeout_secs: u64,
    /// Let clients use active mode (PORT/EPRT), where the honeypot connects
    /// out to the client's own address. Default false, as vsftpd with
    /// `port_enable=NO`: PORT and EPRT get `550 Permission denied.` (and a
    /// third-party address is still recorded as `ftp.bounce`), FEAT does
    /// not list EPRT, and the honeypot never opens a connection.
    pub active_mode: bool,
    /// Offer explicit TLS (`AUTH TLS`, with PBSZ/PROT for the data
    /// channel). The self-signed certificate is made once and kept under
    /// `log_dir/tls/`. Default false, as Debian's vsftpd ships
    /// (`ssl_enable=NO`): clients such as lftp upgrade whenever FEAT offers
    /// TLS and then refuse the self-signed certificate before sending the
    /// user name, so the credential would never be captured.
    pub tls: bool,
    /// Directories of the virtual tree (besides those of `files`). Default
    /// `pub` and `upload`.
    pub dirs: Vec<String>,
    /// Files of the virtual tree every session starts with. Uploads are
    /// added for the session that made them. Default a README and a notes
    /// file under `pub/`.
    pub files: Vec<FtpFile>,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:21"), addr("[::]:21")],
            fallback_listen: vec![addr("0.0.0.0:2121"), addr("[::]:2121")],
            flavor: "vsftpd".into(),
            version: "3.0.3".into(),
            hostname: "ftp01".into(),
            anonymous: true,
            accept: Vec::new(),
            max_login_fails: 3,
            fail_delay_ms: 1000,
            data_timeout_secs: 60,
            active_mode: false,
            tls: false,
            dirs: vec!["pub".into(), "upload".into()],
            files: vec![
                FtpFile {
                    path: "pub/README".into(),
                    content: "Mirror of internal builds. Contact ops@example.com for access.\n"
                        .into(),
                },
                FtpFile {
                    path: "pub/release-notes.txt".into(),
                    content: "2.4.1: fixed login timeout\n2.4.0: new backup schedule\n".into(),
                },
            ],
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The flavours the honeypot imitates.
pub const FTP_FLAVORS: &[&str] = &["vsftpd", "proftpd"];

impl FtpConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        if !FTP_FLAVORS.contains(&self.flavor.as_str()) {
            return Err((
                "flavor".into(),
                format!("'{}' is not one of {}", self.flavor, FTP_FLAVORS.join(", ")),
            ));
        }
        let printable =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        if !printable(&self.version) {
            return Err((
                "version".into(),
                format!(
                    "'{}' must be 1-64 printable ASCII characters, no spaces",
                    self.version
                ),
            ));
        }
        if !printable(&self.hostname) {
            return Err((
                "hostname".into(),
                format!(
                    "'{}' must be 1-64 printable ASCII characters, no spaces",
                    self.hostname
                ),
            ));
        }
        if self.max_login_fails == 0 {
            return Err(("max_login_fails".into(), "must be at least 1".into()));
        }
        if self.data_timeout_secs == 0 || self.data_timeout_secs > 3600 {
            return Err((
                "data_timeout_secs".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if self.fail_delay_ms > 60_000 {
            return Err(("fail_delay_ms".into(), "must be at most 60000".into()));
        }
        for (i, f) in self.files.iter().enumerate() {
            if !valid_path(&f.path) {
                return Err((
                    format!("files[{i}].path"),
                    format!(
                        "'{}' must be a relative path without '.' or '..' parts",
                        f.path
                    ),
                ));
            }
        }
        for (i, d) in self.dirs.iter().enumerate() {
            if !valid_path(d) {
                return Err((
                    format!("dirs[{i}]"),
                    format!("'{d}' must be a relative path without '.' or '..' parts"),
                ));
            }
        }
        Ok(())
    }
}

fn valid_path(p: &str) -> bool {
    let p = p.trim_start_matches('/');
    !p.is_empty()
        && p.len() <= 1024
        && p.split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn accept_list_and_errors_name_keys() {
        let c = Config::parse(
            "[services.ftp]\naccept = [{ user = \"admin\", password = \"admin\" }]\nanonymous = false\n",
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.services.ftp.accept[0].user, "admin");
        assert!(!c.services.ftp.anonymous);
        let e = Config::parse("[services.ftp]\nflavor = \"wu-ftpd\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.ftp.flavor"), "{e}");
        let e = Config::parse("[services.ftp]\nversion = \"3 0\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.ftp.version"), "{e}");
        let e = Config::parse(
            "[services.ftp]\nfiles = [{ path = \"../etc/passwd\", content = \"\" }]\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("services.ftp.files[0].path"), "{e}");
    }

    #[test]
    fn only_services_picks_ftp() {
        let mut c = Config::default();
        c.only_services(&[("ftp".into(), "127.0.0.1:2121".parse().unwrap())])
            .unwrap();
        assert!(c.services.ftp.enabled && !c.services.redis.enabled && !c.services.mysql.enabled);
        assert!(c.services.ftp.fallback_listen.is_empty());
    }
}
