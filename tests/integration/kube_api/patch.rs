//! The four patch content types a Kubernetes server accepts, applied to JSON.
//!
//! Strategic merge and server-side apply are approximations: both merge maps
//! recursively and replace lists, which is what kubectl's everyday apply,
//! patch and label operations and kube-rs' `Patch::Apply` need.

use serde_json::Value;

/// A patch format, from the request's `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// The patch kind for a `Content-Type` value, ignoring parameters.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// The managers other than `me` that wrote `current` (status writers left
/// out) and the fields `patch` would change, when a server-side apply without
/// `force` must be refused. Field ownership is not tracked here, so every
/// earlier manager is taken to own every field it wrote; a field set to the
/// value it already has is shared, not a conflict, as in kube-apiserver.
pub fn apply_conflicts(
    current: &Value,
    patch: &Value,
    me: Option<&str>,
) -> Result<(), (Vec<String>, Vec<String>)> {
    let mut managers: Vec<String> = current["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.get("subresource").is_none())
        .filter_map(|e| e["manager"].as_str())
        .filter(|m| Some(*m) != me)
        .map(str::to_string)
        .collect();
    managers.dedup();
    if managers.is_empty() {
        return Ok(());
    }
    let mut changed = Vec::new();
    changed_fields(current, patch, "", &mut changed);
    if changed.is_empty() {
        Ok(())
    } else {
        Err((managers, changed))
    }
}

/// Paths (`.spec.versions`) where `patch` sets a value `current` does not hold;
/// lists are compared whole, server-owned metadata is left out.
fn changed_fields(current: &Value, patch: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(fields) = patch else {
        if current != patch {
            out.push(path.to_string());
        }
        return;
    };
    for (k, v) in fields {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
            continue;
        }
        if path == ".metadata" && !matches!(k.as_str(), "labels" | "annotations") {
            continue;
        }
        let here = format!("{path}.{k}");
        match current.get(k) {
            Some(c) if v.is_object() && c.is_object() => changed_fields(c, v, &here, out),
            Some(c) if c == v => {}
            _ => out.push(here),
        }
    }
}

/// Parse a patch body; apply patches are YAML (of which JSON is a subset).
pub fn parse_body(kind: PatchKind, body: &[u8]) -> Result<Value, String> {
    match kind {
        PatchKind::Apply => serde_yaml::from_slice(body).map_err(|e| e.to_string()),
        _ => serde_json::from_slice(body).map_err(|e| e.to_string()),
    }
}

/// Apply `patch` of `kind` to `target`, returning the patched object.
pub fn apply(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, String> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => json_patch::merge(&mut out, patch),
        PatchKind::Json => {
            let ops: json_patch::Patch =
                serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
            for op in ops.0 {
                // kube-apiserver's JSON patch treats a missing path as null in
                // `test`; kube-runtime's finalizer helper relies on that.
                if let json_patch::PatchOperation::Test(t) = &op {
                    if t.value.is_null() && out.pointer(t.path.as_str()).is_none() {
                        continue;
                    }
                }
                json_patch::patch(&mut out, &[op]).map_err(|e| e.to_string())?;
            }
        }
        PatchKind::Strategic => strategic_merge(&mut out, patch),
        PatchKind::Apply => json_patch::merge(&mut out, patch),
    }
    Ok(out)
}

/// Merge with strategic-merge directives honoured coarsely: `$patch: delete`
/// removes a map, `$patch: replace` replaces it, other `$…` keys
/// (`$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList`) are dropped.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = strip_directives(patch);
        return;
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        Some("replace") => {
            *target = strip_directives(patch);
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(map) = target else { return };
    for (k, v) in patch_map {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            map.remove(k);
            continue;
        }
        let entry = map.entry(k.clone()).or_insert(Value::Null);
        strategic_merge(entry, v);
        if entry.is_null() {
            map.remove(k);
        }
    }
}

/// A copy of `v` without `$…` directive keys, used where a value replaces wholesale.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_drops_directives_and_replaces_lists() {
        let target = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x", "y"]}});
        let patch = json!({
            "$setElementOrder/finalizers": [{"name": "y"}],
            "metadata": {"labels": {"a": null, "b": "2"}, "finalizers": ["y"]}
        });
        let out = apply(PatchKind::Strategic, &target, &patch).unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2"}, "finalizers": ["y"]}})
        );
    }

    #[test]
    fn json_patch_test_of_null_passes_on_a_missing_path() {
        let target = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
        ]);
        let out = apply(PatchKind::Json, &target, &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["x"]));
    }

    #[test]
    fn json_patch_test_op_failure_is_an_error() {
        let target = json!({"metadata": {"finalizers": ["x"]}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": ["y"]}]);
        assert!(apply(PatchKind::Json, &target, &patch).is_err());
    }
}
