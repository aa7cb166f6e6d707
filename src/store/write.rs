//! The store's writes: one function per kind of `StoreOp`, so each change reads on its own.
//!
//! The statements are written in the SQL both databases speak (`ON CONFLICT ... DO UPDATE`,
//! `IS NOT DISTINCT FROM`, `?N` parameters that the PostgreSQL store numbers `$N`), so
//! SQLite and PostgreSQL perform the same writes and a new column is added in one place.

use crate::secrets::HashValue;
use crate::snapshot::ObjectKey;
use crate::store::model::*;
use crate::store::rows::*;
use crate::store::StoreError;

/// One open write transaction of either database.
pub(super) trait Writer {
    /// Runs one statement with `args` bound to `?1..?N` (PostgreSQL: after the queued rows).
    fn exec(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<(), StoreError>;
    /// Writes one row with `stmt` (`args` bound to `?1..?N`). SQLite runs it at once;
    /// PostgreSQL queues it and later sends every queued row of `stmt` as one statement.
    fn row(&mut self, stmt: &'static Stmt, args: Vec<Val<'_>>) -> Result<(), StoreError> {
        self.exec(stmt.sql, args)
    }
    /// Runs one statement now (PostgreSQL: after the queued ones) and returns how many rows it
    /// changed, for writes that depend on what the row holds.
    fn exec_counted(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<u64, StoreError>;
    /// The store revision as this transaction sees it.
    fn revision(&mut self) -> Result<i64, StoreError>;
}

/// What a [`Stmt`] does to its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Effect {
    /// Deletes the rows whose key columns equal the key parameters (none when one is NULL).
    Delete,
    /// Inserts one row, or updates the row with the same key (`ON CONFLICT` on the key).
    Insert,
}

/// A write statement of one row, described so that a store may run many rows of it as one
/// statement (PostgreSQL) and know which writes it may reorder to do so: rows of different
/// tables never interact within a commit (sessions refer to users, but no commit inserts
/// sessions), and rows of one table with different keys do not either, except through a
/// unique constraint besides the key (`other_unique`).
#[derive(Debug)]
pub(super) struct Stmt {
    /// The table written.
    pub table: &'static str,
    /// Delete or insert.
    pub effect: Effect,
    /// Parameters (0-based) holding the row's key, in the same column order for every
    /// statement of the table; empty when rows have no key (the audit log).
    pub key: &'static [usize],
    /// The table has a unique constraint besides the key (users: invitation ids), so a delete
    /// may free a value a later insert takes: deletes are then never moved ahead of inserts.
    pub other_unique: bool,
    /// The one-row statement: `INSERT INTO <table> (...) VALUES (?1, ...) ...` or
    /// `DELETE FROM <table> WHERE ...`.
    pub sql: &'static str,
}

/// Bumps the revision: the last write of every commit.
pub(super) const BUMP_REVISION: &str =
    "UPDATE store_meta SET value = value + 1 WHERE key = 'revision'";

/// Writes one store operation; each kind has its own function below.
pub(super) fn write_op(tx: &mut dyn Writer, op: &StoreOp) -> Result<(), StoreError> {
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

fn expect_revision(tx: &mut dyn Writer, expected: i64) -> Result<(), StoreError> {
    let found = tx.revision()?;
    if found != expected {
        return Err(StoreError::Stale { expected, found });
    }
    Ok(())
}

// An upsert, not INSERT OR REPLACE: replacing would delete the row and its sessions.
static USER_UPSERT: Stmt = Stmt {
    table: "users",
    effect: Effect::Insert,
    key: &[0],
    other_unique: true,
    sql: "INSERT INTO users (username, display_name, email, state, password_hash,
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
           first_login = coalesce(excluded.first_login, CASE WHEN users.owner_kind IS NOT DISTINCT FROM excluded.owner_kind
             AND users.owner_namespace IS NOT DISTINCT FROM excluded.owner_namespace AND users.owner_name IS NOT DISTINCT FROM excluded.owner_name
             THEN users.first_login END),
           last_login = coalesce(excluded.last_login, CASE WHEN users.owner_kind IS NOT DISTINCT FROM excluded.owner_kind
             AND users.owner_namespace IS NOT DISTINCT FROM excluded.owner_namespace AND users.owner_name IS NOT DISTINCT FROM excluded.owner_name
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
};

fn upsert_user(tx: &mut dyn Writer, u: &UserRow) -> Result<(), StoreError> {
    let o = owner_cols(&u.owner);
    let p = u.pending_password.as_ref();
    let i = u.invitation.as_ref();
    tx.row(
        &USER_UPSERT,
        vals![
            u.username,
            u.display_name,
            u.email,
            user_state_str(u.state),
            u.password_hash.as_ref().map(HashValue::expose),
            u.password_source.map(PasswordSource::as_str),
            u.password_fingerprint.as_ref().map(HashValue::expose),
            u.password_id,
            u.password_rotation,
            p.map(|p| p.id.as_str()),
            p.map(|p| p.hash.expose()),
            p.map(|p| p.rotation),
            u.first_login.map(|t| t.to_string()),
            u.last_login.map(|t| t.to_string()),
            u.bootstrap,
            o[0],
            o[1],
            o[2],
            o[3],
            u.password_chosen_at.map(|t| t.to_string()),
            i.map(|i| i.id.as_str()),
            i.map(|i| i.code_hmac.expose()),
            i.map(|i| i.rotation),
            i.map(|i| i.issued_at.to_string()),
            i.map(|i| i.expires_at.to_string()),
            i.map(|i| i.state.as_str()),
        ],
    )?;
    Ok(())
}

static USER_DELETE: Stmt = Stmt {
    table: "users",
    effect: Effect::Delete,
    key: &[0],
    other_unique: true,
    sql: "DELETE FROM users WHERE username = ?1",
};

fn delete_user(tx: &mut dyn Writer, name: &str) -> Result<(), StoreError> {
    tx.row(&USER_DELETE, vals![name])?;
    Ok(())
}

static OTHER_SESSIONS_DELETE: Stmt = Stmt {
    table: "sessions",
    effect: Effect::Delete,
    key: &[0],
    other_unique: false,
    sql: "DELETE FROM sessions WHERE username = ?1 AND id_hash IS DISTINCT FROM ?2",
};

/// Writes a password the person chose if the row still holds what it replaces (see
/// [`ChosenPassword`]); ends the user's other sessions and records the audit row. False when
/// the row moved on (nothing written).
pub(super) fn chosen_password(tx: &mut dyn Writer, p: &ChosenPassword) -> Result<bool, StoreError> {
    let at = p.at.to_string();
    let changed = match &p.replaces {
        // The caller checked the expiry on the row it read: an invitation's expiry never changes
        // under its id (a new invitation has a new id), so the id and state are enough here.
        Replaces::Invitation(id) => tx.exec_counted(
            "UPDATE users SET password_hash = ?1, password_chosen_at = ?2,
               invitation_state = 'accepted'
             WHERE username = ?3 AND state = 'Active' AND invitation_id = ?4
               AND invitation_state = 'issued'",
            vals![p.hash.expose(), at, p.username, id],
        )?,
        Replaces::Password(old) => tx.exec_counted(
            "UPDATE users SET password_hash = ?1, password_chosen_at = ?2
             WHERE username = ?3 AND state = 'Active' AND password_hash = ?4",
            vals![p.hash.expose(), at, p.username, old.expose()],
        )?,
    };
    if changed != 1 {
        return Ok(false);
    }
    tx.row(
        &OTHER_SESSIONS_DELETE,
        vals![p.username, p.keep_session.as_ref().map(HashValue::expose)],
    )?;
    audit(tx, &p.audit)?;
    Ok(true)
}

static SESSIONS_DELETE: Stmt = Stmt {
    table: "sessions",
    effect: Effect::Delete,
    key: &[0],
    other_unique: false,
    sql: "DELETE FROM sessions WHERE username = ?1",
};

fn end_sessions(tx: &mut dyn Writer, name: &str) -> Result<(), StoreError> {
    tx.row(&SESSIONS_DELETE, vals![name])?;
    Ok(())
}

static BINDING_DELETE: Stmt = Stmt {
    table: "bindings",
    effect: Effect::Delete,
    key: &[0, 1],
    other_unique: false,
    sql: "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
};

static BINDING_INSERT: Stmt = Stmt {
    table: "bindings",
    effect: Effect::Insert,
    key: &[5, 6],
    other_unique: false,
    sql: "INSERT INTO bindings (username, role, scope_customer, scope_project,
           owner_kind, owner_namespace, owner_name, owner_source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
};

fn upsert_binding(tx: &mut dyn Writer, b: &BindingRow) -> Result<(), StoreError> {
    let o = owner_cols(&b.owner);
    let (c, p) = scope_cols(&b.scope);
    if b.owner.is_some() {
        tx.row(&BINDING_DELETE, vals![o[1], o[2]])?;
    }
    tx.row(
        &BINDING_INSERT,
        vals![b.username, b.role.as_str(), c, p, o[0], o[1], o[2], o[3]],
    )?;
    Ok(())
}

fn delete_binding(tx: &mut dyn Writer, k: &ObjectKey) -> Result<(), StoreError> {
    tx.row(&BINDING_DELETE, vals![k.namespace, k.name])?;
    Ok(())
}

static TOKEN_KEY_UPSERT: Stmt = Stmt {
    table: "token_keys",
    effect: Effect::Insert,
    key: &[0],
    other_unique: false,
    sql: "INSERT INTO token_keys (key_id, token_name, namespace, secret_hmac, role,
           scope_customer, scope_project, owner_user, issued_at, expires_at, revoked_at,
           revoked_reason, rotation, state, secret_name, owner_kind, owner_namespace,
           owner_name, owner_source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT (key_id) DO UPDATE SET token_name = excluded.token_name,
           namespace = excluded.namespace, secret_hmac = excluded.secret_hmac,
           role = excluded.role, scope_customer = excluded.scope_customer,
           scope_project = excluded.scope_project, owner_user = excluded.owner_user,
           issued_at = excluded.issued_at, expires_at = excluded.expires_at,
           revoked_at = excluded.revoked_at, revoked_reason = excluded.revoked_reason,
           rotation = excluded.rotation, state = excluded.state,
           secret_name = excluded.secret_name, owner_kind = excluded.owner_kind,
           owner_namespace = excluded.owner_namespace, owner_name = excluded.owner_name,
           owner_source = excluded.owner_source",
};

fn upsert_token_key(tx: &mut dyn Writer, t: &TokenKeyRow) -> Result<(), StoreError> {
    let o = owner_cols(&t.owner);
    let (c, p) = scope_cols(&t.scope);
    tx.row(
        &TOKEN_KEY_UPSERT,
        vals![
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
            o[0],
            o[1],
            o[2],
            o[3],
        ],
    )?;
    Ok(())
}

static TOKEN_KEY_DELETE: Stmt = Stmt {
    table: "token_keys",
    effect: Effect::Delete,
    key: &[0],
    other_unique: false,
    sql: "DELETE FROM token_keys WHERE key_id = ?1",
};

fn delete_token_key(tx: &mut dyn Writer, id: &str) -> Result<(), StoreError> {
    tx.row(&TOKEN_KEY_DELETE, vals![id])?;
    Ok(())
}

static MODEL_UPSERT: Stmt = Stmt {
    table: "models",
    effect: Effect::Insert,
    key: &[0, 1, 2],
    other_unique: false,
    sql: "INSERT INTO models (name, scope_customer, scope_project, owner, stage)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (scope_customer, scope_project, name) DO UPDATE SET owner = excluded.owner,
           stage = excluded.stage",
};

fn upsert_model(tx: &mut dyn Writer, m: &ModelRow) -> Result<(), StoreError> {
    let (c, p) = scope_cols(&m.scope);
    tx.row(
        &MODEL_UPSERT,
        vals![m.name, c, p, m.owner, m.stage.as_str()],
    )?;
    Ok(())
}

static REQUEST_INSERT: Stmt = Stmt {
    table: "stage_requests",
    effect: Effect::Insert,
    key: &[0, 1],
    other_unique: false,
    sql: "INSERT INTO stage_requests (namespace, name, model, scope_customer, scope_project,
           from_stage, to_stage, requested_by, phase, message, decided_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
};

fn insert_request(tx: &mut dyn Writer, r: &DecidedRequest) -> Result<(), StoreError> {
    let (c, p) = scope_cols(&r.scope);
    // Plain INSERT: a decided request is final, a second decision must fail loudly.
    tx.row(
        &REQUEST_INSERT,
        vals![
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

static STATUS_UPSERT: Stmt = Stmt {
    table: "object_status",
    effect: Effect::Insert,
    key: &[0, 1, 2],
    other_unique: false,
    sql: "INSERT INTO object_status (kind, namespace, name, ready, reason, message,
           phase, observed_generation, extra_json, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (kind, namespace, name) DO UPDATE SET ready = excluded.ready,
           reason = excluded.reason, message = excluded.message, phase = excluded.phase,
           observed_generation = excluded.observed_generation, extra_json = excluded.extra_json,
           source = excluded.source",
};

fn set_status(tx: &mut dyn Writer, s: &ObjectStatus) -> Result<(), StoreError> {
    let extra =
        serde_json::to_string(&s.extra).map_err(|e| corrupt("object_status", e.to_string()))?;
    tx.row(
        &STATUS_UPSERT,
        vals![
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

static STATUS_DELETE: Stmt = Stmt {
    table: "object_status",
    effect: Effect::Delete,
    key: &[0, 1, 2],
    other_unique: false,
    sql: "DELETE FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
};

fn delete_status(tx: &mut dyn Writer, k: &ObjectKey) -> Result<(), StoreError> {
    tx.row(&STATUS_DELETE, vals![k.kind, k.namespace, k.name])?;
    Ok(())
}

static AUDIT_INSERT: Stmt = Stmt {
    table: "audit_log",
    effect: Effect::Insert,
    key: &[],
    other_unique: false,
    sql: "INSERT INTO audit_log (at, action, kind, namespace, name, source, old_json, new_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
};

fn audit(tx: &mut dyn Writer, a: &AuditRow) -> Result<(), StoreError> {
    // serde_json's own writer: `Value`'s Display writes the same text through a slower adapter.
    let j = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("audit_log", e.to_string()))
    };
    tx.row(
        &AUDIT_INSERT,
        vals![
            a.at.to_string(),
            a.action,
            a.object.kind,
            a.object.namespace,
            a.object.name,
            a.source,
            j(&a.old)?,
            j(&a.new)?,
        ],
    )?;
    Ok(())
}
