//! The workload the chart renders: labels, the restricted Pod Security
//! Standard, probes, the controller's command line, and its volumes, for
//! the defaults and every `ci/` values file.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use super::manifests::Object;
use super::{app_version, effective_values, label, render, template, values_files, RELEASE};

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
            6,
            "{what}: the four CRDs and the two access-domain CRDs"
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
    let postgres = v["store"]["type"] == "postgres";
    if postgres {
        // The URL holds the password: never an argument.
        assert_eq!(pair("--store"), None, "{what}: {args:?}");
    } else {
        assert_eq!(pair("--store"), Some("/var/lib/stagegate/store.db"));
    }
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
    let store_url = env
        .get("STAGEGATE_STORE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|s| s.secret_key_ref.as_ref());
    if postgres {
        let r = store_url.expect("STAGEGATE_STORE from the database Secret");
        assert_eq!(
            Some(r.name.as_str()),
            v["store"]["postgres"]["existingSecret"].as_str()
        );
        assert_eq!(
            Some(r.key.as_str()),
            v["store"]["postgres"]["uriKey"].as_str()
        );
    } else {
        assert!(store_url.is_none(), "{what}: no database URL for SQLite");
    }
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

    let pvcs: Vec<_> = objects
        .iter()
        .filter(|o| o.kind() == "PersistentVolumeClaim")
        .collect();
    if v["store"]["type"] == "postgres" {
        // Every replica talks to the database: no store volume, no claim, whatever persistence says.
        assert!(!mounts.contains_key("/var/lib/stagegate"), "{what}");
        assert!(!volumes.contains_key("store"), "{what}");
        assert!(pvcs.is_empty(), "{what}: no PVC for a PostgreSQL store");
        return;
    }
    let store = volumes[mounts["/var/lib/stagegate"].name.as_str()];
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

fn decode_base64(text: &str) -> Vec<u8> {
    let value = serde_json::json!({ "apiVersion": "v1", "kind": "Secret", "data": { "k": text } });
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(value).expect("server.key content is base64");
    secret.data.expect("data")["k"].0.clone()
}
