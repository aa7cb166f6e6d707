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
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing failed.
    #[error("secret {namespace}/{name}: {source}")]
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
    fn flush(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The observed state of the Secrets a plan may touch, by (namespace, name).
pub type SecretInventory = BTreeMap<(String, String), SecretState>;

/// Reads the state of each named Secret through `sink`.
pub fn observe<'a>(
    sink: &dyn SecretSink,
    names: impl IntoIterator<Item = &'a (String, String)>,
) -> Result<SecretInventory, SinkError> {
    let mut inv = SecretInventory::new();
    for (ns, name) in names {
        let st = sink.state(ns, name)?;
        inv.insert((ns.clone(), name.clone()), st);
    }
    Ok(inv)
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
