//! From the watched objects to a [`Snapshot`]: pure, no client.
//!
//! Objects being deleted are left out (so plan removes their store entries
//! before their finalizer is released); an object that does not match its
//! schema becomes an error diagnostic (so its store entry is kept, never
//! pruned) and is reported; stage requests are ordered by creation time.

use super::cache::Cache;
use crate::snapshot::{Declared, ObjectKey, Places, SecretData, Snapshot, Source};
use crate::snapshot::{Diagnostic, Reason, Severity};
use crate::validate::{self, schema};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// A snapshot and what the report phase needs to know about the objects left out.
#[derive(Debug, Default)]
pub struct Built {
    /// The validated snapshot.
    pub snapshot: Snapshot,
    /// Objects that failed to convert, with why.
    pub malformed: Vec<(ObjectKey, String)>,
    /// Objects with a deletionTimestamp (not declared any more).
    pub deleting: Vec<ObjectKey>,
    /// How long validating the converted snapshot took (the rest of `build` unpacks and
    /// converts), for the round's phase log.
    pub validated_in: std::time::Duration,
}

/// Where a cluster object comes from, as the audit log shows it.
pub fn source_of(key: &ObjectKey) -> Source {
    Source {
        file: Some(key.to_string()),
        line: None,
    }
}

/// Builds and validates the snapshot of everything in `cache`.
pub fn build(cache: &Cache) -> Built {
    // Each object is parsed here, once per round, and dropped after its conversion.
    build_from(cache, cache.objects().map(|(k, o)| (k, o.declared())))
}

/// Builds and validates the snapshot of `objects` (in key order), with the Secrets and
/// settings of `cache`.
fn build_from(cache: &Cache, objects: impl Iterator<Item = (ObjectKey, Value)>) -> Built {
    let mut out = convert_from(cache, objects);
    let started = std::time::Instant::now();
    validate::validate(&mut out.snapshot);
    out.validated_in = started.elapsed();
    out
}

/// Builds the snapshot of `objects` (in key order), with the Secrets and settings of
/// `cache`, not validated: a whole round validates it with `validate`, a scoped round
/// (a part of the objects) with `validate::validate_part`.
pub fn convert_from(cache: &Cache, objects: impl Iterator<Item = (ObjectKey, Value)>) -> Built {
    let mut out = Built::default();
    out.snapshot.domains.places = Places::Namespaces;
    out.snapshot.domains.required = cache.require_access_domain;
    let mut requests = Vec::new();
    for (key, value) in objects {
        if value.pointer("/metadata/deletionTimestamp").is_some() {
            out.deleting.push(key);
            continue;
        }
        if let Err(why) = convert(&key, &value, &mut out.snapshot, &mut requests) {
            out.snapshot.diagnostics.push(Diagnostic {
                file: Some(key.to_string()),
                line: None,
                kind: Some(key.kind.clone()),
                namespace: Some(key.namespace.clone()),
                name: Some(key.name.clone()),
                field: None,
                reason: Reason::SchemaViolation,
                severity: Severity::Error,
                message: why.clone(),
            });
            if key.kind == "AccessDomain" {
                // The pin could not be read: close the namespace it names rather than let it
                // fall back to global.
                if let Some(ns) = value.pointer("/spec/namespace").and_then(Value::as_str) {
                    out.snapshot.domains.unreadable.push(ns.to_string());
                }
            }
            out.malformed.push((key, why));
        }
    }
    // Requests are decided in order of creation; the name breaks ties.
    requests.sort_by(|(a, _), (b, _)| a.cmp(b));
    out.snapshot.requests = requests.into_iter().map(|(_, d)| d).collect();
    out.snapshot.secrets = referenced_secrets(cache, &out.snapshot);
    out
}

type Ordered<K> = Vec<((String, String), Declared<K>)>;

fn convert(
    key: &ObjectKey,
    value: &Value,
    snap: &mut Snapshot,
    requests: &mut Ordered<crate::resources::ModelStageRequest>,
) -> Result<(), String> {
    let issues = schema::check(&key.kind, value);
    if !issues.is_empty() {
        let text: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect();
        return Err(text.join("; "));
    }
    let source = source_of(key);
    match key.kind.as_str() {
        "User" => snap.users.push(typed(value, source)?),
        "AccessBinding" => snap.bindings.push(typed(value, source)?),
        "ApiToken" => snap.tokens.push(typed(value, source)?),
        "AccessDomain" => snap.domains.pins.push(typed(value, source)?),
        "AccessDelegation" => snap.domains.delegations.push(typed(value, source)?),
        "ModelStageRequest" => {
            let created = value
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            requests.push(((created, key.name.clone()), typed(value, source)?));
        }
        other => return Err(format!("unknown kind {other:?}")),
    }
    Ok(())
}

fn typed<K: DeserializeOwned>(value: &Value, source: Source) -> Result<Declared<K>, String> {
    // Status is ours to write, not input; an odd status must not hide the spec. The
    // cache's objects come without it ([`Compact::declared`](super::cache::Compact::declared)).
    let stripped;
    let v = match value.get("status") {
        Some(_) => {
            let mut copy = value.clone();
            if let Some(m) = copy.as_object_mut() {
                m.remove("status");
            }
            stripped = copy;
            &stripped
        }
        None => value,
    };
    let object = K::deserialize(v)
        .map_err(|_| {
            // serde's message quotes the offending value, which may be a secret typed into the
            // wrong field: describe the problem with the schema checker, which names fields only.
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
            schema::check(kind, v)
                .into_iter()
                .map(|i| format!("{}: {} ({})", i.field, i.message, i.reason))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .map_err(|why| {
            if why.is_empty() {
                "does not match its kind's schema".to_string()
            } else {
                why
            }
        })?;
    Ok(Declared::new(object, source))
}

/// The data of the Secrets that Users reference through passwordSecretRef.
fn referenced_secrets(cache: &Cache, snap: &Snapshot) -> BTreeMap<(String, String), SecretData> {
    let mut out = BTreeMap::new();
    for u in &snap.users {
        let Some(r) = &u.object.spec.password_secret_ref else {
            continue;
        };
        let ns = u.object.metadata.namespace.clone().unwrap_or_default();
        let id = (ns, r.name.clone());
        // Present (metadata) and fetched: a deleted Secret's old data is never used.
        if cache.secret(&id.0, &id.1).is_none() {
            continue;
        }
        let Some(secret) = cache.passwords.get(&id) else {
            continue;
        };
        let mut data: SecretData = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        out.insert(id, data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    fn obj(yaml: &str) -> (ObjectKey, Value) {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        let kind = v["kind"].as_str().unwrap().to_string();
        (super::super::cache::key_of(&kind, &v).unwrap(), v)
    }

    const ADA: &str = r#"
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: t, uid: u1, generation: 2, resourceVersion: "7",
  creationTimestamp: "2026-01-01T00:00:00Z", finalizers: [stagegate.dev/cleanup],
  managedFields: [{manager: kubectl, operation: Update}]}
spec: {passwordSecretRef: {name: ada-pw, key: password}}
status: {phase: Active, conditions: []}
"#;

    fn request(name: &str, created: &str) -> (ObjectKey, Value) {
        obj(&format!(
            "apiVersion: stagegate.dev/v1alpha1\nkind: ModelStageRequest\nmetadata: {{name: {name}, namespace: t, creationTimestamp: \"{created}\"}}\nspec: {{model: m, scope: {{customer: acme}}, from: None, to: Dev, requestedBy: ada, reason: x}}\n"
        ))
    }

    #[test]
    fn cluster_objects_convert_with_server_metadata_and_referenced_secrets() {
        let mut cache = Cache::default();
        let (k, v) = obj(ADA);
        cache.put_object(k, v);
        let secret: Secret = serde_yaml::from_str(
            "metadata: {name: ada-pw, namespace: t}\ndata: {password: czNjcjN0}\n",
        )
        .unwrap();
        cache.put_secret(secret.metadata.clone());
        let id = ("t".to_string(), "ada-pw".to_string());
        assert_eq!(cache.stale_passwords(), std::slice::from_ref(&id));
        cache.put_password(id, Some(secret));
        assert!(cache.stale_passwords().is_empty());
        let built = build(&cache);
        assert!(built.malformed.is_empty(), "{:?}", built.malformed);
        assert_eq!(built.snapshot.users.len(), 1);
        assert_eq!(built.snapshot.users[0].source.to_string(), "User t/ada");
        let data = &built.snapshot.secrets[&("t".to_string(), "ada-pw".to_string())];
        assert_eq!(data["password"], b"s3cr3t");
    }

    #[test]
    fn malformed_objects_are_reported_and_protected_deleting_ones_left_out() {
        let mut cache = Cache::default();
        let (k, v) = obj("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: bad, namespace: t}\nspec: {state: Sleeping}\n");
        cache.put_object(k.clone(), v);
        let (d, v) = obj("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: gone, namespace: t, deletionTimestamp: \"2026-01-01T00:00:00Z\"}\nspec: {}\n");
        cache.put_object(d.clone(), v);
        let built = build(&cache);
        assert_eq!(built.malformed.len(), 1);
        assert_eq!(built.malformed[0].0, k);
        assert!(built.snapshot.invalid_keys().contains(&k));
        assert_eq!(built.deleting, vec![d]);
        assert!(built.snapshot.users.is_empty());
    }

    #[test]
    fn requests_are_ordered_by_creation_then_name() {
        let mut cache = Cache::default();
        for (n, t) in [
            ("a", "2026-01-03T00:00:00Z"),
            ("c", "2026-01-01T00:00:00Z"),
            ("b", "2026-01-01T00:00:00Z"),
        ] {
            let (k, v) = request(n, t);
            cache.put_object(k, v);
        }
        let built = build(&cache);
        let names: Vec<_> = built
            .snapshot
            .requests
            .iter()
            .map(|r| r.key().name)
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
    }

    /// The objects a cluster serves, each with the status the controller patched.
    fn served() -> Vec<(ObjectKey, Value)> {
        let status = serde_json::json!({"phase": "Active", "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Applied",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
        let mut out = vec![
            obj(ADA),
            obj("apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: ada-dev, namespace: t, uid: u2, resourceVersion: \"9\", labels: {team: ml}}\nspec: {user: ada, role: Analyst, scope: {customer: acme}}\n"),
            obj("apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: ci, namespace: t, uid: u3, resourceVersion: \"10\"}\nspec: {role: Analyst, scope: {customer: acme}, validity: 30d, secretName: ci-token}\n"),
            // Schema violations, each with its field: a wrong enum value, an unknown field.
            obj("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: bad, namespace: t, resourceVersion: \"11\"}\nspec: {state: Sleeping}\n"),
            obj("apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: odd, namespace: t, resourceVersion: \"12\"}\nspec: {user: ada, role: Analyst, colour: blue}\n"),
            obj("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: gone, namespace: t, resourceVersion: \"13\", deletionTimestamp: \"2026-01-01T00:00:00Z\", finalizers: [stagegate.dev/cleanup]}\nspec: {}\n"),
            request("promote", "2026-01-02T00:00:00Z"),
        ];
        for (_, v) in &mut out {
            v["status"] = status.clone();
        }
        // In key order, as the cache holds them.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn the_compact_cache_gives_the_snapshot_of_the_full_objects() {
        let full = served();
        let mut cache = Cache::default();
        for (k, v) in &full {
            cache.put_object(k.clone(), v.clone());
        }
        let mut compact = build(&cache);
        // The same conversion run on the objects as served (status and all), as the cache
        // held them before it was compact.
        let mut reference = build_from(&cache, full.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Only the time validation took may differ.
        (compact.validated_in, reference.validated_in) = Default::default();
        assert_eq!(format!("{compact:?}"), format!("{reference:?}"));
        // The schema violations are still reported with their fields.
        let why: BTreeMap<_, _> = compact
            .malformed
            .iter()
            .map(|(k, why)| (k.name.as_str(), why.as_str()))
            .collect();
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why["bad"].contains("spec.state"), "{why:?}");
        assert!(why["odd"].contains("spec.colour"), "{why:?}");
        assert_eq!(compact.deleting, [ObjectKey::new("User", "t", "gone")]);
        assert_eq!(compact.snapshot.users.len(), 1);
        assert_eq!(compact.snapshot.bindings.len(), 1);
        assert_eq!(compact.snapshot.tokens.len(), 1);
        assert_eq!(compact.snapshot.requests.len(), 1);
        // The typed objects keep the server's metadata (uid, resourceVersion, labels).
        let b = &compact.snapshot.bindings[0].object.metadata;
        assert_eq!(b.uid.as_deref(), Some("u2"));
        assert_eq!(b.resource_version.as_deref(), Some("9"));
        assert_eq!(b.labels.as_ref().unwrap()["team"], "ml");
    }
}
