//! `meta.k8s.io/v1` Table responses for custom resources, so `kubectl get`
//! shows a CRD's printer columns as it would against a real cluster.
//!
//! Built-in kinds are answered with plain lists; kubectl then prints its
//! default NAME/AGE columns itself.

use serde_json::{json, Value};

use super::registry::ResourceType;

/// Whether the `Accept` header asks for a Table (kubectl get does).
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("as=Table"))
}

/// Whether the `Accept` header asks for metadata only
/// (`as=PartialObjectMetadata` or `as=PartialObjectMetadataList`, as kube-rs's
/// `metadata_watcher` and `kubectl get -o name` send).
pub fn metadata_wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("as=PartialObjectMetadata"))
}

/// `object` as a `meta.k8s.io/v1` PartialObjectMetadata: its metadata only.
pub fn partial(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

/// A Table of `objects` with the type's printer columns (Name and Age when it declares none).
pub fn render(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: u64,
    include: Option<&str>,
) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    let mut paths = vec![(".metadata.name".to_string(), "string".to_string())];
    let declared: Vec<Value> = if rt.printer_columns.is_empty() {
        vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
    } else {
        rt.printer_columns.clone()
    };
    for c in &declared {
        let kind = c["type"].as_str().unwrap_or("string").to_string();
        columns.push(json!({
            "name": c["name"], "type": kind, "format": c["format"].as_str().unwrap_or_default(),
            "description": c["description"].as_str().unwrap_or_default(),
            "priority": c["priority"].as_i64().unwrap_or(0),
        }));
        paths.push((c["jsonPath"].as_str().unwrap_or_default().to_string(), kind));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = paths.iter().map(|(p, kind)| cell(o, p, kind)).collect();
            let object = match include {
                Some("Object") => o.clone(),
                Some("None") => Value::Null,
                _ => partial(o),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn cell(obj: &Value, path: &str, kind: &str) -> Value {
    let found = eval(path, obj);
    let value = match found.as_slice() {
        [] => return Value::Null,
        [one] => one.clone(),
        many => json!(many
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect::<Vec<_>>()
            .join(",")),
    };
    match (kind, value.as_str()) {
        ("date", Some(t)) => t
            .parse::<jiff::Timestamp>()
            .map(|t| {
                json!(human_age(
                    jiff::Timestamp::now().as_second() - t.as_second()
                ))
            })
            .unwrap_or(value),
        _ => value,
    }
}

/// An age the way kubectl prints one (`45s`, `3m10s`, `2h`, `4d`).
fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The JSONPath subset printer columns use: `.a.b`, `[n]`, `[*]` and
/// `[?(@.field=="value")]` filters.
pub fn eval(path: &str, root: &Value) -> Vec<Value> {
    let mut current = vec![root.clone()];
    let mut rest = path.trim().trim_start_matches('{').trim_end_matches('}');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = if r.starts_with("?(") {
                r.find(")]").map(|i| i + 1)
            } else {
                r.find(']')
            };
            let Some(end) = end else { return Vec::new() };
            let inner = &r[..end];
            rest = &r[end + 1..];
            let items = current
                .iter()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default());
            current = if inner == "*" {
                items.collect()
            } else if let Some(expr) = inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')')) {
                let (lhs, want, eq) = match expr.split_once("!=") {
                    Some((l, r)) => (l, r, false),
                    None => match expr.split_once("==") {
                        Some((l, r)) => (l, r, true),
                        None => return Vec::new(),
                    },
                };
                let want = want.trim().trim_matches(|c| c == '"' || c == '\'');
                let lhs = lhs.trim().trim_start_matches('@');
                items
                    .filter(|item| {
                        let got = eval(lhs, item);
                        let got = got
                            .first()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from));
                        (got.as_deref() == Some(want)) == eq
                    })
                    .collect()
            } else {
                let Ok(i) = inner.trim().parse::<usize>() else {
                    return Vec::new();
                };
                current.iter().filter_map(|v| v.get(i).cloned()).collect()
            };
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let field = &rest[..end];
        rest = &rest[end..];
        current = current
            .iter()
            .filter_map(|v| v.get(field).cloned())
            .filter(|v| !v.is_null())
            .collect();
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_json_paths() {
        let obj = json!({"spec": {"role": "Admin"}, "status": {"conditions": [
            {"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(eval(".spec.role", &obj), [json!("Admin")]);
        assert_eq!(
            eval(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            [json!("True")]
        );
        assert_eq!(eval(".status.conditions[0].type", &obj), [json!("Synced")]);
        assert_eq!(eval(".status.conditions[*].type", &obj).len(), 2);
        assert!(eval(".spec.missing", &obj).is_empty());
        assert_eq!(human_age(75), "75s");
        assert_eq!(human_age(3 * 86400 + 7200), "3d2h");
    }
}
