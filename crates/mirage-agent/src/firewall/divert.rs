//! The sensor host's divert table (`mirage firewall`): every TCP and UDP
//! port that is not excluded goes to the catch-all listener, so the sensor
//! learns what hits *every* port, with the original port kept.
//!
//! One `table inet mirage_catchall`, replaced atomically by one `nft -f -`
//! transaction, with two port sets and a handful of static rules:
//! - TCP, `redirect` mode: a `nat` prerouting chain redirects new
//!   connections to the catch-all port (the sensor reads the original port
//!   back with `SO_ORIGINAL_DST`);
//! - TCP, `tproxy` mode, and UDP in both modes: a `filter` prerouting chain
//!   at mangle priority assigns packets to the transparent listener
//!   (`tproxy`) and marks them; a policy route (`ip rule fwmark MARK lookup
//!   TABLE`, `local default dev lo` in that table) delivers them locally.
//!   UDP is always tproxy because a redirected datagram's original
//!   destination cannot be read back from the socket.
//!
//! What is never diverted: loopback, reply-direction packets (answers to
//! the host's own DNS lookups and outbound connections), traffic not
//! addressed to this host, and the excluded ports (the SSH session that
//! runs the command, the sensor's own service ports, configured ports).
//! `--remove` deletes exactly this table and this policy route.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Duration;

use mirage_config::{CatchallMode, Config};

use super::nft::{FirewallError, refused, run};

/// The table `mirage firewall` owns. Distinct from the agent's `mirage`
/// table, so a host may run both and each removes only its own.
pub const DIVERT_TABLE: &str = "mirage_catchall";

/// How long one nft or ip run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the divert table needs, derived from the sensor config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivertPlan {
    /// How TCP reaches the catch-all.
    pub mode: CatchallMode,
    /// The catch-all's TCP port.
    pub tcp_port: u16,
    /// The catch-all's UDP port; `None` = UDP is not diverted.
    pub udp_port: Option<u16>,
    /// TCP ports left alone.
    pub exclude_tcp: BTreeSet<u16>,
    /// UDP ports left alone.
    pub exclude_udp: BTreeSet<u16>,
    /// Packet mark of the tproxy policy route.
    pub mark: u32,
    /// Routing table of the tproxy policy route.
    pub route_table: u32,
    /// NFLOG group each new TCP SYN of a diverted port is logged to, for
    /// the catch-all's `probe` events (SYN scans never complete a
    /// connection, so no socket sees them); 0 = no logging.
    pub probe_log_group: u16,
}

/// Why a plan cannot be made from the config.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The catch-all has no TCP address to divert to.
    #[error("services.catchall.listen is empty: nothing to divert to")]
    NoListener,
}

impl DivertPlan {
    /// The plan for `config`: its catch-all ports and mode, excluding the
    /// configured ports, `extra` ports, `ssh_port` (the session running the
    /// command) and every port the sensor's other services listen on
    /// (they are served directly, not through the catch-all).
    pub fn from_config(
        config: &Config,
        extra: &[u16],
        ssh_port: Option<u16>,
    ) -> Result<DivertPlan, PlanError> {
        let c = &config.services.catchall;
        let tcp_port = c.tcp_port().ok_or(PlanError::NoListener)?;
        let mut exclude_tcp: BTreeSet<u16> = c.exclude_ports.iter().copied().collect();
        exclude_tcp.extend(extra.iter().copied());
        let exclude_udp = exclude_tcp.clone();
        exclude_tcp.extend(ssh_port);
        exclude_tcp.extend(service_ports(config));
        Ok(DivertPlan {
            mode: c.mode,
            tcp_port,
            udp_port: c.udp_port(),
            exclude_tcp,
            exclude_udp,
            mark: c.tproxy_mark,
            route_table: c.tproxy_table,
            probe_log_group: c.probe_log_group,
        })
    }

    /// Whether packets are tproxied (and so need the policy route).
    pub fn uses_tproxy(&self) -> bool {
        self.mode == CatchallMode::Tproxy || self.udp_port.is_some()
    }

    /// The nft transaction that creates or replaces the table in one commit.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // `table … {}` first makes the delete succeed when there is no table.
        let _ = writeln!(out, "table inet {DIVERT_TABLE} {{}}");
        let _ = writeln!(out, "delete table inet {DIVERT_TABLE}");
        let _ = writeln!(out, "table inet {DIVERT_TABLE} {{");
        for (name, ports) in [
            ("exclude_tcp", &self.exclude_tcp),
            ("exclude_udp", &self.exclude_udp),
        ] {
            let _ = writeln!(out, "  set {name} {{");
            let _ = writeln!(out, "    type inet_service; flags interval;");
            if !ports.is_empty() {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                let _ = writeln!(out, "    elements = {{ {} }}", list.join(", "));
            }
            let _ = writeln!(out, "  }}");
        }
        // Rules shared by both chains: what is never diverted.
        let guards = "    iif \"lo\" return\n    ct direction reply return\n    fib daddr type != local return\n";
        // Every new SYN of a diverted port goes to the catch-all's NFLOG
        // group too: a SYN scan is seen even though no connection completes.
        // (In tproxy mode it comes before the `socket transparent` rule,
        // which would otherwise take SYNs to the catch-all's own port.)
        let probe_log = match self.probe_log_group {
            0 => String::new(),
            group => format!(
                "    tcp dport != @exclude_tcp tcp flags & (fin|syn|rst|ack) == syn log group {group}\n"
            ),
        };
        if self.mode == CatchallMode::Redirect {
            let _ = writeln!(out, "  chain divert_nat {{");
            let _ = writeln!(
                out,
                "    type nat hook prerouting priority dstnat; policy accept;"
            );
            out.push_str(guards);
            let _ = writeln!(out, "    tcp dport @exclude_tcp return");
            out.push_str(&probe_log);
            let _ = writeln!(out, "    meta l4proto tcp redirect to :{}", self.tcp_port);
            let _ = writeln!(out, "  }}");
        }
        if self.uses_tproxy() {
            let mark = self.mark;
            let _ = writeln!(out, "  chain divert_tproxy {{");
            let _ = writeln!(
                out,
                "    type filter hook prerouting priority mangle; policy accept;"
            );
            out.push_str(guards);
            if self.mode == CatchallMode::Tproxy {
                out.push_str(&probe_log);
                // Packets of a connection the listener already accepted go to
                // its socket directly, without a second lookup.
                let _ = writeln!(
                    out,
                    "    meta l4proto tcp socket transparent 1 meta mark set {mark:#x} accept"
                );
                let _ = writeln!(out, "    tcp dport @exclude_tcp return");
                let _ = writeln!(
                    out,
                    "    meta l4proto tcp tproxy to :{} meta mark set {mark:#x} accept",
                    self.tcp_port
                );
            }
            if let Some(port) = self.udp_port {
                let _ = writeln!(out, "    udp dport @exclude_udp return");
                let _ = writeln!(
                    out,
                    "    meta l4proto udp tproxy to :{port} meta mark set {mark:#x} accept"
                );
            }
            let _ = writeln!(out, "  }}");
        }
        let _ = writeln!(out, "}}");
        out
    }

    /// The `ip` commands that install the policy route (IPv4 and IPv6), as
    /// argument lists after `ip`. Empty when nothing is tproxied.
    pub fn route_commands(&self) -> Vec<Vec<String>> {
        if !self.uses_tproxy() {
            return Vec::new();
        }
        let (mark, table) = (format!("{:#x}", self.mark), self.route_table.to_string());
        let mut cmds = Vec::new();
        for (family, default) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
            cmds.push(
                [
                    family, "rule", "add", "fwmark", &mark, "lookup", &table, "priority", "100",
                ]
                .map(String::from)
                .to_vec(),
            );
            cmds.push(
                [
                    family, "route", "replace", "local", default, "dev", "lo", "table", &table,
                ]
                .map(String::from)
                .to_vec(),
            );
        }
        cmds
    }

    /// What `--dry-run` prints: the nft transaction, then the policy route
    /// as comments (nft cannot express it).
    pub fn describe(&self) -> String {
        let mut out = self.render();
        let routes = self.route_commands();
        if !routes.is_empty() {
            out.push_str("# policy route for tproxy (run by `mirage firewall`):\n");
            for cmd in routes {
                let _ = writeln!(out, "#   ip {}", cmd.join(" "));
            }
        }
        out
    }
}

/// The TCP ports the sensor's enabled services listen on.
fn service_ports(config: &Config) -> BTreeSet<u16> {
    config
        .services
        .endpoints()
        .iter()
        .filter(|ep| ep.enabled)
        .flat_map(|ep| ep.listen.iter().chain(ep.fallback))
        .map(|a| a.port())
        .filter(|p| *p != 0)
        .collect()
}

/// The local port of the SSH session this command runs in
/// ([`mirage_net::host::ssh_connection`]).
pub fn ssh_session_port() -> Option<u16> {
    mirage_net::host::ssh_connection().map(|(_, _, _, port)| port)
}

/// Runs the divert table's commands. `nft` and `ip` are argv prefixes
/// (`["nft"]`, or `["ip", "netns", "exec", NS, "nft"]` in tests).
#[derive(Debug, Clone)]
pub struct Diverter {
    /// How to run nft.
    pub nft: Vec<OsString>,
    /// How to run ip.
    pub ip: Vec<OsString>,
}

impl Default for Diverter {
    fn default() -> Self {
        Diverter {
            nft: vec!["nft".into()],
            ip: vec!["ip".into()],
        }
    }
}

impl Diverter {
    /// Install (or replace) the table and, when needed, the policy route.
    /// The policy route goes first, so a tproxied packet never lacks it.
    pub fn apply(&self, plan: &DivertPlan) -> Result<(), FirewallError> {
        // A previous run's route is removed first: `ip rule add` would
        // otherwise stack a duplicate rule on every run.
        self.remove_route(plan.mark, plan.route_table);
        for cmd in plan.route_commands() {
            self.run_ip(&cmd)?;
        }
        self.run_nft_input(&plan.render())
    }

    /// Delete the table and the policy route; succeeds when neither exists.
    /// Nothing else is touched.
    pub fn remove(&self, mark: u32, route_table: u32) -> Result<(), FirewallError> {
        self.run_nft_input(&format!(
            "table inet {DIVERT_TABLE} {{}}\ndelete table inet {DIVERT_TABLE}\n"
        ))?;
        self.remove_route(mark, route_table);
        Ok(())
    }

    /// The live table as nft lists it.
    pub fn show(&self) -> Result<String, FirewallError> {
        let mut args = self.nft.clone();
        args.extend(["list", "table", "inet", DIVERT_TABLE].map(OsString::from));
        let out = run(&args, None, RUN_TIMEOUT)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(refused(&out))
        }
    }

    /// Deletes our fwmark rules (there may be several after a crash between
    /// add and replace) and flushes our routing table; absence is fine.
    fn remove_route(&self, mark: u32, route_table: u32) {
        let (mark, table) = (format!("{mark:#x}"), route_table.to_string());
        for family in ["-4", "-6"] {
            for _ in 0..16 {
                let del = [family, "rule", "del", "fwmark", &mark, "lookup", &table];
                if self.run_ip(&del.map(String::from)).is_err() {
                    break;
                }
            }
            let _ = self.run_ip(&[family, "route", "flush", "table", &table].map(String::from));
        }
    }

    fn run_ip(&self, cmd: &[String]) -> Result<(), FirewallError> {
        let mut args = self.ip.clone();
        args.extend(cmd.iter().map(OsString::from));
        let out = run(&args, None, RUN_TIMEOUT)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(refused(&out))
        }
    }

    fn run_nft_input(&self, text: &str) -> Result<(), FirewallError> {
        let mut args = self.nft.clone();
        args.extend(["-f", "-"].map(OsString::from));
        let out = run(&args, Some(text.as_bytes()), RUN_TIMEOUT)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(refused(&out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "t.toml").unwrap()
    }

    #[test]
    fn redirect_plan_excludes_services_session_and_configured_ports() {
        let c = config(
            "[services.catchall]\nexclude_ports = [7443]\n[services.ssh]\nenabled = false\n",
        );
        let plan = DivertPlan::from_config(&c, &[10022], Some(2200)).unwrap();
        assert_eq!(plan.tcp_port, 65530);
        // Redis's ports are excluded, disabled SSH's are not.
        for p in [6379, 16379, 443, 8443, 10022, 2200] {
            assert!(plan.exclude_tcp.contains(&p), "{p}");
        }
        assert!(!plan.exclude_tcp.contains(&22));
        assert!(plan.exclude_udp.contains(&7443) && !plan.exclude_udp.contains(&6379));
        let text = plan.render();
        assert!(
            text.contains("meta l4proto tcp redirect to :65530"),
            "{text}"
        );
        // UDP is on by default, and is always tproxied.
        assert!(text.contains("meta l4proto udp tproxy to :65530 meta mark set 0x6d67 accept"));
        assert!(!text.contains("tcp tproxy"));
        // New SYNs of diverted ports go to the catch-all's NFLOG group.
        assert!(text.contains("tcp flags & (fin|syn|rst|ack) == syn log group 6467"));
        assert_eq!(plan.route_commands().len(), 4);
    }

    #[test]
    fn tproxy_plan_without_udp() {
        let c = config("[services.catchall]\nmode = \"tproxy\"\nudp_listen = []\n");
        let plan = DivertPlan::from_config(&c, &[], None).unwrap();
        let text = plan.render();
        assert!(!text.contains("divert_nat"));
        assert!(text.contains("meta l4proto tcp tproxy to :65530"));
        assert!(!text.contains("udp tproxy"));
        assert!(
            plan.describe()
                .contains("#   ip -6 route replace local ::/0 dev lo table 6467")
        );
    }

    #[test]
    fn redirect_without_udp_needs_no_route() {
        let c = config("[services.catchall]\nudp_listen = []\n");
        let plan = DivertPlan::from_config(&c, &[], None).unwrap();
        assert!(!plan.uses_tproxy());
        assert!(plan.route_commands().is_empty());
        assert!(!plan.render().contains("divert_tproxy"));
    }
}
