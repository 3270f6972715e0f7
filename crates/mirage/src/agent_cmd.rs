//! `mirage agent`: load and check the config, then run the agent until
//! SIGINT/SIGTERM, which checkpoint every source and sync the queue.
//!
//! Exit codes: 2 for a configuration that cannot be used (one line on
//! stderr naming the file and key, or the unusable TLS file), 1 for a
//! failure while running (the state directory or the queue).

use std::process::ExitCode;

use mirage_config::AgentConfig;
use tokio_util::sync::CancellationToken;

use crate::EXIT_USAGE;
use crate::cli::{AgentArgs, AgentCommand, FirewallOp};

pub fn run(args: AgentArgs) -> ExitCode {
    if let Some(AgentCommand::Firewall { op }) = &args.command {
        return firewall(op);
    }
    let mut config = match &args.config {
        Some(path) => match AgentConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mirage: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => AgentConfig::embedded(),
    };
    if let Err(e) = apply_flags(&mut config, &args) {
        eprintln!("mirage: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    if args.print_config {
        print!("{}", config.to_toml_redacted());
        return ExitCode::SUCCESS;
    }
    let Some(rt) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        let agent = tokio::spawn(mirage_agent::run(config, cancel.clone()));
        let signal = cancel.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: stopping");
            signal.cancel();
        });
        match agent.await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) if e.is_config() => {
                eprintln!("mirage: {e}");
                ExitCode::from(EXIT_USAGE)
            }
            Ok(Err(e)) => {
                eprintln!("mirage: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("mirage: agent failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent runs until killed; its state is
        // still crash-safe.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// The quick-start flags: everything they set can also live in the config.
fn apply_flags(config: &mut AgentConfig, args: &AgentArgs) -> Result<(), String> {
    use mirage_config::agent::{LineFormat, SourceConfig, SourceKind, SourceService, StartAt};
    if let Some(s) = &args.server {
        config.policy.server = s.clone();
    }
    if let Some(t) = &args.enroll {
        config.policy.enroll_token = Some(t.clone());
    }
    if let Some(m) = &args.mode {
        config.policy.mode = m.clone();
    }
    if !args.redirect.is_empty() {
        config.policy.redirect = args.redirect.clone();
    }
    config
        .policy
        .whitelist
        .extend(args.whitelist.iter().cloned());
    if let Some(a) = &args.syslog {
        config.output.address = a.clone();
    }
    if let Some(d) = &args.state_dir {
        config.agent.state_dir = d.clone();
    }
    if !args.tail.is_empty() {
        config.sources.clear();
        for (i, t) in args.tail.iter().enumerate() {
            let (service, path) = t
                .split_once(':')
                .ok_or_else(|| format!("--tail: '{t}' is not SERVICE:PATH"))?;
            let service = match service {
                "ssh" => SourceService::Ssh,
                "ftp" => SourceService::Ftp,
                "rsync" => SourceService::Rsync,
                "mysql" => SourceService::Mysql,
                "redis" => SourceService::Redis,
                other => {
                    return Err(format!(
                        "--tail: unknown service '{other}' (ssh, ftp, rsync, mysql, redis)"
                    ));
                }
            };
            let mut src = SourceConfig::new(&format!("tail{i}"), SourceKind::File, service);
            src.paths = Some(vec![path.into()]);
            src.format = Some(LineFormat::Auto);
            src.read_from = Some(StartAt::End);
            config.sources.push(src);
        }
    }
    config
        .validate()
        .map_err(|(key, m)| format!("command line: key '{key}': {m}"))
}

/// `mirage agent firewall show|remove`.
fn firewall(op: &FirewallOp) -> ExitCode {
    use mirage_agent::firewall::{Nft, NftConfig};
    let mut nft = match Nft::new(NftConfig::default()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("mirage: nftables: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match op {
        FirewallOp::Show => nft.show().map(|t| print!("{t}")),
        FirewallOp::Remove => nft.remove(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirage: nftables: {e}");
            ExitCode::FAILURE
        }
    }
}
