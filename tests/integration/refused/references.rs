//! References that can never resolve: a reference that is not a username fails validation
//! (`InvalidUsername`); `UnknownUser` stays a warning only for well-formed names.

use super::{binding, error_at, on, user, Dir, OneShot};

fn request(name: &str, by: &str) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1\nkind: ModelStageRequest\nmetadata:\n  name: {name}\n  namespace: ml-platform\nspec:\n  model: fraud-detector\n  scope: {{customer: acme, project: fraud}}\n  from: None\n  to: Dev\n  requestedBy: {by}\n"
    )
}

#[test]
fn unresolvable_references_are_invalid_usernames() {
    let d = Dir::new();
    let refs = [
        (
            "upper",
            binding("ml-platform", "upper", "  user: Grace\n  role: Analyst\n"),
            "spec.user",
            7,
        ),
        (
            "space",
            binding(
                "ml-platform",
                "space",
                "  user: \" grace\"\n  role: Analyst\n",
            ),
            "spec.user",
            7,
        ),
        (
            "slash",
            binding(
                "ml-platform",
                "slash",
                "  user: grace/admin\n  role: Analyst\n",
            ),
            "spec.user",
            7,
        ),
        (
            "empty",
            binding("ml-platform", "empty", "  user: ''\n  role: Analyst\n"),
            "spec.user",
            7,
        ),
        (
            "owner",
            super::token("ml-platform", "owner", "  owner: CI-Bot\n"),
            "spec.owner",
            10,
        ),
        (
            "tab",
            request("tab", "\"grace\\t\""),
            "spec.requestedBy",
            11,
        ),
        ("dash", request("dash", "grace-"), "spec.requestedBy", 11),
        (
            "login",
            user("ml-platform", "login", "  username: Grace@Example.com\n"),
            "spec.username",
            8,
        ),
    ];
    for (name, text, _, _) in &refs {
        d.write(&format!("{name}.yaml"), text);
    }
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    for (name, _, field, line) in &refs {
        let hit = error_at(&diags, "InvalidUsername", name, field);
        assert_eq!(hit["line"], *line, "{hit:#}");
        assert!(on(&diags, "UnknownUser", name).is_empty(), "{diags:#?}");
    }
}

#[test]
fn unresolvable_references_well_formed_unknown_users_stay_warnings() {
    let d = Dir::new();
    d.write(
        "a.yaml",
        &binding(
            "ml-platform",
            "later",
            "  user: grace.hopper@example.com\n  role: Analyst\n",
        ),
    );
    d.write("b.yaml", &request("early", "not-yet-here"));
    let (code, diags) = d.validate();
    assert_eq!(code, 0, "{diags:#?}");
    for name in ["later", "early"] {
        let hits = on(&diags, "UnknownUser", name);
        assert_eq!(hits.len(), 1, "{diags:#?}");
        assert_eq!(hits[0]["severity"], "warning");
    }
}
