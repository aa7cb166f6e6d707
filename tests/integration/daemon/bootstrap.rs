//! Issue 8: the bootstrap administrator in directory mode — created once on an
//! empty store, disabled by a declared global Admin, re-created when none is left.

use super::harness::{bootstrap_secret_file, status_of, wait_for, Workspace, ROOT_ADMIN};
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use stagegate::resources::UserState;
use stagegate::secrets::{parse_secret_manifest, verify_password, HashValue};
use stagegate::store::{SessionRow, Store};

fn bootstrap_password(ws: &Workspace) -> String {
    let text = std::fs::read_to_string(bootstrap_secret_file(ws)).unwrap();
    let (_, _, data) = parse_secret_manifest(&text).unwrap();
    assert_eq!(data["username"], b"admin");
    String::from_utf8(data["password"].clone()).unwrap()
}

fn audit_count(store: &impl Store, action: &str) -> usize {
    store
        .audit(0)
        .unwrap()
        .iter()
        .filter(|a| a.action == action)
        .count()
}

on_both_stores!(bootstrap_admin_lifecycle_in_directory_mode);
fn bootstrap_admin_lifecycle_in_directory_mode(store: StoreKind) {
    let ws = Workspace::on(store);
    // Empty store, nothing declared: created once, its secret delivered once.
    let r = ws.start(&[]);
    wait_for(&r, 60, "the start banner", || {
        r.stdout().contains("server key:").then_some(())
    });
    assert!(
        r.stdout().contains("stagegate-bootstrap-admin.yaml"),
        "{}",
        r.stdout()
    );
    let store = ws.store();
    let admin = wait_for(&r, 60, "the bootstrap administrator", || {
        store.user("admin").unwrap().filter(|u| u.can_log_in())
    });
    assert!(admin.bootstrap);
    let first = bootstrap_password(&ws);
    assert!(verify_password(
        admin.password_hash.as_ref().unwrap(),
        first.as_bytes()
    ));
    let log = r.log();
    assert!(log.contains("bootstrap administrator created"), "{log}");
    assert!(
        log.contains("stagegate-system/stagegate-bootstrap-admin"),
        "{log}"
    );
    assert!(!log.contains(&first));
    assert_eq!(r.terminate().code(), Some(0));
    let mtime = std::fs::metadata(bootstrap_secret_file(&ws))
        .unwrap()
        .modified()
        .unwrap();

    // A second start neither re-creates nor re-delivers it.
    let r = ws.start(&[]);
    wait_for(&r, 60, "a reconcile after restart", || {
        r.log().contains(" reconciled").then_some(())
    });
    assert_eq!(
        std::fs::metadata(bootstrap_secret_file(&ws))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
    assert_eq!(bootstrap_password(&ws), first);
    assert_eq!(audit_count(&store, "bootstrap.create"), 1);
    assert_eq!(audit_count(&store, "bootstrap.deliver"), 1);
    // Visible in `stagegate status`.
    let o = support::run(&[
        "status",
        "--output",
        "json",
        "--store",
        ws.store_path().to_str().unwrap(),
    ]);
    assert!(
        support::stdout(&o).contains("BootstrapAdmin"),
        "{}",
        support::stdout(&o)
    );

    // A session of the bootstrap administrator, then a declared global Admin: disabled.
    let mut writer = ws.store();
    let now = jiff::Timestamp::now();
    writer
        .create_session(&SessionRow {
            id_hash: HashValue::new("bootstrap-session".into()),
            username: "admin".into(),
            grants: store.grants("admin").unwrap(),
            created_at: now,
            expires_at: now + jiff::SignedDuration::from_hours(8),
        })
        .unwrap();
    ws.write("admins.yaml", ROOT_ADMIN);
    wait_for(&r, 30, "the bootstrap administrator disabled", || {
        store
            .user("admin")
            .unwrap()
            .filter(|u| u.state == UserState::Revoked)
    });
    let admin = store.user("admin").unwrap().unwrap();
    assert!(!admin.can_log_in(), "its login must be refused");
    assert!(
        store.session("bootstrap-session").unwrap().is_none(),
        "its session must end"
    );
    assert!(store.user("root").unwrap().unwrap().can_log_in());
    assert_eq!(audit_count(&store, "bootstrap.disable"), 1);
    assert_eq!(
        status_of(&store, "User", "stagegate-system", "bootstrap:admin").map(|s| s.1),
        Some("BootstrapDisabled".to_string())
    );

    // Every declared global Admin gone: re-created with a new password, warned and audited.
    std::fs::remove_file(ws.manifests().join("admins.yaml")).unwrap();
    let admin = wait_for(&r, 30, "the bootstrap administrator re-created", || {
        store
            .user("admin")
            .unwrap()
            .filter(|u| u.state == UserState::Active && u.can_log_in())
    });
    let second = bootstrap_password(&ws);
    assert_ne!(first, second);
    assert!(verify_password(
        admin.password_hash.as_ref().unwrap(),
        second.as_bytes()
    ));
    assert!(!verify_password(
        admin.password_hash.as_ref().unwrap(),
        first.as_bytes()
    ));
    assert_eq!(audit_count(&store, "bootstrap.recreate"), 1);
    let log = r.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("re-creating the bootstrap administrator")),
        "{log}"
    );
    for p in [&first, &second] {
        assert!(!log.contains(p.as_str()));
    }
    assert_eq!(r.terminate().code(), Some(0));
}

on_both_stores!(no_bootstrap_admin_turns_it_off);
fn no_bootstrap_admin_turns_it_off(store: StoreKind) {
    let ws = Workspace::on(store);
    let r = ws.start(&["--no-bootstrap-admin"]);
    wait_for(&r, 60, "a reconcile", || {
        r.log().contains(" reconciled").then_some(())
    });
    assert!(ws.store().user("admin").unwrap().is_none());
    assert!(!bootstrap_secret_file(&ws).exists());
    assert_eq!(r.terminate().code(), Some(0));
}

on_both_stores!(demoting_the_last_declared_admin_recreates_the_bootstrap_admin_with_a_warning);
/// Issue 16: a store whose only global Admin was declared (no bootstrap administrator
/// was ever made) and then demoted gets one back as a re-creation, warned and audited
/// `bootstrap.recreate`, as the README promises — not as a quiet first creation.
fn demoting_the_last_declared_admin_recreates_the_bootstrap_admin_with_a_warning(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("admins.yaml", ROOT_ADMIN);
    let r = ws.start(&[]);
    // The daemon creates the store: open it only after its first reconcile.
    wait_for(&r, 60, "a reconcile", || {
        r.log().contains(" reconciled").then_some(())
    });
    let store = ws.store();
    assert!(store.user("root").unwrap().is_some());
    assert!(store.user("admin").unwrap().is_none());

    ws.write(
        "admins.yaml",
        &ROOT_ADMIN.replace("role: Admin", "role: Manager"),
    );
    wait_for(&r, 60, "the bootstrap administrator", || {
        store.user("admin").unwrap().filter(|u| u.can_log_in())
    });
    assert_eq!(audit_count(&store, "bootstrap.recreate"), 1);
    assert_eq!(audit_count(&store, "bootstrap.create"), 0);
    let log = r.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("re-creating the bootstrap administrator")),
        "{log}"
    );
    assert!(!log.contains(&bootstrap_password(&ws)));
    assert_eq!(r.terminate().code(), Some(0));
}
