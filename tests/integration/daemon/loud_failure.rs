//! Issue 12: a reconcile that cannot run at all is loud. `/readyz` fails with
//! the reason in its body, `stagegate_reconcile_errors_total` counts it, the
//! last-success timestamp stops moving, `stagegate status` shows it (when the
//! store can record it), and it is retried with back-off until it works again.

use super::fail_isolated::start_ready;
use super::harness::{wait_for, Workspace};
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use stagegate::store::Store;

const USER: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: NAME, namespace: team}
spec: {}
";

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

on_both_stores!(reconcile_that_cannot_run_fails_readyz_with_the_reason_manifest_dir_removed);
fn reconcile_that_cannot_run_fails_readyz_with_the_reason_manifest_dir_removed(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("a.yaml", &USER.replace("NAME", "ann"));
    let (r, api) = start_ready(&ws, false);
    let m = api.get("/metrics", None).text;
    let first = metric(&m, "stagegate_last_successful_reconcile_timestamp_seconds").unwrap();
    assert!(first > 1.0e9, "{m}");

    std::fs::remove_dir_all(ws.manifests()).unwrap();
    let body = wait_for(&r, 60, "/readyz to fail", || {
        let rep = api.get("/readyz", None);
        (rep.status == 503).then_some(rep.body)
    });
    assert_eq!(body["error"], "unavailable");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("cannot read the watched directory"), "{msg}");
    let m = api.get("/metrics", None).text;
    assert!(
        metric(
            &m,
            "stagegate_reconcile_errors_total{reason=\"ManifestsUnreadable\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "stagegate_last_successful_reconcile_timestamp_seconds"),
        Some(first)
    );
    // `status` shows it, and exits non-zero.
    let o = ws.status();
    let out = support::stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("Reconcile stagegate/last") && out.contains("ManifestsUnreadable"),
        "{out}"
    );
    // Ann is not pruned by a directory that vanished.
    assert!(ws.store().user("ann").unwrap().is_some());

    // Back: the back-off retry reconciles, readiness returns, the failure row is gone.
    std::fs::create_dir_all(ws.manifests()).unwrap();
    ws.write("a.yaml", &USER.replace("NAME", "ann"));
    wait_for(&r, 60, "/readyz to recover", || {
        (api.get("/readyz", None).status == 200).then_some(())
    });
    let o = ws.status();
    assert!(
        !support::stdout(&o).contains("Reconcile"),
        "{}",
        support::stdout(&o)
    );
    let log = r.log();
    assert!(log.contains("reconcile will be retried"), "{log}");
}

/// SQLite only: it holds SQLite's file lock (PostgreSQL orders writers with a row lock, and
/// a writer waits for it rather than failing).
#[test]
fn reconcile_that_cannot_run_fails_readyz_with_the_reason_store_locked() {
    let ws = Workspace::new();
    ws.write("a.yaml", &USER.replace("NAME", "ann"));
    let (r, api) = start_ready(&ws, false);
    // Another process holds the write lock: the store cannot be written (this holds for root too).
    let holder = rusqlite::Connection::open(ws.store_path()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    ws.write("b.yaml", &USER.replace("NAME", "ben"));
    let body = wait_for(&r, 90, "/readyz to fail", || {
        let rep = api.get("/readyz", None);
        (rep.status == 503).then_some(rep.body)
    });
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("the last reconcile could not run") && msg.contains("locked"),
        "{msg}"
    );
    let m = api.get("/metrics", None).text;
    assert!(
        metric(
            &m,
            "stagegate_reconcile_errors_total{reason=\"StoreError\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    // Retried with back-off (no further edit needed), ben arrives and readiness returns.
    wait_for(&r, 90, "ben after the lock is released", || {
        ws.store().user("ben").unwrap()
    });
    wait_for(&r, 60, "/readyz to recover", || {
        (api.get("/readyz", None).status == 200).then_some(())
    });
}
