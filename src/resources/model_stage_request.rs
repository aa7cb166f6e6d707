//! The `ModelStageRequest` kind: a request to move a model between stages.

use super::common::Condition;
use super::names;
use crate::policy::{FromStage, Scope, Stage};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to move a model between stages; once decided it is a record.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "ModelStageRequest",
    namespaced,
    status = "ModelStageRequestStatus",
    shortname = "sgmsr",
    category = "stagegate",
    doc = "A request to move a model between stages (Dev, Staging, Production). The spec is immutable.",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"From","type":"string","jsonPath":".spec.from"}"#,
    printcolumn = r#"{"name":"To","type":"string","jsonPath":".spec.to"}"#,
    printcolumn = r#"{"name":"By","type":"string","jsonPath":".spec.requestedBy"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "self == oldSelf", "message": "spec is immutable: a stage request is a record once created"}]))]
pub struct ModelStageRequestSpec {
    /// Model name.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// Where the model lives; absent or {} = global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Expected current stage: None for a first deploy, Dev, Staging or Production.
    pub from: FromStage,
    /// Target stage: Dev, Staging or Production.
    pub to: Stage,
    /// Username of the requester.
    #[schemars(
        length(max = names::USERNAME_MAX),
        regex(pattern = names::USERNAME_PATTERN)
    )]
    pub requested_by: String,
    /// Why the move is requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Outcome of a stage request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestPhase {
    /// Not decided yet.
    Pending,
    /// The model moved.
    Applied,
    /// The policy refused.
    Denied,
    /// The model was not in `from` at the request's turn.
    Conflict,
}

/// Observed state of a ModelStageRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStageRequestStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Pending, Applied, Denied or Conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RequestPhase>,
    /// When the request was decided (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Why it was decided so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ModelStageRequestSpec {
    /// The scope, global when absent.
    pub fn scope(&self) -> Scope {
        self.scope.clone().unwrap_or_default()
    }
}

impl ModelStageRequest {
    /// When the request was made: `stagegate.dev/requested-at` when it is a
    /// valid time, else `metadata.creationTimestamp`. Requests are decided in
    /// this order, ties broken by namespace/name (never by file names).
    pub fn requested_at(&self) -> Option<jiff::Timestamp> {
        let annotated = self
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::common::REQUESTED_AT))
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        annotated.or_else(|| self.metadata.creation_timestamp.as_ref().map(|t| t.0))
    }
}
