//! apply `examples/`, then edit (role, revoke, rotate, delete a user file, add a request,
//! reset a password) and re-apply, checking store rows, outcomes and Secret files each time.

use super::{outcome, Env};
use crate::stores::{on_both_stores, StoreKind};
use stagegate::policy::{Role, Scope, Stage};
use stagegate::secrets::{authenticate, verify_password, HashValue, ServerKey};
use stagegate::store::{AnyStore, KeyState, SessionRow, Store};

const NS: &str = "ml-platform";

fn fixture(env: &Env, name: &str) {
    let src = crate::support::root()
        .join("tests/fixtures/store")
        .join(name);
    std::fs::copy(src, env.dir.join(name)).unwrap();
}

fn token_of(env: &Env, secret: &str) -> String {
    let s = env
        .secret(NS, secret)
        .unwrap_or_else(|| panic!("Secret {secret} missing"));
    s["stringData"]["token"].as_str().unwrap().to_string()
}

fn password_of(env: &Env, user: &str) -> String {
    let s = env.secret(NS, &format!("{user}-password")).unwrap();
    assert_eq!(s["stringData"]["username"].as_str(), Some(user));
    s["stringData"]["password"].as_str().unwrap().to_string()
}

fn hash_of(store: &AnyStore, user: &str) -> String {
    store
        .user(user)
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap()
        .expose()
        .to_string()
}

fn auth(store: &AnyStore, key: &ServerKey, token: &str) -> bool {
    authenticate(store, key, token, jiff::Timestamp::now()).is_ok()
}

fn session(store: &mut AnyStore, user: &str, id: &str) {
    let now = jiff::Timestamp::now();
    store
        .create_session(&SessionRow {
            id_hash: HashValue::new(id.into()),
            username: user.into(),
            grants: vec![],
            created_at: now,
            expires_at: now,
        })
        .unwrap();
}

on_both_stores!(examples_then_edits_reconcile_step_by_step);
fn examples_then_edits_reconcile_step_by_step(store: StoreKind) {
    lifecycle(Env::from_examples().on(store));
}

fn lifecycle(env: Env) {
    fixture(&env, "eve.yaml");
    fixture(&env, "eve-token.yaml");
    env.write_secret(NS, "maria-password", "password", "maria-first-password");

    // 1. First apply: everything ready, every secret delivered once and verifying.
    let (code, out, o) = env.apply();
    assert_eq!(code, 0, "{out:#?}\n{}", crate::support::stderr(&o));
    assert!(out.iter().all(|o| o["ready"] == true));
    let store = env.open();
    let key = env.server_key();
    let st = store.load_state().unwrap();
    assert_eq!(st.users.len(), 8);
    assert_eq!(st.bindings.len(), 7);
    assert_eq!(st.token_keys.len(), 3);
    assert!(st.token_keys.values().all(|k| k.state == KeyState::Issued));
    assert_eq!(st.requests.len(), 6);
    let fraud = st
        .models
        .values()
        .find(|m| m.name == "fraud-detector")
        .unwrap();
    assert_eq!(
        (fraud.stage, fraud.owner.as_deref()),
        (Stage::Production, Some("alan"))
    );
    let churn = st
        .models
        .values()
        .find(|m| m.name == "churn-model")
        .unwrap();
    assert_eq!(
        (churn.stage, churn.owner.as_deref()),
        (Stage::Dev, Some("anna"))
    );
    for u in ["ada", "alan", "anna", "dan", "dora", "eve"] {
        assert!(
            verify_password(
                &HashValue::new(hash_of(&store, u)),
                password_of(&env, u).as_bytes()
            ),
            "{u}"
        );
    }
    assert!(verify_password(
        &HashValue::new(hash_of(&store, "maria")),
        b"maria-first-password"
    ));
    assert!(env.secret(NS, "maria-password-password").is_none());
    let monitor1 = token_of(&env, "acme-model-monitor-credentials");
    let ci1 = token_of(&env, "fraud-ci-deployer-token");
    let eve_bot = token_of(&env, "eve-bot-token");
    for t in [&monitor1, &ci1, &eve_bot] {
        assert!(auth(&store, &key, t));
    }
    let monitor = outcome(&out, "ApiToken", "acme-model-monitor");
    assert_eq!(monitor["phase"], "Active");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = env.secret_path(NS, "fraud-ci-deployer-token");
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let hashes_before: Vec<String> = ["ada", "alan", "dan"]
        .iter()
        .map(|u| hash_of(&store, u))
        .collect();
    drop(store);

    // 2. Change a role: dan becomes Deployer at acme.
    env.edit(
        "bindings.yaml",
        "user: dan\n  role: Developer",
        "user: dan\n  role: Deployer",
    );
    let (code, _, _) = env.apply();
    assert_eq!(code, 0);
    let store = env.open();
    assert_eq!(
        store.grants("dan").unwrap(),
        vec![stagegate::policy::Grant {
            role: Role::Deployer,
            scope: Scope::customer("acme")
        }]
    );
    assert!(store
        .audit(0)
        .unwrap()
        .iter()
        .any(|a| a.action == "binding.update"));
    // No password changed, so none was re-hashed.
    let hashes_after: Vec<String> = ["ada", "alan", "dan"]
        .iter()
        .map(|u| hash_of(&store, u))
        .collect();
    assert_eq!(hashes_before, hashes_after);
    drop(store);

    // 3. Revoke dora: her sessions end and the token she owns is revoked at once.
    let mut store = env.open();
    session(&mut store, "dora", "dora-session");
    drop(store);
    env.edit(
        "users.yaml",
        "email: dora@acme.example.com",
        "email: dora@acme.example.com\n  state: Revoked",
    );
    let (code, out, _) = env.apply();
    assert_eq!(code, 1, "owner-revoked token is not ready");
    assert_eq!(outcome(&out, "User", "dora")["phase"], "Revoked");
    let ci = outcome(&out, "ApiToken", "fraud-ci-deployer");
    assert_eq!(
        (ci["phase"].as_str(), ci["ready"].as_bool()),
        (Some("Revoked"), Some(false))
    );
    let store = env.open();
    assert!(store.session("dora-session").unwrap().is_none());
    assert!(!store.user("dora").unwrap().unwrap().can_log_in());
    assert!(!auth(&store, &key, &ci1));
    assert!(auth(&store, &key, &monitor1));
    drop(store);

    // 4. Rotate a token: the old key stops working, a new one is delivered to the same Secret.
    env.edit(
        "tokens.yaml",
        "owner: maria\n  validity: 90d",
        "owner: maria\n  validity: 90d\n  rotation: 1",
    );
    let (_, out, _) = env.apply();
    let monitor2 = token_of(&env, "acme-model-monitor-credentials");
    assert_ne!(monitor1, monitor2);
    let store = env.open();
    assert!(!auth(&store, &key, &monitor1));
    assert!(auth(&store, &key, &monitor2));
    let m = outcome(&out, "ApiToken", "acme-model-monitor");
    assert_eq!(m["phase"], "Active");
    let old_id = &monitor1[4..16];
    let old = store.token_key(old_id).unwrap().unwrap();
    assert_eq!(old.revoked_reason.as_deref(), Some("Rotated"));
    drop(store);

    // 5. Delete a user file: eve leaves the store, her session ends, her token is revoked.
    let mut store = env.open();
    session(&mut store, "eve", "eve-session");
    drop(store);
    std::fs::remove_file(env.dir.join("eve.yaml")).unwrap();
    let (code, out, _) = env.apply();
    assert_eq!(code, 1);
    let store = env.open();
    assert!(store.user("eve").unwrap().is_none());
    assert!(store.session("eve-session").unwrap().is_none());
    assert!(!auth(&store, &key, &eve_bot));
    assert!(store.grants("eve").unwrap().is_empty());
    assert_eq!(outcome(&out, "ApiToken", "eve-bot")["reason"], "Revoked");
    assert!(out.iter().all(|o| o["name"] != "eve"));
    assert!(store
        .statuses()
        .unwrap()
        .iter()
        .all(|s| s.key.name != "eve"));
    drop(store);

    // 6. Add a stage request: decided once, in order, recorded.
    fixture(&env, "churn-staging-request.yaml");
    let (_, out, _) = env.apply();
    let r = outcome(&out, "ModelStageRequest", "churn-model-004-staging-again");
    assert_eq!(r["phase"], "Applied");
    let store = env.open();
    let churn = store
        .models()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "churn-model")
        .unwrap();
    assert_eq!(
        (churn.stage, churn.owner.as_deref()),
        (Stage::Staging, Some("anna"))
    );
    drop(store);
    // Editing or deleting the decided request changes nothing: the decision is final.
    env.edit(
        "churn-staging-request.yaml",
        "to: Staging",
        "to: Production",
    );
    let (_, out, _) = env.apply();
    assert_eq!(
        outcome(&out, "ModelStageRequest", "churn-model-004-staging-again")["phase"],
        "Applied"
    );
    std::fs::remove_file(env.dir.join("churn-staging-request.yaml")).unwrap();
    env.apply();
    let store = env.open();
    let churn = store
        .models()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "churn-model")
        .unwrap();
    assert_eq!(churn.stage, Stage::Staging);
    assert_eq!(store.load_state().unwrap().requests.len(), 7);
    drop(store);

    // 7. Reset maria's password through her Secret; only her hash changes.
    let before = {
        let s = env.open();
        (hash_of(&s, "maria"), hash_of(&s, "ada"))
    };
    env.write_secret(NS, "maria-password", "password", "maria-second-password");
    env.apply();
    let store = env.open();
    assert!(verify_password(
        &HashValue::new(hash_of(&store, "maria")),
        b"maria-second-password"
    ));
    assert_ne!(hash_of(&store, "maria"), before.0);
    assert_eq!(hash_of(&store, "ada"), before.1);
    assert!(store
        .audit(0)
        .unwrap()
        .iter()
        .any(|a| a.action == "user.password.reset"));

    // 8. A deleted token Secret is reported, not re-issued; rotation issues a new key.
    std::fs::remove_file(env.secret_path(NS, "acme-model-monitor-credentials")).unwrap();
    let (code, out, _) = env.apply();
    assert_eq!(code, 1);
    let m = outcome(&out, "ApiToken", "acme-model-monitor");
    assert_eq!(
        (m["reason"].as_str(), m["phase"].as_str()),
        (Some("SecretMissing"), Some("SecretMissing"))
    );
    assert!(env.secret(NS, "acme-model-monitor-credentials").is_none());
    env.edit("tokens.yaml", "rotation: 1", "rotation: 2");
    let (_, out, _) = env.apply();
    assert_eq!(
        outcome(&out, "ApiToken", "acme-model-monitor")["reason"],
        "Ready"
    );
    let store = env.open();
    assert!(auth(
        &store,
        &key,
        &token_of(&env, "acme-model-monitor-credentials")
    ));
}

on_both_stores!(foreign_secret_is_never_overwritten);
fn foreign_secret_is_never_overwritten(store: StoreKind) {
    let env = Env::empty().on(store);
    env.write(
        "t.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: bot, namespace: team}\nspec: {role: Admin, validity: 30d}\n",
    );
    env.write_secret("team", "bot-token", "apiKey", "somebody-elses");
    let (code, out, _) = env.apply();
    assert_eq!(code, 1);
    assert_eq!(outcome(&out, "ApiToken", "bot")["reason"], "SecretConflict");
    let s = env.secret("team", "bot-token").unwrap();
    assert_eq!(s["stringData"]["apiKey"].as_str(), Some("somebody-elses"));
    assert!(env.open().load_state().unwrap().token_keys.is_empty());
}

on_both_stores!(unknown_user_binding_is_kept_and_takes_effect_later);
fn unknown_user_binding_is_kept_and_takes_effect_later(store: StoreKind) {
    let env = Env::empty().on(store);
    env.write(
        "b.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: zed-admin, namespace: team}\nspec: {user: zed, role: Admin}\n",
    );
    let (code, out, _) = env.apply();
    assert_eq!(code, 1);
    assert_eq!(
        outcome(&out, "AccessBinding", "zed-admin")["reason"],
        "UnknownUser"
    );
    assert_eq!(env.open().grants("zed").unwrap().len(), 1);
    env.write(
        "u.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: zed, namespace: team}\nspec: {}\n",
    );
    let (code, out, _) = env.apply();
    assert_eq!(code, 0, "{out:#?}");
}

#[test]
fn secrets_dir_inside_watched_dir_is_an_error() {
    let env = Env::empty();
    let o = crate::support::stagegate()
        .args(["apply", "--dir"])
        .arg(&env.dir)
        .arg("--store")
        .arg(&env.store)
        .arg("--secrets-dir")
        .arg(env.dir.join("secrets"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(crate::support::stderr(&o).contains("inside the watched directory"));
}

on_both_stores!(a_broken_file_keeps_what_it_declared);
fn a_broken_file_keeps_what_it_declared(store: StoreKind) {
    let env = Env::from_examples().on(store);
    let (_, first, _) = env.apply();
    let users = env.open().load_state().unwrap().users.len();
    env.write(
        "users.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: [\n",
    );
    let (code, out, o) = env.apply();
    assert_eq!(code, 1, "a file that fails to load is reported");
    assert!(crate::support::stderr(&o).contains("users.yaml"));
    let store = env.open();
    assert_eq!(store.load_state().unwrap().users.len(), users);
    // Bindings to those users stay ready; the users' statuses are kept.
    assert_eq!(
        outcome(&out, "AccessBinding", "ada-admin")["reason"],
        "Ready"
    );
    // ... and the file itself has a status row (issue 16): not ready, with its line.
    let (files, objects): (Vec<_>, Vec<_>) = store
        .statuses()
        .unwrap()
        .into_iter()
        .partition(|s| s.key.kind == "File");
    assert_eq!(
        objects.len(),
        first.len(),
        "statuses of the broken file's objects are kept"
    );
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].key.name.ends_with("users.yaml") && !files[0].ready);
    assert_eq!(
        outcome(&out, "File", &files[0].key.name)["reason"],
        "InvalidYaml"
    );
}

on_both_stores!(status_reports_the_last_outcomes);
fn status_reports_the_last_outcomes(store: StoreKind) {
    let env = Env::from_examples().on(store);
    if store == StoreKind::Sqlite {
        // A SQLite path that names no file yet is no store (a PostgreSQL URL names a database).
        let missing = env.run("status", &[]);
        assert_eq!(missing.status.code(), Some(2));
        assert!(crate::support::stderr(&missing).contains("no store"));
    }
    env.write_secret(NS, "maria-password", "password", "a-long-passphrase");
    let (code, out, _) = env.apply();
    assert_eq!(code, 0);
    let st = env.run("status", &["--output", "json"]);
    assert_eq!(st.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), out.len());
    let text = crate::support::stdout(&env.run("status", &[]));
    assert!(text.starts_with("OBJECT"));
    assert!(text.contains("ApiToken ml-platform/fraud-ci-deployer"));
}
