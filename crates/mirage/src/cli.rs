//! Command-line definitions (clap). The flags are a contract: tests and other
//! tools call them, see ARCHITECTURE's CLI section.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Deception defense in one binary.
#[derive(Parser, Debug)]
#[command(name = "mirage", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the honeypot sensor (embedded default config when given no flags).
    Sensor(SensorArgs),
    /// Run the detection server: syslog and sensor events in, parsers and
    /// rules, attacker decisions out (embedded default config with no flags).
    /// Subcommands read and change what it stored.
    Server(Box<ServerArgs>),
    /// Run the host agent: ship service logs (files, journald, Redis
    /// MONITOR) to the server as syslog (embedded default config with no
    /// flags).
    Agent(AgentArgs),
    /// Divert every TCP and UDP port of this host to the sensor's
    /// catch-all (`[services.catchall]`), in one nftables transaction;
    /// `--remove` deletes exactly that table.
    Firewall(FirewallArgs),
    /// Write the annotated example configuration.
    Init(InitArgs),
    /// Analyse captures (mirage JSONL, tcppc-go, netfilter LOG lines): counts,
    /// top ports, scans, countries, payload search; text, JSON, CSV or HTML.
    Report(Box<mirage_report::ReportArgs>),
    /// Load generator and bare accept loop for floods and benchmarks.
    #[command(name = "x-connflood", hide = true)]
    ConnFlood(crate::connflood::FloodArgs),
    /// Print shell completions.
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
pub struct SensorArgs {
    /// TOML configuration file (default: the embedded default config).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Run only the named services, on the given addresses: NAME=ADDR or
    /// NAME=PORT (all IPv4 addresses). Repeatable.
    #[arg(long = "service", value_name = "NAME=ADDR", value_parser = parse_service)]
    pub services: Vec<(String, SocketAddr)>,
    /// Directory for event files (overrides sensor.log_dir).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Also write events to standard output.
    #[arg(long)]
    pub stdout: bool,
    /// Sensor name written into events (overrides sensor.name).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// TOML configuration file (default: the embedded default config).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides server.data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Receive syslog over TCP and UDP on this address (overrides
    /// syslog.listen; no fallback port). Repeatable.
    #[arg(long, value_name = "ADDR")]
    pub syslog: Vec<SocketAddr>,
    /// Serve the policy API for agents on this address (overrides
    /// api.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Print the annotated default configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// List, add or delete attacker decisions.
    Decisions {
        #[command(subcommand)]
        op: DecisionsOp,
    },
    /// Show stored events, newest first.
    Events(EventsArgs),
    /// Show agents and their last heartbeat; `agents set` changes an
    /// enrolled agent's mode, redirects or whitelist.
    #[command(args_conflicts_with_subcommands = true)]
    Agents {
        #[command(subcommand)]
        op: Option<AgentsOp>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show alerts, newest first.
    Alerts(StoreArgs),
    /// Make one-time enrollment tokens for agents.
    Tokens {
        #[command(subcommand)]
        op: TokensOp,
    },
    /// Print the SHA-256 pin of the server's certificate (policy API and
    /// ingest), for sensors' `[sensor.ship] server_pin`; makes the
    /// certificate if the server has none yet.
    Pin(StoreArgs),
}

#[derive(Subcommand, Debug)]
pub enum AgentsOp {
    /// Change an enrolled agent's settings; it applies them within about a
    /// second (a new snapshot), or at its next contact. Unnamed settings
    /// stay as they are.
    Set {
        /// The agent's id (`mirage server agents`).
        agent_id: String,
        /// New mode.
        #[arg(long, value_parser = ["honeypot", "deception", "reflect", "firewall"])]
        mode: Option<String>,
        /// Replace the redirects with these (`PORT=HOST:PORT`, TCP).
        /// Repeatable.
        #[arg(long, value_name = "PORT=HOST:PORT")]
        redirect: Vec<String>,
        /// Remove every redirect (before adding --redirect ones).
        #[arg(long)]
        clear_redirects: bool,
        /// Replace the whitelisted sources with these CIDRs. Repeatable.
        #[arg(long, value_name = "CIDR")]
        whitelist: Vec<String>,
        /// Remove every whitelisted source (before adding --whitelist ones).
        #[arg(long)]
        clear_whitelist: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an agent: its key stops working at once (its firewall rules
    /// stay until their decisions expire). `tokens create --replace ID`
    /// makes a token that enrolls it again with a new key.
    Revoke {
        /// The agent's id.
        agent_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensOp {
    /// Print a new one-time token (`mirage agent --enroll TOKEN`). It
    /// carries the SHA-256 of the policy API's certificate, so the agent
    /// talks only to this server.
    Create {
        /// How long it can be used (`30m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        ttl: String,
        /// Let the token enroll this already enrolled agent id again, with
        /// a new key (without it, enrolling a known id is refused).
        #[arg(long, value_name = "AGENT_ID")]
        replace: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (by id: the start of their hash; never the token).
    List(StoreArgs),
    /// Delete an unused token.
    Revoke {
        /// Its id, as `tokens list` shows it.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the store is, and how to print.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the server (default: server.data_dir of --config,
    /// else ./mirage-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Server configuration to take the data directory from.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Most rows to show.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Text,
    /// JSON (decisions, agents, alerts: one array; events: one schema
    /// event per line, as the sensor writes them).
    Json,
}

#[derive(Subcommand, Debug)]
pub enum DecisionsOp {
    /// Active decisions (with --all, expired ones still stored too).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Include expired decisions.
        #[arg(long)]
        all: bool,
    },
    /// Decide about an address by hand (the running server applies it
    /// within a second).
    Add {
        /// The address.
        ip: std::net::IpAddr,
        /// What to do with it.
        #[arg(long = "type", default_value = "block", value_parser = ["deceive", "block", "reflect"])]
        decision: String,
        /// How long (`30m`, `4h`, `7d`).
        #[arg(long, default_value = "4h")]
        ttl: String,
        /// Why, for the record.
        #[arg(long, default_value = "added by operator")]
        reason: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove the decisions about an address (all types unless --type).
    Delete {
        /// The address.
        ip: std::net::IpAddr,
        /// Only this type.
        #[arg(long = "type", value_parser = ["deceive", "block", "reflect"])]
        decision: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only events from this source address.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// Only this event kind (`auth.attempt`, `command`, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this service (`ssh`, `redis`, …).
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// TOML configuration file (default: the embedded default config).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the configuration in effect (passwords hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// The server's policy API, host:port (overrides policy.server).
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// One-time enrollment token (from `mirage server tokens create`).
    #[arg(long, value_name = "TOKEN")]
    pub enroll: Option<String>,
    /// Enforcement mode (overrides policy.mode).
    #[arg(long, value_parser = ["honeypot", "deception", "reflect", "firewall"])]
    pub mode: Option<String>,
    /// Local port and its honeypot, PORT=HOST:PORT. Repeatable; replaces
    /// policy.redirect.
    #[arg(long, value_name = "PORT=HOST:PORT")]
    pub redirect: Vec<String>,
    /// Source CIDR never touched. Repeatable; added to policy.whitelist.
    #[arg(long, value_name = "CIDR")]
    pub whitelist: Vec<String>,
    /// Tail a log file as SERVICE (ssh, ftp, rsync, mysql, redis):
    /// SERVICE:PATH. Repeatable; replaces the configured sources.
    #[arg(long, value_name = "SERVICE:PATH")]
    pub tail: Vec<String>,
    /// Where to ship logs, host:port of the server's syslog (overrides
    /// output.address).
    #[arg(long, value_name = "HOST:PORT")]
    pub syslog: Option<String>,
    /// Directory for checkpoints, queue and keys (overrides agent.state_dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// The agent's nftables table (`inet mirage`).
    Firewall {
        #[command(subcommand)]
        op: FirewallOp,
    },
}

#[derive(Subcommand, Debug)]
pub enum FirewallOp {
    /// Print the live table.
    Show,
    /// Remove the table (what a clean agent stop does; for recovery when an
    /// agent is gone for good).
    Remove,
}

#[derive(Args, Debug)]
pub struct FirewallArgs {
    /// The sensor's TOML configuration (default: the embedded default);
    /// its `[services.catchall]` gives the mode, ports and exclusions.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the nft transaction (and the policy route) instead of applying it.
    #[arg(long, conflicts_with_all = ["remove", "show"])]
    pub dry_run: bool,
    /// Delete the table and the policy route, and nothing else.
    #[arg(long, conflicts_with = "show")]
    pub remove: bool,
    /// Print the live table.
    #[arg(long)]
    pub show: bool,
    /// Another port never to divert (TCP and UDP). Repeatable.
    #[arg(long = "exclude", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub exclude: Vec<u16>,
    /// Divert even the port of the SSH session this runs in (found in
    /// SSH_CONNECTION, ours or an ancestor's). Off: the session is kept.
    #[arg(long)]
    pub include_ssh_session: bool,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Where to write it; `-` for standard output.
    #[arg(long, short, default_value = "mirage.toml")]
    pub out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// `NAME=ADDR` of `--service`: ADDR is `IP:PORT`, `[IPv6]:PORT` or a bare
/// `PORT` (all IPv4 addresses). The messages say which part is wrong, since
/// clap puts them on the one line that names the flag.
fn parse_service(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=ADDR (e.g. redis=127.0.0.1:6379)"))?;
    let (host, port) = match addr.rsplit_once(':') {
        Some((host, port)) => (Some(host), port),
        None => (None, addr),
    };
    let port = match port.parse::<u64>() {
        Ok(p) => u16::try_from(p)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port {p} is out of range (1-65535)"))?,
        Err(_) => return Err(format!("'{addr}' is not IP:PORT, [IPv6]:PORT or PORT")),
    };
    let ip = match host {
        None => IpAddr::from([0, 0, 0, 0]),
        Some(h) => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6
                .parse::<std::net::Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| format!("'{v6}' is not an IPv6 address"))?,
            None => h
                .parse::<std::net::Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| {
                    format!("'{h}' is not an IPv4 address (IPv6 goes in brackets: [::1]:PORT)")
                })?,
        },
    };
    Ok((name.to_ascii_lowercase(), SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::parse_service;

    #[test]
    fn service_addresses() {
        let ok = |s: &str| parse_service(s).unwrap().1.to_string();
        assert_eq!(ok("redis=6379"), "0.0.0.0:6379");
        assert_eq!(ok("redis=127.0.0.1:16379"), "127.0.0.1:16379");
        assert_eq!(ok("Redis=[::1]:65535"), "[::1]:65535");
        assert_eq!(parse_service("REDIS=1").unwrap().0, "redis");
        let err = |s: &str| parse_service(s).unwrap_err();
        assert!(err("redis=70000").contains("port 70000 is out of range"));
        assert!(err("redis=127.0.0.1:0").contains("port 0 is out of range"));
        assert!(err("redis=[::1]:99999").contains("out of range"));
        assert!(err("redis").contains("NAME=ADDR"));
        assert!(err("redis=localhost:6379").contains("'localhost' is not an IPv4"));
        assert!(err("redis=::1").contains("brackets"));
        assert!(err("redis=[::x]:1").contains("IPv6"));
        assert!(err("redis=127.0.0.1:http").contains("not IP:PORT"));
    }
}
