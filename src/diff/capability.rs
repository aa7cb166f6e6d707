//! Effective permissions: what a principal may do, derived by asking the policy.
//!
//! The role table is never re-encoded here. For every scope mentioned in
//! either tree, every stage and both ownership cases (the principal's own
//! model, someone else's), [`capabilities`] asks [`decide`] and records the
//! answers as [`Capability`] values; then it keeps only the widest scope of
//! each, so that a grant at `acme` is not also listed at `acme/fraud`.

use crate::policy::{
    decide, transition_possible, Action, FromStage, ModelState, Principal, Request, Scope, Stage,
};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

const STAGES: [Stage; 3] = [Stage::Dev, Stage::Staging, Stage::Production];
/// The owner of probe models that are not the principal's own (never a valid username).
const SOMEONE_ELSE: &str = "(someone else)";
/// The name of probe models.
const PROBE_MODEL: &str = "(any model)";

/// One thing a principal may do: an action at a scope, with its stage constraint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// `users:manage`, `tokens:manage`, `models:view`, `models:deploy` or `models:transition`.
    pub action: Action,
    /// For `models:transition`: the stage the model moves from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<FromStage>,
    /// For `models:view`: the stage of the models seen; for `models:deploy` and `models:transition`: the target stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// True when only the principal's own models (those it first deployed) qualify.
    pub own_only: bool,
    /// The widest scope the capability holds at (and everything below it).
    pub scope: Scope,
}

impl Capability {
    /// Whether `self` grants at least what `other` grants.
    pub fn implies(&self, other: &Capability) -> bool {
        self.action == other.action
            && self.from == other.from
            && self.stage == other.stage
            && (!self.own_only || other.own_only)
            && self.scope.covers(&other.scope)
    }

    /// True for a move of models to Production.
    pub fn moves_to_production(&self) -> bool {
        self.action == Action::ModelsTransition && self.stage == Some(Stage::Production)
    }

    /// The action and stage constraint without the scope, e.g. `models:transition Staging→Production (own models)`.
    pub fn what(&self) -> String {
        let mut s = self.action.to_string();
        match (self.from, self.stage) {
            (Some(f), Some(t)) => s.push_str(&format!(" {f}→{t}")),
            (None, Some(t)) => s.push_str(&format!(" {t}")),
            _ => {}
        }
        if self.own_only {
            s.push_str(" (own models)");
        }
        s
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.what(), self.scope)
    }
}

/// Every scope worth probing: the given ones, their ancestors, and global.
pub fn scope_universe<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> BTreeSet<Scope> {
    let mut out = BTreeSet::from([Scope::global()]);
    for s in scopes {
        if let Some(c) = &s.customer {
            out.insert(Scope::customer(c));
        }
        if s.customer.is_some() || s.project.is_none() {
            out.insert(s.clone());
        }
    }
    out
}

/// The principal's effective capabilities over `scopes`, each at its widest scope.
pub fn capabilities(p: &Principal, scopes: &BTreeSet<Scope>) -> BTreeSet<Capability> {
    let mut all = BTreeSet::new();
    for scope in scopes {
        probe_scope(p, scope, &mut all);
    }
    minimize(all)
}

fn probe_scope(p: &Principal, scope: &Scope, out: &mut BTreeSet<Capability>) {
    let cap = |action, from, stage, own_only| Capability {
        action,
        from,
        stage,
        own_only,
        scope: scope.clone(),
    };
    for action in [Action::UsersManage, Action::TokensManage] {
        let req = Request {
            action,
            scope: Some(scope),
            model: None,
            to: None,
        };
        if decide(p, &req).allowed {
            out.insert(cap(action, None, None, false));
        }
    }
    // A model nobody has deployed yet: who may deploy it to Dev.
    let new_model = model(scope, None, None);
    let deploy = Request {
        action: Action::ModelsDeploy,
        scope: None,
        model: Some((&new_model).into()),
        to: Some(Stage::Dev),
    };
    if decide(p, &deploy).allowed {
        out.insert(cap(Action::ModelsDeploy, None, Some(Stage::Dev), false));
    }
    for stage in STAGES {
        let asks = |action, to: Option<Stage>| {
            let allowed_for = |owner: &str| {
                let m = model(scope, Some(owner), Some(stage));
                let req = Request {
                    action,
                    scope: None,
                    model: Some((&m).into()),
                    to,
                };
                decide(p, &req).allowed
            };
            (allowed_for(SOMEONE_ELSE), allowed_for(&p.name))
        };
        match asks(Action::ModelsView, None) {
            (true, _) => out.insert(cap(Action::ModelsView, None, Some(stage), false)),
            (false, true) => out.insert(cap(Action::ModelsView, None, Some(stage), true)),
            _ => false,
        };
        for to in STAGES
            .into_iter()
            .filter(|t| transition_possible(Some(stage), *t))
        {
            let from = Some(FromStage::from(Some(stage)));
            match asks(Action::ModelsTransition, Some(to)) {
                (true, _) => out.insert(cap(Action::ModelsTransition, from, Some(to), false)),
                (false, true) => out.insert(cap(Action::ModelsTransition, from, Some(to), true)),
                _ => false,
            };
        }
    }
}

fn model(scope: &Scope, owner: Option<&str>, stage: Option<Stage>) -> ModelState {
    ModelState {
        name: PROBE_MODEL.to_string(),
        scope: scope.clone(),
        owner: owner.map(str::to_string),
        stage,
    }
}

/// Drops every capability another one in the set implies.
fn minimize(all: BTreeSet<Capability>) -> BTreeSet<Capability> {
    all.iter()
        .filter(|c| !all.iter().any(|o| o != *c && o.implies(c)))
        .cloned()
        .collect()
}

/// The capabilities of `a` that nothing in `b` implies: gained when `a` is after and `b` before.
pub fn not_implied(a: &BTreeSet<Capability>, b: &BTreeSet<Capability>) -> Vec<Capability> {
    a.iter()
        .filter(|c| !b.iter().any(|o| o.implies(c)))
        .cloned()
        .collect()
}
