//! Pieces shared by the four kinds.

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

/// A status condition in the shape of Kubernetes API conventions (KEP-1623).
pub type Condition = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// A key in a Secret in the object's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Annotation giving a ModelStageRequest's request time (RFC 3339) in directory mode.
pub const REQUESTED_AT: &str = "stagegate.dev/requested-at";
