//! Access domains in cluster mode: AccessDomain (cluster-scoped) pins
//! namespaces, AccessDelegation hands a customer's project to a sub-domain
//! namespace; the controller on the in-process API server refuses what a
//! domain may not declare and applies the rest.

use crate::controller::{ready, s, wait_for, Cluster};
use serde_json::Value;

const NAMESPACES: &str = "apiVersion: v1
kind: Namespace
metadata: {name: acme}
---
apiVersion: v1
kind: Namespace
metadata: {name: acme-fraud}
---
apiVersion: v1
kind: Namespace
metadata: {name: platform}
";

/// The platform pins namespace acme to customer acme, with acme-fraud as a sub-domain.
const PINS: &str = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDomain
metadata: {name: acme}
spec:
  namespace: acme
  scope: {customer: acme}
  subdomains: [acme-fraud]
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ada, namespace: platform}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: ada-admin, namespace: platform}
spec: {user: ada, role: Admin}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: carol, namespace: acme}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: carol-admin, namespace: acme}
spec:
  user: carol
  role: Admin
  scope: {customer: acme}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: carol-globex, namespace: acme}
spec:
  user: carol
  role: Analyst
  scope: {customer: globex}
";

const TEAM: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: frank, namespace: acme-fraud}
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-admin, namespace: acme-fraud}
spec:
  user: frank
  role: Admin
  scope: {customer: acme, project: fraud}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-global, namespace: acme-fraud}
spec: {user: frank, role: Admin}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-acme, namespace: acme-fraud}
spec:
  user: frank
  role: Admin
  scope: {customer: acme}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {name: frank-churn, namespace: acme-fraud}
spec:
  user: frank
  role: Analyst
  scope: {customer: acme, project: churn}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {name: fraud-wide, namespace: acme-fraud}
spec:
  role: Manager
  scope: {customer: acme}
  validity: 30d
  owner: frank
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: carol-copy, namespace: acme-fraud}
spec: {username: carol, state: Revoked}
";

const DELEGATION: &str = "apiVersion: stagegate.dev/v1alpha1
kind: AccessDelegation
metadata: {name: fraud, namespace: acme}
spec: {project: fraud, domain: acme-fraud}
";

fn apply(c: &Cluster, name: &str, text: &str) {
    let f = c.dir.path().join(name);
    std::fs::write(&f, text).unwrap();
    c.kubectl(&["apply", "-f", s(&f)]);
}

/// (status, reason, message) of the Ready condition once the controller wrote one.
fn outcome(c: &Cluster, kind: &str, ns: &str, name: &str) -> Option<(String, String, String)> {
    let v: Value = c.get_json(&[kind, name, "-n", ns]);
    let r = ready(&v)?;
    Some((
        r["status"].as_str()?.to_string(),
        r["reason"].as_str()?.to_string(),
        r["message"].as_str().unwrap_or_default().to_string(),
    ))
}

#[test]
fn controller_refuses_out_of_domain_grants_and_follows_delegation() {
    let c = Cluster::start();
    apply(&c, "ns.yaml", NAMESPACES);
    apply(&c, "pins.yaml", PINS);
    apply(&c, "team.yaml", TEAM);
    let ctl = c.controller("ctrl-domains", &[]);

    // Before the customer delegates, its sub-domain admits nothing.
    let (st, reason, msg) = wait_for(60, "frank-admin refused", Some(&ctl), || {
        outcome(&c, "accessbinding", "acme-fraud", "frank-admin").filter(|o| o.0 == "False")
    });
    assert_eq!((st.as_str(), reason.as_str()), ("False", "Invalid"));
    assert!(
        msg.contains("OutsideAccessDomain") && msg.contains("namespace acme-fraud"),
        "{msg}"
    );
    // The customer's own domain: in-scope applies, another customer is refused.
    let carol = wait_for(60, "carol-admin", Some(&ctl), || {
        outcome(&c, "accessbinding", "acme", "carol-admin")
    });
    assert_eq!(carol.0, "True", "{carol:?}");
    let other = wait_for(60, "carol-globex", Some(&ctl), || {
        outcome(&c, "accessbinding", "acme", "carol-globex")
    });
    assert!(
        other.0 == "False"
            && other.2.contains("OutsideAccessDomain")
            && other.2.contains("pinned to acme by AccessDomain acme"),
        "{other:?}"
    );

    // The customer delegates project fraud: the team's in-scope binding applies, the rest stays refused.
    apply(&c, "delegation.yaml", DELEGATION);
    let granted = wait_for(60, "frank-admin granted", Some(&ctl), || {
        outcome(&c, "accessbinding", "acme-fraud", "frank-admin").filter(|o| o.0 == "True")
    });
    assert_eq!(granted.1, "Ready");
    for (kind, name) in [
        ("accessbinding", "frank-global"),
        ("accessbinding", "frank-acme"),
        ("accessbinding", "frank-churn"),
        ("apitoken", "fraud-wide"),
        ("user", "carol-copy"),
    ] {
        let (st, reason, msg) = wait_for(60, name, Some(&ctl), || {
            outcome(&c, kind, "acme-fraud", name)
                .filter(|o| o.2.contains("pinned to acme/fraud") || o.1 == "UsernameConflict")
        });
        assert_eq!(st, "False", "{name}: {msg}");
        // A User claiming a username held elsewhere: the holder's claim is its status.
        assert!(
            (reason == "Invalid" && msg.contains("OutsideAccessDomain"))
                || (kind == "user" && reason == "UsernameConflict"),
            "{name}: {reason} {msg}"
        );
    }
    // Nothing of the refused token was issued; the store grants frank only his project.
    assert!(c
        .server
        .kubectl(&["get", "secret", "fraud-wide-token", "-n", "acme-fraud"])
        .stdout
        .is_empty());
    let state = c.store();
    let grants: Vec<String> = state
        .bindings
        .iter()
        .filter(|b| b.username == "frank")
        .map(|b| format!("{} {}", b.role, b.scope))
        .collect();
    assert_eq!(grants, ["Admin acme/fraud"], "{grants:?}");
    // carol's User in her own namespace is untouched by the copy in the project's.
    let carol_user = wait_for(60, "carol user", Some(&ctl), || {
        outcome(&c, "user", "acme", "carol")
    });
    assert_eq!(carol_user.0, "True", "{carol_user:?}");
    c.check_rbac();
    drop(ctl);
}
