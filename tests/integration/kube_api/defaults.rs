//! What the server itself writes into objects: built-in defaults and
//! conversions (Secret `stringData`, Namespace phase, CRD status) and
//! `metadata.managedFields` entries.

use base64::Engine as _;
use serde_json::{json, Value};

use super::registry::ResourceType;
use super::store::{meta, meta_mut, now, Sub};

/// Server-side defaults and conversions for built-in kinds.
pub fn normalize(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => {
            if let Some(Value::Object(string_data)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                let engine = base64::engine::general_purpose::STANDARD;
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default();
                    obj["data"][k] = json!(engine.encode(text));
                }
            }
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
        }
        ("", "Namespace") => {
            let phase = if meta(obj)["deletionTimestamp"].is_null() {
                "Active"
            } else {
                "Terminating"
            };
            obj["status"] = json!({"phase": phase});
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let versions: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["storage"] == json!(true))
                        .map(|v| v["name"].clone())
                        .collect()
                })
                .unwrap_or_default();
            let t = now();
            obj["status"] = json!({
                "acceptedNames": obj["spec"]["names"],
                "storedVersions": versions,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": t},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": t},
                ],
            });
        }
        _ => {}
    }
}

/// Note a write by `manager` in `metadata.managedFields`.
pub fn record_manager(
    rt: &ResourceType,
    obj: &mut Value,
    manager: Option<&str>,
    op: &str,
    sub: Sub,
) {
    let Some(manager) = manager else { return };
    let entry = json!({
        "manager": manager,
        "operation": op,
        "apiVersion": rt.api_version(),
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    let mut entry = entry;
    if sub == Sub::Status {
        entry["subresource"] = json!("status");
    }
    let fields = meta_mut(obj)
        .entry("managedFields")
        .or_insert_with(|| json!([]));
    if let Some(list) = fields.as_array_mut() {
        list.retain(|e| {
            !(e["manager"] == entry["manager"]
                && e["operation"] == entry["operation"]
                && e["subresource"] == entry["subresource"])
        });
        list.push(entry);
    }
}

/// Drop empty optional metadata, as a typed round trip through ObjectMeta
/// (`omitempty`) does; a merge patch deleting the last label leaves none.
pub fn tidy_metadata(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|k, v| {
        let optional = matches!(
            k.as_str(),
            "labels"
                | "annotations"
                | "finalizers"
                | "ownerReferences"
                | "generateName"
                | "managedFields"
        );
        let empty = match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        !(optional && empty)
    });
}

/// A random version-4-shaped UID.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Five random lower-case alphanumerics, as `generateName` appends.
pub fn name_suffix() -> String {
    use rand::Rng as _;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
