//! What the watchers have seen: the four kinds in a compact form (their lean
//! JSON text, so a malformed object is still visible and can be reported, and
//! the few facts read on every event), the metadata of Secrets
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

/// One object of the four kinds as the cache holds it (built once, when its event
/// arrives): the lean object's JSON text in three parts (status and resourceVersion
/// apart, so the controller's own status patch coming back compares without parsing
/// and a round's snapshot never parses a status), and the facts read on every Secret
/// event and every round, so those never parse it. At 67,000 objects a
/// `serde_json::Value` tree per object was most of the process's memory; the text is
/// a fraction of it, and a round parses each object once (as it cloned it before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compact {
    /// The object without `status` and without a string `metadata.resourceVersion`
    /// (JSON; serde_json's maps are sorted, so equal objects have equal texts).
    body: Box<str>,
    /// `metadata.resourceVersion`, when a string.
    resource_version: Option<Box<str>>,
    /// `status` as JSON, when present.
    status: Option<Box<str>>,
    /// The Secret name a User reads (`spec.passwordSecretRef.name`) or an ApiToken
    /// writes (`spec.secretName`), when the object names one.
    secret_ref: Option<Box<str>>,
    /// Whether it has a `metadata.deletionTimestamp`.
    deleting: bool,
    /// Whether it carries our finalizer.
    finalized: bool,
}

impl Compact {
    /// The compact form of a lean object of `kind` (see [`lean_object`]).
    pub fn new(kind: &str, mut value: Value) -> Compact {
        let text = |s: &str| s.into();
        let secret_ref = match kind {
            "User" => value.pointer("/spec/passwordSecretRef/name"),
            "ApiToken" => value.pointer("/spec/secretName"),
            _ => None,
        }
        .and_then(Value::as_str)
        .map(text);
        let deleting = value.pointer("/metadata/deletionTimestamp").is_some();
        let finalized = super::finalizer::has(&value);
        let mut resource_version = None;
        let mut status = None;
        if let Some(m) = value.as_object_mut() {
            status = m.remove("status").map(|s| s.to_string().into());
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                if meta.get("resourceVersion").is_some_and(Value::is_string) {
                    resource_version = meta
                        .remove("resourceVersion")
                        .and_then(|v| v.as_str().map(text));
                }
            }
        }
        Compact {
            body: value.to_string().into(),
            resource_version,
            status,
            secret_ref,
            deleting,
            finalized,
        }
    }

    /// The object as the API server sent it (lean): body, resourceVersion and status.
    pub fn object(&self) -> Value {
        let mut value = self.declared();
        if let (Some(m), Some(status)) = (value.as_object_mut(), self.status()) {
            m.insert("status".into(), status);
        }
        value
    }

    /// The object without its `status` (which is ours to write, not input): what a
    /// round's snapshot converts.
    pub fn declared(&self) -> Value {
        // The text is serde_json's own output: it parses back unless it nests deeper than
        // the parser's limit, which the API server's JSON already had to pass.
        let mut value: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        if let (Some(meta), Some(rv)) = (
            value.get_mut("metadata").and_then(Value::as_object_mut),
            &self.resource_version,
        ) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        value
    }

    /// The object's `status`, when it has one.
    pub fn status(&self) -> Option<Value> {
        serde_json::from_str(self.status.as_deref()?).ok()
    }

    /// `metadata.resourceVersion`, when a string.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// Whether it has a `metadata.deletionTimestamp`.
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// Whether our finalizer is on it.
    pub fn finalized(&self) -> bool {
        self.finalized
    }

    /// Whether two versions differ at most in `status` and `resourceVersion`.
    fn same_but_status(&self, other: &Compact) -> bool {
        self.body == other.body
    }
}

/// A cached object and the fingerprint of the `status` the last reconcile wanted it to
/// have: the watch event of the controller's own status patch is not news, someone
/// else's change of a status is.
#[derive(Debug, Clone)]
struct Entry {
    object: Arc<Compact>,
    expected_status: Option<u64>,
}

/// The watched state.
#[derive(Debug, Default)]
pub struct Cache {
    /// Objects of the four kinds, by key, compact (see [`Compact`]); shared, so the
    /// report phase's copy of a reconcile's objects costs no deep copy.
    objects: BTreeMap<ObjectKey, Entry>,
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
    /// Replaces everything a feed covers with a fresh list (watch (re)start). The status
    /// expected of an object that is listed again is kept.
    pub fn replace_objects(&mut self, feed: &Feed, items: Vec<(ObjectKey, Compact)>) {
        let mut expected: HashMap<ObjectKey, u64> = HashMap::new();
        self.objects.retain(|k, e| {
            let keep = !feed.covers(&k.kind, &k.namespace);
            if let (false, Some(f)) = (keep, e.expected_status) {
                expected.insert(k.clone(), f);
            }
            keep
        });
        self.objects.extend(items.into_iter().map(|(k, c)| {
            let expected_status = expected.get(&k).copied();
            let entry = Entry {
                object: Arc::new(c),
                expected_status,
            };
            (k, entry)
        }));
        self.mark_synced(feed);
    }

    /// The objects, by key.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectKey, &Arc<Compact>)> {
        self.objects.iter().map(|(k, e)| (k, &e.object))
    }

    /// One object.
    pub fn object(&self, key: &ObjectKey) -> Option<&Arc<Compact>> {
        self.objects.get(key).map(|e| &e.object)
    }

    /// A copy of the objects for a round's report phase (the objects are shared, not copied).
    pub fn object_list(&self) -> BTreeMap<ObjectKey, Arc<Compact>> {
        self.objects
            .iter()
            .map(|(k, e)| (k.clone(), e.object.clone()))
            .collect()
    }

    /// Replaces the metadata of every Secret a feed covers.
    pub fn replace_secrets(&mut self, feed: &Feed, items: Vec<ObjectMeta>) {
        self.secrets.retain(|(ns, _), _| !feed.covers("Secret", ns));
        for m in items {
            self.put_secret(m);
        }
        self.mark_synced(feed);
    }

    /// Adds or replaces an object (lean, see [`lean_object`]). A change that matters
    /// bumps the version: anything but the `resourceVersion` and a `status` that the last
    /// reconcile wanted (the controller's own status patch coming back through the watch).
    pub fn put_object(&mut self, key: ObjectKey, value: Value) {
        let fingerprint_now = fingerprint(value.get("status").unwrap_or(&Value::Null));
        let object = Compact::new(&key.kind, value);
        let (matters, expected_status) = match self.objects.get(&key) {
            Some(old) if old.object.same_but_status(&object) => (
                old.object.status != object.status && old.expected_status != Some(fingerprint_now),
                old.expected_status,
            ),
            Some(old) => (true, old.expected_status),
            None => (true, None),
        };
        let entry = Entry {
            object: Arc::new(object),
            expected_status,
        };
        self.objects.insert(key, entry);
        if matters {
            self.version += 1;
        }
    }

    /// Forgets an object.
    pub fn remove_object(&mut self, key: &ObjectKey) {
        self.objects.remove(key);
        self.version += 1;
    }

    /// Records the `status` a reconcile wants `key` to have (before patching it, so
    /// the patch's watch event finds it).
    pub fn expect_status(&mut self, key: &ObjectKey, status: &Value) {
        if let Some(e) = self.objects.get_mut(key) {
            e.expected_status = Some(fingerprint(status));
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
        self.objects.iter().any(|(k, e)| {
            k.namespace == id.0
                && match (k.kind.as_str(), e.object.secret_ref.as_deref()) {
                    ("User" | "ApiToken", Some(r)) => r == id.1,
                    ("User", None) => {
                        names::password_secret_name(&k.name) == id.1
                            || names::invitation_secret_name(&k.name) == id.1
                    }
                    ("ApiToken", None) => names::token_secret_name(&k.name) == id.1,
                    _ => false,
                }
        })
    }

    /// The Secrets Users reference for passwords: (namespace, name).
    pub fn referenced(&self) -> BTreeSet<(String, String)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.kind == "User")
            .filter_map(|(k, e)| {
                let name = e.object.secret_ref.as_deref()?;
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
        match self
            .object(key)?
            .declared()
            .pointer_mut("/metadata/uid")?
            .take()
        {
            Value::String(uid) => Some(uid),
            _ => None,
        }
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

/// Secret metadata as the cache keeps it: what the controller reads of a Secret and
/// nothing else: its name, namespace, uid and resourceVersion (the sink's delete
/// preconditions, the password fetch's staleness) and the annotations that say whether
/// stagegate wrote it and with which key. Labels, owner references, timestamps, other
/// annotations (kubectl's last-applied copy holds the data again) and managed fields
/// were two thirds of the memory of the 15,000 Secrets the organization has delivered.
pub fn lean(meta: ObjectMeta) -> ObjectMeta {
    use crate::secrets::{KEY_ID_ANNOTATION, MANAGED_BY_ANNOTATION};
    let annotations = meta.annotations.map(|mut all| {
        all.retain(|k, _| k == MANAGED_BY_ANNOTATION || k == KEY_ID_ANNOTATION);
        all
    });
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        annotations: annotations.filter(|a| !a.is_empty()),
        ..ObjectMeta::default()
    }
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
        let mut same = cache.object(&key()).unwrap().object();
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

    /// Objects as the API server serves them, in the shapes the compact form keeps apart.
    fn shapes() -> Vec<(&'static str, Value)> {
        let mut no_rv = binding("Analyst", "1", json!({"phase": "Active"}));
        no_rv["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let mut odd_rv = binding("Analyst", "1", json!(null));
        odd_rv["metadata"]["resourceVersion"] = json!(7);
        let mut no_status = binding("Admin", "3", json!({}));
        no_status.as_object_mut().unwrap().remove("status");
        vec![
            (
                "AccessBinding",
                binding("Analyst", "1", json!({"conditions": [{"type": "Ready"}]})),
            ),
            ("AccessBinding", no_rv),
            ("AccessBinding", odd_rv),
            ("AccessBinding", no_status),
            (
                "User",
                json!({"kind": "User", "metadata": {"name": "ada", "namespace": "team",
                "uid": "u1", "resourceVersion": "4", "finalizers": [super::super::FINALIZER],
                "deletionTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"passwordSecretRef": {"name": "ada-pw", "key": "password"}, "x": [1.5, -2, null]}}),
            ),
            (
                "ApiToken",
                json!({"kind": "ApiToken", "metadata": {"name": "ci", "namespace": "team"},
                "spec": {"secretName": "ci-token"}, "status": "odd"}),
            ),
        ]
    }

    #[test]
    fn compact_objects_give_back_what_was_put() {
        for (kind, v) in shapes() {
            let c = Compact::new(kind, v.clone());
            assert_eq!(c.object(), v);
            let mut declared = v.clone();
            declared.as_object_mut().unwrap().remove("status");
            assert_eq!(c.declared(), declared);
            assert_eq!(c.status().as_ref(), v.get("status"));
            assert_eq!(
                c.resource_version(),
                v.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
            );
            assert_eq!(
                c.deleting(),
                v.pointer("/metadata/deletionTimestamp").is_some()
            );
            assert_eq!(c.finalized(), super::super::finalizer::has(&v));
        }
    }

    #[test]
    fn secrets_named_by_compact_objects_are_news_others_are_not() {
        let mut cache = Cache::default();
        for (kind, v) in shapes().into_iter().skip(4) {
            let key = key_of(kind, &v).unwrap();
            cache.put_object(key, v);
        }
        let secret = |name: &str| ObjectMeta {
            namespace: Some("team".into()),
            name: Some(name.into()),
            ..Default::default()
        };
        for (name, news) in [
            ("ada-pw", true),        // the User's passwordSecretRef
            ("ci-token", true),      // the ApiToken's secretName
            ("ada-password", false), // the default name, but the User names its own
            ("helm-release", false),
        ] {
            let before = cache.version;
            cache.put_secret(secret(name));
            assert_eq!(cache.version != before, news, "{name}");
        }
        assert_eq!(
            cache.referenced().into_iter().collect::<Vec<_>>(),
            [("team".to_string(), "ada-pw".to_string())]
        );
        let user = ObjectKey::new("User", "team", "ada");
        assert_eq!(cache.uid(&user).as_deref(), Some("u1"));
    }

    #[test]
    fn lean_secret_metadata_keeps_what_the_controller_reads() {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "ci-token", "namespace": "team", "uid": "u9", "resourceVersion": "31",
            "labels": {"app.kubernetes.io/managed-by": "stagegate"},
            "annotations": {"stagegate.dev/managed-by": "stagegate", "stagegate.dev/key-id": "k1",
                            "stagegate.dev/owner": "ApiToken team/ci", LAST_APPLIED: "{\"data\": {}}"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ApiToken", "name": "ci", "uid": "u3"}],
            "managedFields": [{"manager": "stagegate"}]}))
        .unwrap();
        let kept = lean(meta.clone());
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            json!({"name": "ci-token", "namespace": "team", "uid": "u9", "resourceVersion": "31",
                   "annotations": {"stagegate.dev/managed-by": "stagegate", "stagegate.dev/key-id": "k1"}})
        );
        // The sink reads the same state from it as from the whole metadata.
        assert_eq!(
            super::super::sink::classify(&kept),
            super::super::sink::classify(&meta)
        );
        assert!(ours(&kept));
        // A foreign Secret keeps no annotations at all.
        let foreign = lean(ObjectMeta {
            name: Some("helm".into()),
            annotations: Some([("meta.helm.sh/release-name".to_string(), "x".to_string())].into()),
            ..Default::default()
        });
        assert_eq!(foreign.annotations, None);
        assert!(!ours(&foreign));
    }

    proptest::proptest! {
        /// Any JSON in spec and status comes back as it was put.
        #[test]
        fn any_spec_and_status_round_trip(spec in json_value(), status in json_value()) {
            let mut v = binding("Analyst", "1", status);
            v["spec"] = spec;
            let c = Compact::new("AccessBinding", v.clone());
            proptest::prop_assert_eq!(c.object(), v);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Floats with a short decimal form: serde_json's default parser is exact for
            // those (for long ones it may be one unit in the last place off, before as now).
            any::<i16>().prop_map(|n| Value::from(f64::from(n) / 64.0)),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
