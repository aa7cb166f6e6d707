//! Session listing the HTTP API needs beyond the `Store` trait: it keeps every
//! live session in memory and reloads them after each apply.

use super::{all, session_row, SqliteStore};
use crate::store::{SessionRow, StoreError};

impl SqliteStore {
    /// Every stored session, oldest first (ids are only stored hashed).
    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        all(
            &self.conn,
            "SELECT * FROM sessions ORDER BY created_at",
            |r| session_row(r),
        )
    }
}

impl SqliteStore {
    /// See [`crate::store::AnyStore::sessions_marker`].
    pub fn sessions_marker(&self) -> Result<crate::store::SessionsMarker, StoreError> {
        Ok(self
            .conn
            .query_row(crate::store::SESSIONS_MARKER, [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?)
    }

    /// The store revision (bumped by every commit): a cheap "has anyone applied?" probe.
    pub fn current_revision(&self) -> Result<i64, StoreError> {
        Ok(super::revision(&self.conn)?)
    }

    /// Evidence that nothing in the database changed: equal tokens taken from this store
    /// mean no connection wrote in between (SQLite's `data_version` moves when another
    /// connection commits, `total_changes` when this one writes). Unlike the revision it
    /// also sees writes that do not bump it (logins, sessions, self-service).
    pub fn state_token(&self) -> Result<StateToken, StoreError> {
        let data_version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(StateToken(Token::Sqlite {
            data_version,
            own_changes: self.conn.total_changes(),
        }))
    }
}

/// Evidence that nothing in a store changed: two equal tokens taken from the same store
/// mean nothing was committed to it in between (see [`SqliteStore::state_token`] and
/// [`crate::store::PgStore::state_token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateToken(Token);

/// What each store can prove "nothing changed" with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Sqlite {
        data_version: i64,
        own_changes: u64,
    },
    /// `pg_current_snapshot()` as text.
    Postgres(String),
}

impl StateToken {
    /// A PostgreSQL server's transaction snapshot (`xmin:xmax:running`), see
    /// [`crate::store::PgStore::state_token`].
    pub(crate) fn postgres(snapshot: String) -> Self {
        StateToken(Token::Postgres(snapshot))
    }
}
