//! `stagegate run --dir` as a child process: edits while it runs, broken files,
//! SIGTERM, and the bootstrap administrator (issues 3 and 8).

mod bootstrap;
mod credentials_policy;
mod fail_isolated;
mod file_modes;
pub(crate) mod harness;
mod invalid_edits;
mod invitations;
mod loud_failure;
mod memory;
mod quiet;
mod rate_limits;
mod scoped;
mod scoped_requests;
mod status_truth;
mod watch;

use crate::support;

// The two tests below stop before any store is opened: they run once, not once per store.

#[test]
fn kube_mode_needs_a_cluster_and_modes_are_exclusive() {
    // Without any cluster configuration the controller stops at once (its tests are in `controller`).
    let o = support::stagegate()
        .args(["run", "--kube"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        support::stderr(&o).contains("Kubernetes client"),
        "{}",
        support::stderr(&o)
    );
    let o = support::run(&["run", "--kube", "--dir", "examples"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(support::stderr(&o).contains("cannot be used with"));
    let o = support::run(&["run"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn secrets_dir_inside_the_watched_dir_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    let secrets = dir.join("secrets");
    let o = support::run(&[
        "run",
        "--dir",
        dir.to_str().unwrap(),
        "--secrets-dir",
        secrets.to_str().unwrap(),
        "--store",
        t.path().join("store.db").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = support::stderr(&o);
    assert!(err.contains("inside the watched directory"), "{err}");
    assert!(!secrets.exists());
}
