//! The access-domain kinds: where declarations may be made, and at which scope.
//!
//! A platform administrator pins a namespace (cluster mode) or a folder of the
//! watched directory (directory mode) to a scope with an [`AccessDomain`];
//! what is declared there may then grant only within that scope. A customer's
//! domain hands one of its projects to a sub-domain with an
//! [`AccessDelegation`]. The rules live in `validate`.

use super::names;
use crate::policy::Scope;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A folder path relative to the watched directory: components that are not
/// empty and do not start with a dot (so never `..`, never a hidden folder).
pub const FOLDER_PATTERN: &str = r"^[A-Za-z0-9_][-A-Za-z0-9_.]*(/[A-Za-z0-9_][-A-Za-z0-9_.]*)*$";

/// The file at the root of a watched directory whose AccessDomains pin folders.
pub const DOMAINS_FILE: &str = "access-domains.yaml";

/// Pins a namespace, or a folder of the watched directory, to a scope.
///
/// Cluster-scoped, so only who may write cluster-wide objects (the platform
/// team) can pin; in directory mode it is read only from
/// [`DOMAINS_FILE`] at the root of the watched directory.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "AccessDomain",
    shortname = "sgad",
    category = "stagegate",
    doc = "Pins a namespace (or, in directory mode, a folder) to a scope: what is declared there may grant only at that scope or below.",
    printcolumn = r#"{"name":"Namespace","type":"string","jsonPath":".spec.namespace"}"#,
    printcolumn = r#"{"name":"Folder","type":"string","jsonPath":".spec.folder"}"#,
    printcolumn = r#"{"name":"Customer","type":"string","jsonPath":".spec.scope.customer"}"#,
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.scope.project"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.namespace) != has(self.folder)", "message": "set exactly one of namespace (cluster mode) and folder (directory mode)"}]))]
pub struct AccessDomainSpec {
    /// The namespace pinned (cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = names::DNS_LABEL_MAX),
        regex(pattern = names::DNS_LABEL_PATTERN)
    )]
    pub namespace: Option<String>,
    /// The folder pinned, relative to the watched directory (directory mode); its sub-folders belong to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = FOLDER_PATTERN))]
    pub folder: Option<String>,
    /// {} = global, {customer} or {customer, project}: the widest scope declarations there may reach.
    pub scope: Scope,
    /// Namespaces a customer-pinned domain may hand to one of its projects with an AccessDelegation (cluster mode; in directory mode the folders inside the pinned folder are its sub-domains). Until delegated, nothing declared in them is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = names::DNS_LABEL_MAX), regex(pattern = names::DNS_LABEL_PATTERN)))]
    pub subdomains: Vec<String>,
}

/// A customer domain hands one of its projects to a sub-domain.
///
/// Declared in a customer-pinned namespace or folder; the customer is the
/// domain's own, so a delegation never reaches another customer.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "AccessDelegation",
    namespaced,
    shortname = "sgdel",
    category = "stagegate",
    doc = "Declared in a customer-pinned domain: the sub-domain (a namespace the customer's AccessDomain lists, or a folder inside the customer's folder) administers one project of that customer.",
    printcolumn = r#"{"name":"Project","type":"string","jsonPath":".spec.project"}"#,
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.domain"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessDelegationSpec {
    /// The project of the declaring domain's customer.
    #[schemars(
        length(min = 1, max = names::DNS_LABEL_MAX),
        regex(pattern = names::DNS_LABEL_PATTERN)
    )]
    pub project: String,
    /// The sub-domain: a namespace (cluster mode) or a folder relative to the watched directory (directory mode).
    #[schemars(length(min = 1, max = 1024), regex(pattern = FOLDER_PATTERN))]
    pub domain: String,
}
