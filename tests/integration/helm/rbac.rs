//! RBAC: the chart grants exactly the controller's recorded API calls
//! (`tests/fixtures/rbac/controller-api-calls.txt`), in both directions, for
//! every values file; no wildcards; every role bound to the ServiceAccount.

use std::collections::BTreeSet;
use std::fs;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::manifests::Object;
use super::{effective_values, label, render, repo, values_files, NAMESPACE};

/// (apiGroup, resource, verb), `core` for the core group.
type Grant = (String, String, String);

fn recorded_api_calls() -> BTreeSet<Grant> {
    let path = repo().join("tests/fixtures/rbac/controller-api-calls.txt");
    let text = fs::read_to_string(&path).expect("the recorded controller API calls");
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [group, resource, verb] => (group.into(), resource.into(), verb.into()),
                _ => panic!("{}: malformed line {line:?}", path.display()),
            },
        )
        .collect()
}

fn grants(rules: &[PolicyRule], out: &mut BTreeSet<Grant>, what: &str) {
    for rule in rules {
        assert!(
            rule.non_resource_urls.is_none(),
            "{what}: nonResourceURLs granted"
        );
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        for field in [&groups, &resources, &rule.verbs] {
            assert!(
                !field.iter().any(|s| s.contains('*')),
                "{what}: wildcard in {rule:?}"
            );
        }
        for group in &groups {
            let group = if group.is_empty() {
                "core"
            } else {
                group.as_str()
            };
            for resource in &resources {
                for verb in &rule.verbs {
                    out.insert((group.into(), resource.clone(), verb.clone()));
                }
            }
        }
    }
}

#[test]
fn rbac_grants_exactly_the_recorded_controller_api_calls() {
    let recorded = recorded_api_calls();
    for values in values_files() {
        let values = values.as_deref();
        let what = label(values);
        let v = effective_values(values);
        let objects = render(values);
        let sa = objects
            .iter()
            .find_map(Object::as_deployment)
            .and_then(|d| d.spec.template.spec.as_ref()?.service_account_name.clone())
            .expect("serviceAccountName");

        let mut granted = BTreeSet::new();
        let mut roles = BTreeSet::new();
        let mut bound = BTreeSet::new();
        for object in &objects {
            let ns = object.metadata().namespace.clone().unwrap_or_default();
            match object {
                Object::ClusterRole(role) => {
                    grants(
                        role.rules.as_deref().unwrap_or_default(),
                        &mut granted,
                        &what,
                    );
                    assert!(
                        role.aggregation_rule.is_none(),
                        "{what}: aggregated ClusterRole"
                    );
                    roles.insert(("ClusterRole", String::new(), object.name()));
                }
                Object::Role(role) => {
                    grants(
                        role.rules.as_deref().unwrap_or_default(),
                        &mut granted,
                        &what,
                    );
                    roles.insert(("Role", ns, object.name()));
                }
                Object::ClusterRoleBinding(b) => {
                    assert!(binds(b.subjects.as_deref(), &sa), "{what}: {}", object.id());
                    bound.insert(("ClusterRole", String::new(), b.role_ref.name.clone()));
                }
                Object::RoleBinding(b) => {
                    assert!(binds(b.subjects.as_deref(), &sa), "{what}: {}", object.id());
                    let kind = if b.role_ref.kind == "Role" {
                        "Role"
                    } else {
                        "ClusterRole"
                    };
                    let scope = if kind == "Role" { ns } else { String::new() };
                    bound.insert((kind, scope, b.role_ref.name.clone()));
                }
                _ => {}
            }
        }
        assert_eq!(
            roles, bound,
            "{what}: every role is bound to the ServiceAccount"
        );

        let missing: Vec<_> = recorded.difference(&granted).collect();
        let extra: Vec<_> = granted.difference(&recorded).collect();
        assert!(
            missing.is_empty(),
            "{what}: the controller's calls not granted: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{what}: granted but never used: {extra:?}"
        );

        let watched = v["watchNamespaces"].as_array().expect("watchNamespaces");
        let cluster_roles = roles.iter().filter(|r| r.0 == "ClusterRole").count();
        // The access-domains ClusterRole (read AccessDomains) exists in every mode.
        if watched.is_empty() {
            assert_eq!(cluster_roles, 2, "{what}: two ClusterRoles");
        } else {
            assert_eq!(
                cluster_roles, 1,
                "{what}: nothing cluster-wide in namespaced mode but reading AccessDomains"
            );
            for ns in watched.iter().filter_map(Value::as_str) {
                let scoped = roles.iter().any(|r| r.0 == "Role" && r.1 == ns);
                assert!(scoped, "{what}: no Role in watched namespace {ns}");
            }
        }
        let local = roles.iter().any(|r| r.0 == "Role" && r.1 == NAMESPACE);
        assert!(
            local,
            "{what}: a Role in the release namespace (leader election)"
        );
    }
}

fn binds(subjects: Option<&[k8s_openapi::api::rbac::v1::Subject]>, sa: &str) -> bool {
    subjects.unwrap_or_default().iter().any(|s| {
        s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(NAMESPACE)
    })
}
