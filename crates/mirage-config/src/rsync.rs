//! `[services.rsync]`: the rsync daemon honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A user name and password a protected module lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsyncCredential {
    /// User name, compared exactly.
    pub user: String,
    /// Password (what a real daemon's secrets file holds).
    pub password: String,
}

/// One file of a virtual module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsyncFile {
    /// Path inside the module, `/`-separated, relative (`db/dump.sql.gz`);
    /// its parent directories are implied.
    pub path: String,
    /// Content served to downloads. Empty: `size` bytes of filler.
    #[serde(default)]
    pub content: String,
    /// Size in bytes when `content` is empty. Default 0.
    #[serde(default)]
    pub size: u64,
    /// Permission bits (e.g. `0o644`). Default 0o644.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// Modification time, Unix seconds. Default 1732093200 (2024-11-20).
    #[serde(default = "default_mtime")]
    pub mtime: i64,
}

fn default_mode() -> u32 {
    0o644
}
fn default_mtime() -> i64 {
    1_732_093_200
}

/// One module (`[name]` section of a real `rsyncd.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsyncModule {
    /// Module name, as clients write it in `rsync://host/NAME/`.
    pub name: String,
    /// Comment printed next to the name in the module listing.
    #[serde(default)]
    pub comment: String,
    /// Shown in the module listing (`list = yes`). Default true.
    #[serde(default = "yes")]
    pub list: bool,
    /// Refuse uploads (`read only = yes`). Default true.
    #[serde(default = "yes")]
    pub read_only: bool,
    /// Require the challenge-response login (`auth users`). Default false.
    #[serde(default)]
    pub auth: bool,
    /// Credentials accepted when `auth` is on; every other login fails with
    /// the daemon's "auth failed on module". Default none.
    #[serde(default)]
    pub accept: Vec<RsyncCredential>,
    /// The module's files, listed and served to downloads. Default none.
    #[serde(default)]
    pub files: Vec<RsyncFile>,
}

fn yes() -> bool {
    true
}

/// rsync honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RsyncConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:873` and `[::]:873`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound; empty =
    /// no fallback. Default `0.0.0.0:10873` and `[::]:10873`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Protocol version in the `@RSYNCD:` greeting: 30 or 31. Default 31
    /// (rsync 3.1.0 to 3.3.0, Debian 12's 3.2.7).
    pub protocol: u32,
    /// Daemon-auth digests named in the greeting, strongest first. Default
    /// `sha512 sha256 sha1 md5 md4`.
    pub auth_digests: String,
    /// Message of the day sent after the greeting; empty = none. Default empty.
    pub motd: String,
    /// Most file-list entries accepted from an uploading client. Default 10000.
    pub max_file_list: u32,
    /// The modules. Default `backup` (read-only), `www` (writable) and
    /// `private` (password protected).
    pub modules: Vec<RsyncModule>,
}

/// Digests the honeypot can verify (and so name in the greeting).
pub const RSYNC_AUTH_DIGESTS: &[&str] = &["sha512", "sha256", "sha1", "md5", "md4"];

impl Default for RsyncConfig {
    fn default() -> Self {
        let file = |path: &str, size: u64, content: &str| RsyncFile {
            path: path.into(),
            content: content.into(),
            size,
            mode: default_mode(),
            mtime: default_mtime(),
        };
        RsyncConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:873"), addr("[::]:873")],
            fallback_listen: vec![addr("0.0.0.0:10873"), addr("[::]:10873")],
            protocol: 31,
            auth_digests: "sha512 sha256 sha1 md5 md4".into(),
            motd: String::new(),
            max_file_list: 10_000,
            modules: vec![
                RsyncModule {
                    name: "backup".into(),
                    comment: "Nightly backups".into(),
                    list: true,
                    read_only: true,
                    auth: false,
                    accept: Vec::new(),
                    files: vec![
                        file("db/shop-2024-11-19.sql.gz", 48213, ""),
                        file("db/shop-2024-11-20.sql.gz", 48871, ""),
                        file("etc/hosts", 0, "127.0.0.1\tlocalhost\n10.0.0.12\tdb01\n"),
                        file("README", 0, "Backups are rotated after 14 days.\n"),
                    ],
                },
                RsyncModule {
                    name: "www".into(),
                    comment: "Web root".into(),
                    list: true,
                    read_only: false,
                    auth: false,
                    accept: Vec::new(),
                    files: vec![file(
                        "index.html",
                        0,
                        "<html><body>It works!</body></html>\n",
                    )],
                },
                RsyncModule {
                    name: "private".into(),
                    comment: "Private archive".into(),
                    list: true,
                    read_only: true,
                    auth: true,
                    accept: Vec::new(),
                    files: vec![file("keys.tar.gz", 20480, "")],
                },
            ],
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Largest virtual file (downloads are served from memory).
pub const RSYNC_MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

impl RsyncConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        if !(30..=31).contains(&self.protocol) {
            return Err(("protocol".into(), "must be 30 or 31".into()));
        }
        let digests: Vec<&str> = self.auth_digests.split_whitespace().collect();
        if digests.is_empty() || digests.iter().any(|d| !RSYNC_AUTH_DIGESTS.contains(d)) {
            return Err((
                "auth_digests".into(),
                format!(
                    "'{}' must be a space-separated list of {}",
                    self.auth_digests,
                    RSYNC_AUTH_DIGESTS.join(", ")
                ),
            ));
        }
        if self.motd.len() > 4096 {
            return Err(("motd".into(), "must be at most 4096 bytes".into()));
        }
        if self.max_file_list == 0 || self.max_file_list > 1_000_000 {
            return Err((
                "max_file_list".into(),
                "must be between 1 and 1000000".into(),
            ));
        }
        for (i, m) in self.modules.iter().enumerate() {
            let key = |k: &str| format!("modules[{i}].{k}");
            let bad_name = m.name.is_empty()
                || m.name.len() > 64
                || m.name.starts_with('#')
                || m.name.bytes().any(|b| b == b'/' || b <= b' ' || b == b']');
            if bad_name {
                return Err((
                    key("name"),
                    format!(
                        "'{}' must be 1-64 bytes without '/', ']', spaces or a leading '#'",
                        m.name
                    ),
                ));
            }
            if self.modules[..i].iter().any(|o| o.name == m.name) {
                return Err((key("name"), format!("'{}' is defined twice", m.name)));
            }
            if m.comment.len() > 256 || m.comment.contains('\n') {
                return Err((
                    key("comment"),
                    "must be one line of at most 256 bytes".into(),
                ));
            }
            for (j, f) in m.files.iter().enumerate() {
                let fkey = |k: &str| format!("modules[{i}].files[{j}].{k}");
                let bad = f.path.is_empty()
                    || f.path.len() > 1000
                    || f.path.starts_with('/')
                    || f.path.contains('\0')
                    || f.path
                        .split('/')
                        .any(|c| c.is_empty() || c == "." || c == "..");
                if bad {
                    return Err((
                        fkey("path"),
                        format!(
                            "'{}' must be a relative path without '.', '..' or '//'",
                            f.path
                        ),
                    ));
                }
                let size = if f.content.is_empty() {
                    f.size
                } else {
                    f.content.len() as u64
                };
                if size > RSYNC_MAX_FILE_SIZE {
                    return Err((fkey("size"), "must be at most 16777216 bytes".into()));
                }
                if f.mode > 0o7777 {
                    return Err((
                        fkey("mode"),
                        "must be permission bits (at most 0o7777)".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn modules_and_errors_name_keys() {
        let c = Config::parse(
            "[services.rsync]\nprotocol = 30\n[[services.rsync.modules]]\nname = \"data\"\nauth = true\naccept = [{ user = \"u\", password = \"p\" }]\nfiles = [{ path = \"a/b.txt\", content = \"hi\" }]\n",
            "c.toml",
        )
        .unwrap();
        let m = &c.services.rsync.modules[0];
        assert_eq!(m.name, "data");
        assert!(m.list && m.read_only && m.auth);
        assert_eq!(m.files[0].mode, 0o644);
        let e = Config::parse("[services.rsync]\nprotocol = 27\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.rsync.protocol"), "{e}");
        let e = Config::parse("[services.rsync]\nauth_digests = \"xxh3\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.rsync.auth_digests"), "{e}");
        let e = Config::parse(
            "[[services.rsync.modules]]\nname = \"x\"\nfiles = [{ path = \"../etc/passwd\" }]\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("services.rsync.modules[0].files[0].path"),
            "{e}"
        );
        let e =
            Config::parse("[[services.rsync.modules]]\nname = \"a/b\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("modules[0].name"), "{e}");
    }

    #[test]
    fn only_services_picks_rsync() {
        let mut c = Config::default();
        c.only_services(&[("rsync".into(), "127.0.0.1:8873".parse().unwrap())])
            .unwrap();
        assert!(c.services.rsync.enabled && !c.services.mysql.enabled && !c.services.redis.enabled);
        assert!(c.services.rsync.fallback_listen.is_empty());
    }
}
