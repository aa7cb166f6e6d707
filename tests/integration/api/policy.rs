//! DESIGN §3 through `/v1/authorize` and `/v1/models`, one rule per test.

use super::harness::{org_server, test_config, TestServer};
use crate::stores::{on_both_stores, StoreKind};
use serde_json::{json, Value};

fn server(store: StoreKind) -> TestServer {
    org_server(store, test_config())
}

fn transition(model: &str, to: &str) -> Value {
    json!({"action": "models:transition", "model": model, "to": to})
}

on_both_stores!(analyst_never_sees_production_even_its_own);
fn analyst_never_sees_production_even_its_own(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let alan = c.session("alan", "alan-password");
    let names = c.model_names(&alan);
    assert_eq!(names, ["fraud-dev", "fraud-staging"]);
    assert!(!names.contains(&"fraud-prod".to_string()));
    let (allowed, code) = c.allowed(
        &alan,
        &json!({"action": "models:view", "model": "fraud-prod"}),
    );
    assert!(!allowed);
    assert_eq!(code, "ProductionHidden");
}

on_both_stores!(analyst_promotes_only_its_own_models_to_staging_never_to_production);
fn analyst_promotes_only_its_own_models_to_staging_never_to_production(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let alan = c.session("alan", "alan-password");
    assert_eq!(
        c.allowed(&alan, &transition("fraud-dev", "Staging")),
        (true, "Allowed".into())
    );
    assert_eq!(
        c.allowed(&alan, &transition("other-dev", "Staging")),
        (false, "NotOwner".into())
    );
    assert_eq!(
        c.allowed(&alan, &transition("fraud-staging", "Production")),
        (false, "ProductionHidden".into())
    );
    assert!(!c.allowed(&alan, &transition("fraud-staging", "Dev")).0);
}

on_both_stores!(managers_see_all_staging_and_production_but_only_their_own_dev);
fn managers_see_all_staging_and_production_but_only_their_own_dev(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let maria = c.session("maria", "maria-password");
    assert_eq!(
        c.model_names(&maria),
        ["churn-staging", "fraud-prod", "fraud-staging", "maria-dev"]
    );
    assert_eq!(
        c.allowed(
            &maria,
            &json!({"action": "models:view", "model": "fraud-dev"})
        ),
        (false, "NotOwner".into())
    );
    assert!(c.allowed(&maria, &transition("maria-dev", "Staging")).0);
    assert!(!c.allowed(&maria, &transition("fraud-dev", "Staging")).0);
    assert!(
        c.allowed(&maria, &transition("fraud-staging", "Production"))
            .0
    );
    assert!(c.allowed(&maria, &transition("churn-staging", "Dev")).0);
}

on_both_stores!(admins_see_every_model_and_move_any);
fn admins_see_every_model_and_move_any(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let ada = c.session("ada", "ada-password");
    assert_eq!(c.model_names(&ada).len(), 7);
    assert!(c.allowed(&ada, &transition("fraud-dev", "Staging")).0);
    assert!(c.allowed(&ada, &transition("globex-prod", "Staging")).0);
}

on_both_stores!(only_an_admin_manages_users_a_manager_cannot);
fn only_an_admin_manages_users_a_manager_cannot(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let ada = c.session("ada", "ada-password");
    let maria = c.session("maria", "maria-password");
    let q = json!({"action": "users:manage", "scope": {"customer": "acme"}});
    assert!(c.allowed(&ada, &q).0);
    assert_eq!(c.allowed(&maria, &q), (false, "AdminOnly".into()));
    let tokens = json!({"action": "tokens:manage", "scope": {"customer": "acme"}});
    assert!(c.allowed(&ada, &tokens).0);
    assert!(!c.allowed(&maria, &tokens).0);
}

on_both_stores!(developer_sees_dev_and_staging_and_promotes_any_model_to_staging_only);
fn developer_sees_dev_and_staging_and_promotes_any_model_to_staging_only(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let dan = c.session("dan", "dan-password");
    assert_eq!(
        c.model_names(&dan),
        [
            "churn-staging",
            "fraud-dev",
            "fraud-staging",
            "maria-dev",
            "other-dev"
        ]
    );
    assert!(c.allowed(&dan, &transition("fraud-dev", "Staging")).0);
    assert!(
        !c.allowed(&dan, &transition("fraud-staging", "Production"))
            .0
    );
    assert!(!c.allowed(&dan, &transition("fraud-staging", "Dev")).0);
}

on_both_stores!(deployer_sees_staging_and_production_promotes_and_rejects_but_never_deploys);
fn deployer_sees_staging_and_production_promotes_and_rejects_but_never_deploys(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let dora = c.session("dora", "dora-password");
    assert_eq!(
        c.model_names(&dora),
        ["churn-staging", "fraud-prod", "fraud-staging"]
    );
    assert!(
        c.allowed(&dora, &transition("fraud-staging", "Production"))
            .0
    );
    assert!(c.allowed(&dora, &transition("fraud-staging", "Dev")).0);
    assert!(!c.allowed(&dora, &transition("fraud-dev", "Staging")).0);
    let deploy =
        json!({"action": "models:deploy", "model": "new-model", "scope": {"customer": "acme"}});
    assert!(!c.allowed(&dora, &deploy).0);
}

on_both_stores!(every_role_but_deployer_deploys_its_own_model_to_dev);
fn every_role_but_deployer_deploys_its_own_model_to_dev(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let deploy = json!({"action": "models:deploy", "model": "brand-new", "scope": {"customer": "acme", "project": "fraud"}});
    for user in ["ada", "maria", "alan", "dan"] {
        let s = c.session(user, &format!("{user}-password"));
        assert!(c.allowed(&s, &deploy).0, "{user}");
    }
    let alan = c.session("alan", "alan-password");
    let existing = json!({"action": "models:deploy", "model": "fraud-dev"});
    assert_eq!(c.allowed(&alan, &existing), (false, "ModelExists".into()));
}

on_both_stores!(developer_and_deployer_bound_globally_get_nothing);
fn developer_and_deployer_bound_globally_get_nothing(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let greg = c.session("greg", "greg-password");
    assert!(c.model_names(&greg).is_empty());
    assert_eq!(
        c.allowed(&greg, &transition("fraud-dev", "Staging")),
        (false, "NoRoleInScope".into())
    );
}

on_both_stores!(rollback_from_production_is_admin_only);
fn rollback_from_production_is_admin_only(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let ada = c.session("ada", "ada-password");
    let maria = c.session("maria", "maria-password");
    assert!(c.allowed(&ada, &transition("fraud-prod", "Staging")).0);
    assert_eq!(
        c.allowed(&maria, &transition("fraud-prod", "Staging")),
        (false, "AdminOnly".into())
    );
}

on_both_stores!(a_binding_covers_its_scope_and_below_only);
fn a_binding_covers_its_scope_and_below_only(store: StoreKind) {
    let srv = server(store);
    let c = &srv.client;
    let alan = c.session("alan", "alan-password");
    let anna = c.session("anna", "anna-password");
    assert_eq!(c.model_names(&anna), ["churn-staging"]);
    assert_eq!(
        c.allowed(
            &alan,
            &json!({"action": "models:view", "model": "churn-staging"})
        ),
        (false, "NoRoleInScope".into())
    );
    let maria = c.session("maria", "maria-password");
    assert!(!c.model_names(&maria).contains(&"globex-prod".to_string()));
}

on_both_stores!(authorize_reports_reasons_and_ambiguity);
fn authorize_reports_reasons_and_ambiguity(store: StoreKind) {
    let srv = server(store);
    srv.apply(vec![super::harness::model(
        "fraud-dev",
        stagegate::policy::Scope::project("acme", "churn"),
        "anna",
        stagegate::policy::Stage::Dev,
    )]);
    let c = &srv.client;
    let ada = c.session("ada", "ada-password");
    let r = c.authorize(
        &ada,
        &json!({"action": "models:view", "model": "fraud-dev"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.error(), "conflict");
    let scoped = c.authorize(
        &ada,
        &json!({"action": "models:view", "model": "fraud-dev", "scope": {"customer": "acme", "project": "churn"}}),
    );
    assert_eq!(scoped.status, 200);
    assert!(scoped.body["reason"].as_str().unwrap().contains("Admin"));
}
