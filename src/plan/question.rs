//! Authorization questions (`can-i`, `/v1/authorize`): resolve the model, then ask the policy.

use super::{ModelId, Models};
use crate::policy::{decide, Action, Decision, ModelState, Principal, Request, Scope, Stage};

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

/// Finds the model a question is about: an existing one by name (and scope), or a new one at the given scope.
pub fn resolve_model(
    models: &Models,
    name: &str,
    scope: Option<&Scope>,
) -> Result<ModelState, QuestionError> {
    let found: Vec<&ModelState> = models
        .iter()
        .filter(|(id, _)| id.name == name && scope.is_none_or(|s| &id.scope == s))
        .map(|(_, m)| m)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => {
            let scope = scope.cloned().unwrap_or_default();
            let id = ModelId {
                scope: scope.clone(),
                name: name.to_string(),
            };
            Ok(models.get(&id).cloned().unwrap_or(ModelState {
                name: name.to_string(),
                scope,
                owner: None,
                stage: None,
            }))
        }
        many => Err(QuestionError::Ambiguous {
            name: name.to_string(),
            scopes: many
                .iter()
                .map(|m| m.scope.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Answers `q` for `principal` against `models`.
pub fn answer(
    principal: &Principal,
    models: &Models,
    q: &Question,
) -> Result<Decision, QuestionError> {
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
            model: model.as_ref(),
            to,
        },
    ))
}
