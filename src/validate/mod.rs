//! Validation: the CRD schema (layer a), then the role policy and cross-object rules (layer b).
//!
//! Every problem is a [`Diagnostic`](crate::snapshot::Diagnostic) attached to the object and field it
//! concerns, with a stable machine-readable [`Reason`](crate::snapshot::Reason).

mod claims;
mod domains;
mod names;
mod requests;
mod rules;
pub mod schema;

pub use claims::{secret_claims, secret_conflicts, SecretClaim, SecretUse};
pub use rules::{validate, validate_part, Elsewhere};
