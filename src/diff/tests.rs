//! Unit tests of the diff on inline manifests.

use super::*;
use crate::plan::Snapshot;
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
