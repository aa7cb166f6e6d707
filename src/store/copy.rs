//! Moving a store: every row of one store into another, empty one (`stagegate store copy`),
//! e.g. from the embedded SQLite file into PostgreSQL when an install outgrows one pod.

use super::{AnyStore, AuditRow, Store, StoreError, StoreOp, StoreState, TABLES};

/// What was copied, per table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, i64)>,
}

/// Copies everything `from` holds into `to`, which must be empty: users keep their
/// password hashes, token keys their HMACs (same server key: tokens keep working),
/// sessions, statuses, decided requests and the audit log (in its order) come along.
/// The rows go in one transaction, sessions right after (they refer to users).
pub fn copy_store(from: &AnyStore, to: &mut AnyStore) -> Result<Copied, StoreError> {
    let mut nonempty = Vec::new();
    for t in TABLES {
        if to.count(t)? > 0 {
            nonempty.push(t);
        }
    }
    if !nonempty.is_empty() {
        return Err(StoreError::BadTarget(format!(
            "target is not empty (rows in {}): refusing to copy into it",
            nonempty.join(", ")
        )));
    }
    let ops = copy_ops(&from.load_state()?, from.audit(0)?);
    to.commit(&ops)?;
    for s in from.sessions()? {
        to.create_session(&s)?;
    }
    let mut copied = Copied::default();
    for t in TABLES {
        copied.rows.push((t, to.count(t)?));
    }
    Ok(copied)
}

/// The writes that put `state` and `audit` (oldest first) into an empty store: every row of
/// every table but sessions, as one commit (also what the scale benchmark times).
pub fn copy_ops(state: &StoreState, audit: Vec<AuditRow>) -> Vec<StoreOp> {
    let mut ops = Vec::new();
    ops.extend(
        state
            .users
            .values()
            .map(|u| StoreOp::UpsertUser(Box::new(u.clone()))),
    );
    ops.extend(state.bindings.iter().cloned().map(StoreOp::UpsertBinding));
    ops.extend(
        state
            .token_keys
            .values()
            .map(|k| StoreOp::UpsertTokenKey(Box::new(k.clone()))),
    );
    ops.extend(state.models.values().cloned().map(StoreOp::UpsertModel));
    ops.extend(
        state
            .requests
            .values()
            .map(|r| StoreOp::InsertRequest(Box::new(r.clone()))),
    );
    ops.extend(
        state
            .statuses
            .values()
            .map(|s| StoreOp::SetStatus(Box::new(s.clone()))),
    );
    ops.extend(audit.into_iter().map(|a| StoreOp::Audit(Box::new(a))));
    ops
}
