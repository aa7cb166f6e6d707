//! Two objects, one Secret: every Secret stagegate writes or reads has one declaring object
//! per namespace; a second claimant is `SecretNameConflict`, the holder keeps the Secret.

use super::{error_at, on, outcome, token, user, Dir, OneShot};

#[test]
fn two_objects_one_secret_are_refused_by_validate() {
    let d = Dir::new();
    // A token whose default Secret (build-token) another token names explicitly.
    d.write("1-build.yaml", &token("ml-platform", "build", ""));
    d.write(
        "2-deploy.yaml",
        &token("ml-platform", "deploy", "  secretName: build-token\n"),
    );
    // A User reading another User's generated password.
    d.write("3-carol.yaml", &user("ml-platform", "carol", ""));
    d.write(
        "4-bob.yaml",
        &user(
            "ml-platform",
            "bob",
            "  passwordSecretRef: {name: carol-password, key: password}\n",
        ),
    );
    // Two Users reading one key of one Secret: one credential, two identities.
    d.write(
        "5-erin.yaml",
        &user(
            "ml-platform",
            "erin",
            "  passwordSecretRef: {name: team-passwords, key: shared}\n",
        ),
    );
    d.write(
        "6-frank.yaml",
        &user(
            "ml-platform",
            "frank",
            "  passwordSecretRef: {name: team-passwords, key: shared}\n",
        ),
    );
    // A token delivering over a Secret a User reads.
    d.write(
        "7-sync.yaml",
        &token("ml-platform", "sync", "  secretName: team-passwords\n"),
    );
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    let hit = error_at(&diags, "SecretNameConflict", "deploy", "spec.secretName");
    assert_eq!(hit["line"], 10, "{hit:#}");
    let msg = hit["message"].as_str().unwrap();
    assert!(
        msg.contains("ml-platform/build-token") && msg.contains("ApiToken ml-platform/build"),
        "{msg}"
    );
    let hit = error_at(
        &diags,
        "SecretNameConflict",
        "bob",
        "spec.passwordSecretRef.name",
    );
    assert_eq!(hit["line"], 8, "{hit:#}");
    assert!(
        hit["message"]
            .as_str()
            .unwrap()
            .contains("User ml-platform/carol"),
        "{hit:#}"
    );
    error_at(
        &diags,
        "SecretNameConflict",
        "frank",
        "spec.passwordSecretRef.name",
    );
    error_at(&diags, "SecretNameConflict", "sync", "spec.secretName");
    // The first claimant of each Secret keeps it.
    for holder in ["build", "carol", "erin"] {
        assert!(
            on(&diags, "SecretNameConflict", holder).is_empty(),
            "{holder}: {diags:#?}"
        );
    }
}

#[test]
fn two_objects_one_secret_only_when_they_truly_share_it() {
    let d = Dir::new();
    // Different keys of one Secret: each User has its own password.
    d.write(
        "a.yaml",
        &user(
            "ml-platform",
            "erin",
            "  passwordSecretRef: {name: team-passwords, key: erin}\n",
        ),
    );
    d.write(
        "b.yaml",
        &user(
            "ml-platform",
            "frank",
            "  passwordSecretRef: {name: team-passwords, key: frank}\n",
        ),
    );
    // One Secret name in two namespaces: two Secrets.
    d.write(
        "c.yaml",
        &token("ml-platform", "ci", "  secretName: ci-key\n"),
    );
    d.write(
        "d.yaml",
        &token("research", "ci-research", "  secretName: ci-key\n"),
    );
    let (_, diags) = d.validate();
    assert!(
        !diags.iter().any(|x| x["reason"] == "SecretNameConflict"),
        "{diags:#?}"
    );
}

#[test]
fn two_objects_one_secret_the_delivered_holder_keeps_it_in_apply() {
    let d = Dir::new();
    d.write("users.yaml", &user("ml-platform", "grace", ""));
    let (code, outcomes, err) = d.apply_json();
    assert_eq!(code, 0, "{outcomes:#?}{err}");
    let delivered = d
        .secret("ml-platform", "grace-password")
        .expect("delivered");

    // A token named after grace's Secret, in a file that sorts first: refused, and her
    // delivered password stays as it was.
    d.write(
        "a-tokens.yaml",
        &token("ml-platform", "nightly", "  secretName: grace-password\n"),
    );
    let (code, outcomes, _) = d.apply_json();
    assert_eq!(code, 1);
    let o = outcome(&outcomes, "ApiToken", "nightly");
    assert_eq!(o["ready"], false, "{o:#}");
    assert!(
        o["message"]
            .as_str()
            .unwrap()
            .contains("SecretNameConflict"),
        "{o:#}"
    );
    assert_eq!(outcome(&outcomes, "User", "grace")["ready"], true);
    assert_eq!(
        d.secret("ml-platform", "grace-password").unwrap(),
        delivered
    );
    // A second apply changes nothing either.
    d.apply_json();
    assert_eq!(
        d.secret("ml-platform", "grace-password").unwrap(),
        delivered
    );
}

#[test]
fn two_objects_one_secret_the_store_holder_wins_over_file_order() {
    let d = Dir::new();
    // The token is declared first and delivers to zed-password.
    d.write(
        "z-tokens.yaml",
        &token("ml-platform", "export", "  secretName: zed-password\n"),
    );
    let (code, _, err) = d.apply_json();
    assert_eq!(code, 0, "{err}");
    let delivered = d
        .secret("ml-platform", "zed-password")
        .expect("token delivered");

    // User zed arrives later in a file that sorts before the token's: by file order alone
    // validate would keep zed; the store says the token holds the Secret.
    d.write("a-users.yaml", &user("ml-platform", "zed", ""));
    let (code, outcomes, _) = d.apply_json();
    assert_eq!(code, 1);
    let zed = outcome(&outcomes, "User", "zed");
    assert_eq!(zed["ready"], false, "{zed:#}");
    assert!(
        zed["message"]
            .as_str()
            .unwrap()
            .contains("SecretNameConflict"),
        "{zed:#}"
    );
    let export = outcome(&outcomes, "ApiToken", "export");
    assert_eq!(export["ready"], true, "{export:#}");
    assert_eq!(d.secret("ml-platform", "zed-password").unwrap(), delivered);

    // Without the store, validate decides by file order: the User comes first.
    let (_, diags) = d.validate();
    error_at(&diags, "SecretNameConflict", "export", "spec.secretName");
}
