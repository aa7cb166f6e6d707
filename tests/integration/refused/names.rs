//! A name becomes a path: namespaces and names are Kubernetes names, and every Secret name
//! derived from them fits the 253-character limit, or the object is refused.

use super::{error_at, outcome, token, user, Dir, OneShot};

#[test]
fn names_that_become_paths_are_invalid_names_in_validate() {
    let d = Dir::new();
    let long_ns = "n".repeat(64);
    // (namespace, User name, field at fault); each in its own file.
    let cases = [
        ("../../etc", "parent", "metadata.namespace"),
        ("team/sub", "nested", "metadata.namespace"),
        ("..", "dots", "metadata.namespace"),
        ("ML-Platform", "upper", "metadata.namespace"),
        (long_ns.as_str(), "longns", "metadata.namespace"),
        ("ml-platform", "a..b", "metadata.name"),
        ("ml-platform", "a.-b", "metadata.name"),
        ("ml-platform", "-lead", "metadata.name"),
    ];
    for (ns, name, _) in cases {
        d.write(&format!("{name}.yaml"), &user(ns, name, ""));
    }
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    for (_, name, field) in cases {
        let hit = error_at(&diags, "InvalidName", name, field);
        let file = format!("{name}.yaml");
        assert!(hit["file"].as_str().unwrap().ends_with(&file), "{hit:#}");
        let line = if field == "metadata.namespace" { 5 } else { 4 };
        assert_eq!(hit["line"], line, "{hit:#}");
    }
}

#[test]
fn names_that_become_paths_count_the_derived_secret_name() {
    let d = Dir::new();
    // 245 + "-password" = 254 characters: one too many for a Secret name.
    let user_name = "u".repeat(245);
    // 248 + "-token" = 254.
    let token_name = "t".repeat(248);
    // Exactly at the limits, and a long name with an explicit Secret: fine.
    let user_ok = "v".repeat(244);
    let token_ok = "w".repeat(247);
    let token_named = "x".repeat(253);
    d.write("u.yaml", &user("ml-platform", &user_name, ""));
    d.write("t.yaml", &token("ml-platform", &token_name, ""));
    d.write("uok.yaml", &user("ml-platform", &user_ok, ""));
    d.write("tok.yaml", &token("ml-platform", &token_ok, ""));
    d.write(
        "tnamed.yaml",
        &token("ml-platform", &token_named, "  secretName: short-secret\n"),
    );
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    let hit = error_at(&diags, "InvalidName", &user_name, "metadata.name");
    assert!(
        hit["message"].as_str().unwrap().contains("<name>-password"),
        "{hit:#}"
    );
    let hit = error_at(&diags, "InvalidName", &token_name, "metadata.name");
    assert!(
        hit["message"].as_str().unwrap().contains("<name>-token"),
        "{hit:#}"
    );
    for fine in [&user_ok, &token_ok, &token_named] {
        assert!(
            !diags
                .iter()
                .any(|x| x["name"] == fine.as_str() && x["severity"] == "error"),
            "{fine}: {diags:#?}"
        );
    }
}

#[test]
fn names_that_become_paths_never_reach_apply() {
    let d = Dir::new();
    d.write("escape.yaml", &user("../outside", "mallory", ""));
    d.write("deep.yaml", &user("a/b/c", "trudy", ""));
    d.write("ok.yaml", &user("ml-platform", "grace", ""));
    let (code, outcomes, _) = d.apply_json();
    assert_eq!(code, 1);
    for name in ["mallory", "trudy"] {
        let o = outcome(&outcomes, "User", name);
        assert_eq!(o["ready"], false, "{o:#}");
        assert!(
            o["message"].as_str().unwrap().contains("InvalidName"),
            "{o:#}"
        );
    }
    assert_eq!(outcome(&outcomes, "User", "grace")["ready"], true);
    // Only grace's password was written, and only inside the secrets directory.
    let files: Vec<String> = d
        .files()
        .into_iter()
        .filter(|f| !f.starts_with("state/store.db") && f != "state/server.key")
        .collect();
    assert_eq!(
        files,
        [
            "manifests/deep.yaml",
            "manifests/escape.yaml",
            "manifests/ok.yaml",
            "state/secrets/ml-platform/grace-password.yaml"
        ],
    );
}

#[test]
fn names_that_become_paths_in_secret_references_are_refused() {
    let d = Dir::new();
    d.write(
        "ref.yaml",
        &user(
            "ml-platform",
            "ref",
            "  passwordSecretRef: {name: ../ml-platform/grace-password, key: password}\n",
        ),
    );
    d.write(
        "key.yaml",
        &user(
            "ml-platform",
            "key",
            "  passwordSecretRef: {name: key-secret, key: ../password}\n",
        ),
    );
    d.write(
        "tok.yaml",
        &token("ml-platform", "tok", "  secretName: /var/lib/secret\n"),
    );
    let (code, diags) = d.validate();
    assert_eq!(code, 1);
    for (name, field) in [
        ("ref", "spec.passwordSecretRef.name"),
        ("key", "spec.passwordSecretRef.key"),
        ("tok", "spec.secretName"),
    ] {
        error_at(&diags, "SchemaViolation", name, field);
    }
}
