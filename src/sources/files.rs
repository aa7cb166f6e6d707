//! Loads manifests from files and directories into a [`Snapshot`].
//!
//! Objects of other kinds are counted and skipped; each problem becomes a
//! diagnostic with file, line, object, field and reason, and the other
//! documents still load.

use crate::resources::{API_VERSION, GROUP};
use crate::snapshot::{check_nesting, decode_text, strip_bom, MAX_NESTING};
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
///
/// Only a path that cannot be listed is an error; a file that cannot be read
/// or decoded is that file's problem (`InvalidYaml`), and the others load.
pub fn load_paths(paths: &[PathBuf]) -> Result<Snapshot, LoadError> {
    load_paths_with(paths, false)
}

/// [`load_paths`], refusing declarations outside every pinned access domain
/// when `require_domains` (`--require-access-domain`). Each directory given is
/// a root whose `access-domains.yaml` pins its folders.
pub fn load_paths_with(paths: &[PathBuf], require_domains: bool) -> Result<Snapshot, LoadError> {
    let mut snapshot = Snapshot::default();
    snapshot.domains.required = require_domains;
    snapshot.domains.roots = paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|p| root_label(p))
        .collect();
    for file in manifest_files(paths)? {
        let label = file.path.display().to_string();
        snapshot.extend(match read_listed(&file) {
            Ok(bytes) => load_bytes(&label, bytes),
            Err(message) => file_problem(&label, None, message),
        });
    }
    validate::validate(&mut snapshot);
    Ok(snapshot)
}

/// One manifest file found under a watched path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// The path as found (what diagnostics and sources name).
    pub path: PathBuf,
    /// What to open: the path itself, or the target of a symbolic link that stays inside the root.
    pub open: PathBuf,
    /// Why the file is not read (a symbolic link that leaves the root, or that leads nowhere).
    pub refused: Option<String>,
}

/// The manifest files under `paths`, sorted, recursively.
///
/// Symbolic links below a given path never lead out of it: a link to a file
/// inside the same root is read (under the link's name), a link that
/// resolves outside the root or nowhere is listed as refused (that file's
/// problem), and links to directories are not descended into (a directory
/// inside the root is read at its own path; one outside is refused). A path
/// given explicitly is the user's choice and is followed.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<Listed>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        let root = p.canonicalize().map_err(|cause| LoadError {
            path: p.display().to_string(),
            cause,
        })?;
        collect(&root, p, &mut out, true)?;
    }
    out.sort();
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

fn collect(
    root: &Path,
    path: &Path,
    out: &mut Vec<Listed>,
    explicit: bool,
) -> Result<(), LoadError> {
    let err = |cause| LoadError {
        path: path.display().to_string(),
        cause,
    };
    let meta = if explicit {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(err)?;
    if meta.is_symlink() {
        collect_link(root, path, out);
        return Ok(());
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            // Hidden entries are editors' and tools' business (.git, .swp, .stagegate).
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            collect(root, &entry.path(), out, false)?;
        }
    } else if explicit || is_manifest(path) {
        out.push(Listed {
            path: path.to_path_buf(),
            open: path.to_path_buf(),
            refused: None,
        });
    }
    Ok(())
}

/// A symbolic link found below `root`: read when it names a manifest file inside the root.
fn collect_link(root: &Path, path: &Path, out: &mut Vec<Listed>) {
    let refuse = |why: String| Listed {
        path: path.to_path_buf(),
        open: path.to_path_buf(),
        refused: Some(why),
    };
    let target = match path.canonicalize() {
        Ok(t) => t,
        Err(_) if is_manifest(path) => {
            return out.push(refuse(
                "symbolic link that leads nowhere (its target does not exist); not read".into(),
            ))
        }
        Err(_) => return,
    };
    let inside = target.starts_with(root);
    if target.is_dir() {
        if !inside {
            out.push(refuse(format!(
                "symbolic link to a directory outside {}; not followed",
                root.display()
            )));
        }
        tracing::debug!(path = %path.display(), "symbolic link to a directory not descended into");
    } else if is_manifest(path) {
        out.push(if inside {
            Listed {
                path: path.to_path_buf(),
                open: target,
                refused: None,
            }
        } else {
            refuse(format!(
                "symbolic link to a file outside {}; not read",
                root.display()
            ))
        });
    }
}

/// Reads a listed file; the message says why it could not be read.
///
/// The last component is opened without following symbolic links, so a file
/// swapped for a link after listing is refused rather than read through.
pub fn read_listed(file: &Listed) -> Result<Vec<u8>, String> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    if let Some(why) = &file.refused {
        return Err(why.clone());
    }
    let fd = rustix::fs::open(
        &file.open,
        // Non-blocking: a FIFO named like a manifest must not hang the loader.
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP {
            "became a symbolic link while it was read; not read".to_string()
        } else {
            format!("cannot read the file: {}", std::io::Error::from(e))
        }
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| format!("cannot read the file: {e}"))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err("not a regular file; not read".into());
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the file: {e}"))?;
    Ok(bytes)
}

/// A file that cannot be loaded, as that file's problem: one `InvalidYaml`
/// error, and the file marked broken so nothing it declared is pruned.
pub fn file_problem(file: &str, line: Option<usize>, message: String) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.diagnostics.push(Diagnostic {
        file: Some(file.to_string()),
        line,
        kind: None,
        namespace: None,
        name: None,
        field: None,
        reason: Reason::InvalidYaml,
        severity: Severity::Error,
        message,
    });
    snap.broken_files.insert(file.to_string());
    snap
}

/// Parses one file's bytes: a leading byte-order mark is dropped, and bytes
/// that are not UTF-8 are the file's `InvalidYaml` at the line they are on.
pub fn load_bytes(file: &str, bytes: Vec<u8>) -> Snapshot {
    match decode_text(bytes) {
        Ok(text) => load_text(file, &text),
        Err(p) => file_problem(file, Some(p.line), p.message),
    }
}

/// A watched root as its files' labels start (`examples/tenants` for
/// `examples/tenants/`), so access-domain folders are read relative to it.
pub fn root_label(root: &Path) -> String {
    let label = root.display().to_string();
    match label.trim_end_matches('/') {
        "" => label,
        trimmed => trimmed.to_string(),
    }
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
    for (position, doc) in split_documents(strip_bom(text)).into_iter().enumerate() {
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
    // Lines of this document as file lines: the parser counts from the document's start.
    let offset = doc.first_line - 1;
    let last_line = offset + doc.text.lines().count().max(1);
    if let Err(p) = check_nesting(&doc.text, MAX_NESTING) {
        return broken(snap, file, offset + p.line, p.message);
    }
    // YAML allows a byte-order mark at the start of each document, not only of the file.
    let value: Value = match serde_yaml::from_str::<serde_yaml::Value>(strip_bom(&doc.text))
        .map(serde_json::to_value)
    {
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
            // An error at the end of the document (an unclosed quote) is on its last line, not after it.
            let line = e
                .location()
                .map_or(doc.first_line, |l| (offset + l.line()).min(last_line));
            let message = format!("invalid YAML: {}", shift_lines(&e.to_string(), offset));
            return broken(snap, file, line, message);
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
    // An AccessDomain is cluster-scoped: it has no namespace to default.
    let namespace = if kind == "AccessDomain" {
        String::new()
    } else {
        meta.entry("namespace")
            .or_insert_with(|| Value::String("default".into()))
            .as_str()
            .unwrap_or("default")
            .to_string()
    };
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
        "AccessDomain" => typed(object, source, &mut snap.domains.pins),
        "AccessDelegation" => typed(object, source, &mut snap.domains.delegations),
        _ => Err(format!("unknown kind {kind:?}")),
    };
    if let Err(e) = pushed {
        diag(k, ns, n, None, Reason::SchemaViolation, e);
    }
}

/// Records a document that does not parse: the file is broken as a whole (its last good objects are kept).
fn broken(snap: &mut Snapshot, file: &str, line: usize, message: String) {
    snap.extend(file_problem(file, Some(line), message));
}

/// Adds `offset` to every "line N" in a parser message, so it names file lines.
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (head, tail) = rest.split_at(at + "line ".len());
        out.push_str(head);
        let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match tail[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

fn typed<K: DeserializeOwned>(
    object: Value,
    source: Source,
    into: &mut Vec<Declared<K>>,
) -> Result<(), String> {
    let object = serde_json::from_value(object).map_err(|e| e.to_string())?;
    into.push(Declared::new(object, source));
    Ok(())
}
