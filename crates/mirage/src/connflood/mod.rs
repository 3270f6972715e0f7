//! `mirage x-connflood` (hidden): the load generator and the bare
//! accept-and-close ceiling used by the catch-all's flood tests and by
//! `bench/catchall/run.sh`. Kept in the binary so tests and the benchmark
//! need nothing else built; not part of the CLI contract.
//!
//! - `accept ADDR`: accept, read to the client's FIN, close, recording
//!   nothing, as fast as possible (the ceiling a honeypot is compared
//!   against); prints the count on SIGTERM.
//! - `short ADDR COUNT`: COUNT connections, each connect, send one line,
//!   close; prints `{"ok":…,"failed":…,"secs":…}`.
//! - `idle ADDR COUNT`: open COUNT connections that never send a byte,
//!   print `ready N`, hold them until standard input closes.
//! - `ssh-kex ADDR COUNT` ([`kex`]): COUNT SSH connections that finish the
//!   key exchange and then sit, unauthenticated, until standard input
//!   closes (the SSH benchmark's "after KEX" memory figure).
//!
//! Only ever pointed at addresses of the machine running it (the tests and
//! the benchmark use private network namespaces).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::{Args, Subcommand};
use tokio::io::AsyncWriteExt;

mod kex;

/// Arguments of `mirage x-connflood`.
#[derive(Args, Debug)]
pub struct FloodArgs {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Accept, drain and close until SIGTERM; print how many.
    Accept {
        /// Address to listen on.
        addr: SocketAddr,
    },
    /// Open COUNT short connections (connect, one line, close).
    Short {
        /// Target.
        addr: SocketAddr,
        /// Connections in all.
        count: u64,
        /// Connections in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        /// The line sent (a newline is added).
        #[arg(long, default_value = "GET /flood HTTP/1.0")]
        line: String,
        /// Source addresses to spread connections over (ephemeral ports
        /// run out past ~28k connections in TIME_WAIT per source).
        #[arg(long = "source")]
        sources: Vec<std::net::IpAddr>,
    },
    /// Open COUNT idle connections and hold them until stdin closes.
    Idle {
        /// Target.
        addr: SocketAddr,
        /// Connections.
        count: u64,
    },
    /// Open COUNT SSH connections through key exchange, hold them until
    /// stdin closes.
    SshKex {
        /// Target.
        addr: SocketAddr,
        /// Connections.
        count: u64,
        /// Key exchanges in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: u64,
    },
}

/// Run `mirage x-connflood`.
pub fn run(args: FloodArgs) -> ExitCode {
    let Some(rt) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    let _ = mirage_net::raise_fd_limit();
    rt.block_on(async move {
        match args.mode {
            // On a worker like the sensor's accept loops: the future given to
            // block_on runs on this thread, apart from the workers, and
            // every wake-up would cross threads (half the rate).
            Mode::Accept { addr } => tokio::spawn(accept(addr))
                .await
                .unwrap_or(ExitCode::FAILURE),
            Mode::Short {
                addr,
                count,
                concurrency,
                line,
                sources,
            } => short(addr, count, concurrency, line, sources).await,
            Mode::Idle { addr, count } => idle(addr, count).await,
            Mode::SshKex {
                addr,
                count,
                concurrency,
            } => kex::hold(addr, count, concurrency).await,
        }
    })
}

async fn accept(addr: SocketAddr) -> ExitCode {
    // The sensor's backlog (4096, not tokio's 1024): a client that sends
    // and closes does not wait to be accepted, so the accept queue, not the
    // clients in flight, bounds what is pending, and overflowing it costs
    // each dropped SYN a one-second retransmission.
    let bound = (|| {
        let s = if addr.is_ipv6() {
            tokio::net::TcpSocket::new_v6()?
        } else {
            tokio::net::TcpSocket::new_v4()?
        };
        s.set_reuseaddr(true)?;
        s.bind(addr)?;
        s.listen(4096)
    })();
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mirage: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("accepting on {addr}");
    let mut n = 0u64;
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mirage: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        tokio::select! {
            r = listener.accept() => {
                // Drained to the client's FIN and closed on a task of its
                // own: the same exchange a honeypot has, minus recording.
                // (Closing first, unread, would leave TIME_WAIT on this side
                // and make reused client ports stall: no ceiling at all.)
                if let Ok((mut s, _)) = r {
                    n += 1;
                    tokio::spawn(async move {
                        let mut sink = [0u8; 512];
                        while let Ok(k) = tokio::io::AsyncReadExt::read(&mut s, &mut sink).await {
                            if k == 0 {
                                break;
                            }
                        }
                    });
                }
            }
            _ = term.recv() => break,
        }
    }
    println!("{n}");
    ExitCode::SUCCESS
}

async fn short(
    addr: SocketAddr,
    count: u64,
    concurrency: u64,
    line: String,
    sources: Vec<std::net::IpAddr>,
) -> ExitCode {
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let data: Arc<[u8]> = Arc::from(format!("{line}\n").into_bytes());
    let sources: Arc<[std::net::IpAddr]> = Arc::from(sources);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, ok, failed, data, sources) = (
            next.clone(),
            ok.clone(),
            failed.clone(),
            data.clone(),
            sources.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let src = (!sources.is_empty()).then(|| sources[(i as usize) % sources.len()]);
                match one_short(addr, src, &data).await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"ok\":{},\"failed\":{},\"secs\":{secs:.3}}}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

async fn one_short(
    addr: SocketAddr,
    src: Option<std::net::IpAddr>,
    data: &[u8],
) -> std::io::Result<()> {
    let sock = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let mut s = sock.connect(addr).await?;
    s.write_all(data).await?;
    s.shutdown().await?;
    Ok(())
}

async fn idle(addr: SocketAddr, count: u64) -> ExitCode {
    let mut held = Vec::with_capacity(count as usize);
    let mut failed = 0u64;
    for _ in 0..count {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => held.push(s),
            Err(_) => failed += 1,
        }
    }
    println!("ready {} failed {failed}", held.len());
    until_stdin_closes().await;
    drop(held);
    ExitCode::SUCCESS
}

/// Hold on until the parent closes our standard input.
async fn until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}
