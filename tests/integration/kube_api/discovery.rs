//! Discovery documents (`/api`, `/apis`, resource lists), `/version` and the
//! OpenAPI v3 documents kubectl reads.
//!
//! Only the legacy (unaggregated) discovery form is served: client-go asks
//! for aggregated discovery in its Accept header but falls back to the plain
//! form when the response's Content-Type is plain `application/json`.
//!
//! OpenAPI: `kubectl apply` validates with `--validate=strict` by default. It
//! first asks `/openapi/v3` whether the PATCH operation of the object's kind
//! takes a `fieldValidation` query parameter; if so it leaves validation to
//! the server and needs no schemas. So each group-version document lists, per
//! kind, a PATCH operation with that parameter and the
//! `x-kubernetes-group-version-kind` extension, and `/openapi/v2` is a 404.

use serde_json::{json, Value};

use super::registry::{Registry, ResourceType};

/// The Kubernetes version the server claims to be.
const MINOR: &str = "32";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "gitVersion": format!("v1.{MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = reg
        .versions(group)
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group.
pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg.groups().iter().map(|g| group_doc(reg, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, if the group is served.
pub fn group(reg: &Registry, group: &str) -> Option<Value> {
    reg.groups()
        .iter()
        .any(|g| g == group)
        .then(|| group_doc(reg, group))
}

fn resource_entry(t: &ResourceType) -> Value {
    let mut entry = json!({
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
    });
    if !t.short_names.is_empty() {
        entry["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        entry["categories"] = json!(t.categories);
    }
    entry
}

/// `/api/v1` or `/apis/<group>/<version>`, if served.
pub fn resources(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    if !reg.serves(group, version) {
        return None;
    }
    let mut list = Vec::new();
    for t in reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        list.push(resource_entry(t));
        if t.status_subresource {
            list.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// Every served group-version as its OpenAPI v3 path (`api/v1`, `apis/g/v`).
fn openapi_paths(reg: &Registry) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for t in reg.all() {
        let path = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        if !out.iter().any(|(p, _, _)| *p == path) {
            out.push((path, t.group.clone(), t.version.clone()));
        }
    }
    out
}

/// A hash of what a group-version serves, so kubectl's cache notices new kinds.
fn gv_hash(reg: &Registry, group: &str, version: &str) -> String {
    let mut h = crc32fast::Hasher::new();
    for t in reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        h.update(t.kind.as_bytes());
        h.update(t.plural.as_bytes());
    }
    format!("{:08X}", h.finalize())
}

/// `/openapi/v3`: the index of group-version documents.
pub fn openapi_root(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (path, group, version) in openapi_paths(reg) {
        let url = format!("/openapi/v3/{path}?hash={}", gv_hash(reg, &group, &version));
        paths.insert(path, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<api/v1 | apis/g/v>`: a PATCH operation per kind that
/// advertises `fieldValidation`, and the schemas of custom kinds.
pub fn openapi_group_version(reg: &Registry, path: &str) -> Option<Value> {
    let (_, group, version) = openapi_paths(reg).into_iter().find(|(p, _, _)| p == path)?;
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let ns = if t.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let url = format!("/{path}{ns}/{}/{{name}}", t.plural);
        let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|p| json!({"name": p, "in": "query", "schema": {"type": "string"}}))
            .collect();
        paths.insert(url, json!({"patch": {
            "operationId": format!("patch{}", t.kind),
            "parameters": params,
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
        }}));
        // CRD schemas, so that `kubectl explain` works for custom kinds.
        if let Some(schema) = &t.schema {
            let mut schema = schema.clone();
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
            let reversed: Vec<&str> = t.group.split('.').rev().collect();
            let id = format!("{}.{}.{}", reversed.join("."), t.version, t.kind);
            schemas.insert(id, schema);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
