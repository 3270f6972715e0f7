//! Command-line definitions (clap). The flags are a contract: tests and other
//! tools call them, see ARCHITECTURE's CLI section.

use std::net::SocketAddr;
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
    /// Write the annotated example configuration.
    Init(InitArgs),
    /// Analyse captures (mirage JSONL, tcppc-go, netfilter LOG lines): counts,
    /// top ports, scans, countries, payload search; text, JSON, CSV or HTML.
    Report(Box<mirage_report::ReportArgs>),
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
pub struct InitArgs {
    /// Where to write it; `-` for standard output.
    #[arg(long, short, default_value = "mirage.toml")]
    pub out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

fn parse_service(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=ADDR"))?;
    let addr = if let Ok(port) = addr.parse::<u16>() {
        SocketAddr::from(([0, 0, 0, 0], port))
    } else {
        addr.parse::<SocketAddr>()
            .map_err(|e| format!("'{addr}': {e}"))?
    };
    Ok((name.to_ascii_lowercase(), addr))
}
