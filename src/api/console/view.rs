//! What one person may see, computed from one store read and the API's index.
//!
//! Every "may see" question goes to the policy through [`Index::authorize`] and
//! [`Index::visible_models`], the calls `/v1/authorize` and `/v1/models` make:
//! the console never decides access itself.

use crate::api::index::Index;
use crate::plan::Question;
use crate::policy::{Action, ModelState, Principal, Scope, Stage};
use crate::resources::UserState;
use crate::snapshot::ObjectKey;
use crate::store::{
    BindingRow, DecidedRequest, KeyState, ObjectStatus, StoreState, TokenKeyRow, UserRow,
};
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet};

/// Tokens expiring within this many days are highlighted on the tokens page.
pub const EXPIRY_HIGHLIGHT_DAYS: i64 = 14;

/// Whether the policy lets `who` perform `action` at `scope` (no model).
pub fn may(index: &Index, who: &Principal, action: Action, scope: &Scope) -> bool {
    let q = Question {
        action: Some(action),
        model: None,
        scope: Some(scope.clone()),
        to: None,
    };
    index.authorize(who, &q).is_ok_and(|d| d.allowed)
}

/// Whether `who` may manage users somewhere (one of its grants' scopes): an Admin.
pub fn is_admin(index: &Index, who: &Principal) -> bool {
    who.grants()
        .iter()
        .any(|g| may(index, who, Action::UsersManage, &g.scope))
}

/// Whether `who` may manage users globally: reads the audit log and every failing object.
pub fn is_global_admin(index: &Index, who: &Principal) -> bool {
    may(index, who, Action::UsersManage, &Scope::global())
}

/// One model on the home page, with its decided stage requests (oldest first).
pub struct ModelCard {
    /// As the policy sees it.
    pub model: ModelState,
    /// Decided requests for this model.
    pub history: Vec<DecidedRequest>,
    /// Moves the policy allows this person from the current stage.
    pub moves: Vec<Stage>,
    /// Namespace of the model's last request, where a new request most likely belongs.
    pub namespace: Option<String>,
}

/// The models `who` may see (the `/v1/models` call), grouped by stage.
pub fn models_by_stage(
    index: &Index,
    who: &Principal,
    state: &StoreState,
) -> BTreeMap<Stage, Vec<ModelCard>> {
    let mut columns: BTreeMap<Stage, Vec<ModelCard>> = BTreeMap::new();
    for (_, m) in index.visible_models(who) {
        let Some(stage) = m.stage else { continue };
        let mut history: Vec<DecidedRequest> = state
            .requests
            .values()
            .filter(|r| r.model == m.name && r.scope == m.scope)
            .cloned()
            .collect();
        history.sort_by_key(|r| r.decided_at);
        let moves = [Stage::Dev, Stage::Staging, Stage::Production]
            .into_iter()
            .filter(|to| *to != stage)
            .filter(|to| {
                let q = Question {
                    action: Some(Action::ModelsTransition),
                    model: Some(m.name.clone()),
                    scope: Some(m.scope.clone()),
                    to: Some(*to),
                };
                index.authorize(who, &q).is_ok_and(|d| d.allowed)
            })
            .collect();
        let namespace = history.last().map(|r| r.namespace.clone());
        columns.entry(stage).or_default().push(ModelCard {
            model: m.clone(),
            history,
            moves,
            namespace,
        });
    }
    columns
}

/// A user as the users page shows it.
pub struct UserLine {
    /// The stored user.
    pub user: UserRow,
    /// Its bindings the viewer may manage (others stay hidden).
    pub bindings: Vec<BindingRow>,
    /// Invited, Active or Revoked.
    pub phase: String,
}

/// The users `who` may manage: those with a binding at a scope it may manage users at
/// (everyone, for a global Admin), with only those bindings.
pub fn users(index: &Index, who: &Principal, state: &StoreState) -> Vec<UserLine> {
    let global = is_global_admin(index, who);
    state
        .users
        .values()
        .filter(|u| !u.bootstrap || global)
        .filter_map(|u| {
            let bindings: Vec<BindingRow> = state
                .bindings
                .iter()
                .filter(|b| b.username == u.username)
                .filter(|b| may(index, who, Action::UsersManage, &b.scope))
                .cloned()
                .collect();
            (global || !bindings.is_empty()).then(|| UserLine {
                phase: user_phase(u, state),
                user: u.clone(),
                bindings,
            })
        })
        .collect()
}

/// The phase the User's status reports, or the one its row implies.
fn user_phase(u: &UserRow, state: &StoreState) -> String {
    let reported = u
        .owner
        .as_ref()
        .and_then(|o| state.statuses.get(&o.key))
        .and_then(|s| s.phase.clone());
    reported.unwrap_or_else(|| {
        match (u.state, u.last_login) {
            (UserState::Revoked, _) => "Revoked",
            (UserState::Active, None) => "Invited",
            (UserState::Active, Some(_)) => "Active",
        }
        .to_string()
    })
}

/// An API token as the tokens page shows it: its current key.
pub struct TokenLine {
    /// The newest key of the token.
    pub key: TokenKeyRow,
    /// The ApiToken's reported phase, or one the key implies.
    pub phase: String,
    /// Live and expiring within [`EXPIRY_HIGHLIGHT_DAYS`].
    pub expiring_soon: bool,
}

/// The tokens `who` may manage (tokens:manage at the token's scope), newest key of each.
pub fn tokens(
    index: &Index,
    who: &Principal,
    state: &StoreState,
    now: Timestamp,
) -> Vec<TokenLine> {
    let mut newest: BTreeMap<(String, String), &TokenKeyRow> = BTreeMap::new();
    for k in state.token_keys.values() {
        let slot = newest
            .entry((k.namespace.clone(), k.token_name.clone()))
            .or_insert(k);
        if (k.rotation, k.issued_at) > (slot.rotation, slot.issued_at) {
            *slot = k;
        }
    }
    let soon = now
        .checked_add(SignedDuration::from_hours(24 * EXPIRY_HIGHLIGHT_DAYS))
        .unwrap_or(now);
    newest
        .into_values()
        .filter(|k| may(index, who, Action::TokensManage, &k.scope))
        .map(|k| {
            let live = k.usable_at(now);
            let reported = k
                .owner
                .as_ref()
                .and_then(|o| state.statuses.get(&o.key))
                .and_then(|s| s.phase.clone());
            let phase = reported.unwrap_or_else(|| {
                match (k.state, k.revoked_at, live) {
                    (_, Some(_), _) => "Revoked",
                    (KeyState::Pending, _, _) => "Pending",
                    (_, _, true) => "Active",
                    _ => "Expired",
                }
                .to_string()
            });
            TokenLine {
                expiring_soon: live && k.expires_at.is_some_and(|e| e <= soon),
                key: k.clone(),
                phase,
            }
        })
        .collect()
}

/// Declared objects that are not Ready, by key: every one for a global Admin; for an Admin
/// of a customer or project, those that declare a user, binding or token it may manage.
pub fn problems<'a>(
    index: &Index,
    who: &Principal,
    state: &'a StoreState,
    users: &[UserLine],
    tokens: &[TokenLine],
) -> Vec<&'a ObjectStatus> {
    let failing = state.statuses.values().filter(|s| !s.ready);
    if is_global_admin(index, who) {
        return failing.collect();
    }
    let mine: BTreeSet<&ObjectKey> = users
        .iter()
        .flat_map(|u| {
            u.user
                .owner
                .iter()
                .chain(u.bindings.iter().filter_map(|b| b.owner.as_ref()))
        })
        .chain(tokens.iter().filter_map(|t| t.key.owner.as_ref()))
        .map(|o| &o.key)
        .collect();
    failing.filter(|s| mine.contains(&s.key)).collect()
}
