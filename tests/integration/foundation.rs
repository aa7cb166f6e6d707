//! Issue "Foundation": CRD drift, `validate` on examples and fixtures, `can-i`.

use crate::support::{root, run, stderr, stdout};
use serde_json::Value;
use stagegate::resources::{crd_file_name, crd_yaml, crds, crds_yaml};

#[test]
fn crd_files_match_the_types() {
    let mut concatenated = String::new();
    for crd in crds() {
        let path = root().join("crds").join(crd_file_name(&crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == crd_yaml(&crd),
            "{} differs from the Rust types; regenerate with: make crds",
            path.display()
        );
        concatenated.push_str(&on_disk);
    }
    // The check, literally: `stagegate crds | diff - <(cat crds/*.yaml)` (glob order).
    let mut files: Vec<_> = std::fs::read_dir(root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let globbed: String = files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let printed = run(&["crds"]);
    assert!(printed.status.success());
    assert_eq!(
        stdout(&printed),
        globbed,
        "`stagegate crds` must print exactly `cat crds/*.yaml`; run: make crds"
    );
    assert_eq!(globbed, concatenated);
    assert_eq!(crds_yaml(), concatenated);
}

#[test]
fn crds_carry_category_columns_and_rules() {
    let yaml = crds_yaml();
    for crd in crds() {
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["stagegate".to_string()][..])
        );
        // The access-domain kinds carry no status: they are read, never reported on.
        let access_domain =
            crd.spec.names.kind.starts_with("Access") && crd.spec.names.kind != "AccessBinding";
        let scope = if crd.spec.names.kind == "AccessDomain" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(crd.spec.scope, scope);
        let v = &crd.spec.versions[0];
        assert!(
            access_domain
                || v.subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some(),
            "status subresource"
        );
        assert!(v
            .additional_printer_columns
            .as_ref()
            .is_some_and(|c| c.len() >= 3));
        assert!(crd
            .spec
            .names
            .short_names
            .as_ref()
            .is_some_and(|s| !s.is_empty()));
    }
    assert!(
        yaml.contains("rule: self == oldSelf"),
        "ModelStageRequest spec is immutable"
    );
    assert!(
        yaml.contains("!has(self.project) || has(self.customer)"),
        "project requires customer"
    );
}

#[test]
fn examples_validate_cleanly() {
    let out = run(&["validate", "examples"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "", "no diagnostics expected");
    assert!(stderr(&out).contains("0 errors"), "{}", stderr(&out));
}

/// Each fixture marks the expected line with `# <-- Reason`; the file name is the reason.
#[test]
fn every_reason_has_a_fixture_reported_at_its_line() {
    let dir = root().join("tests/fixtures/invalid");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let reason = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text
            .lines()
            .position(|l| l.contains(&format!("# <-- {reason}")))
            .expect("marker")
            + 1;
        let out = run(&["validate", "--output", "json", path.to_str().unwrap()]);
        let diags: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let hit = diags.iter().find(|d| d["reason"] == reason.as_str());
        let hit = hit.unwrap_or_else(|| panic!("{reason}: not reported; got {diags:#?}"));
        assert_eq!(hit["line"], line, "{reason}: wrong line in {hit:#}");
        assert_eq!(hit["file"], path.to_str().unwrap());
        for key in ["kind", "namespace", "name", "field", "severity", "message"] {
            assert!(hit.get(key).is_some(), "{reason}: JSON lacks {key}");
        }
        let warning_only = matches!(reason.as_str(), "UnknownUser" | "SimultaneousRequests");
        assert_eq!(
            hit["severity"],
            if warning_only { "warning" } else { "error" }
        );
        assert_eq!(
            out.status.code(),
            Some(if warning_only { 0 } else { 1 }),
            "{reason}: exit code"
        );
        seen.push(reason);
    }
    seen.sort();
    let expected = [
        "DuplicateObject",
        "DuplicateTokenName",
        "DuplicateUsername",
        "InvalidAnnotation",
        "InvalidDuration",
        "InvalidName",
        "InvalidScope",
        "InvalidUsername",
        "InvalidYaml",
        "OutsideAccessDomain",
        "PasswordSourceConflict",
        "ProjectWithoutCustomer",
        "RoleNotAllowedAtScope",
        "SchemaViolation",
        "SecretNameConflict",
        "SimultaneousRequests",
        "TransitionNeverAllowed",
        "UnknownApiVersion",
        "UnknownField",
        "UnknownRole",
        "UnknownUser",
    ];
    assert_eq!(seen, expected);
}

#[test]
fn text_diagnostics_name_file_line_object_field_and_reason() {
    let out = run(&["validate", "tests/fixtures/invalid/SchemaViolation.yaml"]);
    assert_eq!(
        stdout(&out).trim(),
        "tests/fixtures/invalid/SchemaViolation.yaml:9: User ml-platform/alice: spec.passwordSecretRef.key: must not be empty (SchemaViolation)"
    );
}

#[test]
fn a_broken_document_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: a\nspec:\n  state: Sleeping\n---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: b\nspec: {}\n",
    )
    .unwrap();
    let snap = stagegate::sources::files::load_paths(&[file]).unwrap();
    assert_eq!(snap.users.len(), 1, "the valid User still loads");
    assert_eq!(
        snap.users[0].object.metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(snap.skipped.get("ConfigMap"), Some(&1));
    let d = &snap.diagnostics[0];
    assert_eq!((d.line, d.field.as_deref()), (Some(11), Some("spec.state")));
}

#[test]
fn validate_exits_2_on_a_missing_path() {
    let out = run(&["validate", "does/not/exist"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does/not/exist"));
}

fn can_i(args: &[&str]) -> (i32, String) {
    let mut all = vec!["can-i", "--dir", "examples", "--explain"];
    all.extend_from_slice(args);
    let out = run(&all);
    (out.status.code().unwrap(), stdout(&out))
}

#[test]
fn can_i_analyst_cannot_see_production_model_manager_can() {
    let (code, out) = can_i(&["--as", "alan", "models:view", "fraud-detector"]);
    assert_eq!((code, out.lines().next()), (1, Some("no")), "{out}");
    assert!(out.contains("never sees Production"), "{out}");
    let (code, out) = can_i(&["--as", "maria", "models:view", "fraud-detector"]);
    assert_eq!((code, out.lines().next()), (0, Some("yes")), "{out}");
}

#[test]
fn can_i_replays_requests_in_order() {
    // churn-model was rejected back to Dev: its owner anna sees it, the manager maria does not.
    assert_eq!(can_i(&["--as", "anna", "models:view", "churn-model"]).0, 0);
    assert_eq!(can_i(&["--as", "maria", "models:view", "churn-model"]).0, 1);
    // From Dev again, dan (Developer at acme) may promote it, dora (Deployer) may not.
    assert_eq!(
        can_i(&[
            "--as",
            "dan",
            "models:transition",
            "churn-model",
            "--to",
            "Staging"
        ])
        .0,
        0
    );
    assert_eq!(
        can_i(&[
            "--as",
            "dora",
            "models:transition",
            "churn-model",
            "--to",
            "Staging"
        ])
        .0,
        1
    );
}

#[test]
fn can_i_manage_and_errors() {
    assert_eq!(
        can_i(&["--as", "ada", "users:manage", "--scope", "acme"]).0,
        0
    );
    assert_eq!(
        can_i(&["--as", "maria", "users:manage", "--scope", "acme"]).0,
        1
    );
    assert_eq!(
        can_i(&["--as", "nobody", "models:view", "fraud-detector"]).0,
        1
    );
    assert_eq!(
        can_i(&["--as", "ada", "models:fly"]).0,
        2,
        "unknown action is a usage error"
    );
    assert_eq!(
        can_i(&["--as", "fraud-ci-deployer", "models:view", "fraud-detector"]).0,
        0,
        "tokens are principals"
    );
}

/// The README's can-i examples and a few more, as `--as USER ARGS...`.
const README_QUESTIONS: [&[&str]; 9] = [
    &["--as", "alan", "models:view", "fraud-detector"],
    &["--as", "maria", "models:view", "fraud-detector"],
    &["--as", "anna", "models:view", "churn-model"],
    &["--as", "maria", "models:view", "churn-model"],
    &[
        "--as",
        "dan",
        "models:transition",
        "churn-model",
        "--to",
        "Staging",
    ],
    &[
        "--as",
        "dora",
        "models:transition",
        "churn-model",
        "--to",
        "Staging",
    ],
    &["--as", "ada", "users:manage", "--scope", "acme"],
    &["--as", "maria", "users:manage", "--scope", "acme"],
    &["--as", "fraud-ci-deployer", "models:view", "fraud-detector"],
];

#[test]
fn can_i_from_the_store_answers_as_from_the_declarations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    crate::daemon::harness::copy_examples(&dir);
    let store = tmp.path().join("state/store.db");
    let (dir, store) = (dir.to_str().unwrap(), store.to_str().unwrap());
    let secrets = tmp.path().join("state/secrets");
    let applied = run(&[
        "apply",
        "--dir",
        dir,
        "--store",
        store,
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ]);
    assert!(applied.status.code() != Some(2), "{}", stderr(&applied));
    let ask = |source: &str, path: &str, question: &[&str]| {
        let mut all = vec!["can-i", source, path, "--explain"];
        all.extend_from_slice(question);
        let out = run(&all);
        (out.status.code().unwrap(), stdout(&out))
    };
    let mut yes = 0;
    for question in README_QUESTIONS {
        let declared = ask("--dir", dir, question);
        let stored = ask("--store", store, question);
        assert_eq!(stored, declared, "{question:?}");
        assert!(declared.0 < 2, "{question:?}: {}", declared.1);
        yes += usize::from(declared.0 == 0);
    }
    assert_eq!(
        yes, 5,
        "alan, maria/churn, dora and maria/users are the noes"
    );
    let unknown = ask(
        "--store",
        store,
        &["--as", "nobody", "models:view", "fraud-detector"],
    );
    assert_eq!(unknown.0, 1, "{}", unknown.1);
    assert!(
        unknown.1.contains("neither an active user"),
        "{}",
        unknown.1
    );

    // dora revoked: apply revokes the token she owns, and neither source answers for it.
    let users = std::path::Path::new(dir).join("users.yaml");
    let text = std::fs::read_to_string(&users).unwrap();
    let revoked = text.replace(
        "  displayName: Dora Deployer\n",
        "  displayName: Dora Deployer\n  state: Revoked\n",
    );
    assert_ne!(revoked, text);
    std::fs::write(&users, revoked).unwrap();
    let applied = run(&[
        "apply",
        "--dir",
        dir,
        "--store",
        store,
        "--secrets-dir",
        secrets.to_str().unwrap(),
    ]);
    assert!(applied.status.code() != Some(2), "{}", stderr(&applied));
    for source in [("--dir", dir), ("--store", store)] {
        for who in ["dora", "fraud-ci-deployer"] {
            let (code, out) = ask(
                source.0,
                source.1,
                &["--as", who, "models:view", "fraud-detector"],
            );
            assert_eq!(code, 1, "{source:?} {who}: {out}");
            assert!(
                out.contains("neither an active user"),
                "{source:?} {who}: {out}"
            );
        }
    }
}

#[test]
fn can_i_store_errors_and_never_creates_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no/store.db");
    let out = run(&[
        "can-i",
        "--store",
        missing.to_str().unwrap(),
        "--as",
        "ada",
        "users:manage",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no store at"), "{}", stderr(&out));
    assert!(!missing.exists() && !missing.parent().unwrap().exists());
    for sources in [&["--dir", "examples", "--store", "x.db"][..], &[][..]] {
        let mut all = vec!["can-i", "--as", "ada", "users:manage"];
        all.extend_from_slice(sources);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{sources:?}: {}", stderr(&out));
    }
}

/// Regression: a password pasted into the wrong field must not be echoed by a diagnostic.
#[test]
fn schema_diagnostics_name_the_field_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leak.yaml");
    let secret = "Sup3rS3cretPassw0rd";
    std::fs::write(
        &file,
        format!("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: x\nspec:\n  passwordSecretRef: \"{secret}\"\n  state: \"{secret}\"\n  username: \"{secret}\"\n---\napiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: b\nspec:\n  user: x\n  role: \"{secret}\"\n"),
    )
    .unwrap();
    for output in ["text", "json"] {
        let out = run(&["validate", "--output", output, file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(secret), "{all}");
        for field in [
            "spec.passwordSecretRef",
            "spec.state",
            "spec.username",
            "spec.role",
        ] {
            assert!(all.contains(field), "{field} not named in {all}");
        }
    }
}

/// The shipped binary is built alone (`cargo build --release --bin stagegate`, the
/// Dockerfile), without the dev-dependencies whose features Cargo unifies into every test
/// build. A TLS crypto provider that only a dev-dependency enabled made the tests pass and
/// the image panic at its first Kubernetes request; the provider must come from the
/// product's own (normal) dependency edges.
#[test]
fn the_tls_crypto_provider_is_a_normal_dependency_of_the_shipped_binary() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--locked", "--edges", "normal"])
        .args(["--invert", "ring", "--prefix", "none"])
        .current_dir(root())
        .output()
        .expect("run cargo tree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().any(|l| l.starts_with("rustls v0.23")),
        "ring does not reach rustls through normal dependencies:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().any(|l| l.starts_with("stagegate v")),
        "stagegate itself does not depend on ring:\n{text}"
    );
}
