//! Reads the Secret manifests of a secrets directory (`<dir>/<namespace>/<name>.yaml`)
//! so `passwordSecretRef` works without a cluster.

use super::{classify_bytes, DirSecretSink, SecretState, SinkError};
use crate::snapshot::{check_nesting, decode_text, strip_bom, SecretData, MAX_NESTING};
use crate::snapshot::{Diagnostic, Reason, Severity};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Secret data by (namespace, name), and problems with unreadable files.
pub type LoadedSecrets = (BTreeMap<(String, String), SecretData>, Vec<Diagnostic>);

fn warn(file: &Path, message: &str) -> Diagnostic {
    Diagnostic {
        file: Some(file.display().to_string()),
        line: None,
        kind: Some("Secret".into()),
        namespace: None,
        name: None,
        field: None,
        reason: Reason::InvalidYaml,
        severity: Severity::Warning,
        message: message.to_string(),
    }
}

/// Parses one Secret manifest: `data` (base64) merged with `stringData` (which wins, as in Kubernetes).
/// Errors never quote the file's content, which holds secrets.
pub fn parse_secret_manifest(
    text: &str,
) -> Result<(Option<String>, Option<String>, SecretData), String> {
    let text = strip_bom(text);
    check_nesting(text, MAX_NESTING).map_err(|p| p.message)?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|_| "not valid YAML".to_string())?;
    if doc["kind"].as_str() != Some("Secret") {
        return Err("not a Secret manifest (kind must be Secret)".into());
    }
    let name = doc["metadata"]["name"].as_str().map(str::to_string);
    let ns = doc["metadata"]["namespace"].as_str().map(str::to_string);
    let mut out = SecretData::new();
    if let Some(map) = doc["data"].as_mapping() {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err("data must map strings to base64 strings".into());
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|_| format!("data.{k} is not valid base64"))?;
            out.insert(k.to_string(), bytes);
        }
    }
    if let Some(map) = doc["stringData"].as_mapping() {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err("stringData must map strings to strings".into());
            };
            out.insert(k.to_string(), v.as_bytes().to_vec());
        }
    }
    Ok((ns, name, out))
}

/// A file's identity and version: inode, size, modification and change times.
///
/// Equal stamps are the cheap evidence (one `stat`, no read) that a file was
/// neither replaced nor written since: a rename gives a new inode, a write a
/// new change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path` itself (a symbolic link is not followed); None when it cannot be read.
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::symlink_metadata(path).ok()?;
        #[cfg(unix)]
        let (inode, changed) = {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), (m.ctime(), m.ctime_nsec()))
        };
        #[cfg(not(unix))]
        let (inode, changed) = (0, (0, 0));
        Some(FileStamp {
            inode,
            len: m.len(),
            modified: m.modified().ok(),
            changed,
        })
    }
}

/// One `<namespace>/<name>.yaml` found in a secrets directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretFileName {
    /// The namespace (its directory's name).
    pub namespace: String,
    /// The Secret's name (the file name without `.yaml`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// What one Secret file holds, as directory mode reads it.
#[derive(Clone, Debug)]
pub struct SecretFile {
    /// Its data for `passwordSecretRef`, when it parsed.
    pub data: Option<SecretData>,
    /// A problem reading it (never quoting its content). Boxed: almost every file has
    /// none, and the secrets cache keeps one `SecretFile` per delivered Secret (15,000 at
    /// issue 19's scale), where an inline `Diagnostic` cost ~190 bytes each.
    pub warning: Option<Box<Diagnostic>>,
    /// What [`DirSecretSink`]'s `state` reports for it; None when it could not be read.
    pub state: Option<SecretState>,
    /// A digest of what was read (or of why it was not), to tell whether it changed.
    pub digest: [u8; 32],
}

/// The Secret files of `dir` (`<dir>/<namespace>/<name>.yaml`), sorted, with a warning for
/// each namespace directory that is a symbolic link (never followed). A missing directory is empty.
pub fn list_secret_files(dir: &Path) -> (Vec<SecretFileName>, Vec<Diagnostic>) {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(dir) else {
        return (out, diags);
    };
    let mut ns_dirs: Vec<_> = namespaces.flatten().collect();
    ns_dirs.sort_by_key(|e| e.file_name());
    for entry in ns_dirs {
        let ns_dir = entry.path();
        let ns = entry.file_name().to_string_lossy().into_owned();
        if ns.starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                diags.push(warn(&ns_dir, "a symbolic link in the secrets directory is never followed; its Secrets are not read"));
                continue;
            }
            Ok(t) if t.is_dir() => {}
            _ => continue,
        }
        let Ok(files) = std::fs::read_dir(&ns_dir) else {
            continue;
        };
        let mut files: Vec<_> = files.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let fname = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(stem) = fname.as_deref().and_then(|n| n.strip_suffix(".yaml")) else {
                continue;
            };
            if stem.starts_with('.') {
                continue; // our own temp files, editors' swap files
            }
            out.push(SecretFileName {
                namespace: ns.clone(),
                name: stem.to_string(),
                path: path.clone(),
            });
        }
    }
    (out, diags)
}

/// Reads one listed Secret file through `sink` (no symbolic link is followed); None when it is gone.
pub fn read_secret_file(sink: &DirSecretSink, f: &SecretFileName) -> Option<SecretFile> {
    let problem = |message: String, state: Option<SecretState>| SecretFile {
        data: None,
        digest: Sha256::digest(message.as_bytes()).into(),
        warning: Some(Box::new(warn(&f.path, &message))),
        state,
    };
    let bytes = match sink.read_raw(&f.namespace, &f.name) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        // Whatever is in the way was not written by stagegate: never read through or overwritten.
        Err(SinkError::Refused { why, .. }) => {
            return Some(problem(
                format!("not read: {why}"),
                Some(SecretState::Foreign),
            ))
        }
        Err(e) => return Some(problem(format!("cannot read: {e}"), None)),
    };
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    let state = Some(classify_bytes(&bytes));
    let text = match decode_text(bytes) {
        Ok(t) => t,
        Err(p) => {
            return Some(SecretFile {
                digest,
                ..problem(p.message, state)
            })
        }
    };
    let mut out = SecretFile {
        data: None,
        warning: None,
        state,
        digest,
    };
    match parse_secret_manifest(&text) {
        Ok((mns, mname, data)) => {
            if mns.as_deref().is_some_and(|m| m != f.namespace)
                || mname.as_deref().is_some_and(|m| m != f.name)
            {
                out.warning = Some(Box::new(warn(&f.path, "metadata.namespace/name do not match the file's path <namespace>/<name>.yaml; using the path")));
            }
            out.data = Some(data);
        }
        Err(m) => out.warning = Some(Box::new(warn(&f.path, &m))),
    }
    Some(out)
}

/// Loads every `<dir>/<namespace>/<name>.yaml` Secret manifest; a missing directory is empty.
///
/// Read through the directory sink, so no symbolic link is followed: a linked
/// namespace directory or file is skipped with a warning, never read.
pub fn load_secrets_dir(dir: &Path) -> LoadedSecrets {
    let (files, mut diags) = list_secret_files(dir);
    let sink = DirSecretSink::new(dir);
    let mut secrets = BTreeMap::new();
    for f in files {
        let Some(read) = read_secret_file(&sink, &f) else {
            continue;
        };
        diags.extend(read.warning.map(|w| *w));
        if let Some(data) = read.data {
            secrets.insert((f.namespace, f.name), data);
        }
    }
    (secrets, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_string_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("team")).unwrap();
        std::fs::write(
            dir.path().join("team/alice-pw.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata: {name: alice-pw, namespace: team}\ndata:\n  password: aHVudGVyMg==\nstringData:\n  other: plain\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("team/bad.yaml"),
            "kind: Secret\ndata: {password: '%%%'}\n",
        )
        .unwrap();
        let (s, d) = load_secrets_dir(dir.path());
        let data = &s[&("team".to_string(), "alice-pw".to_string())];
        assert_eq!(data["password"], b"hunter2");
        assert_eq!(data["other"], b"plain");
        assert_eq!(d.len(), 1);
        assert!(!d[0].message.contains("%%%"));
    }
}
