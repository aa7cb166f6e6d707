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
    /// The store revision (bumped by every commit): a cheap "has anyone applied?" probe.
    pub fn current_revision(&self) -> Result<i64, StoreError> {
        Ok(super::revision(&self.conn)?)
    }
}
