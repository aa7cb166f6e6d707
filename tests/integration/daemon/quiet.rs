//! Issue 19: a quiet daemon. Its own Secret deliveries and reads, and files written again
//! with the same content, never start a reconcile; a real edit does, and is applied.
//! Rounds are counted from the daemon's JSON log: `reconciled` for a reconcile, and the
//! debug line of a round that found nothing to do. On both stores.

use super::harness::{copy_examples, status_of, wait_for, Running, Workspace};
use crate::stores::{on_both_stores, StoreKind};

const NOTHING: &str = "\"message\":\"nothing changed; not reconciling\"";
const RECONCILED: &str = "\"message\":\"reconciled\"";

fn count(r: &Running, what: &str) -> usize {
    r.log().matches(what).count()
}

/// Waits until the daemon has run more than `before` rounds that found nothing to do.
fn wait_quiet_round(r: &Running, before: usize, what: &str) {
    wait_for(r, 60, what, || (count(r, NOTHING) > before).then_some(()));
}

const NEW_USER: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: quinn
  namespace: ml-platform
spec:
  displayName: Quinn Quiet
";

on_both_stores!(own_writes_and_unchanged_files_do_not_reconcile_edits_do);
fn own_writes_and_unchanged_files_do_not_reconcile_edits_do(store: StoreKind) {
    let ws = Workspace::on(store);
    copy_examples(&ws.manifests());
    let r = ws.start_logging(&["--log-json"], "info,stagegate::sources::watch=debug");
    wait_for(&r, 60, "the first reconcile", || {
        (count(&r, RECONCILED) >= 1).then_some(())
    });
    // The first apply delivered generated passwords and token keys: their file events run
    // a round, which finds nothing but its own writes.
    wait_quiet_round(&r, 0, "the round raised by the daemon's own deliveries");
    assert_eq!(count(&r, RECONCILED), 1, "{}", r.log());

    // Two variants of a file written again with what it held: a rewrite through a temp
    // file and rename (a new inode, as git and editors do), and an in-place rewrite.
    let name = std::fs::read_dir(ws.manifests())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".yaml"))
        .unwrap();
    let text = ws.read(&name);
    let before = count(&r, NOTHING);
    ws.write(&name, &text);
    wait_quiet_round(&r, before, "the round raised by a same-content rename");
    let before = count(&r, NOTHING);
    std::fs::write(ws.manifests().join(&name), &text).unwrap();
    wait_quiet_round(&r, before, "the round raised by a same-content rewrite");
    assert_eq!(count(&r, RECONCILED), 1, "{}", r.log());

    // A new user is applied, and delivering its password again starts no reconcile.
    let before = count(&r, NOTHING);
    ws.write("quinn.yaml", NEW_USER);
    wait_for(&r, 60, "the new user applied", || {
        status_of(&ws.store(), "User", "ml-platform", "quinn").filter(|(ready, _)| *ready)
    });
    wait_for(&r, 60, "quinn's password delivered", || {
        ws.secrets()
            .join("ml-platform/quinn-password.yaml")
            .exists()
            .then_some(())
    });
    wait_quiet_round(&r, before, "the round raised by quinn's password delivery");
    assert_eq!(count(&r, RECONCILED), 2, "{}", r.log());
    assert!(r.terminate().success());
}

on_both_stores!(a_settled_daemon_does_not_plan_again_at_each_resync);
/// Issue 19 on both stores: once a round wrote nothing, the periodic resync re-reads the
/// files and stops there (the store's token says nothing was committed since); any round
/// that does plan again finds nothing to change.
fn a_settled_daemon_does_not_plan_again_at_each_resync(store: StoreKind) {
    let ws = Workspace::on(store);
    copy_examples(&ws.manifests());
    let r = ws.start_resyncing(
        "1s",
        &["--log-json"],
        "info,stagegate::sources::watch=debug",
    );
    let quiet_resyncs = |r: &Running| {
        r.log()
            .lines()
            .filter(|l| l.contains(NOTHING) && l.contains("\"forced\":true"))
            .count()
    };
    // The first reconcile writes; the resync after it plans again, writes nothing, settles.
    wait_for(&r, 90, "a resync that did not reconcile", || {
        (quiet_resyncs(&r) >= 1).then_some(())
    });
    let settled_at = count(&r, RECONCILED);
    wait_for(&r, 90, "three more resyncs that did not reconcile", || {
        (quiet_resyncs(&r) >= 4).then_some(())
    });
    let log = r.log();
    let after: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(RECONCILED))
        .skip(settled_at)
        .collect();
    for line in &after {
        assert!(line.contains("\"changes\":0"), "{line}");
    }
    // On SQLite the token is the store file's: nothing else moves it. On PostgreSQL it is
    // the server's, which the other tests' databases share, so a resync may plan again.
    if store == StoreKind::Sqlite {
        assert!(after.is_empty(), "{log}");
    }
    assert!(r.terminate().success());
}
