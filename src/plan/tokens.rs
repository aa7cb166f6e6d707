//! Token planning: first issue, rotation, revocation (by spec or owner), expiry,
//! crash recovery of pending keys, and pruning of tokens whose declarations are gone.
//!
//! A new key is generated only at first issue and at each rotation; a revoked
//! or expired key is never revived, and a deleted Secret is reported, not
//! re-issued (`SecretMissing`): the owner increases `spec.rotation`.
//!
//! Every key that may have been delivered stays known to the store: a pending
//! key whose Secret holds it (or whose Secret cannot be read) is completed or,
//! when superseded, revoked with an audit row; only a pending key its Secret
//! provably does not hold is discarded (also audited).

use super::build::{status, Builder};
use super::change::*;
use crate::resources::{ApiToken, UserState, Validity};
use crate::secrets::SecretState;
use crate::snapshot::Declared;
use crate::snapshot::ObjectKey;
use crate::store::{KeyState, TokenKeyRow};
use kube::ResourceExt;
use std::collections::{BTreeMap, BTreeSet};

/// Plans every token of the snapshot, then prunes keys of tokens no longer declared.
pub(super) fn plan_tokens(b: &mut Builder) {
    let mut by_owner: BTreeMap<ObjectKey, Vec<&TokenKeyRow>> = BTreeMap::new();
    for k in b.state.token_keys.values() {
        if let Some(o) = &k.owner {
            by_owner.entry(o.key.clone()).or_default().push(k);
        }
    }
    for keys in by_owner.values_mut() {
        keys.sort_by(|a, b| {
            (a.rotation, a.issued_at, &a.key_id).cmp(&(b.rotation, b.issued_at, &b.key_id))
        });
    }
    let mut tokens: Vec<_> = b.snap.tokens.iter().collect();
    tokens.sort_by_key(|d| d.key());
    let mut declared = BTreeSet::new();
    for t in tokens {
        let key = t.key();
        if b.invalid.contains(&key) {
            continue;
        }
        declared.insert(key.clone());
        let keys = by_owner.get(&key).cloned().unwrap_or_default();
        plan_token(b, t, &keys);
    }
    for (key, keys) in by_owner {
        if declared.contains(&key) {
            continue;
        }
        let Some(owner) = keys.first().and_then(|k| k.owner.clone()) else {
            continue;
        };
        if b.protected(&owner) {
            continue;
        }
        b.prune(
            &owner,
            Op::DeleteToken {
                token: keys[0].token_name.clone(),
                key_ids: keys.iter().map(|k| k.key_id.clone()).collect(),
            },
        );
    }
}

fn plan_token(b: &mut Builder, t: &Declared<ApiToken>, keys: &[&TokenKeyRow]) {
    let key = t.key();
    let src = t.source.to_string();
    let spec = &t.object.spec;
    let name = t.object.name_any();
    let secret = SecretName {
        namespace: t.object.namespace().unwrap_or_default(),
        name: t.object.secret_name(),
    };
    let file = b.secret_state(&secret);
    let fields = TokenFields {
        role: spec.role,
        scope: spec.scope(),
        owner: spec.owner.clone(),
        validity: spec.validity.clone(),
    };
    // Validation rejects a bad validity; should one slip through, the key is treated as expired (fail closed).
    let validity = Validity::parse(&spec.validity).ok();
    let owner_problem: Option<(&str, String, &str)> =
        spec.owner
            .as_ref()
            .and_then(|o| match b.users_after.get(o) {
                None => Some((
                    "UnknownUser",
                    format!("owner {o:?} does not exist"),
                    "OwnerDeleted",
                )),
                Some(UserState::Revoked) => {
                    Some(("Revoked", format!("owner {o:?} is revoked"), "OwnerRevoked"))
                }
                Some(UserState::Active) => None,
            });
    let mut extra = BTreeMap::new();
    extra.insert("secretName".to_string(), secret.name.clone());

    // Keys older than the latest are leftovers of rotations: make sure none stays usable.
    let (current, older) = match keys.split_last() {
        Some((c, o)) => (Some(*c), o),
        None => (None, &[][..]),
    };
    for k in older {
        retire(b, &key, &src, &name, k, "Rotated");
    }
    // Why a key of this token must not work now, if it must not.
    let revoke_why = if spec.revoked {
        Some("Revoked")
    } else {
        owner_problem.as_ref().map(|p| p.2)
    };
    let lowered = current
        .filter(|k| k.rotation > spec.rotation)
        .map(|k| lowered_note("spec.rotation", spec.rotation, k.rotation));

    let mut discards = None;
    let mut live = None;
    match current {
        Some(k) if k.rotation < spec.rotation => {
            if k.state == KeyState::Pending && !may_hold(b, k) {
                discards = Some(k.key_id.clone());
            } else {
                retire(b, &key, &src, &name, k, "Rotated");
            }
        }
        Some(k) if k.state == KeyState::Pending && k.revoked_at.is_some() => {}
        Some(k) if k.state == KeyState::Pending => {
            if let SecretState::Unreadable { error } = held(b, k) {
                // It may hold the key: neither complete nor forget it; revoke it if it must not work.
                revoke_if(b, &key, &src, &name, k, revoke_why);
                let msg = format!("cannot read Secret {} that may hold pending key {}: {error}; the key is not in force until the Secret can be read", k.secret_name, k.key_id);
                let mut st = status(t, false, "DeliveryFailed", msg, Some("SecretMissing"));
                st.extra = extra;
                b.set_status(st);
                return;
            }
            if file
                == (SecretState::Ours {
                    key_id: Some(k.key_id.clone()),
                })
            {
                // Delivered before a crash: complete it.
                b.push(
                    &key,
                    &src,
                    Op::CompleteToken {
                        token: name.clone(),
                        key_id: k.key_id.clone(),
                    },
                );
                live = Some(k);
            } else {
                discards = Some(k.key_id.clone());
            }
        }
        Some(k) => live = Some(k),
        None => {}
    }

    if let Some(k) = live {
        let pending_done = k.state == KeyState::Pending;
        extra.insert("keyId".into(), k.key_id.clone());
        extra.insert("issuedAt".into(), k.issued_at.to_string());
        let mut revoked = k.revoked_reason.clone();
        if revoked.is_none() {
            revoked = revoke_if(b, &key, &src, &name, k, revoke_why).map(str::to_string);
        }
        if let Some(why) = revoked {
            let by_spec = why == "Revoked" && spec.revoked;
            // Advise only what works: a rotation issues no key while the token or its owner is revoked.
            let msg = match &owner_problem {
                Some((_, m, "OwnerRevoked")) => format!(
                    "key {} revoked: {m}; a new key can be issued only once the owner is Active again (then increase spec.rotation)",
                    k.key_id
                ),
                Some((_, m, _)) => format!(
                    "key {} revoked: {m}; declare the owner or change spec.owner, then increase spec.rotation to issue a new key",
                    k.key_id
                ),
                None if spec.revoked => format!("key {} revoked by spec.revoked", k.key_id),
                None => format!(
                    "key {} revoked ({why}); increase spec.rotation to issue a new key",
                    k.key_id
                ),
            };
            let mut st = status(t, by_spec, "Revoked", msg, Some("Revoked"));
            st.extra = extra;
            b.set_status(st);
            return;
        }
        let expires = match validity {
            Some(v) => v.duration().and_then(|d| k.issued_at.checked_add(d).ok()),
            None => Some(k.issued_at),
        };
        if let Some(e) = expires {
            extra.insert("expiresAt".into(), e.to_string());
        }
        let mut changes = Vec::new();
        let mut diff = |f: &str, old: String, new: String| {
            if old != new {
                changes.push(FieldChange {
                    field: f.into(),
                    old,
                    new,
                });
            }
        };
        diff("role", k.role.to_string(), spec.role.to_string());
        diff("scope", k.scope.to_string(), fields.scope.to_string());
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        diff("owner", dash(&k.owner_user), dash(&spec.owner));
        let ts = |t: Option<jiff::Timestamp>| t.map_or("never".to_string(), |t| t.to_string());
        diff("expiresAt", ts(k.expires_at), ts(expires));
        if !changes.is_empty() {
            b.push(
                &key,
                &src,
                Op::UpdateToken {
                    token: name.clone(),
                    key_id: k.key_id.clone(),
                    changes,
                    fields: fields.clone(),
                },
            );
        }
        let st = if expires.is_some_and(|e| e <= b.ctx.now) {
            let was =
                b.state.statuses.get(&key).and_then(|s| s.phase.as_deref()) == Some("Expired");
            if !was {
                b.push(
                    &key,
                    &src,
                    Op::ExpireToken {
                        token: name.clone(),
                        key_id: k.key_id.clone(),
                    },
                );
            }
            status(
                t,
                false,
                "Expired",
                format!(
                    "key {} expired; increase spec.rotation to issue a new key",
                    k.key_id
                ),
                Some("Expired"),
            )
        } else if k.secret_name != secret.name {
            // The key went to the old Secret; a new name gets a new key only by rotation (written once).
            status(
                t,
                false,
                "SecretMissing",
                format!(
                    "key {} was delivered to Secret {}; spec.secretName is now {}: increase spec.rotation to deliver a new key there",
                    k.key_id, k.secret_name, secret.name
                ),
                Some("SecretMissing"),
            )
        } else if pending_done {
            status(
                t,
                true,
                "Ready",
                format!("key {} delivered to Secret {}", k.key_id, secret.name),
                Some("Active"),
            )
        } else {
            match &file {
                SecretState::Ours { key_id } if key_id.as_deref() == Some(k.key_id.as_str()) => {
                    status(t, true, "Ready", format!("key {} delivered to Secret {}", k.key_id, secret.name), Some("Active"))
                }
                SecretState::Foreign => status(t, false, "SecretConflict", format!("Secret {} was replaced by one stagegate did not write; key {} stays valid; increase spec.rotation for a new key", secret.name, k.key_id), Some("Active")),
                SecretState::Unreadable { error } => status(t, false, "SecretUnreadable", format!("cannot read Secret {} holding key {}: {error}; the key stays valid", secret.name, k.key_id), Some("Active")),
                _ => status(t, false, "SecretMissing", format!("Secret {} holding key {} is gone; it is not re-issued: increase spec.rotation to issue a new key", secret.name, k.key_id), Some("SecretMissing")),
            }
        };
        let mut st = st;
        st.extra = extra;
        if let Some(note) = &lowered {
            warn_lowered(&mut st, note);
        }
        b.set_status(st);
        return;
    }

    // No live key: issue one if allowed.
    let refuse = if spec.revoked {
        Some((
            true,
            "Revoked",
            "revoked by spec.revoked; no key is issued".to_string(),
            "Revoked",
        ))
    } else if let Some((reason, m, _)) = &owner_problem {
        Some((false, *reason, format!("{m}; no key is issued"), "Revoked"))
    } else if file == SecretState::Foreign {
        Some((false, "SecretConflict", format!("Secret {} exists and was not written by stagegate: it is never overwritten; delete it or set spec.secretName", secret.name), "Revoked"))
    } else if let SecretState::Unreadable { error } = &file {
        // A key that cannot be delivered is not generated: retried at every reconcile.
        Some((
            false,
            "DeliveryFailed",
            format!(
                "cannot read Secret {}: {error}; no key is issued until it can be written",
                secret.name
            ),
            "SecretMissing",
        ))
    } else {
        None
    };
    if let Some((ready, reason, msg, phase)) = refuse {
        if let Some(id) = discards {
            b.push(
                &key,
                &src,
                Op::DiscardToken {
                    token: name.clone(),
                    key_id: id,
                },
            );
        }
        let mut st = status(t, ready, reason, msg, Some(phase));
        st.extra = extra;
        b.set_status(st);
        return;
    }
    b.push(
        &key,
        &src,
        Op::IssueToken {
            token: name.clone(),
            fields,
            rotation: spec.rotation,
            secret: secret.clone(),
            discards,
        },
    );
    let mut st = status(
        t,
        true,
        "Ready",
        format!("a new key is to be delivered to Secret {}", secret.name),
        Some("Active"),
    );
    st.extra = extra;
    b.set_status(st);
}

/// Revokes `k` when there is a reason `why`; returns it.
fn revoke_if<'w>(
    b: &mut Builder,
    key: &ObjectKey,
    src: &str,
    name: &str,
    k: &TokenKeyRow,
    why: Option<&'w str>,
) -> Option<&'w str> {
    let why = why?;
    b.push(
        key,
        src,
        Op::RevokeToken {
            token: name.to_string(),
            key_id: k.key_id.clone(),
            reason: why.into(),
        },
    );
    Some(why)
}

/// What the Secret a key was delivered to holds now.
fn held(b: &Builder, k: &TokenKeyRow) -> SecretState {
    b.secret_state(&SecretName {
        namespace: k.namespace.clone(),
        name: k.secret_name.clone(),
    })
}

/// Whether a pending key may have reached its Secret (it holds the key, or cannot be read).
fn may_hold(b: &Builder, k: &TokenKeyRow) -> bool {
    match held(b, k) {
        SecretState::Ours { key_id } => key_id.as_deref() == Some(k.key_id.as_str()),
        SecretState::Unreadable { .. } => true,
        SecretState::Absent | SecretState::Foreign => false,
    }
}

/// The warning of a rotation counter declared lower than the one in force.
pub(super) fn lowered_note(field: &str, declared: u32, current: u32) -> String {
    format!("{field} {declared} is lower than {current}, the rotation in force: lowering it changes nothing; increase it past {current} to rotate")
}

/// Adds the warning of a lowered rotation to a status (reason `RotationLowered` when it was otherwise ready).
pub(super) fn warn_lowered(st: &mut crate::store::ObjectStatus, note: &str) {
    if st.ready {
        st.reason = "RotationLowered".into();
    }
    st.message = format!("{}; warning: {note}", st.message);
}

/// Makes sure an older key is unusable: discard if pending and never delivered, else revoke.
fn retire(b: &mut Builder, key: &ObjectKey, src: &str, name: &str, k: &TokenKeyRow, why: &str) {
    if k.revoked_at.is_some() {
        return;
    }
    if k.state == KeyState::Pending && !may_hold(b, k) {
        b.push(
            key,
            src,
            Op::DiscardToken {
                token: name.to_string(),
                key_id: k.key_id.clone(),
            },
        );
    } else {
        revoke_if(b, key, src, name, k, Some(why));
    }
}
