use super::*;
use crate::store::SqliteStore;

const ORG: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: ada
  namespace: t
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata:
  name: bot
  namespace: t
spec:
  role: Admin
  validity: VALIDITY
";

fn snapshot(validity: &str) -> Snapshot {
    let mut snap = crate::sources::files::load_text("org.yaml", &ORG.replace("VALIDITY", validity));
    crate::validate::validate(&mut snap);
    assert!(
        !snap.diagnostics.iter().any(|d| d.is_error()),
        "{:?}",
        snap.diagnostics
    );
    snap
}

fn reconciler(dir: &std::path::Path, bootstrap: bool) -> StoreReconciler {
    let store = SqliteStore::open(&dir.join("store.db")).unwrap();
    let bootstrap = bootstrap.then(|| BootstrapConfig {
        username: "admin".into(),
        namespace: crate::bootstrap::DIR_MODE_NAMESPACE.into(),
    });
    StoreReconciler::new(
        store.into(),
        dir.join("secrets"),
        ServerKey::generate(),
        PasswordParams::insecure_fast_for_tests(),
        bootstrap,
    )
}

#[test]
fn settled_after_a_round_that_wrote_nothing_until_the_store_changes_or_a_key_expires() {
    for bootstrap in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), bootstrap);
        let now = crate::snapshot::now();
        assert!(!rec.settled(now), "nothing reconciled yet");
        let first = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(!first.changes.is_empty());
        assert!(
            !rec.settled(now),
            "the first round wrote: the next plans again"
        );
        let second = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(second.changes.is_empty(), "{:?}", second.changes);
        let now = crate::snapshot::now();
        assert!(rec.settled(now), "bootstrap {bootstrap}");
        // The key expires in 30 days: from then on the same inputs plan differently.
        let day = jiff::SignedDuration::from_hours(24);
        assert!(rec.settled(now.checked_add(day * 29).unwrap()));
        assert!(!rec.settled(now.checked_add(day * 31).unwrap()));
        // Another process writes to the store: no longer settled.
        let mut other = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        crate::sources::health::record_failure(&mut other, "X", "test", None, now);
        assert!(!rec.settled(now));
        // The next round reads the store again (and clears the failure it recorded: a
        // write); the one after it writes nothing and settles.
        for _ in 0..2 {
            let again = rec.reconcile(snapshot("30d"), None).unwrap();
            assert!(again.changes.is_empty());
        }
        assert!(rec.settled(crate::snapshot::now()));
    }
}

#[test]
fn a_key_that_never_expires_leaves_it_settled_and_a_change_unsettles_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), true);
    rec.reconcile(snapshot("Never"), None).unwrap();
    rec.reconcile(snapshot("Never"), None).unwrap();
    let far = crate::snapshot::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 3650))
        .unwrap();
    assert!(rec.settled(far));
    // A declared change is applied (a write): the round after it plans again.
    let changed = rec.reconcile(snapshot("30d"), None).unwrap();
    assert!(!changed.changes.is_empty());
    assert!(!rec.settled(crate::snapshot::now()));
}

#[test]
fn an_unaccepted_invitation_unsettles_it_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = reconciler(dir.path(), false);
    let invited = ORG
        .replace("spec: {}", "spec:\n  invitation:\n    validity: 2d")
        .replace("VALIDITY", "Never");
    let snap = || {
        let mut snap = crate::sources::files::load_text("org.yaml", &invited);
        crate::validate::validate(&mut snap);
        assert!(
            !snap.diagnostics.iter().any(|d| d.is_error()),
            "{:?}",
            snap.diagnostics
        );
        snap
    };
    rec.reconcile(snap(), None).unwrap();
    rec.reconcile(snap(), None).unwrap();
    let now = crate::snapshot::now();
    let day = jiff::SignedDuration::from_hours(24);
    assert!(rec.settled(now.checked_add(day).unwrap()));
    // At the invitation's expiry the same inputs plan InvitationExpired: plan again.
    assert!(!rec.settled(now.checked_add(day * 3).unwrap()));
}
