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

/// Merge-patches user ada in namespace team.
fn patch_ada(c: &Cluster, patch: &str) {
    c.kubectl(&[
        "patch", "user", "ada", "-n", "team", "--type", "merge", "-p", patch,
    ]);
}

fn user_ready_for_generation(c: &Cluster, g: i64) -> bool {
    let u = c.get_json(&["user", "ada", "-n", "team"]);
    u.pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        == Some(g)
}

/// A cluster with user ada in namespace team, and controller ctrl-a holding the Lease.
fn cluster_led_by_a() -> (Cluster, Controller) {
    let c = Cluster::start();
    let f = c.dir.path().join("user.yaml");
    std::fs::write(&f, USER).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    let a = c.controller("ctrl-a", &[]);
    wait_for(30, "a leads", Some(&a), || {
        (holder(&c).as_deref() == Some("ctrl-a")).then_some(())
    });
    (c, a)
}

#[test]
fn only_the_lease_holder_reconciles_and_the_other_takes_over() {
    let (c, a) = cluster_led_by_a();
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
    patch_ada(&c, r#"{"spec":{"displayName":"Ada L."}}"#);
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
    patch_ada(&c, r#"{"spec":{"email":"ada@example.com"}}"#);
    wait_for(30, "b reconciles", Some(&b), || {
        user_ready_for_generation(&c, 3).then_some(())
    });
    assert!(b.reconciles() > 0);
    c.check_rbac();
}

/// Issue 13: two replicas on one PostgreSQL store: the Lease elects the reconciler, both
/// serve the API from the shared store, and the follower takes over when the leader stops.
#[test]
fn two_replicas_share_a_postgres_store_and_hand_over() {
    let c = Cluster::start();
    let url = stagegate::store::pg::test_server::database();
    let store = Path::new(&url);
    let f = c.dir.path().join("user.yaml");
    std::fs::write(&f, USER).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
    let a = c.controller_on("ctrl-a", store, &[]);
    wait_for(30, "a leads", Some(&a), || {
        (holder(&c).as_deref() == Some("ctrl-a")).then_some(())
    });
    wait_for(30, "ada reconciled by a", Some(&a), || {
        user_ready_for_generation(&c, 1).then_some(())
    });
    let b = c.controller_on("ctrl-b", store, &[]);
    // Both serve the API; the follower's index comes from the shared database.
    wait_status(&a, &format!("{}/readyz", a.api_url()), None, 200);
    wait_status(&b, &format!("{}/readyz", b.api_url()), None, 200);
    let shared = stagegate::store::AnyStore::open(store).unwrap();
    assert!(
        shared.user("ada").unwrap().is_some(),
        "a wrote ada to PostgreSQL"
    );
    assert_eq!(
        b.reconciles(),
        0,
        "the follower never reconciles:\n{}",
        b.log()
    );

    assert!(a.terminate().success());
    wait_for(15, "b leads", Some(&b), || {
        (holder(&c).as_deref() == Some("ctrl-b")).then_some(())
    });
    patch_ada(&c, r#"{"spec":{"displayName":"Ada L."}}"#);
    wait_for(30, "b reconciles", Some(&b), || {
        user_ready_for_generation(&c, 2).then_some(())
    });
    assert!(b.reconciles() > 0);
    assert_eq!(
        shared.user("ada").unwrap().unwrap().display_name.as_deref(),
        Some("Ada L."),
        "b wrote to the same database"
    );
}

fn token_manifest(name: &str) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}, namespace: team}}\nspec: {{role: Admin, validity: 30d}}\n"
    )
}

fn secret_exists(c: &Cluster, name: &str) -> bool {
    c.server
        .kubectl(&["get", "secret", name, "-n", "team"])
        .success()
}

/// The leader's Lease requests hang (a partition between it and the API
/// server, its other requests unaffected): it stops reconciling and
/// delivering when its renew deadline passes, before the other replica can
/// take over, and every Secret after the hand-over comes from the new leader.
#[test]
fn a_leader_whose_lease_requests_hang_stops_delivering_before_the_other_takes_over() {
    let (c, a) = cluster_led_by_a();
    let t1 = c.dir.path().join("t1.yaml");
    std::fs::write(&t1, token_manifest("one")).unwrap();
    c.kubectl(&["apply", "-f", s(&t1)]);
    wait_for(30, "a delivers one-token", Some(&a), || {
        secret_exists(&c, "one-token").then_some(())
    });
    let b = c.controller("ctrl-b", &[]);
    wait_status(&b, &format!("{}/readyz", b.api_url()), None, 200);

    // a's Lease requests now hang for an hour; everything else it sends is served.
    c.server
        .delay_lease_requests(&a.token, Some(Duration::from_secs(3600)));
    wait_for(30, "a steps down", Some(&a), || {
        a.log()
            .contains("not renewed in time: stopped reconciling")
            .then_some(())
    });
    let stepped_down = c.server.requests().len();
    let a_reconciles = a.reconciles();
    wait_for(30, "b leads", Some(&b), || {
        (holder(&c).as_deref() == Some("ctrl-b")).then_some(())
    });
    let t2 = c.dir.path().join("t2.yaml");
    std::fs::write(&t2, token_manifest("two")).unwrap();
    c.kubectl(&["apply", "-f", s(&t2)]);
    wait_for(30, "b delivers two-token", Some(&b), || {
        secret_exists(&c, "two-token").then_some(())
    });

    let log = c.server.requests();
    let writes_by = |token: &str, from: usize| -> Vec<String> {
        log[from..]
            .iter()
            .filter(|r| r.token.as_deref() == Some(token))
            .filter(|r| r.resource.as_deref() == Some("secrets"))
            .filter(|r| matches!(r.verb.as_str(), "create" | "delete"))
            .map(|r| format!("{} {}", r.verb, r.path))
            .collect()
    };
    // b's first Lease write (its takeover) comes after a stopped.
    let takeover = log
        .iter()
        .position(|r| {
            r.token.as_deref() == Some(b.token.as_str())
                && r.resource.as_deref() == Some("leases")
                && matches!(r.verb.as_str(), "update" | "create")
                && r.status < 300
        })
        .expect("b wrote the Lease");
    assert!(
        takeover >= stepped_down,
        "b took over before a stepped down"
    );
    assert!(
        writes_by(&a.token, stepped_down).is_empty(),
        "a wrote Secrets after stepping down: {:#?}",
        writes_by(&a.token, stepped_down)
    );
    assert_eq!(
        writes_by(&b.token, takeover),
        ["create /api/v1/namespaces/team/secrets"]
    );
    assert_eq!(a.reconciles(), a_reconciles, "a reconciles no more");
    c.check_rbac();
}
