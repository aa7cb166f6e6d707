//! Golden outputs for a set of realistic changes to `examples/`.
//!
//! Each case under `tests/fixtures/diff/<case>/` has `about.txt`, overlays
//! `base/` and `head/` (files copied over a copy of `examples/`), an optional
//! `remove` list (files deleted from the head copy), and the expected
//! `expected.txt`, `expected.md`, `expected.json` and `exit-code` (default
//! `--fail-on`). `UPDATE_GOLDEN=1 cargo test --test integration diff` rewrites them.

use super::{copy_tree, line_diff, two_trees, updating};
use crate::support::{root, stagegate};
use serde_json::Value;
use std::path::Path;

fn cases() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/diff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Builds the case's two trees in a temporary directory.
fn prepare(case: &Path) -> tempfile::TempDir {
    let tmp = two_trees();
    for side in ["base", "head"] {
        if case.join(side).is_dir() {
            copy_tree(&case.join(side), &tmp.path().join(side));
        }
    }
    if let Ok(list) = std::fs::read_to_string(case.join("remove")) {
        for f in list.lines().filter(|l| !l.trim().is_empty()) {
            std::fs::remove_file(tmp.path().join("head").join(f.trim())).unwrap();
        }
    }
    tmp
}

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/diff.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("docs/diff.schema.json is a valid JSON Schema")
}

#[test]
fn goldens_for_realistic_changes() {
    let cases = cases();
    assert!(cases.len() >= 12, "a dozen cases expected");
    let validator = schema_validator();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let tmp = prepare(case);
        let diff = |extra: &[&str]| {
            stagegate()
                .current_dir(tmp.path())
                .args(["diff", "--base", "base", "--head", "head"])
                .args(extra)
                .output()
                .unwrap()
        };
        let mut outputs = Vec::new();
        for (format, file) in [
            ("text", "expected.txt"),
            ("markdown", "expected.md"),
            ("json", "expected.json"),
        ] {
            let out = diff(&["--output", format, "--fail-on", "never"]);
            assert!(
                out.status.code() != Some(2),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            outputs.push((file, String::from_utf8(out.stdout).unwrap()));
        }
        let code = diff(&[]).status.code().unwrap();
        outputs.push(("exit-code", format!("{code}\n")));
        let json: Value = serde_json::from_str(&outputs[2].1).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{name}: JSON output violates docs/diff.schema.json: {errors:#?}"
        );
        for (file, actual) in outputs {
            let path = case.join(file);
            if updating() {
                std::fs::write(&path, &actual).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(d) = line_diff(&expected, &actual) {
                failures.push(format!("--- {name}/{file} (- expected, + actual)\n{d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden outputs differ (rewrite with UPDATE_GOLDEN=1 after checking):\n{}",
        failures.join("\n")
    );
}

#[test]
fn no_change_cases_say_no_changes() {
    for name in ["rename-file", "reorder-keys"] {
        let text = std::fs::read_to_string(
            root()
                .join("tests/fixtures/diff")
                .join(name)
                .join("expected.txt"),
        )
        .unwrap();
        assert_eq!(text, "stagegate diff: no changes\n", "{name}");
    }
}

#[test]
fn escalation_kinds_are_pinned_by_the_goldens() {
    let kinds = |case: &str| -> Vec<String> {
        let text = std::fs::read_to_string(
            root()
                .join("tests/fixtures/diff")
                .join(case)
                .join("expected.json"),
        )
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds("add-analyst"), Vec::<String>::new());
    assert_eq!(
        kinds("promote-analyst-to-manager"),
        ["GainsProductionMoves"]
    );
    assert_eq!(kinds("developer-wider-scope"), ["WiderScope"]);
    assert_eq!(
        kinds("deployer-to-customer"),
        ["GainsProductionMoves", "WiderScope"]
    );
    assert_eq!(
        kinds("admin-token-never"),
        [
            "GainsUserManagement",
            "GainsTokenManagement",
            "GainsProductionMoves",
            "NewAdminToken",
            "LongValidity",
            "OwnerMissing"
        ]
    );
    assert_eq!(kinds("long-validity"), ["LongValidity"]);
    assert_eq!(kinds("token-owner-unknown"), ["OwnerMissing"]);
}

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&stagegate::diff::json_schema()).unwrap() + "\n";
    let path = root().join("docs/diff.schema.json");
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(d) = line_diff(&on_disk, &generated) {
        panic!("docs/diff.schema.json differs from the Rust types; regenerate with UPDATE_GOLDEN=1 cargo test --test integration diff\n{d}");
    }
}
