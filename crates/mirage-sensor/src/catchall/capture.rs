//! Payload capture: what the client sent, up to a per-session budget.
//!
//! A [`Capture`] is the session's [`Tap`]: it keeps the first
//! `inline_bytes` in memory for the `payload` event and, once the stream
//! grows past them, streams everything (the inline part first) into the
//! payload store (`payloads/<sha256>`, the quarantine's discipline and its
//! own quota). Nothing is allocated until the first byte arrives, so an
//! idle connection costs no buffer.

use std::sync::{Arc, Mutex};

use mirage_core::{EventKind, PayloadData};
use mirage_net::Tap;

use crate::quarantine::{Quarantine, Upload};

/// Shared between the session's tap and the catch-all, which reads it back
/// when the session ends.
#[derive(Clone)]
pub struct Capture {
    state: Arc<Mutex<State>>,
}

struct State {
    store: Arc<Quarantine>,
    inline_cap: usize,
    budget: u64,
    inline: Vec<u8>,
    len: u64,
    /// Bytes the client sent past the budget (not kept, not hashed).
    over: u64,
    upload: Option<Upload<'static>>,
}

impl Capture {
    /// A capture keeping `inline_cap` bytes inline and at most `budget` in all.
    pub fn new(store: Arc<Quarantine>, inline_cap: usize, budget: u64) -> Capture {
        Capture {
            state: Arc::new(Mutex::new(State {
                store,
                inline_cap,
                budget,
                inline: Vec::new(),
                len: 0,
                over: 0,
                upload: None,
            })),
        }
    }

    /// A tap feeding this capture.
    pub fn tap(&self) -> Box<dyn Tap> {
        Box::new(self.clone())
    }

    /// Feed bytes read before the tap was installed (the peeked prefix).
    pub fn feed(&self, data: &[u8]) {
        lock(&self.state).feed(data);
    }

    /// True once the budget is spent.
    pub fn exhausted(&self) -> bool {
        let s = lock(&self.state);
        s.len >= s.budget
    }

    /// Bytes captured so far.
    pub fn len(&self) -> u64 {
        lock(&self.state).len
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// End the capture: the `payload` event for it (None when the client
    /// sent nothing), and whether bytes past the budget were dropped.
    pub fn finish(&self) -> Option<(EventKind, bool)> {
        let mut s = lock(&self.state);
        if s.len == 0 {
            return None;
        }
        let over = s.over > 0;
        let upload = s.upload.take();
        let kind = match upload {
            None => EventKind::Payload {
                data: PayloadData::new(&s.inline, s.inline_cap),
                stored: None,
            },
            Some(up) => {
                let inline = PayloadData::new(&s.inline, s.inline_cap);
                match up.finish() {
                    Ok(stored) => EventKind::Payload {
                        data: PayloadData {
                            data_b64: inline.data_b64,
                            sha256: stored.sha256,
                            len: stored.len,
                            truncated: true,
                        },
                        stored: stored.stored,
                    },
                    Err(e) => {
                        // The disk failed: the inline part is still evidence.
                        tracing::warn!(error = %e, "cannot store a captured payload");
                        EventKind::Payload {
                            data: PayloadData {
                                truncated: true,
                                len: s.len,
                                ..inline
                            },
                            stored: None,
                        }
                    }
                }
            }
        };
        Some((kind, over))
    }
}

impl Tap for Capture {
    fn observe(&mut self, data: &[u8]) {
        lock(&self.state).feed(data);
    }
}

impl State {
    fn feed(&mut self, data: &[u8]) {
        let room = self.budget.saturating_sub(self.len);
        let take = (data.len() as u64).min(room) as usize;
        self.over += (data.len() - take) as u64;
        let data = &data[..take];
        if data.is_empty() {
            return;
        }
        let inline_room = self.inline_cap.saturating_sub(self.inline.len());
        let to_inline = inline_room.min(data.len());
        self.inline.extend_from_slice(&data[..to_inline]);
        self.len += data.len() as u64;
        if self.upload.is_none() && self.len > self.inline_cap as u64 {
            // Past the inline part: from now on the whole stream goes to
            // the store, starting with what is inline.
            let mut up = self.store.begin_owned();
            if let Err(e) = up.write(&self.inline) {
                tracing::warn!(error = %e, "cannot store a captured payload");
            }
            self.upload = Some(up);
        }
        if let Err(e) = self.upload_write(&data[to_inline..]) {
            tracing::warn!(error = %e, "cannot store a captured payload");
        }
    }

    fn upload_write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self.upload.as_mut() {
            Some(up) if !data.is_empty() => up.write(data),
            _ => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirage_core::event::hex;
    use sha2::{Digest, Sha256};

    fn store(dir: &std::path::Path) -> Arc<Quarantine> {
        Arc::new(Quarantine::open_named(dir, "payloads", 1 << 20, 1 << 30).unwrap())
    }

    #[test]
    fn short_stays_inline_long_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let c = Capture::new(store(dir.path()), 8, 1000);
        c.feed(b"abc");
        let Some((EventKind::Payload { data, stored }, false)) = c.finish() else {
            panic!()
        };
        assert_eq!((data.len, data.truncated, stored), (3, false, None));

        let c = Capture::new(store(dir.path()), 8, 1000);
        let mut tap = c.tap();
        tap.observe(b"0123456");
        tap.observe(b"789abcdef");
        let Some((EventKind::Payload { data, stored }, false)) = c.finish() else {
            panic!()
        };
        assert_eq!(data.len, 16);
        assert!(data.truncated);
        assert_eq!(data.sha256, hex(&Sha256::digest(b"0123456789abcdef")));
        let kept = std::fs::read(dir.path().join(stored.unwrap())).unwrap();
        assert_eq!(kept, b"0123456789abcdef");
    }

    #[test]
    fn budget_caps_and_empty_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let c = Capture::new(store(dir.path()), 4, 10);
        assert!(c.finish().is_none());
        c.feed(b"0123456789ABCDEF");
        assert!(c.exhausted());
        let Some((EventKind::Payload { data, stored }, true)) = c.finish() else {
            panic!()
        };
        assert_eq!(data.len, 10);
        assert_eq!(data.sha256, hex(&Sha256::digest(b"0123456789")));
        assert!(stored.is_some());
    }
}
