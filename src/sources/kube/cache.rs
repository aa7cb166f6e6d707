//! What the watchers have seen: the four kinds as raw JSON (so a malformed
//! object is still visible and can be reported) and Secrets, shared between
//! the watch tasks, the reconcile loop and the Secret sink.

use crate::snapshot::ObjectKey;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One watch stream's scope: a kind (or Secrets) in one namespace or all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Feed {
    /// `User`, `AccessBinding`, `ApiToken`, `ModelStageRequest` or `Secret`.
    pub kind: &'static str,
    /// Namespace, or all when `None`.
    pub namespace: Option<String>,
}

impl Feed {
    fn covers(&self, kind: &str, namespace: &str) -> bool {
        self.kind == kind && self.namespace.as_deref().is_none_or(|n| n == namespace)
    }
}

/// The watched state.
#[derive(Debug, Default)]
pub struct Cache {
    /// Objects of the four kinds, by key.
    pub objects: BTreeMap<ObjectKey, Value>,
    /// Secrets in watched namespaces (and ones the controller wrote), by (namespace, name).
    pub secrets: BTreeMap<(String, String), Secret>,
    /// Feeds whose first list is complete.
    synced: Vec<Feed>,
    /// Bumped on every change.
    pub version: u64,
    /// Refuse declarations in namespaces no AccessDomain pins (`--require-access-domain`).
    pub require_access_domain: bool,
}

impl Cache {
    /// Replaces everything a feed covers with a fresh list (watch (re)start).
    pub fn replace_objects(&mut self, feed: &Feed, items: Vec<(ObjectKey, Value)>) {
        self.objects
            .retain(|k, _| !feed.covers(&k.kind, &k.namespace));
        self.objects.extend(items);
        self.mark_synced(feed);
    }

    /// Replaces every Secret a feed covers.
    pub fn replace_secrets(&mut self, feed: &Feed, items: Vec<Secret>) {
        self.secrets.retain(|(ns, _), _| !feed.covers("Secret", ns));
        for s in items {
            self.put_secret(s);
        }
        self.mark_synced(feed);
    }

    /// Adds or replaces an object.
    pub fn put_object(&mut self, key: ObjectKey, value: Value) {
        self.objects.insert(key, value);
        self.version += 1;
    }

    /// Forgets an object.
    pub fn remove_object(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
        self.version += 1;
    }

    /// Adds or replaces a Secret.
    pub fn put_secret(&mut self, s: Secret) {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        self.secrets.insert((ns, name), s);
        self.version += 1;
    }

    /// Forgets a Secret.
    pub fn remove_secret(&mut self, namespace: &str, name: &str) {
        self.secrets
            .remove(&(namespace.to_string(), name.to_string()));
        self.version += 1;
    }

    fn mark_synced(&mut self, feed: &Feed) {
        if !self.synced.contains(feed) {
            self.synced.push(feed.clone());
        }
        self.version += 1;
    }

    /// Whether every one of `feeds` has completed its first list.
    pub fn synced(&self, feeds: &[Feed]) -> bool {
        feeds.iter().all(|f| self.synced.contains(f))
    }

    /// uid of a cached object.
    pub fn uid(&self, key: &ObjectKey) -> Option<String> {
        self.objects
            .get(key)?
            .pointer("/metadata/uid")?
            .as_str()
            .map(str::to_string)
    }
}

/// The cache shared by the watch tasks, the reconcile loop and the sink.
#[derive(Debug, Default)]
pub struct Shared {
    cache: Mutex<Cache>,
    /// Woken on every change.
    pub changed: tokio::sync::Notify,
}

impl Shared {
    /// A new empty cache.
    pub fn new() -> Arc<Self> {
        Arc::new(Shared::default())
    }

    /// Locks the cache (a poisoned lock is recovered: the data is plain values).
    pub fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `f` to the cache and wakes the reconcile loop.
    pub fn update(&self, f: impl FnOnce(&mut Cache)) {
        f(&mut self.lock());
        self.changed.notify_one();
    }
}

/// The key of a raw object of `kind` (namespace and name from its metadata).
pub fn key_of(kind: &str, value: &Value) -> Option<ObjectKey> {
    let meta = value.get("metadata")?;
    Some(ObjectKey::new(
        kind,
        // Cluster-scoped objects (AccessDomain) have no namespace.
        meta.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        meta.get("name")?.as_str()?,
    ))
}
