//! Listeners and the per-connection run loop shared by every emulator.
//!
//! [`Harness`] owns the shutdown token and the set of live session tasks:
//! on shutdown it stops accepting, lets sessions that are mid-reply finish
//! (sessions waiting for input end at once with reason `shutdown`), waits up
//! to a drain timeout, and returns so the caller can flush the sinks.

use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use mirage_core::EventKind;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Emulator;
use crate::divert::Divert;
use crate::emit::EventTx;
use crate::limits::{ConnLimiter, Limits};
use crate::memory_budget::MemoryBudget;
use crate::session::{Session, SessionEnd, tcp_event};

/// A bound, listening TCP socket not yet serving.
pub struct BoundListener {
    listener: TcpListener,
    addr: SocketAddr,
    divert: Divert,
}

impl BoundListener {
    /// The address actually bound (port resolved when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Bind a TCP listener. IPv6 sockets are v6-only so `0.0.0.0:P` and `[::]:P`
/// can be bound side by side.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<BoundListener> {
    bind_diverted(addr, Divert::None)
}

/// Bind a TCP listener that receives connections the firewall diverted to
/// it: transparent under [`Divert::Tproxy`] (needs root), and every session
/// records its connection's original destination as `local`.
pub fn bind_diverted(addr: SocketAddr, divert: Divert) -> std::io::Result<BoundListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if divert == Divert::Tproxy {
        crate::divert::set_transparent(&socket, addr.is_ipv6())?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    let listener = TcpListener::from_std(socket.into())?;
    let addr = listener.local_addr()?;
    Ok(BoundListener {
        listener,
        addr,
        divert,
    })
}

/// Runs listeners and tracks their sessions.
pub struct Harness {
    sensor: Arc<str>,
    memory: Arc<MemoryBudget>,
    events: EventTx,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Harness {
    /// A harness emitting events as sensor `sensor` into `events`.
    pub fn new(sensor: &str, events: EventTx) -> Self {
        Harness {
            sensor: Arc::from(sensor),
            memory: Arc::new(MemoryBudget::default()),
            events,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Hold all sessions' read buffers together to `bytes` (default
    /// 256 MiB); call before [`Harness::serve`].
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory = Arc::new(MemoryBudget::new(bytes));
        self
    }

    /// The token cancelled when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The sensor name events carry.
    pub fn sensor(&self) -> &str {
        &self.sensor
    }

    /// Where events go (for tasks that emit outside a session: UDP flows,
    /// probes).
    pub fn events(&self) -> EventTx {
        self.events.clone()
    }

    /// Run a background task (a UDP receiver, a probe reader) that shutdown
    /// waits for; it should end when [`Harness::shutdown_token`] fires.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Serve `listener` with `emulator` until shutdown.
    pub fn serve(&self, listener: BoundListener, emulator: Arc<dyn Emulator>, limits: Limits) {
        let ctx = AcceptLoop {
            sensor: self.sensor.clone(),
            service: Arc::from(emulator.service()),
            emulator,
            limiter: ConnLimiter::new(&limits),
            limits: Arc::new(limits),
            memory: self.memory.clone(),
            events: self.events.clone(),
            shutdown: self.shutdown.clone(),
            tracker: self.tracker.clone(),
        };
        self.tracker.spawn(ctx.run(listener));
    }

    /// Stop accepting, end idle sessions, and wait up to `drain` for the rest.
    /// Returns how many sessions were still running when the wait gave up.
    pub async fn shutdown(self, drain: Duration) -> usize {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            return self.tracker.len();
        }
        0
    }
}

struct AcceptLoop {
    sensor: Arc<str>,
    service: Arc<str>,
    emulator: Arc<dyn Emulator>,
    limiter: ConnLimiter,
    limits: Arc<Limits>,
    memory: Arc<MemoryBudget>,
    events: EventTx,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl AcceptLoop {
    async fn run(self, listener: BoundListener) {
        let mut accept_errors = 0u64;
        loop {
            // Take a global slot first: at the cap, connections queue in the
            // kernel backlog rather than as tasks in our memory.
            let permit = tokio::select! {
                p = self.limiter.global_slot() => p,
                _ = self.shutdown.cancelled() => break,
            };
            let accepted = tokio::select! {
                r = listener.listener.accept() => r,
                _ = self.shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off instead of spinning.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!(service = %self.service, error = %e, count = accept_errors, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
            let local = crate::divert::original_dst(&stream, listener.divert)
                .map(|a| SocketAddr::new(canonical(a.ip()), a.port()))
                .unwrap_or(listener.addr);
            let _ = stream.set_nodelay(true);
            match self.limiter.claim(permit, peer.ip()) {
                Some(slot) => {
                    // Boxed: the session then moves into its task as a
                    // pointer instead of being copied into each future layer.
                    let session = Box::new(Session::new(
                        stream,
                        self.service.clone(),
                        self.sensor.clone(),
                        peer,
                        local,
                        self.limits.clone(),
                        self.memory.clone(),
                        self.events.clone(),
                        self.shutdown.clone(),
                    ));
                    let emulator = self.emulator.clone();
                    self.tracker.spawn(async move {
                        run_session(session, emulator).await;
                        drop(slot);
                    });
                }
                None => {
                    // Closed unserved (the stream drops here); the refusal is
                    // still an event, stamped like any session's.
                    drop(stream);
                    let event = tcp_event(
                        &self.sensor,
                        &self.service,
                        peer,
                        local,
                        mirage_core::new_id(),
                        EventKind::SessionReject {
                            reason: "per_ip_limit".into(),
                        },
                    );
                    let events = self.events.clone();
                    self.tracker.spawn(async move { events.send(event).await });
                }
            }
        }
    }
}

async fn run_session(mut session: Box<Session>, emulator: Arc<dyn Emulator>) {
    // The emits and the close are boxed: their futures hold whole events,
    // and inline they would sit in every session task for its whole life
    // (this task is most of an idle connection's memory).
    Box::pin(session.emit(EventKind::SessionConnect {})).await;
    let served = AssertUnwindSafe(emulator.serve(&mut session))
        .catch_unwind()
        .await;
    let reason = match served {
        Ok(Ok(())) => mirage_core::CloseReason::ServerClosed,
        Ok(Err(end)) => {
            if let SessionEnd::Io(e) = &end {
                tracing::debug!(session = %session.id(), error = %e, "session i/o error");
            }
            end.reason()
        }
        Err(_) => {
            // A panic is our bug, never the attacker's fault: keep the sensor
            // up, close the session, and say so loudly.
            tracing::error!(service = emulator.service(), session = %session.id(), "emulator panicked");
            mirage_core::CloseReason::Error
        }
    };
    Box::pin(session.close()).await;
    let kind = EventKind::SessionClose {
        duration_ms: session.elapsed().as_millis() as u64,
        bytes_in: session.bytes_in(),
        bytes_out: session.bytes_out(),
        reason,
    };
    Box::pin(session.emit(kind)).await;
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) written as IPv4, so the same
/// attacker has one address in every event whichever socket it reached.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}
