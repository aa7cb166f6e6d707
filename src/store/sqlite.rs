//! `SqliteStore`: the embedded identity store (one SQLite file, WAL, foreign keys on).

use super::model::*;
use super::rows::*;
use super::{schema, Store, StoreError};
use crate::policy::Grant;
use crate::secrets::HashValue;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
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
            let io = |p: &Path| {
                let p = p.display().to_string();
                move |source| StoreError::Io { path: p, source }
            };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // Created 0700 whatever the umask; an existing one is tightened when it holds
                // nothing but stagegate's files (never a shared directory such as /tmp or a home).
                crate::secrets::private_dir(dir).map_err(io(dir))?;
                if only_ours(dir, path) {
                    crate::secrets::tighten(dir).map_err(io(dir))?;
                }
            }
            // The store holds password and token hashes: created 0600 before SQLite opens it (no
            // chmod window; SQLite gives -wal/-shm the same mode), and a looser one is tightened.
            crate::secrets::create_private_file(path).map_err(io(path))?;
            for p in [
                path.to_path_buf(),
                sidecar(path, "-wal"),
                sidecar(path, "-shm"),
            ] {
                crate::secrets::tighten(&p).map_err(io(&p))?;
            }
            Connection::open(path)?
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
        conn.set_prepared_statement_cache_capacity(64);
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

/// Whether `dir` holds only the store at `store`, its side files, the server key and the secrets directory.
fn only_ours(dir: &Path, store: &Path) -> bool {
    let Some(name) = store.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n == "server.key"
            || n == "secrets"
            || n.strip_prefix(name.as_str())
                .is_some_and(|rest| ["", "-wal", "-shm", "-journal"].contains(&rest))
    })
}

/// `store.db-wal` and the like next to `path`.
fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    s.into()
}

/// Runs one statement through the statement cache: a first apply writes thousands of rows with a handful of statements.
fn exec(tx: &Transaction, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn revision(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'revision'",
        [],
        |r| r.get(0),
    )
}

fn write_op(tx: &Transaction, op: &StoreOp) -> Result<(), StoreError> {
    match op {
        StoreOp::ExpectRevision(expected) => {
            let found = revision(tx)?;
            if found != *expected {
                return Err(StoreError::Stale {
                    expected: *expected,
                    found,
                });
            }
        }
        StoreOp::UpsertUser(u) => {
            let o = owner_cols(&u.owner);
            let p = u.pending_password.as_ref();
            exec(
                tx,
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
            exec(tx, "DELETE FROM users WHERE username = ?1", [name])?;
        }
        StoreOp::EndSessions(name) => {
            exec(tx, "DELETE FROM sessions WHERE username = ?1", [name])?;
        }
        StoreOp::UpsertBinding(b) => {
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
        }
        StoreOp::DeleteBinding(k) => {
            exec(
                tx,
                "DELETE FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
                params![k.namespace, k.name],
            )?;
        }
        StoreOp::UpsertTokenKey(t) => {
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
        }
        StoreOp::DeleteTokenKey(id) => {
            exec(tx, "DELETE FROM token_keys WHERE key_id = ?1", [id])?;
        }
        StoreOp::UpsertModel(m) => {
            let (c, p) = scope_cols(&m.scope);
            exec(
                tx,
                "INSERT OR REPLACE INTO models (name, scope_customer, scope_project, owner, stage)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.name, c, p, m.owner, m.stage.as_str()],
            )?;
        }
        StoreOp::InsertRequest(r) => {
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
        }
        StoreOp::SetStatus(s) => {
            let extra = serde_json::to_string(&s.extra)
                .map_err(|e| corrupt("object_status", e.to_string()))?;
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
        }
        StoreOp::DeleteStatus(k) => {
            exec(
                tx,
                "DELETE FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![k.kind, k.namespace, k.name],
            )?;
        }
        StoreOp::Audit(a) => {
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
        state.revision = revision(&tx)?;
        tx.commit()?;
        Ok(state)
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        // IMMEDIATE takes the write lock up front, so a concurrent writer waits (busy_timeout) instead of failing mid-way.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for op in ops {
            write_op(&tx, op)?;
        }
        exec(
            &tx,
            "UPDATE store_meta SET value = value + 1 WHERE key = 'revision'",
            [],
        )?;
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
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE users SET last_login = ?2, first_login = coalesce(first_login, ?2) WHERE username = ?1",
            params![username, at.to_string()],
        )?;
        // The status tells the truth at once: the first login makes an invited user Active.
        tx.execute(
            "UPDATE object_status SET phase = 'Active'
              WHERE kind = 'User' AND phase = 'Invited' AND EXISTS (
                SELECT 1 FROM users u WHERE u.username = ?1 AND (
                  (u.owner_kind = 'User' AND u.owner_namespace = object_status.namespace
                     AND u.owner_name = object_status.name)
                  OR (u.bootstrap = 1 AND object_status.source = 'bootstrap'
                     AND json_extract(object_status.extra_json, '$.username') = ?1)))",
            params![username],
        )?;
        tx.commit()?;
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
