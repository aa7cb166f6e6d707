use super::*;
use crate::secrets::{parse_secret_manifest, verify_password, DirSecretSink, HashValue};
use crate::snapshot::ObjectKey;
use crate::store::{Owner, SessionRow, SqliteStore};

fn cfg() -> BootstrapConfig {
    BootstrapConfig {
        username: "admin".into(),
        namespace: DIR_MODE_NAMESPACE.into(),
    }
}

fn fast() -> PasswordParams {
    PasswordParams::insecure_fast_for_tests()
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn owner(kind: &str, name: &str) -> Option<Owner> {
    Some(Owner {
        key: ObjectKey::new(kind, "team", name),
        source: "users.yaml:1".into(),
    })
}

/// A declared user `root` with a global Admin binding; with a password when `can_log_in`.
fn declare_admin(store: &mut SqliteStore, can_log_in: bool) {
    let mut u = UserRow::new("root", owner("User", "root"));
    if can_log_in {
        u.password_hash = Some(HashValue::new("$argon2id$declared".into()));
        u.password_source = Some(PasswordSource::Generated);
    }
    store
        .commit(&[
            StoreOp::UpsertUser(Box::new(u)),
            StoreOp::UpsertBinding(BindingRow {
                username: "root".into(),
                role: Role::Admin,
                scope: Scope::global(),
                owner: owner("AccessBinding", "root-admin"),
            }),
        ])
        .unwrap();
}

fn password_in(sink: &DirSecretSink) -> String {
    let text = std::fs::read_to_string(sink.path_of(DIR_MODE_NAMESPACE, BOOTSTRAP_SECRET)).unwrap();
    let (_, _, data) = parse_secret_manifest(&text).unwrap();
    String::from_utf8(data["password"].clone()).unwrap()
}

fn actions(store: &SqliteStore) -> Vec<String> {
    store
        .audit(0)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect()
}

fn session(store: &mut SqliteStore) {
    store
        .create_session(&SessionRow {
            id_hash: HashValue::new("s1".into()),
            username: "admin".into(),
            grants: vec![],
            created_at: now(),
            expires_at: now() + jiff::SignedDuration::from_hours(1),
        })
        .unwrap();
}

#[test]
fn created_once_disabled_by_a_declared_admin_and_recreated_when_none_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSecretSink::new(dir.path());
    let mut store = SqliteStore::in_memory().unwrap();

    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Created);
    let first = password_in(&sink);
    let u = store.user("admin").unwrap().unwrap();
    assert!(u.bootstrap && u.can_log_in() && u.owner.is_none());
    assert!(verify_password(
        u.password_hash.as_ref().unwrap(),
        first.as_bytes()
    ));
    assert!(store
        .grants("admin")
        .unwrap()
        .iter()
        .any(|g| g.role == Role::Admin && g.scope.is_global()));
    let path = sink.path_of(DIR_MODE_NAMESPACE, BOOTSTRAP_SECRET);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();

    // A second start neither re-creates nor re-delivers.
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Unchanged);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(password_in(&sink), first);

    // A declared admin who cannot log in yet does not disable it.
    declare_admin(&mut store, false);
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Unchanged);
    assert!(store.user("admin").unwrap().unwrap().can_log_in());

    // Once it can, the bootstrap administrator is disabled and its sessions end.
    session(&mut store);
    declare_admin(&mut store, true);
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Disabled);
    let u = store.user("admin").unwrap().unwrap();
    assert_eq!(u.state, UserState::Revoked);
    assert!(!u.can_log_in());
    assert!(store.session("s1").unwrap().is_none());
    let st = store.statuses().unwrap();
    assert!(st
        .iter()
        .any(|s| s.key == cfg().key() && s.reason == "BootstrapDisabled"));

    // Never re-created while a declared global Admin exists.
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Unchanged);

    // Every global Admin gone: re-created with a new password, audited.
    store
        .commit(&[
            StoreOp::DeleteUser("root".into()),
            StoreOp::DeleteBinding(ObjectKey::new("AccessBinding", "team", "root-admin")),
        ])
        .unwrap();
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Recreated);
    let second = password_in(&sink);
    assert_ne!(first, second);
    let u = store.user("admin").unwrap().unwrap();
    assert!(u.can_log_in());
    assert!(verify_password(
        u.password_hash.as_ref().unwrap(),
        second.as_bytes()
    ));
    assert!(!verify_password(
        u.password_hash.as_ref().unwrap(),
        first.as_bytes()
    ));
    let acts = actions(&store);
    for want in [
        "bootstrap.create",
        "bootstrap.disable",
        "bootstrap.recreate",
    ] {
        assert_eq!(
            acts.iter().filter(|a| *a == want).count(),
            1,
            "{want} in {acts:?}"
        );
    }
    // No audit row or status holds the password.
    let rows = serde_json::to_string(&store.audit(0).unwrap()).unwrap();
    let sts = serde_json::to_string(&store.statuses().unwrap()).unwrap();
    for p in [&first, &second] {
        assert!(!rows.contains(p.as_str()) && !sts.contains(p.as_str()));
    }
}

/// A sink whose deliveries fail, or that "crashes" after writing (delivers, then errors).
struct Faulty {
    inner: DirSecretSink,
    write_then_fail: bool,
}

impl SecretSink for Faulty {
    fn state(&self, ns: &str, name: &str) -> Result<SecretState, SinkError> {
        self.inner.state(ns, name)
    }
    fn deliver(&self, s: &OutgoingSecret) -> Result<Delivery, SinkError> {
        if self.write_then_fail {
            self.inner.deliver(s)?;
        }
        Err(SinkError::Injected("deliver".into()))
    }
}

#[test]
fn failed_delivery_leaves_no_usable_password_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSecretSink::new(dir.path());
    let mut store = SqliteStore::in_memory().unwrap();
    let faulty = Faulty {
        inner: sink.clone(),
        write_then_fail: false,
    };
    assert_eq!(
        ensure_bootstrap_admin(&mut store, &faulty, &cfg(), fast(), now()).unwrap(),
        BootstrapAction::DeliveryFailed
    );
    let st = store.statuses().unwrap();
    assert!(st
        .iter()
        .any(|s| s.reason == "DeliveryFailed" && s.message.contains("injected")));
    let u = store.user("admin").unwrap().unwrap();
    assert!(!u.can_log_in() && u.pending_password.is_none());
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Reissued);
    assert!(store.user("admin").unwrap().unwrap().can_log_in());
}

#[test]
fn a_crash_after_delivery_is_completed_not_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSecretSink::new(dir.path());
    let mut store = SqliteStore::in_memory().unwrap();
    // Simulate: pending recorded, Secret written, process killed before marking it current.
    let faulty = Faulty {
        inner: sink.clone(),
        write_then_fail: true,
    };
    let _ = ensure_bootstrap_admin(&mut store, &faulty, &cfg(), fast(), now());
    let delivered = password_in(&sink);
    // The error path forgot the pending password; put it back as a crash would have left it.
    let mut u = store.user("admin").unwrap().unwrap();
    assert!(!u.can_log_in());
    let text = std::fs::read_to_string(sink.path_of(DIR_MODE_NAMESPACE, BOOTSTRAP_SECRET)).unwrap();
    let SecretState::Ours { key_id: Some(id) } = crate::secrets::classify_manifest(&text) else {
        panic!("not ours")
    };
    u.pending_password = Some(PendingPassword {
        id,
        hash: hash_password(fast(), &SecretValue::from_string(delivered.clone())).unwrap(),
        rotation: 0,
    });
    store.commit(&[StoreOp::UpsertUser(Box::new(u))]).unwrap();
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::Completed);
    let u = store.user("admin").unwrap().unwrap();
    assert!(verify_password(
        u.password_hash.as_ref().unwrap(),
        delivered.as_bytes()
    ));
    assert_eq!(password_in(&sink), delivered);
}

#[test]
fn a_username_held_by_another_user_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let sink = DirSecretSink::new(dir.path());
    let mut store = SqliteStore::in_memory().unwrap();
    store
        .commit(&[StoreOp::UpsertUser(Box::new(UserRow::new(
            "admin",
            owner("User", "admin"),
        )))])
        .unwrap();
    let a = ensure_bootstrap_admin(&mut store, &sink, &cfg(), fast(), now()).unwrap();
    assert_eq!(a, BootstrapAction::NameTaken);
    assert!(!store.user("admin").unwrap().unwrap().bootstrap);
}
