//! Reads the Secret manifests of a secrets directory (`<dir>/<namespace>/<name>.yaml`)
//! so `passwordSecretRef` works without a cluster.

use crate::snapshot::SecretData;
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
pub fn load_secrets_dir(dir: &Path) -> LoadedSecrets {
    let mut secrets = BTreeMap::new();
    let mut diags = Vec::new();
    let Ok(namespaces) = std::fs::read_dir(dir) else {
        return (secrets, diags);
    };
    let mut ns_dirs: Vec<_> = namespaces.flatten().map(|e| e.path()).collect();
    ns_dirs.sort();
    for ns_dir in ns_dirs.into_iter().filter(|p| p.is_dir()) {
        let ns = ns_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
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
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(warn(&f, &format!("cannot read: {}", e.kind())));
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
