//! One tree's effective state: who is active, with which grants; tokens and their status.

use super::PrincipalRef;
use crate::plan::user_principals;
use crate::policy::{Grant, Principal, Scope};
use crate::resources::{ApiTokenSpec, SecretKeyRef, UserState};
use crate::snapshot::{ObjectKey, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

/// A valid User declaration, by what matters for permissions and credentials.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct UserInfo {
    pub state: UserState,
    pub password_rotation: u32,
    pub password_ref: Option<SecretKeyRef>,
    /// Invited: the person chooses the password when accepting an invitation.
    pub invited: bool,
}

/// A valid ApiToken declaration and whether its key works.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct TokenInfo {
    pub key: ObjectKey,
    pub spec: ApiTokenSpec,
    pub secret_name: String,
    /// Why the token does not work, when it does not.
    pub revoked_because: Option<String>,
    /// Active without an accountable owner.
    pub owner_missing: bool,
}

impl TokenInfo {
    /// True when the token's key works.
    pub fn active(&self) -> bool {
        self.revoked_because.is_none()
    }

    /// The token's one grant.
    pub fn grant(&self) -> Grant {
        Grant {
            role: self.spec.role,
            scope: self.spec.scope(),
        }
    }
}

/// The effective state of one tree of manifests.
#[derive(Clone, Debug, Default)]
pub(super) struct Tree {
    /// Valid users by username.
    pub users: BTreeMap<String, UserInfo>,
    /// Valid tokens by name.
    pub tokens: BTreeMap<String, TokenInfo>,
    /// Active principals (users with their valid bindings, active tokens).
    pub principals: BTreeMap<PrincipalRef, Principal>,
}

impl Tree {
    /// Builds the state of `snap`; `prior_users` (the base's usernames) tells a deleted owner from an unknown one.
    pub fn new(snap: &Snapshot, prior_users: Option<&BTreeSet<String>>) -> Tree {
        let invalid = snap.invalid_keys();
        let users: BTreeMap<String, UserInfo> = snap
            .users
            .iter()
            .filter(|u| !invalid.contains(&u.key()))
            .map(|u| {
                let s = &u.object.spec;
                let info = UserInfo {
                    state: s.state,
                    password_rotation: s.password_rotation,
                    password_ref: s.password_secret_ref.clone(),
                    invited: s.invitation.is_some(),
                };
                (u.object.username(), info)
            })
            .collect();
        let mut tokens = BTreeMap::new();
        for t in snap.tokens.iter().filter(|t| !invalid.contains(&t.key())) {
            let spec = t.object.spec.clone();
            let mut owner_missing = false;
            let revoked_because = if spec.revoked {
                Some("revoked: true".to_string())
            } else {
                match spec.owner.as_deref() {
                    Some(o) => match users.get(o) {
                        Some(u) if u.state == UserState::Revoked => {
                            Some(format!("owner {o} is revoked"))
                        }
                        Some(_) => None,
                        None if prior_users.is_some_and(|p| p.contains(o)) => {
                            Some(format!("owner {o} is deleted"))
                        }
                        None => {
                            owner_missing = true;
                            None
                        }
                    },
                    None => {
                        owner_missing = true;
                        None
                    }
                }
            };
            let info = TokenInfo {
                key: t.key(),
                secret_name: t.object.secret_name(),
                spec,
                revoked_because,
                owner_missing,
            };
            tokens.insert(t.key().name, info);
        }
        let mut principals: BTreeMap<PrincipalRef, Principal> = user_principals(snap)
            .into_iter()
            .map(|(name, p)| (PrincipalRef::user(&name), p))
            .collect();
        for (name, t) in tokens.iter().filter(|(_, t)| t.active()) {
            principals.insert(PrincipalRef::token(name), Principal::token(name, t.grant()));
        }
        Tree {
            users,
            tokens,
            principals,
        }
    }

    /// The effective grants of a principal (none when it is not active).
    pub fn grants(&self, who: &PrincipalRef) -> BTreeSet<Grant> {
        self.principals
            .get(who)
            .map(|p| p.grants().iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Every scope either snapshot mentions (bindings, tokens, requests).
pub(super) fn mentioned_scopes(snaps: &[&Snapshot]) -> Vec<Scope> {
    let mut out = Vec::new();
    for s in snaps {
        out.extend(s.bindings.iter().map(|b| b.object.spec.scope()));
        out.extend(s.tokens.iter().map(|t| t.object.spec.scope()));
        out.extend(s.requests.iter().map(|r| r.object.spec.scope()));
    }
    out
}
