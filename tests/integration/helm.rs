//! The Helm chart, checked with Helm's own code.
//!
//! `tests/helm/render.py` drives Helm's Go SDK through the `helm-python-sdk`
//! package (`make test-deps` installs it; there is no `helm` binary). These
//! tests lint `charts/stagegate`, render it with its defaults and with every
//! `charts/stagegate/ci/*.yaml`, parse each rendered document into its
//! `k8s-openapi` type (see `manifests`), and check what a reviewer would:
//! the restricted Pod Security Standard, probes, labels, RBAC against the
//! controller's recorded API calls (both directions), CRD drift, the values
//! schema, and that a broken chart fails lint.

mod manifests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;
use manifests::Object;
use serde_json::Value;

const RELEASE: &str = "stagegate";
const NAMESPACE: &str = "stagegate";
const UPDATE_CRDS: &str = "STAGEGATE_UPDATE_CRDS";

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
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
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
fn several_replicas_without_a_shared_store_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("replicaCount: 2\n", "ReadWriteMany"),
        (
            "replicaCount: 2\npersistence:\n  enabled: false\n",
            "persistence.enabled",
        ),
    ];
    for (values, reason) in cases {
        let path = temp.path().join("values.yaml");
        fs::write(&path, values).expect("write values");
        let run = template(Some(&path), &[]);
        assert!(!run.ok, "rendered {values:?}");
        assert!(run.stderr.contains(reason), "{values:?}: {}", run.stderr);
    }
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

#[test]
fn rendered_manifests_parse_and_meet_the_restricted_profile() {
    for values in values_files() {
        let values = values.as_deref();
        let v = effective_values(values);
        let objects = render(values);
        let what = label(values);
        check_labels(&objects, &what);

        let deployments: Vec<_> = objects.iter().filter_map(Object::as_deployment).collect();
        assert_eq!(deployments.len(), 1, "{what}: one Deployment");
        let deployment = deployments[0];
        let spec = &deployment.spec;
        assert_eq!(spec.replicas, v["replicaCount"].as_i64().map(|n| n as i32));
        let pod = spec.template.spec.as_ref().expect("pod spec");
        assert_restricted(pod, &what);
        assert_eq!(pod.containers.len(), 1, "{what}: one container");
        let container = &pod.containers[0];
        check_probes(container, &what);
        check_command(container, &v, &what);
        check_volumes(pod, &objects, values, &what);

        let image = container.image.as_deref().expect("image");
        if v["image"]["digest"].as_str().unwrap_or("").is_empty() {
            assert!(
                image.ends_with(&format!(":{}", app_version())),
                "{what}: {image}"
            );
        }
        if values.is_none() {
            assert_eq!(
                image,
                format!("ghcr.io/stagegate/stagegate:{}", app_version())
            );
        }

        let count = |kind: &str| objects.iter().filter(|o| o.kind() == kind).count();
        let replicas = v["replicaCount"].as_i64().expect("replicaCount");
        assert_eq!(
            count("PodDisruptionBudget"),
            usize::from(replicas > 1),
            "{what}: PDB"
        );
        let monitor = v["metrics"]["serviceMonitor"]["enabled"].as_bool() == Some(true);
        assert_eq!(
            count("ServiceMonitor"),
            usize::from(monitor),
            "{what}: ServiceMonitor"
        );
        let netpol = v["networkPolicy"]["enabled"].as_bool() == Some(true);
        assert_eq!(
            count("NetworkPolicy"),
            usize::from(netpol),
            "{what}: NetworkPolicy"
        );
        assert_eq!(count("Service"), 1, "{what}: Service");
        assert_eq!(
            count("CustomResourceDefinition"),
            4,
            "{what}: the four CRDs"
        );
    }
}

fn check_labels(objects: &[Object], what: &str) {
    let required = [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "helm.sh/chart",
    ];
    for object in objects
        .iter()
        .filter(|o| o.kind() != "CustomResourceDefinition")
    {
        let labels = object.metadata().labels.clone().unwrap_or_default();
        for key in required {
            assert!(
                labels.contains_key(key),
                "{what}: {} lacks label {key}",
                object.id()
            );
        }
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE);
        assert_eq!(labels["app.kubernetes.io/version"], app_version());
    }
    let deployment = objects
        .iter()
        .find_map(Object::as_deployment)
        .expect("Deployment");
    let spec = &deployment.spec;
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    let pod_labels = pod_labels.expect("pod template labels");
    let selector = spec.selector.match_labels.clone().expect("matchLabels");
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{what}: selector"
    );
    for key in required {
        assert!(
            pod_labels.contains_key(key),
            "{what}: pod template lacks {key}"
        );
    }
    for object in objects {
        if let Object::Service(service) = object {
            let selector = service.spec.as_ref().and_then(|s| s.selector.clone());
            let selector = selector.expect("Service selector");
            assert!(
                selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
                "{what}"
            );
        }
    }
}

/// The Kubernetes "restricted" Pod Security Standard (v1.27+), at pod and
/// container level.
fn assert_restricted(pod: &PodSpec, what: &str) {
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "{what}: pod runAsNonRoot");
    assert_ne!(psc.run_as_user, Some(0), "{what}: pod runAsUser 0");
    let seccomp = psc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
    assert_eq!(
        seccomp,
        Some("RuntimeDefault"),
        "{what}: pod seccompProfile"
    );
    assert!(pod.host_network != Some(true) && pod.host_pid != Some(true));
    assert!(pod.host_ipc != Some(true) && pod.host_users != Some(true));
    for volume in pod.volumes.iter().flatten() {
        let allowed = volume.config_map.is_some()
            || volume.csi.is_some()
            || volume.downward_api.is_some()
            || volume.empty_dir.is_some()
            || volume.ephemeral.is_some()
            || volume.persistent_volume_claim.is_some()
            || volume.projected.is_some()
            || volume.secret.is_some();
        assert!(
            allowed,
            "{what}: volume {} has a restricted type",
            volume.name
        );
    }
    let containers = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten());
    for container in containers {
        let sc = container
            .security_context
            .as_ref()
            .expect("container securityContext");
        let name = &container.name;
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}: {name}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}: {name}");
        assert_eq!(sc.run_as_non_root, Some(true), "{what}: {name}");
        assert_ne!(sc.run_as_user, Some(0), "{what}: {name}");
        assert_ne!(sc.privileged, Some(true), "{what}: {name}");
        let caps = sc.capabilities.as_ref().expect("capabilities");
        assert_eq!(
            caps.drop.as_deref(),
            Some(&["ALL".to_owned()][..]),
            "{what}: {name}"
        );
        assert!(caps.add.iter().flatten().all(|c| c == "NET_BIND_SERVICE"));
        let seccomp = sc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
        assert_eq!(seccomp, Some("RuntimeDefault"), "{what}: {name}");
        assert!(container
            .ports
            .iter()
            .flatten()
            .all(|p| p.host_port.is_none()));
    }
}

fn check_probes(container: &Container, what: &str) {
    let http_path = |probe: Option<&k8s_openapi::api::core::v1::Probe>| {
        let get = probe
            .and_then(|p| p.http_get.as_ref())
            .expect("an httpGet probe");
        let port = match &get.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        };
        (get.path.clone().unwrap_or_default(), port)
    };
    let live = http_path(container.liveness_probe.as_ref());
    let ready = http_path(container.readiness_probe.as_ref());
    assert_eq!(live, ("/healthz".into(), "http".into()), "{what}: liveness");
    assert_eq!(
        ready,
        ("/readyz".into(), "http".into()),
        "{what}: readiness"
    );
    let ports: BTreeMap<_, _> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(ports.get("http"), Some(&8080), "{what}");
    assert_eq!(ports.get("metrics"), Some(&9090), "{what}");
    let resources = container.resources.as_ref().expect("resources");
    assert!(resources
        .requests
        .as_ref()
        .is_some_and(|r| r.contains_key("memory")));
    assert!(resources
        .limits
        .as_ref()
        .is_some_and(|r| r.contains_key("memory")));
}

fn check_command(container: &Container, v: &Value, what: &str) {
    let args = container.args.clone().unwrap_or_default();
    let pair = |flag: &str| {
        let at = args.iter().position(|a| a == flag);
        at.and_then(|i| args.get(i + 1)).map(String::as_str)
    };
    assert_eq!(&args[..2], ["run", "--kube"], "{what}: {args:?}");
    assert_eq!(pair("--store"), Some("/var/lib/stagegate/store.db"));
    assert_eq!(
        pair("--server-key-file"),
        Some("/etc/stagegate/server-key/server.key")
    );
    assert_eq!(pair("--listen"), Some("0.0.0.0:8080"));
    assert_eq!(pair("--metrics-listen"), Some("0.0.0.0:9090"));
    let namespaces: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--namespace")
        .map(|w| w[1].as_str())
        .collect();
    let watched: Vec<&str> = v["watchNamespaces"]
        .as_array()
        .expect("watchNamespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(namespaces, watched, "{what}: --namespace flags");
    if v["bootstrapAdmin"]["enabled"].as_bool() == Some(true) {
        assert_eq!(
            pair("--bootstrap-admin"),
            v["bootstrapAdmin"]["username"].as_str()
        );
        assert!(!args.iter().any(|a| a == "--no-bootstrap-admin"), "{what}");
    } else {
        assert!(args.iter().any(|a| a == "--no-bootstrap-admin"), "{what}");
        assert!(!args.iter().any(|a| a == "--bootstrap-admin"), "{what}");
    }
    let env: BTreeMap<_, _> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect();
    let field = |name: &str| {
        let source = env.get(name).and_then(|e| e.value_from.as_ref());
        source
            .and_then(|s| s.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(
        field("POD_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"));
    assert!(env.contains_key("RUST_LOG"), "{what}: RUST_LOG");
}

fn check_volumes(pod: &PodSpec, objects: &[Object], values: Option<&Path>, what: &str) {
    let v = &effective_values(values);
    let volumes: BTreeMap<_, _> = pod
        .volumes
        .iter()
        .flatten()
        .map(|vol| (vol.name.as_str(), vol))
        .collect();
    let mounts: BTreeMap<_, _> = pod.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), m))
        .collect();
    let key_mount = mounts["/etc/stagegate/server-key"];
    assert_eq!(
        key_mount.read_only,
        Some(true),
        "{what}: server key mounted read-only"
    );
    let store_mount = mounts["/var/lib/stagegate"];

    let key_secret = volumes[key_mount.name.as_str()]
        .secret
        .as_ref()
        .expect("secret volume");
    let key_secret_name = key_secret.secret_name.clone().expect("secretName");
    let secrets: Vec<_> = objects.iter().filter_map(Object::as_secret).collect();
    let existing = v["serverKey"]["existingSecret"].as_str().unwrap_or("");
    if existing.is_empty() {
        assert_eq!(secrets.len(), 1, "{what}: the generated server key Secret");
        let secret = secrets[0];
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some(key_secret_name.as_str())
        );
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{what}");
        let data = secret.data.as_ref().expect("data");
        let key = std::str::from_utf8(&data["server.key"].0).expect("base64 text");
        let raw = decode_base64(key);
        assert!(
            raw.len() >= 32,
            "{what}: server key has {} bytes",
            raw.len()
        );
    } else {
        assert!(secrets.is_empty(), "{what}: no Secret with existingSecret");
        assert_eq!(key_secret_name, existing, "{what}");
    }

    let store = volumes[store_mount.name.as_str()];
    let pvcs: Vec<_> = objects
        .iter()
        .filter(|o| o.kind() == "PersistentVolumeClaim")
        .collect();
    if v["persistence"]["enabled"].as_bool() == Some(true) {
        let claim = store
            .persistent_volume_claim
            .as_ref()
            .expect("store on a PVC");
        let existing = v["persistence"]["existingClaim"].as_str().unwrap_or("");
        if existing.is_empty() {
            assert_eq!(pvcs.len(), 1, "{what}: the store PVC");
            assert_eq!(
                pvcs[0].metadata().name.as_deref(),
                Some(claim.claim_name.as_str())
            );
        } else {
            assert!(pvcs.is_empty(), "{what}: no PVC with existingClaim");
            assert_eq!(claim.claim_name, existing);
        }
    } else {
        assert!(store.empty_dir.is_some(), "{what}: store on an emptyDir");
        assert!(pvcs.is_empty(), "{what}: no PVC without persistence");
        let run = template(values, &["--notes"]);
        assert!(run
            .stderr
            .contains("WARNING: the identity store is NOT persistent"));
    }
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

fn decode_base64(text: &str) -> Vec<u8> {
    let value = serde_json::json!({ "apiVersion": "v1", "kind": "Secret", "data": { "k": text } });
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(value).expect("server.key content is base64");
    secret.data.expect("data")["k"].0.clone()
}

/// (apiGroup, resource, verb), `core` for the core group.
type Grant = (String, String, String);

fn recorded_api_calls() -> BTreeSet<Grant> {
    let path = repo().join("tests/fixtures/rbac/controller-api-calls.txt");
    let text = fs::read_to_string(&path).expect("the recorded controller API calls");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [group, resource, verb] => (group.into(), resource.into(), verb.into()),
                _ => panic!("{}: malformed line {line:?}", path.display()),
            },
        )
        .collect()
}

fn grants(rules: &[PolicyRule], out: &mut BTreeSet<Grant>, what: &str) {
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "{what}: nonResourceURLs granted"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for field in [&groups, &resources, &rule.verbs] {
            assert!(
                !field.iter().any(|s| s.contains('*')),
                "{what}: wildcard in {rule:?}"
            );
        }
        for group in &groups {
            let group = if group.is_empty() {
                "core"
            } else {
                group.as_str()
            };
            for resource in &resources {
                for verb in &rule.verbs {
                    out.insert((group.into(), resource.clone(), verb.clone()));
                }
            }
        }
    }
}

#[test]
fn rbac_grants_exactly_the_recorded_controller_api_calls() {
    let recorded = recorded_api_calls();
    for values in values_files() {
        let values = values.as_deref();
        let what = label(values);
        let v = effective_values(values);
        let objects = render(values);
        let sa = objects
            .iter()
            .find_map(Object::as_deployment)
            .and_then(|d| d.spec.template.spec.as_ref()?.service_account_name.clone())
            .expect("serviceAccountName");

        let mut granted = BTreeSet::new();
        let mut roles = BTreeSet::new();
        let mut bound = BTreeSet::new();
        for object in &objects {
            let ns = object.metadata().namespace.clone().unwrap_or_default();
            match object {
                Object::ClusterRole(role) => {
                    grants(
                        role.rules.as_deref().unwrap_or_default(),
                        &mut granted,
                        &what,
                    );
                    assert!(
                        role.aggregation_rule.is_none(),
                        "{what}: aggregated ClusterRole"
                    );
                    roles.insert(("ClusterRole", String::new(), object.name()));
                }
                Object::Role(role) => {
                    grants(
                        role.rules.as_deref().unwrap_or_default(),
                        &mut granted,
                        &what,
                    );
                    roles.insert(("Role", ns, object.name()));
                }
                Object::ClusterRoleBinding(b) => {
                    assert!(binds(b.subjects.as_deref(), &sa), "{what}: {}", object.id());
                    bound.insert(("ClusterRole", String::new(), b.role_ref.name.clone()));
                }
                Object::RoleBinding(b) => {
                    assert!(binds(b.subjects.as_deref(), &sa), "{what}: {}", object.id());
                    let kind = if b.role_ref.kind == "Role" {
                        "Role"
                    } else {
                        "ClusterRole"
                    };
                    let scope = if kind == "Role" { ns } else { String::new() };
                    bound.insert((kind, scope, b.role_ref.name.clone()));
                }
                _ => {}
            }
        }
        assert_eq!(
            roles, bound,
            "{what}: every role is bound to the ServiceAccount"
        );

        let missing: Vec<_> = recorded.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&recorded).collect();
        assert!(
            missing.is_empty(),
            "{what}: the controller's calls not granted: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{what}: granted but never used: {extra:?}"
        );

        let watched = v["watchNamespaces"].as_array().expect("watchNamespaces");
        let cluster_roles = roles.iter().filter(|r| r.0 == "ClusterRole").count();
        if watched.is_empty() {
            assert_eq!(cluster_roles, 1, "{what}: one ClusterRole");
        } else {
            assert_eq!(
                cluster_roles, 0,
                "{what}: nothing cluster-wide in namespaced mode"
            );
            for ns in watched.iter().filter_map(Value::as_str) {
                let scoped = roles.iter().any(|r| r.0 == "Role" && r.1 == ns);
                assert!(scoped, "{what}: no Role in watched namespace {ns}");
            }
        }
        let local = roles.iter().any(|r| r.0 == "Role" && r.1 == NAMESPACE);
        assert!(
            local,
            "{what}: a Role in the release namespace (leader election)"
        );
    }
}

fn binds(subjects: Option<&[k8s_openapi::api::rbac::v1::Subject]>, sa: &str) -> bool {
    subjects.unwrap_or_default().iter().any(|s| {
        s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(NAMESPACE)
    })
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
    let fix = format!("{UPDATE_CRDS}=1 cargo test --test integration helm::crds");
    for dir in [repo().join("crds"), chart().join("crds")] {
        if std::env::var_os(UPDATE_CRDS).is_some() {
            if dir.exists() {
                fs::remove_dir_all(&dir).expect("remove stale CRDs");
            }
            fs::create_dir_all(&dir).expect("create CRD dir");
            for (name, yaml) in &expected {
                fs::write(dir.join(name), yaml).expect("write CRD");
            }
        }
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
