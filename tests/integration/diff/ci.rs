//! The GitHub Actions recipe in `examples/ci/` parses and has the keys GitHub expects.

use crate::support::root;
use serde_yaml::Value;

const WORKFLOW: &str = "examples/ci/.github/workflows/access-review.yml";

fn workflow() -> Value {
    let text = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    serde_yaml::from_str(&text).expect("the workflow is valid YAML")
}

#[test]
fn workflow_has_the_keys_github_expects() {
    let w = workflow();
    assert!(w["name"].as_str().is_some());
    let paths = w["on"]["pull_request"]["paths"]
        .as_sequence()
        .expect("on.pull_request.paths");
    assert!(!paths.is_empty());
    let types = w["on"]["pull_request"]["types"]
        .as_sequence()
        .expect("on.pull_request.types");
    assert!(
        types.iter().any(|t| t == "labeled"),
        "re-run when the approval label is added"
    );
    assert_eq!(w["permissions"]["pull-requests"], "write");
    let jobs = w["jobs"].as_mapping().expect("jobs");
    assert!(!jobs.is_empty());
    for (name, job) in jobs {
        assert!(job["runs-on"].as_str().is_some(), "{name:?}: runs-on");
        let steps = job["steps"].as_sequence().expect("steps");
        for step in steps {
            let uses = step.get("uses").and_then(Value::as_str);
            let run = step.get("run").and_then(Value::as_str);
            assert!(
                uses.is_some() != run.is_some(),
                "{name:?}: each step has exactly one of uses/run: {step:?}"
            );
        }
    }
    let text = std::fs::read_to_string(root().join(WORKFLOW)).unwrap();
    for needle in [
        "stagegate validate",
        "stagegate diff",
        "--output markdown",
        "actions/github-script",
        "<!-- stagegate-diff -->",
        "access-escalation-approved",
    ] {
        assert!(text.contains(needle), "the workflow uses {needle:?}");
    }
}

#[test]
fn the_validated_examples_do_not_see_the_workflow() {
    // The loader skips hidden entries: examples/ci/.github is not a manifest directory.
    let files = stagegate::sources::files::manifest_files(&[root().join("examples")]).unwrap();
    assert!(
        files
            .iter()
            .all(|f| !f.path.to_string_lossy().contains(".github")),
        "{files:?}"
    );
    assert!(root().join("examples/ci/README.md").is_file());
}
