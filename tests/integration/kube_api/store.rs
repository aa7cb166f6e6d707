//! The object store: resourceVersions, server-owned metadata, generations,
//! the status subresource, finalizers, owner garbage collection and the
//! event history that watches replay.
//!
//! Everything runs under one mutex and every change is broadcast while it is
//! held, so a watch that subscribes under the same lock never misses or
//! repeats an event.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use super::defaults;
use super::events;
use super::registry::{self, Registry, ResourceType};
use super::schema;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;

/// Events kept for watches that resume from a resourceVersion.
const HISTORY: usize = 10_000;

/// The result of a write: the object as served, or a Status error.
pub type ApiResult = Result<Value, ApiError>;

/// Live events for one watch.
pub type Subscription = broadcast::Receiver<Arc<Event>>;

/// Where an object lives: group, plural, namespace ("" if cluster-scoped), name.
pub type Key = (String, String, String, String);

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    /// The object itself.
    Main,
    /// The `/status` subresource.
    Status,
}

/// Options common to writes, from the query string.
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, but store nothing.
    pub dry_run: bool,
    /// `fieldManager`, recorded in `metadata.managedFields`.
    pub field_manager: Option<String>,
    /// `fieldValidation=Strict`: unknown fields are an error rather than pruned.
    pub strict: bool,
    /// `force=true` on a server-side apply: take fields over from other managers.
    pub force: bool,
}

/// One change, as watches deliver it.
#[derive(Clone, Debug)]
pub struct Event {
    /// resourceVersion the change produced.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// Group and plural of the object.
    pub group: String,
    /// Plural of the object.
    pub plural: String,
    /// Namespace, or "" for cluster-scoped objects.
    pub namespace: String,
    /// The object after the change (its last state for DELETED).
    pub object: Value,
    /// The object before the change, to tell selector leavers.
    pub old: Option<Value>,
}

/// The state of the fake cluster.
#[derive(Debug)]
pub struct Store {
    /// Resource types currently served.
    pub registry: Registry,
    pub(super) objects: BTreeMap<Key, Value>,
    pub(super) rv: u64,
    history: VecDeque<Arc<Event>>,
    /// Highest resourceVersion no longer in `history`.
    compacted: u64,
    /// When the namespace controller first saw each terminating namespace.
    pub(super) terminating_since: std::collections::HashMap<String, std::time::Instant>,
    tx: broadcast::Sender<Arc<Event>>,
}

/// Now, in the RFC 3339 seconds form Kubernetes uses.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(super) fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

pub(super) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub(super) fn str_field<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj)[field].as_str().unwrap_or_default()
}

pub(super) fn has_finalizers(obj: &Value) -> bool {
    meta(obj)["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

/// Set or remove a top-level field so that absent stays absent.
fn set_or_remove(obj: &mut Value, field: &str, value: Option<&Value>) {
    let map = obj.as_object_mut().expect("objects are JSON maps");
    match value {
        Some(v) if !v.is_null() => {
            map.insert(field.into(), v.clone());
        }
        _ => {
            map.remove(field);
        }
    }
}

/// The object without metadata (and without status when it is a
/// subresource): what a generation counts changes of.
fn spec_part(obj: &Value, rt: &ResourceType) -> Value {
    let mut o = obj.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("metadata");
        if rt.status_subresource {
            map.remove("status");
        }
    }
    o
}

/// Apply a custom resource's schema (pruning, defaults, validation) to a write.
fn admit(rt: &ResourceType, name: &str, obj: &mut Value, opts: &WriteOpts) -> Result<(), ApiError> {
    let Some(schema) = &rt.schema else {
        return super::limits::admit(rt, name, obj);
    };
    schema::admit(schema, obj, opts.strict).map_err(|why| match why {
        schema::Rejection::Invalid(causes) => ApiError::invalid_fields(rt, name, &causes),
        schema::Rejection::Strict(msg) => {
            let (kind, version) = (&rt.kind, &rt.version);
            let msg =
                format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {msg}");
            ApiError::plain(400, "BadRequest", msg)
        }
    })
}

impl Store {
    /// An empty cluster with the `default`, `kube-system` and `kube-public` namespaces.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut store = Store {
            registry: Registry::new(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            compacted: 0,
            terminating_since: Default::default(),
            tx,
        };
        let ns_type = store.registry.find("", "v1", "namespaces").cloned();
        for ns in ["default", "kube-system", "kube-public"] {
            if let Some(rt) = &ns_type {
                let body = json!({"metadata": {"name": ns}});
                store
                    .create(rt, "", body, &WriteOpts::default())
                    .expect("fresh namespaces are valid");
            }
        }
        store
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub(super) fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        let ns = if rt.namespaced { ns } else { "" };
        let (group, plural) = events::storage_of(&rt.group, &rt.plural);
        (group.into(), plural.into(), ns.into(), name.into())
    }

    /// `obj` as served at `rt`'s version (storage keeps one copy per object).
    pub fn present(rt: &ResourceType, obj: &Value) -> Value {
        let mut o = if events::is_events_v1(rt) {
            events::from_core(obj)
        } else {
            obj.clone()
        };
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o
    }

    pub(super) fn emit(
        &mut self,
        kind: &'static str,
        key: &Key,
        object: Value,
        old: Option<Value>,
    ) {
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            group: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            object,
            old,
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    pub(super) fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        meta_mut(obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
    }

    /// Forget all watch history, so any resumed watch gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Subscribe to changes after `since`, with the history already past it.
    pub fn subscribe(&self, since: u64) -> Result<(Vec<Arc<Event>>, Subscription), ApiError> {
        if since < self.compacted {
            return Err(ApiError::gone(since, self.compacted + 1));
        }
        let past = self
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((past, self.tx.subscribe()))
    }

    /// The stored object, as served at `rt`.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| Self::present(rt, o))
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Objects of `rt` in `ns` (all namespaces if `None`) that match both selectors.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| events::storage_of(&rt.group, &rt.plural) == (&k.0, &k.1))
            .filter(|(k, _)| ns.is_none_or(|ns| !rt.namespaced || k.2 == ns))
            .map(|(_, o)| Self::present(rt, o))
            .filter(|o| labels.matches(o) && fields.matches(o))
            .collect()
    }

    /// Create an object; `ns` is the namespace from the URL.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut body: Value,
        opts: &WriteOpts,
    ) -> ApiResult {
        self.create_op(rt, ns, &mut body, opts, "Update")
    }

    fn create_op(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        body: &mut Value,
        opts: &WriteOpts,
        op: &str,
    ) -> ApiResult {
        if !body.is_object() {
            return Err(ApiError::plain(
                400,
                "BadRequest",
                "the body must be a JSON object",
            ));
        }
        let body_ns = str_field(body, "namespace").to_string();
        if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::plain(400, "BadRequest", format!(
                "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({ns})")));
        }
        let mut name = str_field(body, "name").to_string();
        if name.is_empty() {
            let prefix = str_field(body, "generateName");
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{prefix}{}", defaults::name_suffix());
        }
        if rt.namespaced {
            let ns_key = (
                String::new(),
                "namespaces".into(),
                String::new(),
                ns.to_string(),
            );
            match self.objects.get(&ns_key) {
                None => {
                    return Err(ApiError::plain(
                        404,
                        "NotFound",
                        format!("namespaces \"{ns}\" not found"),
                    ))
                }
                Some(n) if !meta(n)["deletionTimestamp"].is_null() => {
                    return Err(ApiError::plain(403, "Forbidden", format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        rt.qualified())));
                }
                Some(_) => {}
            }
        }
        let key = Self::key(rt, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(rt, &name));
        }
        if rt.status_subresource && rt.custom {
            set_or_remove(body, "status", None);
        }
        let m = meta_mut(body);
        m.insert("name".into(), json!(name));
        if rt.namespaced {
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(defaults::new_uid()));
        m.insert("creationTimestamp".into(), json!(now()));
        for f in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            m.remove(f);
        }
        if rt.tracks_generation() {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
        let (group, plural) = events::storage_of(&rt.group, &rt.plural);
        let storage = self
            .registry
            .storage(group, plural)
            .cloned()
            .unwrap_or_else(|| rt.clone());
        if events::is_events_v1(rt) {
            *body = events::to_core(body);
        }
        defaults::tidy_metadata(body);
        let mut obj = Self::present(&storage, body);
        defaults::normalize(rt, &mut obj);
        admit(rt, &name, &mut obj, opts)?;
        defaults::record_manager(rt, &mut obj, opts.field_manager.as_deref(), op, Sub::Main);
        if opts.dry_run {
            return Ok(Self::present(rt, &obj));
        }
        self.bump(&mut obj);
        self.objects.insert(key.clone(), obj.clone());
        self.emit("ADDED", &key, obj.clone(), None);
        self.after_write(rt, &obj);
        Ok(Self::present(rt, &obj))
    }

    /// Replace an object (PUT); a stale `metadata.resourceVersion` is a conflict.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult {
        let key = Self::key(rt, ns, name);
        let current = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let body_name = str_field(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::plain(
                400,
                "BadRequest",
                "the name of the object does not match the name on the URL",
            ));
        }
        let want_rv = str_field(&body, "resourceVersion");
        if !want_rv.is_empty() && want_rv != str_field(&current, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        self.commit_update(rt, &key, current, body, sub, opts, "Update")
    }

    /// Patch an object; server-side apply creates it when missing.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: super::patch::PatchKind,
        patch: &Value,
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult {
        use super::patch::PatchKind;
        if kind == PatchKind::Strategic && rt.custom {
            return Err(ApiError::plain(415, "UnsupportedMediaType", 
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        if kind == PatchKind::Apply && opts.field_manager.is_none() {
            return Err(ApiError::plain(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
        }
        let key = Self::key(rt, ns, name);
        let op = if kind == PatchKind::Apply {
            "Apply"
        } else {
            "Update"
        };
        let Some(current) = self.objects.get(&key).cloned() else {
            if kind == PatchKind::Apply && sub == Sub::Main {
                let mut body = patch.clone();
                if str_field(&body, "name").is_empty() {
                    meta_mut(&mut body).insert("name".into(), json!(name));
                }
                return self.create_op(rt, ns, &mut body, opts, op);
            }
            return Err(ApiError::not_found(rt, name));
        };
        let base = Self::present(rt, &current);
        if kind == PatchKind::Apply && !opts.force {
            super::patch::apply_conflicts(&base, patch, opts.field_manager.as_deref()).map_err(
                |(managers, fields)| ApiError::apply_conflict(rt, name, &managers, &fields),
            )?;
        }
        let patched =
            super::patch::apply(kind, &base, patch).map_err(|e| ApiError::invalid(rt, name, &e))?;
        if !patched.is_object() {
            return Err(ApiError::invalid(
                rt,
                name,
                "the patched object is not a JSON object",
            ));
        }
        let want_rv = str_field(&patched, "resourceVersion");
        if !want_rv.is_empty() && want_rv != str_field(&current, "resourceVersion") {
            return Err(ApiError::conflict(rt, name));
        }
        self.commit_update(rt, &key, current, patched, sub, opts, op)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &mut self,
        rt: &ResourceType,
        key: &Key,
        current: Value,
        mut new: Value,
        sub: Sub,
        opts: &WriteOpts,
        op: &str,
    ) -> ApiResult {
        if !new.is_object() {
            return Err(ApiError::plain(
                400,
                "BadRequest",
                "the body must be a JSON object",
            ));
        }
        if events::is_events_v1(rt) {
            new = events::to_core(&new);
        }
        match sub {
            Sub::Status => {
                let status = new.get("status").cloned();
                new = current.clone();
                set_or_remove(&mut new, "status", status.as_ref());
            }
            Sub::Main if rt.status_subresource => {
                set_or_remove(&mut new, "status", current.get("status"));
            }
            Sub::Main => {}
        }
        // Server-owned metadata cannot be written by clients.
        let m = meta_mut(&mut new);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "namespace",
            "name",
            "resourceVersion",
        ] {
            match meta(&current).get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        new["apiVersion"] = current["apiVersion"].clone();
        new["kind"] = current["kind"].clone();
        if sub == Sub::Main {
            defaults::normalize(rt, &mut new);
        }
        defaults::tidy_metadata(&mut new);
        admit(rt, &key.3, &mut new, opts)?;
        if rt.tracks_generation() && spec_part(&new, rt) != spec_part(&current, rt) {
            let generation = meta(&current)["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if new == current {
            // A no-op write changes nothing, not even the resourceVersion.
            return Ok(Self::present(rt, &current));
        }
        defaults::record_manager(rt, &mut new, opts.field_manager.as_deref(), op, sub);
        if opts.dry_run {
            return Ok(Self::present(rt, &new));
        }
        if !meta(&new)["deletionTimestamp"].is_null() && !has_finalizers(&new) {
            // Emptying the finalizers of a deleted object removes it.
            self.remove(key, new.clone(), true);
            return Ok(Self::present(rt, &new));
        }
        self.bump(&mut new);
        self.objects.insert(key.clone(), new.clone());
        self.emit("MODIFIED", key, new.clone(), Some(current));
        self.after_write(rt, &new);
        Ok(Self::present(rt, &new))
    }

    /// Keep the registry in step with CustomResourceDefinitions.
    fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            let group = obj["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let plural = obj["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.registry
                .set_crd(&group, &plural, registry::from_crd(obj));
        }
    }
}
