//! Bounds that silently become "never": `validity` is at most 10y (`Never` is the only way
//! to say never) and rotation counters have a schema maximum.

use super::{error_at, outcome, token, user, Dir, OneShot};

/// An ApiToken `name` with `validity`.
fn valid_for(name: &str, validity: &str) -> String {
    token("ml-platform", name, "").replace("validity: 30d", &format!("validity: {validity}"))
}

#[test]
fn bounds_on_validity_are_invalid_durations() {
    let d = Dir::new();
    let too_long = [
        ("eleven", "11y"),
        ("days", "3653d"),
        ("hours", "87661h"),
        ("minutes", "1000000000000m"),
        ("overflow", "18446744073709551616s"),
        ("mixed", "10y 1h"),
    ];
    for (name, validity) in too_long {
        d.write(&format!("{name}.yaml"), &valid_for(name, validity));
    }
    for (name, validity) in [("ten", "10y"), ("hours-ok", "87660h"), ("never", "Never")] {
        d.write(&format!("{name}.yaml"), &valid_for(name, validity));
    }
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    for (name, _) in too_long {
        let hit = error_at(&diags, "InvalidDuration", name, "spec.validity");
        assert_eq!(hit["line"], 9, "{hit:#}");
        assert!(
            hit["message"].as_str().unwrap().contains("maximum of 10y"),
            "{hit:#}"
        );
    }
    for fine in ["ten", "hours-ok", "never"] {
        assert!(
            !diags.iter().any(|x| x["name"] == fine),
            "{fine}: {diags:#?}"
        );
    }
}

#[test]
fn bounds_on_rotations_are_schema_violations() {
    let d = Dir::new();
    d.write(
        "big.yaml",
        &token("ml-platform", "big", "  rotation: 1000001\n"),
    );
    d.write(
        "huge.yaml",
        &token("ml-platform", "huge", "  rotation: 4294967296\n"),
    );
    d.write(
        "neg.yaml",
        &user("ml-platform", "neg", "  passwordRotation: -1\n"),
    );
    d.write(
        "wide.yaml",
        &user("ml-platform", "wide", "  passwordRotation: 99999999999\n"),
    );
    d.write(
        "top.yaml",
        &token("ml-platform", "top", "  rotation: 1000000\n"),
    );
    let (code, diags) = d.validate();
    assert_eq!(code, 1, "{diags:#?}");
    for name in ["big", "huge"] {
        let hit = error_at(&diags, "SchemaViolation", name, "spec.rotation");
        assert_eq!(hit["message"], "must be at most 1000000", "{hit:#}");
    }
    error_at(&diags, "SchemaViolation", "neg", "spec.passwordRotation");
    let hit = error_at(&diags, "SchemaViolation", "wide", "spec.passwordRotation");
    assert_eq!(hit["line"], 8, "{hit:#}");
    assert!(!diags.iter().any(|x| x["name"] == "top"), "{diags:#?}");
}

#[test]
fn bounds_an_overlong_validity_issues_no_key_in_apply() {
    let d = Dir::new();
    d.write("t.yaml", &valid_for("forever", "100000d"));
    d.write("u.yaml", &valid_for("sane", "3650d"));
    let (code, outcomes, _) = d.apply_json();
    assert_eq!(code, 1);
    let o = outcome(&outcomes, "ApiToken", "forever");
    assert_eq!(o["ready"], false, "{o:#}");
    assert!(
        o["message"].as_str().unwrap().contains("InvalidDuration"),
        "{o:#}"
    );
    assert!(d.secret("ml-platform", "forever-token").is_none());
    assert_eq!(outcome(&outcomes, "ApiToken", "sane")["ready"], true);
    assert!(d.secret("ml-platform", "sane-token").is_some());
}
