//! The directory sink: each Secret is a Kubernetes Secret manifest at
//! `<secrets-dir>/<namespace>/<name>.yaml`, mode 0600, written atomically.

use super::sink::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
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

/// What a Secret file's bytes say about its owner: not UTF-8 is something stagegate did not write.
pub fn classify_bytes(bytes: &[u8]) -> SecretState {
    std::str::from_utf8(bytes).map_or(SecretState::Foreign, classify_manifest)
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

/// Why the sink will not touch a path: never follows or leaves the secrets directory.
fn refused(namespace: &str, name: &str, why: impl Into<String>) -> SinkError {
    SinkError::Refused {
        path: format!("{namespace}/{name}.yaml"),
        why: why.into(),
    }
}

/// A single plain path component: not empty, no separator or NUL, not `.`/`..`, not hidden.
fn plain_component(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("empty name".into());
    }
    if part.contains(['/', '\\', '\0']) || part == "." || part == ".." {
        return Err(format!("{part:?} would resolve outside its directory"));
    }
    if part.starts_with('.') {
        return Err(format!("{part:?} is a hidden name"));
    }
    Ok(())
}

/// Flags of every open below the root: never through a symbolic link.
fn no_follow() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY
}

impl DirSecretSink {
    fn check_names(namespace: &str, name: &str) -> Result<(), SinkError> {
        plain_component(namespace)
            .and_then(|()| plain_component(name))
            .map_err(|why| refused(namespace, name, why))
    }

    /// The root directory, or None when it does not exist (the root itself may be a link the operator chose).
    fn open_root(&self) -> std::io::Result<Option<OwnedFd>> {
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The namespace directory, never through a symbolic link; None when absent and not `create`.
    fn open_namespace(
        &self,
        root: &OwnedFd,
        namespace: &str,
        name: &str,
        create: bool,
    ) -> Result<Option<OwnedFd>, SinkError> {
        use rustix::fs::{Mode, OFlags};
        let io = Self::io(namespace, name);
        if create {
            match rustix::fs::mkdirat(root, namespace, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io(e.into())),
            }
        }
        match rustix::fs::openat(
            root,
            namespace,
            OFlags::RDONLY | OFlags::DIRECTORY | no_follow(),
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(rustix::io::Errno::NOENT) if !create => Ok(None),
            Err(e @ (rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)) => {
                // A link is never followed: what it points at is not ours (a conflict). A stray
                // file or other non-directory is a fault of this path (the OS error), which
                // the object reports as such (DeliveryFailed, SecretUnreadable).
                let link =
                    rustix::fs::statat(root, namespace, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| {
                            rustix::fs::FileType::from_raw_mode(st.st_mode)
                                == rustix::fs::FileType::Symlink
                        });
                if link {
                    Err(refused(
                        namespace,
                        name,
                        format!("{namespace} is a symbolic link, never followed"),
                    ))
                } else {
                    Err(io(e.into()))
                }
            }
            Err(e) => Err(io(e.into())),
        }
    }

    /// The raw bytes of a Secret's file, read without following any symbolic link; None when absent.
    ///
    /// Refused (an error) when a name would leave the directory or a link is in the way.
    pub fn read_raw(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>, SinkError> {
        use rustix::fs::{FileType, Mode, OFlags};
        use std::io::Read;
        Self::check_names(namespace, name)?;
        let io = Self::io(namespace, name);
        let Some(root) = self.open_root().map_err(&io)? else {
            return Ok(None);
        };
        let Some(dir) = self.open_namespace(&root, namespace, name, false)? else {
            return Ok(None);
        };
        let fd = match rustix::fs::openat(
            &dir,
            format!("{name}.yaml"),
            OFlags::RDONLY | OFlags::NONBLOCK | no_follow(),
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => {
                return Err(refused(
                    namespace,
                    name,
                    "a symbolic link is never followed",
                ))
            }
            Err(e) => return Err(io(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refused(namespace, name, "not a regular file"));
        }
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(&io)?;
        Ok(Some(bytes))
    }

    /// Writes `text` as `<namespace>/<name>.yaml` through a 0600 temporary file in the same directory.
    /// With `replace` false an existing entry is never replaced (`Conflict`).
    fn write_file(
        &self,
        s: &OutgoingSecret,
        text: &str,
        replace: bool,
    ) -> Result<(Delivery, PathBuf), SinkError> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        let io = Self::io(&s.namespace, &s.name);
        private_dir(&self.root).map_err(&io)?;
        let root = self
            .open_root()
            .map_err(&io)?
            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let Some(dir) = self.open_namespace(&root, &s.namespace, &s.name, true)? else {
            return Err(io(std::io::ErrorKind::NotFound.into()));
        };
        let target = format!("{}.yaml", s.name);
        let tmp = format!(".stagegate-{:016x}.tmp", rand::random::<u64>());
        let fd = rustix::fs::openat(
            &dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | no_follow(),
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io(e.into()))?;
        let mut file = std::fs::File::from(fd);
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        drop(file);
        let result = written.map_err(&io).and_then(|()| {
            if replace {
                // rename replaces the entry itself: a link put in the way is replaced, never written through.
                rustix::fs::renameat(&dir, &tmp, &dir, &target)
                    .map(|()| Delivery::Delivered)
                    .map_err(|e| io(e.into()))
            } else {
                // No clobber: a file (or link) that appeared since `state` is somebody else's.
                match rustix::fs::linkat(&dir, &tmp, &dir, &target, AtFlags::empty()) {
                    Ok(()) => Ok(Delivery::Delivered),
                    Err(rustix::io::Errno::EXIST) => Ok(Delivery::Conflict),
                    Err(e) => Err(io(e.into())),
                }
            }
        });
        if !(replace && matches!(result, Ok(Delivery::Delivered))) {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
        }
        result.map(|d| (d, self.root.join(&s.namespace)))
    }
}

impl SecretSink for DirSecretSink {
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError> {
        match self.read_raw(namespace, name) {
            Ok(None) => Ok(SecretState::Absent),
            // Not UTF-8: something we did not write.
            Ok(Some(bytes)) => Ok(classify_bytes(&bytes)),
            Err(SinkError::Refused { path, why }) => {
                // Whatever is in the way was not written by stagegate: it is never read through or overwritten.
                tracing::warn!(path = %path, why = %why, "secrets directory entry refused");
                Ok(SecretState::Foreign)
            }
            Err(e) => Err(e),
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
        Self::check_names(&s.namespace, &s.name)?;
        let existing = match self.read_raw(&s.namespace, &s.name)? {
            None => SecretState::Absent,
            Some(bytes) => classify_bytes(&bytes),
        };
        if existing == SecretState::Foreign {
            return Ok(Delivery::Conflict);
        }
        let (result, dir) = self.write_file(s, &manifest(s), existing != SecretState::Absent)?;
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
    fn never_writes_or_reads_through_links_or_outside_names() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let root = dir.path().join("secrets");
        std::fs::create_dir_all(&root).unwrap();
        // A namespace directory that is a link: refused for reading and writing.
        std::os::unix::fs::symlink(&outside, root.join("team")).unwrap();
        std::fs::write(outside.join("ci-token.yaml"), "kind: Secret\n").unwrap();
        let sink = DirSecretSink::new(&root);
        assert_eq!(
            sink.state("team", "ci-token").unwrap(),
            SecretState::Foreign
        );
        let err = sink.deliver(&secret("k1")).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("team/ci-token.yaml"), "{err}");
        let err = sink.read_raw("team", "ci-token").unwrap_err();
        assert!(matches!(err, SinkError::Refused { .. }), "{err}");
        // A file that is a link: left alone, never written through.
        std::fs::remove_file(root.join("team")).unwrap();
        std::fs::create_dir_all(root.join("team")).unwrap();
        std::os::unix::fs::symlink(
            outside.join("ci-token.yaml"),
            root.join("team/ci-token.yaml"),
        )
        .unwrap();
        assert_eq!(
            sink.state("team", "ci-token").unwrap(),
            SecretState::Foreign
        );
        assert!(matches!(
            sink.deliver(&secret("k1")),
            Err(SinkError::Refused { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(outside.join("ci-token.yaml")).unwrap(),
            "kind: Secret\n"
        );
        // Names that would leave the directory are refused, whatever validation let through.
        for (ns, name) in [
            ("../outside", "x"),
            ("team", "../../outside/x"),
            ("/tmp", "x"),
            ("..", "x"),
            ("team", ""),
        ] {
            let mut s = secret("k1");
            s.namespace = ns.into();
            s.name = name.into();
            assert!(
                matches!(sink.deliver(&s), Err(SinkError::Refused { .. })),
                "{ns}/{name}"
            );
            assert_eq!(sink.state(ns, name).unwrap(), SecretState::Foreign);
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
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
