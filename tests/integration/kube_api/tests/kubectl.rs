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

    // Printer columns come from the server's Table response, as in a cluster.
    let status = r#"{"status":{"phase":"Active","conditions":[{"type":"Ready","status":"True","reason":"Reconciled","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    server
        .kubectl(&[
            "patch",
            "user",
            "alice",
            "-n",
            "team-a",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])
        .assert_success();
    let table = server.kubectl(&["get", "users", "-n", "team-a"]);
    let lines: Vec<Vec<&str>> = table
        .assert_success()
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "USERNAME", "STATE", "PHASE", "READY", "AGE"],
        "{}",
        table.stdout
    );
    assert_eq!(
        lines[1][..4],
        ["alice", "Active", "Active", "True"],
        "{}",
        table.stdout
    );

    server
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            "user/alice",
            "-n",
            "team-a",
            "--timeout=5s",
        ])
        .assert_success();
    server
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/users.stagegate.dev",
            "--timeout=5s",
        ])
        .assert_success();

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

#[test]
fn kubectl_apply_is_validated_against_the_crd_schema() {
    let server = KubeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server
        .kubectl(&["apply", "-f", write_crds(tmp.path()).to_str().unwrap()])
        .assert_success();
    let bad_role = tmp.path().join("bad-role.yaml");
    std::fs::write(&bad_role, "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: b\nspec:\n  user: alice\n  role: Root\n").unwrap();
    let out = server.kubectl(&["apply", "-f", bad_role.to_str().unwrap()]);
    assert!(
        !out.success()
            && out
                .stderr
                .contains(r#"The AccessBinding "b" is invalid: spec.role: Invalid value"#),
        "{}",
        out.stderr
    );

    let unknown = tmp.path().join("unknown.yaml");
    std::fs::write(&unknown, "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: u\nspec:\n  nickname: x\n").unwrap();
    let out = server.kubectl(&["apply", "-f", unknown.to_str().unwrap()]);
    assert!(
        !out.success() && out.stderr.contains(r#"unknown field "spec.nickname""#),
        "{}",
        out.stderr
    );
    let out = server.kubectl(&["apply", "--validate=false", "-f", unknown.to_str().unwrap()]);
    out.assert_success();
    let user = parse(
        &server
            .kubectl(&["get", "user", "u", "-o", "json"])
            .assert_success()
            .stdout,
    );
    assert_eq!(
        user["spec"],
        json!({"state": "Active", "passwordRotation": 0}),
        "pruned and defaulted"
    );
}

#[test]
fn kubectl_everyday_commands_work() {
    let server = KubeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server
        .kubectl(&["apply", "-f", write_crds(tmp.path()).to_str().unwrap()])
        .assert_success();
    let file = tmp.path().join("u.yaml");
    std::fs::write(&file, "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: u\nspec:\n  email: u@example.com\n").unwrap();
    let file = file.to_str().unwrap();
    let run = |args: &[&str]| server.kubectl(args).assert_success().stdout.clone();

    assert!(run(&["apply", "--dry-run=server", "-f", file]).contains("created (server dry run)"));
    assert!(server
        .object("stagegate.dev", "users", "default", "u")
        .is_none());
    assert!(run(&["apply", "--server-side", "-f", file]).contains("serverside-applied"));
    assert_eq!(run(&["diff", "-f", file]), "", "no drift after apply");
    assert!(run(&["api-resources", "--api-group=stagegate.dev"]).contains("sgu"));
    assert!(run(&["explain", "users.spec"]).contains("enum: Active, Revoked"));

    // Typed kubectl commands send protobuf bodies.
    run(&["create", "namespace", "ops"]);
    run(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "ops",
        "--from-literal=password=s3cret",
    ]);
    run(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "ops",
        "--from-literal=mode=strict",
    ]);
    let secret = server.object("", "secrets", "ops", "pw").unwrap();
    assert_eq!(secret["data"], json!({"password": "czNjcmV0"}));
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        server.object("", "configmaps", "ops", "cfg").unwrap()["data"],
        json!({"mode": "strict"})
    );
    run(&[
        "patch",
        "namespace",
        "ops",
        "-p",
        r#"{"metadata":{"labels":{"env":"dev"}}}"#,
    ]);
    assert_eq!(
        server.object("", "namespaces", "", "ops").unwrap()["metadata"]["labels"]["env"],
        "dev"
    );
    run(&["delete", "namespace", "ops", "--wait=false"]);
    let terminating = server.object("", "namespaces", "", "ops").unwrap();
    assert_eq!(terminating["status"]["phase"], "Terminating");
    let gone = server.wait_until(std::time::Duration::from_secs(3), |s| {
        s.object("", "secrets", "ops", "pw").is_none().then_some(())
    });
    assert!(
        gone.is_some(),
        "the namespace controller empties terminating namespaces"
    );

    let log = server.requests();
    let label = log
        .iter()
        .find(|r| r.verb == "patch" && r.resource.as_deref() == Some("namespaces"))
        .unwrap();
    assert_eq!(
        label.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    let create = log
        .iter()
        .find(|r| r.verb == "create" && r.resource.as_deref() == Some("secrets"))
        .unwrap();
    assert_eq!(
        create.content_type.as_deref(),
        Some("application/vnd.kubernetes.protobuf")
    );
}

#[test]
fn kubectl_get_watch_prints_printer_columns_and_delete_all_works() {
    let server = KubeApiServer::start();
    let tmp = tempfile::tempdir().unwrap();
    server
        .kubectl(&["apply", "-f", write_crds(tmp.path()).to_str().unwrap()])
        .assert_success();
    let users = tmp.path().join("users.yaml");
    let two =
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: u\nspec: {}\n---\n\
               apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: v\nspec: {}\n";
    std::fs::write(&users, two).unwrap();
    server
        .kubectl(&["apply", "-f", users.to_str().unwrap()])
        .assert_success();

    let watch = server
        .kubectl_command(&["get", "users", "-w", "--request-timeout=2s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watching = server.wait_until(std::time::Duration::from_secs(5), |s| {
        s.requests().iter().any(|r| r.verb == "watch").then_some(())
    });
    assert!(watching.is_some(), "kubectl started watching");
    server
        .kubectl(&[
            "patch",
            "user",
            "u",
            "--type=merge",
            "-p",
            r#"{"spec":{"state":"Revoked"}}"#,
        ])
        .assert_success();
    let out = watch.wait_with_output().unwrap();
    let lines: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines[0][..3], ["NAME", "USERNAME", "STATE"], "{lines:?}");
    assert_eq!(lines.len(), 4, "header, two users, one change: {lines:?}");
    assert_eq!(lines[3][..2], ["u", "Revoked"], "{lines:?}");

    let out = server.kubectl(&["delete", "users", "--all"]);
    assert_eq!(
        out.assert_success().stdout.matches(" deleted").count(),
        2,
        "{}",
        out.stdout
    );
}
