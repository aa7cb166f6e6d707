//! The bootstrap administrator: the one way in before anyone is declared, and
//! not a permanent back door.
//!
//! [`ensure_bootstrap_admin`] runs after every *successful* reconcile, in any
//! front end (directory daemon, Kubernetes controller):
//!
//! ```text
//!  store has an active, non-bootstrap user with a global Admin binding?
//!    no  ─► bootstrap user absent   → create it (global Admin), password generated and delivered once
//!           bootstrap user disabled → re-create it with a new password (warning + audit)
//!           bootstrap user active   → nothing (never re-delivered)
//!    yes ─► bootstrap user active and that admin can log in → disable it (sessions end, audited)
//!           otherwise               → nothing (never re-created while a global Admin exists)
//! ```
//!
//! It is an ordinary store row marked `bootstrap`, with no owning declaration
//! (so `plan` never prunes it) and a global Admin binding of its own. Its
//! password follows the crash-safe path of every generated password:
//! recorded pending → delivered → made current; a pending password whose
//! Secret does not hold it is discarded and a new one issued.

use crate::policy::{Role, Scope};
use crate::resources::UserState;
use crate::secrets::{
    generate_password, hash_password, new_key_id, Delivery, OutgoingSecret, PasswordError,
    PasswordParams, SecretSink, SecretState, SecretValue, SinkError,
};
use crate::snapshot::ObjectKey;
use crate::store::{
    AuditRow, BindingRow, ObjectStatus, PasswordSource, PendingPassword, Store, StoreError,
    StoreOp, StoreState, UserRow,
};
use jiff::Timestamp;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::snapshot::BOOTSTRAP_SECRET;
use crate::snapshot::BOOTSTRAP_SOURCE;
/// Namespace of that Secret in directory mode: `<secrets-dir>/stagegate-system/stagegate-bootstrap-admin.yaml`.
pub const DIR_MODE_NAMESPACE: &str = "stagegate-system";

/// Which bootstrap administrator to keep, and where its Secret goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// Its username (`--bootstrap-admin`, default `admin`).
    pub username: String,
    /// Namespace of its Secret (the controller's namespace, or [`DIR_MODE_NAMESPACE`]).
    pub namespace: String,
}

impl BootstrapConfig {
    /// The key its status and audit rows carry: `User <namespace>/bootstrap:<username>`.
    /// The `:` cannot appear in a Kubernetes object name, so no declared User
    /// can take this key and hide the bootstrap administrator from `status`.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            "User",
            &self.namespace,
            &format!("bootstrap:{}", self.username),
        )
    }

    /// The key earlier versions gave its status row (`User <namespace>/<username>`), removed once seen.
    fn legacy_key(&self) -> ObjectKey {
        ObjectKey::new("User", &self.namespace, &self.username)
    }
}

/// What [`ensure_bootstrap_admin`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapAction {
    /// Nothing to do.
    Unchanged,
    /// Created, password delivered to `namespace/secret`.
    Created,
    /// Re-created with a new password: every global Admin had gone.
    Recreated,
    /// A password recorded before a crash was delivered: made current.
    Completed,
    /// It had no usable password (a delivery failed before): a first one was issued.
    Reissued,
    /// Disabled: a declared global Admin can log in.
    Disabled,
    /// The Secret's name is held by something stagegate did not write.
    SecretConflict,
    /// A user that is not the bootstrap administrator holds its username.
    NameTaken,
    /// Its Secret could not be read or written: reported in its status, retried next reconcile.
    DeliveryFailed,
}

/// Errors of the bootstrap step (never carry the password).
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secret sink failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Active users other than bootstrap ones with a global Admin binding.
///
/// The global Admin usernames are collected once: checking each user against every
/// binding cost users × bindings string comparisons (half a billion at 10,000 users and
/// 50,000 bindings, most of a reconcile).
fn real_admins(state: &StoreState) -> Vec<&UserRow> {
    let global_admins: BTreeSet<&str> = state
        .bindings
        .iter()
        .filter(|b| b.role == Role::Admin && b.scope.is_global())
        .map(|b| b.username.as_str())
        .collect();
    state
        .users
        .values()
        .filter(|u| !u.bootstrap && u.state == UserState::Active)
        .filter(|u| global_admins.contains(u.username.as_str()))
        .collect()
}

/// Whether [`ensure_bootstrap_admin_in`] reads the same from `before`, the store's state
/// before `changes` were committed, as from the state after them: none of them touches
/// what it reads (users, global Admin bindings, a `User` status row). Then the directory
/// daemon need not read the whole store again after its apply.
///
/// Conservative: token, model and request changes and statuses of other kinds pass; a
/// binding change passes when neither it nor a stored binding of its user is a global
/// Admin one; any other change (every user change, and kinds added later) reads again.
pub fn unaffected_by(changes: &[crate::plan::Change], before: &StoreState) -> bool {
    use crate::plan::Op;
    let admin = |role: &Role, scope: &Scope| *role == Role::Admin && scope.is_global();
    // The stored global Admin bindings (a handful): by username, and by declaration, since
    // an update may move a binding to another user.
    let stored: Vec<&crate::store::BindingRow> = before
        .bindings
        .iter()
        .filter(|b| admin(&b.role, &b.scope))
        .collect();
    let stored_admin = |username: &str, object: &ObjectKey| {
        stored
            .iter()
            .any(|b| b.username == username || b.owner.as_ref().is_some_and(|o| o.key == *object))
    };
    changes.iter().all(|c| {
        if c.object.kind == "User" {
            return false;
        }
        if let Some((username, role, scope)) = c.op.binding() {
            return !admin(&role, scope) && !stored_admin(username, &c.object);
        }
        matches!(
            c.op,
            Op::SetStatus { .. }
                | Op::DeleteStatus
                | Op::IssueToken { .. }
                | Op::CompleteToken { .. }
                | Op::DiscardToken { .. }
                | Op::UpdateToken { .. }
                | Op::RevokeToken { .. }
                | Op::ExpireToken { .. }
                | Op::DeleteToken { .. }
                | Op::DecideRequest { .. }
        )
    })
}

/// Creates, completes, disables or re-creates the bootstrap administrator as the store requires.
pub fn ensure_bootstrap_admin(
    store: &mut dyn Store,
    sink: &dyn SecretSink,
    cfg: &BootstrapConfig,
    params: PasswordParams,
    now: Timestamp,
) -> Result<BootstrapAction, BootstrapError> {
    let state = store.load_state()?;
    ensure_bootstrap_admin_in(store, &state, sink, cfg, params, now)
}

/// [`ensure_bootstrap_admin`] given `state`, the store's current state as the caller
/// just read it (the directory daemon keeps it while the store does not change).
pub fn ensure_bootstrap_admin_in(
    store: &mut dyn Store,
    state: &StoreState,
    sink: &dyn SecretSink,
    cfg: &BootstrapConfig,
    params: PasswordParams,
    now: Timestamp,
) -> Result<BootstrapAction, BootstrapError> {
    if state
        .statuses
        .get(&cfg.legacy_key())
        .is_some_and(|s| s.source == BOOTSTRAP_SOURCE)
    {
        store.commit(&[StoreOp::DeleteStatus(cfg.legacy_key())])?;
    }
    let admins = real_admins(state);
    let row = state.users.get(&cfg.username);
    match row {
        Some(u) if !u.bootstrap => {
            if admins.is_empty() {
                tracing::warn!(username = %cfg.username, "no global Admin in the store, and the bootstrap administrator's username is held by another user: choose another with --bootstrap-admin");
                return Ok(BootstrapAction::NameTaken);
            }
            Ok(BootstrapAction::Unchanged)
        }
        None if admins.is_empty() => {
            // A store that once granted a global Admin (the examples' `ada`, say) and has
            // none left: the administrator comes back, as the README promises, loudly.
            if had_global_admin(store)? {
                warn_recreate(cfg);
                issue(store, sink, cfg, params, now, None, true)
            } else {
                issue(store, sink, cfg, params, now, None, false)
            }
        }
        Some(u) if u.state == UserState::Revoked && admins.is_empty() => {
            warn_recreate(cfg);
            issue(store, sink, cfg, params, now, Some(u), true)
        }
        Some(u) if u.state == UserState::Active => {
            if admins.iter().any(|a| a.can_log_in()) {
                disable(store, cfg, u, &admins, now)
            } else if let Some(p) = &u.pending_password {
                // A crash between recording and delivering: complete or start over.
                match sink.state(&cfg.namespace, BOOTSTRAP_SECRET) {
                    Ok(SecretState::Ours { key_id })
                        if key_id.as_deref() == Some(p.id.as_str()) =>
                    {
                        complete(store, cfg, u, now)
                    }
                    // It may hold the pending password: keep it, and say why nothing moves.
                    Err(e) => delivery_failed(store, cfg, &e),
                    Ok(_) => issue(store, sink, cfg, params, now, Some(u), false),
                }
            } else if u.password_hash.is_none() {
                // Never delivered (the delivery failed): issuing now is not a re-delivery.
                issue(store, sink, cfg, params, now, Some(u), false)
            } else {
                Ok(BootstrapAction::Unchanged)
            }
        }
        _ => Ok(BootstrapAction::Unchanged),
    }
}

/// True when the audit log shows a global Admin binding was ever written: the
/// store had an administrator, so one appearing now is a re-creation.
fn had_global_admin(store: &dyn Store) -> Result<bool, StoreError> {
    let global_admin = |v: &Option<serde_json::Value>| {
        v.as_ref().is_some_and(|v| {
            v["role"] == json!(Role::Admin) && v["scope"] == json!(Scope::global().to_string())
        })
    };
    Ok(store
        .audit(0)?
        .iter()
        .any(|a| a.action.starts_with("binding.") && global_admin(&a.new)))
}

/// The warning every re-creation logs (the README quotes it).
fn warn_recreate(cfg: &BootstrapConfig) {
    let secret = format!("{}/{}", cfg.namespace, BOOTSTRAP_SECRET);
    tracing::warn!(username = %cfg.username, %secret, "every global Admin is gone: re-creating the bootstrap administrator with a new password");
}

fn audit(cfg: &BootstrapConfig, now: Timestamp, action: &str, new: serde_json::Value) -> StoreOp {
    StoreOp::Audit(Box::new(AuditRow {
        id: 0,
        at: now,
        action: action.to_string(),
        object: cfg.key(),
        source: BOOTSTRAP_SOURCE.to_string(),
        old: None,
        new: Some(new),
    }))
}

fn status(
    cfg: &BootstrapConfig,
    ready: bool,
    reason: &str,
    phase: &str,
    message: String,
) -> StoreOp {
    let mut extra = BTreeMap::new();
    extra.insert("bootstrap".to_string(), "true".to_string());
    // The store marks the first login of this username Active in this row (record_login).
    extra.insert("username".to_string(), cfg.username.clone());
    extra.insert(
        "secretName".to_string(),
        format!("{}/{}", cfg.namespace, BOOTSTRAP_SECRET),
    );
    StoreOp::SetStatus(Box::new(ObjectStatus {
        key: cfg.key(),
        ready,
        reason: reason.to_string(),
        message,
        phase: Some(phase.to_string()),
        observed_generation: None,
        extra,
        source: BOOTSTRAP_SOURCE.to_string(),
    }))
}

/// Generates a password, records it pending, delivers it, then makes it current.
fn issue(
    store: &mut dyn Store,
    sink: &dyn SecretSink,
    cfg: &BootstrapConfig,
    params: PasswordParams,
    now: Timestamp,
    existing: Option<&UserRow>,
    recreate: bool,
) -> Result<BootstrapAction, BootstrapError> {
    let password = generate_password();
    let hash = hash_password(params, &password)?;
    let id = new_key_id();
    let mut row = existing.cloned().unwrap_or_else(|| {
        let mut u = UserRow::new(&cfg.username, None);
        u.display_name = Some("Bootstrap administrator".into());
        u
    });
    row.bootstrap = true;
    row.pending_password = Some(PendingPassword {
        id: id.clone(),
        hash,
        rotation: row.password_rotation,
    });
    // Not usable until delivered: a re-created one stays disabled until then.
    let mut first = vec![StoreOp::UpsertUser(Box::new(row.clone()))];
    let state = store.load_state()?;
    let bound = state
        .bindings
        .iter()
        .any(|b| b.username == cfg.username && b.owner.is_none() && b.role == Role::Admin);
    if !bound {
        first.push(StoreOp::UpsertBinding(BindingRow {
            username: cfg.username.clone(),
            role: Role::Admin,
            scope: Scope::global(),
            owner: None,
        }));
    }
    let action = match (existing.is_some(), recreate) {
        (_, true) => "bootstrap.recreate",
        (false, _) => "bootstrap.create",
        (true, false) => "bootstrap.reissue",
    };
    let where_ = format!("{}/{}", cfg.namespace, BOOTSTRAP_SECRET);
    first.push(audit(
        cfg,
        now,
        action,
        json!({"username": cfg.username, "passwordId": id, "secret": where_, "state": "pending"}),
    ));
    store.commit(&first)?;

    let mut data = BTreeMap::new();
    data.insert(
        "username".to_string(),
        SecretValue::from_string(cfg.username.clone()),
    );
    data.insert("password".to_string(), password);
    let outgoing = OutgoingSecret {
        namespace: cfg.namespace.clone(),
        name: BOOTSTRAP_SECRET.to_string(),
        data,
        key_id: id.clone(),
        expires_at: None,
        owner: cfg.key(),
    };
    let delivered = sink.deliver(&outgoing);
    let mut second = Vec::new();
    let result = match delivered {
        Ok(Delivery::Delivered) => {
            if let Some(p) = row.pending_password.take() {
                row.password_hash = Some(p.hash);
                row.password_id = Some(p.id);
                row.password_source = Some(PasswordSource::Generated);
            }
            row.state = UserState::Active;
            second.push(StoreOp::UpsertUser(Box::new(row)));
            second.push(StoreOp::EndSessions(cfg.username.clone()));
            second.push(audit(
                cfg,
                now,
                "bootstrap.deliver",
                json!({"passwordId": id, "secret": where_}),
            ));
            second.push(status(cfg, true, "BootstrapAdmin", "Invited", format!("bootstrap administrator; its password was delivered once to Secret {where_}; it is disabled once a declared user with a global Admin binding can log in")));
            if recreate {
                tracing::warn!(username = %cfg.username, secret = %where_, "bootstrap administrator re-created; new password delivered once");
                Ok(BootstrapAction::Recreated)
            } else {
                tracing::info!(username = %cfg.username, secret = %where_, "bootstrap administrator created; password delivered once");
                Ok(if existing.is_some() {
                    BootstrapAction::Reissued
                } else {
                    BootstrapAction::Created
                })
            }
        }
        Ok(Delivery::Conflict) => {
            row.pending_password = None;
            second.push(StoreOp::UpsertUser(Box::new(row)));
            second.push(audit(
                cfg,
                now,
                "secret.conflict",
                json!({"secret": where_}),
            ));
            second.push(status(cfg, false, "SecretConflict", "Invited", format!("Secret {where_} exists and was not written by stagegate: it is never overwritten; remove it to get a bootstrap password")));
            tracing::error!(username = %cfg.username, secret = %where_, "bootstrap administrator password not delivered: the Secret exists and was not written by stagegate");
            Ok(BootstrapAction::SecretConflict)
        }
        Err(e) => {
            // Nothing usable was created: forget the pending password, report the failure in its status.
            row.pending_password = None;
            second.push(StoreOp::UpsertUser(Box::new(row)));
            store.commit(&second)?;
            return delivery_failed(store, cfg, &e);
        }
    };
    store.commit(&second)?;
    result
}

/// Makes a pending password that reached its Secret current (recovery after a crash).
fn complete(
    store: &mut dyn Store,
    cfg: &BootstrapConfig,
    u: &UserRow,
    now: Timestamp,
) -> Result<BootstrapAction, BootstrapError> {
    let mut row = u.clone();
    let Some(p) = row.pending_password.take() else {
        return Ok(BootstrapAction::Unchanged);
    };
    let id = p.id.clone();
    row.password_hash = Some(p.hash);
    row.password_id = Some(p.id);
    row.password_source = Some(PasswordSource::Generated);
    let where_ = format!("{}/{}", cfg.namespace, BOOTSTRAP_SECRET);
    store.commit(&[
        StoreOp::UpsertUser(Box::new(row)),
        audit(
            cfg,
            now,
            "bootstrap.deliver",
            json!({"passwordId": id, "secret": where_}),
        ),
        status(
            cfg,
            true,
            "BootstrapAdmin",
            "Invited",
            format!("bootstrap administrator; its password was delivered once to Secret {where_}"),
        ),
    ])?;
    tracing::info!(username = %cfg.username, secret = %where_, "bootstrap administrator password delivery completed");
    Ok(BootstrapAction::Completed)
}

/// A Secret fault is the bootstrap administrator's outcome, never the reconcile's.
fn delivery_failed(
    store: &mut dyn Store,
    cfg: &BootstrapConfig,
    e: &SinkError,
) -> Result<BootstrapAction, BootstrapError> {
    let where_ = format!("{}/{}", cfg.namespace, BOOTSTRAP_SECRET);
    tracing::error!(username = %cfg.username, secret = %where_, error = %e.brief(), "bootstrap administrator password not delivered; retried at the next reconcile");
    store.commit(&[status(
        cfg,
        false,
        "DeliveryFailed",
        "Invited",
        format!(
            "its password could not be delivered to Secret {where_}: {}; retried at the next reconcile",
            e.brief()
        ),
    )])?;
    Ok(BootstrapAction::DeliveryFailed)
}

fn disable(
    store: &mut dyn Store,
    cfg: &BootstrapConfig,
    u: &UserRow,
    admins: &[&UserRow],
    now: Timestamp,
) -> Result<BootstrapAction, BootstrapError> {
    let mut row = u.clone();
    row.state = UserState::Revoked;
    row.pending_password = None;
    let by: Vec<&str> = admins
        .iter()
        .filter(|a| a.can_log_in())
        .map(|a| a.username.as_str())
        .collect();
    store.commit(&[
        StoreOp::UpsertUser(Box::new(row)),
        StoreOp::EndSessions(cfg.username.clone()),
        audit(cfg, now, "bootstrap.disable", json!({"username": cfg.username, "state": "Revoked", "globalAdmins": by})),
        status(cfg, true, "BootstrapDisabled", "Revoked", format!("bootstrap administrator disabled: declared global Admin(s) {} can log in; its sessions ended and its login is refused", by.join(", "))),
    ])?;
    tracing::info!(username = %cfg.username, "bootstrap administrator disabled: declared global Admin {} exists and can log in; its sessions ended and its login is refused", by.join(", "));
    Ok(BootstrapAction::Disabled)
}

#[cfg(test)]
#[path = "bootstrap_tests.rs"]
mod tests;
