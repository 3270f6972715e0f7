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
use crate::cli::AgentArgs;

pub fn run(args: AgentArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match AgentConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mirage: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => AgentConfig::embedded(),
    };
    if args.print_config {
        print!("{}", config.to_toml_redacted());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mirage: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
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
