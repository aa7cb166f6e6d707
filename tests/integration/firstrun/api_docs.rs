//! Issue 16: every shell example of `docs/api.md`, run literally against
//! `stagegate run --dir examples` in a fresh copy of the repository layout
//! (only `localhost:8080` is replaced by the daemon's ephemeral address).
//! Each `# {…}` line after a command is what that command prints: every
//! field it names must be in the real answer with that value, so the docs
//! cannot drift from the daemon again.

use super::ready_client;
use crate::daemon::harness::{copy_examples, Running};
use crate::support;
use serde_json::Value;

/// Printed between two commands' outputs.
const MARK: &str = "@@stagegate-docs-step@@";

/// One command (continuation lines joined) and the output its `# ` lines expect.
struct Step {
    command: String,
    expected: Vec<String>,
}

/// The ```sh blocks of `text`, in order, as steps.
fn steps(text: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for block in text.split("```sh\n").skip(1) {
        let body = block.split_once("\n```").expect("the block's end").0;
        let mut pending = String::new();
        for line in body.lines() {
            if let Some(expected) = line.strip_prefix("# ") {
                out.last_mut()
                    .expect("an expected output follows a command")
                    .expected
                    .push(expected.to_string());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            pending.push_str(line);
            pending.push('\n');
            if !line.ends_with('\\') {
                out.push(Step {
                    command: std::mem::take(&mut pending),
                    expected: Vec::new(),
                });
            }
        }
        assert!(pending.is_empty(), "a command ends with a continuation");
    }
    out
}

/// Whether every field of `want` is in `got` with the same value (arrays: same length, element-wise).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| contains(gv, v))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| contains(g, w))
        }
        _ => got == want,
    }
}

#[test]
fn every_shell_example_of_docs_api_md_runs_as_written() {
    let docs = std::fs::read_to_string(support::root().join("docs/api.md")).unwrap();
    let steps = steps(&docs);
    let checked = steps.iter().filter(|s| !s.expected.is_empty()).count();
    assert!(checked >= 6, "the docs show what their commands print");

    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("stagegate");
    copy_examples(&repo.join("examples"));
    let mut cmd = support::stagegate();
    cmd.current_dir(&repo).args(["run", "--dir", "examples"]);
    let r = Running::spawn(cmd, tmp.path());
    let api = ready_client(&r);
    let addr = api.base().strip_prefix("http://").unwrap().to_string();

    // All blocks in one shell, as a reader pastes them one after another.
    let script: String = steps
        .iter()
        .map(|s| format!("{}printf '\\n{MARK}\\n'\n", s.command))
        .collect::<String>()
        .replace("localhost:8080", &addr);
    let outputs: Vec<String> = super::readme::sh(&repo, &script)
        .split(MARK)
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(outputs.len(), steps.len() + 1, "{outputs:?}");
    for (step, got) in steps.iter().zip(&outputs) {
        for want in &step.expected {
            let want: Value = serde_json::from_str(want)
                .unwrap_or_else(|e| panic!("docs/api.md: `# {want}` is not JSON: {e}"));
            let got_json: Value = serde_json::from_str(got)
                .unwrap_or_else(|_| panic!("{}printed no JSON: {got:?}", step.command));
            assert!(
                contains(&got_json, &want),
                "{}printed {got}\nthe docs say {want}",
                step.command
            );
        }
    }
    assert_eq!(r.terminate().code(), Some(0));
}

#[test]
fn the_docs_check_can_fail() {
    let got: Value = serde_json::json!({"allowed": true, "code": "Allowed", "extra": 1});
    assert!(contains(
        &got,
        &serde_json::json!({"allowed": true, "code": "Allowed"})
    ));
    assert!(!contains(&got, &serde_json::json!({"allowed": false})));
    assert!(!contains(
        &serde_json::json!({"models": [1, 2]}),
        &serde_json::json!({"models": [1]})
    ));
    let s = steps("```sh\na \\\n  b\n# {\"x\":1}\nc\n```\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].command, "a \\\n  b\n");
    assert_eq!(s[0].expected, ["{\"x\":1}"]);
}
