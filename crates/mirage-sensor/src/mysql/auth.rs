//! Authentication plugins as the server side computes them.
//!
//! - `mysql_native_password`: the client sends
//!   `SHA1(pw) XOR SHA1(scramble ‖ SHA1(SHA1(pw)))`; we recompute it for
//!   every accepted credential with the user's name.
//! - `caching_sha2_password`: the client sends
//!   `SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ scramble)`. A real server
//!   can check that only when the account's hash is in its cache (a
//!   "fast auth"); otherwise it asks for the password itself ("full auth"),
//!   which over plain TCP the client encrypts to the server's RSA key
//!   (OAEP, SHA-1) after asking for that key. The honeypot treats accepted
//!   credentials as cached (fast auth succeeds, as on a warm server), and
//!   for everything else runs the full exchange with its own key, so the
//!   password of a failed attempt arrives in clear text after decryption.

use std::sync::Arc;

use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

/// RSA key size, as MySQL's auto-generated `private_key.pem`.
pub const RSA_BITS: usize = 2048;

/// The authentication plugins the honeypot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    /// `mysql_native_password`.
    Native,
    /// `caching_sha2_password`.
    CachingSha2,
}

impl Plugin {
    /// The plugin's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Plugin::Native => "mysql_native_password",
            Plugin::CachingSha2 => "caching_sha2_password",
        }
    }

    /// The plugin named `name`, if it is one of ours.
    pub fn from_name(name: &[u8]) -> Option<Plugin> {
        match name {
            b"mysql_native_password" => Some(Plugin::Native),
            b"caching_sha2_password" => Some(Plugin::CachingSha2),
            _ => None,
        }
    }
}

/// What a `mysql_native_password` client sends for `password`.
pub fn native_token(password: &[u8], scramble: &[u8]) -> [u8; 20] {
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stage2);
    let mix = h.finalize();
    let mut out = [0u8; 20];
    for (o, (a, b)) in out.iter_mut().zip(stage1.iter().zip(mix.iter())) {
        *o = a ^ b;
    }
    out
}

/// What a `caching_sha2_password` client sends for `password`.
pub fn sha2_token(password: &[u8], scramble: &[u8]) -> [u8; 32] {
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(scramble);
    let mix = h.finalize();
    let mut out = [0u8; 32];
    for (o, (a, b)) in out.iter_mut().zip(stage1.iter().zip(mix.iter())) {
        *o = a ^ b;
    }
    out
}

/// Does `response` prove knowledge of `password` under `plugin`? An empty
/// response means "no password", which matches only an empty password.
pub fn verify(plugin: Plugin, password: &[u8], scramble: &[u8], response: &[u8]) -> bool {
    let no_password = response.is_empty() || response == [0];
    if password.is_empty() || no_password {
        return password.is_empty() && no_password;
    }
    match plugin {
        Plugin::Native => response == native_token(password, scramble),
        Plugin::CachingSha2 => response == sha2_token(password, scramble),
    }
}

/// The server's RSA key pair for `caching_sha2_password` over plain TCP.
pub struct RsaKeys {
    key: RsaPrivateKey,
    pem: String,
}

impl RsaKeys {
    /// Generate a fresh key pair (about half a second for 2048 bits in a
    /// release build; done once, off the async threads).
    pub fn generate(bits: usize) -> Option<Arc<RsaKeys>> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).ok()?;
        let pem = key.to_public_key().to_public_key_pem(LineEnding::LF).ok()?;
        Some(Arc::new(RsaKeys { key, pem }))
    }

    /// The public key as MySQL sends it (`-----BEGIN PUBLIC KEY-----`, LF).
    pub fn public_pem(&self) -> &str {
        &self.pem
    }

    /// Bytes of a ciphertext (the modulus size).
    pub fn cipher_len(&self) -> usize {
        rsa::traits::PublicKeyParts::size(&self.key)
    }

    /// Recover the password from the client's encrypted reply: OAEP
    /// decryption, then the XOR with the scramble the client applied, up to
    /// the terminating NUL. `None` if it does not decrypt.
    pub fn decrypt_password(&self, cipher: &[u8], scramble: &[u8]) -> Option<Vec<u8>> {
        if scramble.is_empty() {
            return None;
        }
        let mut plain = self.key.decrypt(Oaep::new::<Sha1>(), cipher).ok()?;
        for (i, b) in plain.iter_mut().enumerate() {
            *b ^= scramble[i % scramble.len()];
        }
        let end = plain.iter().position(|&b| b == 0).unwrap_or(plain.len());
        plain.truncate(end);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_token_matches_a_real_client() {
        // Captured: pymysql logging in as admin/secret against
        // mariadb-server with this scramble.
        let scramble = b"6dvE5wz}&AUg(/Q./@3~";
        let want = [
            0xae, 0x14, 0xe4, 0xd9, 0x36, 0xdd, 0x28, 0x07, 0x98, 0xa2, 0xd9, 0x1e, 0x06, 0xac,
            0x41, 0xc5, 0xfd, 0x8c, 0x7d, 0x12,
        ];
        assert_eq!(native_token(b"secret", scramble), want);
        assert!(verify(Plugin::Native, b"secret", scramble, &want));
        assert!(!verify(Plugin::Native, b"secreT", scramble, &want));
        assert!(verify(Plugin::Native, b"", scramble, b""));
        assert!(!verify(Plugin::Native, b"", scramble, &want));
        assert!(!verify(Plugin::Native, b"secret", scramble, b""));
    }

    #[test]
    fn sha2_token_round_trip() {
        let s = [7u8; 20];
        let t = sha2_token(b"pw", &s);
        assert!(verify(Plugin::CachingSha2, b"pw", &s, &t));
        assert!(!verify(Plugin::CachingSha2, b"px", &s, &t));
        assert!(verify(Plugin::CachingSha2, b"", &s, &[0]));
    }

    #[test]
    fn rsa_password_exchange() {
        // A small key keeps the debug-build test fast; OAEP-SHA1 fits a
        // 21-byte password in 512 bits.
        let keys = RsaKeys::generate(512).unwrap();
        assert!(
            keys.public_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        let scramble = b"abcdefghijklmnopqrst";
        let mut msg = b"hunter2\0".to_vec();
        for (i, b) in msg.iter_mut().enumerate() {
            *b ^= scramble[i % 20];
        }
        let public = keys.key.to_public_key();
        let cipher = public
            .encrypt(&mut rsa::rand_core::OsRng, Oaep::new::<Sha1>(), &msg)
            .unwrap();
        assert_eq!(cipher.len(), keys.cipher_len());
        assert_eq!(
            keys.decrypt_password(&cipher, scramble).as_deref(),
            Some(&b"hunter2"[..])
        );
        assert_eq!(keys.decrypt_password(&cipher[1..], scramble), None);
    }
}
