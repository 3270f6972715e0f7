//! The client's identification line and first KEXINIT, read from the
//! plaintext start of the connection before the SSH library sees it, for
//! the client version and the HASSH fingerprint
//! (`md5("kex;enc_c2s;mac_c2s;cmp_c2s")`, as published by Salesforce).
//!
//! Sans-IO and bounded: at most [`MAX_PEEK`] bytes are looked at; every
//! length is checked against what was received.

use md5::{Digest, Md5};

/// Most bytes examined (a version line plus one KEXINIT fits easily).
pub const MAX_PEEK: usize = 64 * 1024;

/// What the client announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The identification line without CR LF (`SSH-2.0-OpenSSH_9.2p1 …`).
    pub version: String,
    /// Key exchange algorithms.
    pub kex: String,
    /// Host key algorithms.
    pub host_keys: String,
    /// Ciphers client to server.
    pub enc: String,
    /// MACs client to server.
    pub mac: String,
    /// Compression client to server.
    pub cmp: String,
}

impl ClientHello {
    /// The HASSH string `kex;enc;mac;cmp`.
    pub fn hassh_algorithms(&self) -> String {
        format!("{};{};{};{}", self.kex, self.enc, self.mac, self.cmp)
    }

    /// The HASSH fingerprint (md5 hex of [`ClientHello::hassh_algorithms`]).
    pub fn hassh(&self) -> String {
        mirage_core::event::hex(&Md5::digest(self.hassh_algorithms().as_bytes()))
    }
}

/// Result of looking at the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
    /// Need more bytes.
    More,
    /// Parsed.
    Done(ClientHello),
    /// Not SSH, or a malformed first packet (the reason).
    Invalid(&'static str),
}

/// Accumulates the first bytes of a connection.
#[derive(Debug, Default)]
pub struct HelloPeek {
    buf: Vec<u8>,
    finished: bool,
}

fn name_list<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
    let v = p.get(4..4usize.checked_add(len)?)?;
    *p = &p[4 + len..];
    Some(v)
}

impl HelloPeek {
    /// True once a result other than [`Peek::More`] was returned.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Add received bytes and try to parse.
    pub fn feed(&mut self, data: &[u8]) -> Peek {
        if self.finished {
            return Peek::More;
        }
        let room = MAX_PEEK.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        let r = self.parse();
        if r == Peek::More && self.buf.len() >= MAX_PEEK {
            self.finished = true;
            return Peek::Invalid("no complete KEXINIT in the first 64 KiB");
        }
        if r != Peek::More {
            self.finished = true;
            self.buf = Vec::new();
        }
        r
    }

    fn parse(&self) -> Peek {
        let b = &self.buf;
        if b.len() >= 4 && !b.starts_with(b"SSH-") {
            return Peek::Invalid("identification string does not start with SSH-");
        }
        let Some(nl) = b.iter().position(|&c| c == b'\n') else {
            if b.len() > 255 {
                return Peek::Invalid("identification string longer than 255 bytes");
            }
            return Peek::More;
        };
        let line = &b[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let version = String::from_utf8_lossy(line).into_owned();
        let rest = &b[nl + 1..];
        if rest.len() < 5 {
            return Peek::More;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if !(16..=35000).contains(&len) {
            return Peek::Invalid("first packet length out of range");
        }
        let Some(packet) = rest.get(4..4 + len) else {
            return Peek::More;
        };
        let pad = packet[0] as usize;
        let Some(payload) = packet
            .get(1..len.saturating_sub(pad))
            .filter(|p| !p.is_empty())
        else {
            return Peek::Invalid("first packet padding longer than the packet");
        };
        if payload[0] != 20 {
            return Peek::Invalid("first packet is not KEXINIT");
        }
        let Some(mut p) = payload.get(17..) else {
            return Peek::Invalid("KEXINIT too short");
        };
        let mut lists = Vec::with_capacity(8);
        for _ in 0..8 {
            match name_list(&mut p) {
                Some(l) => lists.push(String::from_utf8_lossy(l).into_owned()),
                None => return Peek::Invalid("KEXINIT name-list runs past the packet"),
            }
        }
        Peek::Done(ClientHello {
            version,
            kex: lists[0].clone(),
            host_keys: lists[1].clone(),
            enc: lists[2].clone(),
            mac: lists[4].clone(),
            cmp: lists[6].clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A KEXINIT packet with the given lists.
    pub(crate) fn kexinit(lists: [&str; 8]) -> Vec<u8> {
        let mut payload = vec![20u8];
        payload.extend_from_slice(&[7; 16]);
        for l in lists {
            payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
            payload.extend_from_slice(l.as_bytes());
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let pad = 8 - (payload.len() + 5) % 8 + 8;
        let mut pkt = ((payload.len() + pad + 1) as u32).to_be_bytes().to_vec();
        pkt.push(pad as u8);
        pkt.extend_from_slice(&payload);
        pkt.extend(std::iter::repeat_n(0, pad));
        pkt
    }

    #[test]
    fn parses_in_pieces_and_fingerprints() {
        let mut bytes = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".to_vec();
        bytes.extend(kexinit([
            "curve25519-sha256",
            "ssh-ed25519",
            "aes128-ctr",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none",
            "none",
        ]));
        let mut p = HelloPeek::default();
        let (a, b) = bytes.split_at(30);
        assert_eq!(p.feed(a), Peek::More);
        let Peek::Done(h) = p.feed(b) else { panic!() };
        assert_eq!(h.version, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
        assert_eq!(
            h.hassh_algorithms(),
            "curve25519-sha256;aes128-ctr;hmac-sha2-256;none"
        );
        assert_eq!(
            h.hassh(),
            mirage_core::event::hex(&Md5::digest(
                b"curve25519-sha256;aes128-ctr;hmac-sha2-256;none"
            ))
        );
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        assert!(matches!(
            HelloPeek::default().feed(b"GET / HTTP/1.1\r\n"),
            Peek::Invalid(_)
        ));
        let mut bytes = b"SSH-2.0-x\r\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 20, 200, 20]);
        bytes.extend_from_slice(&[0; 19]);
        assert!(matches!(
            HelloPeek::default().feed(&bytes),
            Peek::Invalid(_)
        ));
        let mut bytes = b"SSH-2.0-x\r\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 40, 4, 20]);
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&[255, 255, 255, 255]);
        bytes.extend_from_slice(&[0; 20]);
        assert!(matches!(
            HelloPeek::default().feed(&bytes),
            Peek::Invalid(_)
        ));
    }
}
