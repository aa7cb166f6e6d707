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
            session_row,
        )
    }
}

impl SqliteStore {
    /// Id of the newest audit row (0 when empty): a cheap "has anyone applied?" probe.
    pub fn last_audit_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM audit_log", [], |r| {
                r.get(0)
            })?)
    }
}
