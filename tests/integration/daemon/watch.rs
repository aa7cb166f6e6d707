//! Issue 3: the daemon reconciles edits while it runs; a broken file removes nothing; SIGTERM stops it.

use super::harness::{copy_examples, status_of, wait_for, Workspace};
use crate::stores::{on_both_stores, StoreKind};
use stagegate::policy::{Role, Scope, Stage};
use stagegate::resources::UserState;
use stagegate::secrets::parse_secret_manifest;
use stagegate::store::Store;

const NEW_REQUEST: &str = "apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata:
  name: churn-v2-001-deploy
  namespace: ml-platform
  annotations:
    stagegate.dev/requested-at: \"2026-11-20T10:00:00Z\"
spec:
  model: churn-v2
  scope:
    customer: acme
    project: churn
  from: None
  to: Dev
  requestedBy: anna
  reason: retrained on October data
";

fn reconciles(log: &str) -> usize {
    log.matches(" reconciled").count()
}

/// Every secret value delivered so far (passwords, token strings).
fn delivered_values(ws: &Workspace) -> Vec<String> {
    let mut out = Vec::new();
    for ns in std::fs::read_dir(ws.secrets()).unwrap().flatten() {
        for f in std::fs::read_dir(ns.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(f.path()).unwrap();
            if let Ok((_, _, data)) = parse_secret_manifest(&text) {
                for (k, v) in data {
                    if k != "username" {
                        out.push(String::from_utf8(v).unwrap());
                    }
                }
            }
        }
    }
    out
}

on_both_stores!(run_dir_reconciles_edits_keeps_broken_files_and_stops_on_sigterm);
fn run_dir_reconciles_edits_keeps_broken_files_and_stops_on_sigterm(store: StoreKind) {
    let ws = Workspace::on(store);
    copy_examples(&ws.manifests());
    let r = ws.start(&[]);
    // The store is opened (and migrated) by the daemon before it prints where it is.
    wait_for(&r, 60, "the start banner", || {
        r.stdout().contains("server key:").then_some(())
    });
    let out = r.stdout();
    assert!(out.contains(ws.store_path().to_str().unwrap()), "{out}");
    assert!(out.contains(ws.secrets().to_str().unwrap()), "{out}");
    let store = ws.store();
    wait_for(&r, 60, "the first reconcile", || {
        status_of(&store, "ApiToken", "ml-platform", "fraud-ci-deployer")
            .filter(|(ready, _)| *ready)
            .and(store.user("alan").unwrap())
    });
    // ada is a declared global Admin who can log in: no bootstrap administrator.
    assert!(store.user("admin").unwrap().is_none());

    // Change a role.
    let bindings = ws.read("bindings.yaml");
    let changed = bindings.replacen("role: Manager", "role: Analyst", 1);
    assert_ne!(bindings, changed);
    ws.write("bindings.yaml", &changed);
    wait_for(&r, 30, "maria's role change", || {
        let g = store.grants("maria").unwrap();
        g.iter()
            .any(|g| g.role == Role::Analyst && g.scope == Scope::customer("acme"))
            .then_some(())
    });

    // Revoke a user.
    let users = ws.read("users.yaml");
    let revoked = users.replacen(
        "  email: alan@example.com\n",
        "  email: alan@example.com\n  state: Revoked\n",
        1,
    );
    assert_ne!(users, revoked);
    ws.write("users.yaml", &revoked);
    wait_for(&r, 30, "alan revoked", || {
        store
            .user("alan")
            .unwrap()
            .filter(|u| u.state == UserState::Revoked)
    });

    // Add a stage request.
    ws.write("more-requests.yaml", NEW_REQUEST);
    wait_for(&r, 30, "churn-v2 deployed to Dev", || {
        store
            .models()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "churn-v2" && m.stage == Stage::Dev)
    });

    // Delete a file: its tokens go.
    std::fs::remove_file(ws.manifests().join("tokens.yaml")).unwrap();
    wait_for(&r, 30, "tokens pruned", || {
        (status_of(&store, "ApiToken", "ml-platform", "fraud-ci-deployer").is_none()
            && store.count("token_keys").unwrap() == 0)
            .then_some(())
    });

    // A broken file keeps everything it declared.
    let before = reconciles(&r.log());
    ws.write(
        "users.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: [unclosed\n",
    );
    wait_for(&r, 30, "a reconcile with users.yaml broken", || {
        let log = r.log();
        (log.contains("event=\"broken\"") && reconciles(&log) > before).then_some(())
    });
    for u in ["ada", "maria", "alan", "anna", "dan", "dora"] {
        assert!(store.user(u).unwrap().is_some(), "{u} was removed");
    }
    assert_eq!(
        store.user("alan").unwrap().unwrap().state,
        UserState::Revoked
    );
    // Fixed again, minus dora: now dora goes.
    let without_dora = revoked[..revoked
        .find("---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: dora")
        .unwrap()]
        .to_string();
    ws.write("users.yaml", &without_dora);
    wait_for(&r, 30, "dora pruned", || {
        store.user("dora").unwrap().is_none().then_some(())
    });
    assert!(store.user("ada").unwrap().is_some());

    let secrets = delivered_values(&ws);
    assert!(!secrets.is_empty());
    let log_path = r.log.clone();
    let status = r.terminate();
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "a secret value is in the log");
    }
}
