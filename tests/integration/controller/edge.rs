//! Edge cases: CRDs missing, a Secret stagegate did not write, password
//! resets through a referenced Secret, and a malformed object.

use super::*;
use crate::kube_api::KubeApiServer;

#[test]
fn missing_crds_stop_the_controller_with_the_install_command() {
    let server = KubeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    let out = crate::support::stagegate()
        .args(["run", "--kube", "--store"])
        .arg(dir.path().join("store.db"))
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run stagegate");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CRDs are not installed"), "{err}");
    assert!(err.contains("stagegate crds | kubectl apply -f -"), "{err}");
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: Secret
metadata: {name: bot-token, namespace: team}
stringData: {note: "somebody else's"}
---
apiVersion: v1
kind: Secret
metadata: {name: ada-pw, namespace: team}
stringData: {password: first-password}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: bot, namespace: team}
spec: {role: Admin, validity: 30d}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: team}
spec: {passwordSecretRef: {name: ada-pw, key: password}}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: bob, namespace: team}
spec: {passwordSecretRef: {name: bob-pw, key: password}}
"#;

fn get(c: &Cluster, kind: &str, name: &str) -> Value {
    c.get_json(&[kind, name, "-n", "team"])
}

fn reason(v: &Value) -> String {
    ready(v)
        .and_then(|r| r["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn foreign_secrets_conflict_and_referenced_passwords_reset() {
    let c = Cluster::start();
    let f = c.dir.path().join("objects.yaml");
    std::fs::write(&f, OBJECTS).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    let ctl = c.controller("ctrl-e", &[]);

    // A Secret stagegate did not write is never overwritten.
    let bot = wait_for(30, "bot SecretConflict", Some(&ctl), || {
        let v = get(&c, "apitoken", "bot");
        (reason(&v) == "SecretConflict").then_some(v)
    });
    assert_eq!(ready(&bot).unwrap()["status"], "False");
    let sec = c.get_json(&["secret", "bot-token", "-n", "team"]);
    assert!(sec["metadata"]["annotations"]
        .get("stagegate.dev/key-id")
        .is_none());
    assert!(sec["data"].get("token").is_none(), "untouched");
    wait_for(10, "SecretConflict Event", Some(&ctl), || {
        event_reasons(&c, "bot")
            .contains(&"SecretConflict".to_string())
            .then_some(())
    });

    // A malformed object (the API server accepted what our types reject) is reported and skipped.
    let bad = c.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: zed, namespace: team}\nspec: {state: Sleeping}\n",
    )
    .unwrap();
    let applied = c.server.kubectl(&["apply", "-f", s(&bad)]);
    if applied.success() {
        wait_for(20, "SchemaViolation Event", Some(&ctl), || {
            event_reasons(&c, "zed")
                .contains(&"SchemaViolation".to_string())
                .then_some(())
        });
        assert!(!c.store().users.contains_key("zed"));
    }

    // A referenced Secret that does not exist.
    wait_for(30, "bob PasswordSecretMissing", Some(&ctl), || {
        (reason(&get(&c, "user", "bob")) == "PasswordSecretMissing").then_some(())
    });

    // Changing the referenced Secret's data is a password reset.
    wait_for(30, "ada Ready", Some(&ctl), || {
        (reason(&get(&c, "user", "ada")) == "Ready").then_some(())
    });
    let before = c.store().users["ada"].password_fingerprint.clone();
    assert!(before.is_some());
    let pw = c.dir.path().join("ada-pw.yaml");
    std::fs::write(
        &pw,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ada-pw, namespace: team}\nstringData: {password: second-password}\n",
    )
    .unwrap();
    c.kubectl(&["apply", "-f", s(&pw)]);
    wait_for(30, "ada's password reset", Some(&ctl), || {
        (c.store().users["ada"].password_fingerprint != before).then_some(())
    });
    c.check_rbac();
}

fn event_reasons(c: &Cluster, name: &str) -> Vec<String> {
    let ev = c.get_json(&["events.events.k8s.io", "-n", "team"]);
    ev["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

const TWO_KINDS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: bot, namespace: team}
spec: {role: Admin, validity: 30d}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: team}
spec: {displayName: Ada}
"#;

/// A finalizer patch refused for one kind (the chart's rule narrowed) is that
/// object's failure: it gets a Warning Event, everything else reconciles and
/// the controller stays ready.
#[test]
fn a_refused_finalizer_patch_is_reported_on_its_object_only() {
    let c = Cluster::start();
    c.edit_rbac(|docs| {
        let role = docs
            .iter_mut()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("the chart's ClusterRole");
        let rule = role["rules"]
            .as_array_mut()
            .and_then(|rules| {
                rules.iter_mut().find(|r| {
                    r["verbs"] == serde_json::json!(["patch"]) && r["resources"][0] == "users"
                })
            })
            .expect("the finalizer rule");
        let resources = rule["resources"].as_array_mut().expect("resources");
        resources.retain(|r| r != "apitokens");
    });
    let f = c.dir.path().join("objects.yaml");
    std::fs::write(&f, TWO_KINDS).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    let ctl = c.controller("ctrl-f", &[]);

    wait_for(30, "FinalizerFailed Event on bot", Some(&ctl), || {
        event_reasons(&c, "bot")
            .contains(&"FinalizerFailed".to_string())
            .then_some(())
    });
    let ada = wait_for(30, "ada Ready with its finalizer", Some(&ctl), || {
        let v = get(&c, "user", "ada");
        (reason(&v) == "Ready" && v["metadata"]["finalizers"][0] == "stagegate.dev/cleanup")
            .then_some(v)
    });
    assert!(observed(&ada));
    let refused = c.forbidden();
    assert!(
        refused
            .iter()
            .all(|r| r.resource.as_deref() == Some("apitokens")),
        "{refused:#?}"
    );
    assert!(!refused.is_empty());
    // One object's failure is not the controller's: it stays ready.
    wait_status(&ctl, &format!("{}/readyz", ctl.api_url()), None, 200);
    assert!(
        !ctl.log().contains("reconcile failed"),
        "{}",
        ctl.log_tail()
    );
}
