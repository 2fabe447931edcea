//! [`ApiKeys`]: the front door's bearer-token API keys, one a line in a file, kept only as
//! SHA-256 digests and compared in constant time; read again on SIGHUP, so that a key can be
//! revoked (or one added) without a restart and without dropping the others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest API key accepted, in characters.
pub const MIN_KEY_LEN: usize = 16;

type KeyDigest = [u8; 32];

/// The API keys the front door accepts. `Debug` shows the file and the number of keys only.
pub struct ApiKeys {
    path: PathBuf,
    digests: RwLock<Vec<KeyDigest>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("path", &self.path)
            .field("keys", &self.len())
            .finish()
    }
}

impl ApiKeys {
    /// The keys in the file at `path`: one a line; blank lines and lines starting with `#`
    /// are skipped, surrounding whitespace removed.
    ///
    /// # Errors
    /// A message naming the file (and the line of a key too short, never a key) when it cannot
    /// be read, holds no key, or holds a key shorter than [`MIN_KEY_LEN`].
    pub fn load(path: &Path) -> Result<Arc<Self>, String> {
        let digests = read(path)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            digests: RwLock::new(digests),
        }))
    }

    /// Reads the file again and, when it is usable, accepts exactly its keys from now on;
    /// returns how many. A file that cannot be used leaves the keys as they were.
    ///
    /// # Errors
    /// As [`ApiKeys::load`].
    pub fn reload(&self) -> Result<usize, String> {
        let digests = read(&self.path)?;
        let count = digests.len();
        *self
            .digests
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = digests;
        Ok(count)
    }

    /// Whether `presented` is one of the keys. Every key is compared, each in constant time,
    /// against the presented key's digest: neither the time taken nor the lengths compared
    /// say how close a guess came.
    pub fn check(&self, presented: &[u8]) -> bool {
        let digest: KeyDigest = Sha256::digest(presented).into();
        let digests = self
            .digests
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut found = subtle::Choice::from(0);
        for known in digests.iter() {
            found |= known.ct_eq(&digest);
        }
        found.into()
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.digests
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether no key is accepted (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file the keys come from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read(path: &Path) -> Result<Vec<KeyDigest>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("API keys: cannot read {}: {err}", path.display()))?;
    let mut digests = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let key = line.trim();
        if key.is_empty() || key.starts_with('#') {
            continue;
        }
        if key.chars().count() < MIN_KEY_LEN {
            return Err(format!(
                "API keys: {} line {}: a key of {} characters, at least {MIN_KEY_LEN} needed \
                 (e.g. `openssl rand -hex 32`)",
                path.display(),
                number + 1,
                key.chars().count()
            ));
        }
        digests.push(Sha256::digest(key.as_bytes()).into());
    }
    if digests.is_empty() {
        return Err(format!("API keys: no key in {}", path.display()));
    }
    Ok(digests)
}

/// Reads `keys`' file again on every SIGHUP for as long as the process runs, logging how many
/// keys it now accepts (or why it kept the previous ones).
///
/// # Errors
/// A message when the signal cannot be listened for.
pub fn reload_on_sighup(keys: Arc<ApiKeys>) -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())
            .map_err(|err| format!("cannot listen for SIGHUP: {err}"))?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match keys.reload() {
                    Ok(count) => tracing::info!(
                        keys = count,
                        "API keys reloaded from {}",
                        keys.path().display()
                    ),
                    Err(err) => {
                        tracing::error!(keys = keys.len(), "{err}; the keys loaded before are kept")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = keys;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("rpc-keys-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("written");
        path
    }

    #[test]
    fn keys_are_checked_reloaded_and_never_shown() {
        let path = file(
            "a",
            "# ops\nalpha-key-0123456789\n\n  beta-key-0123456789  \n",
        );
        let keys = ApiKeys::load(&path).expect("two keys");
        assert_eq!(keys.len(), 2);
        assert!(keys.check(b"alpha-key-0123456789"));
        assert!(keys.check(b"beta-key-0123456789"));
        assert!(!keys.check(b"alpha-key-012345678"));
        assert!(!keys.check(b""));
        let shown = format!("{keys:?}");
        assert!(
            !shown.contains("alpha") && !shown.contains("beta"),
            "{shown}"
        );

        std::fs::write(&path, "beta-key-0123456789\n").expect("rewritten");
        assert_eq!(keys.reload(), Ok(1));
        assert!(!keys.check(b"alpha-key-0123456789"), "revoked");
        assert!(keys.check(b"beta-key-0123456789"));

        std::fs::write(&path, "short\n").expect("rewritten");
        let err = keys.reload().expect_err("too short");
        assert!(err.contains("line 1") && !err.contains("short\n"), "{err}");
        assert!(
            keys.check(b"beta-key-0123456789"),
            "kept after a bad reload"
        );
        std::fs::remove_file(&path).ok();
    }
}
