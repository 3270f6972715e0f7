//! Errors of the file tailer.
//!
//! Only what stops the tailer as a whole is an error: a bad config or an
//! unusable checkpoint. Trouble with one followed file (permission denied, a
//! read failure) is logged and retried on the next poll, because one broken
//! log must not blind the agent to all the others.

use std::path::{Path, PathBuf};

/// Why the tailer could not start or persist its state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailError {
    /// The configuration is unusable.
    #[error("tail config: {0}")]
    Config(String),
    /// The checkpoint file exists but cannot be understood.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error on a file the tailer owns (the checkpoint).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl TailError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
