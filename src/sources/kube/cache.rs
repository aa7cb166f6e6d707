//! What the watchers have seen: the four kinds as raw JSON (so a malformed
//! object is still visible and can be reported), the metadata of Secrets
//! (never their data: a cluster's Helm release Secrets alone can weigh
//! gigabytes), and the data of the Secrets Users reference for passwords,
//! fetched by name when their metadata changes. Shared between the watch
//! tasks, the reconcile loop and the Secret sink.
//!
//! Only a change that matters wakes the reconcile loop: any change of the
//! four kinds, and of a Secret stagegate wrote, one a User references, or one
//! at a name a declaration would write to (a conflict).

use crate::resources::names;
use crate::snapshot::ObjectKey;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Metadata of Secrets in watched namespaces (and ones the controller wrote), by (namespace, name).
    pub secrets: BTreeMap<(String, String), ObjectMeta>,
    /// Referenced password Secrets as fetched: by (namespace, name), with the resourceVersion read.
    pub passwords: BTreeMap<(String, String), Secret>,
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

    /// Replaces the metadata of every Secret a feed covers.
    pub fn replace_secrets(&mut self, feed: &Feed, items: Vec<ObjectMeta>) {
        self.secrets.retain(|(ns, _), _| !feed.covers("Secret", ns));
        for m in items {
            self.put_secret(m);
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

    /// Adds or replaces a Secret's metadata (kept lean: no managed fields, no
    /// `last-applied-configuration`, which would hold the data again); a
    /// change that matters bumps the version.
    pub fn put_secret(&mut self, meta: ObjectMeta) {
        let meta = lean(meta);
        let id = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let matters = ours(&meta) || self.secrets.get(&id).is_some_and(ours) || self.relevant(&id);
        self.secrets.insert(id, meta);
        if matters {
            self.version += 1;
        }
    }

    /// Forgets a Secret.
    pub fn remove_secret(&mut self, namespace: &str, name: &str) {
        let id = (namespace.to_string(), name.to_string());
        let was_ours = self.secrets.remove(&id).as_ref().is_some_and(ours);
        self.passwords.remove(&id);
        if was_ours || self.relevant(&id) {
            self.version += 1;
        }
    }

    /// Whether a declaration reads (passwordSecretRef) or would write the Secret `id`.
    fn relevant(&self, id: &(String, String)) -> bool {
        self.objects.iter().any(|(k, v)| {
            k.namespace == id.0
                && match k.kind.as_str() {
                    "User" => match v
                        .pointer("/spec/passwordSecretRef/name")
                        .and_then(Value::as_str)
                    {
                        Some(r) => r == id.1,
                        None => {
                            names::password_secret_name(&k.name) == id.1
                                || names::invitation_secret_name(&k.name) == id.1
                        }
                    },
                    "ApiToken" => match v.pointer("/spec/secretName").and_then(Value::as_str) {
                        Some(s) => s == id.1,
                        None => names::token_secret_name(&k.name) == id.1,
                    },
                    _ => false,
                }
        })
    }

    /// The Secrets Users reference for passwords: (namespace, name).
    pub fn referenced(&self) -> BTreeSet<(String, String)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == "User")
            .filter_map(|(k, v)| {
                let name = v.pointer("/spec/passwordSecretRef/name")?.as_str()?;
                Some((k.namespace.clone(), name.to_string()))
            })
            .collect()
    }

    /// Referenced Secrets whose fetched data is missing or older than their metadata.
    pub fn stale_passwords(&self) -> Vec<(String, String)> {
        self.referenced()
            .into_iter()
            .filter(|id| match (self.secrets.get(id), self.passwords.get(id)) {
                (Some(meta), Some(fetched)) => {
                    meta.resource_version != fetched.metadata.resource_version
                }
                (Some(_), None) => true,
                (None, _) => false,
            })
            .collect()
    }

    /// Records a fetched referenced Secret (or its absence).
    pub fn put_password(&mut self, id: (String, String), secret: Option<Secret>) {
        match secret {
            Some(s) => {
                self.passwords.insert(id, s);
            }
            None => {
                self.passwords.remove(&id);
            }
        }
        // No version bump: the reconcile that fetched it snapshots it next.
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

/// kubectl's copy of what it applied: for a Secret, its data again.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Secret metadata without managed fields and kubectl's last-applied copy.
pub fn lean(mut meta: ObjectMeta) -> ObjectMeta {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    meta
}

/// Whether stagegate wrote the Secret (its annotation says so).
fn ours(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(crate::secrets::MANAGED_BY_ANNOTATION))
        .is_some_and(|v| v == super::MANAGED_BY)
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

    /// Applies `f` and wakes the reconcile loop only when it changed something
    /// that matters (the version moved): an unrelated Secret costs no reconcile.
    pub fn update_if_changed(&self, f: impl FnOnce(&mut Cache)) {
        let moved = {
            let mut cache = self.lock();
            let before = cache.version;
            f(&mut cache);
            cache.version != before
        };
        if moved {
            self.changed.notify_one();
        }
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
