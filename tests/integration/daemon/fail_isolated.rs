//! Issue 12: no fault stops a revocation. A broken secrets path in one
//! namespace becomes that namespace's objects' outcome (`DeliveryFailed`,
//! `SecretUnreadable`), and the rest of the plan, a revocation above all, is
//! applied in the same reconcile, in `apply` and in `run --dir`. A reconcile
//! that cannot run at all is loud: `/readyz`, the metrics and `status` say why.

use super::harness::{status_of, wait_for, Running, Workspace};
use crate::api::client::ApiClient;
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use stagegate::secrets::parse_secret_manifest;
use stagegate::store::Store;
use std::path::Path;

/// Alice (owner of a token) in `team`, Bob in `other`.
const BASE: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: alice, namespace: team}
spec: {state: STATE}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: alice-bot, namespace: team}
spec: {role: Admin, validity: Never, owner: alice}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: bob, namespace: other}
spec: {}
";

/// Two newcomers in `other` that need a delivery: a user, and a token whose Secret name is too long for a file.
const NEWCOMERS: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: carol, namespace: other}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: carol-bot, namespace: other}
spec: {role: Manager, validity: Never, secretName: LONG}
";

fn manifests(state: &str, newcomers: bool) -> String {
    let mut s = BASE.replace("STATE", state);
    if newcomers {
        s.push_str("---\n");
        s.push_str(&NEWCOMERS.replace("LONG", &"x".repeat(253)));
    }
    s
}

pub(super) fn secret(dir: &Path, ns: &str, name: &str, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join(ns).join(format!("{name}.yaml"))).unwrap();
    let (_, _, data) = parse_secret_manifest(&text).unwrap();
    String::from_utf8(data[key].clone()).unwrap()
}

/// Replaces the directory `dir` by a plain file: a fault that holds for root too.
fn stray_file(dir: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::write(dir, "not a directory\n").unwrap();
}

/// Alice is revoked in the same apply in which every delivery to `other` fails.
fn revocation_is_applied_by_apply_despite(store: StoreKind, break_path: impl Fn(&Workspace)) {
    let ws = Workspace::on(store);
    ws.write("org.yaml", &manifests("Active", false));
    let o = ws.apply();
    assert_eq!(o.status.code(), Some(0), "{}", support::stderr(&o));
    let mut store = ws.store();
    let key_id = secret(&ws.secrets(), "team", "alice-bot-token", "token")[4..16].to_string();
    store.create_session(&support_session("alice")).unwrap();

    break_path(&ws);
    ws.write("org.yaml", &manifests("Revoked", true));
    let o = ws.apply();
    let out = support::stdout(&o);
    // Object failures are object outcomes: exit 1 (not ready), never 2 (the reconcile failed).
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", support::stderr(&o));
    let alice = store.user("alice").unwrap().unwrap();
    assert_eq!(alice.state, stagegate::resources::UserState::Revoked);
    assert!(
        store.session(SESSION_HASH).unwrap().is_none(),
        "her session ended"
    );
    assert!(
        store
            .token_key(&key_id)
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some(),
        "her token is revoked"
    );
    let (ready, reason) = status_of(&store, "User", "other", "carol").unwrap();
    assert!(!ready && reason == "DeliveryFailed", "{reason}\n{out}");
    let (ready, reason) = status_of(&store, "ApiToken", "other", "carol-bot").unwrap();
    assert!(!ready && reason == "DeliveryFailed", "{reason}\n{out}");
    assert!(store
        .user("carol")
        .unwrap()
        .is_some_and(|u| !u.can_log_in()));
    let alice = store
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.name == "alice")
        .unwrap();
    assert_eq!(alice.phase.as_deref(), Some("Revoked"), "{alice:?}");
    assert!(out.contains("DeliveryFailed"), "{out}");
}

const SESSION_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn support_session(user: &str) -> stagegate::store::SessionRow {
    let now = jiff::Timestamp::now();
    stagegate::store::SessionRow {
        id_hash: stagegate::secrets::HashValue::new(SESSION_HASH.into()),
        username: user.into(),
        grants: Vec::new(),
        created_at: now,
        expires_at: now + jiff::SignedDuration::from_hours(1),
    }
}

on_both_stores!(
    broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_apply_stray_file
);
fn broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_apply_stray_file(
    store: StoreKind,
) {
    revocation_is_applied_by_apply_despite(store, |ws| stray_file(&ws.secrets().join("other")));
}

on_both_stores!(
    broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_apply_secrets_root_is_a_file
);
fn broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_apply_secrets_root_is_a_file(
    store: StoreKind,
) {
    // Every delivery and every read fails: revocations still happen.
    revocation_is_applied_by_apply_despite(store, |ws| stray_file(&ws.secrets()));
}

/// Starts the daemon on `ws` with the API on an ephemeral port; returns once it is ready.
pub(super) fn start_ready(ws: &Workspace, bootstrap: bool) -> (Running, ApiClient) {
    let flags: &[&str] = if bootstrap {
        &[]
    } else {
        &["--no-bootstrap-admin"]
    };
    start_ready_with(ws, flags)
}

/// [`start_ready`] with more flags (no bootstrap flag given: the default).
pub(super) fn start_ready_with(ws: &Workspace, extra: &[&str]) -> (Running, ApiClient) {
    let mut flags = vec!["--listen", "127.0.0.1:0"];
    flags.extend_from_slice(extra);
    let r = ws.start(&flags);
    let api = api_of(&r);
    wait_for(&r, 60, "the first reconcile", || {
        (api.get("/readyz", None).status == 200).then_some(())
    });
    (r, api)
}

/// Alice's session and token, over HTTP.
fn alice_credentials(ws: &Workspace, api: &ApiClient) -> (String, String, String) {
    let password = secret(&ws.secrets(), "team", "alice-password", "password");
    let token = secret(&ws.secrets(), "team", "alice-bot-token", "token");
    let session = api.session("alice", &password);
    assert_eq!(api.whoami(&session).status, 200);
    assert_eq!(api.whoami(&token).status, 200);
    (password, session, token)
}

pub(super) fn api_of(r: &Running) -> ApiClient {
    let base = wait_for(r, 60, "the API address", || {
        r.stdout()
            .lines()
            .find_map(|l| l.trim().strip_prefix("api:").map(|a| a.trim().to_string()))
    });
    ApiClient::new(&base)
}

/// The same in `run --dir`: within one reconcile her session and her token stop working over HTTP.
fn revocation_is_applied_by_the_daemon_despite(store: StoreKind, break_path: impl Fn(&Workspace)) {
    let ws = Workspace::on(store);
    ws.write("org.yaml", &manifests("Active", false));
    let (r, api) = start_ready(&ws, false);
    let store = ws.store();
    let (password, session, token) = alice_credentials(&ws, &api);

    break_path(&ws);
    ws.write("org.yaml", &manifests("Revoked", true));
    wait_for(&r, 60, "alice's session to stop working", || {
        (api.whoami(&session).status == 401).then_some(())
    });
    assert_eq!(api.whoami(&token).status, 401, "her token stops with her");
    assert_eq!(api.login("alice", &password).status, 401);
    let (ready, reason) = wait_for(&r, 30, "carol's status", || {
        status_of(&store, "User", "other", "carol")
    });
    assert!(!ready && reason == "DeliveryFailed", "{reason}");
    // The reconcile itself ran: ready, and nothing is retried in a loop.
    let ready = api.get("/readyz", None);
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(!r.log().contains("reconcile failed"), "{}", r.log());
}

on_both_stores!(broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_run_stray_file);
fn broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_run_stray_file(
    store: StoreKind,
) {
    revocation_is_applied_by_the_daemon_despite(store, |ws| {
        stray_file(&ws.secrets().join("other"))
    });
}

on_both_stores!(
    broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_run_name_too_long
);
fn broken_secrets_path_in_one_namespace_does_not_delay_a_revocation_in_run_name_too_long(
    store: StoreKind,
) {
    // Only carol-bot's Secret name is at fault (ENAMETOOLONG): carol, in the same namespace, is delivered.
    let ws = Workspace::on(store);
    ws.write("org.yaml", &manifests("Active", false));
    let (r, api) = start_ready(&ws, false);
    let store = ws.store();
    let (_, session, token) = alice_credentials(&ws, &api);
    ws.write("org.yaml", &manifests("Revoked", true));
    wait_for(&r, 60, "alice's token to stop working", || {
        (api.whoami(&token).status == 401).then_some(())
    });
    assert_eq!(api.whoami(&session).status, 401);
    let (ready, reason) = wait_for(&r, 30, "carol-bot's status", || {
        status_of(&store, "ApiToken", "other", "carol-bot")
    });
    assert!(!ready && reason == "DeliveryFailed", "{reason}");
    let msg = store
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.name == "carol-bot")
        .unwrap()
        .message;
    assert!(msg.contains("name too long"), "{msg}");
    assert_eq!(
        status_of(&store, "User", "other", "carol"),
        Some((true, "Ready".into()))
    );
}
