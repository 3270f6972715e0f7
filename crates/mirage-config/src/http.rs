//! `[services.http]`: the HTTP honeypot (a fake web site).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// HTTP honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:80` and `[::]:80`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound (port in
    /// use, or privileged); empty = no fallback. Default `0.0.0.0:8080` and
    /// `[::]:8080`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Which server to look like: `nginx` or `apache` (header order, error
    /// pages, Server header). Default `nginx`.
    pub flavor: String,
    /// The `Server` header and error-page signature; empty = the flavour's
    /// Debian 12 package (`nginx/1.22.1`, `Apache/2.4.62 (Debian)`).
    /// Default empty.
    pub server_header: String,
    /// Directory served as the site (read once at start, at most 1 MiB per
    /// file and 16 MiB in all); empty = the built-in pages. Default empty.
    pub root: PathBuf,
    /// Paths answering with the built-in login form; a POST to them is
    /// recorded as an `auth.attempt` (method `http-form`). Default
    /// `/login`, `/admin`, `/admin/`, `/wp-login.php`, `/administrator/`,
    /// `/user/login`.
    pub login_paths: Vec<String>,
    /// Path prefixes protected by HTTP Basic auth; every `Authorization:
    /// Basic` header is an `auth.attempt` (method `http-basic`) and is
    /// refused. Default `/manager/html`, `/phpmyadmin/`.
    pub basic_auth_paths: Vec<String>,
    /// The Basic auth realm. Default `Restricted`.
    pub basic_auth_realm: String,
    /// Most bytes of request line plus headers; more gets 400 (414 for a
    /// request line alone). Default 8192.
    pub max_header_bytes: usize,
    /// Most header fields in one request. Default 100.
    pub max_headers: usize,
    /// Largest request body accepted, in bytes; more gets 413 and a close.
    /// Default 1048576 (1 MiB, nginx's `client_max_body_size`).
    pub max_body_bytes: usize,
    /// Bytes of each body kept in the `command` event (the event also
    /// carries the full length and sha256). Default 4096.
    pub body_capture_bytes: usize,
    /// Seconds a client may take to send one whole request once its first
    /// byte has arrived (slow clients are cut, as nginx's
    /// `client_header_timeout`). Default 60.
    pub request_timeout_secs: u64,
    /// Requests served on one keep-alive connection before it is closed
    /// (nginx's `keepalive_requests`). Default 1000.
    pub keepalive_requests: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:80"), addr("[::]:80")],
            fallback_listen: vec![addr("0.0.0.0:8080"), addr("[::]:8080")],
            flavor: "nginx".into(),
            server_header: String::new(),
            root: PathBuf::new(),
            login_paths: [
                "/login",
                "/admin",
                "/admin/",
                "/wp-login.php",
                "/administrator/",
                "/user/login",
            ]
            .map(String::from)
            .to_vec(),
            basic_auth_paths: vec!["/manager/html".into(), "/phpmyadmin/".into()],
            basic_auth_realm: "Restricted".into(),
            max_header_bytes: 8192,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            body_capture_bytes: 4096,
            request_timeout_secs: 60,
            keepalive_requests: 1000,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The server flavours the HTTP honeypot imitates.
pub const HTTP_FLAVORS: &[&str] = &["nginx", "apache"];

impl HttpConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        if !HTTP_FLAVORS.contains(&self.flavor.as_str()) {
            return Err((
                "flavor".into(),
                format!(
                    "'{}' is not one of {}",
                    self.flavor,
                    HTTP_FLAVORS.join(", ")
                ),
            ));
        }
        if self.server_header.bytes().any(|b| b < b' ' || b == 0x7f) {
            return Err((
                "server_header".into(),
                "must not contain control characters".into(),
            ));
        }
        validate_http_limits(
            self.max_header_bytes,
            self.max_headers,
            self.max_body_bytes,
            self.request_timeout_secs,
        )?;
        for p in self.login_paths.iter().chain(&self.basic_auth_paths) {
            if !p.starts_with('/') {
                return Err(("login_paths".into(), format!("'{p}' must start with /")));
            }
        }
        if self.keepalive_requests == 0 {
            return Err(("keepalive_requests".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// The Server header in force.
    pub fn effective_server_header(&self) -> &str {
        match (self.server_header.is_empty(), self.flavor.as_str()) {
            (false, _) => &self.server_header,
            (true, "apache") => "Apache/2.4.62 (Debian)",
            (true, _) => "nginx/1.22.1",
        }
    }
}

/// Shared bounds of the HTTP-based services.
pub(crate) fn validate_http_limits(
    head: usize,
    headers: usize,
    body: usize,
    timeout: u64,
) -> Result<(), (String, String)> {
    if !(256..=1 << 20).contains(&head) {
        return Err((
            "max_header_bytes".into(),
            "must be between 256 and 1048576".into(),
        ));
    }
    if !(1..=10_000).contains(&headers) {
        return Err(("max_headers".into(), "must be between 1 and 10000".into()));
    }
    if body > 1 << 30 {
        return Err(("max_body_bytes".into(), "must be at most 1073741824".into()));
    }
    if timeout == 0 {
        return Err(("request_timeout_secs".into(), "must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn flavour_and_errors_name_keys() {
        let c = Config::parse("[services.http]\nflavor = \"apache\"\n", "c.toml").unwrap();
        assert_eq!(
            c.services.http.effective_server_header(),
            "Apache/2.4.62 (Debian)"
        );
        let e = Config::parse("[services.http]\nflavor = \"iis\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.http.flavor"), "{e}");
        let e = Config::parse("[services.http]\nmax_headers = 0\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.http.max_headers"), "{e}");
    }

    #[test]
    fn only_services_picks_http() {
        let mut c = Config::default();
        c.only_services(&[("http".into(), "127.0.0.1:8081".parse().unwrap())])
            .unwrap();
        assert!(c.services.http.enabled && !c.services.mysql.enabled);
        assert!(!c.services.elasticsearch.enabled);
        assert!(c.services.http.fallback_listen.is_empty());
    }
}
