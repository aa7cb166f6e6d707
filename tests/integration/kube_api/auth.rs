//! Authentication (bearer tokens) and RBAC authorization, evaluated the way
//! kube-apiserver's RBAC authorizer does, against the Role, ClusterRole,
//! RoleBinding and ClusterRoleBinding objects the server holds.
//!
//! * Authentication: a bearer token names a user with groups. The admin
//!   token is in `system:masters`, which kube-apiserver lets do anything
//!   before RBAC is consulted. A ServiceAccount token authenticates only
//!   while its ServiceAccount exists; an unknown token is 401. kubectl
//!   (client-go) sends no bearer token over plain HTTP, so a request without
//!   credentials is the administrator, as on kube-apiserver's former
//!   `--insecure-port`: kubectl is the test's setup tool, while the product
//!   always presents its token (the controller tests check that).
//! * Request attributes come from the URL alone (as `RequestInfo` does):
//!   namespace, resource, subresource, name (also from a `metadata.name`
//!   field selector on list/watch), verb; everything else is a non-resource
//!   URL with the HTTP method as verb.
//! * A request is allowed when any rule reachable from a ClusterRoleBinding,
//!   or from a RoleBinding in the request's namespace, whose subjects include
//!   the user matches: verbs, API groups, resources (`*`, exact
//!   `resource/subresource`, or `*/subresource`), resourceNames (empty = any),
//!   or non-resource URLs (exact, `*`, or a `prefix*`). An aggregated
//!   ClusterRole has the rules of every ClusterRole its selectors match, as
//!   the aggregation controller would write them.
//! * A denial is a `Status` with reason `Forbidden` and kube-apiserver's
//!   message (`<resource>.<group> "<name>" is forbidden: User "<u>" cannot
//!   <verb> resource ...`), with the resolution errors appended as `RBAC: ...`.

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::registry::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Store, WriteOpts};

/// The bearer token of the cluster administrator (kubectl and test setup).
pub const ADMIN_TOKEN: &str = "stagegate-test-admin-token";
/// The group kube-apiserver authorizes for everything without consulting RBAC.
const PRIVILEGED_GROUP: &str = "system:masters";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name (`system:serviceaccount:<ns>:<name>` for a ServiceAccount).
    pub name: String,
    /// Groups, `system:authenticated` included for authenticated users.
    pub groups: Vec<String>,
    /// For a ServiceAccount token: its namespace and name, checked on each request.
    pub service_account: Option<(String, String)>,
}

impl Identity {
    /// The cluster administrator.
    pub fn admin() -> Self {
        Identity {
            name: "kubernetes-admin".into(),
            groups: vec![PRIVILEGED_GROUP.into(), "system:authenticated".into()],
            service_account: None,
        }
    }

    /// A ServiceAccount, with the groups kube-apiserver gives its tokens.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Identity {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
            service_account: Some((namespace.into(), name.into())),
        }
    }
}

/// Known bearer tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, Identity>,
    issued: u64,
}

impl Tokens {
    /// A table holding only the admin token.
    pub fn new() -> Self {
        let mut t = Tokens::default();
        t.by_token.insert(ADMIN_TOKEN.into(), Identity::admin());
        t
    }

    /// Registers a new token for `identity` and returns it.
    pub fn issue(&mut self, identity: Identity) -> String {
        self.issued += 1;
        let slug: String = identity
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let token = format!("token-{}-{slug}", self.issued);
        self.by_token.insert(token.clone(), identity);
        token
    }
}

fn unauthorized() -> ApiError {
    ApiError::plain(401, "Unauthorized", "Unauthorized")
}

/// The identity behind a request's `Authorization` header.
pub fn authenticate(
    tokens: &Tokens,
    store: &Store,
    headers: &HeaderMap,
) -> Result<Identity, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(Identity::admin());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthorized)?;
    let identity = tokens
        .by_token
        .get(token)
        .cloned()
        .ok_or_else(unauthorized)?;
    if let Some((ns, name)) = &identity.service_account {
        let exists = store
            .registry
            .find("", "v1", "serviceaccounts")
            .is_some_and(|rt| store.get(rt, ns, name).is_ok());
        if !exists {
            return Err(unauthorized());
        }
    }
    Ok(identity)
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection; or the
    /// lower-case HTTP method for a non-resource URL.
    pub verb: String,
    /// Whether the URL is an API resource (`/api/v1/...`, `/apis/g/v/...`).
    pub resource_request: bool,
    /// The URL path.
    pub path: String,
    /// API group.
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource such as `status`.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Parses a request the way `RequestInfo` does: by the URL's shape, before
/// anything is looked up.
pub fn attributes(method: &str, path: &str, query: &HashMap<String, String>) -> Attributes {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => {
            return Attributes {
                verb: method.to_ascii_lowercase(),
                path: path.into(),
                ..Default::default()
            }
        }
    };
    let mut parts = rest;
    let mut namespace = String::new();
    if parts[0] == "namespaces" && parts.len() > 1 {
        namespace = parts[1].to_string();
        // `namespaces/<ns>/status` and `/finalize` are the Namespace's own subresources.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts = &parts[2..];
        }
    }
    let mut name = parts.get(1).map(|s| s.to_string()).unwrap_or_default();
    let subresource = parts.get(2).map(|s| s.to_string()).unwrap_or_default();
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (method, name.is_empty()) {
        ("GET" | "HEAD", true) if watching => "watch",
        ("GET" | "HEAD", true) => "list",
        ("GET" | "HEAD", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        (other, _) => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                resource_request: true,
                path: path.into(),
                group: group.into(),
                resource: parts[0].into(),
                namespace,
                name,
                subresource,
            }
        }
    };
    // A list or watch of one name (`fieldSelector=metadata.name=x`) is about that name.
    if matches!(verb, "list" | "watch") {
        if let Some(fields) = query.get("fieldSelector") {
            for term in fields.split(',') {
                if let Some(n) = term
                    .strip_prefix("metadata.name==")
                    .or_else(|| term.strip_prefix("metadata.name="))
                {
                    name = n.to_string();
                }
            }
        }
    }
    Attributes {
        verb: verb.into(),
        resource_request: true,
        path: path.into(),
        group: group.into(),
        resource: parts[0].into(),
        subresource,
        namespace,
        name,
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one PolicyRule allows the request.
pub fn rule_allows(a: &Attributes, rule: &Value) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*"
                || *u == a.path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    let groups_match = strings(&rule["apiGroups"])
        .iter()
        .any(|g| *g == "*" || *g == a.group);
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources_match = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    let names = strings(&rule["resourceNames"]);
    let names_match = names.is_empty() || names.contains(&a.name.as_str());
    groups_match && resources_match && names_match
}

/// Whether a binding subject is the user (a ServiceAccount subject without a
/// namespace means the binding's own).
fn applies_to(user: &Identity, subject: &Value, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rbac_objects(store: &Store, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(rt) = store.registry.find(RBAC_GROUP, "v1", plural) else {
        return Vec::new();
    };
    let all_labels = LabelSelector::parse("").unwrap_or_else(|_| unreachable!());
    let all_fields = FieldSelector::parse("").unwrap_or_else(|_| unreachable!());
    store.list(rt, namespace, &all_labels, &all_fields)
}

/// The rules of a ClusterRole; an aggregated one has those of every
/// ClusterRole matched by its `aggregationRule` selectors.
fn cluster_role_rules(store: &Store, role: &Value) -> Vec<Value> {
    let Some(selectors) = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    else {
        return role["rules"].as_array().cloned().unwrap_or_default();
    };
    let mut rules = Vec::new();
    for other in rbac_objects(store, "clusterroles", None) {
        if other["metadata"]["name"] == role["metadata"]["name"] {
            continue;
        }
        let labels = &other["metadata"]["labels"];
        let matched = selectors.iter().any(|s| {
            s["matchLabels"]
                .as_object()
                .is_some_and(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
        });
        if matched {
            rules.extend(other["rules"].as_array().cloned().unwrap_or_default());
        }
    }
    rules
}

/// The rules a role reference grants, or the resolution error kube-apiserver reports.
fn role_ref_rules(store: &Store, role_ref: &Value, namespace: &str) -> Result<Vec<Value>, String> {
    let name = role_ref["name"].as_str().unwrap_or_default();
    let find = |plural: &str, ns: Option<&str>| {
        rbac_objects(store, plural, ns)
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
    };
    match role_ref["kind"].as_str() {
        Some("Role") => find("roles", Some(namespace))
            .map(|r| r["rules"].as_array().cloned().unwrap_or_default())
            .ok_or_else(|| format!("role.{RBAC_GROUP} \"{name}\" not found")),
        Some("ClusterRole") => find("clusterroles", None)
            .map(|r| cluster_role_rules(store, &r))
            .ok_or_else(|| format!("clusterrole.{RBAC_GROUP} \"{name}\" not found")),
        other => Err(format!(
            "unsupported role reference kind: \"{}\"",
            other.unwrap_or_default()
        )),
    }
}

/// Allows the request or answers 403 as kube-apiserver does.
pub fn authorize(store: &Store, user: &Identity, a: &Attributes) -> Result<(), ApiError> {
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    let mut errors = Vec::new();
    let mut bindings: Vec<(Value, String)> = rbac_objects(store, "clusterrolebindings", None)
        .into_iter()
        .map(|b| (b, String::new()))
        .collect();
    if !a.namespace.is_empty() {
        bindings.extend(
            rbac_objects(store, "rolebindings", Some(&a.namespace))
                .into_iter()
                .map(|b| (b, a.namespace.clone())),
        );
    }
    for (binding, ns) in &bindings {
        let subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
        if !subjects.iter().any(|s| applies_to(user, s, ns)) {
            continue;
        }
        match role_ref_rules(store, &binding["roleRef"], ns) {
            Ok(rules) if rules.iter().any(|r| rule_allows(a, r)) => return Ok(()),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    Err(forbidden(user, a, &errors))
}

/// kube-apiserver's 403: `<resource>.<group> "<name>" is forbidden: User ... cannot ...`.
fn forbidden(user: &Identity, a: &Attributes, errors: &[String]) -> ApiError {
    let mut why = if !a.resource_request {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        )
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", a.namespace)
        };
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        )
    };
    if !errors.is_empty() {
        let joined = if errors.len() == 1 {
            errors[0].clone()
        } else {
            format!("[{}]", errors.join(", "))
        };
        why = format!("{why}: RBAC: {joined}");
    }
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = match (a.resource_request, a.name.is_empty()) {
        (false, _) => format!("forbidden: {why}"),
        (true, true) => format!("{qualified} is forbidden: {why}"),
        (true, false) => format!("{qualified} \"{}\" is forbidden: {why}", a.name),
    };
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: a
            .resource_request
            .then(|| json!({"name": a.name, "group": a.group, "kind": a.resource})),
    }
}

/// The default roles kube-apiserver bootstraps so that anyone may read
/// discovery, version and health (`system:discovery`,
/// `system:public-info-viewer`), and `cluster-admin` for completeness.
pub fn bootstrap_policy(store: &mut Store) {
    let objects = [
        (
            "clusterroles",
            json!({
                "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                "rules": [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]}
                ]
            }),
        ),
        (
            "clusterroles",
            json!({
                "metadata": {"name": "system:discovery", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]
            }),
        ),
        (
            "clusterroles",
            json!({
                "metadata": {"name": "system:public-info-viewer", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
                "rules": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "cluster-admin"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": PRIVILEGED_GROUP}]
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "system:discovery"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
                "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:authenticated"}]
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "system:public-info-viewer"},
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:public-info-viewer"},
                "subjects": [
                    {"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:authenticated"},
                    {"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:unauthenticated"}
                ]
            }),
        ),
    ];
    for (plural, body) in objects {
        let rt: Option<ResourceType> = store.registry.find(RBAC_GROUP, "v1", plural).cloned();
        if let Some(rt) = rt {
            store
                .create(&rt, "", body, &WriteOpts::default())
                .expect("bootstrap RBAC objects are valid");
        }
    }
}
