//! Comparing two sets of grants by what they allow, not by how they are
//! written: "does this change take any capability away?" is answered by the
//! decision function itself, so it can never disagree with the table.
//!
//! A decision depends on the target scope only through `Scope::covers`, and
//! otherwise on the action, the model's stage, whether the principal owns it
//! and the target stage. So asking every such question at the scope of each
//! grant in `before` finds any loss: if `after` allows a question at the
//! scope `S` of a grant, the grant of `after` that allows it covers every
//! scope below `S` too.

use super::decide::{decide, ModelRef, Request};
use super::types::{Action, Grant, ModelState, Principal, Scope, Stage};
use std::fmt;

/// One thing a principal could do before and cannot after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostCapability {
    /// The action.
    pub action: Action,
    /// Where.
    pub scope: Scope,
    /// The model situation that was probed (`Staging model owned by someone else → Production`), if any.
    pub detail: Option<String>,
}

impl fmt::Display for LostCapability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.action, self.scope)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Every question whose answer can differ between grant sets, asked at `scope` by `who`.
fn questions(who: &str, scope: &Scope) -> Vec<(Action, Option<ModelState>, Option<Stage>)> {
    let mut out = vec![
        (Action::UsersManage, None, None),
        (Action::TokensManage, None, None),
    ];
    let stages = [
        None,
        Some(Stage::Dev),
        Some(Stage::Staging),
        Some(Stage::Production),
    ];
    for owner in [Some(who.to_string()), None] {
        for stage in stages {
            let model = ModelState {
                name: "probe".into(),
                scope: scope.clone(),
                owner: owner.clone(),
                stage,
            };
            match stage {
                None => out.push((Action::ModelsDeploy, Some(model.clone()), Some(Stage::Dev))),
                Some(_) => out.push((Action::ModelsView, Some(model.clone()), None)),
            }
            for to in [Stage::Dev, Stage::Staging, Stage::Production] {
                out.push((Action::ModelsTransition, Some(model.clone()), Some(to)));
            }
        }
    }
    out
}

fn describe(who: &str, model: &ModelState, to: Option<Stage>) -> String {
    let owned = if model.owner.as_deref() == Some(who) {
        "own"
    } else {
        "someone else's"
    };
    let stage = model.stage.map_or("new".to_string(), |s| s.to_string());
    match to {
        Some(to) => format!("{owned} {stage} model → {to}"),
        None => format!("{owned} {stage} model"),
    }
}

/// The first capability user `who` holds with `before` but not with `after`; `None` when
/// `after` allows everything `before` does (an addition, a widening, or no change).
pub fn capability_lost(who: &str, before: &[Grant], after: &[Grant]) -> Option<LostCapability> {
    let was = Principal::user(who, before.to_vec());
    let now = Principal::user(who, after.to_vec());
    let mut scopes: Vec<&Scope> = before.iter().map(|g| &g.scope).collect();
    scopes.sort();
    scopes.dedup();
    for scope in scopes {
        for (action, model, to) in questions(who, scope) {
            let req = Request {
                action,
                scope: Some(scope),
                model: model.as_ref().map(ModelRef::from),
                to,
            };
            if decide(&was, &req).allowed && !decide(&now, &req).allowed {
                return Some(LostCapability {
                    action,
                    scope: scope.clone(),
                    detail: model.as_ref().map(|m| describe(who, m, to)),
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Role;

    fn g(role: Role, scope: Scope) -> Grant {
        Grant { role, scope }
    }

    #[test]
    fn lowering_narrowing_and_removing_lose_capabilities() {
        let admin = [g(Role::Admin, Scope::global())];
        let lost = capability_lost("ann", &admin, &[g(Role::Manager, Scope::global())]).unwrap();
        assert_eq!(lost.action, Action::UsersManage);
        assert_eq!(lost.to_string(), "users:manage at global");
        assert!(
            capability_lost("ann", &admin, &[g(Role::Admin, Scope::customer("acme"))]).is_some()
        );
        assert!(capability_lost("ann", &admin, &[]).is_some());
        // Manager → Analyst loses sight of Production; Developer → Deployer loses Dev.
        let m = [g(Role::Manager, Scope::customer("acme"))];
        assert!(capability_lost("ann", &m, &[g(Role::Analyst, Scope::customer("acme"))]).is_some());
        let d = [g(Role::Developer, Scope::project("acme", "fraud"))];
        assert!(capability_lost(
            "ann",
            &d,
            &[g(Role::Deployer, Scope::project("acme", "fraud"))]
        )
        .is_some());
    }

    #[test]
    fn additions_widenings_and_equivalent_rewrites_lose_nothing() {
        let m = [g(Role::Manager, Scope::customer("acme"))];
        assert_eq!(
            capability_lost("ann", &m, &[g(Role::Admin, Scope::customer("acme"))]),
            None
        );
        assert_eq!(
            capability_lost("ann", &m, &[g(Role::Manager, Scope::global())]),
            None
        );
        let both = [m[0].clone(), g(Role::Analyst, Scope::customer("beta"))];
        assert_eq!(capability_lost("ann", &m, &both), None);
        // A project grant folded into a wider one of the same role.
        let narrow_and_wide = [g(Role::Manager, Scope::project("acme", "x")), m[0].clone()];
        assert_eq!(capability_lost("ann", &narrow_and_wide, &m), None);
        // A Developer binding that can never apply (global) is not a capability.
        assert_eq!(
            capability_lost("ann", &[g(Role::Developer, Scope::global())], &[]),
            None
        );
    }
}
