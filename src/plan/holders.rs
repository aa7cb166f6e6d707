//! Username and Secret conflicts settled by who holds the name: the store (plan/apply) or
//! the base branch (diff). The declaration that holds a username or a Secret keeps it.
//!
//! Validation alone only knows creation time and file order; in directory mode a newer
//! file that sorts first would otherwise take the name from the User that holds it.

use crate::snapshot::{Diagnostic, Reason, Severity};
use crate::snapshot::{ObjectKey, Snapshot};
use crate::store::{Owner, PasswordSource, StoreState};
use crate::validate::{secret_claims, secret_conflicts, SecretClaim, SecretUse};
use kube::ResourceExt;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// `snap` with its `DuplicateUsername` diagnostics moved so that, for every contested
/// username whose store row a claimant owns, that claimant keeps it and the others are
/// flagged. Borrowed when nothing moves (the common case).
///
/// Secrets likewise: `SecretNameConflict` is decided again with the claims the store
/// records (a token's delivered Secret, a user's generated or referenced password) granted
/// first, so the declaration that holds a Secret keeps it and a newcomer never takes it.
pub fn with_store_holders<'a>(snap: &'a Snapshot, state: &StoreState) -> Cow<'a, Snapshot> {
    let names = with_holders(snap, |username| {
        let owner = state.users.get(username)?.owner.as_ref()?;
        Some((owner.key.clone(), owner.source.clone()))
    });
    with_secret_holders(names, |c| store_holds(state, c))
}

/// The same with the holders of a base tree (pull-request review: the base branch holds).
pub fn with_base_holders<'a>(head: &'a Snapshot, base: &Snapshot) -> Cow<'a, Snapshot> {
    let invalid = base.invalid_keys();
    let names = with_holders(head, |username| {
        let u = base
            .users
            .iter()
            .find(|u| u.object.username() == username && !invalid.contains(&u.key()))?;
        Some((u.key(), u.source.to_string()))
    });
    let held: Vec<SecretClaim> = secret_claims(base)
        .into_iter()
        .filter(|c| !invalid.contains(&c.key))
        .collect();
    with_secret_holders(names, |c| held.iter().any(|h| h.same_as(c)))
}

/// Whether the store shows `claim`'s declaration holding its Secret: a key of the token
/// delivered there, a generated password (issued or pending) of the user, or, for a
/// reference, a user whose password in force came from a referenced Secret.
fn store_holds(state: &StoreState, claim: &SecretClaim) -> bool {
    let owned_by = |o: &Option<Owner>| o.as_ref().is_some_and(|o| o.key == claim.key);
    match (&claim.usage, claim.key.kind.as_str()) {
        (SecretUse::Writes, "ApiToken") => state.token_keys.values().any(|k| {
            owned_by(&k.owner) && k.namespace == claim.namespace && k.secret_name == claim.secret
        }),
        (SecretUse::Writes, _) => state.users.values().any(|u| {
            owned_by(&u.owner)
                && (u.password_source == Some(PasswordSource::Generated)
                    || u.pending_password.is_some())
        }),
        (SecretUse::Reads(_), _) => state
            .users
            .values()
            .any(|u| owned_by(&u.owner) && u.password_source == Some(PasswordSource::Ref)),
    }
}

/// Re-decides `SecretNameConflict` with the claims `holds` marks granted first. Unchanged
/// (and borrowed, when it was) unless a holder was flagged.
fn with_secret_holders<'a>(
    snap: Cow<'a, Snapshot>,
    holds: impl Fn(&SecretClaim) -> bool,
) -> Cow<'a, Snapshot> {
    let is_conflict = |d: &&Diagnostic| d.reason == Reason::SecretNameConflict;
    let before: Vec<&Diagnostic> = snap.diagnostics.iter().filter(is_conflict).collect();
    if before.is_empty() {
        return snap;
    }
    let after = secret_conflicts(&snap, holds);
    let mut sorted = before.clone();
    sorted.sort();
    if sorted.into_iter().eq(after.iter()) {
        return snap;
    }
    let mut out = snap.into_owned();
    out.diagnostics
        .retain(|d| d.reason != Reason::SecretNameConflict);
    out.diagnostics.extend(after);
    Cow::Owned(out)
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
