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
/// The body and the status are held LZ4-compressed against a fixed dictionary of the
/// field names and values every object of these kinds repeats ([`BODY_DICTIONARY`],
/// [`STATUS_DICTIONARY`]): the same text always compresses to the same bytes, so
/// comparing the packed forms compares the texts.
///
/// All of it lives in one allocation (body, status, resourceVersion and Secret name
/// side by side, with their lengths here), held by the cache's map itself: at 67,000
/// objects, five small allocations per object and a shared pointer to them cost more
/// than the packed texts, and scattered them among each round's short-lived
/// allocations, whose freed pages the allocator then could not give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compact {
    /// The packed body (the object without `status` and without a string
    /// `metadata.resourceVersion`; JSON, and serde_json's maps are sorted, so equal
    /// objects have equal texts), then the packed `status`, then the
    /// `metadata.resourceVersion`, then the Secret name a User reads
    /// (`spec.passwordSecretRef.name`) or an ApiToken writes (`spec.secretName`).
    data: Box<[u8]>,
    /// Length of the packed body at the start of `data`.
    body_len: u32,
    /// Length of the packed status after it.
    status_len: u32,
    /// Length of the resourceVersion after that; the Secret name is the rest.
    rv_len: u32,
    /// [`HAS_STATUS`], [`HAS_RV`], [`HAS_SECRET_REF`], [`DELETING`], [`FINALIZED`].
    flags: u8,
}

/// [`Compact::flags`]: the object has a `status`.
const HAS_STATUS: u8 = 1;
/// [`Compact::flags`]: its `metadata.resourceVersion` is a string.
const HAS_RV: u8 = 2;
/// [`Compact::flags`]: it names a Secret (see [`Compact::secret_ref`]).
const HAS_SECRET_REF: u8 = 4;
/// [`Compact::flags`]: it has a `metadata.deletionTimestamp`.
const DELETING: u8 = 8;
/// [`Compact::flags`]: it carries our finalizer.
const FINALIZED: u8 = 16;

/// What the body of an object of the four kinds (and the two domain kinds) repeats, as
/// serde_json writes it (sorted keys, no spaces): the LZ4 dictionary of its packed form.
/// Any text compresses against it; a text that shares these pieces packs to well under
/// half its length (`compact_objects_are_packed_against_the_dictionaries`).
const BODY_DICTIONARY: &[u8] = concat!(
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"AccessDomain","metadata":{"name":"","#,
    r#""spec":{"namespace":"","scope":{"customer":""}}}"#,
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"AccessDelegation","#,
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"ModelStageRequest","metadata":{"annotations":{"stagegate.dev/requested-at":"2026-01-01T00:00:00Z"},"#,
    r#""spec":{"from":"None","model":"","reason":"","requestedBy":"","scope":{"customer":"","project":"p1"},"to":"Dev"}}"#,
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"User","metadata":{"#,
    r#""spec":{"displayName":"User ","email":"@example.com","passwordSecretRef":{"key":"password","name":"-password"},"state":"Active"}}"#,
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"ApiToken","metadata":{"#,
    r#""spec":{"owner":"","revoked":true,"role":"Deployer","scope":{"customer":"","project":"p2"},"secretName":"-token","validity":"90d"}}"#,
    r#""labels":{"app.kubernetes.io/name":""},"#,
    r#"{"apiVersion":"stagegate.dev/v1alpha1","kind":"AccessBinding","metadata":{"creationTimestamp":"2026-01-01T00:00:00Z","finalizers":["stagegate.dev/cleanup"],"generation":1,"name":"","namespace":"","uid":"-"},"#,
    r#""spec":{"role":"Developer","scope":{"customer":"","project":"p1"},"user":""}}"#,
)
.as_bytes();

/// What the status stagegate writes repeats (see [`BODY_DICTIONARY`]).
const STATUS_DICTIONARY: &[u8] = concat!(
    r#"{"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"","observedGeneration":1,"reason":"Ready","status":"False","type":"Ready"}],"#,
    r#""decidedAt":"","expiresAt":"","issuedAt":"","keyId":"","secretName":"-token","#,
    r#" Secret does not exist; at global granted to "#,
    r#"{"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","message":"Developer at ","observedGeneration":1,"reason":"Applied","status":"True","type":"Ready"}],"observedGeneration":1,"phase":"Active"}"#,
)
.as_bytes();

/// `text` packed against `dictionary`.
fn pack(text: &[u8], dictionary: &[u8]) -> Box<[u8]> {
    lz4_flex::block::compress_prepend_size_with_dict(text, dictionary).into_boxed_slice()
}

/// The JSON a [`pack`] holds. The packed bytes are this process's own output: they
/// unpack and parse unless the JSON nests deeper than the parser's limit, which the API
/// server's JSON already had to pass.
fn unpack(packed: &[u8], dictionary: &[u8]) -> Value {
    lz4_flex::block::decompress_size_prepended_with_dict(packed, dictionary)
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or(Value::Null)
}

impl Compact {
    /// The compact form of a lean object of `kind` (see [`lean_object`]).
    pub fn new(kind: &str, mut value: Value) -> Compact {
        let secret_ref = match kind {
            "User" => value.pointer("/spec/passwordSecretRef/name"),
            "ApiToken" => value.pointer("/spec/secretName"),
            _ => None,
        }
        .and_then(Value::as_str)
        .map(str::to_string);
        let mut flags = 0;
        if value.pointer("/metadata/deletionTimestamp").is_some() {
            flags |= DELETING;
        }
        if super::finalizer::has(&value) {
            flags |= FINALIZED;
        }
        let mut resource_version = None;
        let mut status = None;
        if let Some(m) = value.as_object_mut() {
            status = m
                .remove("status")
                .map(|s| pack(s.to_string().as_bytes(), STATUS_DICTIONARY));
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                if meta.get("resourceVersion").is_some_and(Value::is_string) {
                    resource_version = meta.remove("resourceVersion").and_then(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    });
                }
            }
        }
        let body = pack(value.to_string().as_bytes(), BODY_DICTIONARY);
        drop(value);
        let mut flag = |present: bool, bit: u8| {
            if present {
                flags |= bit;
            }
        };
        flag(status.is_some(), HAS_STATUS);
        flag(resource_version.is_some(), HAS_RV);
        flag(secret_ref.is_some(), HAS_SECRET_REF);
        let (status, rv, secret) = (
            status.as_deref().unwrap_or_default(),
            resource_version.as_deref().unwrap_or_default().as_bytes(),
            secret_ref.as_deref().unwrap_or_default().as_bytes(),
        );
        // Lengths past 4 GiB cannot come from an API server (its request limit is far less).
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX);
        let mut data = Vec::with_capacity(body.len() + status.len() + rv.len() + secret.len());
        for part in [&body[..], status, rv, secret] {
            data.extend_from_slice(part);
        }
        Compact {
            body_len: len(&body),
            status_len: len(status),
            rv_len: len(rv),
            data: data.into_boxed_slice(),
            flags,
        }
    }

    /// The packed body.
    fn body(&self) -> &[u8] {
        &self.data[..self.body_len as usize]
    }

    /// The packed status, when the object has one.
    fn packed_status(&self) -> Option<&[u8]> {
        let start = self.body_len as usize;
        (self.flags & HAS_STATUS != 0).then(|| &self.data[start..start + self.status_len as usize])
    }

    /// The text after the statuses: resourceVersion, then the Secret name.
    fn texts(&self) -> (&str, &str) {
        let start = self.body_len as usize + self.status_len as usize;
        let (rv, secret) = self.data[start..].split_at(self.rv_len as usize);
        // Both were `str`s when packed side by side.
        (
            std::str::from_utf8(rv).unwrap_or_default(),
            std::str::from_utf8(secret).unwrap_or_default(),
        )
    }

    /// The Secret name a User reads (`spec.passwordSecretRef.name`) or an ApiToken
    /// writes (`spec.secretName`), when the object names one.
    fn secret_ref(&self) -> Option<&str> {
        (self.flags & HAS_SECRET_REF != 0).then(|| self.texts().1)
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
        let mut value = unpack(self.body(), BODY_DICTIONARY);
        if let (Some(meta), Some(rv)) = (
            value.get_mut("metadata").and_then(Value::as_object_mut),
            self.resource_version(),
        ) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        value
    }

    /// The object's `status`, when it has one.
    pub fn status(&self) -> Option<Value> {
        Some(unpack(self.packed_status()?, STATUS_DICTIONARY))
    }

    /// `metadata.resourceVersion`, when a string.
    pub fn resource_version(&self) -> Option<&str> {
        (self.flags & HAS_RV != 0).then(|| self.texts().0)
    }

    /// Whether it has a `metadata.deletionTimestamp`.
    pub fn deleting(&self) -> bool {
        self.flags & DELETING != 0
    }

    /// Whether our finalizer is on it.
    pub fn finalized(&self) -> bool {
        self.flags & FINALIZED != 0
    }

    /// Whether two versions differ at most in `status` and `resourceVersion`, or
    /// `other` is this object with our finalizer added (the controller's own finalizer
    /// patch coming back through the watch: the plan never reads finalizers, and counting
    /// the 65,000 of a first apply as changes made the round after it read everything).
    fn same_but_status(&self, other: &Compact) -> bool {
        self.body() == other.body() || self.gains_only_our_finalizer(other)
    }

    /// Whether `new` is this object's body with our finalizer appended to
    /// `metadata.finalizers` and nothing else changed. Unpacks both only when the
    /// finalizer flag turned on.
    fn gains_only_our_finalizer(&self, new: &Compact) -> bool {
        if self.finalized() || !new.finalized() {
            return false;
        }
        let mut now = unpack(new.body(), BODY_DICTIONARY);
        let Some(meta) = now.get_mut("metadata").and_then(Value::as_object_mut) else {
            return false;
        };
        if let Some(Value::Array(list)) = meta.get_mut("finalizers") {
            list.retain(|f| f.as_str() != Some(super::FINALIZER));
            if list.is_empty() {
                meta.remove("finalizers");
            }
        }
        now == unpack(self.body(), BODY_DICTIONARY)
    }
}

/// A cached object and the fingerprint of the `status` the last reconcile wanted it to
/// have: the watch event of the controller's own status patch is not news, someone
/// else's change of a status is.
#[derive(Debug, Clone)]
struct Entry {
    object: Compact,
    expected_status: Option<u64>,
}

/// An [`ObjectKey`] as the cache holds it: kind, namespace and name in one string,
/// separated by NUL (which no kind and no Kubernetes namespace holds), so it orders as
/// the key does and costs one allocation instead of three (and 16 bytes instead of 72).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key(Box<str>);

impl Key {
    fn of(key: &ObjectKey) -> Key {
        Key(format!("{}\0{}\0{}", key.kind, key.namespace, key.name).into())
    }

    /// Kind, namespace and name.
    fn parts(&self) -> (&str, &str, &str) {
        let mut it = self.0.splitn(3, '\0');
        let mut next = || it.next().unwrap_or_default();
        (next(), next(), next())
    }

    fn key(&self) -> ObjectKey {
        let (kind, namespace, name) = self.parts();
        ObjectKey::new(kind, namespace, name)
    }
}

/// The most objects a round's [`Changes`] names one by one; past it the next round
/// reads everything (a scoped round is for small changes, and the old versions it keeps
/// cost memory).
pub const MAX_CHANGED: usize = 1000;

/// What changed in the cache since the last round took it ([`Cache::take_changes`]):
/// which objects of the four kinds changed, and whether that is all that changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Objects whose body changed (added, spec or metadata changed, deleted), each with
    /// its version as of the last round (None: it did not exist then).
    pub objects: BTreeMap<ObjectKey, Option<Compact>>,
    /// Objects whose status someone else rewrote (put back by the report phase; no input
    /// of the plan).
    pub restatus: BTreeSet<ObjectKey>,
    /// Whether `objects` and `restatus` are all that changed. False at the start, after a
    /// list (a watch restart), after a change to a Secret of ours no object reads, and past
    /// [`MAX_CHANGED`] objects: the next round must read everything. (A Secret change that
    /// matters to objects, a password reset or a delivered Secret someone else changed or
    /// deleted, is a change of those objects.)
    pub known: bool,
}

impl Changes {
    /// Records that `key` changed; `old` is its version before this change.
    fn object(&mut self, key: &Key, old: Option<&Compact>) {
        if !self.known {
            return;
        }
        let key = key.key();
        if self.objects.contains_key(&key) {
            return;
        }
        if self.objects.len() >= MAX_CHANGED {
            self.unknown();
            return;
        }
        self.objects.insert(key, old.cloned());
    }

    /// Records that someone else rewrote the status of `key` (capped as `object` is).
    fn restatus(&mut self, key: &Key) {
        if !self.known {
            return;
        }
        if self.restatus.len() >= MAX_CHANGED {
            self.unknown();
            return;
        }
        self.restatus.insert(key.key());
    }

    /// Something changed that `objects` does not describe.
    fn unknown(&mut self) {
        *self = Changes::default();
    }
}

/// The watched state.
#[derive(Debug, Default)]
pub struct Cache {
    /// Objects of the four kinds, by key, compact (see [`Compact`]).
    objects: BTreeMap<Key, Entry>,
    /// What is read of the Secrets in watched namespaces (and ones the controller wrote):
    /// by namespace, then name (each namespace's name held once, not once per Secret).
    secrets: BTreeMap<String, BTreeMap<Box<str>, SecretMeta>>,
    /// Referenced password Secrets as fetched: by (namespace, name), with the resourceVersion read.
    pub passwords: BTreeMap<(String, String), Secret>,
    /// Feeds whose first list is complete.
    synced: Vec<Feed>,
    /// Bumped on every change.
    pub version: u64,
    /// Refuse declarations in namespaces no AccessDomain pins (`--require-access-domain`).
    pub require_access_domain: bool,
    /// What changed since the last round (see [`Changes`]).
    changes: Changes,
    /// Secrets the sink is writing now, by (namespace, name): the key id of one it
    /// creates, None for one it deletes ([`Cache::announce_own_secret`]).
    announced: HashMap<(String, String), Option<Box<str>>>,
}

impl Cache {
    /// Replaces everything a feed covers with a fresh list (watch (re)start). The status
    /// expected of an object that is listed again is kept.
    pub fn replace_objects(&mut self, feed: &Feed, items: Vec<(ObjectKey, Compact)>) {
        self.changes.unknown();
        let mut expected: HashMap<Key, u64> = HashMap::new();
        self.objects.retain(|k, e| {
            let (kind, namespace, _) = k.parts();
            let keep = !feed.covers(kind, namespace);
            if let (false, Some(f)) = (keep, e.expected_status) {
                expected.insert(k.clone(), f);
            }
            keep
        });
        self.objects.extend(items.into_iter().map(|(k, c)| {
            let k = Key::of(&k);
            let expected_status = expected.get(&k).copied();
            let entry = Entry {
                object: c,
                expected_status,
            };
            (k, entry)
        }));
        self.mark_synced(feed);
    }

    /// The objects, in key order.
    pub fn objects(&self) -> impl Iterator<Item = (ObjectKey, &Compact)> {
        self.objects.iter().map(|(k, e)| (k.key(), &e.object))
    }

    /// The objects whose kind, namespace and name `pick` accepts, in key order (the others'
    /// keys are never built: a scoped round's part picks a few hundred of 67,000).
    pub fn objects_where<'a>(
        &'a self,
        mut pick: impl FnMut(&str, &str, &str) -> bool + 'a,
    ) -> impl Iterator<Item = (ObjectKey, &'a Compact)> + 'a {
        self.objects.iter().filter_map(move |(k, e)| {
            let (kind, namespace, name) = k.parts();
            pick(kind, namespace, name).then(|| (k.key(), &e.object))
        })
    }

    /// One object.
    pub fn object(&self, key: &ObjectKey) -> Option<&Compact> {
        self.objects.get(&Key::of(key)).map(|e| &e.object)
    }

    /// A copy of the objects for a round's report phase (copied while it runs: the cache
    /// holds each object in one allocation of its own, not behind a shared pointer).
    pub fn object_list(&self) -> BTreeMap<ObjectKey, Arc<Compact>> {
        self.objects
            .iter()
            .map(|(k, e)| (k.key(), Arc::new(e.object.clone())))
            .collect()
    }

    /// Replaces the metadata of every Secret a feed covers (see [`SecretMeta::of`]).
    pub fn replace_secrets(&mut self, feed: &Feed, items: Vec<(String, String, SecretMeta)>) {
        self.changes.unknown();
        self.secrets.retain(|ns, _| !feed.covers("Secret", ns));
        for (namespace, name, meta) in items {
            self.insert_secret(namespace, &name, meta, false);
        }
        self.mark_synced(feed);
    }

    /// What is known of the Secret `namespace/name`, when it exists.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SecretMeta> {
        self.secrets.get(namespace)?.get(name)
    }

    /// Adds or replaces an object (lean, see [`lean_object`]). A change that matters
    /// bumps the version: anything but the `resourceVersion` and a `status` that the last
    /// reconcile wanted (the controller's own status patch coming back through the watch).
    pub fn put_object(&mut self, key: ObjectKey, value: Value) {
        let fingerprint_now = fingerprint(value.get("status").unwrap_or(&Value::Null));
        let object = Compact::new(&key.kind, value);
        let key = Key::of(&key);
        let (matters, expected_status) = match self.objects.get(&key) {
            Some(old) if old.object.same_but_status(&object) => {
                let restatus = old.object.packed_status() != object.packed_status()
                    && old.expected_status != Some(fingerprint_now);
                if restatus {
                    self.changes.restatus(&key);
                }
                (restatus, old.expected_status)
            }
            Some(old) => {
                self.changes.object(&key, Some(&old.object));
                (true, old.expected_status)
            }
            None => {
                self.changes.object(&key, None);
                (true, None)
            }
        };
        let entry = Entry {
            object,
            expected_status,
        };
        self.objects.insert(key, entry);
        if matters {
            self.version += 1;
        }
    }

    /// Forgets an object.
    pub fn remove_object(&mut self, key: &ObjectKey) {
        let key = Key::of(key);
        if let Some(old) = self.objects.remove(&key) {
            self.changes.object(&key, Some(&old.object));
        }
        self.version += 1;
    }

    /// What changed since the last call (see [`Changes`]); from now on, changes are
    /// recorded afresh.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::replace(
            &mut self.changes,
            Changes {
                known: true,
                ..Changes::default()
            },
        )
    }

    /// Forgets what changed: the next round reads everything (a round that failed).
    pub fn forget_changes(&mut self) {
        self.changes.unknown();
    }

    /// Records the `status` a reconcile wants `key` to have (before patching it, so
    /// the patch's watch event finds it).
    pub fn expect_status(&mut self, key: &ObjectKey, status: &Value) {
        if let Some(e) = self.objects.get_mut(&Key::of(key)) {
            e.expected_status = Some(fingerprint(status));
        }
    }

    /// Adds or replaces a Secret's metadata (only what [`SecretMeta`] keeps); a change
    /// that matters bumps the version.
    pub fn put_secret(&mut self, meta: ObjectMeta) {
        let (namespace, name, meta) = SecretMeta::of(meta);
        self.insert_secret(namespace, &name, meta, false);
    }

    /// [`Cache::put_secret`] of a Secret the controller's sink itself just wrote: what the
    /// round that wrote it planned, so no news for the next round's [`Changes`] (its watch
    /// event, the same metadata, is then no change either).
    pub fn put_own_secret(&mut self, meta: ObjectMeta) {
        let (namespace, name, meta) = SecretMeta::of(meta);
        self.insert_secret(namespace, &name, meta, true);
    }

    /// Announces a write of the sink before its request: the Secret `namespace/name` it
    /// creates with key id `key_id`, or (None) deletes. Its watch event may arrive before
    /// the response ([`Cache::put_own_secret`], [`Cache::remove_own_secret`], which end
    /// the announcement): it is then the sink's own write too, no news. At the first apply
    /// one such race among 15,000 deliveries made the next round read everything.
    pub fn announce_own_secret(&mut self, namespace: &str, name: &str, key_id: Option<&str>) {
        self.announced
            .insert((namespace.into(), name.into()), key_id.map(Into::into));
    }

    /// Ends an announcement whose request failed: a later event of that Secret is news.
    pub fn withdraw_own_secret(&mut self, namespace: &str, name: &str) {
        self.announced.remove(&(namespace.into(), name.into()));
    }

    /// The announcement of `namespace/name`, if any: Some(key id) of a creation, Some(None)
    /// of a deletion.
    fn announced(&self, namespace: &str, name: &str) -> Option<Option<&str>> {
        if self.announced.is_empty() {
            return None;
        }
        self.announced
            .get(&(namespace.to_string(), name.to_string()))
            .map(Option::as_deref)
    }

    fn insert_secret(&mut self, namespace: String, name: &str, meta: SecretMeta, own: bool) {
        // The watch event of a Secret the sink is creating (announced, same key id).
        let own = own
            || (meta.ours
                && meta.key_id.is_some()
                && self.announced(&namespace, name) == Some(meta.key_id.as_deref()));
        if own {
            self.withdraw_own_secret(&namespace, name);
        }
        let before = self.secret(&namespace, name);
        let same = before == Some(&meta);
        let matters =
            meta.ours || before.is_some_and(|m| m.ours) || self.relevant(&namespace, name);
        if matters && !same && !own {
            self.secret_changed(&namespace, name);
        }
        self.secrets
            .entry(namespace)
            .or_default()
            .insert(name.into(), meta);
        if matters {
            self.version += 1;
        }
    }

    /// Forgets a Secret.
    pub fn remove_secret(&mut self, namespace: &str, name: &str) {
        self.drop_secret(namespace, name, false);
    }

    /// [`Cache::remove_secret`] of a Secret the controller's sink itself just deleted (see
    /// [`Cache::put_own_secret`]).
    pub fn remove_own_secret(&mut self, namespace: &str, name: &str) {
        self.drop_secret(namespace, name, true);
    }

    fn drop_secret(&mut self, namespace: &str, name: &str, own: bool) {
        // The watch event of a Secret the sink is deleting (announced).
        let own = own || self.announced(namespace, name) == Some(None);
        if own {
            self.withdraw_own_secret(namespace, name);
        }
        let was = self.secrets.get_mut(namespace).and_then(|m| m.remove(name));
        if self.secrets.get(namespace).is_some_and(BTreeMap::is_empty) {
            self.secrets.remove(namespace);
        }
        let existed = was.is_some();
        let was_ours = was.is_some_and(|m| m.ours);
        self.passwords
            .remove(&(namespace.to_string(), name.to_string()));
        if was_ours || self.relevant(namespace, name) {
            if existed && !own {
                self.secret_changed(namespace, name);
            }
            self.version += 1;
        }
    }

    /// Whether a declaration reads (passwordSecretRef) or would write the Secret
    /// `namespace/name`.
    fn relevant(&self, namespace: &str, name: &str) -> bool {
        self.readers(namespace, name).next().is_some()
    }

    /// The objects that read (a User's passwordSecretRef) or would write (a User's
    /// password or invitation Secret, an ApiToken's) the Secret `namespace/name`: the
    /// declarations whose plan reads that Secret's state or data.
    fn readers<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Entry)> + 'a {
        self.objects.iter().filter(move |(k, e)| {
            let (kind, ns, object) = k.parts();
            ns == namespace
                && match (kind, e.object.secret_ref()) {
                    ("User" | "ApiToken", Some(r)) => r == name,
                    ("User", None) => {
                        names::password_secret_name(object) == name
                            || names::invitation_secret_name(object) == name
                    }
                    ("ApiToken", None) => names::token_secret_name(object) == name,
                    _ => false,
                }
        })
    }

    /// Records a change of the Secret `namespace/name` that matters (a password reset, a
    /// delivered Secret someone else replaced or deleted) as a change of the objects that
    /// read or write it: only their plan reads it, so a scoped round plans them with their
    /// dependencies. A Secret no object reads (one of ours whose declaration is gone)
    /// leaves the next round to read everything.
    fn secret_changed(&mut self, namespace: &str, name: &str) {
        let readers: Vec<(Key, Compact)> = self
            .readers(namespace, name)
            .map(|(k, e)| (k.clone(), e.object.clone()))
            .collect();
        if readers.is_empty() {
            self.changes.unknown();
        }
        // The object itself is as it was: its old version is its current one.
        for (key, object) in &readers {
            self.changes.object(key, Some(object));
        }
    }

    /// The Secrets Users reference for passwords: (namespace, name).
    pub fn referenced(&self) -> BTreeSet<(String, String)> {
        self.objects
            .iter()
            .filter_map(|(k, e)| {
                let (kind, namespace, _) = k.parts();
                let name = e.object.secret_ref().filter(|_| kind == "User")?;
                Some((namespace.to_string(), name.to_string()))
            })
            .collect()
    }

    /// Referenced Secrets whose fetched data is missing or older than their metadata.
    pub fn stale_passwords(&self) -> Vec<(String, String)> {
        self.referenced()
            .into_iter()
            .filter(
                |id| match (self.secret(&id.0, &id.1), self.passwords.get(id)) {
                    (Some(meta), Some(fetched)) => {
                        meta.resource_version.as_deref()
                            != fetched.metadata.resource_version.as_deref()
                    }
                    (Some(_), None) => true,
                    (None, _) => false,
                },
            )
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

/// What the controller reads of a Secret, and nothing else: its uid and resourceVersion
/// (the sink's delete preconditions, the password fetch's staleness) and the two
/// annotations that say whether stagegate wrote it and with which key. Labels, owner
/// references, timestamps, other annotations (kubectl's last-applied copy holds the data
/// again) and managed fields are never held: a whole `ObjectMeta` with its annotation map
/// per Secret was 20 MiB for the 15,000 Secrets the benchmark organization has delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretMeta {
    /// `metadata.uid`.
    pub uid: Option<Box<str>>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<Box<str>>,
    /// Whether its managed-by annotation names stagegate ([`MANAGED_BY`](super::MANAGED_BY)).
    pub ours: bool,
    /// Its key-id annotation.
    pub key_id: Option<Box<str>>,
}

impl SecretMeta {
    /// Namespace, name and what is kept of a Secret's metadata.
    pub fn of(meta: ObjectMeta) -> (String, String, SecretMeta) {
        use crate::secrets::{KEY_ID_ANNOTATION, MANAGED_BY_ANNOTATION};
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k));
        let kept = SecretMeta {
            ours: annotation(MANAGED_BY_ANNOTATION).is_some_and(|v| v == super::MANAGED_BY),
            key_id: annotation(KEY_ID_ANNOTATION).map(|v| v.as_str().into()),
            uid: meta.uid.map(String::into_boxed_str),
            resource_version: meta.resource_version.map(String::into_boxed_str),
        };
        (
            meta.namespace.unwrap_or_default(),
            meta.name.unwrap_or_default(),
            kept,
        )
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
    fn changes_name_edited_objects_apart_from_status_rewrites_and_own_secret_writes() {
        let mut cache = Cache::default();
        cache.put_object(key(), binding("Analyst", "1", json!({})));
        assert!(
            !cache.take_changes().known,
            "the first round reads everything"
        );
        // The controller's own status patch: no change; someone else's: a status to put back.
        let ready = json!({"phase": "x"});
        cache.expect_status(&key(), &ready);
        cache.put_object(key(), binding("Analyst", "2", ready));
        cache.put_object(key(), binding("Analyst", "3", json!({"phase": "forged"})));
        let c = cache.take_changes();
        assert!(c.known && c.objects.is_empty());
        assert_eq!(c.restatus.into_iter().collect::<Vec<_>>(), [key()]);
        // A spec change: the object, with its version as of the last round.
        cache.put_object(key(), binding("Admin", "4", json!({})));
        cache.put_object(key(), binding("Manager", "5", json!({})));
        let c = cache.take_changes();
        let old = c.objects[&key()].as_ref().unwrap().declared();
        assert_eq!(old["spec"]["role"], "Analyst");
        // A Secret the sink wrote, and its watch event: no change; someone else deleting it
        // after that (no object writes it): the next round reads everything.
        let meta = ObjectMeta {
            namespace: Some("team".into()),
            name: Some("ci-token".into()),
            uid: Some("u1".into()),
            annotations: Some(
                [(
                    crate::secrets::MANAGED_BY_ANNOTATION.to_string(),
                    super::super::MANAGED_BY.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        cache.put_own_secret(meta.clone());
        cache.put_secret(meta);
        assert!(cache.take_changes().known);
        cache.remove_secret("team", "ci-token");
        assert!(!cache.take_changes().known);
        // Past the cap: everything.
        for i in 0..=MAX_CHANGED {
            let k = ObjectKey::new("AccessBinding", "team", &format!("b{i}"));
            cache.put_object(k, binding("Analyst", "1", json!({})));
        }
        let c = cache.take_changes();
        assert!(!c.known && c.objects.is_empty());
    }

    #[test]
    fn our_finalizer_added_is_no_change_other_metadata_changes_are() {
        let mut cache = Cache::default();
        cache.put_object(key(), binding("Analyst", "1", json!({})));
        cache.take_changes();
        // The controller's finalizer patch coming back: neither news nor a change.
        let mut finalized = binding("Analyst", "2", json!({}));
        finalized["metadata"]["finalizers"] = json!([crate::sources::kube::FINALIZER]);
        assert!(!moved(&mut cache, finalized.clone()));
        assert!(cache.object(&key()).unwrap().finalized());
        let c = cache.take_changes();
        assert!(c.known && c.objects.is_empty() && c.restatus.is_empty());
        // Another finalizer, or ours with a spec change: news.
        let mut other = finalized.clone();
        other["metadata"]["finalizers"] = json!([crate::sources::kube::FINALIZER, "x"]);
        assert!(moved(&mut cache, other));
        cache.put_object(key(), binding("Analyst", "4", json!({})));
        cache.take_changes();
        let mut edited = binding("Admin", "5", json!({}));
        edited["metadata"]["finalizers"] = json!([crate::sources::kube::FINALIZER]);
        assert!(moved(&mut cache, edited));
        assert_eq!(cache.take_changes().objects.len(), 1);
        // Ours added after someone else's: no change either.
        let mut theirs = binding("Admin", "6", json!({}));
        theirs["metadata"]["finalizers"] = json!(["x"]);
        cache.put_object(key(), theirs.clone());
        cache.take_changes();
        theirs["metadata"]["finalizers"] = json!(["x", crate::sources::kube::FINALIZER]);
        assert!(!moved(&mut cache, theirs));
        assert!(cache.take_changes().objects.is_empty());
    }

    /// The metadata of the delivered Secret `team/ci-token` with key id `key_id`.
    fn delivered(rv: &str, key_id: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("team".into()),
            name: Some("ci-token".into()),
            uid: Some(format!("u{rv}")),
            resource_version: Some(rv.into()),
            annotations: Some(
                [
                    (
                        crate::secrets::MANAGED_BY_ANNOTATION.to_string(),
                        super::super::MANAGED_BY.to_string(),
                    ),
                    (
                        crate::secrets::KEY_ID_ANNOTATION.to_string(),
                        key_id.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn an_announced_secret_write_is_no_news_when_its_watch_event_comes_first() {
        let mut cache = Cache::default();
        cache.take_changes();
        // The sink creates it: the watch event arrives before the response.
        cache.announce_own_secret("team", "ci-token", Some("k1"));
        cache.put_secret(delivered("1", "k1"));
        cache.put_own_secret(delivered("1", "k1"));
        assert!(cache.take_changes().known, "own creation");
        // The sink deletes it (a rotation), watch event first.
        cache.announce_own_secret("team", "ci-token", None);
        cache.remove_secret("team", "ci-token");
        cache.remove_own_secret("team", "ci-token");
        assert!(cache.take_changes().known, "own deletion");
        // Another key id than the one announced: someone else's Secret, news.
        cache.announce_own_secret("team", "ci-token", Some("k2"));
        cache.put_secret(delivered("2", "k3"));
        assert!(!cache.take_changes().known, "a key id not announced");
        // An announcement withdrawn (its request failed): a later event is news.
        cache.take_changes();
        cache.announce_own_secret("team", "ci-token", Some("k4"));
        cache.withdraw_own_secret("team", "ci-token");
        cache.put_secret(delivered("3", "k4"));
        assert!(!cache.take_changes().known, "withdrawn");
        // Without an announcement, someone else deleting it: news.
        cache.take_changes();
        cache.remove_secret("team", "ci-token");
        assert!(!cache.take_changes().known, "a foreign deletion");
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
    fn cache_keys_order_and_read_back_as_object_keys() {
        let mut keys = vec![
            ObjectKey::new("User", "team", "a"),
            ObjectKey::new("AccessBinding", "ab", "a"),
            ObjectKey::new("AccessBinding", "a", "b-c"),
            ObjectKey::new("AccessBinding", "a", "b"),
            ObjectKey::new("AccessDomain", "", "pin"),
            ObjectKey::new("AccessDelegation", "team", "z"),
            ObjectKey::new("ApiToken", "team-a", "t"),
            ObjectKey::new("ApiToken", "team", "t.1"),
        ];
        let mut packed: Vec<Key> = keys.iter().map(Key::of).collect();
        keys.sort();
        packed.sort();
        let back: Vec<ObjectKey> = packed.iter().map(Key::key).collect();
        assert_eq!(back, keys);
    }

    #[test]
    fn compact_objects_are_packed_against_the_dictionaries() {
        // A binding as the API server serves it once the controller has reported on it.
        let served = json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "AccessBinding",
            "metadata": {"name": "b004711", "namespace": "org", "uid": "6f1c2b4e-93d2-4c8e-9a57-0d1e2f3a4b5c",
                         "resourceVersion": "88231", "generation": 1,
                         "creationTimestamp": "2026-11-30T13:01:02Z", "finalizers": [super::super::FINALIZER]},
            "spec": {"user": "u04711", "role": "Analyst", "scope": {"customer": "c047", "project": "p3"}},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True",
                "reason": "Applied", "message": "Analyst at c047/p3 granted to u04711",
                "lastTransitionTime": "2026-11-30T13:04:05Z", "observedGeneration": 1}]}});
        let c = Compact::new("AccessBinding", served.clone());
        assert_eq!(c.object(), served);
        let mut body = served.clone();
        body.as_object_mut().unwrap().remove("status");
        body["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let (text, status) = (body.to_string(), served["status"].to_string());
        let packed = c.packed_status().map_or(0, <[u8]>::len);
        assert!(
            c.body().len() * 2 < text.len(),
            "{} of {}",
            c.body().len(),
            text.len()
        );
        assert!(packed * 2 < status.len(), "{packed} of {}", status.len());
        // Without the dictionary the same texts pack to more.
        assert!(lz4_flex::block::compress_prepend_size(text.as_bytes()).len() > c.body().len());
        // The same text always packs to the same bytes: equal objects compare equal.
        assert_eq!(Compact::new("AccessBinding", served.clone()), c);
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

    /// A Secret change that matters is a change of the objects that read or write that
    /// Secret, so a scoped round can plan them; one no object reads is unknown news.
    #[test]
    fn a_secret_change_is_a_change_of_the_objects_that_read_or_write_it() {
        let mut cache = Cache::default();
        for (kind, v) in shapes().into_iter().skip(4) {
            cache.put_object(key_of(kind, &v).unwrap(), v);
        }
        let user = ObjectKey::new("User", "team", "ada");
        let token = ObjectKey::new("ApiToken", "team", "ci");
        cache.take_changes();
        let secret = |name: &str, rv: &str, ours: bool| ObjectMeta {
            namespace: Some("team".into()),
            name: Some(name.into()),
            resource_version: Some(rv.into()),
            annotations: ours.then(|| {
                [(
                    crate::secrets::MANAGED_BY_ANNOTATION.to_string(),
                    super::super::MANAGED_BY.to_string(),
                )]
                .into()
            }),
            ..Default::default()
        };
        let changed = |cache: &mut Cache| {
            let c = cache.take_changes();
            assert!(c.known);
            c.objects.into_keys().collect::<Vec<_>>()
        };
        // A password reset (the referenced Secret's new version): its User, as it is.
        cache.put_secret(secret("ada-pw", "1", false));
        cache.put_secret(secret("ada-pw", "2", false));
        assert_eq!(changed(&mut cache), std::slice::from_ref(&user));
        cache.remove_secret("team", "ada-pw");
        assert_eq!(changed(&mut cache), std::slice::from_ref(&user));
        // The token's delivered Secret, then someone else's replacing it, then deleted.
        cache.put_own_secret(secret("ci-token", "5", true));
        assert!(changed(&mut cache).is_empty());
        cache.put_secret(secret("ci-token", "6", false));
        assert_eq!(changed(&mut cache), std::slice::from_ref(&token));
        cache.remove_secret("team", "ci-token");
        assert_eq!(changed(&mut cache), [token]);
        // Unrelated Secrets are no change; one of ours that no object writes is unknown.
        cache.put_secret(secret("helm-release", "1", false));
        assert!(changed(&mut cache).is_empty());
        cache.put_own_secret(secret("orphan-token", "1", true));
        cache.remove_secret("team", "orphan-token");
        assert!(!cache.take_changes().known);
    }

    #[test]
    fn secret_metadata_keeps_what_the_controller_reads() {
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "ci-token", "namespace": "team", "uid": "u9", "resourceVersion": "31",
            "labels": {"app.kubernetes.io/managed-by": "stagegate"},
            "annotations": {"stagegate.dev/managed-by": "stagegate", "stagegate.dev/key-id": "k1",
                            "stagegate.dev/owner": "ApiToken team/ci", LAST_APPLIED: "{\"data\": {}}"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "ApiToken", "name": "ci", "uid": "u3"}],
            "managedFields": [{"manager": "stagegate"}]}))
        .unwrap();
        let (ns, name, kept) = SecretMeta::of(meta);
        assert_eq!((ns.as_str(), name.as_str()), ("team", "ci-token"));
        assert_eq!(
            kept,
            SecretMeta {
                uid: Some("u9".into()),
                resource_version: Some("31".into()),
                ours: true,
                key_id: Some("k1".into()),
            }
        );
        assert_eq!(
            super::super::sink::classify(&kept),
            crate::secrets::SecretState::Ours {
                key_id: Some("k1".into())
            }
        );
        // A foreign Secret, even one that names a key id or another manager: foreign.
        for annotations in [
            json!({"meta.helm.sh/release-name": "x"}),
            json!({"stagegate.dev/managed-by": "someone-else", "stagegate.dev/key-id": "k1"}),
        ] {
            let meta: ObjectMeta = serde_json::from_value(
                json!({"name": "helm", "namespace": "team", "annotations": annotations}),
            )
            .unwrap();
            let (_, _, kept) = SecretMeta::of(meta);
            assert!(!kept.ours);
            assert_eq!(
                super::super::sink::classify(&kept),
                crate::secrets::SecretState::Foreign
            );
        }
        // The cache answers by namespace and name, and forgets a removed Secret.
        let mut cache = Cache::default();
        cache.put_secret(ObjectMeta {
            namespace: Some("team".into()),
            name: Some("a".into()),
            uid: Some("u1".into()),
            ..Default::default()
        });
        assert_eq!(
            cache.secret("team", "a").unwrap().uid.as_deref(),
            Some("u1")
        );
        assert!(cache.secret("other", "a").is_none());
        cache.remove_secret("team", "a");
        assert!(cache.secret("team", "a").is_none());
        assert!(cache.secrets.is_empty());
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
