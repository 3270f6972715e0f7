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
    let log_dir_flag = args.log_dir.is_some();
    if let Some(dir) = args.log_dir {
        config.sensor.log_dir = dir;
    }
    // A directory events cannot be written to is a usage error (exit 2,
    // naming where the path came from), found before anything binds, not
    // a run-time failure after the ports are taken.
    if let Err(e) = check_writable(&config.sensor.log_dir) {
        let dir = config.sensor.log_dir.display();
        let problem = format!("{dir}: cannot write events there: {e}");
        match (&args.config, log_dir_flag) {
            (_, true) => eprintln!("mirage: --log-dir {problem}"),
            (Some(path), false) => eprintln!(
                "mirage: {}",
                mirage_config::ConfigError::Invalid {
                    origin: path.display().to_string(),
                    key: "sensor.log_dir".into(),
                    message: problem,
                }
            ),
            (None, false) => {
                eprintln!("mirage: sensor.log_dir (default; set --log-dir) {problem}")
            }
        }
        return ExitCode::from(EXIT_USAGE);
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

/// Create `dir` if needed and prove a file can be made in it (a directory
/// that exists can still be read-only, or not a directory at all).
fn check_writable(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".mirage-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
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
