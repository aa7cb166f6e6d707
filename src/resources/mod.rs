//! The four custom resource kinds of DESIGN §2 (`stagegate.dev/v1alpha1`).
//!
//! The CRD YAML under `crds/` and in the chart is generated from these types
//! (`stagegate crds`); a test fails when the files drift.

mod access_binding;
mod access_domain;
mod api_token;
mod common;
mod model_stage_request;
pub mod names;
mod user;
mod validity;

pub use access_binding::{AccessBinding, AccessBindingSpec, AccessBindingStatus};
pub use access_domain::{
    AccessDelegation, AccessDelegationSpec, AccessDomain, AccessDomainSpec, DOMAINS_FILE,
    FOLDER_PATTERN,
};
pub use api_token::{ApiToken, ApiTokenSpec, ApiTokenStatus, TokenPhase};
pub use common::{
    Condition, SecretKeyRef, API_VERSION, DOMAIN_KINDS, GROUP, KINDS, MAX_ROTATION, REQUESTED_AT,
    VERSION,
};
pub use model_stage_request::{
    ModelStageRequest, ModelStageRequestSpec, ModelStageRequestStatus, RequestPhase,
};
pub use user::{InvitationSpec, User, UserPhase, UserSpec, UserState, UserStatus};
pub use validity::Validity;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

/// The CRDs (the four kinds and the two access-domain kinds) in the order of their file names under `crds/` (so
/// `stagegate crds | diff - <(cat crds/*.yaml)` is empty).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut all = vec![
        with_derived_name_rule(
            with_derived_name_rule(
                User::crd(),
                "has(self.spec.passwordSecretRef) || has(self.spec.invitation)",
                "without spec.passwordSecretRef or spec.invitation",
                names::PASSWORD_SECRET_SUFFIX,
            ),
            "!has(self.spec.invitation)",
            "with spec.invitation",
            names::INVITATION_SECRET_SUFFIX,
        ),
        AccessBinding::crd(),
        with_derived_name_rule(
            ApiToken::crd(),
            "has(self.spec.secretName)",
            "without spec.secretName",
            names::TOKEN_SECRET_SUFFIX,
        ),
        ModelStageRequest::crd(),
        AccessDomain::crd(),
        AccessDelegation::crd(),
    ];
    all.sort_by_key(crd_file_name);
    all
}

/// Adds a root CEL rule (the only place a CRD may read `metadata.name`) that keeps
/// `<name><suffix>` within the 253-character limit unless the CEL condition `exempt` holds
/// (the object then names no Secret `<name><suffix>`); `when` says in words when it does.
fn with_derived_name_rule(
    mut crd: CustomResourceDefinition,
    exempt: &str,
    when: &str,
    suffix: &str,
) -> CustomResourceDefinition {
    let max = names::max_name_with_suffix(suffix);
    let rule = ValidationRule {
        rule: format!("{exempt} || size(self.metadata.name) <= {max}"),
        message: Some(format!(
            "metadata.name must be at most {max} characters: {when} it names Secret <name>{suffix}, at most {} characters",
            names::DNS_SUBDOMAIN_MAX
        )),
        ..ValidationRule::default()
    };
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            root.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(rule.clone());
        }
    }
    crd
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

#[cfg(test)]
mod derived_name_rule_tests {
    use super::*;

    /// The root CEL rules of the CRD of `kind`.
    fn root_rules(kind: &str) -> Vec<String> {
        let crd = crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap();
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| s.x_kubernetes_validations.as_ref())
            .map(|rules| rules.iter().map(|r| r.rule.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_secret_a_user_or_token_names_after_itself_bounds_its_name() {
        let user = root_rules("User");
        for (exempt, suffix) in [
            (
                "has(self.spec.passwordSecretRef) || has(self.spec.invitation)",
                names::PASSWORD_SECRET_SUFFIX,
            ),
            (
                "!has(self.spec.invitation)",
                names::INVITATION_SECRET_SUFFIX,
            ),
        ] {
            let max = names::DNS_SUBDOMAIN_MAX - suffix.len();
            let rule = format!("{exempt} || size(self.metadata.name) <= {max}");
            assert!(user.contains(&rule), "{rule} not in {user:?}");
        }
        let token = root_rules("ApiToken");
        let max = names::DNS_SUBDOMAIN_MAX - names::TOKEN_SECRET_SUFFIX.len();
        assert!(token.contains(&format!(
            "has(self.spec.secretName) || size(self.metadata.name) <= {max}"
        )));
    }
}
