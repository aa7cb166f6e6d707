//! The four custom resource kinds of DESIGN §2 (`stagegate.dev/v1alpha1`).
//!
//! The CRD YAML under `crds/` and in the chart is generated from these types
//! (`stagegate crds`); a test fails when the files drift.

mod access_binding;
mod api_token;
mod common;
mod model_stage_request;
mod user;
mod validity;

pub use access_binding::{AccessBinding, AccessBindingSpec, AccessBindingStatus};
pub use api_token::{ApiToken, ApiTokenSpec, ApiTokenStatus, TokenPhase};
pub use common::{Condition, SecretKeyRef, API_VERSION, GROUP, KINDS, REQUESTED_AT, VERSION};
pub use model_stage_request::{
    ModelStageRequest, ModelStageRequestSpec, ModelStageRequestStatus, RequestPhase,
};
pub use user::{User, UserPhase, UserSpec, UserState, UserStatus};
pub use validity::Validity;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The four CRDs in the order of their file names under `crds/` (so
/// `stagegate crds | diff - <(cat crds/*.yaml)` is empty).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut all = vec![
        User::crd(),
        AccessBinding::crd(),
        ApiToken::crd(),
        ModelStageRequest::crd(),
    ];
    all.sort_by_key(crd_file_name);
    all
}

/// The CRDs as one multi-document YAML, as `stagegate crds` prints it.
pub fn crds_yaml() -> String {
    crds().iter().map(crd_yaml).collect::<Vec<_>>().join("")
}

/// One CRD as a YAML document starting with `---`.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    format!(
        "---\n{}",
        serde_yaml::to_string(crd).expect("a CRD always serializes")
    )
}

/// The file name a CRD is kept under in `crds/`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("crd"))
}
