//! The decision function: DESIGN §3's table, one grant at a time.

use super::types::{Action, Grant, ModelState, Principal, PrincipalKind, Role, Scope, Stage};
use serde::{Deserialize, Serialize};

/// The question asked of the policy.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// What the principal wants to do.
    pub action: Action,
    /// The scope acted on when there is no model (e.g. `users:manage` at `acme`); global when absent.
    pub scope: Option<&'a Scope>,
    /// The model acted on (`models:*`).
    pub model: Option<&'a ModelState>,
    /// The target stage of `models:transition` (and `Dev` for `models:deploy`).
    pub to: Option<Stage>,
}

/// Machine-readable reason of a decision, stable across releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionCode {
    /// A role covering the scope allows it.
    Allowed,
    /// The principal holds no role covering the scope.
    NoRoleInScope,
    /// A covering role exists but the table does not give it this action.
    RoleDenied,
    /// The role allows it only for models the principal owns.
    NotOwner,
    /// Analysts never see or move Production models.
    ProductionHidden,
    /// Not in the table: only an Admin may do it.
    AdminOnly,
    /// No role may ever do it (e.g. a move to the stage the model is already in).
    TransitionNeverAllowed,
    /// The action needs a model that does not exist.
    ModelMissing,
    /// A first deploy of a model that already exists.
    ModelExists,
    /// The request lacks a model or target stage the action needs.
    Incomplete,
}

/// The policy's answer: allowed or not, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Machine-readable reason.
    pub code: DecisionCode,
    /// Human-readable reason naming the role and scope that decided.
    pub reason: String,
}

impl Decision {
    fn allow(g: &Grant, why: &str) -> Self {
        Decision {
            allowed: true,
            code: DecisionCode::Allowed,
            reason: format!("{} at {} {}", g.role, g.scope, why),
        }
    }
    fn deny(code: DecisionCode, reason: String) -> Self {
        Decision {
            allowed: false,
            code,
            reason,
        }
    }
}

/// Whether `from → to` can ever be allowed to anyone (first deploys go to Dev; no move to the same stage).
pub fn transition_possible(from: Option<Stage>, to: Stage) -> bool {
    match from {
        None => to == Stage::Dev,
        Some(f) => f != to,
    }
}

/// Decides `req` for `principal`: allowed when any of its grants allows it.
pub fn decide(principal: &Principal, req: &Request<'_>) -> Decision {
    let global = Scope::global();
    let target_scope = req.model.map(|m| &m.scope).or(req.scope).unwrap_or(&global);
    if let Some(d) = precheck(req) {
        return d;
    }
    let mut best: Option<Decision> = None;
    for g in principal
        .grants
        .iter()
        .filter(|g| g.role.allowed_at(&g.scope) && g.scope.covers(target_scope))
    {
        // Models are owned by users (the requester of their first deploy); a token named like
        // a user must not inherit that user's "own model" rights.
        let who = (principal.kind == PrincipalKind::User).then_some(principal.name.as_str());
        let d = decide_grant(g, who, req);
        if d.allowed {
            return d;
        }
        // Keep the most telling refusal: a specific rule beats a generic one.
        if best.as_ref().is_none_or(|b| rank(d.code) > rank(b.code)) {
            best = Some(d);
        }
    }
    best.unwrap_or_else(|| {
        Decision::deny(
            DecisionCode::NoRoleInScope,
            format!(
                "{} holds no role at or above scope {}",
                principal.name, target_scope
            ),
        )
    })
}

fn rank(c: DecisionCode) -> u8 {
    match c {
        DecisionCode::ProductionHidden => 5,
        DecisionCode::NotOwner => 4,
        DecisionCode::AdminOnly => 3,
        DecisionCode::RoleDenied => 2,
        _ => 1,
    }
}

/// Refusals that hold whoever asks.
fn precheck(req: &Request<'_>) -> Option<Decision> {
    let incomplete = |what: &str| {
        Some(Decision::deny(
            DecisionCode::Incomplete,
            format!("{} needs {what}", req.action),
        ))
    };
    match req.action {
        Action::UsersManage | Action::TokensManage => None,
        Action::ModelsView => match req.model {
            None => incomplete("a model"),
            Some(m) if m.stage.is_none() => Some(Decision::deny(
                DecisionCode::ModelMissing,
                format!("model {} does not exist", m.name),
            )),
            Some(_) => None,
        },
        Action::ModelsDeploy => match req.model {
            None => incomplete("a model"),
            Some(m) => m.stage.map(|s| {
                Decision::deny(
                    DecisionCode::ModelExists,
                    format!(
                        "model {} already exists (in {s}); deploy is for new models",
                        m.name
                    ),
                )
            }),
        },
        Action::ModelsTransition => {
            let (Some(m), Some(to)) = (req.model, req.to) else {
                return incomplete("a model and a target stage (--to)");
            };
            if !transition_possible(m.stage, to) {
                let from = m.stage.map_or("None".to_string(), |s| s.to_string());
                return Some(Decision::deny(
                    DecisionCode::TransitionNeverAllowed,
                    format!("{from}→{to} is never allowed (first deploys go to Dev; a model cannot move to its own stage)"),
                ));
            }
            None
        }
    }
}

fn decide_grant(g: &Grant, who: Option<&str>, req: &Request<'_>) -> Decision {
    use Role::*;
    use Stage::*;
    let role = g.role;
    let denied = |what: &str| {
        Decision::deny(
            DecisionCode::RoleDenied,
            format!("{role} at {} cannot {what}", g.scope),
        )
    };
    match req.action {
        Action::UsersManage | Action::TokensManage => {
            if role == Admin {
                Decision::allow(g, "manages users, bindings and tokens within its scope")
            } else {
                Decision::deny(
                    DecisionCode::AdminOnly,
                    format!("only an Admin-level role manages users, bindings and tokens; {role} at {} does not", g.scope),
                )
            }
        }
        Action::ModelsView => {
            let m = req.model.expect("checked in precheck");
            let own = who.is_some() && m.owner.as_deref() == who;
            let stage = m.stage.expect("checked in precheck");
            match (role, stage) {
                (Admin, _) => Decision::allow(g, "sees models in all stages"),
                (Manager, Staging | Production) => Decision::allow(g, "sees every Staging and Production model"),
                (Manager, Dev) if own => Decision::allow(g, "sees its own Dev models"),
                (Manager, Dev) => Decision::deny(
                    DecisionCode::NotOwner,
                    format!("Manager at {} sees only its own Dev models; {} is owned by {}", g.scope, m.name, owner(m)),
                ),
                (Analyst, Production) => Decision::deny(
                    DecisionCode::ProductionHidden,
                    format!("an Analyst never sees Production models, even its own ({} is in Production)", m.name),
                ),
                (Analyst, _) if own => Decision::allow(g, "sees its own Dev and Staging models"),
                (Analyst, _) => Decision::deny(
                    DecisionCode::NotOwner,
                    format!("Analyst at {} sees only its own models; {} is owned by {}", g.scope, m.name, owner(m)),
                ),
                (Developer, Dev | Staging) => Decision::allow(g, "sees every Dev and Staging model"),
                (Deployer, Staging | Production) => Decision::allow(g, "sees every Staging and Production model"),
                (Developer | Deployer, s) => denied(&format!("see {s} models")),
            }
        }
        Action::ModelsDeploy => match role {
            Deployer => denied("deploy models to Dev"),
            _ => Decision::allow(g, "deploys its own models to Dev"),
        },
        Action::ModelsTransition => {
            let m = req.model.expect("checked in precheck");
            let to = req.to.expect("checked in precheck");
            let own = who.is_some() && m.owner.as_deref() == who;
            let Some(from) = m.stage else {
                // None → Dev: a first deploy.
                return decide_grant(
                    g,
                    who,
                    &Request {
                        action: Action::ModelsDeploy,
                        ..*req
                    },
                );
            };
            match (from, to, role) {
                (_, _, Admin) => Decision::allow(g, &format!("may move any model {from}→{to}")),
                (Dev, Staging, Developer) => Decision::allow(g, "promotes any model to Staging"),
                (Dev, Staging, Manager | Analyst) if own => Decision::allow(g, "promotes its own models to Staging"),
                (Dev, Staging, Manager | Analyst) => Decision::deny(
                    DecisionCode::NotOwner,
                    format!("{role} at {} promotes only its own models to Staging; {} is owned by {}", g.scope, m.name, owner(m)),
                ),
                (Staging, Production | Dev, Manager | Deployer) => Decision::allow(g, &format!("moves Staging models to {to}")),
                (Staging, Production, Analyst) => Decision::deny(
                    DecisionCode::ProductionHidden,
                    format!("an Analyst may never move a model to Production (Analyst at {})", g.scope),
                ),
                (Dev, Staging, _) | (Staging, Production | Dev, _) => denied(&format!("move models {from}→{to}")),
                _ => Decision::deny(
                    DecisionCode::AdminOnly,
                    format!("{from}→{to} is not in the policy table: Admin only ({role} at {} is not Admin)", g.scope),
                ),
            }
        }
    }
}

fn owner(m: &ModelState) -> &str {
    m.owner.as_deref().unwrap_or("nobody")
}
