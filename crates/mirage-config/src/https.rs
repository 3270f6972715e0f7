//! `[services.https]`: the HTTP honeypot behind TLS, with a certificate
//! issued on the fly for the name each client asks for.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// HTTPS honeypot settings. The site itself (flavour, pages, login paths,
/// limits) is the one `[services.http]` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpsConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:443` and `[::]:443`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound (port in
    /// use, or privileged); empty = no fallback. Default `0.0.0.0:8443` and
    /// `[::]:8443`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Name (DNS name or IP address) of the certificate served to clients
    /// that send no usable SNI. Certificates are issued by the local CA
    /// kept in `<log_dir>/tls/ca.crt` and `ca.key` (made at first start).
    /// Default `localhost`.
    pub default_name: String,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        HttpsConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:443"), addr("[::]:443")],
            fallback_listen: vec![addr("0.0.0.0:8443"), addr("[::]:8443")],
            default_name: "localhost".into(),
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl HttpsConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        let n = &self.default_name;
        let is_ip = n.parse::<std::net::IpAddr>().is_ok();
        let is_dns = !n.is_empty()
            && n.len() <= 253
            && n.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !is_ip && !is_dns {
            return Err((
                "default_name".into(),
                format!("'{n}' is neither a DNS name nor an IP address"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn bad_default_name_names_the_key() {
        let e = Config::parse("[services.https]\ndefault_name = \"a b\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("services.https.default_name"), "{e}");
        Config::parse("[services.https]\ndefault_name = \"192.0.2.1\"\n", "c.toml").unwrap();
    }

    #[test]
    fn service_flag_runs_only_https() {
        let mut c = Config::default();
        c.only_services(&[("https".into(), "127.0.0.1:8443".parse().unwrap())])
            .unwrap();
        assert!(c.services.https.enabled && !c.services.http.enabled);
        assert!(c.services.https.fallback_listen.is_empty());
    }
}
