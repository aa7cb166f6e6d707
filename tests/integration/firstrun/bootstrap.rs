//! Issue 8's acceptance over HTTP: the bootstrap administrator of an empty
//! store logs in and `whoami` says it is the bootstrap one; a second start
//! neither re-creates nor re-delivers it; a declared global Admin disables it
//! (session 401, login 401, a clear log line); removing every declared global
//! Admin re-creates it with a new password, warned and audited.

use super::{ready_client, secret_value};
use crate::daemon::harness::{bootstrap_secret_file, wait_for, Running, Workspace, ROOT_ADMIN};
use crate::support;
use serde_json::json;
use stagegate::store::Store;

fn audit_count(store: &impl Store, action: &str) -> usize {
    store
        .audit(0)
        .unwrap()
        .iter()
        .filter(|a| a.action == action)
        .count()
}

fn status_text(ws: &Workspace) -> String {
    let o = support::run(&["status", "--store", ws.store_path().to_str().unwrap()]);
    support::stdout(&o)
}

fn password(r: &Running, ws: &Workspace) -> String {
    secret_value(r, &bootstrap_secret_file(ws), "password")
}

#[test]
fn bootstrap_admin_over_http() {
    let ws = Workspace::new();
    let store = ws.store();

    // Empty store: created once, its Secret delivered once, and it logs in.
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let first = password(&r, &ws);
    assert_eq!(
        secret_value(&r, &bootstrap_secret_file(&ws), "username"),
        "admin"
    );
    let session = api.session("admin", &first);
    let who = api.whoami(&session);
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(who.body["name"], "admin");
    assert_eq!(who.body["bootstrap"], true);
    assert_eq!(who.body["roles"], json!([{"role": "Admin", "scope": {}}]));
    let q = json!({"action": "users:manage", "scope": {}});
    assert!(api.allowed(&session, &q).0);
    let status = status_text(&ws);
    assert!(
        status.contains("User stagegate-system/bootstrap:admin")
            && status.contains("BootstrapAdmin"),
        "{status}"
    );
    assert!(!r.log().contains(&first), "the password is never logged");
    assert_eq!(r.terminate().code(), Some(0));

    // A second start: not re-created, not re-delivered (same file, same time, same content).
    let meta = std::fs::metadata(bootstrap_secret_file(&ws)).unwrap();
    let content = std::fs::read(bootstrap_secret_file(&ws)).unwrap();
    let r = ws.start(&[]);
    let api = ready_client(&r);
    let meta2 = std::fs::metadata(bootstrap_secret_file(&ws)).unwrap();
    assert_eq!(meta2.modified().unwrap(), meta.modified().unwrap());
    assert_eq!(std::fs::read(bootstrap_secret_file(&ws)).unwrap(), content);
    assert_eq!(audit_count(&store, "bootstrap.create"), 1);
    assert_eq!(audit_count(&store, "bootstrap.deliver"), 1);
    assert!(!r.log().contains("bootstrap administrator created"));
    let session = api.session("admin", &first);

    // A declared global Admin disables it: its session ends, its login fails, the log says why.
    ws.write("admins.yaml", ROOT_ADMIN);
    wait_for(&r, 60, "the bootstrap session rejected", || {
        (api.whoami(&session).status == 401).then_some(())
    });
    assert_eq!(api.get("/v1/models", Some(&session)).status, 401);
    let refused = api.login("admin", &first);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let log = r.log();
    assert!(
        log.contains("bootstrap administrator disabled: declared global Admin root exists"),
        "{log}"
    );
    assert!(
        log.contains("login refused: the bootstrap administrator is disabled"),
        "{log}"
    );
    assert_eq!(audit_count(&store, "bootstrap.disable"), 1);
    let root_pw = secret_value(
        &r,
        &ws.secrets().join("platform/root-password.yaml"),
        "password",
    );
    let root = api.session("root", &root_pw);
    assert_eq!(api.whoami(&root).body["bootstrap"], false);
    assert!(status_text(&ws).contains("BootstrapDisabled"));

    // No declared global Admin left: re-created with a new password, a warning, an audit entry.
    std::fs::remove_file(ws.manifests().join("admins.yaml")).unwrap();
    let second = wait_for(&r, 60, "a new bootstrap password", || {
        Some(password(&r, &ws)).filter(|p| *p != first)
    });
    // Deleting root and re-creating the bootstrap admin is one reconcile, then one index refresh:
    // wait on root's session rather than retrying logins (failed logins are throttled).
    wait_for(&r, 60, "root's session ended (root deleted)", || {
        (api.whoami(&root).status == 401).then_some(())
    });
    let session = api.session("admin", &second);
    assert_eq!(api.whoami(&session).body["bootstrap"], true);
    assert_eq!(api.login("admin", &first).status, 401);
    assert_eq!(audit_count(&store, "bootstrap.recreate"), 1);
    let log = r.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("re-creating the bootstrap administrator")),
        "{log}"
    );
    for p in [&first, &second, &root_pw] {
        assert!(!log.contains(p.as_str()), "a password in the log");
    }
    assert!(status_text(&ws).contains("BootstrapAdmin"));
    assert_eq!(r.terminate().code(), Some(0));
}
