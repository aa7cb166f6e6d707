//! Cluster mode: a pin with errors closes its namespace instead of leaving it global.

use crate::snapshot::{Declared, Places, Reason, Snapshot, Source};
use serde::de::DeserializeOwned;

fn declared<K: DeserializeOwned>(yaml: &str) -> Declared<K> {
    Declared::new(serde_yaml::from_str(yaml).unwrap(), Source::default())
}

const GLOBAL_ADMIN: &str = "
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: take-over, namespace: team-x}
spec: {user: mallory, role: Admin, scope: {}}
";

/// A cluster-mode snapshot with one global Admin binding declared in `team-x`.
fn cluster(pins: &[&str]) -> Snapshot {
    let mut snap = Snapshot::default();
    snap.domains.places = Places::Namespaces;
    snap.domains.pins = pins.iter().map(|y| declared(y)).collect();
    snap.bindings.push(declared(GLOBAL_ADMIN));
    snap
}

fn binding_refused(snap: &mut Snapshot) -> Option<String> {
    crate::validate::validate(snap);
    snap.diagnostics
        .iter()
        .find(|d| {
            d.is_error()
                && d.reason == Reason::OutsideAccessDomain
                && d.name.as_deref() == Some("take-over")
        })
        .map(|d| d.message.clone())
}

#[test]
fn an_unpinned_namespace_stays_global() {
    assert_eq!(binding_refused(&mut cluster(&[])), None);
}

#[test]
fn a_refused_pin_closes_its_namespace() {
    // Sub-domains on a project pin are refused; before, the namespace then read as global.
    let mut snap = cluster(&["
apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: team-x}
spec: {namespace: team-x, scope: {customer: acme, project: fraud}, subdomains: [team-y]}
"]);
    let why = binding_refused(&mut snap).expect("the global Admin binding is refused");
    assert!(
        why.contains("AccessDomain team-x, which has errors"),
        "{why}"
    );
}

#[test]
fn a_pin_naming_a_folder_in_cluster_mode_closes_nothing_it_cannot_name() {
    // It names no namespace, so there is nothing to close; team-x stays as it was.
    let mut snap = cluster(&["
apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: team-x}
spec: {folder: team-x, scope: {customer: acme}}
"]);
    assert_eq!(binding_refused(&mut snap), None);
    assert!(snap
        .diagnostics
        .iter()
        .any(|d| d.is_error() && d.name.as_deref() == Some("team-x")));
}

#[test]
fn an_unreadable_pin_closes_the_namespace_it_names() {
    let mut snap = cluster(&[]);
    snap.domains.unreadable.push("team-x".into());
    let why = binding_refused(&mut snap).expect("the global Admin binding is refused");
    assert!(why.contains("could not be read"), "{why}");
}

#[test]
fn a_duplicate_pin_leaves_the_first_in_force() {
    let mut snap = cluster(&[
        "
apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: a-first}
spec: {namespace: team-x, scope: {customer: acme}}
",
        "
apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: b-second}
spec: {namespace: team-x, scope: {}}
",
    ]);
    let why = binding_refused(&mut snap).expect("refused by the first pin");
    assert!(why.contains("acme"), "{why}");
}
