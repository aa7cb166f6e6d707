//! `SqliteStore`: the embedded identity store (one SQLite file, WAL, foreign keys on).

use super::journal::{CommitJournal, Committed, Touched};
use super::model::*;
use super::rows::*;
use super::write::{chosen_password, write_op, Writer, BUMP_REVISION};
use super::{schema, Attempt, Counter, Store, StoreError};
use crate::policy::Grant;
use crate::snapshot::ObjectKey;
use jiff::Timestamp;
use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use std::path::Path;
use std::time::Duration;

mod api_sessions;
pub use api_sessions::StateToken;

/// The SQLite identity store.
pub struct SqliteStore {
    conn: Connection,
    /// Where each commit records the keys it wrote, when someone follows them (the API).
    journal: Option<CommitJournal>,
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
        // WAL lets the HTTP API read while a reconcile writes; the busy timeout (set first, so
        // switching to WAL and migrating wait for another process too) rides out short write locks.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            journal: None,
        })
    }

    /// From now on, records each commit's revision and the keys it wrote in `journal`
    /// (see [`CommitJournal`]): the API follows the daemon's commits through it.
    pub fn record_commits(&mut self, journal: CommitJournal) {
        self.journal = Some(journal);
    }

    /// How many object statuses there are per kind and readiness, and the statuses of broken
    /// manifest files (kind `kind`): what the API's gauges and `/readyz` need of the
    /// statuses, without reading every row.
    pub fn status_summary(&self, kind: &str) -> Result<super::StatusSummary, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, ready, count(*) FROM object_status GROUP BY kind, ready",
        )?;
        let counts = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((counts, self.statuses_of_kind(kind)?))
    }

    /// The statuses of kind `kind` (one primary-key range, not the whole table).
    pub fn statuses_of_kind(&self, kind: &str) -> Result<Vec<ObjectStatus>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM object_status WHERE kind = ?1 ORDER BY kind, namespace, name",
        )?;
        let rows = stmt
            .query_map([kind], |r| status_row(r).map_err(conv))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Number of rows in a table (tests and diagnostics).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        // Table names come from code, never from input; the allow-list keeps it that way.
        if !super::TABLES.contains(&table) {
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

impl Cols for Row<'_> {
    fn opt_text(&self, c: &str) -> ColResult<Option<String>> {
        self.get(c).map_err(|e| format!("{c}: {e}"))
    }
    fn opt_int(&self, c: &str) -> ColResult<Option<i64>> {
        self.get(c).map_err(|e| format!("{c}: {e}"))
    }
    fn flag(&self, c: &str) -> ColResult<bool> {
        self.get(c).map_err(|e| format!("{c}: {e}"))
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        // Text is bound borrowed: SQLite copies it while it binds, no copy of ours is needed.
        Ok(match self {
            Val::Text(Some(t)) => {
                ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(t.as_bytes()))
            }
            Val::Text(None) => ToSqlOutput::Owned(SqlValue::Null),
            Val::Int(i) => ToSqlOutput::Owned(i.map_or(SqlValue::Null, SqlValue::Integer)),
            Val::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
        })
    }
}

/// A decoding failure as rusqlite reports one.
fn conv(e: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
}

/// Every row of `sql`, decoded by `f`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    f: impl Fn(&Row) -> ColResult<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| f(r).map_err(conv))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One row of `sql` with `args`, if any, decoded by `f`.
fn one<T>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    f: impl Fn(&Row) -> ColResult<T>,
) -> Result<Option<T>, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(args, |r| f(r).map_err(conv))
        .optional()?)
}

/// The SQLite side of a commit: statements go through the statement cache, since a first
/// apply writes thousands of rows with a handful of statements.
struct SqliteWriter<'a>(&'a Transaction<'a>);

impl Writer for SqliteWriter<'_> {
    fn exec(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<(), StoreError> {
        self.exec_counted(sql, args).map(drop)
    }
    fn exec_counted(&mut self, sql: &'static str, args: Vec<Val<'_>>) -> Result<u64, StoreError> {
        let n = self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args))?;
        Ok(n as u64)
    }
    fn revision(&mut self) -> Result<i64, StoreError> {
        Ok(revision(self.0)?)
    }
}

fn revision(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT value FROM store_meta WHERE key = 'revision'",
        [],
        |r| r.get(0),
    )
}

impl SqliteStore {
    /// The first token-key or invitation expiry after `now`: what
    /// [`StoreState::next_expiry`] gives of [`Store::load_state`], read from the two
    /// expiry columns alone (a round whose apply issued keys learns its next expiry
    /// without reading every row again).
    pub fn next_expiry(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut first: Option<Timestamp> = None;
        for (table, sql) in [
            (
                "token_keys",
                "SELECT expires_at FROM token_keys WHERE expires_at IS NOT NULL",
            ),
            (
                "users",
                "SELECT invitation_expires_at FROM users \
                 WHERE invitation_id IS NOT NULL AND invitation_state IS NOT 'accepted'",
            ),
        ] {
            let mut stmt = tx.prepare_cached(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let text: String = row.get(0)?;
                let at: Timestamp = text
                    .parse()
                    .map_err(|e| corrupt(table, format!("expiry {text:?}: {e}")))?;
                if at > now && first.is_none_or(|f| at < f) {
                    first = Some(at);
                }
            }
        }
        tx.commit()?;
        Ok(first)
    }
}

impl Store for SqliteStore {
    fn load_state(&self) -> Result<StoreState, StoreError> {
        // One read transaction, so the state is consistent even while another process writes.
        let tx = self.conn.unchecked_transaction()?;
        let mut state = StoreState::default();
        for u in all(&tx, "SELECT * FROM users ORDER BY username", |r| {
            user_row(r)
        })? {
            state.users.insert(u.username.clone(), u);
        }
        state.bindings = all(&tx, "SELECT * FROM bindings ORDER BY id", |r| {
            binding_row(r)
        })?;
        state.bindings.sort();
        for t in all(&tx, "SELECT * FROM token_keys ORDER BY key_id", |r| {
            token_row(r)
        })? {
            state.token_keys.insert(t.key_id.clone(), t);
        }
        for m in all(&tx, "SELECT * FROM models", |r| model_row(r))? {
            state.models.insert((m.scope.clone(), m.name.clone()), m);
        }
        for r in all(&tx, "SELECT * FROM stage_requests", |r| request_row(r))? {
            state
                .requests
                .insert((r.namespace.clone(), r.name.clone()), r);
        }
        for s in all(&tx, "SELECT * FROM object_status", |r| status_row(r))? {
            state.statuses.insert(s.key.clone(), s);
        }
        state.revision = revision(&tx)?;
        tx.commit()?;
        Ok(state)
    }

    fn load_partial(&self, keys: &super::StateKeys) -> Result<StoreState, StoreError> {
        // Point lookups by index, in one read transaction (token keys by their owner's
        // index, schema version 5).
        let tx = self.conn.unchecked_transaction()?;
        let mut state = StoreState::default();
        let bindings = |sql: &str, args: &[&dyn rusqlite::ToSql]| {
            let mut stmt = tx.prepare_cached(sql)?;
            let rows = stmt.query_map(args, |r| binding_row(r).map_err(conv))?;
            Ok::<Vec<_>, StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        };
        for u in &keys.usernames {
            if let Some(row) = one(&tx, "SELECT * FROM users WHERE username = ?1", [u], |r| {
                user_row(r)
            })? {
                state.users.insert(u.clone(), row);
            }
            state.bindings.extend(bindings(
                "SELECT * FROM bindings WHERE username = ?1",
                &[u],
            )?);
        }
        for k in &keys.objects {
            let args: [&dyn rusqlite::ToSql; 3] = [&k.kind, &k.namespace, &k.name];
            if k.kind == "AccessBinding" {
                let owned = bindings(
                    "SELECT * FROM bindings WHERE owner_namespace = ?2 AND owner_name = ?3 AND owner_kind = ?1",
                    &args,
                )?;
                // A row of a listed user was read above.
                state.bindings.extend(
                    owned
                        .into_iter()
                        .filter(|b| !keys.usernames.contains(&b.username)),
                );
            }
            if k.kind == "ApiToken" {
                let mut stmt = tx.prepare_cached(
                    "SELECT * FROM token_keys WHERE owner_namespace = ?2 AND owner_name = ?3 AND owner_kind = ?1",
                )?;
                for t in stmt.query_map(args, |r| token_row(r).map_err(conv))? {
                    let t = t?;
                    state.token_keys.insert(t.key_id.clone(), t);
                }
            }
            if k.kind == "ModelStageRequest" {
                let at = [&k.namespace, &k.name];
                let sql = "SELECT * FROM stage_requests WHERE namespace = ?1 AND name = ?2";
                if let Some(r) = one(&tx, sql, at, |r| request_row(r))? {
                    state
                        .requests
                        .insert((r.namespace.clone(), r.name.clone()), r);
                }
            }
        }
        for k in keys.objects.iter().chain(&keys.statuses) {
            let args: [&dyn rusqlite::ToSql; 3] = [&k.kind, &k.namespace, &k.name];
            if let Some(s) = one(
                &tx,
                "SELECT * FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                args,
                |r| status_row(r),
            )? {
                state.statuses.insert(s.key.clone(), s);
            }
        }
        for (scope, name) in &keys.models {
            let (c, p) = (
                scope.customer.as_deref().unwrap_or_default(),
                scope.project.as_deref().unwrap_or_default(),
            );
            let sql = "SELECT * FROM models WHERE scope_customer = ?1 AND scope_project = ?2 AND name = ?3";
            if let Some(m) = one(&tx, sql, [c, p, name.as_str()], |r| model_row(r))? {
                state.models.insert((m.scope.clone(), m.name.clone()), m);
            }
        }
        state.bindings.sort();
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
        // The keys this commit writes, for the journal: the users of the bindings it replaces
        // or deletes, and the readiness of the statuses it writes, are read before the
        // write, in the same transaction.
        let mut touched = match &self.journal {
            Some(_) => Touched::of(ops),
            None => None,
        };
        if let Some(t) = &mut touched {
            let mut owners = tx.prepare_cached(
                "SELECT username FROM bindings WHERE owner_namespace = ?1 AND owner_name = ?2",
            )?;
            let mut ready = tx.prepare_cached(
                "SELECT ready FROM object_status WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )?;
            t.read_before(
                ops,
                |ns: &str, name: &str| -> rusqlite::Result<Vec<String>> {
                    owners.query_map([ns, name], |r| r.get(0))?.collect()
                },
                |k: &ObjectKey| -> rusqlite::Result<Option<bool>> {
                    ready
                        .query_row([&k.kind, &k.namespace, &k.name], |r| {
                            r.get::<_, i64>(0).map(|ready| ready != 0)
                        })
                        .optional()
                },
            )?;
        }
        let mut w = SqliteWriter(&tx);
        for op in ops {
            write_op(&mut w, op)?;
        }
        w.exec(BUMP_REVISION, vec![])?;
        let revision = match &self.journal {
            Some(_) => Some(w.revision()?),
            None => None,
        };
        tx.commit()?;
        if let (Some(journal), Some(revision)) = (&self.journal, revision) {
            journal.push(Committed { revision, touched });
        }
        Ok(())
    }

    fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        one(
            &self.conn,
            "SELECT * FROM users WHERE username = ?1",
            [username],
            |r| user_row(r),
        )
    }

    fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM bindings WHERE username = ?1 ORDER BY id")?;
        let rows = stmt.query_map([username], |r| binding_row(r).map_err(conv))?;
        Ok(super::grants_of_bindings(
            rows.collect::<Result<Vec<_>, _>>()?,
        ))
    }

    fn token_key(&self, key_id: &str) -> Result<Option<TokenKeyRow>, StoreError> {
        one(
            &self.conn,
            "SELECT * FROM token_keys WHERE key_id = ?1",
            [key_id],
            |r| token_row(r),
        )
    }

    fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        all(
            &self.conn,
            "SELECT * FROM models ORDER BY scope_customer, scope_project, name",
            |r| model_row(r),
        )
    }

    fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError> {
        all(
            &self.conn,
            "SELECT * FROM object_status ORDER BY kind, namespace, name",
            |r| status_row(r),
        )
    }

    fn audit(&self, after: i64) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM audit_log WHERE id > ?1 ORDER BY id")?;
        let rows = stmt.query_map([after], |r| audit_row(r).map_err(conv))?;
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
        one(
            &self.conn,
            "SELECT * FROM sessions WHERE id_hash = ?1",
            [id_hash],
            |r| session_row(r),
        )
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

    fn user_by_invitation(&self, invitation_id: &str) -> Result<Option<UserRow>, StoreError> {
        one(
            &self.conn,
            "SELECT * FROM users WHERE invitation_id = ?1",
            [invitation_id],
            |r| user_row(r),
        )
    }

    fn set_chosen_password(&mut self, p: &ChosenPassword) -> Result<bool, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut w = SqliteWriter(&tx);
        if !chosen_password(&mut w, p)? {
            return Ok(false);
        }
        // A plan made from the row before this change is refused (Stale) and made again.
        w.exec(BUMP_REVISION, vec![])?;
        tx.commit()?;
        Ok(true)
    }

    fn user_sessions(&self, username: &str) -> Result<Vec<SessionRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT * FROM sessions WHERE username = ?1 ORDER BY created_at")?;
        let rows = stmt.query_map([username], |r| session_row(r).map_err(conv))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn reserve_attempt(
        &mut self,
        counters: &[Counter],
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        super::throttle::reserve_sqlite(&mut self.conn, counters, now)
    }

    fn forget_failures(&mut self, key: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM login_failures WHERE key = ?1")?
            .execute([key])?;
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
