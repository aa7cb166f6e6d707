//! `PgStore`: the identity store in a PostgreSQL database, so several stagegate
//! processes (API replicas, a reconciler on another machine) share one store.
//!
//! # Concurrency
//!
//! Every [`Store::commit`] runs in one READ COMMITTED transaction whose first statement
//! locks the `revision` row of `store_meta` (`SELECT ... FOR UPDATE`). Commits therefore
//! run one at a time across every process, and each one reads the revision (and every
//! row) after the previous commit finished: a plan made from an older state fails its
//! `ExpectRevision` with [`StoreError::Stale`] exactly as in SQLite, which serializes
//! writers with its file lock. SERIALIZABLE was not chosen: it would abort the API's
//! concurrent session and login writes with serialization failures that every caller
//! would have to retry, while the one row lock gives the same order deterministically
//! and never blocks readers. [`Store::load_state`] reads in one REPEATABLE READ, READ ONLY
//! transaction, so `plan` sees one consistent snapshot.
//!
//! # Connection
//!
//! One connection per `PgStore` (callers already serialize store use behind a mutex, so
//! a pool would hold idle connections and add nothing). A commit's rows go to the server a
//! set at a time, one statement per kind of write with the values as arrays (see `bulk.rs`),
//! not one statement per row. A lost connection is reopened
//! by the next call; opening retries with backoff. The sync `postgres` client runs its
//! own small runtime, so like SQLite it must be called from blocking code (the API and
//! the daemons call the store from `spawn_blocking`), never from an async task.

use super::journal::{CommitJournal, Committed, Touched};
use super::model::*;
use super::rows::*;
use super::write::{chosen_password, write_op, Writer, BUMP_REVISION};
use super::{Attempt, Counter, StateToken, Store, StoreError};
use crate::policy::Grant;
use crate::snapshot::ObjectKey;
use bulk::PgWriter;
use jiff::Timestamp;
use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, NoTls, Row};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod bulk;
mod schema;
mod target;
#[doc(hidden)]
pub mod test_server;

pub use target::{is_url, redact, PgTarget, PASSWORD_ENV, PASSWORD_FILE_ENV};

/// How long opening keeps retrying an unreachable server before giving up.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(30);

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // A server error's DETAIL can quote row values (a duplicate key's hash, say): only the
        // severity, message and code are kept, which name constraints and tables, not values.
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
            None => e.to_string(),
        };
        StoreError::Postgres(text)
    }
}

/// The connection, when open.
struct Conn {
    client: Option<Client>,
}

/// The PostgreSQL identity store.
pub struct PgStore {
    target: PgTarget,
    conn: Mutex<Conn>,
    /// Where this store's own commits are recorded, when a reader follows them (see
    /// [`PgStore::record_commits`]).
    journal: Option<CommitJournal>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target.to_string())
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the sync client blocks on its runtime, which panics on an async worker
        // thread: dropped there, the connection is closed on a thread of its own.
        let client = self
            .conn
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .client
            .take();
        if let Some(client) = client {
            if tokio::runtime::Handle::try_current().is_ok() {
                std::thread::spawn(move || drop(client));
            }
        }
    }
}

impl PgStore {
    /// Connects to `target` (retrying with backoff for up to 30 s) and migrates the schema.
    pub fn open(target: PgTarget) -> Result<Self, StoreError> {
        let store = Self::unopened(target);
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match store.with(schema::migrate) {
                Ok(()) => return Ok(store),
                Err(e @ StoreError::Unreachable(_)) if started.elapsed() < OPEN_RETRY_FOR => {
                    tracing::warn!(store = %store.target, error = %e, retry_in = ?delay, "store unreachable");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A store that has not connected yet (the first call connects).
    pub(super) fn unopened(target: PgTarget) -> Self {
        PgStore {
            target,
            conn: Mutex::new(Conn { client: None }),
            journal: None,
        }
    }

    /// Runs raw SQL (tests of the database's own guards).
    #[cfg(test)]
    pub(super) fn raw_for_tests(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|c| Ok(c.batch_execute(sql)?))
    }

    /// Runs a raw query answering one number (tests of the database's own state).
    #[cfg(test)]
    pub(super) fn scalar_for_tests(&self, sql: &str) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.query_one(sql, &[])?.try_get(0)?))
    }

    /// The server this store talks to, password redacted.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the connection, reconnecting first when it was lost.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        f(connected(&self.target, &mut conn)?)
    }

    /// Number of rows in a table (tests and diagnostics).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        if !super::TABLES.contains(&table) {
            return Err(corrupt("count", format!("unknown table {table}")));
        }
        self.with(|c| {
            Ok(c.query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                .get(0))
        })
    }

    /// Every stored session, oldest first (ids are only stored hashed).
    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        self.with(|c| {
            decode_all(
                "sessions",
                c.query("SELECT * FROM sessions ORDER BY created_at, id_hash", &[])?,
                session_row,
            )
        })
    }

    /// See [`super::AnyStore::sessions_marker`].
    pub fn sessions_marker(&self) -> Result<super::SessionsMarker, StoreError> {
        self.with(|c| {
            let r = c.query_one(super::SESSIONS_MARKER, &[])?;
            Ok((r.try_get(0)?, r.try_get(1)?))
        })
    }

    /// The store revision (bumped by every commit).
    pub fn current_revision(&self) -> Result<i64, StoreError> {
        self.with(revision)
    }

    /// Evidence that nothing was committed: the server's current transaction snapshot
    /// (`xmin:xmax:running xids`). Any committed write had a transaction id, and between two
    /// equal snapshots none completed: one with an id at or above the first's `xmax` would
    /// have raised `xmax`, one below it was running then and would have left the list. Like
    /// SQLite's token it sees writes that do not bump the revision (logins, sessions,
    /// self-service), by any process. It covers the whole server, so another database's
    /// writes move it too: that costs a needless re-read, never a missed change.
    pub fn state_token(&self) -> Result<StateToken, StoreError> {
        self.with(|c| {
            let row = c.query_one("SELECT pg_current_snapshot()::text", &[])?;
            Ok(StateToken::postgres(row.try_get(0)?))
        })
    }

    /// From now on, records each of this store's commits (its revision and the keys it
    /// wrote) in `journal`, as [`super::SqliteStore::record_commits`] does: the API of this
    /// process follows them. A commit by any other process or connection bumps the shared
    /// revision without an entry here, so a reader finds a gap and reads everything.
    pub fn record_commits(&mut self, journal: CommitJournal) {
        self.journal = Some(journal);
    }

    /// How many object statuses there are per kind and readiness, and the statuses of kind
    /// `kind` (see [`super::SqliteStore::status_summary`]).
    pub fn status_summary(&self, kind: &str) -> Result<super::StatusSummary, StoreError> {
        let counts = self.with(|c| {
            c.query(
                "SELECT kind, ready, count(*) FROM object_status GROUP BY kind, ready",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, StoreError>>()
        })?;
        Ok((counts, self.statuses_of_kind(kind)?))
    }

    /// The statuses of kind `kind`.
    pub fn statuses_of_kind(&self, kind: &str) -> Result<Vec<ObjectStatus>, StoreError> {
        self.select(
            "object_status",
            r#"SELECT * FROM object_status WHERE kind = $1 ORDER BY namespace COLLATE "C", name COLLATE "C""#,
            &[&kind],
            status_row,
        )
    }

    /// Runs `f` in one write transaction, ordered after every other commit (see the module
    /// comment), and commits it with a revision bump when `f` returns true; false rolls back.
    fn write(
        &mut self,
        f: impl FnOnce(&mut PgWriter) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        Ok(self.write_at(f)?.is_some())
    }

    /// [`PgStore::write`], giving the revision the commit produced (`None`: rolled back).
    fn write_at(
        &mut self,
        f: impl FnOnce(&mut PgWriter) -> Result<bool, StoreError>,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let client = connected(&self.target, conn)?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()?;
        // The row lock that orders commits across processes (see the module comment).
        let before: i64 = tx
            .query_one(
                "SELECT value FROM store_meta WHERE key = 'revision' FOR UPDATE",
                &[],
            )?
            .try_get(0)?;
        let mut w = PgWriter::new(&mut tx);
        if !f(&mut w)? {
            return Ok(None);
        }
        w.exec(BUMP_REVISION, vec![])?;
        tx.commit()?;
        // The row stayed locked from the read to the commit: the bump made it one more.
        Ok(Some(before + 1))
    }

    /// Runs `sql` with `args` and decodes each row with `f`.
    fn select<T>(
        &self,
        table: &'static str,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
        f: fn(&Row) -> ColResult<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.with(|c| decode_all(table, c.query(sql, args)?, f))
    }

    fn select_one<T>(
        &self,
        table: &'static str,
        sql: &str,
        key: &str,
        f: fn(&Row) -> ColResult<T>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.select(table, sql, &[&key], f)?.into_iter().next())
    }
}

/// The open client of `conn`, connecting first when there is none or it was lost.
fn connected<'c>(target: &PgTarget, conn: &'c mut Conn) -> Result<&'c mut Client, StoreError> {
    if conn.client.as_ref().is_none_or(Client::is_closed) {
        conn.client = None;
        let client = target
            .config()
            .connect(NoTls)
            .map_err(|e| StoreError::Unreachable(format!("{target}: {}", StoreError::from(e))))?;
        conn.client = Some(client);
    }
    Ok(conn.client.as_mut().expect("connected above"))
}

fn revision(c: &mut impl postgres::GenericClient) -> Result<i64, StoreError> {
    Ok(
        c.query_one("SELECT value FROM store_meta WHERE key = 'revision'", &[])?
            .get(0),
    )
}

fn decode_all<T>(
    table: &'static str,
    rows: Vec<Row>,
    f: fn(&Row) -> ColResult<T>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| f(r).map_err(|d| corrupt(table, d)))
        .collect()
}

impl Cols for Row {
    fn opt_text(&self, c: &str) -> ColResult<Option<String>> {
        self.try_get(c).map_err(|e| format!("{c}: {e}"))
    }
    fn opt_int(&self, c: &str) -> ColResult<Option<i64>> {
        self.try_get(c).map_err(|e| format!("{c}: {e}"))
    }
    fn flag(&self, c: &str) -> ColResult<bool> {
        self.try_get(c).map_err(|e| format!("{c}: {e}"))
    }
}

/// Decodes the user, binding and token-key rows of one read into `state` (bindings sorted),
/// for the full and the partial read alike.
fn fill_principals(
    state: &mut StoreState,
    users: Vec<Row>,
    bindings: Vec<Row>,
    keys: Vec<Row>,
) -> Result<(), StoreError> {
    for u in decode_all("users", users, user_row)? {
        state.users.insert(u.username.clone(), u);
    }
    state.bindings = decode_all("bindings", bindings, binding_row)?;
    state.bindings.sort();
    for t in decode_all("token_keys", keys, token_row)? {
        state.token_keys.insert(t.key_id.clone(), t);
    }
    Ok(())
}

/// A read-only transaction that sees one snapshot of the database for all its statements
/// (repeatable read), so a state read from several tables is one consistent state.
fn read_transaction(c: &mut Client) -> Result<postgres::Transaction<'_>, postgres::Error> {
    c.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

impl Store for PgStore {
    fn load_state(&self) -> Result<StoreState, StoreError> {
        self.with(|c| {
            let mut tx = read_transaction(c)?;
            let mut state = StoreState::default();
            let users = tx.query("SELECT * FROM users", &[])?;
            let bindings = tx.query("SELECT * FROM bindings ORDER BY id", &[])?;
            let keys = tx.query("SELECT * FROM token_keys", &[])?;
            let models = tx.query("SELECT * FROM models", &[])?;
            let requests = tx.query("SELECT * FROM stage_requests", &[])?;
            let statuses = tx.query("SELECT * FROM object_status", &[])?;
            state.revision = revision(&mut tx)?;
            tx.commit()?;
            fill_principals(&mut state, users, bindings, keys)?;
            for m in decode_all("models", models, model_row)? {
                state.models.insert((m.scope.clone(), m.name.clone()), m);
            }
            for r in decode_all("stage_requests", requests, request_row)? {
                state
                    .requests
                    .insert((r.namespace.clone(), r.name.clone()), r);
            }
            for s in decode_all("object_status", statuses, status_row)? {
                state.statuses.insert(s.key.clone(), s);
            }
            Ok(state)
        })
    }

    fn load_partial(&self, keys: &super::StateKeys) -> Result<StoreState, StoreError> {
        // One statement per table, the keys passed as arrays (as the set writes do).
        let usernames: Vec<&str> = keys.usernames.iter().map(String::as_str).collect();
        let [kinds, namespaces, names] = key_columns(&keys.objects);
        const OWNED: &str = "(owner_kind, owner_namespace, owner_name) IN \
             (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))";
        // Statuses of the objects and of the status-only keys.
        let [skinds, snamespaces, snames] = key_columns(keys.objects.iter().chain(&keys.statuses));
        // Records of the stage requests among the objects, and the models asked for.
        let [_, rnamespaces, rnames] = key_columns(
            keys.objects
                .iter()
                .filter(|k| k.kind == "ModelStageRequest"),
        );
        let mut model_columns: [Vec<&str>; 3] = Default::default();
        for (scope, name) in &keys.models {
            model_columns[0].push(scope.customer.as_deref().unwrap_or_default());
            model_columns[1].push(scope.project.as_deref().unwrap_or_default());
            model_columns[2].push(name);
        }
        let [mcustomers, mprojects, mnames] = model_columns;
        self.with(|c| {
            let mut tx = read_transaction(c)?;
            let objects: [&(dyn ToSql + Sync); 3] = [&kinds, &namespaces, &names];
            let users = tx.query(
                "SELECT * FROM users WHERE username = ANY($1)",
                &[&usernames],
            )?;
            let bindings = tx.query(
                &format!("SELECT * FROM bindings WHERE username = ANY($4) OR {OWNED}"),
                &[&kinds, &namespaces, &names, &usernames],
            )?;
            let tokens = tx.query(&format!("SELECT * FROM token_keys WHERE {OWNED}"), &objects)?;
            let statuses = tx.query(
                "SELECT * FROM object_status WHERE (kind, namespace, name) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                &[&skinds, &snamespaces, &snames],
            )?;
            let requests = tx.query(
                "SELECT * FROM stage_requests WHERE (namespace, name) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[]))",
                &[&rnamespaces, &rnames],
            )?;
            let models = tx.query(
                "SELECT * FROM models WHERE (scope_customer, scope_project, name) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
                &[&mcustomers, &mprojects, &mnames],
            )?;
            let mut state = StoreState {
                revision: revision(&mut tx)?,
                ..StoreState::default()
            };
            tx.commit()?;
            fill_principals(&mut state, users, bindings, tokens)?;
            for r in decode_all("stage_requests", requests, request_row)? {
                state
                    .requests
                    .insert((r.namespace.clone(), r.name.clone()), r);
            }
            for m in decode_all("models", models, model_row)? {
                state.models.insert((m.scope.clone(), m.name.clone()), m);
            }
            for s in decode_all("object_status", statuses, status_row)? {
                state.statuses.insert(s.key.clone(), s);
            }
            Ok(state)
        })
    }

    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        // The keys this commit writes, for the journal, read in its transaction before the
        // write (see `SqliteStore::commit`).
        let mut touched = match &self.journal {
            Some(_) => Touched::of(ops),
            None => None,
        };
        let revision = self.write_at(|w| {
            if let Some(t) = &mut touched {
                let owners = "SELECT username FROM bindings WHERE owner_namespace = $1 AND owner_name = $2";
                let ready = "SELECT ready FROM object_status WHERE kind = $1 AND namespace = $2 AND name = $3";
                // Both reads run in the writer's transaction, one at a time.
                let w = std::cell::RefCell::new(&mut *w);
                t.read_before(
                    ops,
                    |ns: &str, name: &str| -> Result<Vec<String>, StoreError> {
                        let rows = w.borrow_mut().query(owners, &[&ns, &name])?;
                        rows.iter()
                            .map(|r| r.try_get::<_, String>(0).map_err(StoreError::from))
                            .collect()
                    },
                    |k: &ObjectKey| -> Result<Option<bool>, StoreError> {
                        let rows = w
                            .borrow_mut()
                            .query(ready, &[&k.kind, &k.namespace, &k.name])?;
                        match rows.first() {
                            Some(r) => Ok(Some(r.try_get::<_, bool>(0)?)),
                            None => Ok(None),
                        }
                    },
                )?;
            }
            for op in ops {
                write_op(w, op)?;
            }
            Ok(true)
        })?;
        if let (Some(journal), Some(revision)) = (&self.journal, revision) {
            journal.push(Committed { revision, touched });
        }
        Ok(())
    }

    fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.select_one(
            "users",
            "SELECT * FROM users WHERE username = $1",
            username,
            user_row,
        )
    }

    fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError> {
        Ok(super::grants_of_bindings(self.select(
            "bindings",
            "SELECT * FROM bindings WHERE username = $1 ORDER BY id",
            &[&username],
            binding_row,
        )?))
    }

    fn token_key(&self, key_id: &str) -> Result<Option<TokenKeyRow>, StoreError> {
        self.select_one(
            "token_keys",
            "SELECT * FROM token_keys WHERE key_id = $1",
            key_id,
            token_row,
        )
    }

    fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
        self.select(
            "models",
            r#"SELECT * FROM models ORDER BY scope_customer COLLATE "C", scope_project COLLATE "C", name COLLATE "C""#,
            &[],
            model_row,
        )
    }

    fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError> {
        self.select(
            "object_status",
            r#"SELECT * FROM object_status ORDER BY kind COLLATE "C", namespace COLLATE "C", name COLLATE "C""#,
            &[],
            status_row,
        )
    }

    fn audit(&self, after: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.select(
            "audit_log",
            "SELECT * FROM audit_log WHERE id > $1 ORDER BY id",
            &[&after],
            audit_row,
        )
    }

    fn create_session(&mut self, s: &SessionRow) -> Result<(), StoreError> {
        let grants =
            serde_json::to_string(&s.grants).map_err(|e| corrupt("sessions", e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id_hash, username, grants_json, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &s.id_hash.expose(),
                    &s.username,
                    &grants,
                    &s.created_at.to_string(),
                    &s.expires_at.to_string(),
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        self.select_one(
            "sessions",
            "SELECT * FROM sessions WHERE id_hash = $1",
            id_hash,
            session_row,
        )
    }

    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
            Ok(())
        })
    }

    fn record_login(&mut self, username: &str, at: Timestamp) -> Result<(), StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "UPDATE users SET last_login = $2, first_login = coalesce(first_login, $2)
                  WHERE username = $1",
                &[&username, &at.to_string()],
            )?;
            // The status tells the truth at once: the first login makes an invited user Active.
            tx.execute(
                "UPDATE object_status SET phase = 'Active'
                  WHERE kind = 'User' AND phase = 'Invited' AND EXISTS (
                    SELECT 1 FROM users u WHERE u.username = $1 AND (
                      (u.owner_kind = 'User' AND u.owner_namespace = object_status.namespace
                         AND u.owner_name = object_status.name)
                      OR (u.bootstrap AND object_status.source = 'bootstrap'
                         AND (object_status.extra_json::jsonb ->> 'username') = $1)))",
                &[&username],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn user_by_invitation(&self, invitation_id: &str) -> Result<Option<UserRow>, StoreError> {
        self.select_one(
            "users",
            "SELECT * FROM users WHERE invitation_id = $1",
            invitation_id,
            user_row,
        )
    }

    fn set_chosen_password(&mut self, p: &ChosenPassword) -> Result<bool, StoreError> {
        // A plan made from the row before this change is refused (Stale) and made again.
        self.write(|w| chosen_password(w, p))
    }

    fn user_sessions(&self, username: &str) -> Result<Vec<SessionRow>, StoreError> {
        self.select(
            "sessions",
            "SELECT * FROM sessions WHERE username = $1 ORDER BY created_at, id_hash",
            &[&username],
            session_row,
        )
    }

    fn reserve_attempt(
        &mut self,
        counters: &[Counter],
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        self.with(|c| super::throttle::reserve_pg(c, counters, now))
    }

    fn forget_failures(&mut self, key: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM login_failures WHERE key = $1", &[&key])?;
            Ok(())
        })
    }
}

/// Key of the advisory lock a directory-mode reconciler holds ("stagegate-rec" in ASCII);
/// public so operators and tests can see (in `pg_locks`) or wait for the holder.
pub const RECONCILE_LOCK: i64 = 0x7374_6167_6572_6563;

/// The right to reconcile into a shared PostgreSQL store in directory mode: a session-level
/// advisory lock held by one connection. Only its holder reconciles; when the holder dies its
/// connection closes, the server releases the lock, and another process takes it.
#[derive(Debug)]
pub struct ReconcileLock {
    conn: PgStore,
}

impl ReconcileLock {
    /// A lock on `target`, not yet taken (no connection yet).
    pub fn new(target: PgTarget) -> Self {
        ReconcileLock {
            conn: PgStore::unopened(target),
        }
    }

    /// Takes the lock when it is free; true when this process holds it.
    pub fn try_acquire(&self) -> Result<bool, StoreError> {
        if self.held()? {
            return Ok(true);
        }
        self.conn.with(|c| {
            Ok(
                c.query_one("SELECT pg_try_advisory_lock($1)", &[&RECONCILE_LOCK])?
                    .get(0),
            )
        })
    }

    /// Whether this process still holds the lock (false once its connection was lost: a
    /// reconnected session holds nothing).
    pub fn held(&self) -> Result<bool, StoreError> {
        self.conn.with(|c| {
            Ok(c.query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                   AND pid = pg_backend_pid() AND granted)",
                &[],
            )?
            .get(0))
        })
    }
}

/// The kind, namespace and name columns of `keys`, as the arrays an `unnest($1, $2, $3)`
/// statement takes.
fn key_columns<'a>(
    keys: impl IntoIterator<Item = &'a crate::snapshot::ObjectKey>,
) -> [Vec<&'a str>; 3] {
    let mut columns: [Vec<&str>; 3] = Default::default();
    for k in keys {
        columns[0].push(&k.kind);
        columns[1].push(&k.namespace);
        columns[2].push(&k.name);
    }
    columns
}
