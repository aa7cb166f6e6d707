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
    resolve_among(models.values(), name, scope)
}

/// [`resolve_model`] among `candidates`: any models, of which those named `name` count. The API
/// index hands over only the models of that name (with their packed scopes and owners), so the
/// answer costs no scan of every model.
pub fn resolve_among<'a, I>(
    candidates: I,
    name: &'a str,
    scope: Option<&'a Scope>,
) -> Result<ModelRef<'a>, QuestionError>
where
    I: IntoIterator,
    I::Item: Into<ModelRef<'a>>,
    I::IntoIter: Clone,
{
    static GLOBAL: Scope = Scope {
        customer: None,
        project: None,
    };
    let candidates = candidates.into_iter().map(Into::into);
    let mut found = candidates
        .clone()
        // The API index names its candidates with the question's own string: no bytes to compare.
        .filter(|m: &ModelRef<'a>| {
            (std::ptr::eq(m.name, name) || m.name == name) && scope.is_none_or(|s| m.is_at(s))
        });
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Ok(ModelRef::new(name, scope.unwrap_or(&GLOBAL), None, None)),
        (Some(_), Some(_)) => Err(QuestionError::Ambiguous {
            name: name.to_string(),
            scopes: candidates
                .filter(|m| m.name == name)
                .map(|m| m.scope.to_string())
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
    answer_among(principal, models.values(), q)
}

/// [`answer`] with the question's model resolved among `candidates` (see [`resolve_among`]).
pub fn answer_among<'a, I>(
    principal: &'a Principal,
    candidates: I,
    q: &'a Question,
) -> Result<Decision<'a>, QuestionError>
where
    I: IntoIterator,
    I::Item: Into<ModelRef<'a>>,
    I::IntoIter: Clone,
{
    let action = q.action.ok_or(QuestionError::NoAction)?;
    let model = q
        .model
        .as_deref()
        .map(|name| resolve_among(candidates, name, q.scope.as_ref()))
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
