//! [`SharedSecret`] and the challenge and response built on it: each side proves that it
//! knows the secret with an HMAC-SHA256 over both sides' random nonces, so the secret itself
//! never crosses the wire and an old proof never fits a new connection.

use std::path::Path;
use std::sync::Arc;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::SecurityError;

/// Bytes of each side's nonce.
pub(crate) const NONCE_LEN: usize = 32;

/// What the producer's proof covers before the nonces: a consumer's proof never passes for a
/// producer's, nor the reverse.
const PRODUCER: &[u8] = b"rpc producer proof v1";
/// What the consumer's proof covers before the nonces.
const CONSUMER: &[u8] = b"rpc consumer proof v1";

/// A secret shared by a consumer and the producers allowed to use it. It is kept only as an
/// HMAC-SHA256 key; `Debug` prints `SharedSecret(<redacted>)`, and nothing in this crate
/// writes it to a log, an error or the wire.
///
/// Load it from a file or the environment, never from a command-line argument (`ps` shows
/// those to every user of the machine):
///
/// ```
/// # fn main() -> Result<(), transport_tcp::SecurityError> {
/// use transport_tcp::SharedSecret;
///
/// let secret = SharedSecret::new("correct horse battery staple")?;
/// assert_eq!(format!("{secret:?}"), "SharedSecret(<redacted>)");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedSecret(Arc<hmac::Key>);

impl SharedSecret {
    /// The fewest bytes a secret may have. `openssl rand -hex 32` makes a good one.
    pub const MIN_LEN: usize = 16;

    /// A secret from its bytes.
    ///
    /// # Errors
    /// [`SecurityError::SecretTooShort`] under [`SharedSecret::MIN_LEN`] bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SecurityError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(SecurityError::SecretTooShort {
                len: secret.len(),
                min: Self::MIN_LEN,
            });
        }
        Ok(Self(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret))))
    }

    /// The secret in the file at `path`, without its trailing newline or spaces.
    ///
    /// # Errors
    /// [`SecurityError::Read`] when the file cannot be read (the error names the file, never
    /// its content), [`SecurityError::SecretTooShort`] when it holds too few bytes.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SecurityError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SecurityError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        Self::new(&bytes[..end])
    }

    /// The producer's proof for this pair of nonces.
    pub(crate) fn producer_proof(&self, nonces: &Nonces) -> Vec<u8> {
        self.sign(PRODUCER, nonces)
    }

    /// The consumer's proof for this pair of nonces.
    pub(crate) fn consumer_proof(&self, nonces: &Nonces) -> Vec<u8> {
        self.sign(CONSUMER, nonces)
    }

    /// Whether `proof` is the producer's proof for `nonces` (compared in constant time).
    pub(crate) fn verify_producer(&self, nonces: &Nonces, proof: &[u8]) -> bool {
        hmac::verify(&self.0, &nonces.message(PRODUCER), proof).is_ok()
    }

    /// Whether `proof` is the consumer's proof for `nonces` (compared in constant time).
    pub(crate) fn verify_consumer(&self, nonces: &Nonces, proof: &[u8]) -> bool {
        hmac::verify(&self.0, &nonces.message(CONSUMER), proof).is_ok()
    }

    fn sign(&self, label: &[u8], nonces: &Nonces) -> Vec<u8> {
        hmac::sign(&self.0, &nonces.message(label))
            .as_ref()
            .to_vec()
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// The consumer's and the producer's nonces of one handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nonces {
    pub(crate) consumer: [u8; NONCE_LEN],
    pub(crate) producer: [u8; NONCE_LEN],
}

impl Nonces {
    fn message(&self, label: &[u8]) -> Vec<u8> {
        [label, &self.consumer, &self.producer].concat()
    }
}

/// A fresh random nonce from the operating system.
///
/// # Errors
/// When the system's random source fails.
pub(crate) fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces() -> Nonces {
        Nonces {
            consumer: nonce().expect("a nonce"),
            producer: nonce().expect("a nonce"),
        }
    }

    #[test]
    fn proofs_hold_for_the_same_secret_and_nonces_only() {
        let secret = SharedSecret::new("a secret of some length").unwrap();
        let other = SharedSecret::new("another secret, as long").unwrap();
        let n = nonces();
        let proof = secret.producer_proof(&n);
        assert!(secret.verify_producer(&n, &proof));
        assert!(!other.verify_producer(&n, &proof));
        assert!(!secret.verify_producer(&nonces(), &proof));
        // A consumer's proof never passes for a producer's.
        assert!(!secret.verify_producer(&n, &secret.consumer_proof(&n)));
        assert!(secret.verify_consumer(&n, &secret.consumer_proof(&n)));
        assert!(!secret.verify_producer(&n, &[]));
    }

    #[test]
    fn short_secrets_are_refused_and_files_are_trimmed() {
        assert!(matches!(
            SharedSecret::new("short"),
            Err(SecurityError::SecretTooShort { len: 5, min: 16 })
        ));
        let dir = std::env::temp_dir().join(format!("rpc-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let from_file = SharedSecret::from_file(&path).unwrap();
        let direct = SharedSecret::new("0123456789abcdef0123").unwrap();
        let n = nonces();
        assert!(direct.verify_producer(&n, &from_file.producer_proof(&n)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
