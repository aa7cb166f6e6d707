//! Validation: the CRD schema, then the role policy and cross-object rules.

mod diagnostic;

pub use diagnostic::{Diagnostic, Reason, Severity};
