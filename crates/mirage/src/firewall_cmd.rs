//! `mirage firewall`: install, print or remove the table that diverts every
//! port of this host to the sensor's catch-all (see
//! `mirage_agent::firewall::divert` and `docs/firewall.md`).

use std::process::ExitCode;

use mirage_agent::firewall::divert::{DivertPlan, Diverter, ssh_session_port};
use mirage_config::Config;

use crate::EXIT_USAGE;
use crate::cli::FirewallArgs;

pub fn run(args: FirewallArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mirage: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => Config::embedded(),
    };
    let diverter = Diverter::default();
    let catchall = &config.services.catchall;
    if args.remove {
        return match diverter.remove(catchall.tproxy_mark, catchall.tproxy_table) {
            Ok(()) => {
                eprintln!("mirage firewall: removed table inet mirage_catchall");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    if args.show {
        return match diverter.show() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let session = if args.include_ssh_session {
        None
    } else {
        ssh_session_port()
    };
    let plan = match DivertPlan::from_config(&config, &args.exclude, session) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mirage: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.dry_run {
        print!("{}", plan.describe());
        return ExitCode::SUCCESS;
    }
    if !catchall.enabled {
        // Not an error: the rules may be installed before the sensor starts.
        eprintln!(
            "mirage firewall: note: services.catchall.enabled is false; nothing listens on port {} until it is on",
            plan.tcp_port
        );
    }
    match diverter.apply(&plan) {
        Ok(()) => {
            let excluded: Vec<String> = plan.exclude_tcp.iter().map(u16::to_string).collect();
            eprintln!(
                "mirage firewall: every port now goes to the catch-all (TCP :{} by {:?}{}); TCP ports left alone: {}",
                plan.tcp_port,
                plan.mode,
                plan.udp_port
                    .map(|p| format!(", UDP :{p} by tproxy"))
                    .unwrap_or_default(),
                if excluded.is_empty() {
                    "none".into()
                } else {
                    excluded.join(", ")
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn fail(e: mirage_agent::firewall::FirewallError) -> ExitCode {
    eprintln!("mirage firewall: {e}");
    ExitCode::FAILURE
}
