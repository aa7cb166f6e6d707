//! Access domains (issue 18) through the real binary: `validate` with
//! file:line, `apply` + `can-i --store` (what is granted), the directory
//! daemon, `diff` escalations, and the controller on the test API server.

mod kube;

use crate::daemon::harness::{status_of, wait_for, Workspace};
use crate::support::{self, stderr, stdout};
use serde_json::Value;
use std::path::Path;

/// The platform's own files at the root: unpinned, so global.
const PLATFORM: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: platform}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: ada-admin, namespace: platform}
spec: {user: ada, role: Admin}
";

/// Pins: folder acme to customer acme, folder globex to customer globex.
const PINS: &str = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: acme}
spec:
  folder: acme
  scope: {customer: acme}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: globex}
spec:
  folder: globex
  scope: {customer: globex}
";

/// Acme's Customer Administrator, who delegates project fraud to folder acme/fraud.
const ACME: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: carol, namespace: acme}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: carol-admin, namespace: acme}
spec:
  user: carol
  role: Admin
  scope: {customer: acme}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessDelegation
metadata: {name: fraud, namespace: acme}
spec: {project: fraud, domain: fraud}
";

/// The fraud team: what it may declare, and (marked) what it may not.
const FRAUD: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: frank, namespace: acme-fraud}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-admin, namespace: acme-fraud}
spec:
  user: frank
  role: Admin
  scope: {customer: acme, project: fraud}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: fraud-ci, namespace: acme-fraud}
spec:
  role: Deployer
  scope: {customer: acme, project: fraud}
  owner: frank
  validity: 30d
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-global-admin, namespace: acme-fraud}
spec:
  user: frank
  role: Admin  # <-- global Admin
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-acme-admin, namespace: acme-fraud}
spec:
  user: frank
  role: Admin
  scope: {customer: acme}  # <-- Admin at its customer
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-churn-analyst, namespace: acme-fraud}
spec:
  user: frank
  role: Analyst
  scope: {customer: acme, project: churn}  # <-- Analyst in a sibling project
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: fraud-wide, namespace: acme-fraud}
spec:
  role: Manager
  scope: {customer: acme}  # <-- a token at the customer
  owner: frank
  validity: 30d
---
apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata: {name: churn-deploy, namespace: acme-fraud}
spec:
  model: churn-model
  scope: {customer: acme, project: churn}  # <-- a model of a sibling project
  from: None
  to: Dev
  requestedBy: frank
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: ada  # <-- a User declared elsewhere (the platform's)
  namespace: acme-fraud
spec: {state: Revoked}
";

/// Writes `files` (path relative to `root`, text) below `root`.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The organization above, in `root`.
fn organization(root: &Path) {
    tree(
        root,
        &[
            ("platform.yaml", PLATFORM),
            ("access-domains.yaml", PINS),
            ("acme/admins.yaml", ACME),
            ("acme/fraud/team.yaml", FRAUD),
        ],
    );
}

/// 1-based lines of `text` holding the marker `# <--`.
fn marked_lines(text: &str) -> Vec<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("# <--"))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

fn validate_json(args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let o = support::run(&[&["validate", "--output", "json"][..], args].concat());
    let diags = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
    (o.status.code(), diags)
}

fn outside(diags: &[Value]) -> Vec<&Value> {
    diags
        .iter()
        .filter(|d| d["reason"] == "OutsideAccessDomain")
        .collect()
}

#[test]
fn validate_reports_each_out_of_domain_declaration_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    organization(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    let (code, diags) = validate_json(&[dir]);
    assert_eq!(code, Some(1));
    let team = format!("{dir}/acme/fraud/team.yaml");
    let hits = outside(&diags);
    let mut lines: Vec<u64> = hits.iter().map(|d| d["line"].as_u64().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, marked_lines(FRAUD), "{hits:#?}");
    for d in &hits {
        assert_eq!(d["file"], team.as_str());
        assert_eq!(d["severity"], "error");
        let msg = d["message"].as_str().unwrap();
        // Names the domain and its pin.
        assert!(msg.contains("folder acme/fraud"), "{msg}");
        assert!(
            msg.contains("acme/fraud by AccessDelegation acme/fraud"),
            "{msg}"
        );
    }
    let names: Vec<&str> = hits.iter().map(|d| d["name"].as_str().unwrap()).collect();
    for refused in [
        "frank-global-admin",
        "frank-acme-admin",
        "frank-churn-analyst",
        "fraud-wide",
        "churn-deploy",
        "ada",
    ] {
        assert!(names.contains(&refused), "{refused} not refused: {names:?}");
    }
    // In-scope declarations and the platform's own are not touched.
    assert!(
        diags
            .iter()
            .filter(|d| d["severity"] == "error")
            .all(|d| d["file"] == team.as_str()),
        "{diags:#?}"
    );
    for fine in ["frank", "frank-admin", "fraud-ci"] {
        assert!(!names.contains(&fine), "{fine} refused");
    }
    // The platform's ada keeps her username: the team's copy is the one refused.
    assert!(
        !diags.iter().any(|d| d["namespace"] == "platform"),
        "{diags:#?}"
    );

    // Text output: file:line first.
    let o = support::run(&["validate", dir]);
    let text = stdout(&o);
    let first = marked_lines(FRAUD)[0];
    assert!(
        text.contains(&format!("{team}:{first}: AccessBinding acme-fraud/frank-global-admin: spec.role: AccessBinding grants Admin to frank at global, outside its access domain: folder acme/fraud")),
        "{text}"
    );
}

#[test]
fn apply_grants_in_scope_bindings_only() {
    let ws = Workspace::new();
    organization(&ws.manifests());
    let o = ws.apply();
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let store = ws.store_path();
    let can = |who: &str, action: &str, scope: &str| {
        let o = support::run(&[
            "can-i",
            "--store",
            store.to_str().unwrap(),
            "--as",
            who,
            action,
            "--scope",
            scope,
        ]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
        o.status.code() == Some(0)
    };
    assert!(
        can("frank", "users:manage", "acme/fraud"),
        "in-scope Admin applies"
    );
    assert!(
        !can("frank", "users:manage", "acme"),
        "Admin at the customer refused"
    );
    assert!(
        !can("frank", "users:manage", "globex"),
        "global Admin refused"
    );
    assert!(can("carol", "users:manage", "acme"), "the customer's admin");
    assert!(
        can("ada", "users:manage", "globex"),
        "the platform's ada is untouched"
    );
    let st = ws.store();
    assert!(
        status_of(&st, "AccessBinding", "acme-fraud", "frank-admin")
            .unwrap()
            .0
    );
    assert!(
        status_of(&st, "ApiToken", "acme-fraud", "fraud-ci")
            .unwrap()
            .0
    );
    for (kind, name) in [
        ("AccessBinding", "frank-global-admin"),
        ("AccessBinding", "frank-churn-analyst"),
        ("ApiToken", "fraud-wide"),
        ("ModelStageRequest", "churn-deploy"),
        ("User", "ada"),
    ] {
        let (ready, reason) = status_of(&st, kind, "acme-fraud", name).unwrap();
        // The User claims a username the platform's User holds: that conflict is its status.
        let expected = if kind == "User" {
            "UsernameConflict"
        } else {
            "Invalid"
        };
        assert!(!ready && reason == expected, "{kind} {name}: {reason}");
    }
    let status = stdout(&ws.status());
    assert!(status.contains("OutsideAccessDomain"), "{status}");
    // The token at the customer was never issued.
    assert!(!ws
        .secrets()
        .join("acme-fraud/fraud-wide-token.yaml")
        .exists());
    assert!(ws.secrets().join("acme-fraud/fraud-ci-token.yaml").exists());
}

#[test]
fn a_customer_delegates_one_project_and_only_within_its_customer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let team = "apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: vic-admin, namespace: globex-vision}
spec:
  user: vic
  role: Admin
  scope: {customer: globex, project: vision}
";
    tree(
        root,
        &[
            ("access-domains.yaml", PINS),
            ("globex/vision/team.yaml", team),
        ],
    );
    let dir = root.to_str().unwrap();
    // Before the delegation the sub-folder is the customer's: a project grant is within it.
    let (code, diags) = validate_json(&[dir]);
    assert_eq!(code, Some(0), "{diags:#?}");
    // Globex delegates vision; the folder may then grant only within globex/vision.
    let delegate = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDelegation
metadata: {name: vision, namespace: globex}
spec: {project: vision, domain: vision}
";
    let widened = team.replace("project: vision}", "project: search}");
    tree(
        root,
        &[
            ("globex/delegations.yaml", delegate),
            ("globex/vision/team.yaml", &widened),
        ],
    );
    let (code, diags) = validate_json(&[dir]);
    assert_eq!(code, Some(1));
    let hits = outside(&diags);
    assert_eq!(hits.len(), 1, "{diags:#?}");
    assert!(
        hits[0]["message"]
            .as_str()
            .unwrap()
            .contains("pinned to globex/vision by AccessDelegation globex/vision"),
        "{hits:#?}"
    );

    // A delegation may not reach outside the customer's folder, nor be made by a project folder.
    let escape = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDelegation
metadata: {name: steal, namespace: globex}
spec: {project: payments, domain: ../acme}
";
    let from_project = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDelegation
metadata: {name: sub, namespace: globex-vision}
spec: {project: other, domain: sub}
";
    tree(
        root,
        &[
            ("globex/vision/team.yaml", team),
            ("globex/escape.yaml", escape),
            ("globex/vision/delegations.yaml", from_project),
            ("acme/x.yaml", "apiVersion: stagegate.dev/v1alpha1\nkind: AccessDelegation\nmetadata: {name: other-customer, namespace: acme}\nspec: {project: vision, domain: ../globex/vision}\n"),
        ],
    );
    let (_, diags) = validate_json(&[dir]);
    let refused: Vec<&str> = diags
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    // `../acme` fails the folder pattern (SchemaViolation); the others are outside the domain.
    assert!(refused.contains(&"steal"), "{diags:#?}");
    assert!(refused.contains(&"sub"), "{diags:#?}");
    assert!(refused.contains(&"other-customer"), "{diags:#?}");
    assert!(!refused.contains(&"vic-admin"), "{diags:#?}");

    // An AccessDomain anywhere but a pin file pins nothing.
    tree(root, &[("globex/vision/pin.yaml", "apiVersion: stagegate.dev/v1alpha1\nkind: AccessDomain\nmetadata: {name: mine}\nspec:\n  folder: globex/vision\n  scope: {}\n")]);
    let (_, diags) = validate_json(&[dir]);
    assert!(
        outside(&diags).iter().any(|d| d["name"] == "mine"),
        "{diags:#?}"
    );
}

#[test]
fn the_project_domain_administers_its_project_through_the_daemon() {
    let ws = Workspace::new();
    let m = ws.manifests();
    tree(
        &m,
        &[
            ("platform.yaml", PLATFORM),
            ("access-domains.yaml", PINS),
            ("acme/admins.yaml", ACME),
        ],
    );
    let run = ws.start(&[]);
    let st = ws.store();
    wait_for(&run, 30, "carol's binding", || {
        status_of(&st, "AccessBinding", "acme", "carol-admin").filter(|s| s.0)
    });
    // The fraud team adds its admin, and (refused) a global Admin.
    let team = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: frank, namespace: acme-fraud}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-admin, namespace: acme-fraud}
spec:
  user: frank
  role: Admin
  scope: {customer: acme, project: fraud}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-everything, namespace: acme-fraud}
spec: {user: frank, role: Admin}
";
    tree(&m, &[("acme/fraud/team.yaml", team)]);
    let refused = wait_for(&run, 30, "frank-everything refused", || {
        status_of(&st, "AccessBinding", "acme-fraud", "frank-everything")
    });
    assert_eq!(refused, (false, "Invalid".to_string()));
    let granted = wait_for(&run, 30, "frank-admin", || {
        status_of(&st, "AccessBinding", "acme-fraud", "frank-admin")
    });
    assert!(granted.0, "{granted:?}");
    assert!(run.log().contains("OutsideAccessDomain"), "{}", run.log());
    // The pin file breaks: nothing below it applies (fail closed), the platform's own file still does.
    ws.write("access-domains.yaml", "apiVersion: stagegate.dev/v1alpha1\nkind: AccessDomain\nmetadata: {name: acme}\nspec: {folder: acme, scope: {customer: acme}, typo: 1}\n");
    wait_for(&run, 30, "frank-admin withdrawn", || {
        status_of(&st, "AccessBinding", "acme-fraud", "frank-admin").filter(|s| !s.0)
    });
    assert!(
        status_of(&st, "AccessBinding", "platform", "ada-admin")
            .unwrap()
            .0
    );
    drop(run);
}

#[test]
fn diff_flags_a_widened_pin_and_a_declaration_leaving_its_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, head) = (tmp.path().join("base"), tmp.path().join("head"));
    organization(&base);
    organization(&head);
    // Head: the platform widens acme's pin to global, and the fraud team's token moves to the root.
    let widened = PINS.replace(
        "folder: globex\n  scope: {customer: globex}",
        "folder: globex\n  scope: {}",
    );
    let fraud_in_scope: String = FRAUD
        .split("\n---\n")
        .take(3)
        .collect::<Vec<_>>()
        .join("\n---\n")
        + "\n";
    for d in [&base, &head] {
        tree(d, &[("acme/fraud/team.yaml", &fraud_in_scope)]);
    }
    let (token, rest): (Vec<&str>, Vec<&str>) = fraud_in_scope
        .split("\n---\n")
        .partition(|d| d.contains("kind: ApiToken"));
    tree(
        &head,
        &[
            ("access-domains.yaml", &widened),
            ("acme/fraud/team.yaml", &rest.join("\n---\n")),
            ("moved.yaml", token[0]),
        ],
    );
    let o = support::run(&[
        "diff",
        "--base",
        base.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let esc: Vec<(String, String, String)> = v["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().into(),
                e["principal"]["name"].as_str().unwrap().into(),
                e["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        esc.iter().any(|(k, who, m)| k == "DomainWidened"
            && who == "folder globex"
            && m.contains("pinned to globex → global")),
        "{esc:#?}"
    );
    assert!(
        esc.iter().any(|(k, who, m)| k == "LeavesDomain"
            && who == "folder acme/fraud"
            && m.contains("ApiToken acme-fraud/fraud-ci")),
        "{esc:#?}"
    );
    // A narrowed pin is no escalation.
    let narrowed = PINS.replace(
        "folder: acme\n  scope: {customer: acme}",
        "folder: acme\n  scope: {customer: acme, project: fraud}",
    );
    tree(
        &head,
        &[
            ("access-domains.yaml", &narrowed),
            ("acme/fraud/team.yaml", &fraud_in_scope),
        ],
    );
    std::fs::remove_file(head.join("moved.yaml")).unwrap();
    let o = support::run(&[
        "diff",
        "--base",
        base.to_str().unwrap(),
        "--head",
        head.to_str().unwrap(),
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        !v["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "DomainWidened"),
        "{v:#}"
    );
}

#[test]
fn required_pinning_refuses_unpinned_declarations() {
    let tmp = tempfile::tempdir().unwrap();
    organization(tmp.path());
    let dir = tmp.path().to_str().unwrap();
    let (_, diags) = validate_json(&["--require-access-domain", dir]);
    let unpinned: Vec<&Value> = outside(&diags)
        .into_iter()
        .filter(|d| {
            d["message"]
                .as_str()
                .unwrap()
                .contains("pinning is required")
        })
        .collect();
    let names: Vec<&str> = unpinned
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "ada-admin"], "{names:?}");
    // Pinning the platform's folder globally makes them count again.
    tree(
        tmp.path(),
        &[
            ("platform/platform.yaml", PLATFORM),
            ("access-domains.yaml", &format!("{PINS}---\napiVersion: stagegate.dev/v1alpha1\nkind: AccessDomain\nmetadata: {{name: platform}}\nspec: {{folder: platform, scope: {{}}}}\n")),
        ],
    );
    std::fs::remove_file(tmp.path().join("platform.yaml")).unwrap();
    let (_, diags) = validate_json(&["--require-access-domain", dir]);
    assert!(
        !diags.iter().any(|d| d["namespace"] == "platform"),
        "{diags:#?}"
    );
}

#[test]
fn tenants_example_validates_cleanly_on_its_own() {
    let o = support::run(&["validate", "--require-access-domain", "examples/tenants"]);
    // Without --require-access-domain the pin file itself sits at the root and is fine;
    // with it, the root's files must be pinned too, and the example pins only folders.
    let o2 = support::run(&["validate", "examples/tenants"]);
    assert!(o2.status.success(), "{}{}", stdout(&o2), stderr(&o2));
    assert_eq!(stdout(&o2), "");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}
