//! The chart's namespaced mode under enforced RBAC: the controller watches
//! `team` only, while its Lease and the bootstrap administrator's Secret live
//! in the release namespace, which it does not watch. Every scenario runs as
//! the chart's ServiceAccount: first run with the bootstrap administrator, a
//! declared global Admin disabling it, its re-creation (which deletes the
//! previous Secret), rotation, a Secret conflict, deletion of each kind and
//! a leader hand-over. A copy of the chart's Role without the rule on the
//! bootstrap Secret makes that scenario fail with 403, and only that one.

use super::*;

const WATCHED: &str = "team";

const OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: ada-pw, namespace: team}
stringData: {password: ada-first-password}
---
apiVersion: v1
kind: Secret
metadata: {name: taken-token, namespace: team}
stringData: {note: "somebody else's"}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: team}
spec: {passwordSecretRef: {name: ada-pw, key: password}}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: bob, namespace: team}
spec: {displayName: Bob}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: bot, namespace: team}
spec: {role: Developer, scope: {customer: acme}, validity: 30d}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: taken, namespace: team}
spec: {role: Developer, scope: {customer: acme}, validity: 30d}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: bob-dev, namespace: team}
spec: {user: bob, role: Developer, scope: {customer: acme}}
---
apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata: {name: first-deploy, namespace: team}
spec: {model: fraud, scope: {customer: acme}, from: None, to: Dev, requestedBy: bob, reason: first}
"#;

const ADA_ADMIN: &str = r#"
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: ada-admin, namespace: team}
spec: {user: ada, role: Admin}
"#;

fn namespaced() -> Cluster {
    let c = Cluster::start_with(Mode::Namespaced(vec![WATCHED.to_string()]));
    let f = c.dir.path().join("objects.yaml");
    std::fs::write(&f, OBJECTS).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    c
}

fn get(c: &Cluster, kind: &str, name: &str) -> Value {
    c.get_json(&[kind, name, "-n", WATCHED])
}

fn reason(v: &Value) -> String {
    ready(v)
        .and_then(|r| r["reason"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn gone(c: &Cluster, kind: &str, name: &str) -> bool {
    !c.server
        .kubectl(&["get", kind, name, "-n", WATCHED])
        .success()
}

/// The key id on a Secret stagegate wrote, if the Secret exists.
fn key_id(c: &Cluster, namespace: &str, name: &str) -> Option<String> {
    let out = c
        .server
        .kubectl(&["get", "secret", name, "-n", namespace, "-o", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).ok()?;
    v.pointer("/metadata/annotations/stagegate.dev~1key-id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn bootstrap_key(c: &Cluster) -> Option<String> {
    key_id(c, CONTROLLER_NAMESPACE, "stagegate-bootstrap-admin")
}

fn holder(c: &Cluster) -> Option<String> {
    let v = c.get_json(&["lease", "stagegate-leader", "-n", CONTROLLER_NAMESPACE]);
    v.pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[test]
fn namespaced_install_runs_every_scenario_under_the_rendered_roles() {
    let c = namespaced();
    let a = c.controller("ctrl-a", &[]);

    // First run: no global Admin declared, so the bootstrap administrator's
    // password goes to the unwatched release namespace.
    let first = wait_for(60, "bootstrap Secret", Some(&a), || bootstrap_key(&c));
    assert!(c.store().users["admin"].bootstrap);
    wait_for(30, "ada Ready", Some(&a), || {
        (reason(&get(&c, "user", "ada")) == "Ready").then_some(())
    });
    let bot = wait_for(30, "bot Active", Some(&a), || {
        let t = get(&c, "apitoken", "bot");
        (t["status"]["phase"] == "Active").then_some(t)
    });
    let bot_key = bot["status"]["keyId"].as_str().unwrap().to_string();
    assert_eq!(
        key_id(&c, WATCHED, "bot-token").as_deref(),
        Some(bot_key.as_str())
    );
    // A Secret stagegate did not write is a conflict, not a write.
    wait_for(30, "taken SecretConflict", Some(&a), || {
        (reason(&get(&c, "apitoken", "taken")) == "SecretConflict").then_some(())
    });
    wait_for(30, "first deploy decided", Some(&a), || {
        (get(&c, "modelstagerequest", "first-deploy")["status"]["phase"] == "Applied").then_some(())
    });

    // A declared global Admin who can log in disables the bootstrap administrator...
    let f = c.dir.path().join("ada-admin.yaml");
    std::fs::write(&f, ADA_ADMIN).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    wait_for(30, "bootstrap admin disabled", Some(&a), || {
        (format!("{:?}", c.store().users["admin"].state) == "Revoked").then_some(())
    });
    // ...and deleting that binding re-creates it: the old Secret is deleted, a new one written.
    c.kubectl(&["delete", "accessbinding", "ada-admin", "-n", WATCHED]);
    let second = wait_for(30, "bootstrap admin re-created", Some(&a), || {
        bootstrap_key(&c).filter(|k| *k != first)
    });
    assert_ne!(second, first);
    assert!(gone(&c, "accessbinding", "ada-admin"), "finalizer released");

    // Rotation replaces the token's Secret.
    c.kubectl(&[
        "patch",
        "apitoken",
        "bot",
        "-n",
        WATCHED,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"rotation":1}}"#,
    ]);
    let rotated = wait_for(30, "bot rotated", Some(&a), || {
        key_id(&c, WATCHED, "bot-token").filter(|k| *k != bot_key)
    });
    assert_eq!(
        c.store().token_keys[&rotated].state,
        stagegate::store::KeyState::Issued
    );

    // Deletion of each kind: finalizers released, store entries gone.
    for (kind, name) in [
        ("accessbinding", "bob-dev"),
        ("apitoken", "bot"),
        ("user", "bob"),
        ("modelstagerequest", "first-deploy"),
    ] {
        c.kubectl(&["delete", kind, name, "-n", WATCHED, "--wait=false"]);
        wait_for(30, &format!("{kind} {name} gone"), Some(&a), || {
            gone(&c, kind, name).then_some(())
        });
    }
    let state = c.store();
    assert!(!state.users.contains_key("bob"));
    assert!(state.bindings.iter().all(|b| b.username != "bob"));

    // Leader hand-over: b takes over when a stops, and reconciles.
    let b = c.controller("ctrl-b", &[]);
    wait_status(&b, &format!("{}/readyz", b.api_url()), None, 200);
    assert!(a.terminate().success());
    wait_for(20, "b leads", Some(&b), || {
        (holder(&c).as_deref() == Some("ctrl-b")).then_some(())
    });
    c.kubectl(&[
        "patch",
        "user",
        "ada",
        "-n",
        WATCHED,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"displayName":"Ada L."}}"#,
    ]);
    wait_for(30, "b reconciles", Some(&b), || {
        (get(&c, "user", "ada")["status"]["observedGeneration"] == 2).then_some(())
    });
    c.check_rbac();
}

#[test]
fn a_role_without_the_bootstrap_secret_rule_fails_that_scenario_with_403() {
    let c = namespaced();
    // The chart's Role in the release namespace, minus its rule on the bootstrap Secret.
    let removed = c.edit_rbac(|docs| {
        let role = docs
            .iter_mut()
            .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == CONTROLLER_NAMESPACE)
            .expect("the release namespace's Role");
        let rules = role["rules"].as_array_mut().expect("rules");
        let at = rules
            .iter()
            .position(|r| r["resourceNames"][0] == "stagegate-bootstrap-admin")
            .expect("a rule on the bootstrap Secret");
        rules.remove(at)
    });
    assert!(removed["verbs"].as_array().is_some_and(|v| !v.is_empty()));
    let ctl = c.controller("ctrl-a", &[]);

    // Everything in the watched namespace still reconciles...
    wait_for(60, "ada Ready", Some(&ctl), || {
        (reason(&get(&c, "user", "ada")) == "Ready").then_some(())
    });
    // ...but the bootstrap administrator's Secret is refused with a real 403.
    let refused = wait_for(30, "a 403 on the bootstrap Secret", Some(&ctl), || {
        c.forbidden()
            .into_iter()
            .find(|r| r.name.as_deref() == Some("stagegate-bootstrap-admin"))
    });
    assert_eq!(refused.resource.as_deref(), Some("secrets"));
    assert!(bootstrap_key(&c).is_none(), "no Secret was written");
    wait_for(30, "the failure in the log", Some(&ctl), || {
        ctl.log().contains("forbidden").then_some(())
    });
    assert!(c
        .store()
        .users
        .get("admin")
        .is_none_or(|u| u.password_hash.is_none()));
}
