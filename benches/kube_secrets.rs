//! Memory of `stagegate run --kube` in a cluster full of Secrets that are not
//! its business (issue 17, item 4): 10,000 unrelated Secrets of 100 KB each
//! (Helm release Secrets, say) in the in-process test API server, one User
//! and one ApiToken to reconcile. Prints the controller's resident set size
//! (VmRSS) once the token is delivered, and its peak (VmHWM).
//!
//! `cargo bench --bench kube_secrets` (or `--profile dev` for a quick run);
//! `STAGEGATE_BENCH_SECRETS` and `STAGEGATE_BENCH_SECRET_KB` scale it,
//! `STAGEGATE_BENCH_BIN` runs another `stagegate` binary. The Lease duration
//! is long because the test server serves a list of gigabytes under one lock.

// The integration tests' API server; clippy builds this target with
// cfg(test), where its self-tests' imports go unused outside their harness.
#[path = "../tests/integration/kube_api/mod.rs"]
#[allow(dead_code, unused_imports)]
mod kube_api;

use base64::Engine as _;
use kube_api::{Identity, KubeApiServer};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let count = env("STAGEGATE_BENCH_SECRETS", 10_000);
    let kb = env("STAGEGATE_BENCH_SECRET_KB", 100);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let server = KubeApiServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let crds = root.join("crds");
    server
        .kubectl(&["apply", "-f", crds.to_str().unwrap_or_default()])
        .assert_success();
    for ns in ["stagegate-system", "team", "releases"] {
        server.create_object("", "namespaces", "", json!({"metadata": {"name": ns}}));
    }
    let started = Instant::now();
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; kb * 1024]);
    for i in 0..count {
        server.create_object(
            "",
            "secrets",
            "releases",
            json!({"metadata": {"name": format!("sh.helm.release.v1.app-{i}.v1"),
                                "labels": {"owner": "helm"}},
                   "type": "helm.sh/release.v1", "data": {"release": payload}}),
        );
    }
    println!(
        "{count} unrelated Secrets of {kb} KB created in {:.1?}",
        started.elapsed()
    );
    server.create_object(
        "",
        "serviceaccounts",
        "stagegate-system",
        json!({"metadata": {"name": "stagegate"}}),
    );
    let token = server.token_for(Identity::admin());
    let kubeconfig =
        server.write_kubeconfig_with_token(dir.path(), "controller.kubeconfig", &token);
    server.create_object(
        "stagegate.dev",
        "users",
        "team",
        json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "User",
               "metadata": {"name": "ada"}, "spec": {"displayName": "Ada"}}),
    );
    server.create_object(
        "stagegate.dev",
        "apitokens",
        "team",
        json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "ApiToken",
               "metadata": {"name": "bot"}, "spec": {"role": "Admin", "validity": "30d"}}),
    );
    // STAGEGATE_BENCH_BIN measures another build (e.g. a copy from before a change).
    let bin = std::env::var("STAGEGATE_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_stagegate").to_string());
    let mut child = Command::new(bin)
        .args(["run", "--kube", "--store"])
        .arg(dir.path().join("store.db"))
        .args([
            "--argon2-memory-kib",
            "8",
            "--argon2-iterations",
            "1",
            "--lease-duration",
            "60s",
        ])
        .args(["--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "stagegate-system")
        .env("POD_NAME", "bench")
        .env("RUST_LOG", "warn")
        .env("STAGEGATE_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start stagegate run --kube");
    let pid = child.id();
    let started = Instant::now();
    let delivered = loop {
        let token = server.object("stagegate.dev", "apitokens", "team", "bot");
        if token.as_ref().and_then(|t| t.pointer("/status/phase")) == Some(&json!("Active")) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(600) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Settle: the watch caches are complete once the first reconcile is done.
    std::thread::sleep(Duration::from_secs(2));
    let (rss, peak) = memory(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(delivered, "the token was not delivered");
    println!(
        "controller reconciled in {:.1?}; RSS {rss:.0} MiB, peak {peak:.0} MiB",
        started.elapsed()
    );
}
