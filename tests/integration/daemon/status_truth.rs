//! Issue 12: status tells the truth — the phase moves at first login, the
//! bootstrap administrator stays visible whatever is declared, a deleted
//! password Secret keeps the password in force (and says so), a revoked
//! owner's token does not advise a rotation that does nothing, and a lowered
//! rotation is reported.

use super::fail_isolated::start_ready;
use super::harness::{bootstrap_secret_file, wait_for, Workspace};
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use stagegate::secrets::parse_secret_manifest;
use stagegate::store::{ObjectStatus, Store};

fn status(ws: &Workspace, ns: &str, name: &str) -> Option<ObjectStatus> {
    ws.store()
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.namespace == ns && s.key.name == name)
}

fn password(file: &std::path::Path) -> String {
    let (_, _, data) = parse_secret_manifest(&std::fs::read_to_string(file).unwrap()).unwrap();
    String::from_utf8(data["password"].clone()).unwrap()
}

fn bootstrap_stays_visible_beside(store: StoreKind, declared_name: &str) {
    let ws = Workspace::on(store);
    ws.write(
        "system.yaml",
        &format!("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {{name: {declared_name}, namespace: stagegate-system}}\nspec: {{username: someone-else}}\n"),
    );
    let (r, api) = start_ready(&ws, true);
    let st = wait_for(&r, 60, "the bootstrap administrator's status", || {
        status(&ws, "stagegate-system", "bootstrap:admin")
    });
    assert_eq!(st.reason, "BootstrapAdmin");
    assert_eq!(st.phase.as_deref(), Some("Invited"));
    wait_for(&r, 30, "the declared user's status", || {
        status(&ws, "stagegate-system", declared_name)
    });
    // The first login moves the phase at once, not at the next reconcile.
    api.session("admin", &password(&bootstrap_secret_file(&ws)));
    let st = status(&ws, "stagegate-system", "bootstrap:admin").unwrap();
    assert_eq!(st.phase.as_deref(), Some("Active"), "{st:?}");
    let pw = password(
        &ws.secrets()
            .join(format!("stagegate-system/{declared_name}-password.yaml")),
    );
    api.session("someone-else", &pw);
    let st = status(&ws, "stagegate-system", declared_name).unwrap();
    assert_eq!(st.phase.as_deref(), Some("Active"), "{st:?}");
    let o = ws.status();
    let out = support::stdout(&o);
    assert!(
        out.contains("User stagegate-system/bootstrap:admin"),
        "{out}"
    );
    assert!(
        out.contains(&format!("User stagegate-system/{declared_name}")),
        "{out}"
    );
}

on_both_stores!(status_tells_the_truth_bootstrap_admin_beside_a_user_named_admin);
fn status_tells_the_truth_bootstrap_admin_beside_a_user_named_admin(store: StoreKind) {
    bootstrap_stays_visible_beside(store, "admin");
}

on_both_stores!(status_tells_the_truth_bootstrap_admin_beside_a_user_named_like_its_secret);
fn status_tells_the_truth_bootstrap_admin_beside_a_user_named_like_its_secret(store: StoreKind) {
    bootstrap_stays_visible_beside(store, "stagegate-bootstrap-admin");
}

const ORG: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ann, namespace: team}
spec: {state: STATE, passwordSecretRef: {name: ann-pw, key: password}}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: ann-bot, namespace: team}
spec: {role: Manager, validity: Never, owner: ann, rotation: ROT}
";

fn apply(ws: &Workspace, state: &str, rot: &str) {
    ws.write("org.yaml", &ORG.replace("STATE", state).replace("ROT", rot));
    ws.apply();
}

on_both_stores!(status_tells_the_truth_about_secrets_rotations_and_owners);
fn status_tells_the_truth_about_secrets_rotations_and_owners(store: StoreKind) {
    let ws = Workspace::on(store);
    std::fs::create_dir_all(ws.secrets().join("team")).unwrap();
    let pw_file = ws.secrets().join("team/ann-pw.yaml");
    std::fs::write(
        &pw_file,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ann-pw, namespace: team}\nstringData: {password: correct-horse-battery}\n",
    )
    .unwrap();
    apply(&ws, "Active", "2");
    assert_eq!(status(&ws, "team", "ann").unwrap().reason, "Ready");
    // A deleted password Secret keeps the password in force, and the status says so.
    std::fs::remove_file(&pw_file).unwrap();
    apply(&ws, "Active", "2");
    let st = status(&ws, "team", "ann").unwrap();
    assert_eq!(st.reason, "PasswordSecretMissing");
    assert!(
        st.message.contains("password in force stays valid"),
        "{}",
        st.message
    );
    assert!(!st.message.contains("cannot log in"), "{}", st.message);
    assert!(ws.store().user("ann").unwrap().unwrap().can_log_in());
    // A lowered rotation is reported.
    apply(&ws, "Active", "1");
    let st = status(&ws, "team", "ann-bot").unwrap();
    assert_eq!(st.reason, "RotationLowered", "{st:?}");
    assert!(
        st.message.contains("spec.rotation 1 is lower than 2"),
        "{}",
        st.message
    );
    // A token whose owner is revoked is not told to raise spec.rotation alone.
    apply(&ws, "Revoked", "2");
    let st = status(&ws, "team", "ann-bot").unwrap();
    assert_eq!(st.reason, "Revoked");
    assert!(
        st.message.contains("owner is Active again"),
        "{}",
        st.message
    );
    assert!(
        !st.message
            .ends_with("increase spec.rotation to issue a new key"),
        "{}",
        st.message
    );
}
