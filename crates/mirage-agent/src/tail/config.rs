//! Settings of the file tailer, with the defaults an agent uses when the
//! config file says nothing.
//!
//! Every knob that bounds memory or time lives here so the limits are visible
//! in one place and can be checked once by [`TailConfig::validate`].

use std::path::PathBuf;
use std::time::Duration;

use super::TailError;

/// Where to start in a file that is seen for the first time and has no checkpoint.
///
/// Only applies to files present when the tailer opens: a file that appears
/// later (a rotation's new file, a re-created file) is always read from its
/// first byte, because every byte of it was written after we started watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// Read the whole existing file (default: the safe choice, never skips).
    #[default]
    Beginning,
    /// Skip what is already there; only new lines are delivered.
    End,
}

/// Configuration of a [`Tailer`](super::Tailer).
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Files to follow. A path whose last component contains `*` or `?` is a
    /// pattern matched against the entries of its (literal) directory on every
    /// poll; other paths are followed even before they exist.
    pub paths: Vec<PathBuf>,
    /// Where offsets are persisted; `None` keeps them in memory only (tests,
    /// or a source that does not need to survive restarts).
    pub checkpoint_path: Option<PathBuf>,
    /// Longest line delivered, in bytes (default 64 KiB). Longer lines are
    /// truncated to this length and flagged; the rest up to the newline is
    /// skipped, so memory per file stays bounded whatever the writer does.
    pub max_line_bytes: usize,
    /// How many leading bytes of a file are hashed into its fingerprint
    /// (default 256). Together with (dev, inode) this tells a resumed file from
    /// a new file that reused the inode or was rewritten in place.
    pub fingerprint_bytes: usize,
    /// How often the async wrapper polls (default 50 ms: a few `stat`s and
    /// an empty read per file each time, cheap, and it bounds how late a
    /// brute force reaches the server, hence enforcement).
    pub poll_interval: Duration,
    /// How long a file that was rotated away (renamed or deleted) keeps being
    /// read after it stops growing (default 5 s): writers keep appending to the
    /// old file until they reopen their log, and those lines must not be lost.
    pub rotate_grace: Duration,
    /// Upper bound on the bytes read by one [`poll`](super::Tailer::poll)
    /// across all files (default 4 MiB), so a large backlog is delivered in
    /// batches instead of one huge allocation.
    pub max_batch_bytes: usize,
    /// Start position for files found at startup without a checkpoint.
    pub read_from: ReadFrom,
    /// Checkpoint entries whose file has not been seen for this long are
    /// forgotten (default 7 days), so the checkpoint does not grow forever.
    pub forget_after: Duration,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            checkpoint_path: None,
            max_line_bytes: 64 * 1024,
            fingerprint_bytes: 256,
            poll_interval: Duration::from_millis(50),
            rotate_grace: Duration::from_secs(5),
            max_batch_bytes: 4 * 1024 * 1024,
            read_from: ReadFrom::Beginning,
            forget_after: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl TailConfig {
    /// A default configuration following `paths`.
    pub fn new<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Rejects settings that would make the tailer useless or unbounded.
    pub fn validate(&self) -> Result<(), TailError> {
        let bad = |msg: String| Err(TailError::Config(msg));
        if self.paths.is_empty() {
            return bad("no paths to tail".into());
        }
        for p in &self.paths {
            if p.file_name().is_none() {
                return bad(format!("{}: not a file path", p.display()));
            }
            // Patterns are supported in the last component only: walking
            // directory trees on every poll is a cost nobody asked for yet.
            if let Some(parent) = p.parent()
                && super::glob::has_wildcard(parent.as_os_str())
            {
                return bad(format!(
                    "{}: wildcards are only supported in the file name",
                    p.display()
                ));
            }
        }
        if self.max_line_bytes == 0 {
            return bad("max_line_bytes must be at least 1".into());
        }
        if self.fingerprint_bytes == 0 {
            return bad("fingerprint_bytes must be at least 1".into());
        }
        if self.max_batch_bytes == 0 {
            return bad("max_batch_bytes must be at least 1".into());
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval must be positive".into());
        }
        Ok(())
    }
}
