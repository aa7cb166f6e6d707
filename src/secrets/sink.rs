//! Write-once delivery of secrets: the `SecretSink` trait every front end implements.
//!
//! A sink writes a Secret only when it is absent or one stagegate wrote
//! (a rotation replaces our own Secret); a Secret somebody else wrote is never
//! touched and reported as a conflict. Whether a delivered Secret is still
//! there is read back through [`SecretSink::state`], so a deleted Secret is
//! reported (`SecretMissing`) rather than silently re-issued.

use super::SecretValue;
use crate::snapshot::ObjectKey;
use std::collections::BTreeMap;

/// Annotation naming the key (or generated password) id a Secret holds.
pub const KEY_ID_ANNOTATION: &str = "stagegate.dev/key-id";
/// Annotation marking a Secret as written by stagegate.
pub const MANAGED_BY_ANNOTATION: &str = "stagegate.dev/managed-by";
/// Annotation with the expiry of the key, when it expires.
pub const EXPIRES_AT_ANNOTATION: &str = "stagegate.dev/expires-at";
/// Annotation naming the declaration the Secret belongs to.
pub const OWNER_ANNOTATION: &str = "stagegate.dev/owner";

/// What a sink finds under a Secret's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretState {
    /// Nothing there.
    Absent,
    /// A Secret stagegate wrote, holding this key id.
    Ours {
        /// Value of `stagegate.dev/key-id`.
        key_id: Option<String>,
    },
    /// Something stagegate did not write: never overwritten.
    Foreign,
    /// What is there cannot be read (the OS or API error, never a value):
    /// whatever it holds is unknown, so a pending key it may hold is neither
    /// completed nor forgotten, and nothing is delivered to it.
    Unreadable {
        /// The error, e.g. `Not a directory (os error 20)`.
        error: String,
    },
}

/// A Secret to deliver.
#[derive(Clone, Debug)]
pub struct OutgoingSecret {
    /// Namespace (directory in directory mode).
    pub namespace: String,
    /// Secret name.
    pub name: String,
    /// Keys and values (`apiKey`, `password`, `token`; or `username`, `password`).
    pub data: BTreeMap<String, SecretValue>,
    /// Id of the key or generated password it holds.
    pub key_id: String,
    /// Expiry of the key (RFC 3339), when it expires.
    pub expires_at: Option<String>,
    /// The declaration it belongs to.
    pub owner: ObjectKey,
}

/// Result of a delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written.
    Delivered,
    /// A Secret stagegate did not write is in the way.
    Conflict,
}

/// Errors of a sink (never carry secret values).
///
/// Every error of [`SecretSink::state`], [`SecretSink::deliver`] and
/// [`SecretSink::flush`] concerns one Secret (or the Secrets of one
/// namespace): callers make it that object's outcome and go on with the rest
/// of the plan, so a broken path in one namespace never holds back a
/// revocation elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing failed.
    #[error("Secret {namespace}/{name}: {source}")]
    Io {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The path would leave the secrets directory or pass through a symbolic link: nothing is read or written.
    #[error("secret file {path} (in the secrets directory) refused: {why}")]
    Refused {
        /// The path relative to the secrets directory.
        path: String,
        /// Why.
        why: String,
    },
    /// The configuration is unsafe (for example secrets inside the watched directory).
    #[error("{0}")]
    Config(String),
    /// A failure injected by a test wrapper.
    #[error("injected failure: {0}")]
    Injected(String),
}

/// Where generated secrets go: a directory, or Kubernetes Secrets.
///
/// `Sync` because apply delivers in parallel: each delivery waits on an fsync
/// or an API call, and thousands of them one after another take minutes.
pub trait SecretSink: Sync {
    /// What is stored under `namespace/name`.
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError>;
    /// Writes `secret` if absent or ours; `Conflict` if a foreign Secret is there.
    fn deliver(&self, secret: &OutgoingSecret) -> Result<Delivery, SinkError>;
    /// Makes every delivery so far durable; apply calls it before marking keys issued.
    /// Returns the namespaces whose deliveries could not be made durable, with the error:
    /// those keys stay pending (the next reconcile reads their Secrets again).
    fn flush(&self) -> BTreeMap<String, SinkError> {
        BTreeMap::new()
    }
    /// Removes the Secret under `namespace/name` if stagegate wrote it and it still
    /// holds `key_id`, a key whose token was deleted: nothing else may use it. True
    /// when removed. In a cluster the Secret is owned by its ApiToken and garbage-collected
    /// with it, so by default this does nothing.
    fn retire(&self, _namespace: &str, _name: &str, _key_id: &str) -> Result<bool, SinkError> {
        Ok(false)
    }
}

impl SinkError {
    /// The error as one line for a status message (the OS or API error; never a secret).
    pub fn brief(&self) -> String {
        match self {
            SinkError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    /// A copy for another Secret of the same namespace (a failed flush concerns all of them).
    pub fn for_secret(&self, namespace: &str, name: &str) -> SinkError {
        let kind = match self {
            SinkError::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::Other,
        };
        SinkError::Io {
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: std::io::Error::new(kind, self.brief()),
        }
    }
}

/// The observed state of the Secrets a plan may touch, by (namespace, name).
pub type SecretInventory = BTreeMap<(String, String), SecretState>;

/// Reads the state of each named Secret through `sink`. A Secret that cannot
/// be read is recorded [`SecretState::Unreadable`]: it concerns its own
/// object only, and the plan goes on for every other.
pub fn observe<'a>(
    sink: &dyn SecretSink,
    names: impl IntoIterator<Item = &'a (String, String)>,
) -> SecretInventory {
    let mut inv = SecretInventory::new();
    for (ns, name) in names {
        let st = sink.state(ns, name).unwrap_or_else(|e| {
            tracing::warn!(namespace = %ns, name = %name, error = %e.brief(), "cannot read Secret");
            SecretState::Unreadable { error: e.brief() }
        });
        inv.insert((ns.clone(), name.clone()), st);
    }
    inv
}

/// Secrets held by a [`MemorySink`]: state and data by (namespace, name).
type MemorySecrets = BTreeMap<(String, String), (SecretState, BTreeMap<String, SecretValue>)>;

/// A sink in memory, for tests and tools: Secrets it delivered are "ours", others can be planted as foreign.
#[derive(Debug, Default)]
pub struct MemorySink {
    secrets: std::sync::Mutex<MemorySecrets>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plants a Secret stagegate did not write.
    pub fn plant_foreign(&self, namespace: &str, name: &str) {
        self.lock().insert(
            (namespace.into(), name.into()),
            (SecretState::Foreign, BTreeMap::new()),
        );
    }

    /// Deletes a Secret (as a user would).
    pub fn remove(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// The value under `key` of a delivered Secret.
    pub fn value(&self, namespace: &str, name: &str, key: &str) -> Option<SecretValue> {
        self.lock()
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|(_, d)| d.get(key).cloned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemorySecrets> {
        // A poisoned lock only means another test thread panicked; the map is still usable.
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SecretSink for MemorySink {
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError> {
        Ok(self
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .map_or(SecretState::Absent, |(s, _)| s.clone()))
    }

    fn deliver(&self, s: &OutgoingSecret) -> Result<Delivery, SinkError> {
        let mut map = self.lock();
        let k = (s.namespace.clone(), s.name.clone());
        if matches!(map.get(&k), Some((SecretState::Foreign, _))) {
            return Ok(Delivery::Conflict);
        }
        let state = SecretState::Ours {
            key_id: Some(s.key_id.clone()),
        };
        map.insert(k, (state, s.data.clone()));
        Ok(Delivery::Delivered)
    }
}
