//! Authentication and RBAC as kube-apiserver evaluates them, and the limits
//! it enforces on names, Event notes and server-side apply.

use super::super::auth::{attributes, rule_allows};
use super::super::{Identity, KubeApiServer};
use serde_json::{json, Value};
use std::collections::HashMap;

const POLICY: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bot, namespace: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: one-secret, namespace: team}
rules:
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: ["allowed"]
  verbs: ["get", "delete"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: one-secret, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: one-secret}
subjects: [{kind: ServiceAccount, name: bot}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: aggregated}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {example.com/aggregate: "true"}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: configmap-reader, labels: {example.com/aggregate: "true"}}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: aggregated, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: aggregated}
subjects: [{kind: ServiceAccount, name: bot, namespace: team}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: logs}
rules:
- nonResourceURLs: ["/logs/*"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: logs}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: logs}
subjects: [{kind: ServiceAccount, name: bot, namespace: team}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: dangling, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: not-there}
subjects: [{kind: Group, name: "system:serviceaccounts:team"}]
"#;

fn call(server: &KubeApiServer, token: &str, method: &str, path: &str) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let reply = client
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(token)
        .send()
        .expect("the server answers");
    let status = reply.status().as_u16();
    (status, reply.json().unwrap_or(Value::Null))
}

#[test]
fn rbac_rules_are_evaluated_like_kube_apiserver() {
    let server = KubeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("policy.yaml");
    std::fs::write(&f, POLICY).unwrap();
    server
        .kubectl(&["apply", "-f", f.to_str().unwrap()])
        .assert_success();
    let bot = server.token_for(Identity::service_account("team", "bot"));
    let user = "system:serviceaccount:team:bot";

    // resourceNames: the named Secret only (404: allowed, absent), and not for list.
    let (code, _) = call(
        &server,
        &bot,
        "GET",
        "/api/v1/namespaces/team/secrets/allowed",
    );
    assert_eq!(code, 404);
    let (code, status) = call(
        &server,
        &bot,
        "GET",
        "/api/v1/namespaces/team/secrets/other",
    );
    assert_eq!(code, 403);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["details"],
        json!({"name": "other", "group": "", "kind": "secrets"})
    );
    // The dangling RoleBinding's error is appended, as kube-apiserver does.
    assert_eq!(
        status["message"],
        format!(
            "secrets \"other\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" \
             in the namespace \"team\": RBAC: role.rbac.authorization.k8s.io \"not-there\" not found"
        )
    );
    let (code, status) = call(&server, &bot, "GET", "/api/v1/namespaces/team/secrets");
    assert_eq!(code, 403);
    assert!(status["message"].as_str().unwrap().starts_with(&format!(
        "secrets is forbidden: User \"{user}\" cannot list resource"
    )));
    // API group and namespace both count: leases in team only.
    assert_eq!(
        call(
            &server,
            &bot,
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/team/leases"
        )
        .0,
        200
    );
    let (code, status) = call(
        &server,
        &bot,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
    );
    assert_eq!(code, 403);
    assert!(status["message"].as_str().unwrap().contains(
        "cannot list resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\""
    ));
    // A cluster-wide list needs a ClusterRoleBinding.
    let (code, status) = call(&server, &bot, "GET", "/apis/coordination.k8s.io/v1/leases");
    assert_eq!(code, 403);
    assert!(status["message"]
        .as_str()
        .unwrap()
        .ends_with("at the cluster scope"));
    // An aggregated ClusterRole has the rules of the roles it selects.
    assert_eq!(
        call(&server, &bot, "GET", "/api/v1/namespaces/team/configmaps").0,
        200
    );
    assert_eq!(
        call(
            &server,
            &bot,
            "GET",
            "/api/v1/namespaces/default/configmaps"
        )
        .0,
        403
    );
    // Non-resource URLs: a `prefix*` rule; discovery for every authenticated user.
    assert_eq!(call(&server, &bot, "GET", "/logs/kubelet").0, 404);
    let (code, status) = call(&server, &bot, "GET", "/metrics");
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        format!("forbidden: User \"{user}\" cannot get path \"/metrics\"")
    );
    assert_eq!(call(&server, &bot, "GET", "/apis").0, 200);
    // A write the role does not grant.
    let (code, _) = call(
        &server,
        &bot,
        "DELETE",
        "/api/v1/namespaces/team/secrets/other",
    );
    assert_eq!(code, 403);
    assert_eq!(
        call(
            &server,
            &bot,
            "DELETE",
            "/api/v1/namespaces/team/secrets/allowed"
        )
        .0,
        404
    );

    // Authentication: an unknown token is 401; a deleted ServiceAccount's token stops working.
    let (code, status) = call(&server, "not-a-token", "GET", "/apis");
    assert_eq!(
        (code, status["reason"].clone()),
        (401, json!("Unauthorized"))
    );
    server
        .kubectl(&["delete", "serviceaccount", "bot", "-n", "team"])
        .assert_success();
    assert_eq!(
        call(&server, &bot, "GET", "/api/v1/namespaces/team/configmaps").0,
        401
    );
    // The 403s are in the request log with the user.
    let refused: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(refused.iter().all(|r| r.user.as_deref() == Some(user)));
    assert!(refused
        .iter()
        .any(|r| r.verb == "get" && r.resource.as_deref() == Some("secrets")));
}

fn attrs(method: &str, path: &str, query: &[(&str, &str)]) -> super::super::auth::Attributes {
    let q: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    attributes(method, path, &q)
}

#[test]
fn request_attributes_and_rule_matching_follow_the_upstream_helpers() {
    let status = attrs(
        "PATCH",
        "/apis/stagegate.dev/v1alpha1/namespaces/t/users/ada/status",
        &[],
    );
    assert_eq!(
        (
            status.verb.as_str(),
            status.resource.as_str(),
            status.subresource.as_str(),
            status.name.as_str()
        ),
        ("patch", "users", "status", "ada")
    );
    let rule = |v: Value| v;
    let users =
        rule(json!({"apiGroups": ["stagegate.dev"], "resources": ["users"], "verbs": ["patch"]}));
    assert!(
        !rule_allows(&status, &users),
        "a resource does not cover its subresources"
    );
    let sub = rule(
        json!({"apiGroups": ["stagegate.dev"], "resources": ["users/status"], "verbs": ["patch"]}),
    );
    assert!(rule_allows(&status, &sub));
    let any_status = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}));
    assert!(rule_allows(&status, &any_status));
    let main = attrs(
        "PATCH",
        "/apis/stagegate.dev/v1alpha1/namespaces/t/users/ada",
        &[],
    );
    assert!(
        !rule_allows(&main, &any_status),
        "*/status is not the main resource"
    );
    // A watch of one name is about that name (resourceNames apply).
    let watch = attrs(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/s/leases",
        &[("watch", "true"), ("fieldSelector", "metadata.name=lead")],
    );
    assert_eq!(
        (watch.verb.as_str(), watch.name.as_str()),
        ("watch", "lead")
    );
    let named = rule(
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["lead"], "verbs": ["watch"]}),
    );
    assert!(rule_allows(&watch, &named));
    // create has no name: a resourceNames rule never allows it.
    let create = attrs("POST", "/api/v1/namespaces/s/secrets", &[]);
    let create_named = rule(
        json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["x"], "verbs": ["create"]}),
    );
    assert!(!rule_allows(&create, &create_named));
    // A namespace's own URL is in that namespace.
    let ns = attrs("GET", "/api/v1/namespaces/s", &[]);
    assert_eq!(
        (
            ns.resource.as_str(),
            ns.namespace.as_str(),
            ns.name.as_str()
        ),
        ("namespaces", "s", "s")
    );
    let deletecollection = attrs("DELETE", "/api/v1/namespaces/s/secrets", &[]);
    assert_eq!(deletecollection.verb, "deletecollection");
}

#[test]
fn names_and_event_notes_are_limited_as_kube_apiserver_limits_them() {
    let server = KubeApiServer::start();
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: Value| {
        let reply = client
            .post(format!("{}{path}", server.url()))
            .bearer_auth(super::super::ADMIN_TOKEN)
            .json(&body)
            .send()
            .unwrap();
        (
            reply.status().as_u16(),
            reply.json::<Value>().unwrap_or(Value::Null),
        )
    };
    for bad in ["a..b", "Upper", &"x".repeat(254), "-dash"] {
        let (code, status) = post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": bad}, "data": {}}),
        );
        assert_eq!(code, 422, "{bad}: {status}");
        assert_eq!(status["reason"], "Invalid");
        assert!(
            status["message"].as_str().unwrap().starts_with(&format!(
                "Secret \"{bad}\" is invalid: metadata.name: Invalid value"
            )),
            "{status}"
        );
    }
    assert_eq!(
        post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "a.b-c"}})
        )
        .0,
        201
    );
    let event = |note: String| {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": format!("e{}", note.len())},
               "regarding": {"kind": "Secret", "name": "a.b-c", "namespace": "default"},
               "reason": "Test", "action": "Test", "type": "Normal", "note": note,
               "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "t", "reportingInstance": "t"})
    };
    // 1,024 bytes pass; 1,025 bytes do not, even as 513 characters.
    assert_eq!(
        post(
            "/apis/events.k8s.io/v1/namespaces/default/events",
            event("é".repeat(512))
        )
        .0,
        201
    );
    let (code, status) = post(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        event(format!("x{}", "é".repeat(512))),
    );
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("note: Too long: may not be more than 1024 bytes"));
}

/// docs/install.md upgrades Helm-created CRDs with a server-side apply: the
/// real kubectl is refused over fields Helm's manager owns, and succeeds with
/// `--force-conflicts`, the command the docs give.
#[test]
fn server_side_apply_over_helm_created_crds_needs_force_conflicts() {
    let server = KubeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let crds = super::write_crds(dir.path());
    let crds = crds.to_str().unwrap();
    // Helm creates the CRDs (its field manager is `helm`)...
    server
        .kubectl(&["create", "--field-manager=helm", "-f", crds])
        .assert_success();
    // ...and a new release changes one of them.
    let user_crd = dir.path().join("crds/users.stagegate.dev.yaml");
    let text = std::fs::read_to_string(&user_crd).unwrap();
    let changed = text.replacen("description: ", "description: Upgraded. ", 1);
    assert_ne!(changed, text);
    std::fs::write(&user_crd, changed).unwrap();

    let refused = server.kubectl(&["apply", "--server-side", "-f", crds]);
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("Apply failed with")
            && refused.stderr.contains("conflict with \"helm\""),
        "{}",
        refused.stderr
    );
    let docs = std::fs::read_to_string(support_root().join("docs/install.md")).unwrap();
    let command = docs
        .lines()
        .find(|l| l.starts_with("kubectl apply --server-side"))
        .expect("the upgrade command in docs/install.md");
    let args: Vec<&str> = command
        .split_whitespace()
        .skip(1)
        .map(|a| {
            if a == "charts/stagegate/crds/" {
                crds
            } else {
                a
            }
        })
        .collect();
    assert!(args.contains(&"--force-conflicts"), "{command}");
    server.kubectl(&args).assert_success();
    let crd = server
        .object(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "users.stagegate.dev",
        )
        .unwrap();
    assert!(crd.to_string().contains("Upgraded. "));
}

fn support_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
