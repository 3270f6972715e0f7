//! Binding the catch-all: TCP listeners in the configured divert mode, UDP
//! sockets, the NFLOG probe group and the payload store, all before
//! anything is served, so a port or permission problem stops the start.

use std::sync::Arc;

use anyhow::Context;
use mirage_config::{CatchallMode, Config};
use mirage_net::nflog::NflogReader;
use mirage_net::{BoundListener, Divert, DivertedUdp, Emulator, Harness, bind_diverted};

use super::{Catchall, Emulators, PAYLOAD_DIR};
use crate::quarantine::Quarantine;

/// The catch-all, bound and ready to serve.
pub struct Prepared {
    /// The TCP emulator.
    pub emulator: Arc<dyn Emulator>,
    /// Its TCP listeners (taken by the runner).
    pub tcp: Vec<BoundListener>,
    udp: Vec<DivertedUdp>,
    nflog: Option<NflogReader>,
    cfg: Arc<mirage_config::CatchallConfig>,
}

/// Open the store and bind everything `[services.catchall]` asks for.
pub fn prepare(config: &Config, emulators: &Emulators) -> anyhow::Result<Prepared> {
    let c = &config.services.catchall;
    let store = Arc::new(
        Quarantine::open_named(
            &config.sensor.log_dir,
            PAYLOAD_DIR,
            c.payload_budget,
            c.payload_store_bytes,
        )
        .with_context(|| {
            format!(
                "cannot open the payload store under {}",
                config.sensor.log_dir.display()
            )
        })?,
    );
    let divert = match c.mode {
        CatchallMode::Redirect => Divert::Redirect,
        CatchallMode::Tproxy => Divert::Tproxy,
    };
    let mut tcp = Vec::new();
    for &addr in &c.listen {
        match bind_diverted(addr, divert) {
            Ok(l) => tcp.push(l),
            Err(e) if addr.is_ipv6() && e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(service = "catchall", %addr, error = %e, "IPv6 unavailable; skipping");
            }
            Err(e) => anyhow::bail!("cannot listen for catchall on {addr}: {e}"),
        }
    }
    let mut udp = Vec::new();
    for &addr in &c.udp_listen {
        // UDP is always diverted with tproxy; without the privilege the
        // socket still captures datagrams sent to its own port.
        let sock = match DivertedUdp::bind(addr, true) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(%addr, error = %e, "UDP catch-all without IP_TRANSPARENT: only its own port is captured");
                DivertedUdp::bind(addr, false)
                    .with_context(|| format!("cannot listen for catchall (udp) on {addr}"))?
            }
            Err(e) if addr.is_ipv6() && e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tracing::warn!(%addr, error = %e, "IPv6 unavailable; skipping");
                continue;
            }
            Err(e) => anyhow::bail!("cannot listen for catchall (udp) on {addr}: {e}"),
        };
        udp.push(sock);
    }
    let nflog = match c.probe_log_group {
        0 => None,
        group => match NflogReader::open(group) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(group, error = %e, "cannot read SYN probes from NFLOG; SYN scans will not be recorded");
                None
            }
        },
    };
    let catchall = Catchall::new(c.clone(), emulators, store);
    let catchall = super::tls::attach(catchall, config)?;
    Ok(Prepared {
        emulator: Arc::new(catchall),
        tcp,
        udp,
        nflog,
        cfg: Arc::new(c.clone()),
    })
}

impl Prepared {
    /// Start the UDP receivers and the probe reader under `harness`.
    pub fn spawn_background(self, harness: &Harness) {
        for sock in self.udp {
            if let Ok(a) = sock.local_addr() {
                tracing::info!(service = "catchall", addr = %a, "listening (udp)");
            }
            harness.spawn(super::udp::run(
                sock,
                self.cfg.clone(),
                harness.sensor().to_owned(),
                harness.events(),
                harness.shutdown_token(),
            ));
        }
        if let Some(r) = self.nflog {
            tracing::info!(
                service = "catchall",
                group = self.cfg.probe_log_group,
                "recording SYN probes"
            );
            harness.spawn(super::probes::run(
                r,
                harness.sensor().to_owned(),
                harness.events(),
                harness.shutdown_token(),
            ));
        }
    }
}
