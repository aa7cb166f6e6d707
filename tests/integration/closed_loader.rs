//! Issue 11 "Fail closed", the loader's and the secrets sink's share, through
//! the real binary: encoding (BOM, non-UTF-8, deep nesting, error lines),
//! names that become paths (symbolic links in the watched and the secrets
//! directory) and stage-request history (order by request, not file name;
//! decided requests are records).

use crate::daemon::harness::{status_of, wait_for, Workspace};
use crate::support::{stagegate, stderr, stdout};
use serde_json::Value;
use stagegate::store::{SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A workspace for `apply`: manifests, store and secrets directory, in one temp dir.
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let d = Dirs {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(d.manifests()).unwrap();
        d
    }
    fn manifests(&self) -> PathBuf {
        self.tmp.path().join("manifests")
    }
    fn secrets(&self) -> PathBuf {
        self.tmp.path().join("state/secrets")
    }
    fn store_path(&self) -> PathBuf {
        self.tmp.path().join("state/store.db")
    }
    fn outside(&self) -> PathBuf {
        let p = self.tmp.path().join("outside");
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let p = self.manifests().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    /// `stagegate apply --output json`: exit code, outcomes, stderr.
    fn apply(&self) -> (Option<i32>, Vec<Value>, String) {
        let o = stagegate()
            .args(["apply", "--output", "json", "--dir"])
            .arg(self.manifests())
            .arg("--store")
            .arg(self.store_path())
            .arg("--secrets-dir")
            .arg(self.secrets())
            .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"])
            .output()
            .unwrap();
        let outcomes = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!("apply printed no JSON ({e}): {}{}", stdout(&o), stderr(&o))
        });
        (o.status.code(), outcomes, stderr(&o))
    }
    fn validate(&self) -> (Option<i32>, Vec<Value>) {
        validate_json(&self.manifests())
    }
    fn can_i(&self, with_store: bool, args: &[&str]) -> Output {
        let mut c = stagegate();
        c.arg("can-i").arg("--dir").arg(self.manifests());
        if with_store {
            c.arg("--store").arg(self.store_path());
        }
        c.args(args).output().unwrap()
    }
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.store_path()).unwrap()
    }
}

fn validate_json(path: &Path) -> (Option<i32>, Vec<Value>) {
    let o = stagegate()
        .args(["validate", "--output", "json"])
        .arg(path)
        .output()
        .unwrap();
    let diags = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("validate printed no JSON ({e}): {}", stderr(&o)));
    (o.status.code(), diags)
}

fn user(name: &str) -> String {
    format!("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: {name}\n  namespace: t\nspec: {{}}\n")
}

fn outcome<'a>(outcomes: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    outcomes
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
}

fn ready(outcomes: &[Value], kind: &str, name: &str) -> bool {
    outcome(outcomes, kind, name).is_some_and(|o| o["ready"] == true)
}

/// The one diagnostic of `reason` about `file` (by file name).
fn diag_of<'a>(diags: &'a [Value], file: &str, reason: &str) -> &'a Value {
    diags
        .iter()
        .find(|d| d["reason"] == reason && d["file"].as_str().is_some_and(|f| f.ends_with(file)))
        .unwrap_or_else(|| panic!("no {reason} for {file}: {diags:#?}"))
}

// ---- Encoding -------------------------------------------------------------

#[test]
fn encoding_bom_before_a_two_document_file_loads_both_documents() {
    let d = Dirs::new();
    let binding = "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: ada-admin\n  namespace: t\nspec:\n  user: ada\n  role: Admin\n";
    d.write(
        "team.yaml",
        format!("\u{FEFF}# the team\n{}---\n{binding}", user("ada")),
    );
    // A BOM before a `---` that opens the file, too.
    d.write("more.yml", format!("\u{FEFF}---\n{}", user("bob")));
    // And a BOM at the start of a later document (YAML allows one per document).
    d.write(
        "late.yaml",
        format!("{}---\n\u{FEFF}{}", user("cy"), user("dee")),
    );
    let (code, diags) = d.validate();
    assert_eq!((code, diags.len()), (Some(0), 0), "{diags:#?}");
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(0), "{err}");
    for (kind, name) in [
        ("User", "ada"),
        ("AccessBinding", "ada-admin"),
        ("User", "bob"),
        ("User", "cy"),
        ("User", "dee"),
    ] {
        assert!(ready(&outcomes, kind, name), "{kind} {name}: {outcomes:#?}");
    }
}

#[test]
fn encoding_bom_in_a_password_secret_file_is_read() {
    let d = Dirs::new();
    d.write("maria.yaml", "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: maria\n  namespace: t\nspec:\n  passwordSecretRef: {name: maria-pw, key: password}\n");
    std::fs::create_dir_all(d.secrets().join("t")).unwrap();
    std::fs::write(
        d.secrets().join("t/maria-pw.yaml"),
        "\u{FEFF}apiVersion: v1\nkind: Secret\nmetadata: {name: maria-pw, namespace: t}\nstringData:\n  password: a-long-enough-passphrase\n",
    )
    .unwrap();
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(0), "{err}\n{outcomes:#?}");
    assert!(ready(&outcomes, "User", "maria"), "{outcomes:#?}");
    assert!(!err.contains("maria-pw.yaml"), "{err}");
}

#[test]
fn encoding_non_utf8_is_that_files_invalid_yaml_in_apply_and_validate() {
    let d = Dirs::new();
    d.write("a.yaml", user("ada"));
    // Latin-1 on line 3 of one of three files; UTF-16 in a fourth.
    let mut latin1 = b"apiVersion: stagegate.dev/v1alpha1\nkind: User\n# caf\xE9\nmetadata:\n  name: eve\n  namespace: t\nspec: {}\n".to_vec();
    latin1.extend_from_slice(b"");
    d.write("b.yaml", latin1);
    d.write("c.yaml", user("bob"));
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(user("zed").encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    d.write("d.yaml", utf16);
    let (code, diags) = d.validate();
    assert_eq!(code, Some(1), "an error, not a failure of the directory");
    assert_eq!(diag_of(&diags, "b.yaml", "InvalidYaml")["line"], 3);
    assert_eq!(diag_of(&diags, "d.yaml", "InvalidYaml")["line"], 1);
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("b.yaml:3:") && err.contains("not UTF-8"),
        "{err}"
    );
    assert!(ready(&outcomes, "User", "ada") && ready(&outcomes, "User", "bob"));
    assert!(outcome(&outcomes, "User", "eve").is_none());
}

#[test]
fn encoding_deep_flow_and_block_nesting_is_refused_before_parsing() {
    let d = Dirs::new();
    d.write("a.yaml", user("ada"));
    // Flow nesting in a value (not the bare `[`), block nesting by
    // compact sequences, and by indentation.
    d.write(
        "flow.yaml",
        format!(
            "{}  scope: {}\n",
            user("f").replace("spec: {}\n", "spec:\n"),
            "{customer: ".repeat(200_000)
        ),
    );
    d.write(
        "seq.yaml",
        format!("# deep\nitems:\n{}x\n", "- ".repeat(200_000)),
    );
    let mut indented = String::from("apiVersion: v1\nkind: ConfigMap\ndata:\n");
    for i in 1..=120 {
        indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    d.write("indent.yaml", indented);
    let (code, diags) = d.validate();
    assert_eq!(code, Some(1));
    for (file, line) in [("flow.yaml", 7), ("seq.yaml", 3)] {
        let hit = diag_of(&diags, file, "InvalidYaml");
        assert_eq!(hit["line"], line, "{hit:#}");
        assert!(hit["message"]
            .as_str()
            .unwrap()
            .contains("nesting deeper than 64"));
    }
    assert!(diag_of(&diags, "indent.yaml", "InvalidYaml")["line"].as_u64() > Some(60));
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(1), "{err}");
    assert!(ready(&outcomes, "User", "ada"));
}

#[test]
fn encoding_yaml_error_lines_are_file_lines() {
    let d = Dirs::new();
    // An unclosed quote on the last line of the third document of a file.
    let text = format!(
        "{}---\n{}---\n# bob\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: \"bob\n",
        user("ada"),
        user("cy")
    );
    let last = text.lines().count();
    d.write("users.yaml", &text);
    // A fault after a `...` end marker in the middle document of another file.
    d.write(
        "more.yaml",
        format!(
            "{}...\n---\nkind: User\nmetadata:\n name: x\n  bad: [\n---\n{}",
            user("dee"),
            user("eli")
        ),
    );
    let (_, diags) = d.validate();
    let hit = diag_of(&diags, "users.yaml", "InvalidYaml");
    assert_eq!(hit["line"], last, "{hit:#}");
    let message = hit["message"].as_str().unwrap();
    assert!(message.contains(&format!("line {last}")), "{message}");
    let hit = diag_of(&diags, "more.yaml", "InvalidYaml");
    assert_eq!(hit["line"], 12, "{hit:#}");
}

// ---- Names that become paths: symbolic links -------------------------------

#[test]
fn paths_symlinks_never_lead_the_loader_out_of_the_watched_directory() {
    let d = Dirs::new();
    let outside = d.outside();
    std::fs::write(outside.join("intruder.yaml"), user("intruder")).unwrap();
    std::fs::create_dir_all(outside.join("more")).unwrap();
    std::fs::write(outside.join("more/other.yaml"), user("other")).unwrap();
    d.write("a.yaml", user("ada"));
    let m = d.manifests();
    std::os::unix::fs::symlink(outside.join("intruder.yaml"), m.join("link.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.join("more"), m.join("teams")).unwrap();
    std::os::unix::fs::symlink(m.join("gone.yaml"), m.join("dangling.yaml")).unwrap();
    // A link that stays inside is read (its target is in a hidden directory, not loaded on its own).
    d.write(".shared/bob.yaml", user("bob"));
    std::os::unix::fs::symlink(m.join(".shared/bob.yaml"), m.join("bob.yaml")).unwrap();
    // A FIFO named like a manifest is not a file to wait on.
    let fifo = std::process::Command::new("mkfifo")
        .arg(m.join("pipe.yaml"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let (code, diags) = d.validate();
    assert_eq!(code, Some(1), "{diags:#?}");
    assert!(diag_of(&diags, "pipe.yaml", "InvalidYaml")["message"]
        .as_str()
        .unwrap()
        .contains("not a regular file"));
    for f in ["link.yaml", "teams", "dangling.yaml"] {
        let hit = diag_of(&diags, f, "InvalidYaml");
        assert!(
            hit["message"].as_str().unwrap().contains("symbolic link"),
            "{hit:#}"
        );
    }
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(1), "{err}");
    assert!(ready(&outcomes, "User", "ada") && ready(&outcomes, "User", "bob"));
    for name in ["intruder", "other"] {
        assert!(
            outcome(&outcomes, "User", name).is_none(),
            "{name} read from outside"
        );
    }
}

#[test]
fn paths_the_daemon_never_follows_a_symlink_out_of_the_watched_directory() {
    let ws = Workspace::new();
    let outside = ws.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("x.yaml"), user("intruder")).unwrap();
    std::os::unix::fs::symlink(outside.join("x.yaml"), ws.manifests().join("x.yaml")).unwrap();
    // Latin-1 and deep nesting next to it: each only its own file's problem.
    std::fs::write(ws.manifests().join("latin1.yaml"), b"kind: User # \xE9\n").unwrap();
    ws.write("deep.yaml", &format!("a: {}\n", "[".repeat(100_000)));
    ws.write("ada.yaml", &user("ada"));
    let r = ws.start(&[]);
    wait_for(&r, 60, "ada reconciled", || {
        status_of(&ws.store(), "User", "t", "ada").filter(|s| s.0)
    });
    // A revocation after the hostile files is applied like any other change.
    ws.write(
        "ada.yaml",
        &user("ada").replace("spec: {}", "spec: {state: Revoked}"),
    );
    wait_for(&r, 60, "ada revoked", || {
        let state = ws.store().load_state().ok()?;
        state
            .users
            .values()
            .any(|u| u.username == "ada" && u.state == stagegate::resources::UserState::Revoked)
            .then_some(())
    });
    assert!(status_of(&ws.store(), "User", "t", "intruder").is_none());
    let log = r.log();
    assert!(log.contains("symbolic link to a file outside"), "{log}");
    assert!(log.contains("nesting deeper"), "{log}");
}

#[test]
fn paths_symlinks_in_the_secrets_directory_are_never_written_or_read_through() {
    // A namespace directory that is a link to elsewhere.
    let d = Dirs::new();
    let outside = d.outside();
    std::fs::create_dir_all(d.secrets()).unwrap();
    std::os::unix::fs::symlink(&outside, d.secrets().join("t")).unwrap();
    d.write("ada.yaml", user("ada"));
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(1), "the object's failure, not the run's: {err}");
    let ada = outcome(&outcomes, "User", "ada").unwrap();
    assert_eq!(
        (&ada["ready"], &ada["reason"]),
        (&Value::Bool(false), &Value::from("SecretConflict")),
        "{ada:#}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "written through the link"
    );

    // A Secret file that is a link: neither overwritten nor read as a password.
    let d = Dirs::new();
    let outside = d.outside();
    let target = outside.join("target.yaml");
    let original = "apiVersion: v1\nkind: Secret\nmetadata: {name: maria-pw}\nstringData: {password: a-long-enough-passphrase}\n";
    std::fs::write(&target, original).unwrap();
    std::fs::create_dir_all(d.secrets().join("t")).unwrap();
    std::os::unix::fs::symlink(&target, d.secrets().join("t/bob-password.yaml")).unwrap();
    std::os::unix::fs::symlink(&target, d.secrets().join("t/maria-pw.yaml")).unwrap();
    d.write("bob.yaml", user("bob"));
    d.write("maria.yaml", "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: maria\n  namespace: t\nspec:\n  passwordSecretRef: {name: maria-pw, key: password}\n");
    let (code, outcomes, err) = d.apply();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !ready(&outcomes, "User", "bob") && !ready(&outcomes, "User", "maria"),
        "{outcomes:#?}"
    );
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), original);
    let state = d.store().load_state().unwrap();
    let maria = state.users.values().find(|u| u.username == "maria");
    assert!(
        maria.is_none_or(|u| u.password_hash.is_none()),
        "password read through a link"
    );
}

// ---- History: stage-request order ------------------------------------------

const PEOPLE: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: t}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: bob, namespace: t}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: dora, namespace: t}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: ada-admin, namespace: t}
spec: {user: ada, role: Admin}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: bob-admin, namespace: t}
spec: {user: bob, role: Admin}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: dora-deployer, namespace: t}
spec: {user: dora, role: Deployer, scope: {customer: acme}}
";

fn request(ns: &str, name: &str, at: &str, from: &str, to: &str, by: &str) -> String {
    format!("apiVersion: stagegate.dev/v1alpha1\nkind: ModelStageRequest\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    stagegate.dev/requested-at: \"{at}\"\nspec:\n  model: ranker\n  scope: {{customer: acme}}\n  from: {from}\n  to: {to}\n  requestedBy: {by}\n")
}

fn owner_of_ranker(d: &Dirs) -> Option<String> {
    let state = d.store().load_state().unwrap();
    state
        .models
        .values()
        .find(|m| m.name == "ranker")
        .and_then(|m| m.owner.clone())
}

#[test]
fn history_same_instant_requests_are_ordered_by_request_not_file_name() {
    // Same instant written two ways, in two namespaces; the files are swapped between runs.
    let first = request(
        "b",
        "deploy",
        "2026-11-02T10:00:00+01:00",
        "None",
        "Dev",
        "bob",
    );
    let second = request("a", "deploy", "2026-11-02T09:00:00Z", "None", "Dev", "ada");
    let mut owners = Vec::new();
    for (x, y) in [(&first, &second), (&second, &first)] {
        let d = Dirs::new();
        d.write("people.yaml", PEOPLE);
        d.write("00-first.yaml", x);
        d.write("99-last.yaml", y);
        let (code, diags) = d.validate();
        assert_eq!(code, Some(0), "a warning only: {diags:#?}");
        let hit = diag_of(&diags, ".yaml", "SimultaneousRequests");
        assert_eq!(
            (&hit["namespace"], &hit["severity"]),
            (&Value::from("b"), &Value::from("warning"))
        );
        d.apply();
        owners.push(owner_of_ranker(&d));
    }
    // a/deploy sorts before b/deploy, wherever its file is.
    assert_eq!(owners, vec![Some("ada".to_string()); 2]);
}

#[test]
fn history_can_i_dir_with_the_store_answers_from_the_recorded_order() {
    let d = Dirs::new();
    d.write("people.yaml", PEOPLE);
    d.write(
        "r2.yaml",
        request(
            "t",
            "r2-deploy",
            "2026-11-10T09:00:00Z",
            "None",
            "Dev",
            "ada",
        ),
    );
    let (code, _, err) = d.apply();
    assert_eq!(code, Some(0), "{err}");
    // A request dated before the decided one arrives later: it is decided after it.
    d.write(
        "r1.yaml",
        request(
            "t",
            "r1-staging",
            "2026-11-01T09:00:00Z",
            "Dev",
            "Staging",
            "ada",
        ),
    );
    let (_, outcomes, _) = d.apply();
    assert_eq!(
        outcome(&outcomes, "ModelStageRequest", "r1-staging").unwrap()["phase"],
        "Applied"
    );
    let questions: [&[&str]; 2] = [
        &["--as", "dora", "models:view", "ranker", "--scope", "acme"],
        &[
            "--as",
            "dora",
            "models:transition",
            "ranker",
            "--to",
            "Production",
            "--scope",
            "acme",
        ],
    ];
    for q in questions {
        let from_store = crate::support::stagegate()
            .arg("can-i")
            .arg("--store")
            .arg(d.store_path())
            .args(q)
            .output()
            .unwrap();
        let from_dir = d.can_i(true, q);
        assert_eq!(stdout(&from_store), "yes\n", "{}", stderr(&from_store));
        assert_eq!(
            stdout(&from_dir),
            stdout(&from_store),
            "{q:?}: {}",
            stderr(&from_dir)
        );
    }
}

#[test]
fn history_an_edit_to_a_decided_request_is_reported_until_reverted() {
    let d = Dirs::new();
    d.write("people.yaml", PEOPLE);
    let original = request("t", "deploy", "2026-11-02T09:00:00Z", "None", "Dev", "ada");
    d.write("deploy.yaml", &original);
    assert_eq!(d.apply().0, Some(0));
    for edited in [
        original.replace("requestedBy: ada", "requestedBy: bob"),
        original.replace("model: ranker", "model: other"),
    ] {
        d.write("deploy.yaml", &edited);
        let (code, outcomes, _) = d.apply();
        assert_eq!(code, Some(1));
        let o = outcome(&outcomes, "ModelStageRequest", "deploy").unwrap();
        assert_eq!(
            (&o["ready"], &o["reason"], &o["phase"]),
            (
                &Value::Bool(false),
                &Value::from("Immutable"),
                &Value::from("Applied")
            ),
            "{o:#}"
        );
        assert_eq!(
            owner_of_ranker(&d).as_deref(),
            Some("ada"),
            "the record stands"
        );
        d.write("deploy.yaml", &original);
        let (code, outcomes, _) = d.apply();
        assert_eq!(code, Some(0));
        assert!(ready(&outcomes, "ModelStageRequest", "deploy"));
    }
}
