//! The role policy of DESIGN §3: roles, scopes, actions and decisions.
//!
//! Pure: no I/O, no clock, no Kubernetes. Every front end (CLI, HTTP API,
//! controller, PR diff) asks this module, so the table lives in one place.

mod compare;
mod decide;
mod types;

pub use compare::{capability_lost, LostCapability};
pub use decide::{decide, transition_possible, Decision, DecisionCode, ModelRef, Request};
pub(crate) use types::Label;
pub use types::{
    Action, FromStage, Grant, ModelState, PackedModel, Principal, PrincipalKind, Role, Scope,
    ScopeError, Stage,
};

#[cfg(test)]
mod tests;
