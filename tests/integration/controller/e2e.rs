//! The examples through the controller: everything Ready as in directory
//! mode, Secrets written once, then a day of changes made with kubectl.

use super::*;
use crate::support;
use serde_json::Value;
use stagegate::store::KeyState;
use std::collections::BTreeMap;

type Outcomes = BTreeMap<(String, String), (bool, String, Option<String>)>;

/// Outcomes of `stagegate apply --dir examples` (directory mode) for comparison.
fn directory_outcomes(dir: &Path) -> Outcomes {
    let secrets = dir.join("dir-secrets/ml-platform");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(
        secrets.join("maria-password.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: maria-password, namespace: ml-platform}\nstringData: {password: correct-horse-battery}\n",
    )
    .unwrap();
    let out = support::run(&[
        "apply",
        "--dir",
        "examples",
        "--store",
        s(&dir.join("dir-store.db")),
        "--secrets-dir",
        s(&dir.join("dir-secrets")),
        "--argon2-memory-kib",
        "8",
        "--argon2-iterations",
        "1",
        "--output",
        "json",
    ]);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("apply output ({e}): {}", support::stderr(&out)));
    // `kubectl apply -f examples` is not recursive: examples/tenants/ is directory mode's only.
    list.iter()
        .filter(|o| o["namespace"] == "ml-platform")
        .map(|o| {
            (
                (
                    o["kind"].as_str().unwrap().to_string(),
                    o["name"].as_str().unwrap().to_string(),
                ),
                (
                    o["ready"].as_bool().unwrap(),
                    o["reason"].as_str().unwrap().to_string(),
                    o["phase"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

fn cluster_outcomes(items: &[Value]) -> Outcomes {
    items
        .iter()
        .map(|o| {
            let r = ready(o).cloned().unwrap_or_default();
            (
                (
                    o["kind"].as_str().unwrap().to_string(),
                    o["metadata"]["name"].as_str().unwrap().to_string(),
                ),
                (
                    r["status"] == "True",
                    r["reason"].as_str().unwrap_or_default().to_string(),
                    o.pointer("/status/phase")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ),
            )
        })
        .collect()
}

fn items(c: &Cluster) -> Vec<Value> {
    c.get_json(&[ALL_KINDS, "-n", "ml-platform"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn get(c: &Cluster, kind: &str, name: &str) -> Value {
    c.get_json(&[kind, name, "-n", "ml-platform"])
}

/// Waits until `kind/name` has observed its generation and `pred` holds.
fn wait_obj(
    c: &Cluster,
    ctl: &Controller,
    kind: &str,
    name: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(30, &format!("{kind} {name}"), Some(ctl), || {
        let o = get(c, kind, name);
        (observed(&o) && pred(&o)).then_some(o)
    })
}

fn events_for(c: &Cluster, name: &str) -> Vec<String> {
    let ev = c.get_json(&["events.events.k8s.io", "-n", "ml-platform"]);
    ev["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

fn secret(c: &Cluster, name: &str) -> Option<Value> {
    let out = c
        .server
        .kubectl(&["get", "secret", name, "-n", "ml-platform", "-o", "json"]);
    out.success()
        .then(|| serde_json::from_str(&out.stdout).unwrap())
}

fn creates_of_secrets(log: &[RecordedRequest]) -> Vec<String> {
    log.iter()
        .filter(|r| r.verb == "create" && r.resource.as_deref() == Some("secrets"))
        .filter(|r| !r.user_agent.as_deref().unwrap_or("").starts_with("kubectl"))
        .map(|r| {
            r.body_json()
                .and_then(|b| {
                    b.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default()
        })
        .collect()
}

/// The controller serves health, readiness, metrics and the identity API: the
/// token it delivered in a Secret authenticates at `/v1/whoami`.
fn serves_the_api(ctl: &Controller, token_secret: &Value) {
    use base64::Engine;
    let api = ctl.api_url();
    wait_status(ctl, &format!("{api}/healthz"), None, 200);
    // Ready once the first reconcile is in the store and the index.
    wait_status(ctl, &format!("{api}/readyz"), None, 200);
    let metrics = wait_status(ctl, &format!("{}/metrics", ctl.metrics_url()), None, 200);
    for family in ["stagegate_reconciles", "stagegate_leader 1"] {
        assert!(
            metrics.contains(family),
            "/metrics lacks {family}:\n{metrics}"
        );
    }
    let encoded = token_secret["data"]["token"]
        .as_str()
        .expect("token in the Secret");
    let token = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("Secret data is base64");
    let token = String::from_utf8(token).expect("token is text");
    let me = wait_status(ctl, &format!("{api}/v1/whoami"), Some(&token), 200);
    let me: Value = serde_json::from_str(&me).expect("whoami is JSON");
    assert_eq!(me["name"], "fraud-ci-deployer", "{me}");
    let (status, _) =
        http_get(&format!("{api}/v1/whoami"), Some("sgt_not_a_token")).expect("API answers");
    assert_eq!(status, 401);
}

#[test]
fn examples_reconcile_like_directory_mode_and_follow_kubectl_changes() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller("ctrl-a", &[]);

    // Every object observed, with the outcome directory mode gives.
    let expected = directory_outcomes(c.dir.path());
    let all = wait_for(60, "every object observed", Some(&ctl), || {
        let it = items(&c);
        (it.len() == expected.len() && it.iter().all(observed)).then_some(it)
    });
    assert_eq!(cluster_outcomes(&all), expected);
    assert!(
        all.iter().all(|o| ready(o).unwrap()["status"] == "True"),
        "every example is Ready"
    );
    for o in &all {
        let r = ready(o).unwrap();
        assert_eq!(r["observedGeneration"], o["metadata"]["generation"]);
        assert!(r["lastTransitionTime"].is_string());
        if o["kind"] != "ModelStageRequest" {
            let fin = o
                .pointer("/metadata/finalizers")
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                fin,
                serde_json::json!(["stagegate.dev/cleanup"]),
                "{}",
                o["metadata"]["name"]
            );
        }
    }

    // Token Secrets: created once, owned, labelled, annotated with the key id.
    let token = get(&c, "apitoken", "fraud-ci-deployer");
    let key_id = token["status"]["keyId"].as_str().unwrap().to_string();
    let sec = secret(&c, "fraud-ci-deployer-token").expect("token Secret");
    assert_eq!(
        sec["metadata"]["annotations"]["stagegate.dev/key-id"],
        key_id.as_str()
    );
    assert_eq!(
        sec["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "stagegate"
    );
    assert_eq!(
        sec["metadata"]["ownerReferences"][0]["uid"],
        token["metadata"]["uid"]
    );
    for k in ["apiKey", "password", "token"] {
        assert!(sec["data"][k].is_string(), "Secret has {k}");
    }
    serves_the_api(&ctl, &sec);
    let mut creates = creates_of_secrets(&c.server.requests());
    creates.sort();
    assert_eq!(
        creates,
        [
            "acme-model-monitor-credentials",
            "ada-password",
            "alan-password",
            "anna-password",
            "dan-password",
            "dora-password",
            "fraud-ci-deployer-token",
            "grace-invitation"
        ]
    );
    let state = c.store();
    assert_eq!(state.users.len(), 7);
    assert!(state
        .token_keys
        .values()
        .all(|k| k.state == KeyState::Issued));
    assert_eq!(state.models.len(), 2);
    assert!(events_for(&c, "fraud-ci-deployer").contains(&"Issued".to_string()));

    // A reconcile with nothing new writes nothing.
    std::thread::sleep(Duration::from_millis(800));
    c.clear_log();
    let before = ctl.reconciles();
    c.kubectl(&[
        "annotate",
        "user",
        "ada",
        "-n",
        "ml-platform",
        "example.com/touched=yes",
    ]);
    wait_for(20, "a reconcile after the annotation", Some(&ctl), || {
        (ctl.reconciles() > before).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let w = writes(&c.controller_requests());
    assert!(w.is_empty(), "no write expected, got {w:#?}");
    c.check_rbac();
    // Secrets are listed and watched by metadata only: no Secret's data in the cluster is
    // sent to (or cached by) the controller, as a real API server does for this Accept header.
    let wholesale: Vec<String> = c
        .controller_requests()
        .iter()
        .filter(|r| r.resource.as_deref() == Some("secrets"))
        .filter(|r| r.verb == "list" || r.verb == "watch")
        .filter(|r| {
            !r.accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
        })
        .map(|r| format!("{} {}?{} accept {:?}", r.verb, r.path, r.query, r.accept))
        .collect();
    assert!(
        wholesale.is_empty(),
        "Secrets listed or watched with their data: {wholesale:#?}"
    );

    // A binding's role changes.
    c.kubectl(&[
        "patch",
        "accessbinding",
        "maria-manager-acme",
        "-n",
        "ml-platform",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"role":"Admin"}}"#,
    ]);
    wait_obj(&c, &ctl, "accessbinding", "maria-manager-acme", |o| {
        o["metadata"]["generation"] == 2
    });
    let b = c
        .store()
        .bindings
        .into_iter()
        .find(|b| b.username == "maria")
        .unwrap();
    assert_eq!(format!("{:?}", b.role), "Admin");

    // A user is revoked.
    c.kubectl(&[
        "patch",
        "user",
        "alan",
        "-n",
        "ml-platform",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"state":"Revoked"}}"#,
    ]);
    wait_obj(&c, &ctl, "user", "alan", |o| {
        o["status"]["phase"] == "Revoked"
    });
    assert_eq!(format!("{:?}", c.store().users["alan"].state), "Revoked");
    wait_for(10, "Revoked Event", Some(&ctl), || {
        events_for(&c, "alan")
            .contains(&"Revoked".to_string())
            .then_some(())
    });

    // A token is rotated: a new key in a new Secret, the old key revoked.
    c.kubectl(&[
        "patch",
        "apitoken",
        "fraud-ci-deployer",
        "-n",
        "ml-platform",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"rotation":1}}"#,
    ]);
    let rotated = wait_obj(&c, &ctl, "apitoken", "fraud-ci-deployer", |o| {
        o["status"]["keyId"].as_str().is_some_and(|k| k != key_id)
    });
    let new_key = rotated["status"]["keyId"].as_str().unwrap();
    let sec = secret(&c, "fraud-ci-deployer-token").expect("rotated Secret");
    assert_eq!(
        sec["metadata"]["annotations"]["stagegate.dev/key-id"],
        new_key
    );
    let keys = c.store().token_keys;
    assert_eq!(keys[&key_id].revoked_reason.as_deref(), Some("Rotated"));
    assert_eq!(keys[new_key].state, KeyState::Issued);
    wait_for(10, "Rotated Event", Some(&ctl), || {
        events_for(&c, "fraud-ci-deployer")
            .contains(&"Rotated".to_string())
            .then_some(())
    });

    // A delivered Secret is deleted: reported, not re-issued.
    c.clear_log();
    c.kubectl(&[
        "delete",
        "secret",
        "acme-model-monitor-credentials",
        "-n",
        "ml-platform",
    ]);
    let missing = wait_obj(&c, &ctl, "apitoken", "acme-model-monitor", |o| {
        o["status"]["phase"] == "SecretMissing"
    });
    assert_eq!(ready(&missing).unwrap()["status"], "False");
    assert_eq!(ready(&missing).unwrap()["reason"], "SecretMissing");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        secret(&c, "acme-model-monitor-credentials").is_none(),
        "not re-issued"
    );
    assert!(creates_of_secrets(&c.server.requests()).is_empty());
    wait_for(10, "SecretMissing Event", Some(&ctl), || {
        events_for(&c, "acme-model-monitor")
            .contains(&"SecretMissing".to_string())
            .then_some(())
    });

    // A user is deleted: its store entry goes, then the object, then (GC) its Secret.
    c.kubectl(&["delete", "user", "dan", "-n", "ml-platform", "--wait=false"]);
    wait_for(30, "user dan gone", Some(&ctl), || {
        let out = c
            .server
            .kubectl(&["get", "user", "dan", "-n", "ml-platform"]);
        (!out.success()).then_some(())
    });
    assert!(!c.store().users.contains_key("dan"));
    wait_for(10, "dan-password collected", Some(&ctl), || {
        secret(&c, "dan-password").is_none().then_some(())
    });

    c.check_rbac();
    let st = ctl.terminate();
    assert!(st.success(), "graceful exit");
    c.check_rbac();
}
