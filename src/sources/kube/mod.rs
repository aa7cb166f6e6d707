//! The Kubernetes front end of `stagegate run --kube`: watches the four kinds
//! and Secrets, builds a [`Snapshot`](crate::snapshot::Snapshot), runs the same
//! validate → plan → apply core as directory mode, and reports back through
//! the Kubernetes API.
//!
//! ```text
//!  watchers (4 kinds, Secrets) ──► Cache ──debounce──► snapshot ──► validate ──► plan ──► apply ──► store
//!        ▲                                              (pure)                              │
//!        │                                                                                  ▼
//!  Lease (only the leader runs this loop)        finalizers ◄── status patches, Events ◄── statuses
//!                                                                   Secrets ◄── KubeSecretSink (create only)
//! ```
//!
//! Phases of one reconcile, each with its own error type wrapped by
//! [`ControllerError`] (whose variant names the Event reason): snapshot
//! (pure, [`snapshot`]), core (validate/plan/apply, [`pipeline`]), report
//! (status, Events, finalizers). No policy or planning code lives here.

pub mod cache;
pub mod config;
pub mod controller;
pub mod crds;
pub mod events;
pub mod failpoint;
pub mod finalizer;
pub mod leader;
pub mod pipeline;
pub mod reconcile;
pub mod scoped;
pub mod sink;
pub mod snapshot;
pub mod status;
mod watch;

pub use config::{KubeArgs, Settings};
pub use controller::{run, RunError, Runtime};

/// Finalizer on User, ApiToken and AccessBinding: the store entry goes before the object.
pub const FINALIZER: &str = "stagegate.dev/cleanup";
/// Label on every Secret stagegate writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "stagegate";
/// Field manager and Event reporting controller.
pub const FIELD_MANAGER: &str = "stagegate";

/// Errors of one reconcile; the variant name is the Event and metrics reason.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// validate/plan/apply failed (store or password hashing).
    #[error("reconcile failed: {0}")]
    CoreFailed(#[from] pipeline::PipelineError),
    /// Writing status, Events or finalizers failed.
    #[error("reporting to the Kubernetes API failed: {0}")]
    ReportFailed(#[from] ReportError),
}

impl ControllerError {
    /// The reason, as an Event reason and a metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            ControllerError::CoreFailed(_) => "CoreFailed",
            ControllerError::ReportFailed(_) => "ReportFailed",
        }
    }
}

/// Errors of the report phase (status patches, finalizer patches).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A request to the API server failed.
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Api {
        /// What was attempted (`patch status`, `remove finalizer`, ...).
        verb: &'static str,
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
}

/// The resource description of one of the four kinds (plural: lowercase kind + `s`).
pub fn api_resource(kind: &str) -> kube::discovery::ApiResource {
    use crate::resources::{API_VERSION, GROUP, VERSION};
    kube::discovery::ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: API_VERSION.into(),
        kind: kind.into(),
        plural: format!("{}s", kind.to_ascii_lowercase()),
    }
}

/// A namespaced dynamic Api for one of the four kinds.
pub fn api_for(
    client: &kube::Client,
    kind: &str,
    namespace: &str,
) -> kube::Api<kube::api::DynamicObject> {
    kube::Api::namespaced_with(client.clone(), namespace, &api_resource(kind))
}

/// Patch parameters of every write (field manager `stagegate`).
pub fn patch_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}
