//! Reads the Secret manifests of a secrets directory (`<dir>/<namespace>/<name>.yaml`)
//! so `passwordSecretRef` works without a cluster.

use super::{DirSecretSink, SinkError};
use crate::snapshot::{check_nesting, decode_text, strip_bom, SecretData, MAX_NESTING};
use crate::snapshot::{Diagnostic, Reason, Severity};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::Path;

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

/// Loads every `<dir>/<namespace>/<name>.yaml` Secret manifest; a missing directory is empty.
///
/// Read through the directory sink, so no symbolic link is followed: a linked
/// namespace directory or file is skipped with a warning, never read.
pub fn load_secrets_dir(dir: &Path) -> LoadedSecrets {
    let mut secrets = BTreeMap::new();
    let mut diags = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(dir) else {
        return (secrets, diags);
    };
    let sink = DirSecretSink::new(dir);
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
        for f in files {
            let fname = f.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(stem) = fname.as_deref().and_then(|n| n.strip_suffix(".yaml")) else {
                continue;
            };
            if stem.starts_with('.') {
                continue; // our own temp files, editors' swap files
            }
            let bytes = match sink.read_raw(&ns, stem) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(SinkError::Refused { why, .. }) => {
                    diags.push(warn(&f, &format!("not read: {why}")));
                    continue;
                }
                Err(e) => {
                    diags.push(warn(&f, &format!("cannot read: {e}")));
                    continue;
                }
            };
            let text = match decode_text(bytes) {
                Ok(t) => t,
                Err(p) => {
                    diags.push(warn(&f, &p.message));
                    continue;
                }
            };
            match parse_secret_manifest(&text) {
                Ok((mns, mname, data)) => {
                    if mns.as_deref().is_some_and(|m| m != ns)
                        || mname.as_deref().is_some_and(|m| m != stem)
                    {
                        diags.push(warn(&f, "metadata.namespace/name do not match the file's path <namespace>/<name>.yaml; using the path"));
                    }
                    secrets.insert((ns.clone(), stem.to_string()), data);
                }
                Err(m) => diags.push(warn(&f, &m)),
            }
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
