//! Unit tests of the pure plan (and apply against an in-memory store and sink).

use super::*;
use crate::apply::{apply, ApplyContext};
use crate::secrets::{observe, MemorySink, PasswordParams, PasswordPolicy, SecretSink, ServerKey};
use crate::snapshot::Snapshot;
use crate::sources::files::load_text;
use crate::store::{KeyState, SqliteStore, Store, StoreState};
use jiff::Timestamp;

const T0: &str = "2026-11-01T00:00:00Z";

fn snap(files: &[(&str, &str)]) -> Snapshot {
    let mut s = Snapshot::default();
    for (f, text) in files {
        s.extend(load_text(f, text));
    }
    crate::validate::validate(&mut s);
    s
}

fn user(name: &str, extra: &str) -> String {
    format!("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {{name: {name}, namespace: t}}\nspec: {{{extra}}}\n---\n")
}

struct World {
    key: ServerKey,
    store: SqliteStore,
    sink: MemorySink,
}

impl World {
    fn new() -> Self {
        World {
            key: ServerKey::from_bytes([7; 32]),
            store: SqliteStore::in_memory().unwrap(),
            sink: MemorySink::new(),
        }
    }

    fn plan_at(&self, s: &Snapshot, now: &str) -> Plan {
        let state = self.store.load_state().unwrap();
        plan_with(s, &state, &self.key, &self.sink, now)
    }

    fn apply_at(&mut self, s: &Snapshot, now: &str) -> Plan {
        let p = self.plan_at(s, now);
        let ctx = ApplyContext {
            now: now.parse().unwrap(),
            server_key: &self.key,
            password_params: PasswordParams::insecure_fast_for_tests(),
            public_url: None,
        };
        apply(&p, &mut self.store, &self.sink, &ctx).unwrap();
        p
    }
}

fn plan_with(
    s: &Snapshot,
    state: &StoreState,
    key: &ServerKey,
    sink: &dyn SecretSink,
    now: &str,
) -> Plan {
    let inv = observe(sink, wanted_secrets(s, state).iter());
    plan(
        s,
        state,
        &PlanContext {
            now: now.parse::<Timestamp>().unwrap(),
            server_key: key,
            secrets: &inv,
            password_policy: PasswordPolicy::default(),
        },
    )
}

fn ops(p: &Plan) -> Vec<&'static str> {
    p.data_changes().map(|c| c.op.name()).collect()
}

fn status_of<'a>(p: &'a Plan, name: &str) -> &'a crate::store::ObjectStatus {
    p.objects.iter().find(|o| o.key.name == name).unwrap()
}

#[test]
fn same_inputs_give_byte_identical_json_without_secrets() {
    let mut s = snap(&[(
        "u.yaml",
        &user("ann", "passwordSecretRef: {name: ann-pw, key: password}"),
    )]);
    s.secrets.insert(
        ("t".into(), "ann-pw".into()),
        [("password".to_string(), b"TopSecretValue".to_vec())].into(),
    );
    let w = World::new();
    let a = w.plan_at(&s, T0).to_json();
    let b = w.plan_at(&s, T0).to_json();
    assert_eq!(a, b);
    assert!(a.contains("resetPassword"));
    assert!(!a.contains("TopSecretValue"));
    let fp = password_fingerprint(&w.key, "ann", b"TopSecretValue");
    assert!(!a.contains(&fp));
    let p = w.plan_at(&s, T0);
    assert!(!format!("{p:?}").contains("TopSecretValue"));
    assert!(!p.render_text().contains("TopSecretValue"));
}

#[test]
fn unchanged_password_is_not_rehashed_and_a_changed_one_is_reset() {
    let mut s = snap(&[(
        "u.yaml",
        &user("ann", "passwordSecretRef: {name: ann-pw, key: password}"),
    )]);
    let set = |s: &mut Snapshot, v: &[u8]| {
        s.secrets.insert(
            ("t".into(), "ann-pw".into()),
            [("password".to_string(), v.to_vec())].into(),
        );
    };
    set(&mut s, b"first-passphrase-one");
    let mut w = World::new();
    w.apply_at(&s, T0);
    let h1 = w.store.user("ann").unwrap().unwrap().password_hash.unwrap();
    assert!(w.plan_at(&s, T0).is_empty());
    set(&mut s, b"second-passphrase-two");
    let p = w.apply_at(&s, T0);
    assert!(matches!(
        p.changes[0].op,
        Op::ResetPassword { reset: true, .. }
    ));
    let h2 = w.store.user("ann").unwrap().unwrap().password_hash.unwrap();
    assert_ne!(h1, h2);
    assert!(crate::secrets::verify_password(
        &h2,
        b"second-passphrase-two"
    ));
    // The stored fingerprint is keyed: it is not SHA-256 of the value.
    let fp = w
        .store
        .user("ann")
        .unwrap()
        .unwrap()
        .password_fingerprint
        .unwrap();
    assert_ne!(
        fp.expose(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            b"second-passphrase-two"
        ))
    );
    s.secrets.clear();
    let p = w.plan_at(&s, T0);
    assert_eq!(status_of(&p, "ann").reason, "PasswordSecretMissing");
}

#[test]
fn older_user_keeps_a_contested_username() {
    let a = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: a, namespace: t, creationTimestamp: '2026-01-02T00:00:00Z'}\nspec: {username: sam}\n";
    let b = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: b, namespace: t, creationTimestamp: '2026-01-01T00:00:00Z'}\nspec: {username: sam}\n";
    let s = snap(&[("a.yaml", a), ("b.yaml", b)]);
    let p = World::new().plan_at(&s, T0);
    assert_eq!(status_of(&p, "b").reason, "Ready");
    assert_eq!(status_of(&p, "a").reason, "UsernameConflict");
    assert_eq!(ops(&p).iter().filter(|o| **o == "createUser").count(), 1);
}

#[test]
fn unmanaged_user_is_never_pruned_nor_taken_over() {
    let mut w = World::new();
    w.store
        .commit(&[crate::store::StoreOp::UpsertUser(Box::new(
            crate::store::UserRow::new("root", None),
        ))])
        .unwrap();
    let p = w.plan_at(&snap(&[]), T0);
    assert!(p.is_empty());
    let p = w.plan_at(&snap(&[("u.yaml", &user("root", ""))]), T0);
    assert_eq!(status_of(&p, "root").reason, "UsernameConflict");
    assert!(ops(&p).is_empty());
}

#[test]
fn invalid_and_broken_declarations_keep_what_they_declared() {
    let binding = "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: b, namespace: t}\nspec: {user: ann, role: Developer, scope: {customer: acme}}\n";
    let mut w = World::new();
    w.apply_at(
        &snap(&[("u.yaml", &user("ann", "")), ("b.yaml", binding)]),
        T0,
    );
    assert_eq!(w.store.grants("ann").unwrap().len(), 1);
    // The binding becomes invalid (Developer globally): fail closed, the role it granted is
    // withdrawn (never left in force on what it said before), reported.
    let bad = binding.replace("scope: {customer: acme}", "scope: {}");
    let p = w.plan_at(&snap(&[("u.yaml", &user("ann", "")), ("b.yaml", &bad)]), T0);
    assert_eq!(ops(&p), vec!["unbind"]);
    let st = status_of(&p, "b");
    assert_eq!(st.reason, "Invalid");
    assert!(
        st.message.starts_with("RoleNotAllowedAtScope")
            && st
                .message
                .ends_with("the role it granted is withdrawn until the declaration is valid"),
        "{}",
        st.message
    );
    // The user's declaration becomes invalid: suspended (state Revoked), its row kept.
    let bad_user = user("ann", "state: revoked");
    let p = w.plan_at(&snap(&[("u.yaml", &bad_user), ("b.yaml", binding)]), T0);
    assert_eq!(ops(&p), vec!["updateUser"], "{bad_user}");
    assert!(status_of(&p, "ann").message.contains("cannot log in until"));
    // The user's file breaks: the user is kept, and so is its status.
    let s = snap(&[("u.yaml", "kind: User\nmetadata: [\n"), ("b.yaml", binding)]);
    assert!(s.broken_files.contains("u.yaml"));
    let p = w.plan_at(&s, T0);
    assert!(ops(&p).is_empty(), "{:?}", ops(&p));
    assert!(!p.changes.iter().any(|c| matches!(c.op, Op::DeleteStatus)));
    // The file is deleted: now the user goes.
    let p = w.plan_at(&snap(&[("b.yaml", binding)]), T0);
    assert_eq!(ops(&p), vec!["deleteUser"]);
    assert_eq!(status_of(&p, "b").reason, "UnknownUser");
}

#[test]
fn token_lifecycle_pending_missing_expired() {
    let tok = "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: bot, namespace: t}\nspec: {role: Admin, validity: 30d}\n";
    let s = snap(&[("t.yaml", tok)]);
    let mut w = World::new();
    let p = w.apply_at(&s, T0);
    assert_eq!(ops(&p), vec!["issueToken"]);
    let st = w.store.load_state().unwrap();
    let k = st.token_keys.values().next().unwrap().clone();
    assert_eq!(k.state, KeyState::Issued);
    assert!(w.plan_at(&s, T0).is_empty());
    // The Secret is deleted: reported, not re-issued.
    w.sink.remove("t", "bot-token");
    let p = w.apply_at(&s, T0);
    assert!(ops(&p).is_empty());
    assert_eq!(status_of(&p, "bot").reason, "SecretMissing");
    assert!(w.plan_at(&s, T0).is_empty(), "status recorded once");
    // Thirty-one days later the key has expired: recorded once.
    let later = "2026-12-02T00:00:00Z";
    let p = w.apply_at(&s, later);
    assert_eq!(ops(&p), vec!["expireToken"]);
    assert_eq!(status_of(&p, "bot").reason, "Expired");
    assert!(w.plan_at(&s, later).is_empty());
}

#[test]
fn pending_key_is_completed_when_delivered_and_reissued_when_not() {
    let tok = "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: bot, namespace: t}\nspec: {role: Admin, validity: Never}\n";
    let s = snap(&[("t.yaml", tok)]);
    let mut w = World::new();
    w.apply_at(&s, T0);
    let mut k = w
        .store
        .load_state()
        .unwrap()
        .token_keys
        .values()
        .next()
        .unwrap()
        .clone();
    // Pretend the crash happened before "mark issued": the delivered key is completed.
    k.state = KeyState::Pending;
    w.store
        .commit(&[crate::store::StoreOp::UpsertTokenKey(Box::new(k.clone()))])
        .unwrap();
    assert_eq!(ops(&w.plan_at(&s, T0)), vec!["completeToken"]);
    // And before delivery: discarded and re-issued.
    w.sink.remove("t", "bot-token");
    let p = w.plan_at(&s, T0);
    assert_eq!(ops(&p), vec!["issueToken"]);
    assert!(matches!(&p.changes[0].op, Op::IssueToken { discards: Some(d), .. } if *d == k.key_id));
}

#[test]
fn binding_to_unknown_user_is_kept() {
    let b = "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: b, namespace: t}\nspec: {user: ghost, role: Admin}\n";
    let p = World::new().plan_at(&snap(&[("b.yaml", b)]), T0);
    assert_eq!(ops(&p), vec!["bind"]);
    assert_eq!(status_of(&p, "b").reason, "UnknownUser");
    assert!(!status_of(&p, "b").ready);
}

#[test]
fn owner_revocation_revokes_and_rotation_is_the_only_way_back() {
    let u = user("ann", "");
    let tok = "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: bot, namespace: t}\nspec: {role: Admin, validity: Never, owner: ann}\n";
    let mut w = World::new();
    w.apply_at(&snap(&[("u.yaml", &u), ("t.yaml", tok)]), T0);
    let revoked = user("ann", "state: Revoked");
    let p = w.apply_at(&snap(&[("u.yaml", &revoked), ("t.yaml", tok)]), T0);
    assert_eq!(ops(&p), vec!["updateUser", "revokeToken"]);
    assert_eq!(status_of(&p, "bot").reason, "Revoked");
    // Re-activating the owner does not revive the key...
    let s = snap(&[("u.yaml", &u), ("t.yaml", tok)]);
    let p = w.apply_at(&s, T0);
    assert_eq!(ops(&p), vec!["updateUser"]);
    assert!(status_of(&p, "bot")
        .message
        .contains("increase spec.rotation"));
    // ...rotation issues a new one.
    let rotated = tok.replace("owner: ann}", "owner: ann, rotation: 1}");
    let p = w.apply_at(&snap(&[("u.yaml", &u), ("t.yaml", &rotated)]), T0);
    assert_eq!(ops(&p), vec!["issueToken"]);
    // Moving the key to another Secret name needs a rotation too.
    let renamed = rotated.replace("rotation: 1}", "rotation: 1, secretName: bot-creds}");
    let p = w.plan_at(&snap(&[("u.yaml", &u), ("t.yaml", &renamed)]), T0);
    assert!(ops(&p).is_empty());
    assert_eq!(status_of(&p, "bot").reason, "SecretMissing");
}

#[test]
fn a_plan_made_before_another_commit_is_refused() {
    let s = snap(&[("u.yaml", &user("ann", ""))]);
    let mut w = World::new();
    let stale = w.plan_at(&s, T0);
    w.apply_at(&s, T0);
    let ctx = ApplyContext {
        now: T0.parse().unwrap(),
        server_key: &w.key,
        password_params: PasswordParams::insecure_fast_for_tests(),
        public_url: None,
    };
    let err = apply(&stale, &mut w.store, &w.sink, &ctx).unwrap_err();
    assert!(err.to_string().contains("plan again"), "{err}");
    assert_eq!(w.store.load_state().unwrap().users.len(), 1);
}

#[test]
fn the_holder_of_a_contested_secret_keeps_it_in_the_store_and_the_base_branch() {
    let token = "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: export, namespace: t}\nspec: {role: Analyst, scope: {customer: acme}, validity: 30d, secretName: zed-password}\n";
    let before = snap(&[("z.yaml", token)]);
    let after = snap(&[("a.yaml", &user("zed", "")), ("z.yaml", token)]);
    let flagged = |s: &Snapshot| -> Vec<String> {
        s.diagnostics
            .iter()
            .filter(|d| d.reason == crate::snapshot::Reason::SecretNameConflict)
            .filter_map(|d| d.name.clone())
            .collect()
    };
    // By file order alone the User (a.yaml) comes first and the token is the newcomer.
    assert_eq!(flagged(&after), ["export"]);
    // The base branch declared the token: it holds the Secret.
    assert_eq!(flagged(&with_base_holders(&after, &before)), ["zed"]);
    // The store shows the token delivered there: it keeps the Secret, zed gets nothing.
    let mut w = World::new();
    w.apply_at(&before, T0);
    let state = w.store.load_state().unwrap();
    assert_eq!(flagged(&with_store_holders(&after, &state)), ["zed"]);
    let p = w.apply_at(&after, T0);
    assert!(!status_of(&p, "zed").ready);
    assert!(status_of(&p, "export").ready);
    assert!(!ops(&p).contains(&"generatePassword"), "{:?}", ops(&p));
    assert!(!ops(&p).contains(&"createUser"), "{:?}", ops(&p));
}
