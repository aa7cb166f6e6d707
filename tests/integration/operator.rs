//! Issue 16 through the real binary: `stagegate audit` (text, JSON, each
//! filter), `GET /v1/audit` (global Admins, pages), broken manifest files in
//! `status`, `/readyz` and `/metrics`, and `can-i`'s incomplete questions.

use crate::api::client::ApiClient;
use crate::daemon::harness::{copy_examples, wait_for, Workspace};
use crate::firstrun::{ready_client, secret_value};
use crate::support;
use serde_json::Value;
use std::path::Path;

/// `stagegate apply` of `dir` into `state/store.db` and `state/secrets`, with cheap hashing.
pub fn apply_into(dir: &Path, state: &Path) -> std::process::Output {
    support::run(&[
        "apply",
        "--dir",
        dir.to_str().unwrap(),
        "--store",
        state.join("store.db").to_str().unwrap(),
        "--secrets-dir",
        state.join("secrets").to_str().unwrap(),
        "--argon2-memory-kib",
        "8",
        "--argon2-iterations",
        "1",
    ])
}

/// A store with `examples/` applied, and its path.
fn applied_examples() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let o = apply_into(Path::new("examples"), tmp.path());
    assert_eq!(o.status.code(), Some(1), "maria waits for her Secret");
    let store = tmp.path().join("store.db").to_str().unwrap().to_string();
    (tmp, store)
}

fn audit(store: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit", "--store", store];
    all.extend_from_slice(args);
    support::run(&all)
}

/// `stagegate audit --output json` with `args`: the entries.
fn audit_json(store: &str, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let o = audit(store, &all);
    assert_eq!(o.status.code(), Some(0), "{}", support::stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn actions(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| format!("{} {}", e["action"], e["object"]["name"]).replace('"', ""))
        .collect()
}

/// Every secret value delivered under `dir` (passwords, API keys, tokens).
fn delivered_secrets(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let text = std::fs::read_to_string(&e).unwrap();
        let (_, _, data) = stagegate::secrets::parse_secret_manifest(&text).unwrap();
        for (k, v) in data {
            if k != "username" {
                out.push(String::from_utf8(v).unwrap());
            }
        }
    }
    assert!(!out.is_empty());
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn audit_shows_the_log_oldest_first_in_text_and_json_and_never_a_secret() {
    let (tmp, store) = applied_examples();
    let all = audit_json(&store, &[]);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "newest last: {ids:?}");
    let acts = actions(&all);
    for want in [
        "user.create ada",
        "binding.create ada-admin",
        "token.issue fraud-ci-deployer",
        "request.decide churn-model-003-reject",
        "model.stage churn-model-003-reject",
    ] {
        assert!(acts.iter().any(|a| a == want), "{want} in {acts:?}");
    }
    let o = audit(&store, &[]);
    assert_eq!(o.status.code(), Some(0));
    let text = support::stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TIME") && lines[0].contains("ACTION"));
    assert_eq!(lines.len(), all.len() + 1, "one row per entry");
    assert!(
        lines.iter().any(|l| l.contains("binding.create")
            && l.contains("AccessBinding ml-platform/dan-developer-acme")
            && l.contains("role=Developer scope=acme user=dan")),
        "{text}"
    );
    let json = String::from_utf8(audit(&store, &["-o", "json"]).stdout).unwrap();
    for secret in delivered_secrets(&tmp.path().join("secrets")) {
        assert!(!text.contains(&secret) && !json.contains(&secret));
    }
    assert!(!json.contains("$argon2"), "no password hash");
}

#[test]
fn audit_filters_by_user_object_and_time() {
    let (_tmp, store) = applied_examples();
    // --user: the user, its binding, the token it owns, the requests it made.
    let dan = actions(&audit_json(&store, &["--user", "dan"]));
    assert!(dan.contains(&"user.create dan".to_string()), "{dan:?}");
    assert!(dan.contains(&"binding.create dan-developer-acme".to_string()));
    assert!(!dan.iter().any(|a| a.contains("ada")), "{dan:?}");
    let maria = actions(&audit_json(&store, &["--user", "maria"]));
    assert!(
        maria.contains(&"token.issue acme-model-monitor".to_string()),
        "owner: {maria:?}"
    );
    assert!(actions(&audit_json(&store, &["--user", "nobody"])).is_empty());

    // --object: one object only; the kind is not case-sensitive.
    let one = audit_json(
        &store,
        &["--object", "accessbinding/ml-platform/alan-analyst-fraud"],
    );
    assert_eq!(actions(&one), ["binding.create alan-analyst-fraud"]);
    assert_eq!(one[0]["new"]["scope"], "acme/fraud");

    // --since: a duration, a time, a date.
    let all = audit_json(&store, &[]);
    assert_eq!(audit_json(&store, &["--since", "1h"]).len(), all.len());
    let last = all.last().unwrap()["at"].as_str().unwrap().to_string();
    let recent = audit_json(&store, &["--since", &last]);
    assert!(!recent.is_empty() && recent.iter().all(|e| e["at"].as_str() >= Some(&last)));
    assert!(audit_json(&store, &["--since", "2999-01-01"]).is_empty());
    let none = audit(&store, &["--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(none.status.code(), Some(0));
    assert!(support::stderr(&none).contains("no audit entries match"));

    // Filters combine.
    let both = audit_json(
        &store,
        &["--user", "dan", "--object", "User/ml-platform/dan"],
    );
    assert!(
        actions(&both).iter().all(|a| a.ends_with(" dan")),
        "{both:?}"
    );

    // Usage errors exit 2 and say what is wrong.
    for (args, says) in [
        (vec!["--object", "User/ada"], "KIND/NAMESPACE/NAME"),
        (vec!["--since", "last tuesday"], "neither a duration"),
    ] {
        let o = audit(&store, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            support::stderr(&o).contains(says),
            "{}",
            support::stderr(&o)
        );
    }
    let o = support::run(&["audit", "--store", "no/such/store.db"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(support::stderr(&o).contains("no store at no/such/store.db"));
}

#[test]
fn audit_api_pages_for_global_admins_only() {
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let r = ws.start(&[]);
    let api: ApiClient = ready_client(&r);
    let ns = ws.secrets().join("ml-platform");
    let ada = api.session(
        "ada",
        &secret_value(&r, &ns.join("ada-password.yaml"), "password"),
    );
    let alan = api.session(
        "alan",
        &secret_value(&r, &ns.join("alan-password.yaml"), "password"),
    );

    // Pages of 7 until the last, in order, with nothing lost or repeated.
    let mut seen: Vec<i64> = Vec::new();
    let mut path = "/v1/audit?limit=7".to_string();
    loop {
        let page = api.get(&path, Some(&ada));
        assert_eq!(page.status, 200, "{}", page.text);
        let entries = page.body["entries"].as_array().unwrap();
        assert!(entries.len() <= 7);
        seen.extend(entries.iter().map(|e| e["id"].as_i64().unwrap()));
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/audit?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let cli = audit_json(ws.store_path().to_str().unwrap(), &[]);
    assert_eq!(
        seen.len(),
        cli.len(),
        "the API and the CLI read the same log"
    );
    assert!(seen.len() > 14, "several pages");

    let one = api.get(
        "/v1/audit?object=ApiToken/ml-platform/fraud-ci-deployer&user=dora",
        Some(&ada),
    );
    assert_eq!(
        actions(one.body["entries"].as_array().unwrap())[0],
        "token.issue fraud-ci-deployer"
    );
    let none = api.get("/v1/audit?since=2999-01-01", Some(&ada));
    assert_eq!(none.body["entries"], serde_json::json!([]));

    // An Analyst, no credentials, and malformed questions.
    let denied = api.get("/v1/audit", Some(&alan));
    assert_eq!((denied.status, denied.error()), (403, "forbidden"));
    assert_eq!(api.get("/v1/audit", None).status, 401);
    for bad in [
        "/v1/audit?limit=0",
        "/v1/audit?limit=5000",
        "/v1/audit?cursor=abc",
        "/v1/audit?object=User",
        "/v1/audit?since=soon",
        "/v1/audit?colour=blue",
    ] {
        let r = api.get(bad, Some(&ada));
        assert_eq!(
            (r.status, r.error()),
            (400, "bad_request"),
            "{bad}: {}",
            r.text
        );
    }
    assert_eq!(r.terminate().code(), Some(0));
}

const BROKEN: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: eve
  namespace: ml-platform
spec:
  username: [eve
";

fn metric(api: &ApiClient, name: &str) -> Option<String> {
    api.get("/metrics", None)
        .text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
}

#[test]
fn a_broken_file_shows_in_status_readyz_and_metrics_until_fixed() {
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let store = ws.store_path().to_str().unwrap().to_string();
    assert_eq!(
        api.get("/readyz", None).body["brokenFiles"],
        serde_json::json!([])
    );
    assert_eq!(
        metric(&api, "stagegate_manifest_files_broken").as_deref(),
        Some("0")
    );

    ws.write("eve.yaml", BROKEN);
    let broken = wait_for(&r, 60, "/readyz listing eve.yaml", || {
        let body = api.get("/readyz", None).body;
        let files = body["brokenFiles"].as_array()?.clone();
        (!files.is_empty()).then_some(files)
    });
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0]["file"].as_str().unwrap().ends_with("eve.yaml"));
    assert_eq!(broken[0]["line"], 7);
    assert_eq!(broken[0]["reason"], "InvalidYaml");
    assert_eq!(api.get("/readyz", None).status, 200, "still serving");
    assert_eq!(
        metric(&api, "stagegate_manifest_files_broken").as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(&api, "stagegate_objects{kind=\"File\",ready=\"false\"}"),
        None,
        "a file is not a declared object"
    );

    // `status`: a row with the file, the line and the reason; exit 1.
    let o = support::run(&["status", "--store", &store]);
    assert_eq!(o.status.code(), Some(1));
    let row = support::stdout(&o)
        .lines()
        .find(|l| l.starts_with("File "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", support::stdout(&o)));
    assert!(
        row.contains("eve.yaml")
            && row.contains("False")
            && row.contains("InvalidYaml")
            && row.contains("line 7:"),
        "{row}"
    );
    let json: Vec<Value> =
        serde_json::from_slice(&support::run(&["status", "--store", &store, "-o", "json"]).stdout)
            .unwrap();
    assert!(json
        .iter()
        .any(|o| o["kind"] == "File" && o["reason"] == "InvalidYaml"));

    // Fixed: the row, the body entry and the gauge go.
    ws.write("eve.yaml", &BROKEN.replace("[eve", "eve"));
    wait_for(&r, 60, "/readyz with no broken file", || {
        (api.get("/readyz", None).body["brokenFiles"] == serde_json::json!([])).then_some(())
    });
    assert_eq!(
        metric(&api, "stagegate_manifest_files_broken").as_deref(),
        Some("0")
    );
    let o = support::run(&["status", "--store", &store]);
    assert!(
        !support::stdout(&o).contains("File "),
        "{}",
        support::stdout(&o)
    );
    assert_eq!(r.terminate().code(), Some(0));
}

#[test]
fn a_file_that_cannot_be_read_is_a_broken_file_for_apply_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("manifests");
    support::copy_dir(&support::root().join("examples"), &dir);
    // A merge conflict left in a file: the variant a reviewer meets most.
    let users = std::fs::read_to_string(dir.join("users.yaml")).unwrap();
    std::fs::write(
        dir.join("users.yaml"),
        format!("<<<<<<< HEAD\n{users}=======\n>>>>>>> branch\n"),
    )
    .unwrap();
    let o = apply_into(&dir, tmp.path());
    let store = tmp.path().join("store.db");
    assert_eq!(o.status.code(), Some(1));
    assert!(support::stdout(&o)
        .lines()
        .any(|l| l.starts_with("File ") && l.contains("users.yaml")));
    let o = support::run(&["status", "--store", store.to_str().unwrap(), "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let file = rows
        .iter()
        .find(|r| r["kind"] == "File")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert!(file["name"].as_str().unwrap().ends_with("users.yaml"));
    assert_eq!(file["ready"], false);
    assert!(
        file["message"].as_str().unwrap().starts_with("line "),
        "{file}"
    );
}

fn can_i(args: &[&str]) -> std::process::Output {
    let mut all = vec!["can-i", "--dir", "examples"];
    all.extend_from_slice(args);
    support::run(&all)
}

#[test]
fn can_i_incomplete_questions_are_usage_errors() {
    for (args, says) in [
        (
            vec!["--as", "maria", "models:transition", "fraud-detector"],
            "needs a model and a target stage (--to)",
        ),
        (
            vec!["--as", "dan", "models:transition", "--to", "Staging"],
            "needs a model and a target stage",
        ),
        (
            vec!["--as", "maria", "models:view"],
            "models:view needs a model",
        ),
        (
            vec!["--as", "dan", "models:deploy", "--explain"],
            "models:deploy needs a model",
        ),
        // Whoever asks: an unknown user's incomplete question is still a usage error.
        (vec!["--as", "nobody", "models:view"], "needs a model"),
    ] {
        let o = can_i(&args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            support::stdout(&o)
        );
        assert!(support::stdout(&o).is_empty(), "no yes/no answer: {args:?}");
        assert!(
            support::stderr(&o).contains(says),
            "{args:?}: {}",
            support::stderr(&o)
        );
    }
    // Complete questions still answer yes (0) or no (1).
    assert_eq!(
        can_i(&["--as", "maria", "models:view", "fraud-detector"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        can_i(&["--as", "nobody", "users:manage"]).status.code(),
        Some(1)
    );
    assert_eq!(
        can_i(&["--as", "alan", "users:manage"]).status.code(),
        Some(1)
    );
}
