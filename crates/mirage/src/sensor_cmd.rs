//! `mirage sensor`: load config, apply flags, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use mirage_config::Config;

use crate::EXIT_USAGE;
use crate::cli::SensorArgs;

pub fn run(args: SensorArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mirage: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => Config::embedded(),
    };
    if !args.services.is_empty()
        && let Err(e) = config.only_services(&args.services)
    {
        eprintln!("mirage: --service: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(dir) = args.log_dir {
        config.sensor.log_dir = dir;
    }
    if args.stdout {
        config.sensor.stdout = true;
    }
    if let Some(name) = args.name {
        config.sensor.name = name;
    }
    // An unusable ship key is a configuration error (exit 2), found before
    // anything binds.
    if config.sensor.ship.enabled()
        && let Err(e) = mirage_sensor::read_ship_key(&config.sensor.ship.key_file)
    {
        eprintln!("mirage: {e:#}");
        return ExitCode::from(EXIT_USAGE);
    }
    let Some(rt) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let sensor = match mirage_sensor::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mirage: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down: draining sessions and flushing events");
        sensor.shutdown().await;
        ExitCode::SUCCESS
    })
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we can only run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
