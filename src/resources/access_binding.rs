//! The `AccessBinding` kind: one role for one user at one scope.

use super::common::Condition;
use super::names;
use crate::policy::{Role, Scope};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Grants one role to one user at one scope.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "AccessBinding",
    namespaced,
    status = "AccessBindingStatus",
    shortname = "sgab",
    category = "stagegate",
    doc = "Grants one role to one user at one scope (global, customer or project).",
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.user"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.role"}"#,
    printcolumn = r#"{"name":"Customer","type":"string","jsonPath":".spec.scope.customer"}"#,
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.scope.project"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!(self.role in ['Developer', 'Deployer']) || (has(self.scope) && has(self.scope.customer))", "message": "Developer and Deployer cannot be bound globally: set scope.customer"}]))]
pub struct AccessBindingSpec {
    /// Username the role is granted to.
    #[schemars(
        length(max = names::USERNAME_MAX),
        regex(pattern = names::USERNAME_PATTERN)
    )]
    pub user: String,
    /// Admin, Manager, Analyst, Developer or Deployer.
    pub role: Role,
    /// Absent or {} = global; {customer} or {customer, project}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

/// Observed state of an AccessBinding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessBindingStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl AccessBindingSpec {
    /// The scope, global when absent.
    pub fn scope(&self) -> Scope {
        self.scope.clone().unwrap_or_default()
    }
}
