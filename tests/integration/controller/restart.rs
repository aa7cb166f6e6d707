//! Crash between "pending in store" and "Secret created" (and just after):
//! the restarted controller discards or completes the pending key.

use super::*;
use stagegate::store::KeyState;

const TOKEN: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: bot, namespace: team}
spec: {role: Admin, validity: 30d}
"#;

fn setup() -> Cluster {
    let c = Cluster::start();
    let f = c.dir.path().join("token.yaml");
    std::fs::write(&f, TOKEN).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    c
}

fn secret_key_id(c: &Cluster) -> Option<String> {
    let out = c
        .server
        .kubectl(&["get", "secret", "bot-token", "-n", "team", "-o", "json"]);
    if !out.success() {
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v.pointer("/metadata/annotations/stagegate.dev~1key-id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn token_status(c: &Cluster) -> Value {
    c.get_json(&["apitoken", "bot", "-n", "team"])
}

#[test]
fn crash_before_the_secret_is_created_discards_the_pending_key() {
    let c = setup();
    let mut ctl = c.controller("ctrl-r", &[("STAGEGATE_FAILPOINT", "before-secret-create")]);
    let st = ctl.wait_exit(Duration::from_secs(30));
    assert!(!st.success());
    let state = c.store();
    let pending: Vec<_> = state.token_keys.values().collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, KeyState::Pending);
    let old = pending[0].key_id.clone();
    assert!(secret_key_id(&c).is_none());

    let ctl = c.controller("ctrl-r", &[]);
    let t = wait_for(30, "token Active", Some(&ctl), || {
        let t = token_status(&c);
        (t["status"]["phase"] == "Active").then_some(t)
    });
    let new = t["status"]["keyId"].as_str().unwrap().to_string();
    assert_ne!(new, old, "the undelivered key is never used");
    assert_eq!(secret_key_id(&c).as_deref(), Some(new.as_str()));
    let keys = c.store().token_keys;
    assert!(!keys.contains_key(&old), "pending key discarded");
    assert_eq!(keys[&new].state, KeyState::Issued);
    c.check_rbac();
}

#[test]
fn crash_after_the_secret_is_created_completes_the_pending_key() {
    let c = setup();
    let mut ctl = c.controller("ctrl-r", &[("STAGEGATE_FAILPOINT", "after-secret-create")]);
    assert!(!ctl.wait_exit(Duration::from_secs(30)).success());
    let delivered = secret_key_id(&c).expect("Secret created before the crash");
    assert_eq!(c.store().token_keys[&delivered].state, KeyState::Pending);

    c.clear_log();
    let ctl = c.controller("ctrl-r", &[]);
    let t = wait_for(30, "token Active", Some(&ctl), || {
        let t = token_status(&c);
        (t["status"]["phase"] == "Active").then_some(t)
    });
    assert_eq!(
        t["status"]["keyId"],
        delivered.as_str(),
        "the delivered key is completed"
    );
    assert_eq!(c.store().token_keys[&delivered].state, KeyState::Issued);
    let creates = c
        .controller_requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource.as_deref() == Some("secrets"))
        .filter(|r| r.body.as_deref().unwrap_or("").contains("\"bot-token\""))
        .count();
    assert_eq!(creates, 0, "no second token Secret");
    c.check_rbac();
}
