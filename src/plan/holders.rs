//! Username conflicts settled by who holds the name: the store (plan/apply) or the base
//! branch (diff). The declaration that holds a username keeps it.
//!
//! Validation alone only knows creation time and file order; in directory mode a newer
//! file that sorts first would otherwise take the name from the User that holds it.

use crate::snapshot::{Diagnostic, Reason, Severity};
use crate::snapshot::{ObjectKey, Snapshot};
use crate::store::StoreState;
use kube::ResourceExt;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// `snap` with its `DuplicateUsername` diagnostics moved so that, for every contested
/// username whose store row a claimant owns, that claimant keeps it and the others are
/// flagged. Borrowed when nothing moves (the common case).
pub fn with_store_holders<'a>(snap: &'a Snapshot, state: &StoreState) -> Cow<'a, Snapshot> {
    with_holders(snap, |username| {
        let owner = state.users.get(username)?.owner.as_ref()?;
        Some((owner.key.clone(), owner.source.clone()))
    })
}

/// The same with the holders of a base tree (pull-request review: the base branch holds).
pub fn with_base_holders<'a>(head: &'a Snapshot, base: &Snapshot) -> Cow<'a, Snapshot> {
    let invalid = base.invalid_keys();
    with_holders(head, |username| {
        let u = base
            .users
            .iter()
            .find(|u| u.object.username() == username && !invalid.contains(&u.key()))?;
        Some((u.key(), u.source.to_string()))
    })
}

/// Moves `DuplicateUsername` to the claimants that do not hold the name per `holder`
/// (username → holding declaration and its source).
fn with_holders<'a>(
    snap: &'a Snapshot,
    holder: impl Fn(&str) -> Option<(ObjectKey, String)>,
) -> Cow<'a, Snapshot> {
    let flagged: BTreeSet<ObjectKey> = snap
        .diagnostics
        .iter()
        .filter(|d| d.reason == Reason::DuplicateUsername)
        .filter_map(|d| {
            Some(ObjectKey::new(
                d.kind.as_deref()?,
                d.namespace.as_deref()?,
                d.name.as_deref()?,
            ))
        })
        .collect();
    // Usernames whose store holder validation flagged as the newcomer.
    let swapped: Vec<(String, ObjectKey, String)> = snap
        .users
        .iter()
        .filter(|u| flagged.contains(&u.key()))
        .filter_map(|u| {
            let username = u.object.username();
            let (key, source) = holder(&username)?;
            (key == u.key()).then_some((username, key, source))
        })
        .collect();
    if swapped.is_empty() {
        return Cow::Borrowed(snap);
    }
    let mut out = snap.clone();
    for (username, holder, holder_source) in swapped {
        let claimants: Vec<_> = snap
            .users
            .iter()
            .filter(|u| u.object.username() == username)
            .collect();
        let keys: BTreeSet<ObjectKey> = claimants.iter().map(|u| u.key()).collect();
        out.diagnostics.retain(|d| {
            let key = d
                .kind
                .as_deref()
                .zip(d.namespace.as_deref())
                .zip(d.name.as_deref());
            !(d.reason == Reason::DuplicateUsername
                && key.is_some_and(|((k, ns), n)| keys.contains(&ObjectKey::new(k, ns, n))))
        });
        for u in claimants.into_iter().filter(|u| u.key() != holder) {
            let field = if u.object.spec.username.is_some() {
                "spec.username"
            } else {
                "metadata.name"
            };
            out.diagnostics.push(Diagnostic {
                file: u.source.file.clone(),
                line: snap.field_line(&u.source, field),
                kind: Some(u.key().kind),
                namespace: u.object.namespace(),
                name: Some(u.object.name_any()),
                field: Some(field.to_string()),
                reason: Reason::DuplicateUsername,
                severity: Severity::Error,
                message: format!("username {username:?} is held by {holder} ({holder_source})"),
            });
        }
    }
    Cow::Owned(out)
}
