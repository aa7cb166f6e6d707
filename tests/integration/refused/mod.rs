//! Issue 11 "Fail closed", the validation part: declarations that could hurt are refused
//! by `stagegate validate` and `apply` (names that become paths, two objects claiming one
//! Secret, unbounded durations, references that can never resolve, malformed scopes).

mod bounds;
mod names;
mod references;
mod scopes;
mod secrets;

use crate::support::{run, stderr, stdout};
use serde_json::Value;
use std::path::Path;

/// The daemon tests' workspace (`manifests/`, `state/store.db`, `state/secrets/`), driven
/// here by one-shot commands.
pub use crate::daemon::harness::Workspace as Dir;

/// One-shot commands and views of a [`Dir`].
pub trait OneShot {
    /// `stagegate validate --output json` of the manifests: exit code and diagnostics.
    fn validate(&self) -> (i32, Vec<Value>);
    /// `stagegate apply --output json`: exit code, per-object outcomes, stderr.
    fn apply_json(&self) -> (i32, Vec<Value>, String);
    /// The delivered Secret file `<secrets>/<ns>/<name>.yaml`, if any.
    fn secret(&self, ns: &str, name: &str) -> Option<String>;
    /// Every file under the workspace, relative to it, sorted.
    fn files(&self) -> Vec<String>;
}

impl OneShot for Dir {
    fn validate(&self) -> (i32, Vec<Value>) {
        validate(&self.manifests())
    }

    fn apply_json(&self) -> (i32, Vec<Value>, String) {
        let out = run(&[
            "apply",
            "--dir",
            self.manifests().to_str().unwrap(),
            "--store",
            self.store_path().to_str().unwrap(),
            "--secrets-dir",
            self.secrets().to_str().unwrap(),
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
            "--output",
            "json",
        ]);
        let outcomes = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        (out.status.code().unwrap(), outcomes, stderr(&out))
    }

    fn secret(&self, ns: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.secrets().join(ns).join(format!("{name}.yaml"))).ok()
    }

    fn files(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.tmp.path(), self.tmp.path(), &mut out);
        out.sort();
        out
    }
}

/// `stagegate validate --output json PATH`: exit code and diagnostics.
pub fn validate(path: &Path) -> (i32, Vec<Value>) {
    let out = run(&["validate", "--output", "json", path.to_str().unwrap()]);
    let diags = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), diags)
}

/// The diagnostics with `reason` on object `name`.
pub fn on<'a>(diags: &'a [Value], reason: &str, name: &str) -> Vec<&'a Value> {
    diags
        .iter()
        .filter(|d| d["reason"] == reason && d["name"] == name)
        .collect()
}

/// The one diagnostic with `reason` on `name`, checked to be an error at `field`.
pub fn error_at<'a>(diags: &'a [Value], reason: &str, name: &str, field: &str) -> &'a Value {
    let hits = on(diags, reason, name);
    let [hit] = hits.as_slice() else {
        panic!("{reason} on {name}: expected one, got {diags:#?}");
    };
    assert_eq!(hit["field"], field, "{hit:#}");
    assert_eq!(hit["severity"], "error", "{hit:#}");
    hit
}

/// The outcome of object `kind/name`.
pub fn outcome<'a>(outcomes: &'a [Value], kind: &str, name: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["kind"] == kind && o["name"] == name)
        .unwrap_or_else(|| panic!("no outcome for {kind} {name}: {outcomes:#?}"))
}

/// A User manifest.
pub fn user(ns: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  displayName: Someone\n{extra_spec}"
    )
}

/// An ApiToken manifest.
pub fn token(ns: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  role: Analyst\n  scope: {{customer: acme}}\n  validity: 30d\n{extra_spec}"
    )
}

/// An AccessBinding manifest.
pub fn binding(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}
