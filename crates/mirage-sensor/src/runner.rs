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
        listeners.push((
            c.emulator.clone(),
            BoundService {
                listeners: std::mem::take(&mut c.tcp),
                fallback_reason: None,
            },
        ));
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
    // One line per service, so an operator sees at a glance where each one
    // really is (and why it is not where configured).
    for (emu, b) in listeners {
        let addrs: Vec<String> = b
            .listeners
            .iter()
            .map(|l| l.local_addr().to_string())
            .collect();
        match &b.fallback_reason {
            Some(why) => tracing::warn!(
                "{}: listening on {} ({why})",
                emu.service(),
                addrs.join(", ")
            ),
            None => tracing::info!("{}: listening on {}", emu.service(), addrs.join(", ")),
        }
        for l in b.listeners {
            bound.push((emu.service().to_owned(), l.local_addr()));
            harness.serve(l, emu.clone(), limits.clone());
        }
    }
    tracing::info!(
        "events: {}{}",
        config
            .sensor
            .log_dir
            .join("events-YYYY-MM-DD.jsonl")
            .display(),
        if config.sensor.stdout {
            " and standard output"
        } else {
            ""
        }
    );
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

/// What binding a service got: its listeners and, when the fallback was
/// taken, why (for the start-up summary).
struct BoundService {
    listeners: Vec<BoundListener>,
    fallback_reason: Option<String>,
}

/// Bind `listen`; if any address cannot be had because it is in use or
/// privileged and a fallback is configured, bind the fallback instead,
/// narrowed by [`narrow_fallback`] so that it never listens on more
/// addresses than `listen` names. An IPv6 address on a host without IPv6 is
/// skipped with a warning as long as something else is bound.
fn bind_service(
    service: &str,
    listen: &[SocketAddr],
    fallback: &[SocketAddr],
) -> anyhow::Result<BoundService> {
    let fallback = narrow_fallback(listen, fallback);
    match bind_all(service, listen) {
        Ok(listeners) => Ok(BoundService {
            listeners,
            fallback_reason: None,
        }),
        Err((addr, e))
            if !fallback.is_empty()
                && matches!(e.kind(), ErrorKind::AddrInUse | ErrorKind::PermissionDenied) =>
        {
            let reason = format!("fallback: {addr}: {e}");
            match bind_all(service, &fallback) {
                Ok(listeners) => Ok(BoundService {
                    listeners,
                    fallback_reason: Some(reason),
                }),
                Err((faddr, fe)) => Err(anyhow::anyhow!(
                    "cannot listen for {service} on {faddr} ({reason}): {fe}"
                )),
            }
        }
        Err((addr, e)) => Err(anyhow::anyhow!(
            "cannot listen for {service} on {addr}: {e}"
        )),
    }
}

/// The fallback addresses that do not widen `listen`. A fallback address
/// whose IP `listen` already covers (the same IP, or the unspecified
/// address of its family) is kept; any other, like the default
/// `0.0.0.0:16379` for a service configured on `127.0.0.1:6379`, becomes
/// the configured addresses of its family on its port. A honeypot meant
/// for loopback must not appear on every interface because its port was
/// busy.
fn narrow_fallback(listen: &[SocketAddr], fallback: &[SocketAddr]) -> Vec<SocketAddr> {
    let covered = |f: &SocketAddr| {
        listen
            .iter()
            .any(|l| l.ip() == f.ip() || (l.ip().is_unspecified() && l.is_ipv4() == f.is_ipv4()))
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for f in fallback {
        let narrowed: Vec<SocketAddr> = if covered(f) {
            vec![*f]
        } else {
            listen
                .iter()
                .filter(|l| l.is_ipv4() == f.is_ipv4())
                .map(|l| SocketAddr::new(l.ip(), f.port()))
                .collect()
        };
        for a in narrowed {
            // Two listen addresses of a family on different ports map to
            // the same fallback; binding it twice would fail.
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::narrow_fallback;
    use std::net::SocketAddr;

    fn addrs(s: &[&str]) -> Vec<SocketAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn the_default_fallback_of_a_loopback_service_stays_on_loopback() {
        let listen = addrs(&["127.0.0.1:6379"]);
        let fallback = addrs(&["0.0.0.0:16379", "[::]:16379"]);
        assert_eq!(
            narrow_fallback(&listen, &fallback),
            addrs(&["127.0.0.1:16379"])
        );
    }

    #[test]
    fn an_all_addresses_service_falls_back_to_all_addresses() {
        let listen = addrs(&["0.0.0.0:6379", "[::]:6379"]);
        let fallback = addrs(&["0.0.0.0:16379", "[::]:16379"]);
        assert_eq!(narrow_fallback(&listen, &fallback), fallback);
    }

    #[test]
    fn each_family_keeps_its_configured_addresses() {
        let listen = addrs(&["10.0.0.5:6379", "10.0.0.5:6380", "[::1]:6379"]);
        let fallback = addrs(&["192.0.2.1:16379", "[::]:16379"]);
        assert_eq!(
            narrow_fallback(&listen, &fallback),
            addrs(&["10.0.0.5:16379", "[::1]:16379"])
        );
        // No IPv4 address configured: an IPv4 fallback has nothing to keep.
        assert!(narrow_fallback(&addrs(&["[::1]:6379"]), &addrs(&["0.0.0.0:1"])).is_empty());
    }
}
