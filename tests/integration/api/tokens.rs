//! API tokens: authentication, rotation, revocation, expiry, pending keys and
//! malformed tokens.

use super::harness::{org_server, revoked_user, test_config};
use crate::stores::{on_both_stores, StoreKind};
use jiff::{SignedDuration, Timestamp};
use stagegate::policy::{Role, Scope};
use stagegate::store::{KeyState, StoreOp};

fn with<F: FnOnce(&mut stagegate::store::TokenKeyRow)>(op: StoreOp, f: F) -> StoreOp {
    match op {
        StoreOp::UpsertTokenKey(mut row) => {
            f(&mut row);
            StoreOp::UpsertTokenKey(row)
        }
        other => other,
    }
}

on_both_stores!(rotation_retires_the_old_token_and_the_new_one_works);
fn rotation_retires_the_old_token_and_the_new_one_works(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (op, old, _) = srv.token("ci", Role::Developer, Scope::customer("acme"), None);
    srv.apply(vec![op.clone()]);
    assert_eq!(c.whoami(&old).status, 200);
    let retired = with(op, |r| {
        r.revoked_at = Some(Timestamp::now());
        r.revoked_reason = Some("Rotated".into());
    });
    let (new_op, new, _) = srv.token("ci", Role::Developer, Scope::customer("acme"), None);
    srv.apply(vec![retired, with(new_op, |r| r.rotation = 1)]);
    assert_eq!(c.whoami(&old).status, 401);
    let w = c.whoami(&new);
    assert_eq!(w.status, 200);
    assert_eq!(w.body["name"], "ci");
}

on_both_stores!(expired_tokens_are_refused_without_a_refresh);
fn expired_tokens_are_refused_without_a_refresh(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (gone, past, _) = srv.token(
        "old",
        Role::Admin,
        Scope::global(),
        Some(Timestamp::now() - SignedDuration::from_secs(1)),
    );
    let (soon, short, _) = srv.token(
        "short",
        Role::Admin,
        Scope::global(),
        Some(Timestamp::now() + SignedDuration::from_millis(1500)),
    );
    srv.apply(vec![gone, soon]);
    assert_eq!(c.whoami(&past).status, 401);
    let w = c.whoami(&short);
    assert_eq!(w.status, 200);
    assert!(w.body["expiresAt"].is_string());
    std::thread::sleep(std::time::Duration::from_millis(1600));
    assert_eq!(c.whoami(&short).status, 401);
}

on_both_stores!(revoked_and_pending_keys_and_revoked_owners_are_refused);
fn revoked_and_pending_keys_and_revoked_owners_are_refused(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (a, revoked, _) = srv.token("a", Role::Admin, Scope::global(), None);
    let (b, pending, _) = srv.token("b", Role::Admin, Scope::global(), None);
    let (o, owned, _) = srv.token("o", Role::Admin, Scope::global(), None);
    srv.apply(vec![
        with(a, |r| r.revoked_at = Some(Timestamp::now())),
        with(b, |r| r.state = KeyState::Pending),
        with(o, |r| r.owner_user = Some("dan".into())),
    ]);
    assert_eq!(c.whoami(&revoked).status, 401);
    assert_eq!(c.whoami(&pending).status, 401);
    assert_eq!(c.whoami(&owned).status, 200);
    srv.apply(vec![revoked_user("dan", "dan-password")]);
    assert_eq!(c.whoami(&owned).status, 401);
}

on_both_stores!(a_bad_checksum_is_refused_and_the_server_keeps_serving);
fn a_bad_checksum_is_refused_and_the_server_keeps_serving(store: StoreKind) {
    let srv = org_server(store, test_config());
    let c = &srv.client;
    let (op, token, _) = srv.token("ci", Role::Admin, Scope::global(), None);
    srv.apply(vec![op]);
    let mut typo = token.clone().into_bytes();
    typo[40] = if typo[40] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).unwrap();
    let r = c.whoami(&typo);
    assert_eq!(r.status, 401);
    assert!(
        r.body["message"].as_str().unwrap().contains("checksum"),
        "{}",
        r.text
    );
    // A well-formed token under an unknown key id, and one with a wrong secret.
    let (_, unknown, _) = srv.token("never-stored", Role::Admin, Scope::global(), None);
    assert_eq!(c.whoami(&unknown).status, 401);
    assert_eq!(c.whoami(&token[..token.len() - 1]).status, 401);
    assert_eq!(c.whoami(&token).status, 200);
}

#[test]
fn token_verification_is_a_map_lookup_and_an_hmac() {
    let key = stagegate::secrets::ServerKey::generate();
    let nk = stagegate::secrets::generate_key(&key);
    let mut state = stagegate::store::StoreState::default();
    state.token_keys.insert(
        nk.key_id.clone(),
        stagegate::store::TokenKeyRow {
            key_id: nk.key_id.clone(),
            token_name: "t".into(),
            namespace: "ns".into(),
            secret_hmac: nk.secret_hmac.clone(),
            role: Role::Admin,
            scope: Scope::global(),
            owner_user: None,
            issued_at: Timestamp::now(),
            expires_at: None,
            revoked_at: None,
            revoked_reason: None,
            rotation: 0,
            state: KeyState::Issued,
            secret_name: "t-token".into(),
            owner: None,
        },
    );
    let index = stagegate::api::Index::build(&state);
    let token = nk.token.expose_str().unwrap();
    let id = index.verify_token(&key, token, Timestamp::now()).unwrap();
    assert_eq!(id.principal.name, "t");
    let other_key = stagegate::secrets::ServerKey::generate();
    assert!(index
        .verify_token(&other_key, token, Timestamp::now())
        .is_err());
}
