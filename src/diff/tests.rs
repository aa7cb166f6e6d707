//! Unit tests of the diff on inline manifests.

use super::*;
use crate::snapshot::Snapshot;
use crate::sources::files::load_text;

fn snap(yaml: &str) -> Snapshot {
    let mut s = load_text("t.yaml", yaml);
    crate::validate::validate(&mut s);
    s
}

const ALAN: &str = "apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {name: alan, namespace: ns}\nspec: {}\n";

fn binding(role: &str, scope: &str) -> String {
    format!("---\napiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {{name: alan-b, namespace: ns}}\nspec: {{user: alan, role: {role}, scope: {scope}}}\n")
}

fn kinds(d: &PermissionDiff) -> Vec<EscalationKind> {
    d.escalations.iter().map(|e| e.kind).collect()
}

#[test]
fn identical_trees_have_no_changes() {
    let s = snap(&format!("{ALAN}{}", binding("Analyst", "{customer: acme}")));
    let d = diff(&s, &s, &DiffOptions::default());
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(d.summary, "no changes");
}

#[test]
fn analyst_to_manager_gains_production_moves() {
    let base = snap(&format!("{ALAN}{}", binding("Analyst", "{customer: acme}")));
    let head = snap(&format!("{ALAN}{}", binding("Manager", "{customer: acme}")));
    let d = diff(&base, &head, &DiffOptions::default());
    assert_eq!(kinds(&d), vec![EscalationKind::GainsProductionMoves]);
    assert_eq!(d.summary, "1 user changed, 1 escalation");
}

#[test]
fn project_to_customer_is_a_wider_scope() {
    let base = snap(&format!(
        "{ALAN}{}",
        binding("Developer", "{customer: acme, project: fraud}")
    ));
    let head = snap(&format!(
        "{ALAN}{}",
        binding("Developer", "{customer: acme}")
    ));
    let d = diff(&base, &head, &DiffOptions::default());
    assert_eq!(kinds(&d), vec![EscalationKind::WiderScope]);
    assert!(
        d.principals[0].permissions_lost.is_empty(),
        "narrower grants are implied"
    );
    // And back: narrower is no escalation.
    let back = diff(&head, &base, &DiffOptions::default());
    assert!(back.escalations.is_empty());
}

#[test]
fn capabilities_come_from_the_policy() {
    use crate::policy::{Grant, Principal, Role, Scope};
    let p = Principal::user(
        "alan",
        vec![Grant {
            role: Role::Analyst,
            scope: Scope::customer("acme"),
        }],
    );
    let caps = capabilities(
        &p,
        &scope_universe([Scope::project("acme", "fraud")].iter()),
    );
    let text: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    assert!(
        text.contains(&"models:view Dev (own models) at acme".to_string()),
        "{text:?}"
    );
    assert!(
        text.contains(&"models:transition Dev→Staging (own models) at acme".to_string()),
        "{text:?}"
    );
    assert!(!text.iter().any(|t| t.contains("Production")), "{text:?}");
}

#[test]
fn long_validity_is_relative_to_the_maximum() {
    let token = |validity: &str| {
        snap(&format!("{ALAN}---\napiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: t, namespace: ns}}\nspec: {{role: Analyst, scope: {{customer: acme}}, owner: alan, validity: {validity}}}\n"))
    };
    let base = snap(ALAN);
    let d = diff(&base, &token("100d"), &DiffOptions::default());
    assert_eq!(kinds(&d), vec![EscalationKind::LongValidity]);
    let opts = DiffOptions {
        max_validity: std::time::Duration::from_secs(200 * 86400),
    };
    assert!(diff(&base, &token("100d"), &opts).escalations.is_empty());
    assert_eq!(d.tokens[0].action, TokenAction::Issued);
}

fn admin_token(extra: &str) -> String {
    format!("---\napiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: root, namespace: ns}}\nspec: {{role: Admin, validity: Never{extra}}}\n")
}

#[test]
fn an_unchanged_risky_token_is_not_flagged_again() {
    let s = snap(&format!("{ALAN}{}", admin_token("")));
    let d = diff(&s, &s, &DiffOptions::default());
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn rotating_a_never_token_flags_the_new_key_only() {
    let base = snap(&format!("{ALAN}{}", admin_token("")));
    let head = snap(&format!("{ALAN}{}", admin_token(", rotation: 1")));
    let d = diff(&base, &head, &DiffOptions::default());
    assert_eq!(kinds(&d), vec![EscalationKind::LongValidity]);
    assert_eq!(d.tokens[0].action, TokenAction::Rotated);
    assert_eq!(d.summary, "1 escalation, 1 token rotated");
}

#[test]
fn revoked_then_reinstated_token_is_issued_again() {
    let base = snap(&format!("{ALAN}{}", admin_token(", revoked: true")));
    let head = snap(&format!("{ALAN}{}", admin_token("")));
    let d = diff(&base, &head, &DiffOptions::default());
    assert_eq!(d.tokens[0].action, TokenAction::Issued);
    assert_eq!(d.principals[0].change, ChangeKind::Reinstated);
    assert!(kinds(&d).contains(&EscalationKind::NewAdminToken));
    let back = diff(&head, &base, &DiffOptions::default());
    assert_eq!(back.tokens[0].action, TokenAction::Revoked);
    assert_eq!(back.tokens[0].reason, "revoked: true");
    assert!(back.escalations.is_empty());
}

#[test]
fn revoking_and_reinstating_a_user() {
    let revoked = ALAN.replace("spec: {}", "spec: {state: Revoked}");
    let b = binding("Manager", "{customer: acme}");
    let (active, revoked) = (snap(&format!("{ALAN}{b}")), snap(&format!("{revoked}{b}")));
    let d = diff(&active, &revoked, &DiffOptions::default());
    assert_eq!(d.principals[0].change, ChangeKind::Revoked);
    assert_eq!(d.principals[0].roles_lost.len(), 1);
    assert_eq!(d.summary, "1 user revoked");
    let back = diff(&revoked, &active, &DiffOptions::default());
    assert_eq!(back.principals[0].change, ChangeKind::Reinstated);
    assert_eq!(kinds(&back), vec![EscalationKind::GainsProductionMoves]);
}

#[test]
fn json_matches_the_generated_schema() {
    let base = snap(ALAN);
    let head = snap(&format!("{ALAN}{}", admin_token("")));
    let d = diff(&base, &head, &DiffOptions::default());
    let v: serde_json::Value = serde_json::from_str(&render_json(&d)).unwrap();
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&v));
    assert_eq!(v["escalations"][0]["kind"], "GainsUserManagement");
    assert_eq!(v["escalations"][0]["principal"]["kind"], "token");
}
