//! Pieces shared by the four kinds.

use super::names;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every stagegate kind.
pub const GROUP: &str = "stagegate.dev";
/// API version of every stagegate kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "stagegate.dev/v1alpha1";
/// The four kinds, in dependency order.
pub const KINDS: [&str; 4] = ["User", "AccessBinding", "ApiToken", "ModelStageRequest"];
/// The access-domain kinds: they say where the four kinds may be declared, and are not stored.
pub const DOMAIN_KINDS: [&str; 2] = ["AccessDomain", "AccessDelegation"];

/// A status condition in the shape of Kubernetes API conventions (KEP-1623).
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A key in a Secret in the object's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret (a DNS subdomain).
    #[schemars(
        length(min = 1, max = names::DNS_SUBDOMAIN_MAX),
        regex(pattern = names::DNS_SUBDOMAIN_PATTERN)
    )]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(
        length(min = 1, max = names::SECRET_KEY_MAX),
        regex(pattern = names::SECRET_KEY_PATTERN)
    )]
    pub key: String,
}

/// Largest `spec.rotation` / `spec.passwordRotation`: counters people raise by hand stay far
/// below it, and every store and API server integer holds it.
pub const MAX_ROTATION: u32 = 1_000_000;

/// Annotation giving a ModelStageRequest's request time (RFC 3339) in directory mode.
pub const REQUESTED_AT: &str = "stagegate.dev/requested-at";
