//! Malformed scopes: one strict parser (customer and project are DNS labels, at most two
//! levels) for the CLI, the HTTP API and manifests.

use super::{binding, error_at, Dir, OneShot};
use crate::api::harness::{org_server, test_config};
use crate::support::{run, stderr};
use serde_json::json;

/// `can-i --dir examples --as ada users:manage --scope SCOPE`: exit code and stderr.
fn can_i(scope: &str) -> (Option<i32>, String) {
    let out = run(&[
        "can-i",
        "--dir",
        "examples",
        "--as",
        "ada",
        "users:manage",
        "--scope",
        scope,
    ]);
    (out.status.code(), stderr(&out))
}

#[test]
fn malformed_scopes_are_usage_errors_in_can_i() {
    for scope in [
        "acme/fraud/churn",
        "acme/",
        "/fraud",
        "Acme",
        "acme/../globex",
        "acme fraud",
        "acme/fraud ",
        "a_b",
    ] {
        let (code, err) = can_i(scope);
        assert_eq!(code, Some(2), "{scope:?}: {err}");
        assert!(err.contains("--scope"), "{scope:?}: {err}");
    }
    for scope in ["acme", "acme/fraud", "*"] {
        let (code, err) = can_i(scope);
        assert_eq!(code, Some(0), "{scope:?}: {err}");
    }
}

#[test]
fn malformed_scopes_are_400_in_the_api() {
    let srv = org_server(crate::stores::StoreKind::Sqlite, test_config());
    let c = &srv.client;
    let s = c.session("ada", "ada-password");
    for scope in [
        json!({"customer": "acme", "project": "../churn"}),
        json!({"customer": "ACME"}),
        json!({"customer": "acme/fraud"}),
        json!({"customer": ""}),
        json!({"customer": "acme", "project": "fraud", "team": "x"}),
        json!({"project": "fraud"}),
        json!({"customer": "a".repeat(64)}),
    ] {
        for question in [
            json!({"action": "users:manage", "scope": scope}),
            json!({"action": "models:view", "model": "fraud-dev", "scope": scope}),
        ] {
            let r = c.authorize(&s, &question);
            assert_eq!(r.status, 400, "{question}: {}", r.text);
            assert_eq!(r.error(), "bad_request", "{question}: {}", r.text);
            assert!(
                r.body["message"].as_str().unwrap().contains("scope"),
                "{}",
                r.text
            );
        }
    }
    let ok = c.authorize(
        &s,
        &json!({"action": "users:manage", "scope": {"customer": "acme", "project": "fraud"}}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["allowed"], true);
}

#[test]
fn malformed_scopes_are_invalid_scopes_in_manifests() {
    let d = Dir::new();
    let cases = [
        (
            "upper",
            "  user: grace\n  role: Analyst\n  scope: {customer: Acme}\n",
            "spec.scope.customer",
        ),
        (
            "dotted",
            "  user: grace\n  role: Analyst\n  scope:\n    customer: acme\n    project: fraud.v2\n",
            "spec.scope.project",
        ),
        (
            "long",
            &format!(
                "  user: grace\n  role: Analyst\n  scope: {{customer: {}}}\n",
                "c".repeat(64)
            ),
            "spec.scope.customer",
        ),
    ];
    for (name, spec, _) in &cases {
        d.write(&format!("{name}.yaml"), &binding("ml-platform", name, spec));
    }
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    for (name, _, field) in &cases {
        error_at(&diags, "InvalidScope", name, field);
    }
}
