//! The server key: 32 random bytes in a 0600 file, the HMAC key for token
//! secrets and password fingerprints.

use super::SecretValue;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors loading or creating the server key (never carry the key).
#[derive(Debug, thiserror::Error)]
pub enum ServerKeyError {
    /// Reading or writing the file failed.
    #[error("server key file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is readable by others (or by its group, unless owned by root and group-read-only).
    #[error("server key file {path} has mode {mode:o}: it must not be accessible to group or others (chmod 600; a root-owned file may be 640)")]
    Permissions {
        /// File.
        path: PathBuf,
        /// Mode bits found.
        mode: u32,
    },
    /// The file holds neither 32 raw bytes nor base64 of at least 32 bytes.
    #[error("server key file {path} holds {len} bytes: expected 32 random bytes, or base64 text of at least 32 random bytes")]
    Length {
        /// File.
        path: PathBuf,
        /// Length found.
        len: usize,
    },
}

/// The HMAC-SHA-256 key of this installation.
#[derive(Clone)]
pub struct ServerKey {
    secret: SecretValue,
    /// HMAC-SHA-256 with the key already absorbed: each MAC clones it instead of hashing the
    /// key's padded blocks again (two of the five compressions a token check costs).
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    fn new(secret: SecretValue) -> Self {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose())
            .expect("HMAC accepts any key length");
        ServerKey { secret, keyed }
    }

    /// A key from 32 bytes (tests, benchmarks).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerKey::new(SecretValue::new(bytes.to_vec()))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(rand::random())
    }

    /// Loads the key at `path`, creating it (0600, 32 random bytes) when absent; refuses a file group or others can read.
    pub fn load_or_create(path: &Path) -> Result<Self, ServerKeyError> {
        let io = |source| ServerKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                check_mode(path)?;
                Self::decode(path, &bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let key = Self::generate();
                // create_new: two processes starting at once must not both write a key.
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                set_private(&mut opts);
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(key.secret.expose()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        tracing::info!(path = %path.display(), "created server key");
                        Ok(key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key in a file: exactly 32 raw bytes (as stagegate writes it), or base64
    /// text of at least 32 bytes (as `head -c 48 /dev/urandom | base64` and the Helm chart write it).
    fn decode(path: &Path, bytes: &[u8]) -> Result<Self, ServerKeyError> {
        use base64::Engine;
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        let decoded = text.and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
        match decoded {
            Some(k) if k.len() >= 32 => Ok(ServerKey::new(SecretValue::new(k))),
            _ if bytes.len() == 32 => Ok(ServerKey::new(SecretValue::new(bytes.to_vec()))),
            _ => Err(ServerKeyError::Length {
                path: path.to_path_buf(),
                len: bytes.len(),
            }),
        }
    }

    /// HMAC-SHA-256 of `data` under this key, as lowercase hex.
    pub fn mac_hex(&self, domain: &str, data: &[u8]) -> String {
        hex::encode(self.mac(domain, data))
    }

    /// HMAC-SHA-256 of `domain || 0 || data`: the domain keeps token and password MACs apart.
    pub fn mac(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(data);
        m.finalize().into_bytes().into()
    }
}

#[cfg(unix)]
fn set_private(opts: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.mode(0o600);
}

#[cfg(not(unix))]
fn set_private(_opts: &mut std::fs::OpenOptions) {}

/// Refuses a key file others can read. As PostgreSQL does for its TLS key, a
/// root-owned file may grant read (only) to its group: that is how Kubernetes
/// mounts a Secret for a non-root process (`defaultMode: 0440` with `fsGroup`).
#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), ServerKeyError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).map_err(|source| ServerKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    let group_read_only_for_root = meta.uid() == 0 && mode & 0o070 & !0o040 == 0;
    if mode & 0o007 != 0 || (mode & 0o070 != 0 && !group_read_only_for_root) {
        return Err(ServerKeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), ServerKeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keys_as_the_chart_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("server.key");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        set_private(&mut opts);
        let text = "bm90LXJhbmRvbS1idXQtbG9uZy1lbm91Z2gtdG8tYmUtYS1rZXktZm9yLXRlc3Rz\n";
        opts.open(&p).unwrap().write_all(text.as_bytes()).unwrap();
        let k = ServerKey::load_or_create(&p).unwrap();
        assert_eq!(
            k.secret.expose(),
            b"not-random-but-long-enough-to-be-a-key-for-tests"
        );
        std::fs::write(&p, "c2hvcnQ=").unwrap();
        assert!(matches!(
            ServerKey::load_or_create(&p),
            Err(ServerKeyError::Length { .. })
        ));
    }

    #[test]
    fn created_once_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/server.key");
        let k1 = ServerKey::load_or_create(&p).unwrap();
        let k2 = ServerKey::load_or_create(&p).unwrap();
        assert_eq!(k1.mac("t", b"x"), k2.mac("t", b"x"));
        assert_ne!(k1.mac("t", b"x"), k1.mac("p", b"x"));
        assert!(!format!("{k1:?}").contains('['));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            for bad in [0o644, 0o604, 0o660] {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(bad)).unwrap();
                assert!(matches!(
                    ServerKey::load_or_create(&p),
                    Err(ServerKeyError::Permissions { .. })
                ));
            }
        }
    }
}
