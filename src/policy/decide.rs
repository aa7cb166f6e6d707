//! The decision function: DESIGN §3's table, one grant at a time.
//!
//! Deciding allocates nothing: a [`Decision`] records which rule decided and
//! borrows what it needs to say why; the human-readable reason is built only
//! when a caller asks for it ([`Decision::reason`]).

use super::types::{Action, ModelState, PackedModel, Principal, PrincipalKind, Role, Scope, Stage};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The global scope, for questions that name none.
static GLOBAL: Scope = Scope {
    customer: None,
    project: None,
};

/// What the policy needs to know about a model, borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelRef<'a> {
    /// Model name.
    pub name: &'a str,
    /// Where the model lives.
    pub scope: &'a Scope,
    /// Who first deployed it.
    pub owner: Option<&'a str>,
    /// Current stage; `None` when the model does not exist yet.
    pub stage: Option<Stage>,
    /// The scope and owner packed (see [`PackedModel`]), when the caller keeps them.
    pub(crate) packed: Option<&'a PackedModel>,
}

impl<'a> ModelRef<'a> {
    /// A model not (yet) in any store: `stage` none means it does not exist.
    pub fn new(
        name: &'a str,
        scope: &'a Scope,
        owner: Option<&'a str>,
        stage: Option<Stage>,
    ) -> Self {
        ModelRef {
            name,
            scope,
            owner,
            stage,
            packed: None,
        }
    }

    /// `m` named `name` (the same name, from wherever the caller holds it), with its packed
    /// scope and owner: deciding then reads the model's strings only to say why.
    pub fn packed(name: &'a str, m: &'a ModelState, packed: Option<&'a PackedModel>) -> Self {
        ModelRef {
            name,
            scope: &m.scope,
            owner: m.owner.as_deref(),
            stage: m.stage,
            packed,
        }
    }

    /// Whether the model lives at `scope`.
    pub fn is_at(&self, scope: &Scope) -> bool {
        match self.packed {
            Some(p) => p.is_at(scope),
            None => self.scope == scope,
        }
    }
}

impl<'a> From<&'a ModelState> for ModelRef<'a> {
    fn from(m: &'a ModelState) -> Self {
        ModelRef::new(&m.name, &m.scope, m.owner.as_deref(), m.stage)
    }
}

/// The question asked of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// What the principal wants to do.
    pub action: Action,
    /// The scope acted on when there is no model (e.g. `users:manage` at `acme`); global when absent.
    pub scope: Option<&'a Scope>,
    /// The model acted on (`models:*`).
    pub model: Option<ModelRef<'a>>,
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

/// Which row of the policy table (or which precheck) decided: with the grant
/// and request a [`Decision`] borrows, enough to say why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    ManagesUsers,
    OnlyAdminManages,
    SeesAllStages,
    SeesStagingAndProduction,
    SeesOwnDev,
    ManagerOwnDevOnly,
    AnalystNeverProduction,
    SeesOwnDevAndStaging,
    AnalystOwnOnly,
    SeesDevAndStaging,
    CannotSeeStage,
    DeploysOwn,
    DeployerCannotDeploy,
    MovesAny,
    PromotesAny,
    PromotesOwn,
    PromotesOwnOnly,
    MovesStaging,
    AnalystNeverToProduction,
    CannotMove,
    NotInTable,
    NoRole,
    Incomplete,
    ModelMissing,
    ModelExists,
    NeverAllowed,
}

/// The policy's answer: allowed or not, the stable code, and (on request) why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Machine-readable reason.
    pub code: DecisionCode,
    rule: Rule,
    /// The place of the grant that decided among the principal's grants: read only to say why,
    /// so deciding does not read where the grants are.
    grant: Option<usize>,
    principal: &'a Principal,
    req: Request<'a>,
}

impl Decision<'_> {
    /// Human-readable reason naming the role and scope that decided (built on each call).
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// The scope acted on: the model's, else the request's, else global.
    fn target(&self) -> &Scope {
        target(&self.req)
    }
}

/// The scope `req` acts on: the model's, else the request's, else global.
fn target<'a>(req: &Request<'a>) -> &'a Scope {
    req.model.map(|m| m.scope).or(req.scope).unwrap_or(&GLOBAL)
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let req = &self.req;
        let action = req.action;
        let name = req.model.map_or("", |m| m.name);
        let owner = req.model.and_then(|m| m.owner).unwrap_or("nobody");
        // Rendered only by the rules that name them: no string is built per reason.
        let from = StageOr(req.model.and_then(|m| m.stage), "None");
        let to = StageOr(req.to, "?");
        let stage = req.model.and_then(|m| m.stage);
        let Some(g) = self.grant.and_then(|i| self.principal.grants().get(i)) else {
            return match self.rule {
                Rule::Incomplete => match action {
                    Action::ModelsTransition => write!(f, "{action} needs a model and a target stage (--to)"),
                    _ => write!(f, "{action} needs a model"),
                },
                Rule::ModelMissing => write!(f, "model {name} does not exist"),
                Rule::ModelExists => write!(
                    f,
                    "model {name} already exists (in {from}); deploy is for new models"
                ),
                Rule::NeverAllowed => write!(f, "{from}→{to} is never allowed (first deploys go to Dev; a model cannot move to its own stage)"),
                _ => write!(
                    f,
                    "{} holds no role at or above scope {}",
                    self.principal.name,
                    self.target()
                ),
            };
        };
        let (role, scope) = (g.role, &g.scope);
        let allow = |f: &mut fmt::Formatter<'_>, why: &dyn fmt::Display| {
            write!(f, "{role} at {scope} {why}")
        };
        match self.rule {
            Rule::ManagesUsers => allow(f, &"manages users, bindings and tokens within its scope"),
            Rule::OnlyAdminManages => write!(f, "only an Admin-level role manages users, bindings and tokens; {role} at {scope} does not"),
            Rule::SeesAllStages => allow(f, &"sees models in all stages"),
            Rule::SeesStagingAndProduction => allow(f, &"sees every Staging and Production model"),
            Rule::SeesOwnDev => allow(f, &"sees its own Dev models"),
            Rule::ManagerOwnDevOnly => write!(f, "Manager at {scope} sees only its own Dev models; {name} is owned by {owner}"),
            Rule::AnalystNeverProduction => write!(f, "an Analyst never sees Production models, even its own ({name} is in Production)"),
            Rule::SeesOwnDevAndStaging => allow(f, &"sees its own Dev and Staging models"),
            Rule::AnalystOwnOnly => write!(f, "Analyst at {scope} sees only its own models; {name} is owned by {owner}"),
            Rule::SeesDevAndStaging => allow(f, &"sees every Dev and Staging model"),
            Rule::CannotSeeStage => write!(f, "{role} at {scope} cannot see {} models", StageOr(stage, "?")),
            Rule::DeploysOwn => allow(f, &"deploys its own models to Dev"),
            Rule::DeployerCannotDeploy => write!(f, "{role} at {scope} cannot deploy models to Dev"),
            Rule::MovesAny => allow(f, &format_args!("may move any model {from}→{to}")),
            Rule::PromotesAny => allow(f, &"promotes any model to Staging"),
            Rule::PromotesOwn => allow(f, &"promotes its own models to Staging"),
            Rule::PromotesOwnOnly => write!(f, "{role} at {scope} promotes only its own models to Staging; {name} is owned by {owner}"),
            Rule::MovesStaging => allow(f, &format_args!("moves Staging models to {to}")),
            Rule::AnalystNeverToProduction => write!(f, "an Analyst may never move a model to Production (Analyst at {scope})"),
            Rule::CannotMove => write!(f, "{role} at {scope} cannot move models {from}→{to}"),
            Rule::NotInTable => write!(f, "{from}→{to} is not in the policy table: Admin only ({role} at {scope} is not Admin)"),
            Rule::NoRole | Rule::Incomplete | Rule::ModelMissing | Rule::ModelExists | Rule::NeverAllowed => {
                write!(f, "{} holds no role at or above scope {}", self.principal.name, self.target())
            }
        }
    }
}

/// A stage's name, or `absent` when there is none.
struct StageOr(Option<Stage>, &'static str);

impl fmt::Display for StageOr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => s.fmt(f),
            None => f.write_str(self.1),
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
/// Allocates nothing; the reason is rendered by [`Decision::reason`].
pub fn decide<'a>(principal: &'a Principal, req: &Request<'a>) -> Decision<'a> {
    decide_with(principal, req, true)
}

/// [`decide`], reading the packed grants when `packed` and the principal has them; both ways
/// give the same decision (a property test holds them to it).
pub(super) fn decide_with<'a>(
    principal: &'a Principal,
    req: &Request<'a>,
    packed: bool,
) -> Decision<'a> {
    let decision =
        |grant: Option<usize>, (allowed, code, rule): (bool, DecisionCode, Rule)| Decision {
            allowed,
            code,
            rule,
            grant,
            principal,
            req: *req,
        };
    if let Some(pre) = precheck(req) {
        return decision(None, pre);
    }
    // Models are owned by users (the requester of their first deploy); a token named like
    // a user must not inherit that user's "own model" rights.
    let who = (principal.kind == PrincipalKind::User).then_some(Who { principal, packed });
    // The packed grants say which grants apply, and with which role, without reading the grants'
    // memory; the grants themselves answer the same when they or the model could not be packed.
    // With the model's packed scope too (the API index keeps one per model), grants and scope
    // are compared as numbers.
    let packed = principal
        .packed()
        .filter(|_| packed)
        .zip(req.model.and_then(|m| m.packed));
    let (grant, d) = match packed {
        Some((grants, model)) => pick(
            grants
                .iter()
                .map(|g| (g.role(), g.applies_to(model)))
                .enumerate(),
            who,
            req,
        ),
        None => {
            let target = target(req);
            pick(
                principal
                    .grants()
                    .iter()
                    .map(|g| {
                        (
                            g.role,
                            g.role.allowed_at(&g.scope) && g.scope.covers(target),
                        )
                    })
                    .enumerate(),
                who,
                req,
            )
        }
    };
    decision(grant, d)
}

/// The first grant that allows `req`, else the most telling refusal among the grants that
/// apply, else no role: `grants` says for each grant (by place) its role and whether it applies.
#[inline]
fn pick(
    grants: impl Iterator<Item = (usize, (Role, bool))>,
    who: Option<Who<'_>>,
    req: &Request<'_>,
) -> (Option<usize>, (bool, DecisionCode, Rule)) {
    let mut best: Option<(usize, (bool, DecisionCode, Rule))> = None;
    for (i, (role, applies)) in grants {
        if !applies {
            continue;
        }
        let d = decide_grant(role, who, req);
        if d.0 {
            return (Some(i), d);
        }
        // Keep the most telling refusal: a specific rule beats a generic one.
        if best.is_none_or(|(_, b)| rank(d.1) > rank(b.1)) {
            best = Some((i, d));
        }
    }
    match best {
        Some((i, d)) => (Some(i), d),
        None => (None, (false, DecisionCode::NoRoleInScope, Rule::NoRole)),
    }
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
fn precheck(req: &Request<'_>) -> Option<(bool, DecisionCode, Rule)> {
    let deny = |code, rule| Some((false, code, rule));
    match req.action {
        Action::UsersManage | Action::TokensManage => None,
        Action::ModelsView => match req.model {
            None => deny(DecisionCode::Incomplete, Rule::Incomplete),
            Some(m) if m.stage.is_none() => deny(DecisionCode::ModelMissing, Rule::ModelMissing),
            Some(_) => None,
        },
        Action::ModelsDeploy => match req.model {
            None => deny(DecisionCode::Incomplete, Rule::Incomplete),
            Some(m) if m.stage.is_some() => deny(DecisionCode::ModelExists, Rule::ModelExists),
            Some(_) => None,
        },
        Action::ModelsTransition => match (req.model, req.to) {
            (Some(m), Some(to)) if !transition_possible(m.stage, to) => {
                deny(DecisionCode::TransitionNeverAllowed, Rule::NeverAllowed)
            }
            (Some(_), Some(_)) => None,
            _ => deny(DecisionCode::Incomplete, Rule::Incomplete),
        },
    }
}

/// The user asking, for the rules about its own models (tokens own none).
#[derive(Clone, Copy)]
struct Who<'a> {
    principal: &'a Principal,
    /// Compare with the packed copy of the name (see [`decide_with`]).
    packed: bool,
}

impl Who<'_> {
    /// Whether model `m` is this user's.
    fn owns(&self, m: &ModelRef<'_>) -> bool {
        if let Some(own) = m
            .packed
            .filter(|_| self.packed)
            .and_then(|p| p.owned_by(self.principal))
        {
            return own;
        }
        m.owner.is_some_and(|o| match self.packed {
            true => self.principal.is_named(o),
            false => self.principal.name == o,
        })
    }
}

/// One grant's answer: (allowed, code, the rule that decided). DESIGN §3's table.
fn decide_grant(role: Role, who: Option<Who<'_>>, req: &Request<'_>) -> (bool, DecisionCode, Rule) {
    use Role::*;
    use Stage::*;
    let allow = |rule| (true, DecisionCode::Allowed, rule);
    let deny = |code, rule| (false, code, rule);
    let denied = |rule| (false, DecisionCode::RoleDenied, rule);
    match req.action {
        Action::UsersManage | Action::TokensManage => match role {
            Admin => allow(Rule::ManagesUsers),
            _ => deny(DecisionCode::AdminOnly, Rule::OnlyAdminManages),
        },
        Action::ModelsView => {
            let Some(m) = req.model else {
                return deny(DecisionCode::Incomplete, Rule::Incomplete);
            };
            // Ownership is read only by the rules that ask it.
            let own = || who.is_some_and(|w| w.owns(&m));
            let Some(stage) = m.stage else {
                return deny(DecisionCode::ModelMissing, Rule::ModelMissing);
            };
            match (role, stage) {
                (Admin, _) => allow(Rule::SeesAllStages),
                (Manager, Staging | Production) => allow(Rule::SeesStagingAndProduction),
                (Manager, Dev) if own() => allow(Rule::SeesOwnDev),
                (Manager, Dev) => deny(DecisionCode::NotOwner, Rule::ManagerOwnDevOnly),
                (Analyst, Production) => {
                    deny(DecisionCode::ProductionHidden, Rule::AnalystNeverProduction)
                }
                (Analyst, _) if own() => allow(Rule::SeesOwnDevAndStaging),
                (Analyst, _) => deny(DecisionCode::NotOwner, Rule::AnalystOwnOnly),
                (Developer, Dev | Staging) => allow(Rule::SeesDevAndStaging),
                (Deployer, Staging | Production) => allow(Rule::SeesStagingAndProduction),
                (Developer | Deployer, _) => denied(Rule::CannotSeeStage),
            }
        }
        Action::ModelsDeploy => match role {
            Deployer => denied(Rule::DeployerCannotDeploy),
            _ => allow(Rule::DeploysOwn),
        },
        Action::ModelsTransition => {
            let (Some(m), Some(to)) = (req.model, req.to) else {
                return deny(DecisionCode::Incomplete, Rule::Incomplete);
            };
            let own = who.is_some_and(|w| w.owns(&m));
            let Some(from) = m.stage else {
                // None → Dev: a first deploy.
                return decide_grant(
                    role,
                    who,
                    &Request {
                        action: Action::ModelsDeploy,
                        ..*req
                    },
                );
            };
            match (from, to, role) {
                (_, _, Admin) => allow(Rule::MovesAny),
                (Dev, Staging, Developer) => allow(Rule::PromotesAny),
                (Dev, Staging, Manager | Analyst) if own => allow(Rule::PromotesOwn),
                (Dev, Staging, Manager | Analyst) => {
                    deny(DecisionCode::NotOwner, Rule::PromotesOwnOnly)
                }
                (Staging, Production | Dev, Manager | Deployer) => allow(Rule::MovesStaging),
                (Staging, Production, Analyst) => deny(
                    DecisionCode::ProductionHidden,
                    Rule::AnalystNeverToProduction,
                ),
                (Dev, Staging, _) | (Staging, Production | Dev, _) => denied(Rule::CannotMove),
                _ => deny(DecisionCode::AdminOnly, Rule::NotInTable),
            }
        }
    }
}
