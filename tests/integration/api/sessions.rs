//! Session semantics: roles fixed at login, revocation, deletion and password
//! reset effective at once, expiry, and the same 401 for every failed login.

use super::harness::{
    bind, org_server, revoked_user, test_config, unbind, upsert_user, TestServer,
};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;
use stagegate::policy::{Role, Scope};
use stagegate::store::StoreOp;
use std::time::{Duration, Instant};

fn roles(srv: &TestServer, session: &str) -> Vec<String> {
    let r = srv.client.whoami(session);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["role"].as_str().unwrap().to_string())
        .collect()
}

on_both_stores!(a_role_change_takes_effect_at_the_next_login);
fn a_role_change_takes_effect_at_the_next_login(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let old = c.session("alan", "alan-password");
    srv.apply(vec![
        unbind("alan-analyst"),
        bind(
            "alan-manager",
            "alan",
            Role::Manager,
            Scope::customer("acme"),
        ),
    ]);
    assert_eq!(roles(&srv, &old), ["Analyst"]);
    // The old session still decides with the old role: no Production.
    assert!(!c.model_names(&old).contains(&"fraud-prod".to_string()));
    let new = c.session("alan", "alan-password");
    assert_eq!(roles(&srv, &new), ["Manager"]);
    assert!(c.model_names(&new).contains(&"fraud-prod".to_string()));
}

on_both_stores!(revoking_a_user_ends_its_sessions_at_once_and_blocks_login);
fn revoking_a_user_ends_its_sessions_at_once_and_blocks_login(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("alan", "alan-password");
    srv.apply(vec![
        revoked_user("alan", "alan-password"),
        StoreOp::EndSessions("alan".into()),
    ]);
    assert_eq!(c.whoami(&s).status, 401);
    assert_eq!(c.login("alan", "alan-password").status, 401);
}

on_both_stores!(revocation_ends_sessions_even_if_the_apply_left_them_in_the_store);
fn revocation_ends_sessions_even_if_the_apply_left_them_in_the_store(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("dan", "dan-password");
    srv.apply(vec![revoked_user("dan", "dan-password")]);
    assert_eq!(c.whoami(&s).status, 401);
    // Reinstating the user does not revive the session.
    srv.apply(vec![upsert_user("dan", "dan-password")]);
    assert_eq!(c.whoami(&s).status, 401);
}

on_both_stores!(deleting_a_user_ends_its_sessions);
fn deleting_a_user_ends_its_sessions(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("anna", "anna-password");
    srv.apply(vec![StoreOp::DeleteUser("anna".into())]);
    assert_eq!(c.whoami(&s).status, 401);
    assert_eq!(c.login("anna", "anna-password").status, 401);
}

on_both_stores!(a_password_reset_ends_sessions_and_the_new_password_works);
fn a_password_reset_ends_sessions_and_the_new_password_works(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("maria", "maria-password");
    srv.apply(vec![upsert_user("maria", "new-password")]);
    assert_eq!(c.whoami(&s).status, 401);
    assert_eq!(c.login("maria", "maria-password").status, 401);
    c.session("maria", "new-password");
}

on_both_stores!(sessions_expire);
fn sessions_expire(store: StoreKind) {
    let srv = org_server(
        store,
        stagegate::api::ApiConfig {
            session_ttl: Duration::from_secs(1),
            ..test_config()
        },
    );
    let c = &srv.client;
    let s = c.session("ada", "ada-password");
    assert_eq!(c.whoami(&s).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(c.whoami(&s).status, 401);
}

on_both_stores!(sessions_survive_a_refresh_and_a_restart_of_the_cache);
fn sessions_survive_a_refresh_and_a_restart_of_the_cache(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let s = c.session("ada", "ada-password");
    srv.state.refresh().unwrap();
    srv.apply(vec![bind(
        "ada-extra",
        "ada",
        Role::Manager,
        Scope::customer("x"),
    )]);
    assert_eq!(roles(&srv, &s), ["Admin"]);
}

on_both_stores!(unknown_revoked_and_wrong_password_give_the_same_401);
fn unknown_revoked_and_wrong_password_give_the_same_401(store: StoreKind) {
    let srv = org_server(store, test_config());
    srv.apply(vec![revoked_user("dora", "dora-password")]);
    let c = &srv.client;
    let replies = [
        c.login("nobody", "whatever"),
        c.login("dora", "dora-password"),
        c.login("ada", "wrong"),
    ];
    for r in &replies {
        assert_eq!(r.status, 401);
        assert_eq!(
            r.body,
            json!({"error": "unauthorized", "message": "invalid username or password"})
        );
    }
}

on_both_stores!(unknown_users_cost_about_what_real_ones_do);
fn unknown_users_cost_about_what_real_ones_do(store: StoreKind) {
    // Real OWASP parameters here, so the argon2 cost dominates the timing.
    let params = stagegate::secrets::PasswordParams::default();
    let srv = TestServer::start(
        store,
        stagegate::api::ApiConfig {
            password_params: params,
            ..test_config()
        },
    );
    let mut u = super::harness::user("real", "x");
    u.password_hash = Some(
        stagegate::secrets::hash_password(
            params,
            &stagegate::secrets::SecretValue::from_string("pw".into()),
        )
        .unwrap(),
    );
    srv.apply(vec![StoreOp::UpsertUser(Box::new(u))]);
    let c = &srv.client;
    let time = |user: &str| {
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(c.login(user, "wrong").status, 401);
        }
        t.elapsed()
    };
    let (real, unknown) = (time("real"), time("ghost"));
    let ratio = real.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "real {real:?} vs unknown {unknown:?}"
    );
}

on_both_stores!(applies_by_another_process_are_picked_up_by_polling);
fn applies_by_another_process_are_picked_up_by_polling(store: StoreKind) {
    let srv = org_server(
        store,
        stagegate::api::ApiConfig {
            poll_interval: Some(Duration::from_millis(100)),
            ..test_config()
        },
    );
    let c = &srv.client;
    let s = c.session("alan", "alan-password");
    let audit = stagegate::store::AuditRow {
        id: 0,
        at: jiff::Timestamp::now(),
        action: "user.update".into(),
        object: stagegate::snapshot::ObjectKey::new("User", "ml-platform", "alan"),
        source: "users.yaml:1".into(),
        old: None,
        new: None,
    };
    srv.commit_only(vec![
        revoked_user("alan", "alan-password"),
        StoreOp::Audit(Box::new(audit)),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.whoami(&s).status == 200 {
        assert!(Instant::now() < deadline, "poll did not refresh the index");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!srv.state.poll_changes().unwrap());
}
