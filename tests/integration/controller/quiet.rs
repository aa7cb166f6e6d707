//! A settled controller is quiet (issue 19, goals 2 and 3, Kubernetes mode): the
//! watch events of its own status patches do not wake it, and a resync with nothing
//! new reconciles nothing; what matters still does: a status someone else rewrote,
//! and an edit.

use super::*;
use serde_json::Value;

fn all_observed(c: &Cluster) -> bool {
    let items = c.get_json(&[ALL_KINDS, "-n", "ml-platform"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    !items.is_empty() && items.iter().all(observed)
}

fn phase(c: &Cluster, name: &str) -> Option<String> {
    c.get_json(&["user", name, "-n", "ml-platform"])
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `kubectl patch user maria` with a merge patch (and `extra` flags).
fn patch_maria(c: &Cluster, extra: &[&str], body: &str) {
    let mut args = vec![
        "patch",
        "user",
        "maria",
        "-n",
        "ml-platform",
        "--type=merge",
    ];
    args.extend(extra);
    args.extend(["-p", body]);
    c.kubectl(&args);
}

/// Waits until no reconcile has been logged for `quiet`; returns the count then.
fn settle(ctl: &Controller, quiet: Duration) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = ctl.reconciles();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = ctl.reconciles();
        if now != count {
            (count, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return count;
        }
    }
    panic!("never quiet for {quiet:?}:\n{}", ctl.log_tail());
}

#[test]
fn a_settled_controller_skips_resyncs_and_still_repairs_what_others_change() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller_with("quiet", &c.store_path(), &["--resync", "1s"], &[]);
    wait_for(60, "every object reconciled", Some(&ctl), || {
        all_observed(&c).then_some(())
    });
    // Settled: five resync periods pass without a reconcile or a write.
    let before = settle(&ctl, Duration::from_millis(2500));
    c.clear_log();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        ctl.reconciles(),
        before,
        "a resync with nothing new reconciled:\n{}",
        ctl.log_tail()
    );
    let w = writes(&c.controller_requests());
    assert!(w.is_empty(), "no write expected, got {w:#?}");

    // Someone else rewrites a status: it is put back, then the controller settles again.
    let declared = phase(&c, "maria").expect("maria has a phase");
    assert_ne!(declared, "Revoked");
    patch_maria(
        &c,
        &["--subresource=status"],
        r#"{"status":{"phase":"Revoked"}}"#,
    );
    wait_for(20, "maria's status put back", Some(&ctl), || {
        (phase(&c, "maria") == Some(declared.clone())).then_some(())
    });
    let repaired = settle(&ctl, Duration::from_millis(2500));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ctl.reconciles(), repaired, "quiet again after the repair");

    // An edit is still reconciled.
    patch_maria(&c, &[], r#"{"spec":{"state":"Revoked"}}"#);
    wait_for(20, "maria revoked", Some(&ctl), || {
        (phase(&c, "maria").as_deref() == Some("Revoked")).then_some(())
    });
    c.check_rbac();
}

/// The first apply's own writes (finalizers added, statuses patched, Secrets delivered,
/// keys issued) come back through the watches as no news: the round after it plans
/// nothing (at 10,000 users it read and planned all 67,000 objects a second time).
#[test]
fn the_first_apply_is_planned_once() {
    let c = Cluster::start();
    apply_examples(&c);
    let ctl = c.controller_with("once", &c.store_path(), &["--resync", "1s"], &[]);
    wait_for(60, "every object reconciled", Some(&ctl), || {
        all_observed(&c).then_some(())
    });
    settle(&ctl, Duration::from_millis(2500));
    let log = ctl.log();
    let planned = log
        .lines()
        .filter(|l| l.contains("reconcile phases"))
        .count();
    assert_eq!(planned, 1, "rounds that planned:\n{}", ctl.log_tail());
}
