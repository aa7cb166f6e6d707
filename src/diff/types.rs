//! The diff's data model: what the renderers print and the JSON document bots read.

use super::Capability;
use crate::policy::{FromStage, Role, Scope, Stage};
use schemars::JsonSchema;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// Version of the JSON document; bumped on incompatible changes.
pub const FORMAT_VERSION: u32 = 1;

/// Knobs of the diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffOptions {
    /// Token validities longer than this (or `Never`) are escalations.
    pub max_validity: Duration,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            max_validity: Duration::from_secs(90 * 86_400),
        }
    }
}

/// The effective-permission diff between a base and a head tree of manifests.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "stagegate diff",
    description = "The effective-permission diff of a change to stagegate manifests, as printed by `stagegate diff --output json`. Unchanged objects are not listed; lists are in a stable order."
)]
pub struct PermissionDiff {
    /// Version of this document's format (currently 1).
    pub format_version: u32,
    /// One-line summary, e.g. `+2 users, 1 escalation, 3 tokens issued`, or `no changes`.
    pub summary: String,
    /// Counts behind the summary.
    pub counts: Counts,
    /// Validation errors in the head tree: objects with errors are left out of the diff; any error fails the check.
    pub head_errors: Vec<Problem>,
    /// Problems that do not block: new validation warnings in head, stage requests that would be denied, edited records.
    pub warnings: Vec<Problem>,
    /// Changes that widen what someone may do, each with a stable kind.
    pub escalations: Vec<Escalation>,
    /// Users and API tokens whose effective permissions or state change.
    pub principals: Vec<PrincipalChange>,
    /// API token keys to be issued, rotated or revoked, and token changes (never any secret).
    pub tokens: Vec<TokenChange>,
    /// New stage requests and how they would be decided, in decision order; deleted records.
    pub requests: Vec<RequestOutcome>,
    /// Models whose stage, owner, viewers or movers change.
    pub models: Vec<ModelChange>,
}

impl PermissionDiff {
    /// True when head has validation errors.
    pub fn has_errors(&self) -> bool {
        !self.head_errors.is_empty()
    }

    /// True when the diff flags any escalation.
    pub fn has_escalations(&self) -> bool {
        !self.escalations.is_empty()
    }

    /// True when nothing changes and nothing is reported.
    pub fn is_empty(&self) -> bool {
        self.head_errors.is_empty()
            && self.warnings.is_empty()
            && self.escalations.is_empty()
            && self.principals.is_empty()
            && self.tokens.is_empty()
            && self.requests.is_empty()
            && self.models.is_empty()
    }
}

/// Counts of each kind of change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Users declared in head and not in base.
    pub users_added: usize,
    /// Users declared in base and not in head.
    pub users_removed: usize,
    /// Users going from Active to Revoked.
    pub users_revoked: usize,
    /// Users going from Revoked to Active.
    pub users_reinstated: usize,
    /// Users whose roles, permissions or password change.
    pub users_changed: usize,
    /// Escalations flagged.
    pub escalations: usize,
    /// Token keys to be issued (new or reinstated tokens).
    pub tokens_issued: usize,
    /// Token keys to be rotated.
    pub tokens_rotated: usize,
    /// Tokens to be revoked (deleted, revoked, or owner revoked or deleted).
    pub tokens_revoked: usize,
    /// Active tokens whose role, scope, owner, validity or secret change.
    pub tokens_updated: usize,
    /// New stage requests that would be applied.
    pub requests_applied: usize,
    /// New stage requests the policy would deny.
    pub requests_denied: usize,
    /// New stage requests whose `from` would not match the model's stage.
    pub requests_conflict: usize,
    /// Models whose stage, owner or access changes.
    pub models_changed: usize,
    /// Validation errors in head.
    pub head_errors: usize,
    /// Warnings.
    pub warnings: usize,
}

/// A problem found in the head tree or by the diff.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// File of the object, as given on the command line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The object, `Kind namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Field path, e.g. `spec.role`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Stable reason: a validation reason (`UnknownRole`, `UnknownUser`…) or `RequestDenied`, `RequestConflict`, `DecidedRequestChanged`.
    pub reason: String,
    /// Human explanation.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        if let Some(o) = &self.object {
            write!(f, "{o}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{} ({})", self.message, self.reason)
    }
}

/// A user or an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalType {
    /// A person (User and its AccessBindings).
    User,
    /// An API token with its own role.
    Token,
    /// An access domain (a namespace or folder) whose pin, or declarations, change.
    Domain,
}

/// Names a principal: users by username, tokens by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct PrincipalRef {
    /// `user` or `token`.
    pub kind: PrincipalType,
    /// Username or ApiToken name.
    pub name: String,
}

impl PrincipalRef {
    /// A user by username.
    pub fn user(name: &str) -> Self {
        PrincipalRef {
            kind: PrincipalType::User,
            name: name.to_string(),
        }
    }

    /// An access domain by name (`folder tenants/acme`, `namespace acme`).
    pub fn domain(name: &str) -> Self {
        PrincipalRef {
            kind: PrincipalType::Domain,
            name: name.to_string(),
        }
    }

    /// A token by name.
    pub fn token(name: &str) -> Self {
        PrincipalRef {
            kind: PrincipalType::Token,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for PrincipalRef {
    /// Users as their username, tokens as `token:NAME`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PrincipalType::User => f.write_str(&self.name),
            PrincipalType::Token => write!(f, "token:{}", self.name),
            PrincipalType::Domain => write!(f, "domain:{}", self.name),
        }
    }
}

/// What makes a change an escalation. The names are stable: bots may match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub enum EscalationKind {
    /// The principal gains `users:manage` somewhere it did not have it.
    GainsUserManagement,
    /// The principal gains `tokens:manage` somewhere it did not have it.
    GainsTokenManagement,
    /// The principal gains the right to move models to Production somewhere.
    GainsProductionMoves,
    /// A role is held at a wider scope than before (project → customer → global).
    WiderScope,
    /// A new (or newly Admin, or reinstated) API token with the Admin role.
    NewAdminToken,
    /// A token key issued with validity `Never` or longer than the maximum (`--max-validity`).
    LongValidity,
    /// An active token whose owner is absent or names no declared user: nobody is accountable.
    OwnerMissing,
    /// An access domain's pin is wider than before, or gone (its declarations reach further).
    DomainWidened,
    /// A declaration moves out of its access domain to one that admits more (or to no pin).
    LeavesDomain,
}

impl EscalationKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationKind::GainsUserManagement => "GainsUserManagement",
            EscalationKind::GainsTokenManagement => "GainsTokenManagement",
            EscalationKind::GainsProductionMoves => "GainsProductionMoves",
            EscalationKind::WiderScope => "WiderScope",
            EscalationKind::NewAdminToken => "NewAdminToken",
            EscalationKind::LongValidity => "LongValidity",
            EscalationKind::OwnerMissing => "OwnerMissing",
            EscalationKind::DomainWidened => "DomainWidened",
            EscalationKind::LeavesDomain => "LeavesDomain",
        }
    }
}

impl fmt::Display for EscalationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flagged escalation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct Escalation {
    /// Stable kind.
    pub kind: EscalationKind,
    /// Who gains.
    pub principal: PrincipalRef,
    /// What exactly, e.g. `gains models:transition Staging→Production at acme/fraud`.
    pub message: String,
}

/// How a principal's existence or state changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub enum ChangeKind {
    /// Declared in head, not in base.
    Added,
    /// Declared in base, not in head.
    Removed,
    /// Active in base, revoked in head.
    Revoked,
    /// Revoked in base, active in head.
    Reinstated,
    /// Declared and in the same state in both; roles, permissions or credentials change.
    Changed,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Revoked => "revoked",
            ChangeKind::Reinstated => "reinstated",
            ChangeKind::Changed => "changed",
        })
    }
}

/// One role at one scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct RoleAt {
    /// The role.
    pub role: Role,
    /// Where it applies (and below).
    pub scope: Scope,
}

impl fmt::Display for RoleAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.role, self.scope)
    }
}

/// A principal whose effective permissions or state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalChange {
    /// Who.
    pub principal: PrincipalRef,
    /// Added, removed, revoked, reinstated or changed.
    pub change: ChangeKind,
    /// Effective roles held in head and not in base.
    pub roles_gained: Vec<RoleAt>,
    /// Effective roles held in base and not in head.
    pub roles_lost: Vec<RoleAt>,
    /// Capabilities in head that nothing in base implies.
    pub permissions_gained: Vec<Capability>,
    /// Capabilities in base that nothing in head implies.
    pub permissions_lost: Vec<Capability>,
    /// Other facts, e.g. `password reset`.
    pub notes: Vec<String>,
}

/// What happens to a token's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub enum TokenAction {
    /// A key will be generated and delivered once.
    Issued,
    /// The current key is revoked and a new one issued.
    Rotated,
    /// The key stops working.
    Revoked,
    /// The key stays; role, scope, owner, validity or secret name change.
    Updated,
}

impl fmt::Display for TokenAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenAction::Issued => "issued",
            TokenAction::Rotated => "rotated",
            TokenAction::Revoked => "revoked",
            TokenAction::Updated => "updated",
        })
    }
}

/// A token key issued, rotated, revoked or updated. Never carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenChange {
    /// ApiToken name (the API identifier).
    pub name: String,
    /// Namespace of the ApiToken.
    pub namespace: String,
    /// Issued, Rotated, Revoked or Updated.
    pub action: TokenAction,
    /// Role (in head, or in base when revoked by deletion).
    pub role: Role,
    /// Scope of the role.
    pub scope: Scope,
    /// Accountable username, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Validity as declared (`30d`, `Never`).
    pub validity: String,
    /// Secret the key is delivered to (its name only).
    pub secret_name: String,
    /// Why, e.g. `new token`, `rotation 0 → 1`, `owner dora is revoked`.
    pub reason: String,
}

/// How a stage request would be decided, or that its record is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub enum RequestResult {
    /// The model moves.
    Applied,
    /// The policy refuses.
    Denied,
    /// The model is not in `from` at the request's turn.
    Conflict,
    /// A decided request's record is deleted; the model is not moved back.
    Deleted,
}

impl fmt::Display for RequestResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestResult::Applied => "Applied",
            RequestResult::Denied => "Denied",
            RequestResult::Conflict => "Conflict",
            RequestResult::Deleted => "Deleted",
        })
    }
}

/// A new stage request and its decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestOutcome {
    /// ModelStageRequest name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Model name.
    pub model: String,
    /// Where the model lives.
    pub scope: Scope,
    /// Expected stage.
    pub from: FromStage,
    /// Target stage.
    pub to: Stage,
    /// Requester's username.
    pub requested_by: String,
    /// Applied, Denied, Conflict or Deleted.
    pub result: RequestResult,
    /// The policy's reason.
    pub reason: String,
}

/// A model's stage and owner in one tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ModelAt {
    /// Current stage.
    pub stage: Stage,
    /// Who first deployed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Principals gaining or losing the right to move a model to one stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MoverChange {
    /// Target stage.
    pub to: Stage,
    /// Who may move the model there in head and not in base.
    pub gained: Vec<PrincipalRef>,
    /// Who may in base and not in head.
    pub lost: Vec<PrincipalRef>,
}

/// A model whose stage, owner, viewers or movers change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelChange {
    /// Model name.
    pub name: String,
    /// Where it lives.
    pub scope: Scope,
    /// Stage and owner in base; absent when the model does not exist there.
    pub before: Option<ModelAt>,
    /// Stage and owner in head; absent when the model does not exist there.
    pub after: Option<ModelAt>,
    /// Who can see it in head and not in base.
    pub viewers_gained: Vec<PrincipalRef>,
    /// Who could see it in base and not in head.
    pub viewers_lost: Vec<PrincipalRef>,
    /// Changes of who may move it, per target stage.
    pub movers: Vec<MoverChange>,
}
