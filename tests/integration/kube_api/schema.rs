//! A CRD's structural schema applied as kube-apiserver does on every write:
//! unknown fields pruned (or rejected under `fieldValidation=Strict`),
//! defaults filled in, then OpenAPI validation (types, enums, patterns,
//! required fields). CEL rules (`x-kubernetes-validations`) are not evaluated.

use serde_json::{Map, Value};

/// Root fields every object keeps whatever its schema says.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Why a write was refused.
#[derive(Debug, PartialEq)]
pub enum Rejection {
    /// Unknown fields under `fieldValidation=Strict` (the message).
    Strict(String),
    /// Schema violations as (field path, message) causes.
    Invalid(Vec<(String, String)>),
}

/// Prune or reject unknown fields, default, and validate `obj` in place.
pub fn admit(schema: &Value, obj: &mut Value, strict: bool) -> Result<(), Rejection> {
    let mut unknown = Vec::new();
    prune(schema, obj, "", &mut unknown, true);
    if strict && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(Rejection::Strict(format!(
            "strict decoding error: {}",
            fields.join(", ")
        )));
    }
    default(schema, obj);
    let validator = jsonschema::validator_for(&to_json_schema(schema))
        .map_err(|e| Rejection::Invalid(vec![(String::new(), format!("unusable schema: {e}"))]))?;
    let causes: Vec<(String, String)> = validator
        .iter_errors(obj)
        .map(|e| {
            let path = e
                .instance_path()
                .as_str()
                .trim_start_matches('/')
                .replace('/', ".");
            (path, format!("Invalid value: {e}"))
        })
        .collect();
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Rejection::Invalid(causes))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Remove fields the schema does not declare, noting their paths.
fn prune(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>, root: bool) {
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    match v {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if root && ROOT_FIELDS.contains(&key.as_str()) {
                        continue;
                    }
                    match (props.get(&key), map.get_mut(&key)) {
                        (Some(sub), Some(value)) => {
                            prune(sub, value, &join(path, &key), unknown, false)
                        }
                        _ if preserve => {}
                        _ => {
                            unknown.push(join(path, &key));
                            map.remove(&key);
                        }
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                for (key, value) in map.iter_mut() {
                    prune(
                        &schema["additionalProperties"],
                        value,
                        &join(path, key),
                        unknown,
                        false,
                    );
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter_mut().enumerate() {
                prune(
                    &schema["items"],
                    item,
                    &format!("{path}[{i}]"),
                    unknown,
                    false,
                );
            }
        }
        _ => {}
    }
}

/// Fill in `default`s of absent properties, recursively.
fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (key, sub) in props {
                    if !map.contains_key(key) {
                        if let Some(d) = sub.get("default") {
                            map.insert(key.clone(), d.clone());
                        }
                    }
                    if let Some(value) = map.get_mut(key) {
                        default(sub, value);
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                for value in map.values_mut() {
                    default(&schema["additionalProperties"], value);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for item in items {
                default(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// OpenAPI v3 schema to JSON Schema: `nullable` becomes a `null` type,
/// int-or-string drops its type, Kubernetes extensions are removed.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                if k.starts_with("x-kubernetes-") || k == "nullable" || k == "format" {
                    continue;
                }
                out.insert(k.clone(), to_json_schema(v));
            }
            if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                out.remove("type");
            } else if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                }
                if let Some(Value::Array(options)) = out.get_mut("enum") {
                    options.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["role"], "properties": {
            "role": {"type": "string", "enum": ["Admin", "Analyst"]},
            "state": {"type": "string", "default": "Active"},
            "email": {"type": "string", "nullable": true},
        }}}})
    }

    #[test]
    fn prunes_defaults_and_validates() {
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"role": "Admin", "extra": 1, "email": null}});
        admit(&schema(), &mut obj, false).unwrap();
        assert_eq!(
            obj["spec"],
            json!({"role": "Admin", "state": "Active", "email": null})
        );
        let mut strict = json!({"spec": {"role": "Admin", "extra": 1}});
        let why = admit(&schema(), &mut strict, true).unwrap_err();
        let want = "strict decoding error: unknown field \"spec.extra\"";
        assert_eq!(why, Rejection::Strict(want.into()));
        let mut bad = json!({"spec": {"role": "Root"}});
        let Err(Rejection::Invalid(causes)) = admit(&schema(), &mut bad, false) else {
            panic!("an unsupported enum value is invalid")
        };
        assert_eq!(causes[0].0, "spec.role");
    }
}
