use super::*;
use std::path::{Path, PathBuf};

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

/// The store of a test in `dir`: a SQLite file there, or a fresh PostgreSQL database.
fn location(dir: &Path, postgres: bool) -> PathBuf {
    if postgres {
        crate::store::pg::test_server::database().into()
    } else {
        dir.join("store.db")
    }
}

fn reconciler(dir: &Path, store: &Path, bootstrap: bool) -> StoreReconciler {
    let store = AnyStore::open(store).unwrap();
    let bootstrap = bootstrap.then(|| BootstrapConfig {
        username: "admin".into(),
        namespace: crate::bootstrap::DIR_MODE_NAMESPACE.into(),
    });
    StoreReconciler::new(
        store,
        dir.join("secrets"),
        ServerKey::generate(),
        PasswordParams::insecure_fast_for_tests(),
        bootstrap,
    )
}

/// Runs rounds with nothing to do until one leaves `rec` settled. On SQLite the first must:
/// its token is the file's. On PostgreSQL it is the server's, and the other tests' databases
/// on the shared test server move it too, so a round settles once nobody wrote during it
/// (with the old token, which never matched, none ever did).
fn settle(rec: &mut StoreReconciler, postgres: bool, snapshot: impl Fn() -> Snapshot) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let round = rec.reconcile(snapshot(), None).unwrap();
        assert!(round.changes.is_empty(), "{:?}", round.changes);
        if rec.settled(crate::snapshot::now()) {
            return;
        }
        assert!(postgres, "a SQLite round that wrote nothing settles");
        assert!(
            std::time::Instant::now() < deadline,
            "no round with nothing to do settled on PostgreSQL"
        );
    }
}

#[test]
fn settled_after_a_round_that_wrote_nothing_until_the_store_changes_or_a_key_expires() {
    for (bootstrap, postgres) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let store = location(dir.path(), postgres);
        let mut rec = reconciler(dir.path(), &store, bootstrap);
        let now = crate::snapshot::now();
        assert!(!rec.settled(now), "nothing reconciled yet");
        let first = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(!first.changes.is_empty());
        assert!(
            !rec.settled(now),
            "the first round wrote: the next plans again"
        );
        settle(&mut rec, postgres, || snapshot("30d"));
        let now = crate::snapshot::now();
        // The key expires in 30 days: from then on the same inputs plan differently.
        let day = jiff::SignedDuration::from_hours(24);
        assert!(rec.settled(now.checked_add(day * 29).unwrap()));
        assert!(!rec.settled(now.checked_add(day * 31).unwrap()));
        // Another process writes to the store: no longer settled.
        let mut other = AnyStore::open(&store).unwrap();
        crate::sources::health::record_failure(&mut other, "X", "test", None, now);
        assert!(!rec.settled(now));
        // The next round reads the store again (and clears the failure it recorded: a
        // write); the one after it writes nothing and settles.
        let again = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(again.changes.is_empty());
        settle(&mut rec, postgres, || snapshot("30d"));
        let now = crate::snapshot::now();
        // A login elsewhere writes a session, which bumps no revision: not settled either.
        other
            .create_session(&crate::store::SessionRow {
                id_hash: crate::secrets::HashValue::new("a-session".into()),
                username: "ada".into(),
                grants: Vec::new(),
                created_at: now,
                expires_at: now + jiff::SignedDuration::from_hours(1),
            })
            .unwrap();
        assert!(!rec.settled(now), "{}", store.display());
    }
}

#[test]
fn a_key_that_never_expires_leaves_it_settled_and_a_change_unsettles_it() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), &location(dir.path(), postgres), true);
        rec.reconcile(snapshot("Never"), None).unwrap();
        settle(&mut rec, postgres, || snapshot("Never"));
        let far = crate::snapshot::now()
            .checked_add(jiff::SignedDuration::from_hours(24 * 3650))
            .unwrap();
        assert!(rec.settled(far));
        // A declared change is applied (a write): the round after it plans again.
        let changed = rec.reconcile(snapshot("30d"), None).unwrap();
        assert!(!changed.changes.is_empty());
        assert!(!rec.settled(crate::snapshot::now()));
    }
}

#[test]
fn an_unaccepted_invitation_unsettles_it_when_it_expires() {
    for postgres in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = reconciler(dir.path(), &location(dir.path(), postgres), false);
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
        settle(&mut rec, postgres, snap);
        let now = crate::snapshot::now();
        let day = jiff::SignedDuration::from_hours(24);
        assert!(rec.settled(now.checked_add(day).unwrap()));
        // At the invitation's expiry the same inputs plan InvitationExpired: plan again.
        assert!(!rec.settled(now.checked_add(day * 3).unwrap()));
    }
}
