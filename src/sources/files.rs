//! Loads manifests from files and directories into a [`Snapshot`].
//!
//! Objects of other kinds are counted and skipped; each problem becomes a
//! diagnostic with file, line, object, field and reason, and the other
//! documents still load.

use crate::resources::{API_VERSION, GROUP};
use crate::snapshot::{locate_field, split_documents, Document};
use crate::snapshot::{Declared, Snapshot, Source};
use crate::snapshot::{Diagnostic, Reason, Severity};
use crate::validate::{self, schema};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A path that could not be read at all (a usage or I/O problem, not a diagnostic).
#[derive(Debug, thiserror::Error)]
///
/// The I/O error is part of the message and deliberately not a `source()`:
/// printing the error chain (`{:#}`) would say it twice.
#[error("cannot read {path}: {cause}")]
pub struct LoadError {
    /// The path.
    pub path: String,
    /// The I/O error.
    pub cause: std::io::Error,
}

/// Loads every `*.yaml`/`*.yml` under `paths` (recursively, in sorted order) and validates the result.
pub fn load_paths(paths: &[PathBuf]) -> Result<Snapshot, LoadError> {
    let mut snapshot = Snapshot::default();
    for file in manifest_files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|cause| LoadError {
            path: file.display().to_string(),
            cause,
        })?;
        snapshot.extend(load_text(&file.display().to_string(), &text));
    }
    validate::validate(&mut snapshot);
    Ok(snapshot)
}

/// The manifest files under `paths`, sorted, recursively.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out, true)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>, explicit: bool) -> Result<(), LoadError> {
    let err = |cause| LoadError {
        path: path.display().to_string(),
        cause,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            // Hidden entries are editors' and tools' business (.git, .swp, .stagegate).
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            collect(&entry.path(), out, false)?;
        }
    } else if explicit || is_manifest(path) {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Whether a file name looks like a manifest.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Parses one file's text (schema layer only; cross-object rules run in [`validate::validate`]).
pub fn load_text(file: &str, text: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for (position, doc) in split_documents(text).into_iter().enumerate() {
        load_document(file, position, &doc, &mut snap);
    }
    snap
}

fn load_document(file: &str, _position: usize, doc: &Document, snap: &mut Snapshot) {
    let line_of = |field: &str| {
        locate_field(&doc.text, field)
            .map(|l| doc.first_line + l - 1)
            .or(Some(doc.first_line))
    };
    let mut diag = |kind: Option<&str>,
                    ns: Option<&str>,
                    name: Option<&str>,
                    field: Option<&str>,
                    reason,
                    message: String| {
        snap.diagnostics.push(Diagnostic {
            file: Some(file.to_string()),
            line: field.map_or(Some(doc.first_line), line_of),
            kind: kind.map(str::to_string),
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            field: field.map(str::to_string),
            reason,
            severity: Severity::Error,
            message,
        })
    };
    let value: Value =
        match serde_yaml::from_str::<serde_yaml::Value>(&doc.text).map(serde_json::to_value) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                return diag(
                    None,
                    None,
                    None,
                    None,
                    Reason::InvalidYaml,
                    format!("cannot convert to JSON: {e}"),
                )
            }
            Err(e) => {
                let line = e.location().map(|l| doc.first_line + l.line() - 1);
                snap.diagnostics.push(Diagnostic {
                    file: Some(file.to_string()),
                    line: line.or(Some(doc.first_line)),
                    kind: None,
                    namespace: None,
                    name: None,
                    field: None,
                    reason: Reason::InvalidYaml,
                    severity: Severity::Error,
                    message: format!("invalid YAML: {e}"),
                });
                snap.broken_files.insert(file.to_string());
                return;
            }
        };
    let Value::Object(mut map) = value else {
        return diag(
            None,
            None,
            None,
            None,
            Reason::SchemaViolation,
            "a manifest document must be a mapping".into(),
        );
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group != GROUP {
        if api_version.is_empty() || kind.is_empty() {
            return diag(
                None,
                None,
                None,
                Some("apiVersion"),
                Reason::SchemaViolation,
                "apiVersion and kind are required".into(),
            );
        }
        *snap.skipped.entry(kind).or_default() += 1;
        return;
    }
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(meta) = meta.as_object_mut() else {
        return diag(
            Some(&kind),
            None,
            None,
            Some("metadata"),
            Reason::SchemaViolation,
            "metadata must be a mapping".into(),
        );
    };
    let namespace = meta
        .entry("namespace")
        .or_insert_with(|| Value::String("default".into()))
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (k, ns, n) = (
        Some(kind.as_str()),
        Some(namespace.as_str()),
        Some(name.as_str()).filter(|n| !n.is_empty()),
    );
    if api_version != API_VERSION {
        return diag(
            k,
            ns,
            n,
            Some("apiVersion"),
            Reason::UnknownApiVersion,
            format!("unknown apiVersion {api_version:?} (this stagegate serves {API_VERSION})"),
        );
    }
    let object = Value::Object(map);
    let issues = schema::check(&kind, &object);
    if !issues.is_empty() {
        for i in issues {
            diag(k, ns, n, Some(&i.field), i.reason, i.message);
        }
        return;
    }
    let source = Source {
        file: Some(file.to_string()),
        line: Some(doc.first_line),
    };
    snap.documents
        .insert((file.to_string(), doc.first_line), doc.text.clone());
    let pushed = match kind.as_str() {
        "User" => typed(object, source, &mut snap.users),
        "AccessBinding" => typed(object, source, &mut snap.bindings),
        "ApiToken" => typed(object, source, &mut snap.tokens),
        "ModelStageRequest" => typed(object, source, &mut snap.requests),
        _ => Err(format!("unknown kind {kind:?}")),
    };
    if let Err(e) = pushed {
        diag(k, ns, n, None, Reason::SchemaViolation, e);
    }
}

fn typed<K: DeserializeOwned>(
    object: Value,
    source: Source,
    into: &mut Vec<Declared<K>>,
) -> Result<(), String> {
    let object = serde_json::from_value(object).map_err(|e| e.to_string())?;
    into.push(Declared { object, source });
    Ok(())
}
