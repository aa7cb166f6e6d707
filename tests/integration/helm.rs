//! The Helm chart, checked with Helm's own code.
//!
//! `tests/helm/render.py` drives Helm's Go SDK through the `helm-python-sdk`
//! package (`make test-deps` installs it; there is no `helm` binary). These
//! tests lint `charts/stagegate`, render it with its defaults and with every
//! `charts/stagegate/ci/*.yaml`, parse each rendered document into its
//! `k8s-openapi` type, and check what a reviewer would:
//!
//! * `cli`: the container's args parse with the binary's own parser, its
//!   env vars are ones the binary reads, ports and probes match the listeners;
//! * `manifests`: strict parsing (unknown kinds and fields fail);
//! * `workload`: the restricted Pod Security Standard, probes, labels, the
//!   controller's command line and volumes;
//! * `rbac`: the rules against the controller's recorded API calls, both ways;
//! * here: lint, broken copies failing lint, the values schema, NOTES, CRD
//!   drift, the server key kept on upgrade, appVersion = crate version.

mod cli;
mod manifests;
mod rbac;
mod workload;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use manifests::Object;
use serde_json::Value;

const RELEASE: &str = "stagegate";
const NAMESPACE: &str = "stagegate";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("charts/stagegate")
}

/// The values files the chart is rendered with: `None` is the defaults.
fn values_files() -> Vec<Option<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(chart().join("ci"))
        .expect("charts/stagegate/ci exists")
        .map(|entry| entry.expect("readable ci/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "expected the ci/ example values files");
    std::iter::once(None)
        .chain(files.into_iter().map(Some))
        .collect()
}

fn label(values: Option<&Path>) -> String {
    values.map_or("default values".into(), |p| p.display().to_string())
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `python3 tests/helm/render.py ARGS` (`$PYTHON` if set, e.g. a
/// virtualenv's interpreter).
fn render_py(args: &[&str]) -> Run {
    // `make test-deps` installs the packages into .venv; `$PYTHON` overrides.
    let venv = repo().join(".venv/bin/python");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| {
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let output = Command::new(&python)
        .arg(repo().join("tests/helm/render.py"))
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{python}: {e} (the Helm chart tests need Python; see `make test-deps`)")
        });
    let run = Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_ne!(
        output.status.code(),
        Some(2),
        "render.py could not run; install the test dependencies with `make test-deps`\n{}",
        run.stderr
    );
    run
}

fn lint(chart: &Path, values: Option<&Path>) -> Run {
    let chart = chart.to_str().expect("UTF-8 path");
    let mut args = vec!["lint", chart, "--namespace", NAMESPACE];
    if let Some(values) = values {
        args.extend(["-f", values.to_str().expect("UTF-8 path")]);
    }
    render_py(&args)
}

fn template(values: Option<&Path>, extra: &[&str]) -> Run {
    let chart = chart();
    let mut args = vec![
        "template",
        chart.to_str().expect("UTF-8 path"),
        "--name",
        RELEASE,
        "--namespace",
        NAMESPACE,
    ];
    if let Some(values) = values {
        args.extend(["-f", values.to_str().expect("UTF-8 path")]);
    }
    args.extend(extra);
    render_py(&args)
}

/// The chart's ServiceAccount and RBAC objects, rendered for release
/// namespace `namespace` with `values` files, as one YAML stream for
/// `kubectl apply` (the controller end-to-end tests run under them).
pub(crate) fn render_rbac(namespace: &str, values: &[&Path]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        chart.to_str().expect("UTF-8 path"),
        "--name",
        RELEASE,
        "--namespace",
        namespace,
    ];
    for v in values {
        args.extend(["-f", v.to_str().expect("UTF-8 path")]);
    }
    let run = render_py(&args);
    assert!(run.ok, "rendering the chart failed:\n{}", run.stderr);
    let kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_str(&run.stdout) {
        let Ok(value) = <Value as serde::Deserialize>::deserialize(doc) else {
            continue;
        };
        if kinds.iter().any(|k| value["kind"] == *k) {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&value).expect("YAML"));
        }
    }
    out
}

/// Renders and parses every document, failing on anything unknown.
fn render(values: Option<&Path>) -> Vec<Object> {
    let run = template(values, &["--include-crds"]);
    assert!(
        run.ok,
        "rendering with {} failed:\n{}",
        label(values),
        run.stderr
    );
    manifests::parse_stream(&run.stdout)
        .unwrap_or_else(|err| panic!("rendered with {}: {err}", label(values)))
}

fn read_yaml(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The chart defaults with a values file merged over them, as Helm does
/// (null deletes a default).
fn effective_values(values: Option<&Path>) -> Value {
    fn merge(base: &mut Value, over: Value) {
        match (base, over) {
            (Value::Object(base), Value::Object(over)) => {
                for (key, value) in over {
                    if value.is_null() {
                        base.remove(&key);
                    } else if let Some(slot) = base.get_mut(&key).filter(|s| s.is_object()) {
                        merge(slot, value);
                    } else {
                        base.insert(key, value);
                    }
                }
            }
            (base, over) => *base = over,
        }
    }
    let mut merged = read_yaml(&chart().join("values.yaml"));
    if let Some(values) = values {
        merge(&mut merged, read_yaml(values));
    }
    merged
}

fn app_version() -> String {
    let chart_yaml = read_yaml(&chart().join("Chart.yaml"));
    chart_yaml["appVersion"]
        .as_str()
        .expect("appVersion")
        .to_owned()
}

#[test]
fn chart_app_version_is_the_crate_version() {
    assert_eq!(
        app_version(),
        env!("CARGO_PKG_VERSION"),
        "charts/stagegate/Chart.yaml appVersion must equal the version in Cargo.toml"
    );
}

#[test]
fn chart_lints_with_defaults_and_every_ci_values_file() {
    for values in values_files() {
        let run = lint(&chart(), values.as_deref());
        assert!(
            run.ok,
            "helm lint (strict) with {}:\n{}{}",
            label(values.as_deref()),
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn broken_copies_of_the_chart_fail_lint() {
    type Break = fn(&Path);
    let breakages: [(&str, Break); 3] = [
        ("unclosed template action", |dir| {
            let path = dir.join("templates/deployment.yaml");
            let text = fs::read_to_string(&path).expect("deployment.yaml");
            fs::write(&path, text.replace("{{- end }}", "{{- end ")).expect("write");
        }),
        ("Chart.yaml without a version", |dir| {
            let path = dir.join("Chart.yaml");
            let text = fs::read_to_string(&path).expect("Chart.yaml");
            fs::write(&path, text.replace("\nversion: ", "\n# version: ")).expect("write");
        }),
        ("defaults the schema rejects", |dir| {
            let path = dir.join("values.yaml");
            let text = fs::read_to_string(&path).expect("values.yaml");
            fs::write(&path, text.replace("replicaCount: 1", "replicaCount: one")).expect("write");
        }),
    ];
    for (what, break_chart) in breakages {
        let temp = tempfile::tempdir().expect("temp dir");
        let copy = temp.path().join("stagegate");
        copy_dir(&chart(), &copy);
        assert!(lint(&copy, None).ok, "an intact copy must lint clean");
        break_chart(&copy);
        let run = lint(&copy, None);
        assert!(!run.ok, "a chart with {what} passed lint:\n{}", run.stdout);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[test]
fn values_schema_rejects_a_wrong_type() {
    let temp = tempfile::tempdir().expect("temp dir");
    let values = temp.path().join("two.yaml");
    fs::write(&values, "replicaCount: \"two\"\n").expect("write values");
    let rendered = template(Some(&values), &[]);
    assert!(!rendered.ok, "rendered with replicaCount: \"two\"");
    assert!(
        rendered.stderr.contains("replicaCount"),
        "{}",
        rendered.stderr
    );
    let linted = lint(&chart(), Some(&values));
    assert!(!linted.ok, "lint accepted replicaCount: \"two\"");
    assert!(linted.stdout.contains("replicaCount"), "{}", linted.stdout);

    fs::write(&values, "replicaCuont: 2\n").expect("write values");
    assert!(
        !template(Some(&values), &[]).ok,
        "a misspelt top-level value was accepted"
    );
}

#[test]
fn notes_tell_how_to_check_the_controller_and_find_secrets() {
    for values in values_files() {
        let values = values.as_deref();
        let v = effective_values(values);
        let notes = template(values, &["--notes"]).stderr;
        let what = label(values);
        for needle in [
            "rollout status deployment/",
            "logs deployment/",
            "-token",
            "/v1/whoami",
        ] {
            assert!(
                notes.contains(needle),
                "{what}: NOTES lack {needle:?}:\n{notes}"
            );
        }
        let bootstrap = v["bootstrapAdmin"]["enabled"].as_bool() == Some(true);
        let secret = "get secret stagegate-bootstrap-admin";
        assert_eq!(
            notes.contains(secret),
            bootstrap,
            "{what}: bootstrap admin Secret"
        );
        let persistent = v["persistence"]["enabled"].as_bool() == Some(true);
        assert_eq!(
            notes.contains("WARNING"),
            !persistent,
            "{what}: emptyDir warning"
        );
    }
}

/// Each `(values, reason)`: rendering with those values fails, naming the reason.
fn assert_refused(cases: &[(&str, &str)]) {
    let temp = tempfile::tempdir().expect("temp dir");
    for (values, reason) in cases {
        let path = temp.path().join("values.yaml");
        fs::write(&path, values).expect("write values");
        let run = template(Some(&path), &[]);
        assert!(!run.ok, "rendered {values:?}");
        assert!(run.stderr.contains(reason), "{values:?}: {}", run.stderr);
    }
}

#[test]
fn several_replicas_without_a_shared_store_are_refused() {
    let cases = [
        ("replicaCount: 2\n", "ReadWriteMany"),
        (
            "replicaCount: 2\npersistence:\n  enabled: false\n",
            "persistence.enabled",
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn a_postgres_store_needs_its_secret_and_a_known_type() {
    let cases = [
        (
            "store:\n  type: postgres\n",
            "store.postgres.existingSecret",
        ),
        ("store:\n  type: mysql\n", "/store/type"),
    ];
    assert_refused(&cases);
}

#[test]
fn values_schema_describes_every_default_value() {
    fn walk(values: &Value, schema: &Value, path: &str, missing: &mut Vec<String>) {
        let Value::Object(values) = values else {
            return;
        };
        for (key, value) in values {
            let here = format!("{path}.{key}");
            match schema.pointer(&format!("/properties/{key}")) {
                None => missing.push(here),
                Some(sub) if sub.get("properties").is_some() => walk(value, sub, &here, missing),
                Some(_) => {}
            }
        }
    }
    let schema: Value = serde_json::from_str(
        &fs::read_to_string(chart().join("values.schema.json")).expect("values.schema.json"),
    )
    .expect("values.schema.json is JSON");
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
    let mut missing = Vec::new();
    walk(&effective_values(None), &schema, "", &mut missing);
    assert!(missing.is_empty(), "values without a schema: {missing:?}");
}

/// The rendered server-key Secret and its key.
fn server_key(objects: &[Object]) -> (&k8s_openapi::api::core::v1::Secret, Vec<u8>) {
    let secret = objects
        .iter()
        .find_map(Object::as_secret)
        .expect("server key Secret");
    let data = secret.data.as_ref().expect("Secret data");
    (secret, data["server.key"].0.clone())
}

#[test]
fn generated_server_key_is_kept_on_upgrade() {
    let installed = render(None);
    let (secret, first) = server_key(&installed);
    let (_, second) = server_key(&render(None));
    assert_ne!(first, second, "each first install generates its own key");

    let temp = tempfile::tempdir().expect("temp dir");
    let upgrade = |live: &Value| {
        let path = temp.path().join("live.json");
        fs::write(&path, live.to_string()).expect("write live objects");
        let run = template(None, &["--live", path.to_str().expect("UTF-8 path")]);
        assert!(run.ok, "upgrade render failed:\n{}", run.stderr);
        let objects = manifests::parse_stream(&run.stdout).expect("upgrade render parses");
        server_key(&objects).1
    };
    let live = serde_json::to_value(secret).expect("Secret serializes");
    assert_eq!(upgrade(&live), first, "an upgrade must keep the live key");
    let other = serde_json::json!([]);
    assert_ne!(
        upgrade(&other),
        first,
        "without a live Secret a new key is generated"
    );
}

#[test]
fn crds_match_the_rust_types_and_the_chart_copy() {
    let expected: BTreeMap<String, String> = stagegate::resources::crds()
        .iter()
        .map(|crd| {
            let name = stagegate::resources::crd_file_name(crd);
            (name, stagegate::resources::crd_yaml(crd))
        })
        .collect();
    let fix = "make crds";
    for dir in [repo().join("crds"), chart().join("crds")] {
        let actual: BTreeMap<String, String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}; run `{fix}`", dir.display()))
            .map(|entry| {
                let path = entry.expect("dir entry").path();
                let name = path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (name, fs::read_to_string(&path).expect("read CRD"))
            })
            .collect();
        let stale: Vec<_> = expected
            .iter()
            .filter(|(name, yaml)| actual.get(*name) != Some(*yaml))
            .map(|(name, _)| name)
            .chain(actual.keys().filter(|name| !expected.contains_key(*name)))
            .collect();
        assert!(
            stale.is_empty(),
            "{} differs from stagegate::resources::crds() in {stale:?}; run `{fix}`",
            dir.display()
        );
    }
}
