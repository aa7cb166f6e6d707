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
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Objects of the four kinds, by key, lean (see [`lean_object`]); shared, so the
    /// report phase's copy of a reconcile's objects costs no deep copy.
    pub objects: BTreeMap<ObjectKey, Arc<Value>>,
    /// Per object, a fingerprint of the `status` the last reconcile wanted it to have:
    /// the watch event of the controller's own status patch is not news, someone
    /// else's change of a status is.
    expected_status: HashMap<ObjectKey, u64>,
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
        self.objects
            .extend(items.into_iter().map(|(k, v)| (k, Arc::new(v))));
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

    /// Adds or replaces an object. A change that matters bumps the version: anything
    /// but the `resourceVersion` and a `status` that the last reconcile wanted (the
    /// controller's own status patch coming back through the watch).
    pub fn put_object(&mut self, key: ObjectKey, value: Value) {
        let matters = match self.objects.get(&key) {
            Some(old) if same_but_status(old, &value) => {
                value.get("status") != old.get("status")
                    && self.expected_status.get(&key)
                        != Some(&fingerprint(value.get("status").unwrap_or(&Value::Null)))
            }
            _ => true,
        };
        self.objects.insert(key, Arc::new(value));
        if matters {
            self.version += 1;
        }
    }

    /// Forgets an object.
    pub fn remove_object(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
        self.expected_status.remove(key);
        self.version += 1;
    }

    /// Records the `status` a reconcile wants `key` to have (before patching it, so
    /// the patch's watch event finds it).
    pub fn expect_status(&mut self, key: &ObjectKey, status: &Value) {
        if self.objects.contains_key(key) {
            self.expected_status
                .insert(key.clone(), fingerprint(status));
        }
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

/// An object of the four kinds without what stagegate never reads and a cluster
/// keeps growing: managed fields and kubectl's last-applied copy (the whole
/// object again). At 67,000 objects these were most of the cache.
pub fn lean_object(value: &mut Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        let empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
            Some(a) => {
                a.remove(LAST_APPLIED);
                a.is_empty()
            }
            None => false,
        };
        if empty {
            meta.remove("annotations");
        }
    }
}

/// Whether two versions of an object differ at most in `status` and `resourceVersion`.
fn same_but_status(a: &Value, b: &Value) -> bool {
    type Map = serde_json::Map<String, Value>;
    /// Equal apart from the keys in `skip` (maps compare without regard to key order).
    fn equal_except(a: &Map, b: &Map, skip: &[&str]) -> bool {
        let kept = |m: &Map| m.keys().filter(|k| !skip.contains(&k.as_str())).count();
        kept(a) == kept(b)
            && a.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .all(|(k, v)| b.get(k) == Some(v))
    }
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let empty = Map::new();
    let meta_a = a
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let meta_b = b
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    equal_except(a, b, &["status", "metadata"])
        && equal_except(meta_a, meta_b, &["resourceVersion"])
}

/// A fingerprint of a JSON value that does not depend on the order of object keys.
fn fingerprint(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(v: &Value, h: &mut std::collections::hash_map::DefaultHasher) {
        match v {
            Value::Null => 0u8.hash(h),
            Value::Bool(b) => (1u8, b).hash(h),
            Value::Number(n) => (2u8, n.to_string()).hash(h),
            Value::String(s) => (3u8, s).hash(h),
            Value::Array(a) => {
                (4u8, a.len()).hash(h);
                a.iter().for_each(|x| feed(x, h));
            }
            Value::Object(m) => {
                (5u8, m.len()).hash(h);
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    k.hash(h);
                    feed(&m[k], h);
                }
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feed(v, &mut h);
    h.finish()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(role: &str, rv: &str, status: Value) -> Value {
        json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "AccessBinding",
               "metadata": {"name": "b", "namespace": "team", "resourceVersion": rv,
                            "annotations": {"team": "ml"}},
               "spec": {"user": "ada", "role": role}, "status": status})
    }

    fn key() -> ObjectKey {
        ObjectKey::new("AccessBinding", "team", "b")
    }

    /// Puts `value` and says whether the version moved.
    fn moved(cache: &mut Cache, value: Value) -> bool {
        let before = cache.version;
        cache.put_object(key(), value);
        cache.version != before
    }

    #[test]
    fn own_status_patches_are_not_news_other_changes_are() {
        let mut cache = Cache::default();
        assert!(
            moved(&mut cache, binding("Analyst", "1", json!({}))),
            "new object"
        );
        // The controller's own patch, announced before it was sent, comes back: not news.
        let ready = json!({"conditions": [{"type": "Ready", "status": "True"}], "phase": "x"});
        cache.expect_status(&key(), &ready);
        assert!(!moved(&mut cache, binding("Analyst", "2", ready.clone())));
        // The same key order does not matter.
        let reordered: Value = serde_json::from_str(
            r#"{"phase": "x", "conditions": [{"status": "True", "type": "Ready"}]}"#,
        )
        .unwrap();
        assert!(!moved(&mut cache, binding("Analyst", "3", reordered)));
        // Someone else rewrites the status: news (the controller puts it back).
        let forged = json!({"conditions": [{"type": "Ready", "status": "False"}]});
        assert!(moved(&mut cache, binding("Analyst", "4", forged)));
        // A spec change, with the expected status: news.
        assert!(moved(&mut cache, binding("Admin", "5", ready.clone())));
        // A metadata change (an annotation) with the status unchanged: news.
        let mut annotated = binding("Admin", "6", ready);
        annotated["metadata"]["annotations"]["team"] = json!("platform");
        assert!(moved(&mut cache, annotated));
        // Only the resourceVersion moved: not news.
        let mut same = cache.objects[&key()].as_ref().clone();
        same["metadata"]["resourceVersion"] = json!("7");
        assert!(!moved(&mut cache, same));
    }

    #[test]
    fn an_object_never_patched_by_this_controller_reports_any_status_change() {
        let mut cache = Cache::default();
        cache.put_object(key(), binding("Analyst", "1", json!({})));
        assert!(moved(
            &mut cache,
            binding("Analyst", "2", json!({"phase": "Active"}))
        ));
        cache.remove_object(&key());
        // A status expected for an object that is gone is not remembered.
        cache.expect_status(&key(), &json!({"phase": "Active"}));
        cache.put_object(key(), binding("Analyst", "3", json!({})));
        assert!(moved(
            &mut cache,
            binding("Analyst", "4", json!({"phase": "Active"}))
        ));
    }

    #[test]
    fn lean_objects_keep_what_the_snapshot_reads() {
        let mut v = json!({"metadata": {"name": "b", "managedFields": [{"manager": "kubectl"}],
                                         "annotations": {LAST_APPLIED: "{...}",
                                                         "stagegate.dev/requested-at": "2026-01-01T00:00:00Z"}},
                           "spec": {"user": "ada"}});
        lean_object(&mut v);
        assert_eq!(
            v,
            json!({"metadata": {"name": "b",
                                "annotations": {"stagegate.dev/requested-at": "2026-01-01T00:00:00Z"}},
                   "spec": {"user": "ada"}})
        );
        let mut only_applied =
            json!({"metadata": {"name": "b", "annotations": {LAST_APPLIED: "{}"}}});
        lean_object(&mut only_applied);
        assert_eq!(only_applied, json!({"metadata": {"name": "b"}}));
    }
}
