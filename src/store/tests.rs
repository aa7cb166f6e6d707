//! Unit tests of the store: round trips, transactions, append-only audit, run
//! against SQLite and against a real PostgreSQL server (same test bodies).

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

/// A fresh PostgreSQL store (its own database on the test server).
fn pg() -> PgStore {
    PgStore::open(PgTarget::parse(&pg::test_server::database(), false).unwrap()).unwrap()
}

/// One fresh store of each kind, named.
pub(super) fn both_stores() -> Vec<(&'static str, AnyStore)> {
    vec![
        ("sqlite", AnyStore::in_memory().unwrap()),
        ("postgres", pg().into()),
    ]
}

/// Runs a raw statement (tests of the database's own guards).
fn raw(s: &AnyStore, sql: &str) -> Result<(), String> {
    match s {
        AnyStore::Sqlite(s) => s
            .conn_for_tests()
            .execute_batch(sql)
            .map_err(|e| e.to_string()),
        AnyStore::Postgres(s) => s.raw_for_tests(sql).map_err(|e| e.to_string()),
    }
}

#[test]
fn round_trips_every_table() {
    for (name, s) in both_stores() {
        eprintln!("store: {name}");
        round_trips(s);
    }
}

fn round_trips(mut s: AnyStore) {
    let mut u = UserRow::new("alice", owner("User", "alice"));
    u.password_hash = Some(HashValue::new("$argon2id$x".into()));
    // Quotes, backslashes and parameter-like text are data, in both stores.
    u.display_name = Some("O'Brien \\ ?1 $1 ''; DROP TABLE users; --".into());
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
    for (name, s) in both_stores() {
        eprintln!("store: {name}");
        all_or_nothing(s);
    }
}

fn all_or_nothing(mut s: AnyStore) {
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
    for (name, s) in both_stores() {
        eprintln!("store: {name}");
        append_only(s);
    }
}

fn append_only(mut s: AnyStore) {
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
    assert!(raw(&s, "DELETE FROM audit_log").is_err());
    assert!(raw(&s, "UPDATE audit_log SET action = 'x'").is_err());
    assert_eq!(s.audit(0).unwrap().len(), 1);
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
    // A file as the first build left it: schema 1 only, holding a user.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(super::schema::MIGRATIONS[0]).unwrap();
    old.execute_batch(
        "INSERT INTO users (username, state) VALUES ('old', 'Active'); PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(old);
    let mut s = SqliteStore::open(&path).unwrap();
    let state = s.load_state().unwrap();
    assert_eq!(state.revision, 0);
    assert!(
        state.users.contains_key("old"),
        "rows survive the migrations"
    );
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

#[test]
fn postgres_refuses_a_plan_made_before_another_process_committed() {
    let url = pg::test_server::database();
    let open = || PgStore::open(PgTarget::parse(&url, false).unwrap()).unwrap();
    let (mut a, mut b) = (open(), open());
    let seen = a.load_state().unwrap().revision;
    // Another process (its own connection) commits first.
    b.commit(&[StoreOp::UpsertUser(Box::new(UserRow::new("x", None)))])
        .unwrap();
    let err = a
        .commit(&[
            StoreOp::ExpectRevision(seen),
            StoreOp::UpsertUser(Box::new(UserRow::new("y", None))),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { .. }), "{err}");
    assert!(a.user("y").unwrap().is_none());
    // Concurrent commits from several connections are all counted: the row lock orders them.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mut s = open();
            std::thread::spawn(move || {
                for j in 0..5 {
                    let name = format!("u{i}-{j}");
                    s.commit(&[StoreOp::UpsertUser(Box::new(UserRow::new(&name, None)))])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(a.load_state().unwrap().revision, seen + 21);
    assert_eq!(a.count("users").unwrap(), 21);
}

#[test]
fn postgres_schema_is_versioned_and_a_newer_one_is_refused() {
    let url = pg::test_server::database();
    let open = || PgStore::open(PgTarget::parse(&url, false).unwrap());
    let s = open().unwrap();
    // Reopening finds the schema in place and migrates nothing.
    drop(open().unwrap());
    s.raw_for_tests(&format!(
        "UPDATE stagegate_schema SET version = {}",
        SCHEMA_VERSION + 1
    ))
    .unwrap();
    assert!(matches!(open(), Err(StoreError::NewerSchema { .. })));
}

#[test]
fn an_unreachable_postgres_is_reported_with_the_password_redacted() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target =
        PgTarget::parse(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"), false).unwrap();
    let store = PgStore::unopened(target);
    let err = store.current_revision().unwrap_err().to_string();
    assert!(
        err.contains("unreachable") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn a_chosen_password_is_written_once_in_both_stores() {
    for (name, s) in both_stores() {
        eprintln!("store: {name}");
        chosen_once(s);
    }
}

/// An invited user chooses a password: the invitation becomes accepted, the other sessions
/// end, the revision moves; a second use of the code, or a stale old password, writes nothing.
fn chosen_once(mut s: AnyStore) {
    let mut u = UserRow::new("dora", owner("User", "dora"));
    u.invitation = Some(InvitationRow {
        id: "inv-1".into(),
        code_hmac: HashValue::new("hmac".into()),
        rotation: 2,
        issued_at: t("2026-01-01T00:00:00Z"),
        expires_at: t("2026-01-08T00:00:00Z"),
        state: InvitationState::Issued,
    });
    s.commit(&[StoreOp::UpsertUser(Box::new(u.clone()))])
        .unwrap();
    assert_eq!(s.user_by_invitation("inv-1").unwrap(), Some(u));
    assert_eq!(s.user_by_invitation("inv-2").unwrap(), None);
    for (id, at) in [
        ("kept", "2026-01-02T00:00:00Z"),
        ("other", "2026-01-01T00:00:00Z"),
    ] {
        s.create_session(&SessionRow {
            id_hash: HashValue::new(id.into()),
            username: "dora".into(),
            grants: vec![],
            created_at: t(at),
            expires_at: t("2026-01-09T00:00:00Z"),
        })
        .unwrap();
    }
    let ids = |s: &AnyStore| -> Vec<String> {
        let rows = s.user_sessions("dora").unwrap();
        rows.iter()
            .map(|r| r.id_hash.expose().to_string())
            .collect()
    };
    assert_eq!(ids(&s), ["other", "kept"], "oldest first");
    let before = s.load_state().unwrap().revision;
    let chosen = |replaces| ChosenPassword {
        username: "dora".into(),
        replaces,
        hash: HashValue::new("$argon2id$chosen".into()),
        at: t("2026-01-03T00:00:00Z"),
        keep_session: Some(HashValue::new("kept".into())),
        audit: AuditRow {
            id: 0,
            at: t("2026-01-03T00:00:00Z"),
            action: "invitation.accept".into(),
            object: ObjectKey::new("User", "default", "dora"),
            source: "api".into(),
            old: None,
            new: None,
        },
    };
    assert!(s
        .set_chosen_password(&chosen(Replaces::Invitation("inv-1".into())))
        .unwrap());
    let row = s.user("dora").unwrap().unwrap();
    assert_eq!(row.password_hash.unwrap().expose(), "$argon2id$chosen");
    assert_eq!(row.password_chosen_at, Some(t("2026-01-03T00:00:00Z")));
    assert_eq!(row.invitation.unwrap().state, InvitationState::Accepted);
    assert_eq!(ids(&s), ["kept"]);
    assert_eq!(s.load_state().unwrap().revision, before + 1);
    let audits = s.audit(0).unwrap();
    assert_eq!(audits.last().unwrap().action, "invitation.accept");
    // Used once: the same code, or an old password the row no longer holds, changes nothing.
    assert!(!s
        .set_chosen_password(&chosen(Replaces::Invitation("inv-1".into())))
        .unwrap());
    let stale = Replaces::Password(HashValue::new("$argon2id$other".into()));
    assert!(!s.set_chosen_password(&chosen(stale)).unwrap());
    assert_eq!(s.load_state().unwrap().revision, before + 1);
    assert_eq!(s.audit(0).unwrap().len(), audits.len());
}

/// Everything a store holds that a commit writes, comparable across stores.
fn snapshot_of(s: &AnyStore) -> String {
    let st = s.load_state().unwrap();
    let sessions: Vec<String> = s
        .sessions()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{}", r.username, r.id_hash.expose()))
        .collect();
    format!(
        "users {:#?}\nbindings {:#?}\ntoken keys {:#?}\nmodels {:#?}\nrequests {:#?}\n\
         statuses {:#?}\nrevision {}\naudit {:#?}\nsessions {sessions:?}",
        st.users,
        st.bindings,
        st.token_keys,
        st.models,
        st.requests,
        st.statuses,
        st.revision,
        s.audit(0).unwrap(),
    )
}

#[test]
fn a_commit_of_mixed_writes_on_the_same_keys_leaves_the_same_state_in_both_stores() {
    let [(_, sqlite), (_, postgres)] = <[_; 2]>::try_from(both_stores()).unwrap();
    let sqlite = mixed_writes(sqlite);
    let postgres = mixed_writes(postgres);
    let (a, b) = (snapshot_of(&sqlite), snapshot_of(&postgres));
    assert!(a == b, "SQLite:\n{a}\n\nPostgreSQL:\n{b}");
}

/// One commit whose writes touch the same keys several times, in every order PostgreSQL's
/// set-at-a-time writer must keep (see `pg/bulk.rs`); checks what the result must be, and
/// returns the store for a comparison with the other one.
fn mixed_writes(mut s: AnyStore) -> AnyStore {
    let binding = |name: &str, user: &str, role| BindingRow {
        username: user.into(),
        role,
        scope: Scope::customer("acme"),
        owner: owner("AccessBinding", name),
    };
    let key = |id: &str, state| TokenKeyRow {
        key_id: id.into(),
        token_name: "ci".into(),
        namespace: "default".into(),
        secret_hmac: HashValue::new(format!("hmac-{id}")),
        role: Role::Deployer,
        scope: Scope::project("acme", "fraud"),
        owner_user: Some("alice".into()),
        issued_at: t("2026-01-01T00:00:00Z"),
        expires_at: None,
        revoked_at: None,
        revoked_reason: None,
        rotation: 0,
        state,
        secret_name: "ci-token".into(),
        owner: owner("ApiToken", "ci"),
    };
    let status = |kind: &str, name: &str, reason: &str| ObjectStatus {
        key: ObjectKey::new(kind, "default", name),
        ready: reason == "Ready",
        reason: reason.into(),
        message: format!("{name}: {reason}"),
        phase: None,
        observed_generation: Some(1),
        extra: [("k".to_string(), reason.to_string())].into(),
        source: "x.yaml:1".into(),
    };
    let audit = |action: &str, name: &str| {
        StoreOp::Audit(Box::new(AuditRow {
            id: 0,
            at: t("2026-01-02T00:00:00Z"),
            action: action.into(),
            object: ObjectKey::new("User", "default", name),
            source: "x.yaml:1".into(),
            old: None,
            new: Some(serde_json::json!({ "name": name })),
        }))
    };
    let mut alice = UserRow::new("alice", owner("User", "alice"));
    alice.first_login = Some(t("2026-01-01T10:00:00Z"));
    let mut erin = UserRow::new("erin", owner("User", "erin"));
    erin.invitation = Some(InvitationRow {
        id: "inv-erin".into(),
        code_hmac: HashValue::new("hmac".into()),
        rotation: 0,
        issued_at: t("2026-01-01T00:00:00Z"),
        expires_at: t("2026-01-08T00:00:00Z"),
        state: InvitationState::Pending,
    });
    s.commit(&[
        StoreOp::UpsertUser(Box::new(alice.clone())),
        StoreOp::UpsertUser(Box::new(erin.clone())),
        StoreOp::UpsertBinding(binding("b1", "alice", Role::Analyst)),
        StoreOp::UpsertTokenKey(Box::new(key("k1", KeyState::Pending))),
        StoreOp::SetStatus(Box::new(status("User", "alice", "Pending"))),
    ])
    .unwrap();
    s.create_session(&SessionRow {
        id_hash: HashValue::new("alice-1".into()),
        username: "alice".into(),
        grants: vec![],
        created_at: t("2026-01-01T10:00:00Z"),
        expires_at: t("2026-01-09T00:00:00Z"),
    })
    .unwrap();
    let revision = s.load_state().unwrap().revision;

    // Carol is created, then re-declared by another owner in the same commit: the second
    // upsert sees the first row, so the login it recorded is not kept.
    let mut carol = UserRow::new("carol", owner("User", "carol"));
    carol.first_login = Some(t("2026-01-01T11:00:00Z"));
    let mut carol2 = UserRow::new("carol", owner("User", "carol-2"));
    carol2.display_name = Some("Carol".into());
    // Alice is deleted and declared again: she exists afterwards, without her old login.
    let mut alice2 = UserRow::new("alice", owner("User", "alice-2"));
    alice2.email = Some("alice@example.com".into());
    // Erin's invitation id passes to Frank: Erin's row must be gone first.
    let mut frank = UserRow::new("frank", owner("User", "frank"));
    frank.invitation = erin.invitation.clone();
    let mut model = ModelRow {
        name: "churn".into(),
        scope: Scope::customer("acme"),
        owner: Some("alice".into()),
        stage: Stage::Dev,
    };
    let first_model = model.clone();
    model.stage = Stage::Staging;
    let unowned = BindingRow {
        owner: None,
        ..binding("", "dave", Role::Admin)
    };
    s.commit(&[
        StoreOp::ExpectRevision(revision),
        audit("a.1", "carol"),
        // An unowned binding first, then declared ones: a re-declared binding's delete must
        // still run before its insert.
        StoreOp::UpsertBinding(unowned),
        StoreOp::UpsertBinding(binding("b2", "carol", Role::Analyst)),
        StoreOp::UpsertUser(Box::new(carol)),
        audit("a.2", "carol"),
        StoreOp::UpsertUser(Box::new(carol2)),
        // Delete and create of one binding, both ways round.
        StoreOp::DeleteBinding(ObjectKey::new("AccessBinding", "default", "b1")),
        StoreOp::UpsertBinding(binding("b1", "alice", Role::Manager)),
        StoreOp::UpsertBinding(binding("b3", "carol", Role::Analyst)),
        StoreOp::DeleteBinding(ObjectKey::new("AccessBinding", "default", "b3")),
        // A binding re-declared twice in one commit.
        StoreOp::UpsertBinding(binding("b2", "carol", Role::Manager)),
        StoreOp::DeleteUser("alice".into()),
        StoreOp::UpsertUser(Box::new(alice2.clone())),
        StoreOp::EndSessions("alice".into()),
        StoreOp::DeleteUser("erin".into()),
        StoreOp::UpsertUser(Box::new(frank)),
        // Write-once delivery: pending, then issued, in one commit; k1 issued at last.
        StoreOp::UpsertTokenKey(Box::new(key("k2", KeyState::Pending))),
        StoreOp::UpsertTokenKey(Box::new(key("k1", KeyState::Issued))),
        StoreOp::UpsertTokenKey(Box::new(key("k2", KeyState::Issued))),
        StoreOp::UpsertTokenKey(Box::new(key("k3", KeyState::Pending))),
        StoreOp::DeleteTokenKey("k3".into()),
        StoreOp::UpsertModel(first_model),
        StoreOp::UpsertModel(model.clone()),
        // Status overwrites and a status set then forgotten.
        StoreOp::SetStatus(Box::new(status("User", "alice", "Ready"))),
        StoreOp::SetStatus(Box::new(status("User", "carol", "Pending"))),
        StoreOp::SetStatus(Box::new(status("User", "carol", "Ready"))),
        StoreOp::DeleteStatus(ObjectKey::new("User", "default", "alice")),
        StoreOp::SetStatus(Box::new(status("User", "alice", "Invited"))),
        StoreOp::SetStatus(Box::new(status("User", "bob", "Ready"))),
        StoreOp::DeleteStatus(ObjectKey::new("User", "default", "bob")),
        audit("a.3", "alice"),
    ])
    .unwrap();

    let st = s.load_state().unwrap();
    assert_eq!(st.revision, revision + 1);
    assert_eq!(st.users["alice"], alice2, "deleted, then created again");
    assert_eq!(st.users["carol"].first_login, None, "another owner's login");
    assert_eq!(st.users["carol"].display_name.as_deref(), Some("Carol"));
    assert!(!st.users.contains_key("erin"));
    assert_eq!(st.users["frank"].invitation, erin.invitation);
    let bindings: Vec<(Option<&str>, &str, Role)> = st
        .bindings
        .iter()
        .map(|b| {
            let owner = b.owner.as_ref().map(|o| o.key.name.as_str());
            (owner, b.username.as_str(), b.role)
        })
        .collect();
    let mut expected = vec![
        (None, "dave", Role::Admin),
        (Some("b1"), "alice", Role::Manager),
        (Some("b2"), "carol", Role::Manager),
    ];
    expected.sort();
    let mut bindings = bindings;
    bindings.sort();
    assert_eq!(bindings, expected);
    let keys: Vec<(&str, KeyState)> = st
        .token_keys
        .values()
        .map(|k| (k.key_id.as_str(), k.state))
        .collect();
    assert_eq!(keys, [("k1", KeyState::Issued), ("k2", KeyState::Issued)]);
    assert_eq!(st.models.values().collect::<Vec<_>>(), [&model]);
    let reasons: Vec<(&str, &str)> = st
        .statuses
        .values()
        .map(|s| (s.key.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons, [("alice", "Invited"), ("carol", "Ready")]);
    let actions: Vec<String> = s.audit(0).unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["a.1", "a.2", "a.3"], "appended in commit order");
    assert!(s.sessions().unwrap().is_empty(), "alice's session ended");
    s
}

#[test]
fn writes_into_empty_tables_leave_the_same_state_in_both_stores() {
    let [(_, sqlite), (_, postgres)] = <[_; 2]>::try_from(both_stores()).unwrap();
    let sqlite = into_empty_tables(sqlite);
    let postgres = into_empty_tables(postgres);
    let (a, b) = (snapshot_of(&sqlite), snapshot_of(&postgres));
    assert!(a == b, "SQLite:\n{a}\n\nPostgreSQL:\n{b}");
}

/// Writes PostgreSQL's writer may shortcut while a table holds no rows (see `pg/bulk.rs`: a
/// delete from an empty table is not sent, an upsert into one is loaded with `COPY` without
/// asking for stored keys), then the same keys again once the tables are filled, which must
/// delete and update; values that `COPY` and the array parameters must carry exactly.
fn into_empty_tables(mut s: AnyStore) -> AnyStore {
    let odd_text = "tab\there, line\nbreak\r, back\\slash, \\N, \"quoted\", ünïcødé ✓";
    let mut odd = UserRow::new("odd", owner("User", "odd"));
    odd.display_name = Some(odd_text.into());
    odd.email = Some(String::new());
    odd.password_rotation = u32::MAX;
    let binding = |role| BindingRow {
        username: "odd".into(),
        role,
        scope: Scope::customer("acme"),
        owner: owner("AccessBinding", "b1"),
    };
    let status = |reason: &str| ObjectStatus {
        key: ObjectKey::new("User", "default", "odd"),
        ready: reason == "Ready",
        reason: reason.into(),
        message: odd_text.into(),
        phase: None,
        observed_generation: None,
        extra: [("k\t\"".to_string(), odd_text.to_string())].into(),
        source: "x.yaml:1".into(),
    };
    let binding_key = ObjectKey::new("AccessBinding", "default", "b1");
    let status_key = ObjectKey::new("User", "default", "odd");
    s.commit(&[
        // Deletes from empty tables: nothing to delete.
        StoreOp::DeleteBinding(binding_key.clone()),
        StoreOp::EndSessions("odd".into()),
        StoreOp::DeleteStatus(status_key.clone()),
        StoreOp::UpsertUser(Box::new(odd.clone())),
        StoreOp::UpsertBinding(binding(Role::Analyst)),
        StoreOp::SetStatus(Box::new(status("Pending"))),
        // The same keys again: the first rows are written by now, so the binding's delete
        // must run and the status must be updated.
        StoreOp::UpsertBinding(binding(Role::Manager)),
        StoreOp::SetStatus(Box::new(status("Ready"))),
        StoreOp::UpsertUser(Box::new(UserRow::new("gone", owner("User", "gone")))),
        StoreOp::DeleteUser("gone".into()),
    ])
    .unwrap();
    let st = s.load_state().unwrap();
    assert_eq!(st.users.keys().collect::<Vec<_>>(), ["odd"]);
    assert_eq!(st.users["odd"], odd, "every value as written");
    let roles: Vec<Role> = st.bindings.iter().map(|b| b.role).collect();
    assert_eq!(roles, [Role::Manager], "the first binding was deleted");
    assert_eq!(st.statuses[&status_key], status("Ready"));

    // Into filled tables: upserts of stored keys and a delete that finds its row.
    odd.display_name = Some(format!("{odd_text} (renamed)"));
    s.commit(&[
        StoreOp::UpsertUser(Box::new(odd.clone())),
        StoreOp::SetStatus(Box::new(status("Pending"))),
        StoreOp::DeleteBinding(binding_key),
    ])
    .unwrap();
    let st = s.load_state().unwrap();
    assert_eq!(st.users["odd"], odd);
    assert_eq!(st.statuses[&status_key], status("Pending"));
    assert!(st.bindings.is_empty());
    s
}

#[test]
fn a_partial_read_holds_what_the_full_state_restricted_to_its_keys_holds() {
    for (name, s) in both_stores() {
        eprintln!("store: {name}");
        partial_reads(s);
    }
}

fn partial_reads(mut s: AnyStore) {
    let mut ops = Vec::new();
    for (i, user) in ["ada", "bob", "cy"].iter().enumerate() {
        ops.push(StoreOp::UpsertUser(Box::new(UserRow::new(
            user,
            owner("User", user),
        ))));
        for (j, role) in [Role::Admin, Role::Analyst].into_iter().enumerate() {
            ops.push(StoreOp::UpsertBinding(BindingRow {
                username: user.to_string(),
                role,
                scope: Scope::customer("acme"),
                owner: owner("AccessBinding", &format!("{user}-{j}")),
            }));
        }
        ops.push(StoreOp::UpsertTokenKey(Box::new(TokenKeyRow {
            key_id: format!("k{i}"),
            token_name: format!("t{i}"),
            namespace: "default".into(),
            secret_hmac: HashValue::new("00".into()),
            role: Role::Analyst,
            scope: Scope::customer("acme"),
            owner_user: Some(user.to_string()),
            issued_at: t("2026-01-01T00:00:00Z"),
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            rotation: 0,
            state: KeyState::Issued,
            secret_name: format!("t{i}-token"),
            owner: owner("ApiToken", &format!("t{i}")),
        })));
        for kind in ["User", "ApiToken"] {
            ops.push(StoreOp::SetStatus(Box::new(ObjectStatus {
                key: ObjectKey::new(kind, "default", user),
                ready: true,
                reason: "Ready".into(),
                message: String::new(),
                phase: None,
                observed_generation: None,
                extra: Default::default(),
                source: "users.yaml:1".into(),
            })));
        }
    }
    // A binding no declaration owns, and one owned by a declaration of a user not asked for.
    ops.push(StoreOp::UpsertBinding(BindingRow {
        username: "ada".into(),
        role: Role::Manager,
        scope: Scope::global(),
        owner: None,
    }));
    // Two models (one of a customer) and a decided request of each.
    for (m, scope) in [("m1", Scope::global()), ("m2", Scope::customer("acme"))] {
        ops.push(StoreOp::UpsertModel(ModelRow {
            name: m.into(),
            scope: scope.clone(),
            owner: Some("ada".into()),
            stage: Stage::Dev,
        }));
        ops.push(StoreOp::InsertRequest(Box::new(DecidedRequest {
            namespace: "default".into(),
            name: format!("{m}-deploy"),
            model: m.into(),
            scope,
            from: crate::policy::FromStage::None,
            to: Stage::Dev,
            requested_by: "ada".into(),
            phase: crate::resources::RequestPhase::Applied,
            message: "ok".into(),
            decided_at: t("2026-01-01T00:00:00Z"),
            source: "requests.yaml:1".into(),
        })));
    }
    s.commit(&ops).unwrap();
    let full = s.load_state().unwrap();
    let key = |kind: &str, name: &str| ObjectKey::new(kind, "default", name);
    for keys in [
        StateKeys::default(),
        StateKeys {
            usernames: ["ada".to_string(), "nobody".to_string()].into(),
            objects: [
                key("User", "ada"),
                key("AccessBinding", "bob-1"),
                key("ApiToken", "t2"),
            ]
            .into(),
            ..StateKeys::default()
        },
        StateKeys {
            usernames: ["bob".to_string()].into(),
            objects: [
                key("AccessBinding", "bob-0"),
                key("ApiToken", "bob"),
                key("User", "cy"),
            ]
            .into(),
            ..StateKeys::default()
        },
        // Statuses alone: no row of theirs (nor the token keys "cy" owns) is read.
        StateKeys {
            statuses: [
                key("ApiToken", "cy"),
                key("User", "bob"),
                key("User", "zed"),
            ]
            .into(),
            ..StateKeys::default()
        },
        StateKeys {
            usernames: ["cy".to_string()].into(),
            objects: [key("ApiToken", "t1")].into(),
            statuses: [key("ApiToken", "cy"), key("ApiToken", "t1")].into(),
            ..StateKeys::default()
        },
        // A request's record and a model's row, each only when asked for (and a model
        // asked for in the wrong scope is none).
        StateKeys {
            objects: [
                key("ModelStageRequest", "m2-deploy"),
                key("ModelStageRequest", "m3-deploy"),
            ]
            .into(),
            models: [
                (Scope::customer("acme"), "m2".to_string()),
                (Scope::global(), "m1".to_string()),
                (Scope::global(), "m2".to_string()),
            ]
            .into(),
            ..StateKeys::default()
        },
    ] {
        let partial = s.load_partial(&keys).unwrap();
        assert_eq!(
            format!("{partial:?}"),
            format!("{:?}", full.restricted_to(&keys)),
            "{keys:?}"
        );
    }
    let some = full.restricted_to(&StateKeys {
        usernames: ["ada".to_string()].into(),
        objects: [key("AccessBinding", "bob-1"), key("ApiToken", "t2")].into(),
        ..StateKeys::default()
    });
    assert_eq!(
        (some.users.len(), some.bindings.len(), some.token_keys.len()),
        (1, 4, 1)
    );
    let statuses = full.restricted_to(&StateKeys {
        statuses: [key("ApiToken", "cy")].into(),
        ..StateKeys::default()
    });
    assert_eq!((statuses.statuses.len(), statuses.token_keys.len()), (1, 0));
    let requests = full.restricted_to(&StateKeys {
        objects: [key("ModelStageRequest", "m1-deploy")].into(),
        models: [(Scope::customer("acme"), "m2".to_string())].into(),
        ..StateKeys::default()
    });
    assert_eq!(
        (
            requests.requests.keys().collect::<Vec<_>>(),
            requests.models.keys().collect::<Vec<_>>()
        ),
        (
            vec![&("default".to_string(), "m1-deploy".to_string())],
            vec![&(Scope::customer("acme"), "m2".to_string())]
        )
    );
}

#[test]
fn token_keys_are_indexed_by_their_owner_in_both_stores() {
    // A partial read looks a token's keys up by owner (schema version 5) instead of
    // scanning the table: the migration made the index (dropping it fails otherwise).
    for (name, s) in both_stores() {
        raw(&s, "DROP INDEX token_keys_owner").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let s = SqliteStore::in_memory().unwrap();
    let plan: Vec<String> = s
        .conn_for_tests()
        .prepare("EXPLAIN QUERY PLAN SELECT * FROM token_keys WHERE owner_namespace = 'a' AND owner_name = 'b' AND owner_kind = 'ApiToken'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("token_keys_owner")),
        "{plan:?}"
    );
}

/// A round that issued keys reads its next expiry from the expiry columns alone: the same
/// instant as the whole state's, at every clock (expired keys and accepted invitations
/// never count; keys without expiry neither).
#[test]
fn the_next_expiry_read_alone_is_the_whole_states() {
    let mut s = AnyStore::in_memory().unwrap();
    assert_eq!(
        s.next_expiry(t("2026-01-01T00:00:00Z")).unwrap(),
        Some(None)
    );
    let mut ops = Vec::new();
    for (i, expires) in [
        Some("2026-03-01T00:00:00Z"),
        Some("2026-05-01T00:00:00Z"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        ops.push(StoreOp::UpsertTokenKey(Box::new(TokenKeyRow {
            key_id: format!("k{i}"),
            token_name: format!("t{i}"),
            namespace: "default".into(),
            secret_hmac: HashValue::new("00".into()),
            role: Role::Analyst,
            scope: Scope::customer("acme"),
            owner_user: None,
            issued_at: t("2026-01-01T00:00:00Z"),
            expires_at: expires.map(t),
            revoked_at: None,
            revoked_reason: None,
            rotation: 0,
            state: KeyState::Issued,
            secret_name: format!("t{i}-token"),
            owner: owner("ApiToken", &format!("t{i}")),
        })));
    }
    for (user, expires, state) in [
        ("ada", "2026-02-01T00:00:00Z", InvitationState::Accepted),
        ("bob", "2026-04-01T00:00:00Z", InvitationState::Pending),
        ("cy", "2026-06-01T00:00:00Z", InvitationState::Issued),
    ] {
        let mut u = UserRow::new(user, owner("User", user));
        u.invitation = Some(InvitationRow {
            id: format!("inv-{user}"),
            code_hmac: HashValue::new("00".into()),
            rotation: 0,
            issued_at: t("2026-01-01T00:00:00Z"),
            expires_at: t(expires),
            state,
        });
        ops.push(StoreOp::UpsertUser(Box::new(u)));
    }
    s.commit(&ops).unwrap();
    let full = s.load_state().unwrap();
    assert_eq!(
        s.next_expiry(t("2026-01-15T00:00:00Z")).unwrap(),
        Some(Some(t("2026-03-01T00:00:00Z"))),
        "the accepted invitation does not count"
    );
    for now in [
        "2026-01-01T00:00:00Z",
        "2026-02-15T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-04-15T00:00:00Z",
        "2026-05-15T00:00:00Z",
        "2026-07-01T00:00:00Z",
    ] {
        assert_eq!(
            s.next_expiry(t(now)).unwrap(),
            Some(full.next_expiry(t(now))),
            "at {now}"
        );
    }
}
