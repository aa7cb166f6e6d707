//! Unit tests of the SQLite store: round trips, transactions, append-only audit.

use super::*;
use crate::policy::{Role, Scope, Stage};
use crate::secrets::HashValue;
use crate::snapshot::ObjectKey;

fn owner(kind: &str, name: &str) -> Option<Owner> {
    Some(Owner {
        key: ObjectKey::new(kind, "default", name),
        source: "users.yaml:1".into(),
    })
}

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn round_trips_every_table() {
    let mut s = SqliteStore::in_memory().unwrap();
    let mut u = UserRow::new("alice", owner("User", "alice"));
    u.password_hash = Some(HashValue::new("$argon2id$x".into()));
    u.password_source = Some(PasswordSource::Generated);
    u.pending_password = Some(PendingPassword {
        id: "abc".into(),
        hash: HashValue::new("$argon2id$y".into()),
        rotation: 1,
    });
    let b = BindingRow {
        username: "alice".into(),
        role: Role::Manager,
        scope: Scope::customer("acme"),
        owner: owner("AccessBinding", "alice-manager"),
    };
    let k = TokenKeyRow {
        key_id: "k1".into(),
        token_name: "ci".into(),
        namespace: "default".into(),
        secret_hmac: HashValue::new("00".into()),
        role: Role::Deployer,
        scope: Scope::project("acme", "fraud"),
        owner_user: Some("alice".into()),
        issued_at: t("2026-01-01T00:00:00Z"),
        expires_at: Some(t("2026-02-01T00:00:00Z")),
        revoked_at: None,
        revoked_reason: None,
        rotation: 0,
        state: KeyState::Issued,
        secret_name: "ci-token".into(),
        owner: owner("ApiToken", "ci"),
    };
    let m = ModelRow {
        name: "churn".into(),
        scope: Scope::customer("acme"),
        owner: Some("alice".into()),
        stage: Stage::Dev,
    };
    s.commit(&[
        StoreOp::UpsertUser(Box::new(u.clone())),
        StoreOp::UpsertBinding(b.clone()),
        StoreOp::UpsertTokenKey(Box::new(k.clone())),
        StoreOp::UpsertModel(m.clone()),
    ])
    .unwrap();
    let st = s.load_state().unwrap();
    assert_eq!(st.users["alice"], u);
    assert_eq!(st.bindings, vec![b.clone()]);
    assert_eq!(st.token_keys["k1"], k);
    assert_eq!(st.models.values().next(), Some(&m));
    assert_eq!(s.grants("alice").unwrap().len(), 1);
    // Re-upserting a declared binding replaces it rather than adding a row.
    s.commit(&[StoreOp::UpsertBinding(b)]).unwrap();
    assert_eq!(s.count("bindings").unwrap(), 1);
}

#[test]
fn commit_is_all_or_nothing() {
    let mut s = SqliteStore::in_memory().unwrap();
    let u = UserRow::new("bob", None);
    let req = DecidedRequest {
        namespace: "default".into(),
        name: "r1".into(),
        model: "m".into(),
        scope: Scope::global(),
        from: crate::policy::FromStage::None,
        to: Stage::Dev,
        requested_by: "bob".into(),
        phase: crate::resources::RequestPhase::Applied,
        message: "ok".into(),
        decided_at: t("2026-01-01T00:00:00Z"),
        source: "r.yaml:1".into(),
    };
    s.commit(&[StoreOp::InsertRequest(Box::new(req.clone()))])
        .unwrap();
    // A second decision of the same request fails, and takes the user insert down with it.
    let err = s.commit(&[
        StoreOp::UpsertUser(Box::new(u)),
        StoreOp::InsertRequest(Box::new(req)),
    ]);
    assert!(err.is_err());
    assert!(s.user("bob").unwrap().is_none());
}

#[test]
fn audit_is_append_only_and_sessions_cascade() {
    let mut s = SqliteStore::in_memory().unwrap();
    let a = AuditRow {
        id: 0,
        at: t("2026-01-01T00:00:00Z"),
        action: "user.create".into(),
        object: ObjectKey::new("User", "default", "carol"),
        source: "u.yaml:3".into(),
        old: None,
        new: Some(serde_json::json!({"username": "carol"})),
    };
    s.commit(&[
        StoreOp::UpsertUser(Box::new(UserRow::new("carol", None))),
        StoreOp::Audit(Box::new(a)),
    ])
    .unwrap();
    assert_eq!(s.audit(0).unwrap().len(), 1);
    assert!(s
        .conn_for_tests()
        .execute("DELETE FROM audit_log", [])
        .is_err());
    let sess = SessionRow {
        id_hash: HashValue::new("h".into()),
        username: "carol".into(),
        grants: vec![],
        created_at: t("2026-01-01T00:00:00Z"),
        expires_at: t("2026-01-02T00:00:00Z"),
    };
    s.create_session(&sess).unwrap();
    s.record_login("carol", t("2026-01-01T00:00:00Z")).unwrap();
    assert!(s.user("carol").unwrap().unwrap().first_login.is_some());
    s.commit(&[StoreOp::DeleteUser("carol".into())]).unwrap();
    assert!(s.session("h").unwrap().is_none());
}

#[test]
fn reopening_a_file_store_keeps_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/store.db");
    SqliteStore::open(&path).unwrap();
    let s = SqliteStore::open(&path).unwrap();
    let v: i64 = s
        .conn_for_tests()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn a_store_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let s = SqliteStore::open(&path).unwrap();
    s.conn_for_tests()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(s);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::NewerSchema { .. })
    ));
}

#[test]
fn migrations_run_forward_from_an_older_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let s = SqliteStore::open(&path).unwrap();
    // Roll the file back to schema 1, as an older build left it (migrations 3 and 2 undone).
    s.conn_for_tests()
        .execute_batch(
            "DROP INDEX users_invitation;
             ALTER TABLE users DROP COLUMN password_chosen_at;
             ALTER TABLE users DROP COLUMN invitation_id;
             ALTER TABLE users DROP COLUMN invitation_hmac;
             ALTER TABLE users DROP COLUMN invitation_rotation;
             ALTER TABLE users DROP COLUMN invitation_issued_at;
             ALTER TABLE users DROP COLUMN invitation_expires_at;
             ALTER TABLE users DROP COLUMN invitation_state;
             DROP TABLE store_meta; PRAGMA user_version = 1;",
        )
        .unwrap();
    drop(s);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.load_state().unwrap().revision, 0);
    s.commit(&[StoreOp::UpsertUser(Box::new(UserRow::new("x", None)))])
        .unwrap();
    assert_eq!(s.load_state().unwrap().revision, 1);
    let err = s.commit(&[StoreOp::ExpectRevision(0)]).unwrap_err();
    assert!(matches!(
        err,
        StoreError::Stale {
            expected: 0,
            found: 1
        }
    ));
}
