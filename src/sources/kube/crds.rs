//! Start-up check that the CRDs (the four kinds and the two access-domain kinds) are served, through discovery (no RBAC needed).

use crate::resources::{GROUP, VERSION};
use kube::Client;

/// The CRDs are missing or discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// Some kinds are not served.
    #[error("the stagegate CRDs are not installed (missing: {0}); install them with:\n  stagegate crds | kubectl apply -f -")]
    Missing(String),
    /// Discovery failed.
    #[error("cannot reach the Kubernetes API for discovery: {0}")]
    Discovery(#[source] kube::Error),
}

/// Checks that `stagegate.dev/v1alpha1` serves every kind the controller watches.
pub async fn check(client: &Client) -> Result<(), CrdError> {
    let wanted = [
        "users",
        "accessbindings",
        "apitokens",
        "modelstagerequests",
        "accessdomains",
        "accessdelegations",
    ];
    let list = match client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
    {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(CrdError::Missing(wanted.join(", ")))
        }
        Err(e) => return Err(CrdError::Discovery(e)),
    };
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !list.resources.iter().any(|r| r.name == *w))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CrdError::Missing(missing.join(", ")))
    }
}
