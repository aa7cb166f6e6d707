//! The real kubectl against the fake server.

use serde_json::json;

use super::{parse, write_crds, MANIFEST};
use crate::kube_api::KubeApiServer;

#[test]
fn kubectl_applies_crds_and_manifests() {
    let server = KubeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let crds_dir = write_crds(tmp.path());
    let crds_arg = crds_dir.to_str().unwrap();

    let out = server.kubectl(&["apply", "-f", crds_arg]);
    assert!(
        out.assert_success()
            .stdout
            .contains("customresourcedefinition.apiextensions.k8s.io/users.stagegate.dev created"),
        "{}",
        out.stdout
    );
    let out = server.kubectl(&["get", "crd"]);
    assert!(
        out.assert_success()
            .stdout
            .contains("apitokens.stagegate.dev"),
        "{}",
        out.stdout
    );
    let again = server.kubectl(&["apply", "-f", crds_arg]);
    assert!(
        again
            .assert_success()
            .stdout
            .contains("users.stagegate.dev unchanged"),
        "{}",
        again.stdout
    );

    let manifest = tmp.path().join("org.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let manifest_arg = manifest.to_str().unwrap();
    let out = server.kubectl(&["apply", "-f", manifest_arg]);
    assert!(
        out.assert_success()
            .stdout
            .contains("user.stagegate.dev/alice created"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stderr, "",
        "no warnings: validation is left to the server"
    );
    let again = server.kubectl(&["apply", "-f", manifest_arg]);
    let lines: Vec<&str> = again.assert_success().stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", again.stdout);
    assert!(
        lines.iter().all(|l| l.ends_with(" unchanged")),
        "{}",
        again.stdout
    );

    let out = server.kubectl(&["get", "stagegate", "-A"]);
    for name in [
        "user.stagegate.dev/alice",
        "accessbinding.stagegate.dev/alice-admin",
        "apitoken.stagegate.dev/deploy-bot",
    ] {
        assert!(
            out.assert_success().stdout.contains(name),
            "{name} missing from:\n{}",
            out.stdout
        );
    }

    let users = parse(
        &server
            .kubectl(&["get", "users", "-n", "team-a", "-o", "json"])
            .assert_success()
            .stdout,
    );
    let alice = &users["items"][0];
    assert_eq!(alice["metadata"]["name"], "alice");
    assert_eq!(alice["metadata"]["generation"], 1);
    assert!(alice["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));

    server
        .kubectl(&[
            "patch",
            "user",
            "alice",
            "-n",
            "team-a",
            "--type=merge",
            "-p",
            r#"{"spec":{"displayName":"Alice A."}}"#,
        ])
        .assert_success();
    let alice = parse(
        &server
            .kubectl(&["get", "user", "alice", "-n", "team-a", "-o", "json"])
            .assert_success()
            .stdout,
    );
    assert_eq!(alice["spec"]["displayName"], "Alice A.");
    assert_eq!(alice["metadata"]["generation"], 2);
    server
        .kubectl(&["label", "user", "alice", "-n", "team-a", "tier=gold"])
        .assert_success();
    let alice = parse(
        &server
            .kubectl(&[
                "get",
                "users",
                "-n",
                "team-a",
                "-l",
                "tier=gold",
                "-o",
                "json",
            ])
            .assert_success()
            .stdout,
    );
    assert_eq!(
        alice["items"][0]["metadata"]["generation"], 2,
        "labels are not spec"
    );

    let missing = server.kubectl(&["get", "user", "nobody", "-n", "team-a"]);
    assert!(!missing.success());
    assert!(
        missing
            .stderr
            .contains(r#"users.stagegate.dev "nobody" not found"#),
        "{}",
        missing.stderr
    );

    // The namespace terminates first and is emptied asynchronously, as in a
    // cluster, so deleting its contents afterwards still succeeds; kubectl
    // then waits (list + watch by metadata.name) until everything is gone.
    let out = server.kubectl(&["delete", "-f", manifest_arg]);
    assert_eq!(
        out.assert_success().stdout.matches(" deleted").count(),
        5,
        "{}",
        out.stdout
    );
    assert!(server.object("", "namespaces", "", "team-a").is_none());
}

#[test]
fn kubectl_delete_waits_for_finalizers() {
    let server = KubeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server
        .kubectl(&["apply", "-f", write_crds(tmp.path()).to_str().unwrap()])
        .assert_success();
    let manifest = tmp.path().join("bob.yaml");
    std::fs::write(&manifest, "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: bob\n  finalizers: [stagegate.dev/cleanup]\nspec: {}\n").unwrap();
    server
        .kubectl(&["apply", "-f", manifest.to_str().unwrap()])
        .assert_success();
    server.clear_requests();

    server
        .kubectl(&["delete", "user", "bob", "--wait=false"])
        .assert_success();
    let bob = parse(
        &server
            .kubectl(&["get", "user", "bob", "-o", "json"])
            .assert_success()
            .stdout,
    );
    assert!(bob["metadata"]["deletionTimestamp"].is_string(), "{bob}");

    server
        .kubectl(&[
            "patch",
            "user",
            "bob",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ])
        .assert_success();
    let gone = server.kubectl(&["get", "user", "bob"]);
    assert!(
        !gone.success() && gone.stderr.contains("not found"),
        "{}",
        gone.stderr
    );

    let log = server.take_requests();
    let verbs: Vec<(&str, &str)> = log
        .iter()
        .filter(|r| r.resource.as_deref() == Some("users"))
        .map(|r| (r.verb.as_str(), r.name.as_deref().unwrap_or_default()))
        .collect();
    assert!(verbs.contains(&("delete", "bob")), "{verbs:?}");
    let patch = log
        .iter()
        .find(|r| r.verb == "patch")
        .expect("a patch was logged");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(
        patch.body_json(),
        Some(json!([{"op": "remove", "path": "/metadata/finalizers"}]))
    );
}
