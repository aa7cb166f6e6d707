//! Authorization questions (`can-i`, `/v1/authorize`): resolve the model, then ask the policy.

use super::Models;
use crate::policy::{decide, Action, Decision, ModelRef, Principal, Request, Scope, Stage};

/// An authorization question about one action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Question {
    /// The action, e.g. `models:view`.
    pub action: Option<Action>,
    /// Model name, for `models:*`.
    pub model: Option<String>,
    /// Scope of the model or of the management action; picks among models of the same name.
    pub scope: Option<Scope>,
    /// Target stage of `models:transition`.
    pub to: Option<Stage>,
}

/// A question that cannot be answered as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuestionError {
    /// No action given.
    #[error("an action is required (users:manage, tokens:manage, models:view, models:deploy, models:transition)")]
    NoAction,
    /// Several models share the name; a scope is needed.
    #[error("model {name:?} exists at several scopes ({scopes}); pass a scope")]
    Ambiguous {
        /// The model name.
        name: String,
        /// The scopes it exists at.
        scopes: String,
    },
}

/// Finds the model a question is about: an existing one by name (and scope),
/// or a new one (stage `None`) at the given scope, global when none is given.
/// Borrows from `models` and the question; allocates only for the error.
pub fn resolve_model<'a>(
    models: &'a Models,
    name: &'a str,
    scope: Option<&'a Scope>,
) -> Result<ModelRef<'a>, QuestionError> {
    static GLOBAL: Scope = Scope {
        customer: None,
        project: None,
    };
    let mut found = models
        .iter()
        .filter(|(id, _)| id.name == name && scope.is_none_or(|s| &id.scope == s))
        .map(|(_, m)| m);
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one.into()),
        (None, _) => Ok(ModelRef {
            name,
            scope: scope.unwrap_or(&GLOBAL),
            owner: None,
            stage: None,
        }),
        (Some(_), Some(_)) => Err(QuestionError::Ambiguous {
            name: name.to_string(),
            scopes: models
                .iter()
                .filter(|(id, _)| id.name == name)
                .map(|(id, _)| id.scope.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Answers `q` for `principal` against `models`.
pub fn answer<'a>(
    principal: &'a Principal,
    models: &'a Models,
    q: &'a Question,
) -> Result<Decision<'a>, QuestionError> {
    let action = q.action.ok_or(QuestionError::NoAction)?;
    let model = q
        .model
        .as_deref()
        .map(|name| resolve_model(models, name, q.scope.as_ref()))
        .transpose()?;
    let to =
        q.to.or((action == Action::ModelsDeploy).then_some(Stage::Dev));
    Ok(decide(
        principal,
        &Request {
            action,
            scope: q.scope.as_ref(),
            model,
            to,
        },
    ))
}
