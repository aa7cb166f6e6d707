//! stagegate: access control as code for a model deployment platform.
//!
//! ```text
//!  manifests ──► Snapshot ──► validate ──► plan(snapshot, store) ──► Plan ──► apply ──► identity store
//!  (kube watch,               (policy)        pure, deterministic           one transaction,
//!   directory, git trees)                                                    secrets written once
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod apply;
pub mod bootstrap;
pub mod cli;
pub mod diff;
pub mod plan;
pub mod policy;
pub mod render;
pub mod resources;
pub mod secrets;
pub mod snapshot;
pub mod sources;
pub mod store;
pub mod validate;
