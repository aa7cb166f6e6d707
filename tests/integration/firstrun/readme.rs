//! Issue 8 item 4: the README's fresh-clone experience, followed literally.
//! The main command and the "Try it" block are parsed from README.md and run
//! from a temporary copy of the repository layout; only `localhost:8080` is
//! replaced by the ephemeral address the daemon printed.

use super::ready_client;
use crate::daemon::harness::{copy_examples, wait_for, Running};
use crate::support;
use serde_json::Value;
use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(support::root().join("README.md")).expect("README.md")
}

/// The lines of the first ```sh block after the line `heading`.
fn sh_block_after(readme: &str, heading: &str) -> Vec<String> {
    let rest = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let body = rest
        .split_once("```sh\n")
        .expect("a ```sh block")
        .1
        .split_once("\n```")
        .expect("the block's end")
        .0;
    body.lines().map(str::to_string).collect()
}

/// Runs `script` with `sh -euc` in `dir`; returns stdout, panicking with stderr on failure.
pub(super) fn sh(dir: &Path, script: &str) -> String {
    let o = std::process::Command::new("sh")
        .arg("-euc")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh runs");
    assert!(
        o.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        support::stdout(&o),
        support::stderr(&o)
    );
    support::stdout(&o)
}

/// `stagegate status --output json` in `dir`: (object, ready) of every declared object.
fn statuses(dir: &Path) -> Vec<(String, bool)> {
    let o = support::stagegate()
        .current_dir(dir)
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).expect("status JSON");
    rows.iter()
        .map(|r| {
            (
                format!("{} {}/{}", r["kind"], r["namespace"], r["name"]).replace('"', ""),
                r["ready"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_readme_try_it_block_works_from_a_fresh_clone() {
    let readme = readme();
    // The main command, as written: `cargo run --locked -- run --dir examples`.
    let main = sh_block_after(&readme, "## The two commands")
        .into_iter()
        .find(|l| l.starts_with("cargo run --locked -- "))
        .expect("the main command");
    let args: Vec<&str> = main
        .strip_prefix("cargo run --locked -- ")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(args[..2], ["run", "--dir"], "{main}");
    let try_it: Vec<String> = sh_block_after(&readme, "## Try it")
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(try_it.len(), 3, "three lines: {try_it:?}");
    assert!(try_it[1].contains("localhost:8080/v1/login"), "{try_it:?}");
    assert!(try_it[2].contains("localhost:8080/v1/models"), "{try_it:?}");

    // A fresh clone: the repository layout with examples/, nothing under .stagegate/.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("stagegate");
    copy_examples(&repo.join("examples"));
    let mut cmd = support::stagegate();
    cmd.current_dir(&repo).args(&args);
    let r = Running::spawn(cmd, tmp.path());
    let api = ready_client(&r);
    let addr = api.base().strip_prefix("http://").unwrap().to_string();
    let banner = r.stdout();
    for line in [
        "store:      .stagegate/store.db",
        "secrets:    .stagegate/secrets",
        "api:        http://",
    ] {
        assert!(banner.contains(line), "{line:?} in\n{banner}");
    }

    // Every object Ready but the documented exception, and the log names it.
    let not_ready: Vec<String> = statuses(&repo)
        .into_iter()
        .filter(|(_, ready)| !ready)
        .map(|(o, _)| o)
        .collect();
    assert_eq!(not_ready, ["User ml-platform/maria"]);
    assert!(
        r.log()
            .contains("object not ready: User ml-platform/maria: Secret ml-platform/maria-password does not exist"),
        "{}",
        r.log()
    );

    // The "Try it" block, line by line in one shell (as typed in a terminal).
    let script = try_it.join("\n").replace("localhost:8080", &addr);
    let out = sh(&repo, &script);
    let models: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON: {out}"));
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap_or_else(|| panic!("a model list: {out}"))
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["churn-model", "fraud-detector"], "{out}");

    // "Accept an invitation": grace chooses her password with the delivered code, then the
    // code is spent.
    let accept: Vec<String> = sh_block_after(&readme, "### Accept an invitation")
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        accept[1].contains("localhost:8080/v1/invitations/accept"),
        "{accept:?}"
    );
    let script = accept.join("\n").replace("localhost:8080", &addr);
    let out = sh(&repo, &script);
    let account: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("JSON: {out}"));
    assert_eq!(account["username"], "grace", "{out}");
    assert_eq!(account["passwordSource"], "chosen", "{out}");
    let text =
        std::fs::read_to_string(repo.join(".stagegate/secrets/ml-platform/grace-invitation.yaml"))
            .unwrap();
    let (_, _, data) = stagegate::secrets::parse_secret_manifest(&text).unwrap();
    let code = String::from_utf8(data["invitation"].clone()).unwrap();
    let again = api.post(
        "/v1/invitations/accept",
        None,
        &serde_json::json!({"code": code, "password": "another good password"}),
    );
    assert_eq!(again.status, 409, "the code works once: {}", again.text);

    // The one command that provides maria's Secret makes every object Ready.
    let provide = readme
        .lines()
        .find(|l| {
            l.starts_with("mkdir -p .stagegate/secrets/ml-platform") && l.contains("maria-password")
        })
        .expect("the command providing maria's password");
    sh(&repo, provide);
    wait_for(&r, 60, "maria Ready", || {
        statuses(&repo)
            .iter()
            .all(|(_, ready)| *ready)
            .then_some(())
    });
    wait_for(&r, 60, "the log saying all objects are ready", || {
        r.log().contains("all objects ready").then_some(())
    });
    let password = provide
        .split_once("password: ")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("the password in the command")
        .0;
    // The status is committed before the API's index is refreshed: wait for the index.
    wait_for(&r, 60, "maria's login with the provided password", || {
        (api.login("maria", password).status == 200).then_some(())
    });
    assert_eq!(r.terminate().code(), Some(0));
}
