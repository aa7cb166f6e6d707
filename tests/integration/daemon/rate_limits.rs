//! Issue 19: the request rate limits of `stagegate run`, set by its flags. Authenticated
//! callers on the decision routes are limited per caller (when asked to), never at the
//! per-address rate meant for anonymous and login traffic.

use super::fail_isolated::{secret, start_ready_with};
use super::harness::Workspace;
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;

/// A user who can log in, and two tokens (no owner).
const ORG: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ann, namespace: team}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: ann-manager, namespace: team}
spec: {user: ann, role: Manager, scope: {customer: acme}}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: gateway, namespace: team}
spec: {role: Deployer, scope: {customer: acme}, validity: Never}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: monitor, namespace: team}
spec: {role: Manager, scope: {customer: acme}, validity: Never}
";

on_both_stores!(run_flags_set_the_address_and_the_caller_limits);
fn run_flags_set_the_address_and_the_caller_limits(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("org.yaml", ORG);
    // Refills so slow (one request per 1000 s) that only the bursts count, however slow the test.
    let (_r, api) = start_ready_with(
        &ws,
        &[
            "--address-rate-limit",
            "0.001",
            "--address-burst",
            "3",
            "--caller-rate-limit",
            "0.001",
            "--caller-burst",
            "4",
        ],
    );
    let gateway = secret(&ws.secrets(), "team", "gateway-token", "token");
    let monitor = secret(&ws.secrets(), "team", "monitor-token", "token");
    let q = json!({"action": "models:view", "model": "m", "scope": {"customer": "acme"}});
    // A caller gets its own burst of 4, then 429, without touching the address budget.
    let codes: Vec<u16> = (0..5).map(|_| api.authorize(&gateway, &q).status).collect();
    assert_eq!(codes, [200, 200, 200, 200, 429]);
    let refused = api.authorize(&gateway, &q);
    assert_eq!(refused.error(), "too_many_requests");
    assert!(refused.header("retry-after").is_some());
    // Another caller has its own bucket.
    assert_eq!(api.authorize(&monitor, &q).status, 200);
    // The address budget (3) is whole: a login and two anonymous requests, then 429.
    let password = secret(&ws.secrets(), "team", "ann-password", "password");
    let session = api.session("ann", &password);
    assert_eq!(api.get("/v1/whoami", None).status, 401);
    assert_eq!(api.get("/v1/models", None).status, 401);
    assert_eq!(api.get("/v1/whoami", None).status, 429);
    assert_eq!(api.login("ann", &password).status, 429);
    // The session is a caller of its own: not held to the exhausted address budget.
    assert_eq!(api.whoami(&session).status, 200);
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(api.get(path, None).status, 200, "{path}");
    }
}

on_both_stores!(
    by_default_authenticated_callers_have_no_limit_and_zero_turns_the_address_limit_off
);
fn by_default_authenticated_callers_have_no_limit_and_zero_turns_the_address_limit_off(
    store: StoreKind,
) {
    let ws = Workspace::on(store);
    ws.write("org.yaml", ORG);
    let (_r, api) = start_ready_with(&ws, &["--address-rate-limit", "0"]);
    let gateway = secret(&ws.secrets(), "team", "gateway-token", "token");
    let q = json!({"action": "models:view", "model": "m", "scope": {"customer": "acme"}});
    // Far past the default address burst (100): no caller limit unless one is asked for.
    for i in 0..150 {
        assert_eq!(api.authorize(&gateway, &q).status, 200, "request {i}");
    }
    for i in 0..150 {
        assert_eq!(api.get("/v1/whoami", None).status, 401, "request {i}");
    }
}
