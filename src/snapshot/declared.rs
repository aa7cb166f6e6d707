//! The snapshot: every declared object, typed, with where it came from.

use super::domain::{Domain, DomainDeclarations};
use super::Diagnostic;
use crate::resources::{AccessBinding, ApiToken, ModelStageRequest, User};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Kind, namespace and name: the identity of a declaration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// `User`, `AccessBinding`, `ApiToken` or `ModelStageRequest`.
    pub kind: String,
    /// Namespace (`default` when a manifest omits it).
    pub namespace: String,
    /// metadata.name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            // A `File` row (see `FILE_KIND`): no namespace to show.
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Where a declaration came from: a file and line, or a cluster object.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Source {
    /// Path of the manifest file, relative to the loaded root when possible.
    pub file: Option<String>,
    /// 1-based line where the object's document starts.
    pub line: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}"),
            (Some(file), None) => f.write_str(file),
            _ => f.write_str("cluster"),
        }
    }
}

/// One declared object and its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Declared<K> {
    /// The typed object (namespace always set).
    pub object: K,
    /// Where it came from.
    pub source: Source,
    /// The access domain it was declared in, as `validate` resolved it
    /// (`None`: unpinned, today's global meaning, or not validated yet).
    pub domain: Option<Domain>,
}

impl<K> Declared<K> {
    /// A declaration from `source`, its domain not resolved yet.
    pub fn new(object: K, source: Source) -> Self {
        Declared {
            object,
            source,
            domain: None,
        }
    }
}

impl<K: kube::Resource<DynamicType = ()>> Declared<K> {
    /// Its kind/namespace/name.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            &K::kind(&()),
            &self.object.namespace().unwrap_or_default(),
            &self.object.name_any(),
        )
    }
}

/// The data of a Secret a declaration may reference, by key.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// Every declaration, typed, plus what could not be loaded.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Users.
    pub users: Vec<Declared<User>>,
    /// Access bindings.
    pub bindings: Vec<Declared<AccessBinding>>,
    /// API tokens.
    pub tokens: Vec<Declared<ApiToken>>,
    /// Stage requests.
    pub requests: Vec<Declared<ModelStageRequest>>,
    /// Secrets available to `passwordSecretRef`, by (namespace, name).
    pub secrets: BTreeMap<(String, String), SecretData>,
    /// Objects of other kinds that were skipped, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Problems found while loading and validating.
    pub diagnostics: Vec<Diagnostic>,
    /// Files that failed to load as a whole: what they declared before must be kept, not pruned.
    pub broken_files: BTreeSet<String>,
    /// Text of each loaded document by (file, first line), so later checks can point at a field's line.
    pub documents: BTreeMap<(String, usize), String>,
    /// Access-domain pins and delegations, and how declarations are placed in domains.
    pub domains: DomainDeclarations,
    /// Files whose document texts this snapshot does not hold, each with the SHA-256 of
    /// the content its objects were parsed from: a long-lived cache keeps only the typed
    /// objects (the texts were a large share of its memory), and [`Snapshot::field_line`]
    /// re-reads such a file, while it still has that content, when a problem needs a line.
    pub reread: BTreeMap<String, [u8; 32]>,
    /// Declarations planned for their status alone (a scoped round's, see
    /// `sources::scoped`): each is unchanged since the store's status of it was planned
    /// except for its source (its file's lines moved), so `plan` gives it that status with
    /// this source. Empty in every other snapshot.
    pub moved: BTreeMap<ObjectKey, Source>,
}

impl Snapshot {
    /// Keys of objects with at least one error: left out of the plan, never pruned.
    pub fn invalid_keys(&self) -> BTreeSet<ObjectKey> {
        self.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .filter_map(|d| {
                Some(ObjectKey::new(
                    d.kind.as_deref()?,
                    d.namespace.as_deref()?,
                    d.name.as_deref()?,
                ))
            })
            .collect()
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

impl Snapshot {
    /// Adds another snapshot's objects, secrets, counts and diagnostics (e.g. one file's).
    pub fn extend(&mut self, other: Snapshot) {
        self.users.extend(other.users);
        self.bindings.extend(other.bindings);
        self.tokens.extend(other.tokens);
        self.requests.extend(other.requests);
        self.secrets.extend(other.secrets);
        for (k, n) in other.skipped {
            *self.skipped.entry(k).or_default() += n;
        }
        self.diagnostics.extend(other.diagnostics);
        self.broken_files.extend(other.broken_files);
        self.documents.extend(other.documents);
        self.reread.extend(other.reread);
        self.moved.extend(other.moved);
        self.domains.pins.extend(other.domains.pins);
        self.domains.delegations.extend(other.domains.delegations);
        self.domains.unreadable.extend(other.domains.unreadable);
        self.domains.roots.extend(other.domains.roots);
    }

    /// The line of `field` in the document `source` points at, or the document's line.
    pub fn field_line(&self, source: &Source, field: &str) -> Option<usize> {
        let (file, line) = (source.file.as_ref()?, source.line?);
        let reread;
        let doc = match self.documents.get(&(file.clone(), line)) {
            Some(d) => Some(d.as_str()),
            None => {
                reread = self.reread_document(file, line);
                reread.as_deref()
            }
        };
        Some(
            doc.and_then(|d| super::locate_field(d, field))
                .map_or(line, |l| line + l - 1),
        )
    }

    /// The text of the document at `line` of `file`, read again from disk (see
    /// [`Snapshot::reread`]); None when the file is gone or no longer has the content
    /// parsed (its new content is parsed, and its problems located, in the next round).
    fn reread_document(&self, file: &str, line: usize) -> Option<String> {
        use sha2::Digest;
        let digest = self.reread.get(file)?;
        let bytes = std::fs::read(file).ok()?;
        if sha2::Sha256::digest(&bytes).as_slice() != digest.as_slice() {
            return None;
        }
        let text = super::decode_text(bytes).ok()?;
        super::split_documents(super::strip_bom(&text))
            .into_iter()
            .find(|d| d.first_line == line)
            .map(|d| d.text)
    }
}
