//! Turns a configuration into running listeners, and stops them cleanly.
//!
//! Binding happens up front so that a port that cannot be had is reported
//! (or replaced by its fallback) before anything is served.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mirage_config::Config;
use mirage_net::{BoundListener, Emulator, Harness, Limits, bind_listener, event_channel};

use crate::quarantine::Quarantine;
use crate::sinks::{EventWriter, WriterSettings, WriterStats};

/// A sensor that is serving; call [`RunningSensor::shutdown`] to stop it.
pub struct RunningSensor {
    harness: Harness,
    writer: EventWriter,
    /// The shipper to `mirage server`, when `[sensor.ship]` is on.
    shipper: Option<(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
    bound: Vec<(String, SocketAddr)>,
    drain: Duration,
    quarantine: Arc<Quarantine>,
}

impl RunningSensor {
    /// Every (service, address) actually listening.
    pub fn bound(&self) -> &[(String, SocketAddr)] {
        &self.bound
    }

    /// Where uploaded files are kept.
    pub fn quarantine(&self) -> &Arc<Quarantine> {
        &self.quarantine
    }

    /// The event writer's counters.
    pub fn writer_stats(&self) -> Arc<WriterStats> {
        self.writer.stats()
    }

    /// Stop accepting, let sessions finish (up to the drain timeout), then
    /// write every queued event and return.
    pub async fn shutdown(self) {
        let left = self.harness.shutdown(self.drain).await;
        if left > 0 {
            tracing::warn!(
                sessions = left,
                "sessions still running after the drain timeout; cut"
            );
        }
        // The writer ends once the last sender (held by the harness and its
        // sessions) is gone; join it off the async threads.
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        // Events not shipped yet stay in the files; the checkpoint says
        // where the next start resumes.
        if let Some((cancel, task)) = self.shipper {
            cancel.cancel();
            let _ = task.await;
        }
    }
}

/// Harness limits from the `[limits]` section.
pub fn limits_from(config: &Config) -> Limits {
    let l = &config.limits;
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    Limits {
        max_connections: l.max_connections,
        max_connections_per_ip: l.max_connections_per_ip,
        handshake_timeout: secs(l.handshake_timeout_secs),
        idle_timeout: secs(l.idle_timeout_secs),
        max_session: secs(l.max_session_secs),
        byte_budget: l.session_byte_budget,
        write_timeout: Duration::from_secs(l.write_timeout_secs),
    }
}

/// The HMAC key shared with the server's ingest endpoint: the file's
/// contents without surrounding whitespace, at least 32 bytes.
pub fn read_ship_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let key = std::fs::read(path)
        .with_context(|| format!("{}: cannot read the ship key", path.display()))?;
    let key = key.trim_ascii().to_vec();
    if key.len() < mirage_core::request_auth::MIN_KEY_LEN {
        bail!(
            "{}: the ship key must be at least {} bytes",
            path.display(),
            mirage_core::request_auth::MIN_KEY_LEN
        );
    }
    Ok(key)
}

/// An enabled service and where it should listen.
struct ServicePlan {
    emulator: Arc<dyn Emulator>,
    listen: Vec<SocketAddr>,
    fallback: Vec<SocketAddr>,
}

/// Bind every enabled service, start the event writer and serve.
pub async fn start(config: Config) -> anyhow::Result<RunningSensor> {
    match mirage_net::raise_fd_limit() {
        Ok(n) if (n as usize) < config.limits.max_connections + 64 => {
            tracing::warn!(
                open_files = n,
                max_connections = config.limits.max_connections,
                "open-file limit is below max_connections; accept will fail before the cap is reached"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let sensor_name = config.sensor.effective_name();
    let q = &config.sensor.quarantine;
    // Emulators that accept files share it.
    let quarantine = Arc::new(
        Quarantine::open(&config.sensor.log_dir, q.max_file_bytes, q.max_total_bytes)
            .with_context(|| {
                format!(
                    "cannot open the quarantine under {}",
                    config.sensor.log_dir.display()
                )
            })?,
    );
    let mut plan: Vec<ServicePlan> = Vec::new();
    if config.services.redis.enabled {
        let r = &config.services.redis;
        let emu = crate::redis::RedisEmulator::new(r.clone())?;
        plan.push(ServicePlan {
            emulator: Arc::new(emu),
            listen: r.listen.clone(),
            fallback: r.fallback_listen.clone(),
        });
    }
    if config.services.mysql.enabled {
        let m = &config.services.mysql;
        plan.push(ServicePlan {
            emulator: Arc::new(crate::mysql::MysqlEmulator::new(m.clone())),
            listen: m.listen.clone(),
            fallback: m.fallback_listen.clone(),
        });
    }
    if config.services.ftp.enabled {
        let f = &config.services.ftp;
        let emu =
            crate::ftp::FtpEmulator::new(f.clone(), quarantine.clone(), &config.sensor.log_dir)
                .context("cannot set up the FTP honeypot")?;
        plan.push(ServicePlan {
            emulator: Arc::new(emu),
            listen: f.listen.clone(),
            fallback: f.fallback_listen.clone(),
        });
    }
    if config.services.rsync.enabled {
        let r = &config.services.rsync;
        plan.push(ServicePlan {
            emulator: Arc::new(crate::rsync::RsyncEmulator::new(
                r.clone(),
                quarantine.clone(),
            )),
            listen: r.listen.clone(),
            fallback: r.fallback_listen.clone(),
        });
    }
    if config.services.mongodb.enabled {
        let m = &config.services.mongodb;
        plan.push(ServicePlan {
            emulator: Arc::new(crate::mongodb::MongoEmulator::new(m.clone())),
            listen: m.listen.clone(),
            fallback: m.fallback_listen.clone(),
        });
    }
    if config.services.ssh.enabled {
        let c = &config.services.ssh;
        let emu =
            crate::ssh::SshEmulator::new(c.clone(), &config.sensor.log_dir, quarantine.clone())
                .context("cannot start the SSH honeypot")?;
        plan.push(ServicePlan {
            emulator: Arc::new(emu),
            listen: c.listen.clone(),
            fallback: c.fallback_listen.clone(),
        });
    }
    if config.services.telnet.enabled {
        let c = &config.services.telnet;
        let emu = crate::telnet::TelnetEmulator::new(
            c.clone(),
            &config.sensor.log_dir,
            quarantine.clone(),
        );
        plan.push(ServicePlan {
            emulator: Arc::new(emu),
            listen: c.listen.clone(),
            fallback: c.fallback_listen.clone(),
        });
    }
    if config.services.http.enabled {
        let h = &config.services.http;
        let site = crate::http::site::Site::new(h.clone())?;
        plan.push(ServicePlan {
            emulator: Arc::new(crate::http::HttpEmulator::new(site)),
            listen: h.listen.clone(),
            fallback: h.fallback_listen.clone(),
        });
    }
    if config.services.elasticsearch.enabled {
        let e = &config.services.elasticsearch;
        let app = crate::elasticsearch::Elasticsearch::new(e.clone(), &sensor_name);
        plan.push(ServicePlan {
            emulator: Arc::new(crate::http::HttpEmulator::new(app)),
            listen: e.listen.clone(),
            fallback: e.fallback_listen.clone(),
        });
    }
    if config.services.https.enabled {
        let h = &config.services.https;
        let ca = crate::https::cert_authority(&config.sensor.log_dir, &h.default_name)?;
        let site = crate::http::site::Site::new(config.services.http.clone())?;
        plan.push(ServicePlan {
            emulator: Arc::new(crate::https::HttpsEmulator::new(site, &ca)),
            listen: h.listen.clone(),
            fallback: h.fallback_listen.clone(),
        });
    }
    // The catch-all hands sessions to the emulators built above (the same
    // instances, sharing their state).
    let mut catchall = if config.services.catchall.enabled {
        let emulators: crate::catchall::Emulators = plan
            .iter()
            .map(|p| (p.emulator.service().to_owned(), p.emulator.clone()))
            .collect();
        Some(crate::catchall::setup::prepare(&config, &emulators)?)
    } else {
        None
    };
    if plan.is_empty() && catchall.is_none() {
        bail!("no service is enabled");
    }
    let mut listeners = Vec::new();
    for p in plan {
        let bound = bind_service(p.emulator.service(), &p.listen, &p.fallback)?;
        listeners.push((p.emulator, bound));
    }
    if let Some(c) = catchall.as_mut() {
        listeners.push((c.emulator.clone(), std::mem::take(&mut c.tcp)));
    }

    let (tx, rx) = event_channel(config.sensor.event_queue);
    let writer = EventWriter::start(
        rx,
        WriterSettings {
            dir: config.sensor.log_dir.clone(),
            stdout: config.sensor.stdout,
            max_bytes: config.sensor.events_max_bytes,
            sensor: sensor_name.clone(),
        },
        tokio::runtime::Handle::current(),
    )
    .with_context(|| format!("cannot write events to {}", config.sensor.log_dir.display()))?;
    let shipper = if config.sensor.ship.enabled() {
        let ship = &config.sensor.ship;
        let key = read_ship_key(&ship.key_file)?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let settings = crate::sinks::ship::ShipSettings {
            dir: config.sensor.log_dir.clone(),
            server: ship.server.clone(),
            key,
            batch_events: ship.batch_events,
            backfill: ship.backfill,
            // Validated with the config: 64 hex digits or empty.
            pin: mirage_net::Pin::parse(&ship.server_pin),
            sensor: mirage_core::request_auth::sender_name(&sensor_name),
        };
        if settings.pin.is_some() {
            tracing::info!(server = %ship.server, "shipping events to mirage server over TLS (pinned certificate)");
        } else {
            tracing::warn!(server = %ship.server, "shipping events to mirage server over plain HTTP (no [sensor.ship] server_pin): signed, but readable on the way");
        }
        let task = tokio::spawn(crate::sinks::ship::run(settings, cancel.clone()));
        Some((cancel, task))
    } else {
        None
    };
    let harness = Harness::new(&sensor_name, tx).with_memory_budget(config.limits.memory_budget);
    let limits = limits_from(&config);
    let mut bound = Vec::new();
    for (emu, ls) in listeners {
        for l in ls {
            tracing::info!(service = emu.service(), addr = %l.local_addr(), "listening");
            bound.push((emu.service().to_owned(), l.local_addr()));
            harness.serve(l, emu.clone(), limits.clone());
        }
    }
    if let Some(c) = catchall {
        c.spawn_background(&harness);
    }
    Ok(RunningSensor {
        harness,
        writer,
        shipper,
        bound,
        drain: Duration::from_secs(config.sensor.drain_timeout_secs),
        quarantine,
    })
}

/// Bind `listen`; if any address cannot be had because it is in use or
/// privileged and a fallback is configured, bind the fallback instead. An
/// IPv6 address on a host without IPv6 is skipped with a warning as long as
/// something else is bound.
fn bind_service(
    service: &str,
    listen: &[SocketAddr],
    fallback: &[SocketAddr],
) -> anyhow::Result<Vec<BoundListener>> {
    match bind_all(service, listen) {
        Ok(b) => Ok(b),
        Err((addr, e))
            if !fallback.is_empty()
                && matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::PermissionDenied) =>
        {
            tracing::warn!(service, %addr, error = %e, fallback = ?fallback, "cannot bind; using the fallback addresses");
            bind_all(service, fallback)
                .map_err(|(addr, e)| anyhow::anyhow!("cannot listen for {service} on {addr}: {e}"))
        }
        Err((addr, e)) => Err(anyhow::anyhow!(
            "cannot listen for {service} on {addr}: {e}"
        )),
    }
}

fn bind_all(
    service: &str,
    addrs: &[SocketAddr],
) -> Result<Vec<BoundListener>, (SocketAddr, std::io::Error)> {
    let mut out = Vec::new();
    let mut skipped = None;
    for &addr in addrs {
        match bind_listener(addr) {
            Ok(l) => out.push(l),
            // No IPv6 on this host: not worth failing for if IPv4 is served.
            Err(e) if addr.is_ipv6() && ipv6_unavailable(&e) => {
                tracing::warn!(service, %addr, error = %e, "IPv6 unavailable; skipping");
                skipped = Some((addr, e));
            }
            Err(e) => return Err((addr, e)),
        }
    }
    match skipped {
        Some(s) if out.is_empty() => Err(s),
        _ => Ok(out),
    }
}

fn ipv6_unavailable(e: &std::io::Error) -> bool {
    const EAFNOSUPPORT: i32 = 97;
    e.kind() == ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(EAFNOSUPPORT)
}
