//! Captures every tracing line of the test process, and checks that access
//! logs are written once per request and never carry credentials.

use super::harness::{org_server, test_config};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber for the whole test process (once).
pub fn capture() {
    INSTALLED.get_or_init(|| {
        let sub = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,hyper_util=info,reqwest=info,h2=info")
            .with_writer(|| Sink)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).ok();
    });
}

/// Everything logged so far.
pub fn captured() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

on_both_stores!(no_credential_in_any_log_line_and_one_access_line_per_request);
fn no_credential_in_any_log_line_and_one_access_line_per_request(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (op, token, _) = srv.token(
        "ci",
        stagegate::policy::Role::Deployer,
        stagegate::policy::Scope::customer("acme"),
        None,
    );
    srv.apply(vec![op]);
    let session = c.session("alan", "alan-password");
    assert_eq!(c.whoami(&session).status, 200);
    assert_eq!(c.whoami(&token).status, 200);
    assert_eq!(c.login("alan", "wrong-secret-pw-42").status, 401);
    // A password in a malformed body and in a body of the wrong type.
    let bad = c.post_raw(
        "/v1/login",
        None,
        "application/json",
        br#"{"username":"alan","password":"alan-password""#.to_vec(),
    );
    assert_eq!(bad.status, 400);
    let bad = c.post_raw(
        "/v1/login",
        None,
        "text/plain",
        br#"{"username":"alan","password":"alan-password"}"#.to_vec(),
    );
    assert_eq!(bad.status, 415);
    // One id per store: both variants log into the same process-wide capture.
    let request_id = format!("log-test-authorize-{store:?}");
    let tagged = c.run(
        c.request(reqwest::Method::POST, "/v1/authorize")
            .bearer_auth(&session)
            .header("x-request-id", &request_id)
            .json(&json!({"action": "models:view", "model": "fraud-dev"})),
    );
    assert_eq!(tagged.status, 200);
    assert_eq!(tagged.header("x-request-id"), Some(request_id.as_str()));
    assert_eq!(c.logout(&session).status, 204);

    let logs = captured();
    for secret in [
        "alan-password",
        "wrong-secret-pw-42",
        session.as_str(),
        token.as_str(),
        &session[4..],
        &token[17..81],
    ] {
        assert!(!logs.contains(secret), "a credential leaked into the logs");
    }
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&format!("request_id={request_id}")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = lines[0];
    for field in [
        "stagegate::access",
        "method=POST",
        "route=/v1/authorize",
        "status=200",
        "latency_us=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}
