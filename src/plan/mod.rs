//! Snapshot, diff and plan: from declarations and store state to ordered changes.

mod question;
mod replay;
mod snapshot;

pub use question::{answer, resolve_model, Question, QuestionError};
pub use replay::{
    decide_request, ordered_requests, replay, user_principals, ModelId, Models, RequestDecision,
};
pub use snapshot::{Declared, ObjectKey, SecretData, Snapshot, Source};
