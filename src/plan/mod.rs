//! Snapshot, diff and plan: from declarations and store state to ordered changes.

mod broken;
mod build;
mod change;
mod holders;
pub use holders::{with_base_holders, with_store_holders};
mod question;
mod render;
mod replay;
mod requests;
mod tokens;
mod users;

pub use build::{owner_file, plan, wanted_secrets, PlanContext};
pub use change::{Change, FieldChange, Hidden, Op, Plan, SecretName, TokenFields, UserFields};
pub use question::{answer, answer_among, resolve_among, resolve_model, Question, QuestionError};
pub use render::{describe, marker};
pub use replay::{
    decide_request, declared_principal, ordered_requests, replay, user_principals, ModelId, Models,
    RequestDecision,
};
pub use requests::recorded_history;
pub use users::{invitation_secret, password_fingerprint, password_secret};

#[cfg(test)]
mod tests;
