//! `SqliteStore`: the embedded identity store (one SQLite file, WAL, foreign keys on).

use super::model::*;
use super::{schema, Store, StoreError};
use crate::plan::ObjectKey;
use crate::policy::{FromStage, Grant, Scope, Stage};
use crate::resources::{RequestPhase, UserState};
use crate::secrets::HashValue;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use std::path::Path;
use std::time::Duration;

mod api_sessions;

/// The SQLite identity store.
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, or an in-memory store for `:memory:`, and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()?
        } else {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let fresh = !path.exists();
            let conn = Connection::open(path)?;
            if fresh {
                private_file(path);
            }
            conn
        };
        Self::init(conn)
    }

    /// A fresh in-memory store (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        // WAL lets the HTTP API read while a reconcile writes; the busy timeout rides out short write locks.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// Number of rows in a table (tests and diagnostics).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        // Table names come from code, never from input; the allow-list keeps it that way.
        const TABLES: [&str; 8] = [
            "users",
            "bindings",
            "token_keys",
            "models",
            "stage_requests",
            "sessions",
            "object_status",
            "audit_log",
        ];
        if !TABLES.contains(&table) {
            return Err(corrupt("count", format!("unknown table {table}")));
        }
        Ok(self
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    }
}

/// The store holds password and token hashes: readable by its owner only (SQLite gives -wal/-shm the same mode).
#[cfg(unix)]
fn private_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn private_file(_path: &Path) {}

fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

fn conv(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

fn ts(r: &Row, i: &str) -> rusqlite::Result<Timestamp> {
    r.get::<_, String>(i)?.parse().map_err(conv)
}

fn ts_opt(r: &Row, i: &str) -> rusqlite::Result<Option<Timestamp>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| s.parse().map_err(conv))
        .transpose()
}

fn scope_cols(s: &Scope) -> (String, String) {
    (
        s.customer.clone().unwrap_or_default(),
        s.project.clone().unwrap_or_default(),
    )
}

fn scope(r: &Row) -> rusqlite::Result<Scope> {
    let c: String = r.get("scope_customer")?;
    let p: String = r.get("scope_project")?;
    Ok(Scope {
        customer: (!c.is_empty()).then_some(c),
        project: (!p.is_empty()).then_some(p),
    })
}

fn owner(r: &Row) -> rusqlite::Result<Option<Owner>> {
    let kind: Option<String> = r.get("owner_kind")?;
    Ok(match kind {
        None => None,
        Some(kind) => Some(Owner {
            key: ObjectKey {
                kind,
                namespace: r.get("owner_namespace")?,
                name: r.get("owner_name")?,
            },
            source: r
                .get::<_, Option<String>>("owner_source")?
                .unwrap_or_default(),
        }),
    })
}

fn owner_cols(o: &Option<Owner>) -> [Option<String>; 4] {
    match o {
        None => [None, None, None, None],
        Some(o) => [
            Some(o.key.kind.clone()),
            Some(o.key.namespace.clone()),
            Some(o.key.name.clone()),
            Some(o.source.clone()),
        ],
    }
}

fn user_state(s: &str) -> rusqlite::Result<UserState> {
    match s {
        "Active" => Ok(UserState::Active),
        "Revoked" => Ok(UserState::Revoked),
        o => Err(conv(format!("unknown user state {o}"))),
    }
}

fn user_state_str(s: UserState) -> &'static str {
    match s {
        UserState::Active => "Active",
        UserState::Revoked => "Revoked",
    }
}

fn from_stage(s: &str) -> rusqlite::Result<FromStage> {
    if s == "None" {
        return Ok(FromStage::None);
    }
    Ok(FromStage::from(Some(s.parse::<Stage>().map_err(conv)?)))
}

/// Name of a request phase as stored and shown.
pub fn phase_str(p: RequestPhase) -> &'static str {
    match p {
        RequestPhase::Pending => "Pending",
        RequestPhase::Applied => "Applied",
        RequestPhase::Denied => "Denied",
        RequestPhase::Conflict => "Conflict",
    }
}

fn phase(s: &str) -> rusqlite::Result<RequestPhase> {
    match s {
        "Applied" => Ok(RequestPhase::Applied),
        "Denied" => Ok(RequestPhase::Denied),
        "Conflict" => Ok(RequestPhase::Conflict),
        o => Err(conv(format!("unknown request phase {o}"))),
    }
}

fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    let pending_id: Option<String> = r.get("pending_password_id")?;
    let pending = match pending_id {
        None => None,
        Some(id) => Some(PendingPassword {
            id,
            hash: HashValue::new(
                r.get::<_, Option<String>>("pending_password_hash")?
                    .unwrap_or_default(),
            ),
            rotation: r.get::<_, Option<u32>>("pending_rotation")?.unwrap_or(0),
        }),
    };
    Ok(UserRow {
        username: r.get("username")?,
        display_name: r.get("display_name")?,
        email: r.get("email")?,
        state: user_state(&r.get::<_, String>("state")?)?,
        password_hash: r
            .get::<_, Option<String>>("password_hash")?
            .map(HashValue::new),
        password_source: match r.get::<_, Option<String>>("password_source")?.as_deref() {
            Some("ref") => Some(PasswordSource::Ref),
            Some("generated") => Some(PasswordSource::Generated),
            _ => None,
        },
        password_fingerprint: r
            .get::<_, Option<String>>("password_fingerprint")?
            .map(HashValue::new),
        password_id: r.get("password_id")?,
        password_rotation: r.get("password_rotation")?,
        pending_password: pending,
        first_login: ts_opt(r, "first_login")?,
        last_login: ts_opt(r, "last_login")?,
        bootstrap: r.get("bootstrap")?,
        owner: owner(r)?,
    })
}

fn binding_row(r: &Row) -> rusqlite::Result<BindingRow> {
    Ok(BindingRow {
        username: r.get("username")?,
        role: r.get::<_, String>("role")?.parse().map_err(conv)?,
        scope: scope(r)?,
        owner: owner(r)?,
    })
}

fn token_row(r: &Row) -> rusqlite::Result<TokenKeyRow> {
    Ok(TokenKeyRow {
        key_id: r.get("key_id")?,
        token_name: r.get("token_name")?,
        namespace: r.get("namespace")?,
        secret_hmac: HashValue::new(r.get("secret_hmac")?),
        role: r.get::<_, String>("role")?.parse().map_err(conv)?,
        scope: scope(r)?,
        owner_user: r.get("owner_user")?,
        issued_at: ts(r, "issued_at")?,
        expires_at: ts_opt(r, "expires_at")?,
        revoked_at: ts_opt(r, "revoked_at")?,
        revoked_reason: r.get("revoked_reason")?,
        rotation: r.get("rotation")?,
        state: match r.get::<_, String>("state")?.as_str() {
            "pending" => KeyState::Pending,
            _ => KeyState::Issued,
        },
        secret_name: r.get("secret_name")?,
        owner: owner(r)?,
    })
}

fn model_row(r: &Row) -> rusqlite::Result<ModelRow> {
    Ok(ModelRow {
        name: r.get("name")?,
        scope: scope(r)?,
        owner: r.get("owner")?,
        stage: r.get::<_, String>("stage")?.parse().map_err(conv)?,
    })
}

fn request_row(r: &Row) -> rusqlite::Result<DecidedRequest> {
    Ok(DecidedRequest {
        namespace: r.get("namespace")?,
        name: r.get("name")?,
        model: r.get("model")?,
        scope: scope(r)?,
        from: from_stage(&r.get::<_, String>("from_stage")?)?,
        to: r.get::<_, String>("to_stage")?.parse().map_err(conv)?,
        requested_by: r.get("requested_by")?,
        phase: phase(&r.get::<_, String>("phase")?)?,
        message: r.get("message")?,
        decided_at: ts(r, "decided_at")?,
        source: r.get("source")?,
    })
}

fn status_row(r: &Row) -> rusqlite::Result<ObjectStatus> {
    Ok(ObjectStatus {
        key: ObjectKey {
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        ready: r.get("ready")?,
        reason: r.get("reason")?,
        message: r.get("message")?,
        phase: r.get("phase")?,
        observed_generation: r.get("observed_generation")?,
        extra: serde_json::from_str(&r.get::<_, String>("extra_json")?).map_err(conv)?,
        source: r.get("source")?,
    })
}

fn audit_row(r: &Row) -> rusqlite::Result<AuditRow> {
    let json = |c: &str| -> rusqlite::Result<Option<serde_json::Value>> {
        r.get::<_, Option<String>>(c)?
            .map(|s| serde_json::from_str(&s).map_err(conv))
            .transpose()
    };
    Ok(AuditRow {
        id: r.get("id")?,
        at: ts(r, "at")?,
        action: r.get("action")?,
        object: ObjectKey {
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        source: r.get("source")?,
        old: json("old_json")?,
        new: json("new_json")?,
    })
}

fn session_row(r: &Row) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: HashValue::new(r.get("id_hash")?),
        username: r.get("username")?,
        grants: serde_json::from_str::<Vec<Grant>>(&r.get::<_, String>("grants_json")?)
            .map_err(conv)?,
        created_at: ts(r, "created_at")?,
        expires_at: ts(r, "expires_at")?,
    })
}

fn all<T>(
    conn: &Connection,
    sql: &str,
    f: fn(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], f)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn write_op(tx: &Transaction, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::UpsertUser(u) => {
            let o = owner_cols(&u.owner);
            let p = u.pending_password.as_ref();
            tx.execute(
                // An upsert, not INSERT OR REPLACE: replacing would delete the row and its sessions.
                "INSERT INTO users (username, display_name, email, state, password_hash,
                   password_source, password_fingerprint, password_id, password_rotation,
                   pending_password_id, pending_password_hash, pending_rotation, first_login,
                   last_login, bootstrap, owner_kind, owner_namespace, owner_name, owner_source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                 ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name,
                   email = excluded.email, state = excluded.state, password_hash = excluded.password_hash,
                   password_source = excluded.password_source,
                   password_fingerprint = excluded.password_fingerprint,
                   password_id = excluded.password_id, password_rotation = excluded.password_rotation,
                   pending_password_id = excluded.pending_password_id,
                   pending_password_hash = excluded.pending_password_hash,
                   pending_rotation = excluded.pending_rotation, first_login = excluded.first_login,
                   last_login = excluded.last_login, bootstrap = excluded.bootstrap,
                   owner_kind = excluded.owner_kind, owner_namespace = excluded.owner_namespace,
                   owner_name = excluded.owner_name, owner_source = excluded.owner_source",
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
                ],
            )?;
        }
        StoreOp::DeleteUser(name) => {
            tx.execute("DELETE FROM users WHERE username = ?1", [name])?;
        }
        StoreOp::EndSessions(name) => {
            tx.execute("DELETE FROM sessions WHERE username = ?1", [name])?;
        }
        StoreOp::UpsertBinding(b) => {
            let o = owner_cols(&b.owner);
            let (c, p) = scope_cols(&b.scope);
            if b.owner.is_some() {
                tx.execute(
                    "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
                    params![o[1], o[2]],
                )?;
            }
            tx.execute(
                "INSERT INTO bindings (username, role, scope_customer, scope_project,
                   owner_kind, owner_namespace, owner_name, owner_source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![b.username, b.role.as_str(), c, p, o[0], o[1], o[2], o[3]],
            )?;
        }
        StoreOp::DeleteBinding(k) => {
            tx.execute(
                "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
                params![k.namespace, k.name],
            )?;
        }
        StoreOp::UpsertTokenKey(t) => {
            let o = owner_cols(&t.owner);
            let (c, p) = scope_cols(&t.scope);
            tx.execute(
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
        }
        StoreOp::DeleteTokenKey(id) => {
            tx.execute("DELETE FROM token_keys WHERE key_id = ?1", [id])?;
        }
        StoreOp::UpsertModel(m) => {
            let (c, p) = scope_cols(&m.scope);
            tx.execute(
                "INSERT OR REPLACE INTO models (name, scope_customer, scope_project, owner, stage)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.name, c, p, m.owner, m.stage.as_str()],
            )?;
        }
        StoreOp::InsertRequest(r) => {
            let (c, p) = scope_cols(&r.scope);
            // Plain INSERT: a decided request is final, a second decision must fail loudly.
            tx.execute(
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
        }
        StoreOp::SetStatus(s) => {
            let extra = serde_json::to_string(&s.extra)
                .map_err(|e| corrupt("object_status", e.to_string()))?;
            tx.execute(
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
        }
        StoreOp::DeleteStatus(k) => {
            tx.execute(
                "DELETE FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![k.kind, k.namespace, k.name],
            )?;
        }
        StoreOp::Audit(a) => {
            let j = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
            tx.execute(
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
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    fn load_state(&self) -> Result<StoreState, StoreError> {
        // One read transaction, so the state is consistent even while another process writes.
        let tx = self.conn.unchecked_transaction()?;
        let mut state = StoreState::default();
        for u in all(&tx, "SELECT * FROM users ORDER BY username", user_row)? {
            state.users.insert(u.username.clone(), u);
        }
        state.bindings = all(&tx, "SELECT * FROM bindings ORDER BY id", binding_row)?;
        state.bindings.sort();
        for t in all(&tx, "SELECT * FROM token_keys ORDER BY key_id", token_row)? {
            state.token_keys.insert(t.key_id.clone(), t);
        }
        for m in all(&tx, "SELECT * FROM models", model_row)? {
            state.models.insert((m.scope.clone(), m.name.clone()), m);
        }
        for r in all(&tx, "SELECT * FROM stage_requests", request_row)? {
            state
                .requests
                .insert((r.namespace.clone(), r.name.clone()), r);
        }
        for s in all(&tx, "SELECT * FROM object_status", status_row)? {
            state.statuses.insert(s.key.clone(), s);
        }
        tx.commit()?;
        Ok(state)
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for op in ops {
            write_op(&tx, op)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM users WHERE username = ?1",
                [username],
                user_row,
            )
            .optional()?)
    }

    fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM bindings WHERE username = ?1 ORDER BY id")?;
        let rows = stmt.query_map([username], binding_row)?;
        let mut grants: Vec<Grant> = rows
            .map(|b| {
                b.map(|b| Grant {
                    role: b.role,
                    scope: b.scope,
                })
            })
            .collect::<Result<_, _>>()?;
        grants.sort();
        grants.dedup();
        Ok(grants)
    }

    fn token_key(&self, key_id: &str) -> Result<Option<TokenKeyRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM token_keys WHERE key_id = ?1",
                [key_id],
                token_row,
            )
            .optional()?)
    }

    fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        all(
            &self.conn,
            "SELECT * FROM models ORDER BY scope_customer, scope_project, name",
            model_row,
        )
    }

    fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError> {
        all(
            &self.conn,
            "SELECT * FROM object_status ORDER BY kind, namespace, name",
            status_row,
        )
    }

    fn audit(&self, after: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM audit_log WHERE id > ?1 ORDER BY id")?;
        let rows = stmt.query_map([after], audit_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn create_session(&mut self, s: &SessionRow) -> Result<(), StoreError> {
        let grants =
            serde_json::to_string(&s.grants).map_err(|e| corrupt("sessions", e.to_string()))?;
        self.conn.execute(
            "INSERT INTO sessions (id_hash, username, grants_json, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                s.id_hash.expose(),
                s.username,
                grants,
                s.created_at.to_string(),
                s.expires_at.to_string()
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT * FROM sessions WHERE id_hash = ?1",
                [id_hash],
                session_row,
            )
            .optional()?)
    }

    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    fn record_login(&mut self, username: &str, at: Timestamp) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE users SET last_login = ?2, first_login = coalesce(first_login, ?2) WHERE username = ?1",
            params![username, at.to_string()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
impl SqliteStore {
    /// The raw connection, for tests that check constraints.
    pub(crate) fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}
