//! Reading LF-terminated lines from a stream with a hard length cap, for the
//! sources that read a pipe or a socket (journalctl's output, Redis
//! MONITOR).
//!
//! Memory is bounded by the cap whatever the peer sends: the head of an
//! over-long line is kept and flagged, the rest is skipped up to its LF.
//! [`CappedLines::next`] keeps its progress in `self`, so it is cancel-safe:
//! dropping it in a `select!` loses no bytes.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line: its bytes without the LF (and without a CR before it), and
/// whether it was longer than the cap.
pub(crate) type CappedLine = (Vec<u8>, bool);

#[derive(Debug)]
pub(crate) struct CappedLines {
    max: usize,
    buf: Vec<u8>,
    /// Skipping the tail of an over-long line.
    truncated: bool,
}

impl CappedLines {
    pub(crate) fn new(max: usize) -> Self {
        CappedLines {
            max,
            buf: Vec::new(),
            truncated: false,
        }
    }

    /// The next line; `None` at the end of the stream (a last line without
    /// LF is returned first).
    pub(crate) async fn next<R: AsyncBufRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> io::Result<Option<CappedLine>> {
        loop {
            let chunk = r.fill_buf().await?;
            if chunk.is_empty() {
                if self.buf.is_empty() && !self.truncated {
                    return Ok(None);
                }
                return Ok(Some(self.take()));
            }
            let (used, done) = match memchr(chunk) {
                Some(i) => (i + 1, Some(i)),
                None => (chunk.len(), None),
            };
            let data = &chunk[..done.unwrap_or(used)];
            let room = self.max.saturating_sub(self.buf.len());
            if data.len() > room {
                self.truncated = true;
            }
            self.buf.extend_from_slice(&data[..data.len().min(room)]);
            r.consume(used);
            if done.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> CappedLine {
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let truncated = std::mem::replace(&mut self.truncated, false);
        (line, truncated)
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_and_resynchronises() {
        let data = b"short\r\nthis line is far too long\nok\nlast".to_vec();
        // A tiny buffer so lines span several fills.
        let mut r = tokio::io::BufReader::with_capacity(3, &data[..]);
        let mut l = CappedLines::new(8);
        let mut got = Vec::new();
        while let Some(x) = l.next(&mut r).await.unwrap() {
            got.push(x);
        }
        assert_eq!(
            got,
            vec![
                (b"short".to_vec(), false),
                (b"this lin".to_vec(), true),
                (b"ok".to_vec(), false),
                (b"last".to_vec(), false),
            ]
        );
    }
}
