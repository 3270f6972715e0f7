//! `[services.catchall]`: the all-port listener and the firewall table that
//! feeds it (`mirage firewall` reads this section, so the sensor and the
//! redirect rules always agree on ports and mode).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How the kernel hands other ports' traffic to the catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchallMode {
    /// nftables `redirect`: the destination is rewritten to the listener and
    /// read back with `SO_ORIGINAL_DST`. TCP only in the kernel's terms;
    /// UDP always uses `tproxy`, since a redirected datagram's original
    /// destination cannot be read back from the socket.
    Redirect,
    /// nftables `tproxy`: packets keep their destination and reach a
    /// transparent socket; needs a policy route (`mirage firewall` adds it).
    Tproxy,
}

/// All-port capture settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatchallConfig {
    /// Run the catch-all. Default false: without `mirage firewall` it only
    /// sees its own port.
    pub enabled: bool,
    /// `redirect` or `tproxy`. Default `redirect`.
    pub mode: CatchallMode,
    /// TCP addresses to listen on (all the same port). Default
    /// `0.0.0.0:65530` and `[::]:65530`.
    pub listen: Vec<SocketAddr>,
    /// UDP addresses to listen on; empty = no UDP capture. Default
    /// `0.0.0.0:65530` and `[::]:65530`.
    pub udp_listen: Vec<SocketAddr>,
    /// Ports `mirage firewall` never diverts, besides the SSH port of the
    /// session running it and the ports the sensor's other services listen
    /// on. Default none.
    pub exclude_ports: Vec<u16>,
    /// Firewall mark and routing table `mirage firewall` uses for the
    /// `tproxy` policy route. Default 0x6d67 (`mg`) and 6467.
    pub tproxy_mark: u32,
    /// See `tproxy_mark`.
    pub tproxy_table: u32,
    /// NFLOG group the firewall logs new TCP SYNs of diverted ports to; the
    /// catch-all reads it and writes one `probe` event per SYN, so SYN scans
    /// (which never complete a connection) are recorded. 0 = off. Needs
    /// root. Default 6467.
    pub probe_log_group: u16,
    /// Most bytes of one session's client stream captured (inline plus
    /// stored); raw capture ends the session there. Default 1 MiB.
    pub payload_budget: u64,
    /// First bytes of a capture written inline (base64) in the `payload`
    /// event; a longer capture is also stored whole under
    /// `payloads/<sha256>` in the data dir. Default 1024.
    pub inline_bytes: usize,
    /// Most bytes kept under `payloads/` in all; past it, captures are
    /// recorded by hash only. Default 1 GiB.
    pub payload_store_bytes: u64,
    /// Seconds raw capture waits for the client's next bytes before closing
    /// (a silent session still gets its connect and close events). Default 60.
    pub data_timeout_secs: u64,
    /// Milliseconds to wait for the client's first bytes before deciding by
    /// port (server-speaks-first protocols) or answering a banner. Default 1000.
    pub peek_ms: u64,
    /// Services detection may hand a connection to (each must also be
    /// enabled). Default all: redis, mysql, ftp, rsync, mongodb, ssh,
    /// telnet, http, elasticsearch (HTTP to port 9200 goes to elasticsearch
    /// when it is enabled, other HTTP to http).
    pub handoff: Vec<String>,
    /// Text sent on raw-capture ports when the client stayed silent through
    /// `peek_ms` (`[[services.catchall.banners]]` with `port` and `text`;
    /// TOML escapes such as `\r\n` work). Default none.
    pub banners: Vec<CatchallBanner>,
    /// Most UDP flows (source, original destination) remembered at once;
    /// one `payload` event is written per flow. Default 4096.
    pub udp_max_flows: usize,
    /// Seconds after its last datagram a UDP flow is forgotten (a later
    /// datagram starts a new flow and a new event). Default 60.
    pub udp_flow_idle_secs: u64,
    /// Most UDP flow events per second; datagrams of new flows past it are
    /// counted, not recorded. Default 1000.
    pub udp_max_events_per_sec: u32,
    /// Bytes of a flow's first datagram kept in its event. Default 2048.
    pub udp_max_datagram_bytes: usize,
}

/// A banner the catch-all sends on a raw-capture port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchallBanner {
    /// Destination port (1-65535).
    pub port: u16,
    /// Text sent.
    pub text: String,
}

/// Services the catch-all can hand a session to.
pub const HANDOFF_SERVICES: &[&str] = &[
    "redis",
    "mysql",
    "ftp",
    "rsync",
    "mongodb",
    "ssh",
    "telnet",
    "http",
    "elasticsearch",
];

impl Default for CatchallConfig {
    fn default() -> Self {
        CatchallConfig {
            enabled: false,
            mode: CatchallMode::Redirect,
            listen: vec![addr("0.0.0.0:65530"), addr("[::]:65530")],
            udp_listen: vec![addr("0.0.0.0:65530"), addr("[::]:65530")],
            exclude_ports: Vec::new(),
            tproxy_mark: 0x6d67,
            tproxy_table: 6467,
            probe_log_group: 6467,
            payload_budget: 1 << 20,
            inline_bytes: 1024,
            payload_store_bytes: 1 << 30,
            data_timeout_secs: 60,
            peek_ms: 1000,
            handoff: HANDOFF_SERVICES.iter().map(|s| (*s).to_owned()).collect(),
            banners: Vec::new(),
            udp_max_flows: 4096,
            udp_flow_idle_secs: 60,
            udp_max_events_per_sec: 1000,
            udp_max_datagram_bytes: 2048,
        }
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl CatchallConfig {
    /// The TCP port the firewall diverts to (every `listen` address shares it).
    pub fn tcp_port(&self) -> Option<u16> {
        self.listen.first().map(|a| a.port())
    }

    /// The UDP port, when UDP capture is on.
    pub fn udp_port(&self) -> Option<u16> {
        self.udp_listen.first().map(|a| a.port())
    }

    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        if self.enabled && self.listen.is_empty() {
            return Err((
                "listen".into(),
                "an enabled service needs at least one address".into(),
            ));
        }
        // One port per protocol: the firewall diverts every port to exactly
        // one place.
        for (key, addrs) in [("listen", &self.listen), ("udp_listen", &self.udp_listen)] {
            if let Some(first) = addrs.first() {
                if first.port() == 0 {
                    return Err((key.into(), "needs a fixed port, not 0".into()));
                }
                if addrs.iter().any(|a| a.port() != first.port()) {
                    return Err((key.into(), "all addresses must share one port".into()));
                }
            }
        }
        if self.exclude_ports.contains(&0) {
            return Err(("exclude_ports".into(), "ports are 1-65535".into()));
        }
        if self.tproxy_mark == 0 {
            return Err(("tproxy_mark".into(), "must not be 0".into()));
        }
        // 253-255 are the kernel's default/main/local tables.
        if self.tproxy_table == 0 || (253..=255).contains(&self.tproxy_table) {
            return Err((
                "tproxy_table".into(),
                "must not be 0 or a kernel table (253-255)".into(),
            ));
        }
        if self.payload_budget == 0 {
            return Err(("payload_budget".into(), "must be at least 1".into()));
        }
        if self.inline_bytes as u64 > self.payload_budget {
            return Err((
                "inline_bytes".into(),
                "must not exceed payload_budget".into(),
            ));
        }
        if self.data_timeout_secs == 0 {
            return Err(("data_timeout_secs".into(), "must be at least 1".into()));
        }
        if self.peek_ms > 60_000 {
            return Err(("peek_ms".into(), "must be at most 60000".into()));
        }
        if let Some(bad) = self
            .handoff
            .iter()
            .find(|s| !HANDOFF_SERVICES.contains(&s.as_str()))
        {
            return Err((
                "handoff".into(),
                format!(
                    "unknown service '{bad}' (known: {})",
                    HANDOFF_SERVICES.join(", ")
                ),
            ));
        }
        if self.banners.iter().any(|b| b.port == 0) {
            return Err(("banners".into(), "ports are 1-65535".into()));
        }
        if self.banners.iter().any(|b| b.text.len() > 4096) {
            return Err(("banners".into(), "a banner is at most 4096 bytes".into()));
        }
        if self.udp_max_flows == 0 || self.udp_max_events_per_sec == 0 {
            return Err((
                "udp_max_flows".into(),
                "udp_max_flows and udp_max_events_per_sec must be at least 1".into(),
            ));
        }
        if self.udp_max_datagram_bytes > 65_535 {
            return Err((
                "udp_max_datagram_bytes".into(),
                "must be at most 65535".into(),
            ));
        }
        Ok(())
    }

    /// The banner configured for `port`, if any.
    pub fn banner_for(&self, port: u16) -> Option<&str> {
        self.banners
            .iter()
            .find(|b| b.port == port)
            .map(|b| b.text.as_str())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn mode_and_ports_are_checked_by_key() {
        let c = Config::parse("[services.catchall]\nmode = \"tproxy\"\n", "c.toml").unwrap();
        assert_eq!(c.services.catchall.mode, super::CatchallMode::Tproxy);
        assert_eq!(c.services.catchall.tcp_port(), Some(65530));
        for (text, key) in [
            ("mode = \"nat\"", "services.catchall.mode"),
            (
                "listen = [\"0.0.0.0:1\", \"[::]:2\"]",
                "services.catchall.listen",
            ),
            (
                "udp_listen = [\"0.0.0.0:0\"]",
                "services.catchall.udp_listen",
            ),
            ("exclude_ports = [0]", "services.catchall.exclude_ports"),
            ("tproxy_table = 254", "services.catchall.tproxy_table"),
            ("handoff = [\"gopher\"]", "services.catchall.handoff"),
            (
                "inline_bytes = 10\npayload_budget = 5",
                "services.catchall.inline_bytes",
            ),
            (
                "[[services.catchall.banners]]\nport = 0\ntext = \"x\"",
                "services.catchall.banners",
            ),
        ] {
            let e = Config::parse(&format!("[services.catchall]\n{text}\n"), "c.toml").unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }
}
