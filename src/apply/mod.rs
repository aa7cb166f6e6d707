//! `apply`: performs a plan against the identity store and delivers secrets once.
//!
//! ```text
//!  generate keys and passwords, hash passwords (all cores, outside any transaction)
//!    → transaction 1: every data change; new keys and passwords recorded *pending* (hashes only);
//!      the sessions of users who lose a capability ended (`privileges`)
//!    → deliver each secret through the SecretSink
//!    → transaction 2: delivered ones marked issued, conflicts discarded; statuses
//! ```
//!
//! Transaction 1 holds every revocation, deletion and reduction of
//! privileges, and it never waits on a delivery: a Secret that cannot be read
//! or written (not a directory, permission denied, no space, an API error)
//! becomes its own object's outcome (`DeliveryFailed`, `SecretUnreadable`)
//! with the error, and the rest of the plan is applied in the same reconcile.
//!
//! ```text
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
use crate::store::{ObjectStatus, Store, StoreError, StoreOp, StoreState};
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
    /// The API's public base URL (`run --public-url`): invitation Secrets then also hold a
    /// ready-to-open acceptance URL.
    pub public_url: Option<&'a str>,
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
    apply_from(plan, &state, store, sink, ctx)
}

/// [`apply`] given `state`, the store's state the plan was made from, as the caller read it
/// just before planning: a small change then costs no second read of the whole store. The
/// plan's base revision still guards the commit, so a store that moved on refuses it.
pub fn apply_from(
    plan: &Plan,
    state: &StoreState,
    store: &mut dyn Store,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<Outcome>, ApplyError> {
    if plan.changes.is_empty() {
        return Ok(plan.objects.iter().map(Outcome::from).collect());
    }
    let mut work = ops::Work::new(state, ctx);
    work.prepare(plan)?;
    let mut first = work.translate(plan);
    first.extend(privileges::end_reduced_sessions(plan, state, &work));
    let deliveries = std::mem::take(&mut work.deliveries);
    if deliveries.is_empty() {
        let mut all = first;
        all.extend(work.status_ops(plan, state));
        store.commit(&all)?;
        work.retire_secrets(sink);
        return Ok(work.outcomes(plan));
    }
    store.commit(&first)?;
    let mut second: Vec<StoreOp> = Vec::new();
    let mut results = deliver_all(sink, &deliveries);
    // A delivery is done only once durable; a namespace whose flush failed keeps its keys pending.
    let unflushed = sink.flush();
    for (d, result) in deliveries.iter().zip(results.iter_mut()) {
        if let (Ok(_), Some(e)) = (&*result, unflushed.get(&d.secret.namespace)) {
            *result = Err(e.for_secret(&d.secret.namespace, &d.secret.name));
        }
    }
    for (d, result) in deliveries.iter().zip(results) {
        work.delivered(d, result, &mut second);
    }
    second.extend(work.status_ops(plan, state));
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
