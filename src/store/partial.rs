//! A partial read of the store: only the rows some declarations touch.
//!
//! A small change (one binding edited, one token revoked) needs the rows of a few
//! objects and users, not the whole state (at 10,000 users a full read costs
//! ~0.6 s). A stage request's decision reads its model's row and its own record
//! (a decided request is a record). [`StateKeys`] names what to read; [`StoreState::restricted_to`] is the
//! reference meaning of a partial read (the full state, filtered), which every
//! store's [`super::Store::load_partial`] must equal (a store test checks it on
//! both databases).

use super::model::StoreState;
use crate::policy::Scope;
use crate::snapshot::ObjectKey;
use std::collections::BTreeSet;

/// The kind whose declarations' records a partial read returns (see [`StateKeys::objects`]).
const REQUEST: &str = "ModelStageRequest";

/// Which rows a partial read returns (see [`StoreState::restricted_to`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateKeys {
    /// Users by username, and every binding of these users.
    pub usernames: BTreeSet<String>,
    /// Declarations: the binding rows and token keys they own, the decided record of a
    /// stage request, and their statuses.
    pub objects: BTreeSet<ObjectKey>,
    /// Declarations whose status alone is read (none of the rows they own): those a
    /// scoped round plans for their status only (`Snapshot::moved`).
    pub statuses: BTreeSet<ObjectKey>,
    /// Models by (scope, name): the rows a new stage request is decided against.
    pub models: BTreeSet<(Scope, String)>,
}

impl StateKeys {
    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.usernames.is_empty()
            && self.objects.is_empty()
            && self.statuses.is_empty()
            && self.models.is_empty()
    }
}

impl StoreState {
    /// The rows `keys` names: users with one of its usernames; bindings of those users
    /// or owned by one of its objects; token keys owned by one of its objects; the
    /// statuses of its objects and of its `statuses`; the models of its `models`; the
    /// decided requests of its objects; the same revision.
    pub fn restricted_to(&self, keys: &StateKeys) -> StoreState {
        let owned =
            |o: &Option<super::Owner>| o.as_ref().is_some_and(|o| keys.objects.contains(&o.key));
        StoreState {
            users: self
                .users
                .iter()
                .filter(|(u, _)| keys.usernames.contains(*u))
                .map(|(u, r)| (u.clone(), r.clone()))
                .collect(),
            bindings: self
                .bindings
                .iter()
                .filter(|b| keys.usernames.contains(&b.username) || owned(&b.owner))
                .cloned()
                .collect(),
            token_keys: self
                .token_keys
                .iter()
                .filter(|(_, k)| owned(&k.owner))
                .map(|(id, k)| (id.clone(), k.clone()))
                .collect(),
            models: self
                .models
                .iter()
                .filter(|(k, _)| keys.models.contains(*k))
                .map(|(k, m)| (k.clone(), m.clone()))
                .collect(),
            requests: self
                .requests
                .iter()
                .filter(|((ns, n), _)| keys.objects.contains(&ObjectKey::new(REQUEST, ns, n)))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            statuses: self
                .statuses
                .iter()
                .filter(|(k, _)| keys.objects.contains(*k) || keys.statuses.contains(*k))
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
            revision: self.revision,
        }
    }
}
