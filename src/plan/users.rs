//! Users and their passwords in the plan: create, update, replace, prune; passwords
//! from `passwordSecretRef` (keyed fingerprint, re-hashed only on change) or generated
//! and delivered once, with crash recovery of pending ones.

use super::build::{status, Builder};
use super::change::*;
use crate::resources::{User, UserState};
use crate::secrets::{HashValue, SecretState, SecretValue, ServerKey};
use crate::snapshot::{Declared, ObjectKey};
use crate::store::{InvitationState, PasswordSource, UserRow};
use kube::ResourceExt;
use std::collections::BTreeMap;

const PASSWORD_FP_DOMAIN: &str = "stagegate password fingerprint v1";

/// Keyed fingerprint of a referenced password: detects a change without storing an unkeyed hash.
pub fn password_fingerprint(key: &ServerKey, username: &str, value: &[u8]) -> String {
    let mut data = username.as_bytes().to_vec();
    data.push(0);
    data.extend_from_slice(value);
    key.mac_hex(PASSWORD_FP_DOMAIN, &data)
}

/// The Secret an invitation of `user` is delivered to: `<name>-invitation`.
pub fn invitation_secret(user: &User) -> SecretName {
    SecretName {
        namespace: user.namespace().unwrap_or_default(),
        name: user.invitation_secret_name(),
    }
}

/// The Secret a generated password of `user` is delivered to: `<name>-password`.
pub fn password_secret(user: &User) -> SecretName {
    SecretName {
        namespace: user.namespace().unwrap_or_default(),
        name: user.password_secret_name(),
    }
}

fn user_fields(u: &User) -> UserFields {
    UserFields {
        username: u.username(),
        display_name: u.spec.display_name.clone(),
        email: u.spec.email.clone(),
        state: u.spec.state,
    }
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn state_str(s: UserState) -> String {
    format!("{s:?}")
}

pub(super) fn plan_users(b: &mut Builder) {
    // Which username each valid User declaration claims now.
    let claims: BTreeMap<ObjectKey, String> = b
        .snap
        .users
        .iter()
        .filter(|u| !b.invalid.contains(&u.key()))
        .map(|u| (u.key(), u.object.username()))
        .collect();
    let mut users: Vec<_> = b.snap.users.iter().collect();
    users.sort_by_key(|d| d.key());
    for u in users {
        let key = u.key();
        if b.invalid.contains(&key) {
            continue;
        }
        let username = u.object.username();
        let src = u.source.to_string();
        let row = b.state.users.get(&username);
        // A username held by an unmanaged entry, or by another declaration that still claims it, is not ours.
        let holder = row.and_then(|r| match &r.owner {
            None => Some("an entry stagegate does not manage".to_string()),
            Some(o) if o.key != key => {
                let still = claims.get(&o.key) == Some(&username) || b.protected(o);
                still.then(|| format!("{} ({})", o.key, o.source))
            }
            _ => None,
        });
        if let Some(holder) = holder {
            b.set_status(status(
                u,
                false,
                "UsernameConflict",
                format!("username {username:?} is held by {holder}"),
                None,
            ));
            continue;
        }
        // A row left by another (gone) declaration is replaced, not adopted: its password and sessions are not this user's.
        let row = row.filter(|r| r.owner.as_ref().is_some_and(|o| o.key == key));
        let fields = user_fields(&u.object);
        match row {
            None => b.push(
                &key,
                &src,
                Op::CreateUser {
                    user: fields.clone(),
                },
            ),
            Some(r) => {
                let mut ch = Vec::new();
                let mut diff = |field: &str, old: String, new: String| {
                    if old != new {
                        ch.push(FieldChange {
                            field: field.into(),
                            old,
                            new,
                        })
                    }
                };
                diff(
                    "displayName",
                    opt(&r.display_name),
                    opt(&fields.display_name),
                );
                diff("email", opt(&r.email), opt(&fields.email));
                diff("state", state_str(r.state), state_str(fields.state));
                if !ch.is_empty() {
                    b.push(
                        &key,
                        &src,
                        Op::UpdateUser {
                            username: username.clone(),
                            changes: ch,
                            user: fields.clone(),
                        },
                    );
                }
            }
        }
        b.users_after.insert(username.clone(), fields.state);
        let pw = plan_password(b, u, row);
        // An invited user is Invited until it accepts the invitation in force, whatever its
        // earlier logins (a re-invite makes it Invited again).
        let awaiting = u.object.spec.invitation.is_some()
            && !row.is_some_and(|r| {
                r.invitation.as_ref().is_some_and(|i| {
                    i.state == InvitationState::Accepted
                        && i.rotation >= u.object.spec.password_rotation
                })
            });
        let phase = match (fields.state, row.and_then(|r| r.first_login)) {
            (UserState::Revoked, _) => "Revoked",
            _ if awaiting => "Invited",
            (_, Some(_)) => "Active",
            _ => "Invited",
        };
        let mut st = match pw {
            Some((INVITED, msg)) => status(u, true, INVITED, msg, Some(phase)),
            Some((reason, msg)) => status(u, false, reason, msg, Some(phase)),
            None if fields.state == UserState::Revoked => status(
                u,
                true,
                "Revoked",
                "user is revoked: cannot log in; its sessions and owned tokens are revoked".into(),
                Some(phase),
            ),
            None => status(
                u,
                true,
                "Ready",
                "user is in the identity store".into(),
                Some(phase),
            ),
        };
        let declared = u.object.spec.password_rotation;
        let in_force = row.and_then(|r| match &u.object.spec.invitation {
            Some(_) => r.invitation.as_ref().map(|i| i.rotation),
            None => (r.password_source == Some(PasswordSource::Generated))
                .then_some(r.password_rotation),
        });
        if let Some(current) =
            in_force.filter(|c| u.object.spec.password_secret_ref.is_none() && *c > declared)
        {
            let note = super::tokens::lowered_note("spec.passwordRotation", declared, current);
            super::tokens::warn_lowered(&mut st, &note);
        }
        b.set_status(st);
    }
    // Prune users whose declarations are gone (or now claim another username); keep protected and unmanaged ones.
    for r in b.state.users.values() {
        let Some(o) = &r.owner else {
            b.users_after.insert(r.username.clone(), r.state);
            continue;
        };
        if claims.get(&o.key) == Some(&r.username) && b.users_after.contains_key(&r.username) {
            continue;
        }
        if b.protected(o) {
            if b.invalid.contains(&o.key) && r.state == UserState::Active && !b.broken(o) {
                // Fail closed: a User whose declaration is invalid (a revocation with a typo
                // beside it, say) is suspended until it is valid again, never left able to log
                // in on what it said before. Its row, password and history are kept.
                let o = o.clone();
                let user = UserFields {
                    username: r.username.clone(),
                    display_name: r.display_name.clone(),
                    email: r.email.clone(),
                    state: UserState::Revoked,
                };
                b.push(
                    &o.key,
                    &o.source,
                    Op::UpdateUser {
                        username: r.username.clone(),
                        changes: vec![FieldChange {
                            field: "state".into(),
                            old: state_str(r.state),
                            new: state_str(UserState::Revoked),
                        }],
                        user,
                    },
                );
                b.users_after.insert(r.username.clone(), UserState::Revoked);
                continue;
            }
            b.users_after.entry(r.username.clone()).or_insert(r.state);
            continue;
        }
        if b.users_after.contains_key(&r.username) {
            continue; // replaced by its new declaration (CreateUser replaces the row)
        }
        let o = o.clone();
        b.prune(
            &o,
            Op::DeleteUser {
                username: r.username.clone(),
            },
        );
    }
}

/// Plans the password of an owned user; returns a not-ready reason and message when there is a problem.
fn plan_password(
    b: &mut Builder,
    u: &Declared<User>,
    row: Option<&UserRow>,
) -> Option<(&'static str, String)> {
    let key = u.key();
    let src = u.source.to_string();
    let username = u.object.username();
    let ns = u.object.namespace().unwrap_or_default();
    if let Some(r) = &u.object.spec.password_secret_ref {
        let secret = SecretName {
            namespace: ns.clone(),
            name: r.name.clone(),
        };
        let data = b.snap.secrets.get(&(ns.clone(), r.name.clone()));
        let Some(value) = data.and_then(|d| d.get(&r.key)) else {
            let what = match data {
                None => format!("Secret {ns}/{} does not exist", r.name),
                Some(_) => format!("Secret {ns}/{} has no key {:?}", r.name, r.key),
            };
            // A deleted Secret is not a password change: the password in force stays (docs: passwordSecretRef).
            let effect = if row.is_some_and(|r| r.password_hash.is_some()) {
                "the password in force stays valid (and so do sessions): to stop logins, set spec.state: Revoked"
            } else {
                "the user cannot log in with a password until it does"
            };
            return Some(("PasswordSecretMissing", format!("{what}; {effect}")));
        };
        // A refused password never replaces the one in force; say which.
        if let Err(rule) = b.ctx.password_policy.check(value) {
            let kept = if row.is_some_and(|r| r.password_hash.is_some()) {
                "the password in force is kept"
            } else {
                "the user cannot log in with a password until it is changed"
            };
            return Some((
                rule.reason(),
                format!(
                    "Secret {ns}/{} key {:?} is refused: {rule}; {kept}",
                    r.name, r.key
                ),
            ));
        }
        let fp = password_fingerprint(b.ctx.server_key, &username, value);
        let unchanged = row.is_some_and(|r| {
            r.password_source == Some(PasswordSource::Ref)
                && r.password_fingerprint.as_ref().map(|f| f.expose()) == Some(fp.as_str())
                && r.password_hash.is_some()
        });
        if !unchanged {
            b.push(
                &key,
                &src,
                Op::ResetPassword {
                    username,
                    secret,
                    reset: row.is_some_and(|r| r.password_hash.is_some()),
                    chosen: row.is_some_and(|r| r.password_chosen_at.is_some()),
                    value: Hidden(SecretValue::new(value.clone())),
                    fingerprint: Hidden(HashValue::new(fp)),
                },
            );
        }
        return None;
    }
    if let Some(inv) = &u.object.spec.invitation {
        return plan_invitation(b, u, row, inv.validity());
    }
    let secret = password_secret(&u.object);
    let file = b.secret_state(&secret);
    let rotation = u.object.spec.password_rotation;
    let where_ = format!("Secret {}/{}", secret.namespace, secret.name);
    let mut discards = None;
    let revoked = u.object.spec.state == UserState::Revoked;
    if let Some(p) = row.and_then(|r| r.pending_password.as_ref()) {
        if let (SecretState::Unreadable { error }, false) = (&file, revoked) {
            // It may hold the pending password: neither complete nor forget it.
            return Some(("DeliveryFailed", format!("cannot read {where_} that may hold a pending password: {error}; the new password is not in force until the Secret can be read")));
        }
        if file
            == (SecretState::Ours {
                key_id: Some(p.id.clone()),
            })
        {
            b.push(
                &key,
                &src,
                Op::CompletePassword {
                    username,
                    password_id: p.id.clone(),
                },
            );
            return None;
        }
        discards = Some(p.id.clone());
    }
    let issued = row.filter(|r| {
        r.password_source == Some(PasswordSource::Generated)
            && r.password_hash.is_some()
            && r.password_rotation >= rotation
    });
    if let Some(r) = issued {
        discard_pending(b, &key, &src, username, discards);
        if r.password_chosen_at.is_some() {
            // The person chose their own since: the delivered Secret no longer matters.
            return None;
        }
        return match file {
            SecretState::Ours { key_id } if key_id == r.password_id => None,
            SecretState::Foreign => Some(("SecretConflict", format!("{where_} was replaced by a Secret stagegate did not write"))),
            SecretState::Unreadable { error } => Some(("SecretUnreadable", format!("cannot read {where_} holding the generated password: {error}; the password in force stays valid"))),
            _ => Some(("SecretMissing", format!("{where_} holding the generated password is gone; it is not re-issued: increase spec.passwordRotation for a new password"))),
        };
    }
    if revoked {
        discard_pending(b, &key, &src, username, discards);
        return None; // no point issuing a password to a revoked user
    }
    if file == SecretState::Foreign {
        discard_pending(b, &key, &src, username, discards);
        return Some(("SecretConflict", format!("{where_} exists and was not written by stagegate: it is never overwritten; delete it or rename the User")));
    }
    if let SecretState::Unreadable { error } = &file {
        discard_pending(b, &key, &src, username, discards);
        // A password that cannot be delivered is not generated: retried at every reconcile.
        return Some((
            "DeliveryFailed",
            format!("cannot read {where_}: {error}; no password is issued until it can be written"),
        ));
    }
    b.push(
        &key,
        &src,
        Op::GeneratePassword {
            username,
            rotation,
            secret,
            discards,
            reset: row.is_some_and(|r| r.password_hash.is_some()),
            chosen: row.is_some_and(|r| r.password_chosen_at.is_some()),
        },
    );
    None
}

/// The ready reason of an invited user whose invitation waits for acceptance.
const INVITED: &str = "Invited";

/// Plans the invitation of an invited user: issue (at first and at each raised
/// `passwordRotation`), complete or discard a pending one after a crash, report an expired or
/// missing one. Returns `(INVITED, message)` while the invitation in force waits for
/// acceptance, another reason when something is wrong, none when it was accepted.
fn plan_invitation(
    b: &mut Builder,
    u: &Declared<User>,
    row: Option<&UserRow>,
    validity: &str,
) -> Option<(&'static str, String)> {
    let key = u.key();
    let src = u.source.to_string();
    let username = u.object.username();
    let secret = invitation_secret(&u.object);
    let file = b.secret_state(&secret);
    let rotation = u.object.spec.password_rotation;
    let where_ = format!("Secret {}/{}", secret.namespace, secret.name);
    let revoked = u.object.spec.state == UserState::Revoked;
    let current = row.and_then(|r| r.invitation.as_ref());
    let mut discards = None;
    if let Some(i) = current.filter(|i| i.state == InvitationState::Pending) {
        if let (SecretState::Unreadable { error }, false) = (&file, revoked) {
            // It may hold the pending code: neither complete nor forget it.
            return Some(("DeliveryFailed", format!("cannot read {where_} that may hold a pending invitation: {error}; the invitation is not in force until the Secret can be read")));
        }
        if file
            == (SecretState::Ours {
                key_id: Some(i.id.clone()),
            })
        {
            b.push(
                &key,
                &src,
                Op::CompleteInvitation {
                    username,
                    invitation_id: i.id.clone(),
                },
            );
            return Some((
                INVITED,
                format!(
                    "invitation {} delivered to {where_}; it expires at {}",
                    i.id, i.expires_at
                ),
            ));
        }
        discards = Some(i.id.clone());
    }
    if revoked {
        discard_invitation(b, &key, &src, username, discards);
        return None; // no point inviting a revoked user; its status says Revoked
    }
    let done = current.filter(|i| i.state != InvitationState::Pending && i.rotation >= rotation);
    if let Some(i) = done {
        if i.state == InvitationState::Accepted {
            return None;
        }
        if i.expires_at <= b.ctx.now {
            return Some(("InvitationExpired", format!(
                "invitation {} expired at {} without being accepted; increase spec.passwordRotation to {} to invite again",
                i.id, i.expires_at, i.rotation + 1
            )));
        }
        return match file {
            SecretState::Ours { key_id } if key_id.as_deref() == Some(i.id.as_str()) => Some((
                INVITED,
                format!("invitation {} delivered to {where_}; it expires at {}", i.id, i.expires_at),
            )),
            SecretState::Foreign => Some(("SecretConflict", format!("{where_} was replaced by a Secret stagegate did not write; invitation {} stays valid until {}", i.id, i.expires_at))),
            SecretState::Unreadable { error } => Some(("SecretUnreadable", format!("cannot read {where_} holding invitation {}: {error}; it stays valid until {}", i.id, i.expires_at))),
            _ => Some(("SecretMissing", format!("{where_} holding invitation {} is gone; it is not re-issued: increase spec.passwordRotation for a new invitation", i.id))),
        };
    }
    if file == SecretState::Foreign {
        discard_invitation(b, &key, &src, username, discards);
        return Some(("SecretConflict", format!("{where_} exists and was not written by stagegate: it is never overwritten; delete it or rename the User")));
    }
    if let SecretState::Unreadable { error } = &file {
        discard_invitation(b, &key, &src, username, discards);
        // An invitation that cannot be delivered is not generated: retried at every reconcile.
        return Some((
            "DeliveryFailed",
            format!(
                "cannot read {where_}: {error}; no invitation is issued until it can be written"
            ),
        ));
    }
    b.push(
        &key,
        &src,
        Op::IssueInvitation {
            username,
            rotation,
            secret,
            validity: validity.to_string(),
            discards,
            reset: row.is_some_and(|r| r.password_hash.is_some()),
            chosen: row.is_some_and(|r| r.password_chosen_at.is_some()),
        },
    );
    Some((
        INVITED,
        format!("an invitation is to be delivered to {where_}"),
    ))
}

/// Drops a pending (undelivered) invitation, when there is one, so it can never be accepted.
fn discard_invitation(
    b: &mut Builder,
    key: &ObjectKey,
    src: &str,
    username: String,
    pending: Option<String>,
) {
    if let Some(id) = pending {
        b.push(
            key,
            src,
            Op::DiscardInvitation {
                username,
                invitation_id: id,
            },
        );
    }
}

/// Drops a pending (undelivered) password, when there is one, so it can never be used.
fn discard_pending(
    b: &mut Builder,
    key: &ObjectKey,
    src: &str,
    username: String,
    pending: Option<String>,
) {
    if let Some(id) = pending {
        b.push(
            key,
            src,
            Op::DiscardPassword {
                username,
                password_id: id,
            },
        );
    }
}
