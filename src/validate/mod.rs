//! Validation: the CRD schema (layer a), then the role policy and cross-object rules (layer b).
//!
//! Every problem is a [`Diagnostic`] attached to the object and field it
//! concerns, with a stable machine-readable [`Reason`].

mod diagnostic;
mod rules;
pub mod schema;

pub use diagnostic::{Diagnostic, Reason, Severity};
pub use rules::validate;
