//! `AnyStore`: the store `--store` names, SQLite for a file path, PostgreSQL for a
//! `postgres://` URL, behind one type so the daemons, the API and the CLI need not
//! care which.

use super::model::*;
use super::pg::is_url;
use super::{
    Attempt, Counter, PgStore, PgTarget, SessionsMarker, SqliteStore, StateToken, Store, StoreError,
};
use crate::policy::Grant;
use jiff::Timestamp;
use std::path::Path;

/// Status counts per (kind, ready), and the statuses of one kind.
pub type StatusSummary = (Vec<(String, bool, i64)>, Vec<ObjectStatus>);

/// Either store.
#[derive(Debug)]
pub enum AnyStore {
    /// One SQLite file (the embedded default).
    Sqlite(SqliteStore),
    /// A PostgreSQL database several processes share (boxed: its client is large).
    Postgres(Box<PgStore>),
}

/// Calls the same method on whichever store this is.
macro_rules! both {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call,
            AnyStore::Postgres($s) => $call,
        }
    };
}

impl AnyStore {
    /// Opens (creating or migrating) the store `location` names: a SQLite file path, or a
    /// `postgres://`/`postgresql://` URL whose password may not come from the command line.
    pub fn open(location: &Path) -> Result<Self, StoreError> {
        if is_url(location) {
            let url = location.to_string_lossy();
            let target = PgTarget::parse(&url, on_command_line(&url))?;
            Ok(AnyStore::Postgres(Box::new(PgStore::open(target)?)))
        } else {
            Ok(AnyStore::Sqlite(SqliteStore::open(location)?))
        }
    }

    /// A fresh in-memory SQLite store (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(AnyStore::Sqlite(SqliteStore::in_memory()?))
    }

    /// `location` as it may be printed or logged: a URL's password is redacted.
    pub fn describe(location: &Path) -> String {
        if is_url(location) {
            super::pg::redact(&location.to_string_lossy())
        } else {
            location.display().to_string()
        }
    }

    /// Every stored session, oldest first.
    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        both!(self, s => s.sessions())
    }

    /// The store revision (bumped by every commit).
    pub fn current_revision(&self) -> Result<i64, StoreError> {
        both!(self, s => s.current_revision())
    }

    /// Evidence that nothing changed (see [`SqliteStore::state_token`], [`PgStore::state_token`]).
    pub fn state_token(&self) -> Result<StateToken, StoreError> {
        both!(self, s => s.state_token())
    }

    /// The first token-key or invitation expiry after `now`, when the store reads it
    /// without reading every row (SQLite: [`SqliteStore::next_expiry`]); None on
    /// PostgreSQL, whose rounds never leave a memo to bound (its token never matches).
    pub fn next_expiry(
        &self,
        now: jiff::Timestamp,
    ) -> Result<Option<Option<jiff::Timestamp>>, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.next_expiry(now).map(Some),
            AnyStore::Postgres(_) => Ok(None),
        }
    }

    /// Records each of this handle's commits (revision and keys) in `journal` from now on
    /// (see [`super::CommitJournal`]); commits by other processes or connections are not
    /// recorded, so a reader following the journal reads everything after one. True: both
    /// stores journal.
    pub fn record_commits(&mut self, journal: &super::CommitJournal) -> bool {
        both!(self, s => s.record_commits(journal.clone()));
        true
    }

    /// Status counts per kind and readiness and the statuses of kind `kind` (see
    /// [`SqliteStore::status_summary`]).
    pub fn status_summary(&self, kind: &str) -> Result<StatusSummary, StoreError> {
        both!(self, s => s.status_summary(kind))
    }

    /// The statuses of kind `kind` (one key range, not the whole table).
    pub fn statuses_of_kind(&self, kind: &str) -> Result<Vec<ObjectStatus>, StoreError> {
        both!(self, s => s.statuses_of_kind(kind))
    }

    /// Number of rows in a table (tests and diagnostics).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        both!(self, s => s.count(table))
    }

    /// A cheap fingerprint of the stored sessions: it moves when any process sharing the
    /// store logs someone in (a later `created_at`) or out (a smaller count).
    pub fn sessions_marker(&self) -> Result<SessionsMarker, StoreError> {
        both!(self, s => s.sessions_marker())
    }
}

/// Whether `url` was passed as a command-line argument (rather than through the environment).
fn on_command_line(url: &str) -> bool {
    std::env::args().any(|a| a == url || a.strip_prefix("--store=") == Some(url))
}

impl From<SqliteStore> for AnyStore {
    fn from(s: SqliteStore) -> Self {
        AnyStore::Sqlite(s)
    }
}

impl From<PgStore> for AnyStore {
    fn from(s: PgStore) -> Self {
        AnyStore::Postgres(Box::new(s))
    }
}

impl Store for AnyStore {
    fn load_state(&self) -> Result<StoreState, StoreError> {
        both!(self, s => s.load_state())
    }
    fn load_partial(&self, keys: &super::StateKeys) -> Result<StoreState, StoreError> {
        both!(self, s => s.load_partial(keys))
    }
    fn commit(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        both!(self, s => s.commit(ops))
    }
    fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        both!(self, s => s.user(username))
    }
    fn grants(&self, username: &str) -> Result<Vec<Grant>, StoreError> {
        both!(self, s => s.grants(username))
    }
    fn token_key(&self, key_id: &str) -> Result<Option<TokenKeyRow>, StoreError> {
        both!(self, s => s.token_key(key_id))
    }
    fn models(&self) -> Result<Vec<ModelRow>, StoreError> {
        both!(self, s => s.models())
    }
    fn statuses(&self) -> Result<Vec<ObjectStatus>, StoreError> {
        both!(self, s => s.statuses())
    }
    fn audit(&self, after: i64) -> Result<Vec<AuditRow>, StoreError> {
        both!(self, s => s.audit(after))
    }
    fn create_session(&mut self, session: &SessionRow) -> Result<(), StoreError> {
        both!(self, s => s.create_session(session))
    }
    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        both!(self, s => s.session(id_hash))
    }
    fn delete_session(&mut self, id_hash: &str) -> Result<(), StoreError> {
        both!(self, s => s.delete_session(id_hash))
    }
    fn record_login(&mut self, username: &str, at: Timestamp) -> Result<(), StoreError> {
        both!(self, s => s.record_login(username, at))
    }
    fn user_by_invitation(&self, invitation_id: &str) -> Result<Option<UserRow>, StoreError> {
        both!(self, s => s.user_by_invitation(invitation_id))
    }
    fn set_chosen_password(&mut self, p: &ChosenPassword) -> Result<bool, StoreError> {
        both!(self, s => s.set_chosen_password(p))
    }
    fn user_sessions(&self, username: &str) -> Result<Vec<SessionRow>, StoreError> {
        both!(self, s => s.user_sessions(username))
    }
    fn reserve_attempt(
        &mut self,
        counters: &[Counter],
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        both!(self, s => s.reserve_attempt(counters, now))
    }
    fn forget_failures(&mut self, key: &str) -> Result<(), StoreError> {
        both!(self, s => s.forget_failures(key))
    }
}
