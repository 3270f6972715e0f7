//! Host keys: generated once under `<data_dir>/ssh/` in OpenSSH format
//! (mode 0600) and loaded on every later start, so the honeypot's
//! fingerprint never changes between restarts (a changing key is a
//! honeypot tell and makes clients refuse to reconnect).

use std::path::{Path, PathBuf};

use anyhow::Context;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

/// Directory under the data dir.
pub const DIR_NAME: &str = "ssh";

/// Makes the algorithm of one key file.
type MakeAlgorithm = fn() -> Algorithm;

/// The key files, in the order sshd loads them (and offers their algorithms).
const KEYS: &[(&str, MakeAlgorithm)] = &[
    ("ssh_host_rsa_key", || Algorithm::Rsa { hash: None }),
    ("ssh_host_ecdsa_key", || Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    }),
    ("ssh_host_ed25519_key", || Algorithm::Ed25519),
];

/// Bits of the RSA host key (ssh-keygen's default).
const RSA_BITS: usize = 3072;

/// Load the host keys from `data_dir/ssh/`, generating the missing ones.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<Vec<PrivateKey>> {
    let dir = data_dir.join(DIR_NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut keys = Vec::new();
    for (name, alg) in KEYS {
        let path: PathBuf = dir.join(name);
        let key = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            PrivateKey::from_openssh(text)
                .with_context(|| format!("{}: not an OpenSSH private key", path.display()))?
        } else {
            let mut rng = rand::rng();
            let key = match alg() {
                Algorithm::Rsa { .. } => {
                    let rsa = russh::keys::ssh_key::private::RsaKeypair::random(&mut rng, RSA_BITS)
                        .context("cannot generate the RSA host key")?;
                    PrivateKey::from(rsa)
                }
                a => PrivateKey::random(&mut rng, a).context("cannot generate a host key")?,
            };
            let text = key
                .to_openssh(LineEnding::LF)
                .context("cannot encode a host key")?;
            write_private(&path, text.as_bytes())?;
            if let Ok(public) = key.public_key().to_openssh() {
                let _ = std::fs::write(path.with_extension("pub"), format!("{public}\n"));
            }
            tracing::info!(path = %path.display(), "generated SSH host key");
            key
        };
        keys.push(key);
    }
    Ok(keys)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
