//! The `ApiToken` kind: a non-human principal with its own role.

use super::common::{Condition, MAX_ROTATION};
use super::names;
use crate::policy::{Role, Scope};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An API user: a token with its own role, delivered once as a Secret.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "ApiToken",
    namespaced,
    status = "ApiTokenStatus",
    shortname = "sgt",
    category = "stagegate",
    doc = "A non-human principal with its own role; its secret is written once to a Secret.",
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".spec.owner"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!(self.role in ['Developer', 'Deployer']) || (has(self.scope) && has(self.scope.customer))", "message": "Developer and Deployer cannot be bound globally: set scope.customer"}]))]
pub struct ApiTokenSpec {
    /// Admin, Manager, Analyst, Developer or Deployer.
    pub role: Role,
    /// Absent or {} = global; {customer} or {customer, project}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Username accountable for the token; revoking or deleting the owner revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = names::USERNAME_MAX),
        regex(pattern = names::USERNAME_PATTERN)
    )]
    pub owner: Option<String>,
    /// How long a key is valid from issue: e.g. 30d, 720h, at most 10y; or Never.
    #[schemars(length(min = 1, max = 32))]
    pub validity: String,
    /// True revokes the token without deleting it.
    #[serde(default)]
    pub revoked: bool,
    /// Increasing this number revokes the current key and issues a new one.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_ROTATION))]
    pub rotation: u32,
    /// Secret the key is delivered to; defaults to <name>-token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = names::DNS_SUBDOMAIN_MAX),
        regex(pattern = names::DNS_SUBDOMAIN_PATTERN)
    )]
    pub secret_name: Option<String>,
}

/// Lifecycle phase of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TokenPhase {
    /// Issued and usable.
    Active,
    /// Past its validity.
    Expired,
    /// Revoked (by spec, owner or rotation pending).
    Revoked,
    /// The delivered Secret was deleted; rotate to get a new key.
    SecretMissing,
}

/// Observed state of an ApiToken (never the secret).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Public id of the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// When the current key was issued (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    /// When the current key expires (RFC 3339), absent for Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Secret the key was delivered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Active, Expired, Revoked or SecretMissing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TokenPhase>,
}

impl ApiToken {
    /// The Secret the key goes to: spec.secretName or <name>-token.
    pub fn secret_name(&self) -> String {
        self.spec.secret_name.clone().unwrap_or_else(|| {
            names::token_secret_name(self.metadata.name.as_deref().unwrap_or_default())
        })
    }
}

impl ApiTokenSpec {
    /// The scope, global when absent.
    pub fn scope(&self) -> Scope {
        self.scope.clone().unwrap_or_default()
    }
}
