//! A reconcile that cannot run at all is loud: besides the log, `/readyz`,
//! the metrics and `stagegate status` say so. For `status`, the front end
//! records the failure as one status row, `Reconcile stagegate/last`, which
//! the next successful plan removes (it is no declaration's), so `status`
//! shows it exactly while reconciles fail.

use crate::snapshot::ObjectKey;
use crate::store::{ObjectStatus, Store, StoreOp};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// The key of the failure row: a kind no manifest can declare.
pub fn failure_key() -> ObjectKey {
    ObjectKey::new("Reconcile", "stagegate", "last")
}

/// Records (best effort) that the reconcile could not run: `reason` is the machine reason,
/// `error` what failed; `last_success` when this process last reconciled, if ever.
pub fn record_failure(
    store: &mut dyn Store,
    reason: &str,
    error: &str,
    last_success: Option<Timestamp>,
    now: Timestamp,
) {
    let since = store
        .statuses()
        .ok()
        .and_then(|all| all.into_iter().find(|s| s.key == failure_key()))
        .and_then(|s| s.extra.get("failingSince").cloned())
        .unwrap_or_else(|| now.to_string());
    let last = last_success.map_or_else(
        || "none since this process started".to_string(),
        |t| t.to_string(),
    );
    let mut extra = BTreeMap::new();
    extra.insert("failingSince".to_string(), since.clone());
    if let Some(t) = last_success {
        extra.insert("lastSuccess".to_string(), t.to_string());
    }
    let row = ObjectStatus {
        key: failure_key(),
        ready: false,
        reason: reason.to_string(),
        message: format!(
            "reconciles cannot run (failing since {since}; last successful reconcile: {last}): {error}; retried with back-off, no declaration is applied meanwhile"
        ),
        phase: None,
        observed_generation: None,
        extra,
        source: "reconcile".to_string(),
    };
    // A store that cannot be written cannot record this either: /readyz and the metrics still say it.
    if let Err(e) = store.commit(&[StoreOp::SetStatus(Box::new(row))]) {
        tracing::warn!(error = %e, "could not record the reconcile failure in the store");
    }
}
