//! Fail closed on invalid edits: an edit that fails validation never leaves in force what
//! the declaration granted before. A User whose declaration is invalid cannot log in (a
//! revocation written beside a typo still takes effect); an AccessBinding whose edit is
//! invalid (a demotion with a typo) withdraws the role it granted, ending its sessions. And
//! the bootstrap administrator's Secret is never another declaration's. Through the daemon.

use super::harness::{copy_examples, wait_for, Workspace};
use crate::firstrun::{provide_secret, ready_client, secret_value};
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use serde_json::json;
use stagegate::store::Store;

fn org(store: StoreKind) -> Workspace {
    let ws = Workspace::on(store);
    copy_examples(&ws.manifests());
    provide_secret(
        &ws.secrets(),
        "ml-platform",
        "maria-password",
        "password",
        "maria-set-by-admin",
    );
    ws
}

fn edit(ws: &Workspace, file: &str, from: &str, to: &str) {
    let text = ws.read(file);
    assert!(text.contains(from), "{file} holds {from:?}");
    ws.write(file, &text.replacen(from, to, 1));
}

on_both_stores!(invalid_user_edit_suspends_the_user_until_it_is_valid_again);
fn invalid_user_edit_suspends_the_user_until_it_is_valid_again(store: StoreKind) {
    let ws = org(store);
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let file = ws.secrets().join("ml-platform/alan-password.yaml");
    let password = secret_value(&r, &file, "password");
    let session = api.session("alan", &password);
    // Variant 1: a revocation with a misspelt field beside it (UnknownField).
    edit(
        &ws,
        "users.yaml",
        "  email: alan@example.com\n",
        "  email: alan@example.com\n  state: Revoked\n  displayname: typo\n",
    );
    wait_for(&r, 60, "alan's session ended", || {
        (api.whoami(&session).status == 401).then_some(())
    });
    assert_eq!(api.login("alan", &password).status, 401);
    let o = support::run(&["status", "--store", ws.store_path().to_str().unwrap()]);
    let out = support::stdout(&o);
    assert!(
        out.contains("cannot log in until the declaration is valid"),
        "{out}"
    );
    // Valid again (and Active): the same password logs in; nothing was re-issued.
    edit(
        &ws,
        "users.yaml",
        "  state: Revoked\n  displayname: typo\n",
        "",
    );
    wait_for(&r, 60, "alan logs in again", || {
        (api.login("alan", &password).status == 200).then_some(())
    });
    assert_eq!(secret_value(&r, &file, "password"), password);
    // Variant 2: a revocation spelt in the wrong case (SchemaViolation): still no login.
    let session = api.session("alan", &password);
    edit(
        &ws,
        "users.yaml",
        "  email: alan@example.com\n",
        "  email: alan@example.com\n  state: revoked\n",
    );
    wait_for(&r, 60, "alan's session ended", || {
        (api.whoami(&session).status == 401).then_some(())
    });
    assert_eq!(api.login("alan", &password).status, 401);
}

on_both_stores!(invalid_binding_edit_withdraws_the_role_it_granted);
fn invalid_binding_edit_withdraws_the_role_it_granted(store: StoreKind) {
    let ws = org(store);
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let password = secret_value(
        &r,
        &ws.secrets().join("ml-platform/ada-password.yaml"),
        "password",
    );
    let manage = json!({"action": "users:manage", "scope": {}});
    let session = api.session("ada", &password);
    assert!(api.allowed(&session, &manage).0);
    // Variant 1: a demotion to a scope that is not a DNS label (InvalidScope).
    edit(
        &ws,
        "bindings.yaml",
        "  user: ada\n  role: Admin\n",
        "  user: ada\n  role: Manager\n  scope: {customer: Acme}\n",
    );
    wait_for(&r, 60, "ada's Admin session ended", || {
        (api.whoami(&session).status == 401).then_some(())
    });
    // No Admin from an invalid binding, once the API's index has the change (not only the store).
    wait_for(&r, 60, "a new login without Admin", || {
        let again = api.session("ada", &password);
        (!api.allowed(&again, &manage).0).then_some(())
    });
    // Variant 2: valid again, then a misspelt role (SchemaViolation): withdrawn again.
    edit(
        &ws,
        "bindings.yaml",
        "  role: Manager\n  scope: {customer: Acme}\n",
        "  role: Admin\n",
    );
    let admin = wait_for(&r, 60, "ada Admin again", || {
        let s = api.session("ada", &password);
        api.allowed(&s, &manage).0.then_some(s)
    });
    edit(
        &ws,
        "bindings.yaml",
        "  user: ada\n  role: Admin\n",
        "  user: ada\n  role: Admn\n",
    );
    wait_for(&r, 60, "ada's Admin session ended", || {
        (api.whoami(&admin).status == 401).then_some(())
    });
}

on_both_stores!(the_bootstrap_administrators_secret_is_reserved);
fn the_bootstrap_administrators_secret_is_reserved(store: StoreKind) {
    let ws = Workspace::on(store);
    // No global Admin is declared: the daemon creates the bootstrap administrator.
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let file = ws
        .secrets()
        .join("stagegate-system/stagegate-bootstrap-admin.yaml");
    let password = secret_value(&r, &file, "password");
    let before = std::fs::read(&file).unwrap();
    // Variant 1: a token delivering into it; variant 2: a User reading it as her password.
    ws.write(
        "grab.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: zed, namespace: ml}\nspec: {}\n---\n\
         apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: t3, namespace: stagegate-system}\n\
         spec: {role: Analyst, owner: zed, validity: 30d, secretName: stagegate-bootstrap-admin}\n---\n\
         apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: mallory, namespace: stagegate-system}\n\
         spec: {passwordSecretRef: {name: stagegate-bootstrap-admin, key: password}}\n",
    );
    let o = support::run(&["validate", ws.manifests().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = support::stdout(&o);
    assert_eq!(out.matches("SecretNameConflict").count(), 2, "{out}");
    assert!(
        out.contains("reserved for the bootstrap administrator"),
        "{out}"
    );
    wait_for(&r, 60, "zed reconciled", || {
        ws.store().user("zed").unwrap().map(|_| ())
    });
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the bootstrap Secret is untouched"
    );
    assert_eq!(api.login("admin", &password).status, 200);
    assert_eq!(api.login("mallory", &password).status, 401);
}
