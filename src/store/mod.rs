//! The identity store: users, bindings, token keys, models, decided requests,
//! sessions, per-object status and the audit log.
//!
//! `plan` reads a [`StoreState`] (one read); `apply` writes a list of
//! [`StoreOp`]s in one transaction through [`Store::commit`]. The HTTP API
//! uses the point lookups. [`SqliteStore`] is the embedded implementation,
//! [`PgStore`] the one several processes share; [`AnyStore`] is whichever
//! `--store` names (a file path or a `postgres://` URL).

mod any;
mod audit;
mod copy;
mod journal;
mod model;
mod partial;
pub mod pg;
mod rows;
mod schema;
mod sqlite;
pub(crate) mod throttle;
mod write;

pub use any::{AnyStore, StatusSummary};
pub use audit::{audit_page, parse_object, parse_since, AuditFilter, AuditPage};
pub use copy::{copy_ops, copy_store, Copied};
pub use journal::{CommitJournal, Committed, StatusCounts, Touched, MAX_TOUCHED};
pub use model::{
    AuditRow, BindingRow, ChosenPassword, DecidedRequest, InvitationRow, InvitationState, KeyState,
    ModelRow, ObjectStatus, Owner, PasswordSource, PendingPassword, Replaces, SessionRow, StoreOp,
    StoreState, TokenKeyRow, UserRow,
};
pub use partial::StateKeys;
pub use pg::{PgStore, PgTarget, ReconcileLock};
pub use rows::phase_str;
pub use schema::SCHEMA_VERSION;
pub use sqlite::{SqliteStore, StateToken};
pub use throttle::{Attempt, BackoffPolicy, Counter};

use crate::policy::Grant;
use jiff::Timestamp;

/// Errors of the identity store (never carry secret values).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer stagegate.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// Version found.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// A stored value could not be decoded.
    #[error("corrupt store row in {table}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong (never the value of a secret column).
        detail: String,
    },
    /// The store directory could not be created.
    #[error("cannot create store directory {path}: {source}")]
    Io {
        /// Directory.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The store changed since the plan was made (another reconcile ran): plan again.
    #[error("the store changed since the plan was made (revision {found}, plan made at {expected}); plan again")]
    Stale {
        /// Revision the plan was made from.
        expected: i64,
        /// Revision found.
        found: i64,
    },
    /// PostgreSQL failed (the server's message and code, never row values).
    #[error("store database error: {0}")]
    Postgres(String),
    /// The PostgreSQL server could not be reached (target shown with its password redacted).
    #[error("store unreachable: {0}")]
    Unreachable(String),
    /// A `--store` URL that cannot be used as given.
    #[error("store {0}")]
    BadTarget(String),
    /// A failure injected by a test wrapper.
    #[error("injected failure: {0}")]
    Injected(String),
}

/// The identity store as the pipeline and the HTTP API use it.
pub trait Store {
    /// Everything `plan` needs, read in one transaction.
    fn load_state(&self) -> Result<StoreState, StoreError>;
    /// Only the rows `keys` names, read in one transaction: what
    /// [`StoreState::restricted_to`] keeps of [`Store::load_state`] (which this default
    /// reads and filters; the databases read just those rows).
    fn load_partial(&self, keys: &StateKeys) -> Result<StoreState, StoreError> {
        Ok(self.load_state()?.restricted_to(keys))
    }
    /// Performs `ops` in one transaction: all or nothing.
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
    /// One user by username.
    fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError>;
    /// Grants of a username from its bindings.
    fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError>;
    /// One token key by key id.
    fn token_key(&self, key_id: &str) -> Result<Option<TokenKeyRow>, StoreError>;
    /// Every model.
    fn models(&self) -> Result<Vec<ModelRow>, StoreError>;
    /// Every stored object status, sorted by kind, namespace, name.
    fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError>;
    /// Audit rows with id greater than `after`, oldest first.
    fn audit(&self, after: i64) -> Result<Vec<AuditRow>, StoreError>;
    /// Records a new session.
    fn create_session(&mut self, session: &SessionRow) -> Result<(), StoreError>;
    /// A session by the hash of its id.
    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError>;
    /// Ends one session.
    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError>;
    /// Records a successful login (first and last login time).
    fn record_login(&mut self, username: &str, at: Timestamp) -> Result<(), StoreError>;
    /// The user holding the invitation with this id (pending, issued or accepted).
    fn user_by_invitation(&self, invitation_id: &str) -> Result<Option<UserRow>, StoreError>;
    /// Sets a password the person chose, in one transaction with its audit row, the end of the
    /// user's other sessions and a revision bump (a plan made before it is refused). False, and
    /// nothing written, when the row no longer holds what `p.replaces` names.
    fn set_chosen_password(&mut self, p: &ChosenPassword) -> Result<bool, StoreError>;
    /// The live sessions of one user, oldest first.
    fn user_sessions(&self, username: &str) -> Result<Vec<SessionRow>, StoreError>;
    /// Reserves one login attempt on every counter in `counters` in one atomic step, across
    /// every process sharing the store: [`Attempt::Locked`] (nothing counted) while any of
    /// them is locked at `now`, else each counts the attempt as a failure until
    /// [`Store::forget_failures`]. Counters quiet for their policy's window are deleted.
    fn reserve_attempt(
        &mut self,
        counters: &[Counter],
        now: Timestamp,
    ) -> Result<Attempt, StoreError>;
    /// Forgets one counter (a successful login gives its attempt back).
    fn forget_failures(&mut self, key: &str) -> Result<(), StoreError>;
}

/// Every table of the store, in an order that respects foreign keys (users before sessions).
pub(crate) const TABLES: [&str; 8] = [
    "users",
    "bindings",
    "token_keys",
    "models",
    "stage_requests",
    "sessions",
    "object_status",
    "audit_log",
];

/// Number of sessions and the latest creation time (see [`AnyStore::sessions_marker`]).
pub type SessionsMarker = (i64, Option<String>);

/// The query behind [`AnyStore::sessions_marker`], the same in both databases.
const SESSIONS_MARKER: &str = "SELECT count(*), max(created_at) FROM sessions";

/// The distinct grants of some bindings, sorted.
fn grants_of_bindings(bindings: Vec<BindingRow>) -> Vec<Grant> {
    let mut grants: Vec<Grant> = bindings
        .into_iter()
        .map(|b| Grant {
            role: b.role,
            scope: b.scope,
        })
        .collect();
    grants.sort();
    grants.dedup();
    grants
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod throttle_tests;
