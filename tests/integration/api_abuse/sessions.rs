//! Privilege reductions end sessions at once, audited; additions (and rewrites
//! that grant the same) wait for the next login.

use super::{binding, user, Daemon};
use serde_json::json;

fn manage_users(d: &Daemon, session: &str) -> bool {
    d.api
        .allowed(session, &json!({"action": "users:manage", "scope": {}}))
        .0
}

fn session_ended(d: &Daemon, session: &str, what: &str) {
    d.until(what, || (d.api.whoami(session).status == 401).then_some(()));
}

#[test]
fn privilege_reduction_admin_to_manager_ends_the_session() {
    let d = Daemon::start(
        &[
            ("ann.yaml", user("ann")),
            ("ann-role.yaml", binding("ann-role", "ann", "Admin", "{}")),
        ],
        &[],
    );
    let pw = d.password("ann");
    let s = d.api.session("ann", &pw);
    assert!(manage_users(&d, &s));

    d.ws.write(
        "ann-role.yaml",
        &binding("ann-role", "ann", "Manager", "{}"),
    );
    session_ended(&d, &s, "the demoted Admin's session to end");
    assert_eq!(d.api.get("/v1/models", Some(&s)).status, 401);
    let rows = d.audit("user.sessions.end");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "ann-role");
    assert_eq!(rows[0].1["user"], "ann");
    assert_eq!(rows[0].1["lost"], "users:manage at global");

    // The next login holds what is left.
    let s = d.api.session("ann", &pw);
    assert_eq!(
        d.api.whoami(&s).body["roles"],
        json!([{"role": "Manager", "scope": {}}])
    );
    assert!(!manage_users(&d, &s));
}

#[test]
fn privilege_reduction_scope_narrowed_or_binding_deleted_ends_the_session() {
    let d = Daemon::start(
        &[
            ("bo.yaml", user("bo")),
            (
                "bo-acme.yaml",
                binding("bo-acme", "bo", "Manager", "{customer: acme}"),
            ),
            (
                "bo-beta.yaml",
                binding("bo-beta", "bo", "Analyst", "{customer: beta}"),
            ),
        ],
        &[],
    );
    let pw = d.password("bo");
    let first = d.api.session("bo", &pw);

    // Narrowed: Manager at acme → Manager at acme/fraud.
    d.ws.write(
        "bo-acme.yaml",
        &binding(
            "bo-acme",
            "bo",
            "Manager",
            "{customer: acme, project: fraud}",
        ),
    );
    session_ended(&d, &first, "the narrowed user's session to end");
    let second = d.api.session("bo", &pw);
    assert_eq!(d.api.whoami(&second).status, 200);

    // Deleted: the beta binding goes.
    std::fs::remove_file(d.ws.manifests().join("bo-beta.yaml")).unwrap();
    session_ended(
        &d,
        &second,
        "the session to end after a binding was deleted",
    );
    let rows = d.audit("user.sessions.end");
    let causes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(causes, ["bo-acme", "bo-beta"], "{rows:?}");
    assert!(
        rows[1].1["lost"].as_str().unwrap().contains(" at beta"),
        "{rows:?}"
    );
    let third = d.api.session("bo", &pw);
    assert_eq!(
        d.api.whoami(&third).body["roles"],
        json!([{"role": "Manager", "scope": {"customer": "acme", "project": "fraud"}}])
    );
}

#[test]
fn privilege_addition_or_equivalent_rewrite_keeps_the_session() {
    let d = Daemon::start(
        &[
            ("cy.yaml", user("cy")),
            (
                "cy-fraud.yaml",
                binding(
                    "cy-fraud",
                    "cy",
                    "Manager",
                    "{customer: acme, project: fraud}",
                ),
            ),
        ],
        &[],
    );
    let pw = d.password("cy");
    let s = d.api.session("cy", &pw);
    let held = json!([{"role": "Manager", "scope": {"customer": "acme", "project": "fraud"}}]);

    // An addition: a wider Manager binding. Applied (audited), the session keeps its login-time roles.
    d.ws.write(
        "cy-acme.yaml",
        &binding("cy-acme", "cy", "Manager", "{customer: acme}"),
    );
    d.until("cy-acme applied", || {
        d.audit("binding.create")
            .iter()
            .any(|r| r.0 == "cy-acme")
            .then_some(())
    });
    let who = d.api.whoami(&s);
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(who.body["roles"], held);

    // A rewrite that grants the same: the project binding is folded into the customer one.
    std::fs::remove_file(d.ws.manifests().join("cy-fraud.yaml")).unwrap();
    d.until("cy-fraud removed", || {
        d.audit("binding.delete")
            .iter()
            .any(|r| r.0 == "cy-fraud")
            .then_some(())
    });
    assert_eq!(d.api.whoami(&s).status, 200);
    assert!(d.audit("user.sessions.end").is_empty());

    // The next login holds the addition.
    let next = d.api.session("cy", &pw);
    assert_eq!(
        d.api.whoami(&next).body["roles"],
        json!([{"role": "Manager", "scope": {"customer": "acme"}}])
    );
}
