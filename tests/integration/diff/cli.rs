//! `stagegate diff` as a command: exit codes, usage errors, `--base-ref`, Markdown that renders.

use super::two_trees;
use crate::support::{root, stagegate};
use std::path::Path;
use std::process::Output;

fn diff_in(dir: &Path, args: &[&str]) -> Output {
    stagegate()
        .current_dir(dir)
        .arg("diff")
        .args(args)
        .output()
        .unwrap()
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

const ALAN_ANALYST: &str = "  user: alan\n  role: Analyst";
const ALAN_MANAGER: &str = "  user: alan\n  role: Manager";
const TREES: [&str; 4] = ["--base", "base", "--head", "head"];

#[test]
fn exit_codes_follow_fail_on() {
    let tmp = two_trees();
    let code = |extra: &[&str]| {
        let args: Vec<&str> = TREES.iter().chain(extra).copied().collect();
        diff_in(tmp.path(), &args).status.code()
    };
    assert_eq!(code(&[]), Some(0), "no change, no escalation");

    edit(
        &tmp.path().join("head/bindings.yaml"),
        ALAN_ANALYST,
        ALAN_MANAGER,
    );
    assert_eq!(
        code(&[]),
        Some(1),
        "escalation with the default --fail-on escalation"
    );
    assert_eq!(code(&["--fail-on", "escalation"]), Some(1));
    assert_eq!(code(&["--fail-on", "warning"]), Some(1));
    assert_eq!(code(&["--fail-on", "never"]), Some(0));
}

#[test]
fn warnings_fail_only_with_fail_on_warning() {
    let tmp = two_trees();
    std::fs::write(
        tmp.path().join("head/ghost.yaml"),
        "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: ghost-analyst, namespace: ml-platform}\nspec: {user: ghost, role: Analyst, scope: {customer: acme}}\n",
    )
    .unwrap();
    let out = diff_in(tmp.path(), &TREES);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UnknownUser"));
    let mut args = TREES.to_vec();
    args.extend(["--fail-on", "warning"]);
    assert_eq!(diff_in(tmp.path(), &args).status.code(), Some(1));
}

#[test]
fn errors_in_head_fail_whatever_fail_on_says_and_come_first() {
    let tmp = two_trees();
    edit(
        &tmp.path().join("head/bindings.yaml"),
        ALAN_ANALYST,
        "  user: alan\n  role: Superuser",
    );
    let mut args = TREES.to_vec();
    args.extend(["--fail-on", "never"]);
    let out = diff_in(tmp.path(), &args);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("stagegate diff: 1 error in head"),
        "{text}"
    );
    assert!(lines[2].starts_with("Errors in head (1)"), "{text}");
    assert!(
        lines[3].contains("head/bindings.yaml:") && lines[3].contains("UnknownRole"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = two_trees();
    let p = tmp.path();
    assert_eq!(
        diff_in(p, &["--head", "head"]).status.code(),
        Some(2),
        "no base"
    );
    assert_eq!(
        diff_in(
            p,
            &["--base", "base", "--base-ref", "HEAD", "--head", "head"]
        )
        .status
        .code(),
        Some(2),
        "two bases"
    );
    assert_eq!(
        diff_in(p, &["--base", "base", "--head", "nowhere"])
            .status
            .code(),
        Some(2),
        "missing head"
    );
    assert_eq!(
        diff_in(p, &["--base", "nowhere", "--head", "head"])
            .status
            .code(),
        Some(2),
        "missing base"
    );
    let mut bad = TREES.to_vec();
    bad.extend(["--output", "yaml"]);
    assert_eq!(diff_in(p, &bad).status.code(), Some(2), "unknown format");
    let mut bad = TREES.to_vec();
    bad.extend(["--max-validity", "Never"]);
    assert_eq!(
        diff_in(p, &bad).status.code(),
        Some(2),
        "--max-validity Never"
    );
    let out = diff_in(p, &["--base-ref", "HEAD", "--head", "head"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--base-ref outside a git repository"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("git repository"));
}

#[test]
fn max_validity_is_configurable() {
    let tmp = two_trees();
    edit(
        &tmp.path().join("head/tokens.yaml"),
        "validity: 90d",
        "validity: 120d",
    );
    let mut args = TREES.to_vec();
    assert_eq!(
        diff_in(tmp.path(), &args).status.code(),
        Some(1),
        "120d > 90d"
    );
    args.extend(["--max-validity", "180d"]);
    assert_eq!(
        diff_in(tmp.path(), &args).status.code(),
        Some(0),
        "120d <= 180d"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn base_ref_reads_the_base_from_git_without_a_checkout() {
    let repo = tempfile::tempdir().unwrap();
    let p = repo.path();
    git(p, &["init", "-q", "-b", "main"]);
    super::copy_tree(&root().join("examples"), &p.join("access"));
    std::fs::write(p.join("README.md"), "not a manifest\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "organization"]);
    edit(&p.join("access/bindings.yaml"), ALAN_ANALYST, ALAN_MANAGER);
    git(p, &["commit", "-q", "-am", "promote alan"]);

    let out = diff_in(
        p,
        &[
            "--base-ref",
            "HEAD~1",
            "--head",
            "access",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["escalations"][0]["kind"], "GainsProductionMoves");
    assert_eq!(v["escalations"][0]["principal"]["name"], "alan");

    let same = diff_in(p, &["--base-ref", "HEAD", "--head", "access"]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&same.stdout),
        "stagegate diff: no changes\n"
    );

    // From a subdirectory, and with an uncommitted head: the work tree is head.
    edit(&p.join("access/bindings.yaml"), ALAN_MANAGER, ALAN_ANALYST);
    let back = diff_in(&p.join("access"), &["--base-ref", "main~1", "--head", "."]);
    assert_eq!(
        back.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&back.stdout)
    );

    let bad = diff_in(p, &["--base-ref", "no-such-branch", "--head", "access"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn markdown_renders_a_table_and_an_escalation_section() {
    let tmp = two_trees();
    edit(
        &tmp.path().join("head/bindings.yaml"),
        ALAN_ANALYST,
        ALAN_MANAGER,
    );
    let mut args = TREES.to_vec();
    args.extend(["--output", "markdown"]);
    let md = String::from_utf8(diff_in(tmp.path(), &args).stdout).unwrap();
    let mut opts = pulldown_cmark::Options::empty();
    opts.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, pulldown_cmark::Parser::new_ext(&md, opts));
    assert!(html.contains("<h4>⚠️ Escalations (1)</h4>"), "{html}");
    let escalations_at = html.find("Escalations").unwrap();
    let principals_at = html.find("<h4>Principals").unwrap();
    assert!(escalations_at < principals_at, "escalations come first");
    assert!(
        html.contains("<table>") && html.contains("<th>Principal</th>"),
        "{html}"
    );
    assert!(html.contains("<td>GainsProductionMoves</td>"), "{html}");
    assert!(html.contains("<td>alan</td>"), "{html}");
    assert!(
        html.contains("<details>") && html.contains("<summary>Models: stages and access"),
        "{html}"
    );
    assert!(
        md.starts_with("<!-- stagegate-diff -->\n"),
        "hidden marker for the CI comment"
    );
    assert!(!html.contains("<script"), "cells are escaped");
}

/// Regression (review): a new file that sorts first and claims an existing user's username is
/// the one in conflict; the base holder is not reported, and no takeover reaches the diff.
#[test]
fn a_username_takeover_is_flagged_on_the_newcomer() {
    let head = tempfile::tempdir().unwrap();
    crate::support::copy_dir(&root().join("examples"), head.path());
    std::fs::write(
        head.path().join("00-evil.yaml"),
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: evil\n  namespace: ml-platform\nspec:\n  username: ada\n",
    )
    .unwrap();
    let out = stagegate()
        .args(["diff", "--base", "examples", "--head"])
        .arg(head.path())
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "invalid head");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = json["headErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["object"], "User ml-platform/evil");
    assert_eq!(errors[0]["reason"], "DuplicateUsername");
    assert!(
        json["principals"].as_array().unwrap().is_empty(),
        "ada is unchanged: {json:#}"
    );
}
