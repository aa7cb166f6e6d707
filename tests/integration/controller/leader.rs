//! Two controllers against one server: only the Lease holder reconciles; the
//! other takes over when the first stops.

use super::*;

const USER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: team}
spec: {displayName: Ada}
"#;

fn holder(c: &Cluster) -> Option<String> {
    let out = c.server.kubectl(&[
        "get",
        "lease",
        "stagegate-leader",
        "-n",
        "stagegate-system",
        "-o",
        "json",
    ]);
    if !out.success() {
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout).ok()?;
    v.pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn user_ready_for_generation(c: &Cluster, g: i64) -> bool {
    let u = c.get_json(&["user", "ada", "-n", "team"]);
    u.pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        == Some(g)
}

#[test]
fn only_the_lease_holder_reconciles_and_the_other_takes_over() {
    let c = Cluster::start();
    let f = c.dir.path().join("user.yaml");
    std::fs::write(&f, USER).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);

    let a = c.controller("ctrl-a", &[]);
    wait_for(30, "a leads", Some(&a), || {
        (holder(&c).as_deref() == Some("ctrl-a")).then_some(())
    });
    wait_for(30, "ada reconciled by a", Some(&a), || {
        user_ready_for_generation(&c, 1).then_some(())
    });
    // No global Admin is declared: the bootstrap administrator's password is delivered once, in the controller's namespace.
    let boot = c.get_json(&[
        "secret",
        "stagegate-bootstrap-admin",
        "-n",
        "stagegate-system",
    ]);
    assert_eq!(
        boot["metadata"]["annotations"]["stagegate.dev/managed-by"],
        "stagegate"
    );
    assert!(boot["data"]["password"].is_string());
    assert!(c.store().users["admin"].bootstrap);
    let b = c.controller("ctrl-b", &[]);
    // The follower serves the API too, ready once it sees the leader's reconcile in the store.
    wait_status(&b, &format!("{}/readyz", b.api_url()), None, 200);
    let metrics = wait_status(&b, &format!("{}/metrics", b.metrics_url()), None, 200);
    assert!(metrics.contains("stagegate_leader 0"), "{metrics}");
    std::thread::sleep(Duration::from_secs(4));
    c.kubectl(&[
        "patch",
        "user",
        "ada",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"displayName":"Ada L."}}"#,
    ]);
    wait_for(30, "change reconciled", Some(&a), || {
        user_ready_for_generation(&c, 2).then_some(())
    });
    assert_eq!(holder(&c).as_deref(), Some("ctrl-a"));
    assert_eq!(
        b.reconciles(),
        0,
        "the follower never reconciles:\n{}",
        b.log()
    );
    assert!(!b.log().contains("caches synced"));

    // a stops (SIGTERM releases the Lease): b takes over and reconciles.
    assert!(a.terminate().success());
    wait_for(15, "b leads", Some(&b), || {
        (holder(&c).as_deref() == Some("ctrl-b")).then_some(())
    });
    c.kubectl(&[
        "patch",
        "user",
        "ada",
        "-n",
        "team",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"email":"ada@example.com"}}"#,
    ]);
    wait_for(30, "b reconciles", Some(&b), || {
        user_ready_for_generation(&c, 3).then_some(())
    });
    assert!(b.reconciles() > 0);
    c.check_rbac();
}
