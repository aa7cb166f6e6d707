//! Bad input gets the documented 4xx with a JSON `{error, message}` body, and
//! the server keeps serving afterwards.

use super::client::ApiClient;
use super::harness::{org_server, test_config, TestServer};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;

fn assert_error(r: &super::client::Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
    assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
}

/// The server answers new connections: a fresh client, because the server may
/// close a connection it refused (413, 431) after the old client pooled it.
fn still_serving(srv: &TestServer) {
    let fresh = ApiClient::new(srv.client.base());
    assert_eq!(fresh.get("/healthz", None).status, 200);
    fresh.session("ada", "ada-password");
}

on_both_stores!(malformed_json_is_400);
fn malformed_json_is_400(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let r = c.post_raw(
        "/v1/login",
        None,
        "application/json",
        b"{\"username\":".to_vec(),
    );
    assert_error(&r, 400, "bad_request");
    let s = c.session("ada", "ada-password");
    let r = c.post_raw(
        "/v1/authorize",
        Some(&s),
        "application/json",
        b"[1,2".to_vec(),
    );
    assert_error(&r, 400, "bad_request");
    let r = c.post("/v1/login", None, &json!({"username": "ada"}));
    assert_error(&r, 400, "bad_request");
    let r = c.post(
        "/v1/login",
        None,
        &json!({"username": "ada", "password": "x", "otp": 1}),
    );
    assert_error(&r, 400, "bad_request");
    still_serving(&srv);
}

on_both_stores!(wrong_content_type_is_415);
fn wrong_content_type_is_415(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let body = br#"{"username":"ada","password":"ada-password"}"#.to_vec();
    let r = c.post_raw("/v1/login", None, "text/plain", body.clone());
    assert_error(&r, 415, "unsupported_media_type");
    let r = c.post_raw("/v1/login", None, "application/x-www-form-urlencoded", body);
    assert_error(&r, 415, "unsupported_media_type");
    still_serving(&srv);
}

on_both_stores!(an_oversized_body_is_413);
fn an_oversized_body_is_413(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let big = format!(
        r#"{{"username":"ada","password":"{}"}}"#,
        "x".repeat(20 * 1024)
    );
    let r = c.post_raw("/v1/login", None, "application/json", big.into_bytes());
    assert_error(&r, 413, "payload_too_large");
    // The same without a Content-Length (chunked). The server may answer 413 and close before the
    // client has sent everything, so a client-side send error after the answer is accepted too.
    let stream = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b' '; 40 * 1024]));
    let sent = c
        .request(reqwest::Method::POST, "/v1/login")
        .header("content-type", "application/json")
        .body(stream)
        .send();
    match sent {
        Ok(resp) => assert_eq!(resp.status().as_u16(), 413),
        Err(e) => assert!(e.is_body() || e.is_request(), "{e}"),
    }
    still_serving(&srv);
}

on_both_stores!(an_unknown_action_or_stage_is_400);
fn an_unknown_action_or_stage_is_400(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("ada", "ada-password");
    let r = c.authorize(
        &s,
        &json!({"action": "models:delete", "model": "fraud-dev"}),
    );
    assert_error(&r, 400, "bad_request");
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("models:delete"));
    let r = c.authorize(
        &s,
        &json!({"action": "models:transition", "model": "fraud-dev", "to": "Prod"}),
    );
    assert_error(&r, 400, "bad_request");
    let r = c.authorize(
        &s,
        &json!({"action": "users:manage", "scope": {"project": "fraud"}}),
    );
    assert_error(&r, 400, "bad_request");
    let r = c.authorize(&s, &json!({"action": "models:view"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["code"], "Incomplete");
    still_serving(&srv);
}

on_both_stores!(unknown_routes_are_404_and_wrong_methods_405_in_json);
fn unknown_routes_are_404_and_wrong_methods_405_in_json(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    assert_error(&c.get("/v1/nope", None), 404, "not_found");
    assert_error(&c.get("/v1/login", None), 405, "method_not_allowed");
    assert_error(
        &c.post("/v1/models", None, &json!({})),
        405,
        "method_not_allowed",
    );
    still_serving(&srv);
}

on_both_stores!(an_overlong_username_is_400_not_a_lookup);
fn an_overlong_username_is_400_not_a_lookup(store: StoreKind) {
    let srv = org_server(store, test_config());
    let r = srv.client.login(&"u".repeat(300), "x");
    assert_error(&r, 400, "bad_request");
}
