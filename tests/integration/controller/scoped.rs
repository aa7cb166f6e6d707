//! A small change is a scoped round (issue "Scale", goal 4, Kubernetes mode): a patch of
//! one binding, a password reset, a delivered Secret someone deleted, or a new stage
//! request, is validated, planned and applied with the objects it touches, not the
//! whole organization, and reaches the store.

use super::*;

/// The "reconcile phases" lines of `log` that say the round was scoped.
fn scoped_rounds(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("reconcile phases"))
        .filter(|l| l.contains("\"scoped\":true") || l.contains("scoped=true"))
        .count()
}

/// Waits until the rounds of the first apply's own writes are done (no round for 2.5 s).
fn settle(ctl: &Controller) {
    let (mut count, mut since) = (ctl.reconciles(), Instant::now());
    wait_for(60, "no round for 2.5 s", Some(ctl), || {
        let now = ctl.reconciles();
        if now != count {
            (count, since) = (now, Instant::now());
        }
        (since.elapsed() >= Duration::from_millis(2500)).then_some(())
    });
}

#[test]
fn a_patched_binding_is_applied_by_a_scoped_round() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller_with("scoped", &c.store_path(), &["--resync", "1s"], &[]);
    let binding = |s: &StoreState| {
        s.bindings
            .iter()
            .find(|b| {
                b.owner
                    .as_ref()
                    .is_some_and(|o| o.key.name == "maria-manager-acme")
            })
            .map(|b| format!("{:?}", b.role))
    };
    wait_for(60, "maria's binding stored", Some(&ctl), || {
        binding(&c.store()).filter(|r| r == "Manager")
    });
    settle(&ctl);
    let before = scoped_rounds(&ctl.log());
    c.kubectl(&[
        "patch",
        "accessbinding",
        "maria-manager-acme",
        "-n",
        "ml-platform",
        "--type=merge",
        "-p",
        r#"{"spec":{"role":"Analyst"}}"#,
    ]);
    wait_for(30, "the patched role stored", Some(&ctl), || {
        binding(&c.store()).filter(|r| r == "Analyst")
    });
    wait_for(10, "a scoped round logged", Some(&ctl), || {
        (scoped_rounds(&ctl.log()) > before).then_some(())
    });
}

#[test]
fn a_password_reset_and_a_deleted_token_secret_are_scoped_rounds() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller_with("scoped-secrets", &c.store_path(), &["--resync", "1s"], &[]);
    let fingerprint = |s: &StoreState| {
        s.users
            .get("maria")
            .and_then(|u| u.password_fingerprint.clone())
    };
    let first = wait_for(60, "maria's password stored", Some(&ctl), || {
        fingerprint(&c.store())
    });
    settle(&ctl);
    // An administrator resets maria's password: the Secret her User references changes.
    let before = scoped_rounds(&ctl.log());
    let pw = c.dir.path().join("maria-password-reset.yaml");
    std::fs::write(
        &pw,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: maria-password, namespace: ml-platform}\nstringData: {password: another-correct-horse}\n",
    )
    .expect("write the reset Secret");
    c.kubectl(&["apply", "-f", s(&pw)]);
    wait_for(30, "the reset password stored", Some(&ctl), || {
        fingerprint(&c.store()).filter(|f| *f != first)
    });
    wait_for(10, "a scoped round logged", Some(&ctl), || {
        (scoped_rounds(&ctl.log()) > before).then_some(())
    });
    settle(&ctl);
    // Someone deletes a token's delivered Secret: the token says so, from a scoped round.
    let before = scoped_rounds(&ctl.log());
    c.kubectl(&[
        "delete",
        "secret",
        "fraud-ci-deployer-token",
        "-n",
        "ml-platform",
    ]);
    wait_for(
        30,
        "the token reports its Secret missing",
        Some(&ctl),
        || {
            let t = c.get_json(&["apitoken", "fraud-ci-deployer", "-n", "ml-platform"]);
            (t["status"]["phase"] == "SecretMissing").then_some(())
        },
    );
    wait_for(10, "a scoped round logged", Some(&ctl), || {
        (scoped_rounds(&ctl.log()) > before).then_some(())
    });
}

#[test]
fn a_new_stage_request_is_decided_by_a_scoped_round() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller_with("scoped", &c.store_path(), &["--resync", "1s"], &[]);
    let key = |name: &str| ("ml-platform".to_string(), name.to_string());
    wait_for(60, "the examples' requests decided", Some(&ctl), || {
        c.store()
            .requests
            .contains_key(&key("churn-model-003-reject"))
            .then_some(())
    });
    settle(&ctl);
    let before = scoped_rounds(&ctl.log());
    // churn-model was sent back to Dev: dan asks for Staging again (its other requests
    // are other objects, in other buckets).
    let file = c.dir.path().join("churn-model-004.yaml");
    std::fs::write(
        &file,
        "apiVersion: stagegate.dev/v1alpha1\nkind: ModelStageRequest\nmetadata: {name: churn-model-004-staging, namespace: ml-platform}\nspec: {model: churn-model, scope: {customer: acme, project: churn}, from: Dev, to: Staging, requestedBy: dan}\n",
    )
    .expect("write the request");
    c.kubectl(&["apply", "-f", s(&file)]);
    let decided = wait_for(30, "the new request decided", Some(&ctl), || {
        c.store()
            .requests
            .get(&key("churn-model-004-staging"))
            .cloned()
    });
    assert_eq!(decided.from.to_string(), "Dev");
    wait_for(10, "a scoped round logged", Some(&ctl), || {
        (scoped_rounds(&ctl.log()) > before).then_some(())
    });
}
