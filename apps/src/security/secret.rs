//! [`Secret`]: the shared secret TCP producers and consumers prove to each other, read from
//! the file named by `RPC_SECRET_FILE` or from `RPC_SECRET`; never a command-line value.

use std::path::PathBuf;

/// The variable naming a file that holds the shared secret (its first line).
pub const SECRET_FILE_ENV: &str = "RPC_SECRET_FILE";

/// The variable holding the shared secret itself (when no file is named).
pub const SECRET_ENV: &str = "RPC_SECRET";

/// The shortest secret accepted, in bytes.
const MIN_SECRET_LEN: usize = 16;

/// A shared secret. Its `Debug` shows where it came from, never its bytes; it has no
/// `Display`.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    source: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("source", &self.source)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

impl Secret {
    /// The secret from `RPC_SECRET_FILE` (a path; the file's first line, surrounding
    /// whitespace removed), else from `RPC_SECRET`; `None` when neither is set.
    ///
    /// # Errors
    /// A message (naming the variable or the file, never the secret) when the file cannot be
    /// read or the secret is shorter than 16 bytes.
    pub fn from_env() -> Result<Option<Secret>, String> {
        if let Some(path) = std::env::var_os(SECRET_FILE_ENV) {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|err| {
                format!("{SECRET_FILE_ENV}: cannot read {}: {err}", path.display())
            })?;
            let line = text.lines().next().unwrap_or("").trim();
            return Self::checked(
                line.as_bytes(),
                format!("{SECRET_FILE_ENV} ({})", path.display()),
            )
            .map(Some);
        }
        match std::env::var(SECRET_ENV) {
            Ok(value) => Self::checked(value.trim().as_bytes(), SECRET_ENV.to_string()).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{SECRET_ENV} is not UTF-8 text"))
            }
        }
    }

    fn checked(bytes: &[u8], source: String) -> Result<Secret, String> {
        if bytes.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the secret from {source} is {} bytes long: use at least {MIN_SECRET_LEN} \
                 (e.g. `openssl rand -hex 32`)",
                bytes.len()
            ));
        }
        Ok(Secret {
            bytes: bytes.to_vec(),
            source,
        })
    }

    /// Where it came from (`RPC_SECRET`, or `RPC_SECRET_FILE (<path>)`), for logs.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Its bytes, for the transport's handshake.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let secret = Secret::checked(b"correct-horse-battery-staple", "RPC_SECRET".into())
            .expect("long enough");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("RPC_SECRET"), "{shown}");
        let err = Secret::checked(b"short-pass", "RPC_SECRET".into()).expect_err("too short");
        assert!(!err.contains("short-pass"), "{err}");
        assert!(err.contains("at least 16"), "{err}");
    }
}
