//! Privilege reductions end sessions (DESIGN §2 "User"): a change that takes
//! any capability away from a user ends that user's sessions in the same
//! transaction as the change, with an audit row saying what was lost.
//! Additions are left to the next login, as the role policy says.
//!
//! "Takes a capability away" is decided by [`capability_lost`], which asks the
//! policy's own decision function, so a rewrite that grants the same (a
//! project binding folded into a customer one) ends nothing and any real loss
//! (role lowered, scope narrowed, binding deleted or moved to another user)
//! is found whatever form it takes.

use super::ops::Work;
use crate::plan::{Change, Op, Plan};
use crate::policy::{capability_lost, Grant};
use crate::store::{BindingRow, StoreOp, StoreState};
use serde_json::json;
use std::collections::BTreeMap;

/// Binding rows by their declaration's (namespace, name), as the store keys them.
type Rows = BTreeMap<(String, String), BindingRow>;

/// The bindings the store holds after `plan`'s binding changes, and the first change that
/// touched each user's bindings.
fn bindings_after<'p>(state: &StoreState, plan: &'p Plan) -> (Rows, BTreeMap<String, &'p Change>) {
    let mut rows = Rows::new();
    let mut unowned = Vec::new();
    for b in &state.bindings {
        match &b.owner {
            Some(o) => {
                rows.insert((o.key.namespace.clone(), o.key.name.clone()), b.clone());
            }
            None => unowned.push(b.clone()),
        }
    }
    // The cause named in the audit row.
    let mut cause: BTreeMap<String, &Change> = BTreeMap::new();
    for c in &plan.changes {
        let at = (c.object.namespace.clone(), c.object.name.clone());
        let Some((username, role, scope)) = c.op.binding() else {
            continue;
        };
        if matches!(c.op, Op::Unbind { .. }) {
            rows.remove(&at);
            cause.entry(username.to_string()).or_insert(c);
            continue;
        }
        let old = rows.insert(
            at,
            BindingRow {
                username: username.to_string(),
                role,
                scope: scope.clone(),
                owner: None,
            },
        );
        for u in old
            .map(|o| o.username)
            .into_iter()
            .chain([username.to_string()])
        {
            cause.entry(u).or_insert(c);
        }
    }
    for (i, b) in unowned.into_iter().enumerate() {
        rows.insert((String::new(), i.to_string()), b);
    }
    (rows, cause)
}

fn grants<'a>(rows: impl Iterator<Item = &'a BindingRow>, user: &str) -> Vec<Grant> {
    let mut out: Vec<Grant> = rows
        .filter(|b| b.username == user)
        .map(|b| Grant {
            role: b.role,
            scope: b.scope.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `EndSessions` and a `user.sessions.end` audit row for every user whose binding changes in
/// `plan` take a capability away. Users deleted or revoked by the plan lose their sessions
/// through those changes already and are skipped.
pub(super) fn end_reduced_sessions(
    plan: &Plan,
    state: &StoreState,
    work: &Work<'_>,
) -> Vec<StoreOp> {
    let (after, cause) = bindings_after(state, plan);
    let mut out = Vec::new();
    for (user, c) in cause {
        let existed = state
            .users
            .get(&user)
            .is_some_and(|u| u.state == crate::resources::UserState::Active);
        let stays = work
            .users
            .get(&user)
            .is_some_and(|u| u.state == crate::resources::UserState::Active);
        if !(existed && stays) {
            continue;
        }
        let before = state.grants_of(&user);
        let now = grants(after.values(), &user);
        let Some(lost) = capability_lost(&user, &before, &now) else {
            continue;
        };
        tracing::info!(user = %user, lost = %lost, object = %c.object, "privileges reduced; ending the user's sessions");
        out.push(StoreOp::EndSessions(user.clone()));
        out.push(work.audit(
            c,
            "user.sessions.end",
            Some(json!({"user": user, "grants": before})),
            Some(json!({"user": user, "grants": now, "lost": lost.to_string()})),
        ));
    }
    out
}
