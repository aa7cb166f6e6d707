//! Stage requests replayed in request order against the policy.
//!
//! Requests are events: each is decided once, at its turn, against the model
//! states left by the requests before it. `can-i`, `plan`/`apply` and `diff`
//! all decide requests here.

use crate::policy::{
    decide, Action, FromStage, Grant, ModelState, Principal, Request, Scope, Stage,
};
use crate::resources::{ModelStageRequest, RequestPhase, UserState};
use crate::snapshot::{Declared, ObjectKey, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A model's identity: its scope and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelId {
    /// Where the model lives.
    pub scope: Scope,
    /// Model name.
    pub name: String,
}

/// Model states by identity.
pub type Models = BTreeMap<ModelId, ModelState>;

/// How one request was decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDecision {
    /// The request.
    pub key: ObjectKey,
    /// The model it concerns.
    pub model: ModelId,
    /// Expected stage.
    pub from: FromStage,
    /// Target stage.
    pub to: Stage,
    /// Requester's username.
    pub requested_by: String,
    /// Applied, Denied or Conflict.
    pub phase: RequestPhase,
    /// Why.
    pub message: String,
}

/// Active, valid users of the snapshot with their valid bindings, by username.
pub fn user_principals(snap: &Snapshot) -> BTreeMap<String, Principal> {
    let invalid = snap.invalid_keys();
    let mut out: BTreeMap<String, Principal> = snap
        .users
        .iter()
        .filter(|u| u.object.spec.state == UserState::Active && !invalid.contains(&u.key()))
        .map(|u| {
            (
                u.object.username(),
                Principal::user(&u.object.username(), Vec::new()),
            )
        })
        .collect();
    let mut grants: BTreeMap<String, Vec<Grant>> =
        out.keys().map(|k| (k.clone(), Vec::new())).collect();
    for b in snap.bindings.iter().filter(|b| !invalid.contains(&b.key())) {
        if let Some(p) = grants.get_mut(&b.object.spec.user) {
            p.push(Grant {
                role: b.object.spec.role,
                scope: b.object.spec.scope(),
            });
        }
    }
    for (name, mut g) in grants {
        g.sort();
        g.dedup();
        if let Some(p) = out.get_mut(&name) {
            p.set_grants(g);
        }
    }
    out
}

/// The principal called `name` in the snapshot: an active user with its grants, else a valid
/// ApiToken of that name that is not revoked and whose owner (if declared) is not revoked.
pub fn declared_principal(snap: &Snapshot, name: &str) -> Option<Principal> {
    if let Some(user) = user_principals(snap).remove(name) {
        return Some(user);
    }
    let invalid = snap.invalid_keys();
    // Apply revokes the tokens of a revoked owner, so the store has no such principal either.
    let revoked_owners: BTreeSet<String> = snap
        .users
        .iter()
        .filter(|u| u.object.spec.state == UserState::Revoked && !invalid.contains(&u.key()))
        .map(|u| u.object.username())
        .collect();
    snap.tokens
        .iter()
        .filter(|t| t.object.metadata.name.as_deref() == Some(name) && !t.object.spec.revoked)
        .filter(|t| {
            let owner = t.object.spec.owner.as_ref();
            owner.is_none_or(|o| !revoked_owners.contains(o))
        })
        .find(|t| !invalid.contains(&t.key()))
        .map(|t| {
            let grant = Grant {
                role: t.object.spec.role,
                scope: t.object.spec.scope(),
            };
            Principal::token(name, grant)
        })
}

/// The snapshot's valid requests in the order they are decided.
///
/// Requests with a time come first, in time order; then those without one.
/// Ties are broken by namespace/name, a property of the request: renaming or
/// moving its file never changes the order (and so never a model's stage).
pub fn ordered_requests(snap: &Snapshot) -> Vec<&Declared<ModelStageRequest>> {
    let invalid = snap.invalid_keys();
    let mut reqs: Vec<_> = snap
        .requests
        .iter()
        .filter(|r| !invalid.contains(&r.key()))
        .collect();
    reqs.sort_by_cached_key(|r| {
        let t = r.object.requested_at();
        (t.is_none(), t, r.key())
    });
    reqs
}

/// Decides one request against `models` (updated when applied) and `principals`.
pub fn decide_request(
    models: &mut Models,
    principals: &BTreeMap<String, Principal>,
    req: &Declared<ModelStageRequest>,
) -> RequestDecision {
    let spec = &req.object.spec;
    let id = ModelId {
        scope: spec.scope(),
        name: spec.model.clone(),
    };
    let current = models.get(&id).cloned().unwrap_or(ModelState {
        name: id.name.clone(),
        scope: id.scope.clone(),
        owner: None,
        stage: None,
    });
    let result = |phase, message: String| RequestDecision {
        key: req.key(),
        model: id.clone(),
        from: spec.from,
        to: spec.to,
        requested_by: spec.requested_by.clone(),
        phase,
        message,
    };
    let Some(principal) = principals.get(&spec.requested_by) else {
        return result(
            RequestPhase::Denied,
            format!("requester {:?} is not an active user", spec.requested_by),
        );
    };
    if FromStage::from(current.stage) != spec.from {
        let now = FromStage::from(current.stage);
        return result(
            RequestPhase::Conflict,
            format!(
                "model {} is in {now}, not in {} as the request expects",
                id.name, spec.from
            ),
        );
    }
    let action = if current.stage.is_none() {
        Action::ModelsDeploy
    } else {
        Action::ModelsTransition
    };
    let decision = decide(
        principal,
        &Request {
            action,
            scope: None,
            model: Some((&current).into()),
            to: Some(spec.to),
        },
    );
    if !decision.allowed {
        return result(RequestPhase::Denied, decision.reason());
    }
    let reason = decision.reason();
    let owner = current
        .owner
        .clone()
        .or_else(|| Some(spec.requested_by.clone()));
    models.insert(
        id.clone(),
        ModelState {
            owner,
            stage: Some(spec.to),
            ..current
        },
    );
    result(RequestPhase::Applied, reason)
}

/// Decides every valid request of `snap` in order, starting from `models`, skipping those in `decided`.
pub fn replay(
    snap: &Snapshot,
    models: &mut Models,
    decided: &BTreeSet<ObjectKey>,
) -> Vec<RequestDecision> {
    let principals = user_principals(snap);
    ordered_requests(snap)
        .into_iter()
        .filter(|r| !decided.contains(&r.key()))
        .map(|r| decide_request(models, &principals, r))
        .collect()
}
