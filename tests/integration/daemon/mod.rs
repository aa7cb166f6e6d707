//! `stagegate run --dir` as a child process: edits while it runs, broken files,
//! SIGTERM, and the bootstrap administrator (issues 3 and 8).

mod bootstrap;
mod harness;
mod watch;

use crate::support;

#[test]
fn kube_mode_is_not_built_yet_and_modes_are_exclusive() {
    let o = support::run(&["run", "--kube"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(support::stderr(&o).contains("not built yet"));
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
