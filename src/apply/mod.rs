//! `apply`: performs a plan against the identity store and delivers secrets once.
//!
//! ```text
//!  generate keys and passwords, hash passwords (all cores, outside any transaction)
//!    → transaction 1: every data change; new keys and passwords recorded *pending* (hashes only);
//!      the sessions of users who lose a capability ended (`privileges`)
//!    → deliver each secret through the SecretSink
//!    → transaction 2: delivered ones marked issued, failed ones discarded; statuses
//! ```
//!
//! A crash between the steps leaves only pending entries, which are never
//! accepted; the next plan completes a pending entry whose Secret holds its
//! id and discards (and re-issues) the others. So no usable key exists that
//! nobody holds, and every delivered key is known to the store. A plan with
//! no changes writes nothing at all.

mod finish;
mod ops;
mod privileges;

use crate::plan::Plan;
use crate::secrets::{PasswordParams, SecretSink, ServerKey};
use crate::snapshot::ObjectKey;
use crate::store::{ObjectStatus, Store, StoreError, StoreOp};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What apply needs besides the plan, the store and the sink.
#[derive(Clone, Copy, Debug)]
pub struct ApplyContext<'a> {
    /// Now: issue times, decisions, audit rows.
    pub now: Timestamp,
    /// Key for token secret HMACs.
    pub server_key: &'a ServerKey,
    /// argon2id cost.
    pub password_params: PasswordParams,
}

/// The outcome of one declared object, as stored and printed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Ready condition.
    pub ready: bool,
    /// Machine reason.
    pub reason: String,
    /// Phase, for kinds that have one.
    pub phase: Option<String>,
    /// Human message.
    pub message: String,
}

impl From<&ObjectStatus> for Outcome {
    fn from(s: &ObjectStatus) -> Self {
        Outcome {
            kind: s.key.kind.clone(),
            namespace: s.key.namespace.clone(),
            name: s.key.name.clone(),
            ready: s.ready,
            reason: s.reason.clone(),
            phase: s.phase.clone(),
            message: s.message.clone(),
        }
    }
}

/// Errors of apply (never carry secret values).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The store failed; the transaction in progress was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Delivered Secrets could not be made durable; the keys stay pending.
    #[error(transparent)]
    Sink(#[from] crate::secrets::SinkError),
    /// Password hashing failed.
    #[error(transparent)]
    Password(#[from] crate::secrets::PasswordError),
}

/// Applies `plan`; returns the outcome of every declared object.
pub fn apply(
    plan: &Plan,
    store: &mut dyn Store,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<Outcome>, ApplyError> {
    if plan.changes.is_empty() {
        return Ok(plan.objects.iter().map(Outcome::from).collect());
    }
    let state = store.load_state()?;
    let mut work = ops::Work::new(&state, ctx);
    work.prepare(plan)?;
    let mut first = work.translate(plan);
    first.extend(privileges::end_reduced_sessions(plan, &state, &work));
    let deliveries = std::mem::take(&mut work.deliveries);
    if deliveries.is_empty() {
        let mut all = first;
        all.extend(work.status_ops(plan, &state));
        store.commit(&all)?;
        work.retire_secrets(sink);
        return Ok(work.outcomes(plan));
    }
    store.commit(&first)?;
    let mut second: Vec<StoreOp> = Vec::new();
    let results = deliver_all(sink, &deliveries);
    for (d, result) in deliveries.iter().zip(results) {
        work.delivered(d, result, &mut second);
    }
    if let Err(e) = sink.flush() {
        // Not durable yet: leave everything pending; the next apply checks the Secrets again.
        tracing::warn!(error = %e, "secret delivery could not be made durable");
        return Err(ApplyError::Sink(e));
    }
    second.extend(work.status_ops(plan, &state));
    store.commit(&second)?;
    work.retire_secrets(sink);
    Ok(work.outcomes(plan))
}

/// Delivers every Secret, several at a time (each waits on I/O); results in input order.
fn deliver_all(
    sink: &dyn SecretSink,
    deliveries: &[ops::PendingDelivery],
) -> Vec<Result<crate::secrets::Delivery, crate::secrets::SinkError>> {
    const PARALLEL: usize = 8;
    let chunk = deliveries.len().div_ceil(PARALLEL).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = deliveries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|d| sink.deliver(&d.secret))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(deliveries.chunks(chunk))
            .flat_map(|(h, part)| {
                h.join().unwrap_or_else(|_| {
                    part.iter()
                        .map(|_| {
                            Err(crate::secrets::SinkError::Config(
                                "delivery thread panicked".into(),
                            ))
                        })
                        .collect()
                })
            })
            .collect()
    })
}

/// Whether every outcome is ready.
pub fn all_ready(outcomes: &[Outcome]) -> bool {
    outcomes.iter().all(|o| o.ready)
}

/// The key of an outcome.
pub fn outcome_key(o: &Outcome) -> ObjectKey {
    ObjectKey::new(&o.kind, &o.namespace, &o.name)
}
