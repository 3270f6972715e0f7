//! The `mirage` command: parses arguments, loads configuration, starts a role.
//!
//! Exit codes (a contract other tools rely on): 0 ok, 2 bad usage or
//! configuration (one line on stderr), 1 failure at run time.
#![forbid(unsafe_code)]

mod agent_cmd;
mod cli;
mod connflood;
mod firewall_cmd;
mod sensor_cmd;
mod server_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};

/// Exit code for bad usage or configuration.
const EXIT_USAGE: u8 = 2;

/// The multi-threaded runtime every long-running role uses; `None` (said
/// on stderr) when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("mirage: cannot start runtime: {e}"))
        .ok()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    init_logging();
    match cli.command {
        Command::Sensor(args) => sensor_cmd::run(args),
        Command::Server(args) => server_cmd::run(*args),
        Command::Agent(args) => agent_cmd::run(args),
        Command::Firewall(args) => firewall_cmd::run(args),
        Command::Init(args) => init(args),
        Command::Report(args) => mirage_report::run(*args),
        Command::ConnFlood(args) => connflood::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mirage", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// A flag clap rejects is a usage error like a bad config key: one line
/// naming the flag, exit 2. Clap's own rendering spreads it over several
/// lines (value list, tip, usage, "For more information"); scripts and
/// people reading a journal get the message and the accepted values only.
/// Help and version requests are printed as clap means them to be.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    eprintln!("mirage: {}", one_line(&e.render().to_string()));
    ExitCode::from(EXIT_USAGE)
}

/// Clap's message up to its usage and help hints, as one line.
fn one_line(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let text = lines.join(" ");
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MIRAGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn init(args: cli::InitArgs) -> ExitCode {
    let text = mirage_config::EXAMPLE_TOML;
    if args.out.as_os_str() == "-" {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    if args.out.exists() && !args.force {
        eprintln!(
            "mirage init: {} exists (use --force to overwrite)",
            args.out.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    match std::fs::write(&args.out, text) {
        Ok(()) => {
            eprintln!("wrote {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mirage init: cannot write {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}
