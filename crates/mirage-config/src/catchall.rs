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
}

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
        Ok(())
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
        ] {
            let e = Config::parse(&format!("[services.catchall]\n{text}\n"), "c.toml").unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }
}
