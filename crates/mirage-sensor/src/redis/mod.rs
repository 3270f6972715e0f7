//! Redis honeypot (placeholder until the emulator lands: answers every
//! request line with an error, and records it).

use async_trait::async_trait;
use bytes::BytesMut;
use mirage_config::RedisConfig;
use mirage_net::{Emulator, Session, SessionEnd};

/// The Redis emulator.
pub struct RedisEmulator {
    _config: RedisConfig,
}

impl RedisEmulator {
    /// Build from configuration.
    pub fn new(config: RedisConfig) -> anyhow::Result<Self> {
        Ok(RedisEmulator { _config: config })
    }
}

#[async_trait]
impl Emulator for RedisEmulator {
    fn service(&self) -> &str {
        "redis"
    }

    async fn serve(&self, session: &mut Session) -> Result<(), SessionEnd> {
        let mut buf = BytesMut::new();
        loop {
            session.read_some(&mut buf).await?;
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(i + 1);
                session
                    .emit(mirage_core::EventKind::Command {
                        command: "raw".into(),
                        args: vec![],
                        raw: mirage_core::BytesText::new(&line),
                        truncated: false,
                        error: true,
                    })
                    .await;
                session.write_all(b"+PONG\r\n").await?;
            }
        }
    }
}
