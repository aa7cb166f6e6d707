//! Deletion: finalizers and `deletionTimestamp`, and the cascades a real
//! cluster runs (owner-reference garbage collection, namespace contents,
//! the objects of a deleted CustomResourceDefinition).

use std::collections::HashSet;

use serde_json::{json, Value};

use super::registry::ResourceType;
use super::status::ApiError;
use super::store::{has_finalizers, meta, meta_mut, now, str_field, ApiResult, Key, Store};

/// Options of one delete, from the query string and the DeleteOptions body.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy: Orphan`: leave dependents alone.
    pub orphan: bool,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOpts {
    /// Read a DeleteOptions body (possibly empty) and the query's dryRun.
    pub fn from_body(body: &Value, dry_run: bool, query_policy: Option<&str>) -> Self {
        let policy = body["propagationPolicy"].as_str().or(query_policy);
        let orphan = policy == Some("Orphan") || body["orphanDependents"] == json!(true);
        let pre = &body["preconditions"];
        DeleteOpts {
            dry_run: dry_run || body["dryRun"].as_array().is_some_and(|a| !a.is_empty()),
            orphan,
            uid: pre["uid"].as_str().map(String::from),
            resource_version: pre["resourceVersion"].as_str().map(String::from),
        }
    }
}

impl Store {
    /// Delete one object. With finalizers it only gets a deletionTimestamp;
    /// it goes once an update empties them.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult {
        let key = Self::key(rt, ns, name);
        let current = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        let uid_ok = opts
            .uid
            .as_deref()
            .is_none_or(|u| u == str_field(&current, "uid"));
        let rv_ok = opts
            .resource_version
            .as_deref()
            .is_none_or(|v| v == str_field(&current, "resourceVersion"));
        if !uid_ok || !rv_ok {
            return Err(ApiError::conflict(rt, name));
        }
        if opts.dry_run {
            return Ok(Self::present(rt, &current));
        }
        Ok(Self::present(rt, &self.delete_key(&key, !opts.orphan)))
    }

    /// Delete what `key` names, respecting finalizers; returns its last state.
    pub(super) fn delete_key(&mut self, key: &Key, gc: bool) -> Value {
        let Some(current) = self.objects.get(key).cloned() else {
            return Value::Null;
        };
        // Namespaces always terminate first: their contents go asynchronously.
        let namespace = key.0.is_empty() && key.1 == "namespaces";
        if !has_finalizers(&current) && !namespace {
            return self.remove(key, current, gc);
        }
        if !meta(&current)["deletionTimestamp"].is_null() {
            return current;
        }
        let mut marked = current.clone();
        let m = meta_mut(&mut marked);
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if namespace {
            marked["status"] = json!({"phase": "Terminating"});
        }
        self.bump(&mut marked);
        self.objects.insert(key.clone(), marked.clone());
        self.emit("MODIFIED", key, marked.clone(), Some(current));
        marked
    }

    /// Remove an object for good, send DELETED, and run the cascades.
    pub(super) fn remove(&mut self, key: &Key, mut last: Value, gc: bool) -> Value {
        self.objects.remove(key);
        self.bump(&mut last);
        self.emit("DELETED", key, last.clone(), None);
        match (key.0.as_str(), key.1.as_str()) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let group = last["spec"]["group"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let plural = last["spec"]["names"]["plural"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let doomed: Vec<Key> = self
                    .objects
                    .iter()
                    .filter(|(k, _)| k.0 == group && k.1 == plural)
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in doomed {
                    if let Some(obj) = self.objects.get(&k).cloned() {
                        self.remove(&k, obj, gc);
                    }
                }
                self.registry.remove_crd(&group, &plural);
            }
            ("", "namespaces") => {
                let doomed: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.2 == key.3)
                    .cloned()
                    .collect();
                for k in doomed {
                    self.delete_key(&k, gc);
                }
            }
            _ => {}
        }
        if gc {
            self.collect_garbage(str_field(&last, "uid"));
        }
        last
    }

    /// What the namespace controller does: delete the contents of each
    /// namespace terminating for at least `grace`, and remove the namespace
    /// once it is empty. The grace lets a client delete the contents itself
    /// first (`kubectl delete -f` deletes the namespace first), as the real
    /// controller's latency does.
    pub fn finalize_namespaces(&mut self, grace: std::time::Duration) {
        let now = std::time::Instant::now();
        let mut terminating = Vec::new();
        for (k, o) in &self.objects {
            if k.0.is_empty() && k.1 == "namespaces" && !meta(o)["deletionTimestamp"].is_null() {
                let since = *self.terminating_since.entry(k.3.clone()).or_insert(now);
                if now.duration_since(since) >= grace {
                    terminating.push(k.clone());
                }
            }
        }
        for ns_key in terminating {
            let contents: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.2 == ns_key.3)
                .cloned()
                .collect();
            for k in &contents {
                self.delete_key(k, true);
            }
            let empty = !self.objects.keys().any(|k| k.2 == ns_key.3);
            if let Some(ns) = self.objects.get(&ns_key).cloned() {
                if empty && !has_finalizers(&ns) {
                    self.terminating_since.remove(&ns_key.3);
                    self.remove(&ns_key, ns, true);
                }
            }
        }
    }

    /// Delete the dependents of a removed owner whose owners are all gone,
    /// as the garbage collector's background propagation does.
    fn collect_garbage(&mut self, owner_uid: &str) {
        let live: HashSet<String> = self
            .objects
            .values()
            .map(|o| str_field(o, "uid").to_string())
            .collect();
        let orphans: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                let refs = meta(o)["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let uids: Vec<&str> = refs.iter().filter_map(|r| r["uid"].as_str()).collect();
                uids.contains(&owner_uid) && uids.iter().all(|u| !live.contains(*u))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in orphans {
            self.delete_key(&k, true);
        }
    }
}
