//! The chart and the binary agree: the rendered container's `args` parse with
//! the real command-line parser (`stagegate::cli::Cli`), the environment
//! variables are ones the binary reads, and the ports and probe paths are
//! the ones `--listen` and `--metrics-listen` serve. A flag renamed in the
//! binary breaks these tests, not a pod in a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use stagegate::cli::{Cli, Command};

use super::manifests::Object;
use super::{effective_values, label, render, values_files};

/// The one container of the one Deployment.
fn container(objects: &[Object]) -> &Container {
    let deployment = objects
        .iter()
        .find_map(Object::as_deployment)
        .expect("a Deployment");
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    &pod.containers[0]
}

#[test]
fn rendered_args_parse_with_the_cli_and_mean_what_the_values_say() {
    for values in values_files() {
        let values = values.as_deref();
        let what = label(values);
        let v = effective_values(values);
        let objects = render(values);
        let container = container(&objects);
        let args = container.args.clone().unwrap_or_default();
        let argv = std::iter::once("stagegate".to_owned()).chain(args.iter().cloned());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| {
            panic!("{what}: the binary rejects the chart's args {args:?}:\n{e}")
        });
        let Command::Run(run) = cli.command else {
            panic!("{what}: the chart does not run `stagegate run`: {args:?}");
        };
        assert!(run.kube && run.dir.is_none(), "{what}: run --kube");
        let watched: Vec<String> = v["watchNamespaces"]
            .as_array()
            .expect("watchNamespaces")
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect();
        assert_eq!(run.kube_args.namespaces, watched, "{what}: --namespace");
        if v["store"]["type"] == "postgres" {
            // The URL (with its password) comes from STAGEGATE_STORE, filled from a Secret.
            assert!(!args.iter().any(|a| a == "--store"), "{what}: {args:?}");
        } else {
            assert_eq!(
                run.store.store,
                PathBuf::from("/var/lib/stagegate/store.db"),
                "{what}"
            );
        }
        assert_eq!(
            run.store.key_file(),
            PathBuf::from("/etc/stagegate/server-key/server.key"),
            "{what}"
        );
        let bootstrap = v["bootstrapAdmin"]["enabled"].as_bool() == Some(true);
        assert_eq!(run.no_bootstrap_admin, !bootstrap, "{what}");
        if bootstrap {
            assert_eq!(
                Some(run.bootstrap_admin.as_str()),
                v["bootstrapAdmin"]["username"].as_str(),
                "{what}"
            );
        }

        let ports: BTreeMap<String, i32> = container
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
            .collect();
        let port = |name: &str| {
            *ports
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no container port {name}"))
        };
        // The rate limits are the values' (0: none; a caller burst of 0: twice the rate).
        let num = |k: &str| v["api"][k].as_f64().expect(k);
        let limit = |rate: f64, burst: f64| {
            (rate > 0.0).then_some(stagegate::api::RateLimitConfig {
                per_second: rate,
                burst: burst as u32,
            })
        };
        let caller_burst = if num("callerBurst") > 0.0 {
            num("callerBurst")
        } else {
            2.0 * num("callerRateLimit")
        };
        assert_eq!(
            run.api.rate_limits(),
            (
                limit(num("addressRateLimit"), num("addressBurst")),
                limit(num("callerRateLimit"), caller_burst)
            ),
            "{what}: rate limits"
        );
        let api: SocketAddr = run.api.listen;
        assert!(
            api.ip().is_unspecified(),
            "{what}: --listen {api} is not reachable from the kubelet"
        );
        assert_eq!(
            i32::from(api.port()),
            port("http"),
            "{what}: --listen and port http"
        );
        let metrics = run.api.metrics_listen.expect("--metrics-listen");
        assert!(
            metrics.ip().is_unspecified(),
            "{what}: --metrics-listen {metrics}"
        );
        assert_eq!(
            i32::from(metrics.port()),
            port("metrics"),
            "{what}: --metrics-listen and port metrics"
        );
        check_probe(
            container.liveness_probe.as_ref(),
            "/healthz",
            &ports,
            api,
            &what,
        );
        check_probe(
            container.readiness_probe.as_ref(),
            "/readyz",
            &ports,
            api,
            &what,
        );
        check_ports_by_name(&objects, &what);
    }
}

/// The probe asks the API port for a path the API router serves.
fn check_probe(
    probe: Option<&Probe>,
    path: &str,
    ports: &BTreeMap<String, i32>,
    api: SocketAddr,
    what: &str,
) {
    let get = probe
        .and_then(|p| p.http_get.as_ref())
        .unwrap_or_else(|| panic!("{what}: no httpGet probe for {path}"));
    assert_eq!(get.path.as_deref(), Some(path), "{what}");
    let number = match &get.port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => ports[name],
    };
    assert_eq!(
        number,
        i32::from(api.port()),
        "{what}: {path} probes the API port"
    );
    assert!(served(path), "{what}: the API does not serve {path}");
}

/// The Service and NetworkPolicy name the container's ports; the ServiceMonitor scrapes /metrics on the metrics port.
fn check_ports_by_name(objects: &[Object], what: &str) {
    for object in objects {
        match object {
            Object::Service(service) => {
                let spec = service.spec.as_ref().expect("Service spec");
                let targets: Vec<String> = spec
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| match &p.target_port {
                        Some(IntOrString::String(name)) => name.clone(),
                        other => panic!("{what}: Service targetPort {other:?} is not a named port"),
                    })
                    .collect();
                assert_eq!(targets, ["http", "metrics"], "{what}: Service targets");
            }
            Object::ServiceMonitor(monitor) => {
                for endpoint in &monitor.spec.endpoints {
                    assert_eq!(
                        (endpoint.port.as_str(), endpoint.path.as_str()),
                        ("metrics", "/metrics"),
                        "{what}"
                    );
                }
                assert!(served("/metrics"));
            }
            Object::NetworkPolicy(policy) => {
                let spec = policy.spec.as_ref().expect("NetworkPolicy spec");
                let allowed: Vec<String> = spec
                    .ingress
                    .iter()
                    .flatten()
                    .flat_map(|rule| rule.ports.iter().flatten())
                    .map(|p| match &p.port {
                        Some(IntOrString::String(name)) => name.clone(),
                        other => panic!("{what}: NetworkPolicy port {other:?} is not a named port"),
                    })
                    .collect();
                assert_eq!(allowed, ["http", "metrics"], "{what}: NetworkPolicy ports");
            }
            _ => {}
        }
    }
}

fn served(path: &str) -> bool {
    stagegate::api::route_table()
        .iter()
        .any(|(method, p)| method == axum::http::Method::GET && *p == path)
}

#[test]
fn chart_env_vars_are_ones_the_binary_reads() {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("run subcommand");
    let read: Vec<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for values in values_files() {
        let values = values.as_deref();
        let what = label(values);
        let objects = render(values);
        let container = container(&objects);
        for env in container.env.iter().flatten() {
            // RUST_LOG is read by the log filter, not by clap.
            assert!(
                env.name == "RUST_LOG" || read.contains(&env.name),
                "{what}: the chart sets {} but `stagegate run` reads only {read:?}",
                env.name
            );
        }
        let names: Vec<&str> = container
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        for needed in ["POD_NAMESPACE", "POD_NAME", "RUST_LOG"] {
            assert!(
                names.contains(&needed),
                "{what}: {needed} missing from {names:?}"
            );
        }
    }
}
