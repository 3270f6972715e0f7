//! Turning shell [`Effect`]s into events, the same way for every protocol:
//! `command` per simple command, `payload` (stored in the quarantine) per
//! written file, `attack` per recognised technique.

use mirage_core::{BytesText, EventKind, PayloadData};
use serde_json::Value;

use super::Effect;
use crate::quarantine::Quarantine;

/// Cap on each argument and on `raw` in `command` events.
pub const RAW_CAP: usize = 4096;
/// Bytes of a written file kept inline in `payload` events.
pub const PAYLOAD_INLINE: usize = 4096;

/// An event kind with its tags.
pub type Report = (EventKind, Vec<String>);

/// A `payload` event for `data`, stored in the quarantine.
pub fn payload(data: &[u8], quarantine: &Quarantine) -> Report {
    let stored = match quarantine.store(data) {
        Ok(s) => s.stored,
        Err(e) => {
            tracing::warn!(error = %e, "quarantine write failed");
            None
        }
    };
    (
        EventKind::Payload {
            data: PayloadData::new(data, PAYLOAD_INLINE),
            stored,
        },
        vec!["upload".into()],
    )
}

/// The events for one effect.
pub fn effect_events(effect: Effect, quarantine: &Quarantine) -> Vec<Report> {
    match effect {
        Effect::Command {
            name,
            args,
            raw,
            error,
        } => {
            let mut truncated = false;
            let args = args
                .iter()
                .map(|a| {
                    let (t, cut) = BytesText::capped(a, RAW_CAP);
                    truncated |= cut;
                    t
                })
                .collect();
            let (raw, cut) = BytesText::capped(&raw, RAW_CAP);
            let (command, _) = BytesText::capped(name.as_bytes(), 256);
            vec![(
                EventKind::Command {
                    command: command.0,
                    args,
                    raw,
                    truncated: truncated || cut,
                    error,
                    details: Default::default(),
                },
                Vec::new(),
            )]
        }
        Effect::FileWritten { path, data } => {
            let (kind, tags) = payload(&data, quarantine);
            let sha256 = match &kind {
                EventKind::Payload { data, .. } => data.sha256.clone(),
                _ => String::new(),
            };
            let mut out = vec![(kind, tags)];
            let mut ev = serde_json::Map::new();
            ev.insert("path".into(), Value::String(path.clone()));
            ev.insert("len".into(), Value::from(data.len()));
            ev.insert("sha256".into(), Value::String(sha256));
            out.push((
                EventKind::Attack {
                    technique: "shell.file_write".into(),
                    summary: format!("wrote {} bytes to {path}", data.len()),
                    evidence: ev,
                },
                Vec::new(),
            ));
            out
        }
        Effect::Attack {
            technique,
            summary,
            evidence,
        } => vec![(
            EventKind::Attack {
                technique,
                summary,
                evidence,
            },
            Vec::new(),
        )],
    }
}
