//! The server's own secrets and identity, kept in its data directory beside
//! the database but not in it:
//!
//! * `secret.key` (32 random bytes, mode 0600): agents' HMAC keys are
//!   derived from it and a per-agent salt, so the database holds no key an
//!   agent signs with; a stolen copy of `mirage.db` alone cannot act as any
//!   agent.
//! * `tls/api.crt` and `tls/api.key`: the self-signed certificate of the
//!   policy API. Its SHA-256 ([`mirage_net::Pin`]) travels in enrollment
//!   tokens, so an agent trusts exactly this server from its first request.
//!
//! Enrollment tokens are `SECRET` or `SECRET.PIN` (32 hex digits, then the
//! pin's 64): the server stores only the SHA-256 of `SECRET`; the agent
//! sends `SECRET` and keeps `PIN`.

use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use mirage_net::Pin;
use mirage_store::AgentKeyRow;
use sha2::{Digest, Sha256};

/// The file holding the server secret.
pub const SECRET_FILE: &str = "secret.key";

/// The server secret.
#[derive(Clone)]
pub struct ServerSecret(Arc<[u8; 32]>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

impl ServerSecret {
    /// Read `<dir>/secret.key`, making it when missing. Errors name the
    /// file.
    pub fn load_or_create(dir: &Path) -> Result<ServerSecret, String> {
        let path = dir.join(SECRET_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("{}: not a 32-byte secret", path.display()))?;
                Ok(ServerSecret(Arc::new(key)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                write_new_private(&path, &key)?;
                Ok(ServerSecret(Arc::new(key)))
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The HMAC key of `agent_id` with `salt_hex`.
    pub fn agent_key(&self, agent_id: &str, salt_hex: &str) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0[..]).unwrap_or_else(|_| unreachable!());
        mac.update(format!("mirage agent key v1\n{agent_id}\n{salt_hex}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// The key an enrolled agent signs with: derived; or, for agents
    /// enrolled by versions that stored random keys, unsealed (or, until
    /// [`seal_legacy_keys`] ran, as stored).
    pub fn key_of(&self, row: &AgentKeyRow) -> Vec<u8> {
        let stored = || mirage_core::request_auth::decode_hex(&row.key_hex).unwrap_or_default();
        match row.key_salt.as_str() {
            "" => stored(),
            SEALED => xor(&stored(), &self.seal_pad(&row.agent_id)),
            salt => self.agent_key(&row.agent_id, salt),
        }
    }

    /// The one-time pad a legacy key is sealed with: the key is as random
    /// as the pad, so XOR is encryption, and only the secret opens it.
    fn seal_pad(&self, agent_id: &str) -> Vec<u8> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0[..]).unwrap_or_else(|_| unreachable!());
        mac.update(format!("mirage legacy key seal v1\n{agent_id}").as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// `key_salt` of a key stored sealed with the server secret.
pub const SEALED: &str = "sealed";

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b.iter().cycle()).map(|(x, y)| x ^ y).collect()
}

/// Seal the keys agents were given before keys were derived (stored in
/// clear by schema 2) with the server secret, so the database alone no
/// longer holds a key any agent signs with. The agents keep their keys.
/// Returns how many were sealed.
pub async fn seal_legacy_keys(
    store: &dyn mirage_store::Store,
    secret: &ServerSecret,
) -> Result<usize, mirage_store::StoreError> {
    let mut sealed = 0;
    for row in store.legacy_agent_keys().await? {
        let key = secret.key_of(&row);
        // Keys were 32 bytes, as long as the pad; anything else stays.
        if key.len() != 32 {
            continue;
        }
        let hex = mirage_core::event::hex(&xor(&key, &secret.seal_pad(&row.agent_id)));
        if store
            .replace_agent_key(&row.agent_id, &row.key_hex, &hex, SEALED)
            .await?
        {
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// Create `path` with `data`, mode 0600, failing if it exists (two
/// processes racing to make the secret must not both win).
fn write_new_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The policy API's TLS server config and the pin of its certificate, made
/// once under `<data_dir>/tls/`.
pub fn api_tls(data_dir: &Path) -> Result<(Arc<rustls::ServerConfig>, Pin), String> {
    let dir = data_dir.join("tls");
    let config = mirage_net::tls::self_signed_server_config(&dir, "api", "mirage-server")?;
    let pin = Pin::of_pem_file(&dir.join("api.crt"))?;
    Ok((config, pin))
}

/// The pin of the server's certificate (made now if there is none yet):
/// what enrollment tokens carry and sensors put in `server_pin`.
pub fn api_pin(data_dir: &Path) -> Result<Pin, String> {
    api_tls(data_dir).map(|(_, pin)| pin)
}

/// SHA-256 of a token's secret part, hex: what the store keeps.
pub fn token_hash(token: &str) -> String {
    let (secret, _) = split_token(token);
    mirage_core::event::hex(&Sha256::digest(secret.as_bytes()))
}

/// A token's secret and, when it has one, the pin it carries.
pub fn split_token(token: &str) -> (&str, Option<Pin>) {
    let token = token.trim();
    match token.split_once('.') {
        Some((secret, pin)) => (secret, Pin::parse(pin)),
        None => (token, None),
    }
}

/// A new token: 16 random bytes in hex, with `.PIN` when the API speaks
/// TLS.
pub fn new_token(pin: Option<Pin>) -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness: {e}"))?;
    let secret = mirage_core::event::hex(&b);
    Ok(match pin {
        Some(p) => format!("{secret}.{p}"),
        None => secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_private_and_keys_follow_id_and_salt() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = ServerSecret::load_or_create(dir.path()).unwrap();
        let b = ServerSecret::load_or_create(dir.path()).unwrap();
        assert_eq!(a.agent_key("x", "01"), b.agent_key("x", "01"));
        assert_ne!(a.agent_key("x", "01"), a.agent_key("y", "01"));
        assert_ne!(a.agent_key("x", "01"), a.agent_key("x", "02"));
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SECRET_FILE), b"short").unwrap();
        assert!(
            ServerSecret::load_or_create(dir.path())
                .unwrap_err()
                .contains("32-byte")
        );
    }

    #[test]
    fn tokens_carry_the_pin_and_hash_without_it() {
        let pin = Pin::of(b"cert");
        let t = new_token(Some(pin)).unwrap();
        let (secret, p) = split_token(&t);
        assert_eq!((secret.len(), p), (32, Some(pin)));
        assert_eq!(token_hash(&t), token_hash(secret));
        assert_eq!(split_token(&new_token(None).unwrap()).1, None);
    }
}
