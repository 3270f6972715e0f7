//! `[services.elasticsearch]`: the Elasticsearch REST API honeypot.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Elasticsearch honeypot settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// Run this service. Default true.
    pub enabled: bool,
    /// Addresses to listen on. Default `0.0.0.0:9200` and `[::]:9200`.
    pub listen: Vec<SocketAddr>,
    /// Used instead of an address in `listen` that cannot be bound; empty =
    /// no fallback. Default `0.0.0.0:19200` and `[::]:19200`.
    pub fallback_listen: Vec<SocketAddr>,
    /// Version shown in `GET /` (7.x or 8.x). From 7.14 every response
    /// carries `X-elastic-product: Elasticsearch` first. Default `7.10.2`
    /// (the last Apache-licensed release, still widely exposed), whose
    /// header order nmap -sV names as Elasticsearch; 7.14 and later are
    /// faithful too, but nmap's signature no longer matches them.
    pub version: String,
    /// `cluster_name`. Default `elasticsearch`.
    pub cluster_name: String,
    /// The node `name`. Default `es01`.
    pub node_name: String,
    /// `cluster_uuid` (22 characters); empty = derived from the sensor
    /// name, stable across restarts. Default empty.
    pub cluster_uuid: String,
    /// Most indices clients may create. Default 64.
    pub max_indices: usize,
    /// Most documents kept over all indices; further writes get a
    /// `circuit_breaking_exception`. Default 10000.
    pub max_documents: usize,
    /// Most bytes of documents kept over all indices. Default 16777216.
    pub max_store_bytes: usize,
    /// Most bytes of request line plus headers. Default 8192.
    pub max_header_bytes: usize,
    /// Most header fields in one request. Default 100.
    pub max_headers: usize,
    /// Largest request body accepted, in bytes (ES's
    /// `http.max_content_length` is 100 MiB; a honeypot needs less).
    /// Default 1048576.
    pub max_body_bytes: usize,
    /// Bytes of each body kept in the `command` event. Default 4096.
    pub body_capture_bytes: usize,
    /// Seconds a client may take to send one whole request. Default 60.
    pub request_timeout_secs: u64,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            enabled: true,
            listen: vec![addr("0.0.0.0:9200"), addr("[::]:9200")],
            fallback_listen: vec![addr("0.0.0.0:19200"), addr("[::]:19200")],
            version: "7.10.2".into(),
            cluster_name: "elasticsearch".into(),
            node_name: "es01".into(),
            cluster_uuid: String::new(),
            max_indices: 64,
            max_documents: 10_000,
            max_store_bytes: 16 * 1024 * 1024,
            max_header_bytes: 8192,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            body_capture_bytes: 4096,
            request_timeout_secs: 60,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl ElasticsearchConfig {
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        let (major, _, _) = self.version_tuple();
        if !(major == 7 || major == 8)
            || !self
                .version
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err((
                "version".into(),
                format!(
                    "'{}' must be a 7.x or 8.x version such as 7.17.9",
                    self.version
                ),
            ));
        }
        for (k, v) in [
            ("cluster_name", &self.cluster_name),
            ("node_name", &self.node_name),
            ("cluster_uuid", &self.cluster_uuid),
        ] {
            if v.len() > 128 || v.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                return Err((
                    k.into(),
                    "at most 128 characters, no quotes, backslashes or control characters".into(),
                ));
            }
        }
        crate::http::validate_http_limits(
            self.max_header_bytes,
            self.max_headers,
            self.max_body_bytes,
            self.request_timeout_secs,
        )?;
        Ok(())
    }

    /// The version's `MAJOR.MINOR.PATCH`; missing parts are 0.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        let mut it = self
            .version
            .split('.')
            .take(3)
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn version_checked() {
        let c =
            Config::parse("[services.elasticsearch]\nversion = \"8.11.1\"\n", "c.toml").unwrap();
        assert_eq!(c.services.elasticsearch.version_tuple(), (8, 11, 1));
        let e =
            Config::parse("[services.elasticsearch]\nversion = \"5.6.0\"\n", "c.toml").unwrap_err();
        assert!(
            e.to_string().contains("services.elasticsearch.version"),
            "{e}"
        );
    }

    #[test]
    fn only_services_picks_elasticsearch() {
        let mut c = Config::default();
        c.only_services(&[("elasticsearch".into(), "127.0.0.1:9201".parse().unwrap())])
            .unwrap();
        assert!(c.services.elasticsearch.enabled && !c.services.http.enabled);
        assert!(c.services.elasticsearch.fallback_listen.is_empty());
    }
}
