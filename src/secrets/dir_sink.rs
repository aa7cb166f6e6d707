//! The directory sink: each Secret is a Kubernetes Secret manifest at
//! `<secrets-dir>/<namespace>/<name>.yaml`, mode 0600, written atomically.

use super::sink::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Delivers Secrets as 0600 manifest files under one directory.
#[derive(Clone, Debug)]
pub struct DirSecretSink {
    root: PathBuf,
    /// Namespace directories renamed into since the last flush (shared by clones): made durable once, not per file.
    touched: std::sync::Arc<std::sync::Mutex<BTreeMap<String, PathBuf>>>,
}

impl DirSecretSink {
    /// A sink writing under `root` (created on first delivery).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSecretSink {
            root: root.into(),
            touched: Default::default(),
        }
    }

    /// The secrets directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a Secret's file.
    pub fn path_of(&self, namespace: &str, name: &str) -> PathBuf {
        self.root.join(namespace).join(format!("{name}.yaml"))
    }

    fn io(namespace: &str, name: &str) -> impl Fn(std::io::Error) -> SinkError {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        move |source| SinkError::Io {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        }
    }
}

/// Reads a manifest's ownership: ours (with key id) when annotated managed-by stagegate, else foreign.
pub fn classify_manifest(text: &str) -> SecretState {
    let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return SecretState::Foreign;
    };
    let ann = &doc["metadata"]["annotations"];
    if ann[MANAGED_BY_ANNOTATION].as_str() == Some("stagegate") {
        SecretState::Ours {
            key_id: ann[KEY_ID_ANNOTATION].as_str().map(str::to_string),
        }
    } else {
        SecretState::Foreign
    }
}

fn manifest(s: &OutgoingSecret) -> String {
    let mut annotations = BTreeMap::new();
    annotations.insert(MANAGED_BY_ANNOTATION, "stagegate".to_string());
    annotations.insert(KEY_ID_ANNOTATION, s.key_id.clone());
    annotations.insert(OWNER_ANNOTATION, s.owner.to_string());
    if let Some(e) = &s.expires_at {
        annotations.insert(EXPIRES_AT_ANNOTATION, e.clone());
    }
    let data: BTreeMap<&str, String> = s
        .data
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
        .collect();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "labels": {"app.kubernetes.io/managed-by": "stagegate"},
            "annotations": annotations,
        },
        "type": "Opaque",
        "stringData": data,
    });
    // Delivered once per key: a rotation (or a new generated password) replaces this file.
    format!(
        "# Written by stagegate: delivered once, never re-sent; a rotation replaces it with a new key. Keep it safe.\n{}",
        serde_yaml::to_string(&doc).unwrap_or_default()
    )
}

/// Creates `dir` (and parents) readable by the owner only.
#[cfg(unix)]
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates `dir` (and parents).
#[cfg(not(unix))]
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

impl SecretSink for DirSecretSink {
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError> {
        match std::fs::read_to_string(self.path_of(namespace, name)) {
            Ok(text) => Ok(classify_manifest(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SecretState::Absent),
            // Unreadable or not UTF-8: something we did not write.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Ok(SecretState::Foreign),
            Err(e) => Err(Self::io(namespace, name)(e)),
        }
    }

    fn flush(&self) -> BTreeMap<String, SinkError> {
        let dirs = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        let mut failed = BTreeMap::new();
        for (namespace, dir) in dirs {
            // fsync of the directory makes the renames durable before keys are marked issued;
            // a failure concerns this namespace's Secrets only.
            if let Err(source) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
                let name = String::new();
                failed.insert(
                    namespace.clone(),
                    SinkError::Io {
                        namespace,
                        name,
                        source,
                    },
                );
            }
        }
        failed
    }

    fn retire(&self, namespace: &str, name: &str, key_id: &str) -> Result<bool, SinkError> {
        let ours = SecretState::Ours {
            key_id: Some(key_id.to_string()),
        };
        // Only our own file, still holding the dead key: a newer key or a foreign file stays.
        if self.state(namespace, name)? != ours {
            return Ok(false);
        }
        let path = self.path_of(namespace, name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Self::io(namespace, name)(e)),
        }
        if let Some(dir) = path.parent() {
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(namespace.to_string(), dir.to_path_buf());
        }
        tracing::info!(%namespace, %name, %key_id, "secret removed: the key it held was deleted");
        Ok(true)
    }

    fn deliver(&self, s: &OutgoingSecret) -> Result<Delivery, SinkError> {
        let io = Self::io(&s.namespace, &s.name);
        let existing = self.state(&s.namespace, &s.name)?;
        if existing == SecretState::Foreign {
            return Ok(Delivery::Conflict);
        }
        let path = self.path_of(&s.namespace, &s.name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        private_dir(&dir).map_err(&io)?;
        // NamedTempFile is created 0600 in the target directory, so the rename is atomic and the secret is never world-readable.
        let mut tmp = tempfile::Builder::new()
            .prefix(".stagegate-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(&io)?;
        tmp.write_all(manifest(s).as_bytes()).map_err(&io)?;
        tmp.as_file().sync_all().map_err(&io)?;
        let result = if existing == SecretState::Absent {
            // No clobber: a file that appeared since `state` is somebody else's.
            match tmp.persist_noclobber(&path) {
                Ok(_) => Ok(Delivery::Delivered),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(Delivery::Conflict)
                }
                Err(e) => Err(io(e.error)),
            }
        } else {
            tmp.persist(&path)
                .map(|_| Delivery::Delivered)
                .map_err(|e| io(e.error))
        }?;
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(s.namespace.clone(), dir);
        tracing::info!(namespace = %s.namespace, name = %s.name, key_id = %s.key_id, ?result, "secret delivered");
        Ok(result)
    }
}

/// Lexically absolute and normalized (no `.`/`..`), resolving symlinks of the part that exists.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Canonicalize the longest existing prefix so a symlinked parent cannot hide nesting.
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(n) => rest.push(n.to_os_string()),
            None => break,
        }
        existing.pop();
    }
    let mut base = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        base.push(n);
    }
    base
}

/// Refuses a secrets directory inside (or equal to) the watched directory: secrets must never land in a git checkout of manifests.
pub fn check_secrets_dir(watched: &Path, secrets: &Path) -> Result<(), SinkError> {
    let (w, s) = (resolved(watched), resolved(secrets));
    if s.starts_with(&w) {
        return Err(SinkError::Config(format!(
            "secrets directory {} is inside the watched directory {}: choose a directory outside it (e.g. --secrets-dir ./.stagegate/secrets)",
            secrets.display(),
            watched.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretValue;
    use crate::snapshot::ObjectKey;

    fn secret(key_id: &str) -> OutgoingSecret {
        let mut data = BTreeMap::new();
        data.insert(
            "apiKey".to_string(),
            SecretValue::from_string("s3cr3t".into()),
        );
        OutgoingSecret {
            namespace: "team".into(),
            name: "ci-token".into(),
            data,
            key_id: key_id.into(),
            expires_at: None,
            owner: ObjectKey::new("ApiToken", "team", "ci"),
        }
    }

    #[test]
    fn writes_0600_ours_and_refuses_foreign() {
        let dir = tempfile::tempdir().unwrap();
        let sink = DirSecretSink::new(dir.path().join("secrets"));
        assert_eq!(sink.state("team", "ci-token").unwrap(), SecretState::Absent);
        assert_eq!(sink.deliver(&secret("k1")).unwrap(), Delivery::Delivered);
        assert_eq!(
            sink.state("team", "ci-token").unwrap(),
            SecretState::Ours {
                key_id: Some("k1".into())
            }
        );
        let path = sink.path_of("team", "ci-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["stringData"]["apiKey"].as_str(), Some("s3cr3t"));
        // Rotation replaces our own file.
        assert_eq!(sink.deliver(&secret("k2")).unwrap(), Delivery::Delivered);
        // A foreign file is never overwritten.
        std::fs::write(&path, "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n").unwrap();
        assert_eq!(
            sink.state("team", "ci-token").unwrap(),
            SecretState::Foreign
        );
        assert_eq!(sink.deliver(&secret("k3")).unwrap(), Delivery::Conflict);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("k3"));
    }

    #[test]
    fn secrets_dir_must_not_be_inside_watched_dir() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("manifests");
        std::fs::create_dir_all(&w).unwrap();
        assert!(check_secrets_dir(&w, &w.join("secrets")).is_err());
        assert!(check_secrets_dir(&w, &w.join("a/../b")).is_err());
        assert!(check_secrets_dir(&w, &w).is_err());
        assert!(check_secrets_dir(&w, &dir.path().join("secrets")).is_ok());
        assert!(check_secrets_dir(&w, &w.join("../secrets")).is_ok());
    }
}
