//! Every endpoint once, with its documented answer shape.

use super::harness::{org_server, test_config, TestServer};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;
use stagegate::policy::{Role, Scope};
use std::time::Duration;

on_both_stores!(login_whoami_logout);
fn login_whoami_logout(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let r = c.login("maria", "maria-password");
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.body["session"].as_str().unwrap().to_string();
    assert!(session.starts_with("sgs_") && session.len() == 68);
    let expires: jiff::Timestamp = r.body["expiresAt"].as_str().unwrap().parse().unwrap();
    let ttl = expires.duration_since(jiff::Timestamp::now());
    assert!(
        ttl > jiff::SignedDuration::from_hours(11) && ttl <= jiff::SignedDuration::from_hours(12)
    );

    let w = c.whoami(&session);
    assert_eq!(w.status, 200);
    assert_eq!(
        w.body,
        json!({
            "kind": "user",
            "name": "maria",
            "roles": [{"role": "Manager", "scope": {"customer": "acme"}}],
            "expiresAt": r.body["expiresAt"],
            "bootstrap": false,
        })
    );
    assert!(srv.user_row("maria").last_login.is_some());

    assert_eq!(c.logout(&session).status, 204);
    let after = c.whoami(&session);
    assert_eq!(after.status, 401);
    assert_eq!(after.error(), "unauthorized");
    assert!(after.header("www-authenticate").is_some());
    assert_eq!(c.logout(&session).status, 401);
}

on_both_stores!(whoami_without_or_with_garbage_credentials_is_401);
fn whoami_without_or_with_garbage_credentials_is_401(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    assert_eq!(c.get("/v1/whoami", None).status, 401);
    assert_eq!(c.whoami("nonsense").status, 401);
    assert_eq!(c.whoami(&format!("sgs_{}", "ab".repeat(32))).status, 401);
    let basic = c.run(
        c.request(reqwest::Method::GET, "/v1/whoami")
            .basic_auth("maria", Some("maria-password")),
    );
    assert_eq!(basic.status, 401);
}

on_both_stores!(token_whoami_authorize_and_models);
fn token_whoami_authorize_and_models(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (op, token, _) = srv.token("ci-deployer", Role::Deployer, Scope::customer("acme"), None);
    srv.apply(vec![op]);
    let w = c.whoami(&token);
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(
        w.body,
        json!({
            "kind": "token",
            "name": "ci-deployer",
            "roles": [{"role": "Deployer", "scope": {"customer": "acme"}}],
            "expiresAt": null,
            "bootstrap": false,
        })
    );
    let (allowed, code) = c.allowed(
        &token,
        &json!({"action": "models:transition", "model": "fraud-staging", "to": "Production"}),
    );
    assert!(allowed, "{code}");
    assert_eq!(
        c.model_names(&token),
        ["churn-staging", "fraud-prod", "fraud-staging"]
    );
    // Logout is for sessions.
    assert_eq!(c.logout(&token).status, 400);
}

on_both_stores!(models_lists_scope_owner_and_stage);
fn models_lists_scope_owner_and_stage(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("alan", "alan-password");
    let r = c.get("/v1/models", Some(&s));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"models": [
            {"name": "fraud-dev", "scope": {"customer": "acme", "project": "fraud"}, "owner": "alan", "stage": "Dev"},
            {"name": "fraud-staging", "scope": {"customer": "acme", "project": "fraud"}, "owner": "alan", "stage": "Staging"},
        ]})
    );
}

on_both_stores!(healthz_readyz_and_metrics);
fn healthz_readyz_and_metrics(store: StoreKind) {
    let srv = TestServer::start(store, test_config());
    let c = &srv.client;
    assert_eq!(c.get("/healthz", None).body, json!({"status": "ok"}));
    assert_eq!(c.get("/readyz", None).status, 200);

    srv.apply(super::harness::org());
    let (op, _, _) = srv.token(
        "soon",
        Role::Admin,
        Scope::global(),
        Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)),
    );
    srv.apply(vec![op]);
    srv.state
        .metrics()
        .record_reconcile(Duration::from_millis(12), true);
    srv.state.metrics().record_reconcile_error("StoreError");
    srv.state.metrics().set_objects("User", true, 7);
    c.session("ada", "ada-password");
    assert_eq!(c.login("ada", "nope").status, 401);
    let m = c.get("/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    for needle in [
        r#"stagegate_http_requests_total{method="POST",route="/v1/login",status="200"} 1"#,
        r#"stagegate_http_requests_total{method="POST",route="/v1/login",status="401"} 1"#,
        r#"stagegate_http_request_duration_seconds_bucket{"#,
        r#"stagegate_reconciles_total{outcome="ok"} 1"#,
        "stagegate_reconcile_duration_seconds_count 1",
        r#"stagegate_reconcile_errors_total{reason="StoreError"} 1"#,
        r#"stagegate_objects{kind="User",ready="true"} 7"#,
        r#"stagegate_objects{kind="ApiToken",ready="false"} 0"#,
        "stagegate_tokens_expiring_within_7d 1",
        "stagegate_login_failures_total 1",
        "stagegate_sessions 1",
    ] {
        assert!(m.text.contains(needle), "{needle} missing:\n{}", m.text);
    }
}

on_both_stores!(readyz_is_503_until_the_first_reconcile);
fn readyz_is_503_until_the_first_reconcile(store: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let state = stagegate::api::ApiState::open(
        test_config(),
        &store.location(&dir.path().join("s.db")),
        stagegate::secrets::ServerKey::generate(),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, ready_status) = rt.block_on(async {
        let app = stagegate::api::router(state.clone());
        let req = || {
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        use tower::ServiceExt;
        let before = app.clone().oneshot(req()).await.unwrap().status();
        state.set_ready();
        let after = app.oneshot(req()).await.unwrap().status();
        (before, after)
    });
    assert_eq!(status, 503);
    assert_eq!(ready_status, 200);
}
