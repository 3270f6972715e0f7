//! A thin async face over the blocking [`Tailer`], for the agent's tokio
//! runtime.
//!
//! File reads and the checkpoint's fsync run on tokio's blocking pool so they
//! never stall the runtime's workers. The wrapper is cancel-safe: if a
//! `next_batch` future is dropped mid-poll, the poll keeps running and its
//! lines are returned by the next call instead of being lost.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{AckToken, Line, TailConfig, TailError, Tailer};

/// What the tailer followed and could not open as of its last poll, for the
/// agent's health report (the tailer itself is on the blocking pool most of
/// the time, so it is copied out after each poll).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailHealth {
    /// Paths of the files being followed (not those rotated away).
    pub followed: Vec<Arc<Path>>,
    /// Paths that exist but cannot be opened, with the error.
    pub open_errors: Vec<(PathBuf, io::ErrorKind)>,
}

impl TailHealth {
    fn of(tailer: &Tailer) -> Self {
        TailHealth {
            followed: tailer
                .status()
                .into_iter()
                .filter(|s| !s.rotated)
                .map(|s| s.path)
                .collect(),
            open_errors: tailer.open_errors(),
        }
    }
}

enum Job {
    Poll(JoinHandle<(Tailer, Vec<Line>)>),
    Checkpoint(JoinHandle<(Tailer, Result<(), TailError>)>),
}

/// Async wrapper around [`Tailer`]: waits for lines instead of polling.
pub struct AsyncTailer {
    tailer: Option<Tailer>,
    job: Option<Job>,
    /// Lines of a poll whose caller went away, served first.
    ready: Vec<Line>,
    /// Acks received while the tailer was on the blocking pool.
    acks: Vec<AckToken>,
    interval: Duration,
    health: TailHealth,
}

impl std::fmt::Debug for AsyncTailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncTailer")
            .field("tailer", &self.tailer)
            .field("busy", &self.job.is_some())
            .field("ready", &self.ready.len())
            .field("health", &self.health)
            .finish()
    }
}

impl AsyncTailer {
    /// Opens a [`Tailer`] on the blocking pool.
    pub async fn open(config: TailConfig) -> Result<Self, TailError> {
        let interval = config.poll_interval;
        let tailer = tokio::task::spawn_blocking(move || Tailer::open(config))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
        Ok(Self::from_tailer_with_interval(tailer, interval))
    }

    /// Wraps an already open tailer.
    pub fn new(tailer: Tailer) -> Self {
        let interval = tailer.config().poll_interval;
        Self::from_tailer_with_interval(tailer, interval)
    }

    fn from_tailer_with_interval(tailer: Tailer, interval: Duration) -> Self {
        Self {
            health: TailHealth::of(&tailer),
            tailer: Some(tailer),
            job: None,
            ready: Vec::new(),
            acks: Vec::new(),
            interval,
        }
    }

    /// Waits until at least one line is available and returns all available
    /// lines. Cancel-safe.
    pub async fn next_batch(&mut self) -> Vec<Line> {
        loop {
            self.settle().await;
            if !self.ready.is_empty() {
                return std::mem::take(&mut self.ready);
            }
            let Some(mut tailer) = self.tailer.take() else {
                continue;
            };
            self.job = Some(Job::Poll(tokio::task::spawn_blocking(move || {
                let lines = tailer.poll();
                (tailer, lines)
            })));
            self.settle().await;
            if !self.ready.is_empty() {
                return std::mem::take(&mut self.ready);
            }
            if !self.tailer.as_ref().is_some_and(Tailer::backlogged) {
                tokio::time::sleep(self.interval).await;
            }
        }
    }

    /// What the tailer followed as of its last poll.
    pub fn health(&self) -> &TailHealth {
        &self.health
    }

    /// See [`Tailer::ack`].
    pub fn ack(&mut self, token: AckToken) {
        match &mut self.tailer {
            Some(t) => t.ack(token),
            None => self.acks.push(token),
        }
    }

    /// See [`Tailer::checkpoint`]; the fsync runs on the blocking pool.
    pub async fn checkpoint(&mut self) -> Result<(), TailError> {
        self.settle().await;
        let Some(mut tailer) = self.tailer.take() else {
            return Ok(());
        };
        let handle = tokio::task::spawn_blocking(move || {
            let r = tailer.checkpoint();
            (tailer, r)
        });
        self.job = Some(Job::Checkpoint(handle));
        self.settle().await.unwrap_or(Ok(()))
    }

    /// The blocking tailer back, after any running job finished.
    pub async fn into_inner(mut self) -> Tailer {
        self.settle().await;
        // settle always leaves the tailer in place.
        self.tailer
            .take()
            .unwrap_or_else(|| unreachable!("tailer present after settle"))
    }

    /// Waits for the running job, if any, and takes the tailer back. Returns
    /// the checkpoint result if the job was a checkpoint.
    async fn settle(&mut self) -> Option<Result<(), TailError>> {
        // The handle stays in `self.job` while awaited, so a cancelled caller
        // leaves it for the next one.
        let job = self.job.as_mut()?;
        let (tailer, result) = match job {
            Job::Poll(h) => {
                let (t, lines) = h
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                self.ready.extend(lines);
                (t, None)
            }
            Job::Checkpoint(h) => {
                let (t, r) = h
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                (t, Some(r))
            }
        };
        self.job = None;
        self.health = TailHealth::of(&tailer);
        let tailer = self.tailer.insert(tailer);
        for token in self.acks.drain(..) {
            tailer.ack(token);
        }
        result
    }
}
