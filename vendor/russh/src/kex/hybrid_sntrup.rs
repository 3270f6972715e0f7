//! `sntrup761x25519-sha512@openssh.com` (and its later IETF name
//! `sntrup761x25519-sha512`): OpenSSH's post-quantum hybrid key exchange,
//! the first choice of OpenSSH 8.9 to 9.8 on both ends.
//!
//! Added for mirage (see `PATCH.md`). The wire format follows OpenSSH's
//! `kexsntrup761x25519.c` and draft-ietf-sshm-ntruprime-ssh:
//!
//! * the client's `SSH_MSG_KEX_ECDH_INIT` carries one string: an sntrup761
//!   public key (1158 bytes) followed by an X25519 public key (32 bytes);
//! * the server encapsulates to the first half and answers in
//!   `SSH_MSG_KEX_ECDH_REPLY` with the ciphertext (1039 bytes) followed by
//!   its own X25519 public key;
//! * the shared secret K is SHA-512(sntrup761 key || raw X25519 key), and it
//!   enters the exchange hash and the key derivation as an SSH *string*, not
//!   an mpint; the exchange hash and the derivation use SHA-512.

use byteorder::{BigEndian, ByteOrder};
use curve25519_dalek::montgomery::MontgomeryPoint;
use log::debug;
use sha2::Digest;
use ssh_encoding::{Encode, Writer};

use super::{KexAlgorithm, KexAlgorithmImplementor, KexType, SharedSecret, compute_keys};
use crate::mac;
use crate::session::Exchange;
use crate::{CryptoVec, Error, cipher, msg};

const X25519_LEN: usize = 32;
const CLIENT_INIT_LEN: usize = sntrup761::PUBLIC_KEY_SIZE + X25519_LEN;
const SERVER_REPLY_LEN: usize = sntrup761::CIPHERTEXT_SIZE + X25519_LEN;

pub struct Sntrup761X25519KexType {}

impl KexType for Sntrup761X25519KexType {
    fn make(&self) -> KexAlgorithm {
        Sntrup761X25519Kex {
            kem_secret: None,
            x25519_secret: None,
            shared: None,
        }
        .into()
    }
}

#[doc(hidden)]
pub struct Sntrup761X25519Kex {
    /// The client's decapsulation key, between its init and the reply.
    kem_secret: Option<Box<sntrup761::DecapsulationKey>>,
    x25519_secret: Option<[u8; 32]>,
    /// K = SHA-512(sntrup761 key || X25519 key), once both halves are known.
    shared: Option<[u8; 64]>,
}

impl std::fmt::Debug for Sntrup761X25519Kex {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "Sntrup761X25519Kex {{ kem_secret: [hidden], x25519_secret: [hidden], shared: [hidden] }}"
        )
    }
}

/// K from the two halves, in OpenSSH's order (post-quantum part first).
fn combine(kem: &[u8], x25519: &MontgomeryPoint) -> Result<[u8; 64], Error> {
    if x25519.0 == [0u8; 32] {
        // A low-order point from the peer: refuse, as OpenSSH does.
        debug!("peer sent a low-order curve25519 public key");
        return Err(Error::Kex);
    }
    let mut h = sha2::Sha512::new();
    h.update(kem);
    h.update(x25519.0);
    Ok(h.finalize().into())
}

/// The single string inside a KEX_ECDH_INIT/REPLY body starting at `at`.
fn ecdh_string(payload: &[u8], at: usize) -> Result<&[u8], Error> {
    let len_bytes = payload.get(at..at + 4).ok_or(Error::Inconsistent)?;
    let len = BigEndian::read_u32(len_bytes) as usize;
    payload
        .get(at + 4..)
        .and_then(|rest| rest.get(..len))
        .ok_or(Error::Inconsistent)
}

impl KexAlgorithmImplementor for Sntrup761X25519Kex {
    fn skip_exchange(&self) -> bool {
        false
    }

    fn server_dh(&mut self, exchange: &mut Exchange, payload: &[u8]) -> Result<(), Error> {
        debug!("server_dh (sntrup761x25519)");
        if payload.first() != Some(&msg::KEX_ECDH_INIT) {
            return Err(Error::Inconsistent);
        }
        let init = ecdh_string(payload, 1)?;
        if init.len() != CLIENT_INIT_LEN {
            return Err(Error::Kex);
        }
        let (kem_pk, x_pk) = init.split_at(sntrup761::PUBLIC_KEY_SIZE);
        let kem_pk = sntrup761::EncapsulationKey::try_from(kem_pk).map_err(|_| Error::Kex)?;
        let mut client_x = MontgomeryPoint([0; 32]);
        client_x.0.copy_from_slice(x_pk);

        let (ciphertext, kem_key) = kem_pk.encapsulate(rand::rng());
        let secret = rand::random::<[u8; 32]>();
        let server_x = MontgomeryPoint::mul_base_clamped(secret);
        let x_key = client_x.mul_clamped(secret);
        self.shared = Some(combine(kem_key.as_ref(), &x_key)?);

        exchange.server_ephemeral.clear();
        exchange
            .server_ephemeral
            .extend_from_slice(ciphertext.as_ref());
        exchange.server_ephemeral.extend_from_slice(&server_x.0);
        Ok(())
    }

    fn client_dh(
        &mut self,
        client_ephemeral: &mut Vec<u8>,
        writer: &mut impl Writer,
    ) -> Result<(), Error> {
        let (kem_pk, kem_sk) = sntrup761::generate_key(rand::rng());
        let secret = rand::random::<[u8; 32]>();
        let x_pk = MontgomeryPoint::mul_base_clamped(secret);

        client_ephemeral.clear();
        client_ephemeral.extend_from_slice(kem_pk.as_ref());
        client_ephemeral.extend_from_slice(&x_pk.0);

        msg::KEX_ECDH_INIT.encode(writer)?;
        client_ephemeral.as_slice().encode(writer)?;

        self.kem_secret = Some(Box::new(kem_sk));
        self.x25519_secret = Some(secret);
        Ok(())
    }

    fn compute_shared_secret(&mut self, remote: &[u8]) -> Result<(), Error> {
        if remote.len() != SERVER_REPLY_LEN {
            return Err(Error::Kex);
        }
        let (ct, x_pk) = remote.split_at(sntrup761::CIPHERTEXT_SIZE);
        let ct = sntrup761::Ciphertext::try_from(ct).map_err(|_| Error::Kex)?;
        let kem_sk = self.kem_secret.take().ok_or(Error::KexInit)?;
        let kem_key = kem_sk.decapsulate(&ct);
        let secret = self.x25519_secret.take().ok_or(Error::KexInit)?;
        let mut server_x = MontgomeryPoint([0; 32]);
        server_x.0.copy_from_slice(x_pk);
        let x_key = server_x.mul_clamped(secret);
        self.shared = Some(combine(kem_key.as_ref(), &x_key)?);
        Ok(())
    }

    fn shared_secret_bytes(&self) -> Option<&[u8]> {
        self.shared.as_ref().map(|k| k.as_slice())
    }

    fn compute_exchange_hash(
        &self,
        key: &[u8],
        exchange: &Exchange,
        buffer: &mut CryptoVec,
    ) -> Result<Vec<u8>, Error> {
        let k = self.shared.as_ref().ok_or(Error::KexInit)?;
        buffer.clear();
        exchange.client_id.encode(buffer)?;
        exchange.server_id.encode(buffer)?;
        exchange.client_kex_init.encode(buffer)?;
        exchange.server_kex_init.encode(buffer)?;
        buffer.extend(key);
        exchange.client_ephemeral.encode(buffer)?;
        exchange.server_ephemeral.encode(buffer)?;
        k.as_slice().encode(buffer)?;
        Ok(sha2::Sha512::digest(&buffer[..]).to_vec())
    }

    fn compute_keys(
        &self,
        session_id: &[u8],
        exchange_hash: &[u8],
        cipher: cipher::Name,
        remote_to_local_mac: mac::Name,
        local_to_remote_mac: mac::Name,
        is_server: bool,
    ) -> Result<super::cipher::CipherPair, Error> {
        let k = self.shared.as_ref().ok_or(Error::KexInit)?;
        let shared_secret = SharedSecret::from_string(k)?;
        compute_keys::<sha2::Sha512>(
            Some(&shared_secret),
            session_id,
            exchange_hash,
            cipher,
            remote_to_local_mac,
            local_to_remote_mac,
            is_server,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Sntrup761X25519Kex {
        Sntrup761X25519Kex {
            kem_secret: None,
            x25519_secret: None,
            shared: None,
        }
    }

    #[test]
    fn both_ends_derive_the_same_secret() {
        let mut client = fresh();
        let mut server = fresh();
        let mut ephemeral = Vec::new();
        let mut init = Vec::new();
        client.client_dh(&mut ephemeral, &mut init).unwrap();
        assert_eq!(ephemeral.len(), CLIENT_INIT_LEN);
        let mut exchange = Exchange::default();
        server.server_dh(&mut exchange, &init).unwrap();
        assert_eq!(exchange.server_ephemeral.len(), SERVER_REPLY_LEN);
        client
            .compute_shared_secret(&exchange.server_ephemeral)
            .unwrap();
        assert_eq!(client.shared, server.shared);
        assert!(client.shared.is_some());
    }

    #[test]
    fn truncated_and_wrong_sized_inits_are_refused() {
        let mut server = fresh();
        let mut exchange = Exchange::default();
        for payload in [
            vec![msg::KEX_ECDH_INIT],
            vec![msg::KEX_ECDH_INIT, 0, 0, 0xff, 0xff, 1, 2],
            {
                let mut p = vec![msg::KEX_ECDH_INIT];
                p.extend_from_slice(&(32u32).to_be_bytes());
                p.extend_from_slice(&[9; 32]);
                p
            },
        ] {
            assert!(server.server_dh(&mut exchange, &payload).is_err());
        }
        assert!(server.shared.is_none());
    }
}
