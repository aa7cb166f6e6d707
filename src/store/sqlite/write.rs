//! The store's writes: one function per kind of `StoreOp`, so each change reads on its own.

use super::{exec, revision};
use crate::secrets::HashValue;
use crate::snapshot::ObjectKey;
use crate::store::model::*;
use crate::store::rows::*;
use crate::store::StoreError;
use rusqlite::{params, Transaction};

/// Writes one store operation; each kind has its own function below.
pub(super) fn write_op(tx: &Transaction, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::ExpectRevision(expected) => expect_revision(tx, *expected),
        StoreOp::UpsertUser(u) => upsert_user(tx, u),
        StoreOp::DeleteUser(name) => delete_user(tx, name),
        StoreOp::EndSessions(name) => end_sessions(tx, name),
        StoreOp::UpsertBinding(b) => upsert_binding(tx, b),
        StoreOp::DeleteBinding(k) => delete_binding(tx, k),
        StoreOp::UpsertTokenKey(t) => upsert_token_key(tx, t),
        StoreOp::DeleteTokenKey(id) => delete_token_key(tx, id),
        StoreOp::UpsertModel(m) => upsert_model(tx, m),
        StoreOp::InsertRequest(r) => insert_request(tx, r),
        StoreOp::SetStatus(s) => set_status(tx, s),
        StoreOp::DeleteStatus(k) => delete_status(tx, k),
        StoreOp::Audit(a) => audit(tx, a),
    }
}

fn expect_revision(tx: &Transaction, expected: i64) -> Result<(), StoreError> {
    let found = revision(tx)?;
    if found != expected {
        return Err(StoreError::Stale { expected, found });
    }
    Ok(())
}

fn upsert_user(tx: &Transaction, u: &UserRow) -> Result<(), StoreError> {
    let o = owner_cols(&u.owner);
    let p = u.pending_password.as_ref();
    let i = u.invitation.as_ref();
    exec(
        tx,
        // An upsert, not INSERT OR REPLACE: replacing would delete the row and its sessions.
        "INSERT INTO users (username, display_name, email, state, password_hash,
           password_source, password_fingerprint, password_id, password_rotation,
           pending_password_id, pending_password_hash, pending_rotation, first_login,
           last_login, bootstrap, owner_kind, owner_namespace, owner_name, owner_source,
           password_chosen_at, invitation_id, invitation_hmac, invitation_rotation,
           invitation_issued_at, invitation_expires_at, invitation_state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
           ?20, ?21, ?22, ?23, ?24, ?25, ?26)
         ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name,
           email = excluded.email, state = excluded.state, password_hash = excluded.password_hash,
           password_source = excluded.password_source,
           password_fingerprint = excluded.password_fingerprint,
           password_id = excluded.password_id, password_rotation = excluded.password_rotation,
           pending_password_id = excluded.pending_password_id,
           pending_password_hash = excluded.pending_password_hash,
           pending_rotation = excluded.pending_rotation,
           -- A login recorded since the apply read the row is kept (same owner: not a replacement).
           first_login = coalesce(excluded.first_login, CASE WHEN users.owner_kind IS excluded.owner_kind
             AND users.owner_namespace IS excluded.owner_namespace AND users.owner_name IS excluded.owner_name
             THEN users.first_login END),
           last_login = coalesce(excluded.last_login, CASE WHEN users.owner_kind IS excluded.owner_kind
             AND users.owner_namespace IS excluded.owner_namespace AND users.owner_name IS excluded.owner_name
             THEN users.last_login END),
           bootstrap = excluded.bootstrap,
           owner_kind = excluded.owner_kind, owner_namespace = excluded.owner_namespace,
           owner_name = excluded.owner_name, owner_source = excluded.owner_source,
           password_chosen_at = excluded.password_chosen_at,
           invitation_id = excluded.invitation_id, invitation_hmac = excluded.invitation_hmac,
           invitation_rotation = excluded.invitation_rotation,
           invitation_issued_at = excluded.invitation_issued_at,
           invitation_expires_at = excluded.invitation_expires_at,
           invitation_state = excluded.invitation_state",
        params![
            u.username,
            u.display_name,
            u.email,
            user_state_str(u.state),
            u.password_hash.as_ref().map(HashValue::expose),
            u.password_source.map(PasswordSource::as_str),
            u.password_fingerprint.as_ref().map(HashValue::expose),
            u.password_id,
            u.password_rotation,
            p.map(|p| p.id.clone()),
            p.map(|p| p.hash.expose().to_string()),
            p.map(|p| p.rotation),
            u.first_login.map(|t| t.to_string()),
            u.last_login.map(|t| t.to_string()),
            u.bootstrap,
            o[0], o[1], o[2], o[3],
            u.password_chosen_at.map(|t| t.to_string()),
            i.map(|i| i.id.clone()),
            i.map(|i| i.code_hmac.expose().to_string()),
            i.map(|i| i.rotation),
            i.map(|i| i.issued_at.to_string()),
            i.map(|i| i.expires_at.to_string()),
            i.map(|i| i.state.as_str()),
        ],
    )?;
    Ok(())
}

fn delete_user(tx: &Transaction, name: &str) -> Result<(), StoreError> {
    exec(tx, "DELETE FROM users WHERE username = ?1", [name])?;
    Ok(())
}

/// Writes a password the person chose if the row still holds what it replaces (see
/// [`ChosenPassword`]); ends the user's other sessions and records the audit row. False when
/// the row moved on (nothing written).
pub(super) fn chosen_password(tx: &Transaction, p: &ChosenPassword) -> Result<bool, StoreError> {
    let at = p.at.to_string();
    let changed = match &p.replaces {
        // The caller checked the expiry on the row it read: an invitation's expiry never changes
        // under its id (a new invitation has a new id), so the id and state are enough here.
        Replaces::Invitation(id) => exec(
            tx,
            "UPDATE users SET password_hash = ?1, password_chosen_at = ?2,
               invitation_state = 'accepted'
             WHERE username = ?3 AND state = 'Active' AND invitation_id = ?4
               AND invitation_state = 'issued'",
            params![p.hash.expose(), at, p.username, id],
        )?,
        Replaces::Password(old) => exec(
            tx,
            "UPDATE users SET password_hash = ?1, password_chosen_at = ?2
             WHERE username = ?3 AND state = 'Active' AND password_hash = ?4",
            params![p.hash.expose(), at, p.username, old.expose()],
        )?,
    };
    if changed != 1 {
        return Ok(false);
    }
    exec(
        tx,
        "DELETE FROM sessions WHERE username = ?1 AND id_hash IS NOT ?2",
        params![p.username, p.keep_session.as_ref().map(HashValue::expose)],
    )?;
    audit(tx, &p.audit)?;
    Ok(true)
}

fn end_sessions(tx: &Transaction, name: &str) -> Result<(), StoreError> {
    exec(tx, "DELETE FROM sessions WHERE username = ?1", [name])?;
    Ok(())
}

fn upsert_binding(tx: &Transaction, b: &BindingRow) -> Result<(), StoreError> {
    let o = owner_cols(&b.owner);
    let (c, p) = scope_cols(&b.scope);
    if b.owner.is_some() {
        exec(
            tx,
            "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
            params![o[1], o[2]],
        )?;
    }
    exec(
        tx,
        "INSERT INTO bindings (username, role, scope_customer, scope_project,
           owner_kind, owner_namespace, owner_name, owner_source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![b.username, b.role.as_str(), c, p, o[0], o[1], o[2], o[3]],
    )?;
    Ok(())
}

fn delete_binding(tx: &Transaction, k: &ObjectKey) -> Result<(), StoreError> {
    exec(
        tx,
        "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
        params![k.namespace, k.name],
    )?;
    Ok(())
}

fn upsert_token_key(tx: &Transaction, t: &TokenKeyRow) -> Result<(), StoreError> {
    let o = owner_cols(&t.owner);
    let (c, p) = scope_cols(&t.scope);
    exec(
        tx,
        "INSERT OR REPLACE INTO token_keys (key_id, token_name, namespace, secret_hmac, role,
           scope_customer, scope_project, owner_user, issued_at, expires_at, revoked_at,
           revoked_reason, rotation, state, secret_name, owner_kind, owner_namespace,
           owner_name, owner_source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        params![
            t.key_id,
            t.token_name,
            t.namespace,
            t.secret_hmac.expose(),
            t.role.as_str(),
            c,
            p,
            t.owner_user,
            t.issued_at.to_string(),
            t.expires_at.map(|x| x.to_string()),
            t.revoked_at.map(|x| x.to_string()),
            t.revoked_reason,
            t.rotation,
            t.state.as_str(),
            t.secret_name,
            o[0], o[1], o[2], o[3],
        ],
    )?;
    Ok(())
}

fn delete_token_key(tx: &Transaction, id: &str) -> Result<(), StoreError> {
    exec(tx, "DELETE FROM token_keys WHERE key_id = ?1", [id])?;
    Ok(())
}

fn upsert_model(tx: &Transaction, m: &ModelRow) -> Result<(), StoreError> {
    let (c, p) = scope_cols(&m.scope);
    exec(
        tx,
        "INSERT OR REPLACE INTO models (name, scope_customer, scope_project, owner, stage)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![m.name, c, p, m.owner, m.stage.as_str()],
    )?;
    Ok(())
}

fn insert_request(tx: &Transaction, r: &DecidedRequest) -> Result<(), StoreError> {
    let (c, p) = scope_cols(&r.scope);
    // Plain INSERT: a decided request is final, a second decision must fail loudly.
    exec(
        tx,
        "INSERT INTO stage_requests (namespace, name, model, scope_customer, scope_project,
           from_stage, to_stage, requested_by, phase, message, decided_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            r.namespace,
            r.name,
            r.model,
            c,
            p,
            r.from.as_str(),
            r.to.as_str(),
            r.requested_by,
            phase_str(r.phase),
            r.message,
            r.decided_at.to_string(),
            r.source,
        ],
    )?;
    Ok(())
}

fn set_status(tx: &Transaction, s: &ObjectStatus) -> Result<(), StoreError> {
    let extra =
        serde_json::to_string(&s.extra).map_err(|e| corrupt("object_status", e.to_string()))?;
    exec(
        tx,
        "INSERT OR REPLACE INTO object_status (kind, namespace, name, ready, reason, message,
           phase, observed_generation, extra_json, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.key.kind,
            s.key.namespace,
            s.key.name,
            s.ready,
            s.reason,
            s.message,
            s.phase,
            s.observed_generation,
            extra,
            s.source,
        ],
    )?;
    Ok(())
}

fn delete_status(tx: &Transaction, k: &ObjectKey) -> Result<(), StoreError> {
    exec(
        tx,
        "DELETE FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        params![k.kind, k.namespace, k.name],
    )?;
    Ok(())
}

fn audit(tx: &Transaction, a: &AuditRow) -> Result<(), StoreError> {
    let j = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    exec(
        tx,
        "INSERT INTO audit_log (at, action, kind, namespace, name, source, old_json, new_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            a.at.to_string(),
            a.action,
            a.object.kind,
            a.object.namespace,
            a.object.name,
            a.source,
            j(&a.old),
            j(&a.new),
        ],
    )?;
    Ok(())
}
