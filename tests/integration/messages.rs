//! Issue 16 items 5 and 6 through the real binary: messages a first-time user
//! reads (errors said once and never empty, help examples that paste, counts
//! that add up) and the leftovers (a deleted token's Secret file, the Secret
//! file header).

use crate::operator::apply_into;
use crate::support;

#[test]
fn diff_errors_say_the_cause_once_and_never_end_empty() {
    let o = support::run(&["diff", "--base", "no/such/base", "--head", "examples"]);
    assert_eq!(o.status.code(), Some(2));
    let err = support::stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("no/such/base"), "{err}");

    let o = support::run(&["diff", "--base-ref", "nosuchref", "--head", "examples"]);
    assert_eq!(o.status.code(), Some(2));
    let err = support::stderr(&o);
    assert!(err.contains("\"nosuchref\" is not a commit"), "{err}");
    assert!(!err.trim_end().ends_with(':'), "an empty cause: {err}");

    // The same loader error through validate: said once.
    let o = support::run(&["validate", "examples/nope.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = support::stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn validate_counts_objects_that_failed_the_schema_and_says_1_error() {
    let o = support::run(&["validate", "tests/fixtures/invalid/SchemaViolation.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    let summary = support::stderr(&o);
    assert!(
        summary.contains("1 object checked, 0 of other kinds skipped: 1 error, 0 warnings"),
        "{summary}"
    );
    let o = support::run(&["validate", "examples/"]);
    let summary = support::stderr(&o);
    assert!(
        summary.contains("objects checked") && summary.contains(": 0 errors, 0 warnings"),
        "{summary}"
    );
    // Two claims of one username: both objects counted, one error.
    let o = support::run(&["validate", "tests/fixtures/invalid/DuplicateUsername.yaml"]);
    let summary = support::stderr(&o);
    assert!(summary.contains(": 1 error,"), "{summary}");
    assert!(!summary.contains("0 objects checked"), "{summary}");
}

#[test]
fn help_examples_are_never_wrapped_mid_command() {
    let commands = [
        "validate", "can-i", "apply", "plan", "run", "status", "crds", "diff", "audit",
    ];
    for c in commands {
        let o = support::stagegate()
            .env("COLUMNS", "80")
            .args([c, "--help"])
            .output()
            .unwrap();
        let help = support::stdout(&o);
        let examples = help
            .split_once("Example")
            .unwrap_or_else(|| panic!("{c} --help has examples:\n{help}"))
            .1;
        let mut continued = false;
        for line in examples.lines().skip(1).take_while(|l| !l.is_empty()) {
            assert!(
                line.starts_with("  stagegate ") || (continued && line.starts_with("      ")),
                "{c} --help: an example wrapped mid-command: {line:?}\n{help}"
            );
            assert!(line.len() <= 80, "{c}: {line:?}");
            continued = line.ends_with('\\');
        }
    }
}

#[test]
fn plan_explains_its_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let o = support::run(&[
        "plan",
        "--dir",
        "examples",
        "--store",
        tmp.path().join("store.db").to_str().unwrap(),
    ]);
    let text = support::stdout(&o);
    for marker in ["+ ", "! ", "· "] {
        assert!(
            text.lines().any(|l| l.starts_with(marker)),
            "{marker} in {text}"
        );
    }
    assert!(
        text.contains("Markers: + adds, ~ changes, - removes, ! decides a stage request"),
        "{text}"
    );
    let help = support::stdout(&support::run(&["plan", "--help"]));
    assert!(help.contains("· updates a status"), "{help}");
}

#[test]
fn deleting_a_token_removes_the_secret_file_holding_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    support::copy_dir(&support::root().join("examples"), &dir);
    let state = tmp.path().join("state");
    apply_into(&dir, &state);
    let secrets = state.join("secrets/ml-platform");
    let deployer = secrets.join("fraud-ci-deployer-token.yaml");
    let monitor = secrets.join("acme-model-monitor-credentials.yaml");
    assert!(deployer.exists() && monitor.exists());
    let header = std::fs::read_to_string(&deployer).unwrap();
    assert!(
        !header.contains("will not be written again"),
        "a rotation rewrites it: {header}"
    );

    // The monitor's Secret is replaced by one an administrator wrote: never removed.
    let foreign = "apiVersion: v1\nkind: Secret\nmetadata: {name: acme-model-monitor-credentials, namespace: ml-platform}\nstringData: {note: mine}\n";
    std::fs::write(&monitor, foreign).unwrap();
    // Both tokens deleted from the declarations.
    let tokens = std::fs::read_to_string(dir.join("tokens.yaml")).unwrap();
    std::fs::remove_file(dir.join("tokens.yaml")).unwrap();
    apply_into(&dir, &state);
    assert!(!deployer.exists(), "the dead key's file is removed");
    assert_eq!(std::fs::read_to_string(&monitor).unwrap(), foreign);
    let audit = support::run(&[
        "audit",
        "--store",
        state.join("store.db").to_str().unwrap(),
        "--object",
        "ApiToken/ml-platform/fraud-ci-deployer",
    ]);
    assert!(support::stdout(&audit).contains("token.delete"));

    // Declared again: a new key, delivered to a new file, with the rotation-proof header.
    std::fs::write(dir.join("tokens.yaml"), tokens).unwrap();
    apply_into(&dir, &state);
    let text = std::fs::read_to_string(&deployer).unwrap();
    assert!(
        text.starts_with("# Written by stagegate: delivered once"),
        "{text}"
    );
}

#[test]
fn the_daemon_logs_a_username_clash_and_an_invalid_object_once() {
    use crate::daemon::harness::{wait_for, Workspace};
    let ws = Workspace::new();
    let clash = std::fs::read_to_string(
        support::root().join("tests/fixtures/invalid/DuplicateUsername.yaml"),
    )
    .unwrap();
    ws.write("users.yaml", &clash);
    let invalid =
        std::fs::read_to_string(support::root().join("tests/fixtures/invalid/UnknownRole.yaml"))
            .unwrap();
    ws.write("bindings.yaml", &invalid);
    let r = ws.start(&["--no-bootstrap-admin"]);
    let log = wait_for(&r, 60, "a reconcile", || {
        Some(r.log()).filter(|l| l.contains(" reconciled"))
    });
    let clash_lines: Vec<&str> = log.lines().filter(|l| l.contains("alice-again")).collect();
    assert_eq!(clash_lines.len(), 1, "{log}");
    assert!(clash_lines[0].contains("UsernameConflict"), "{log}");
    let invalid_lines = log.lines().filter(|l| l.contains("UnknownRole")).count();
    assert_eq!(invalid_lines, 1, "{log}");
    assert_eq!(r.terminate().code(), Some(0));
}
