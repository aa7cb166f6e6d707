//! The shared core, called the way directory mode calls it: observe the
//! Secrets the plan needs, plan, apply (which delivers through the sink),
//! then read back every object's stored outcome for the report phase.
//! Synchronous: run it on a blocking thread.

use crate::apply::{apply_from, ApplyContext, ApplyError};
use crate::bootstrap::{ensure_bootstrap_admin, BootstrapConfig};
use crate::plan::{plan, wanted_secrets, PlanContext};
use crate::secrets::{observe, SecretSink, SinkError};
use crate::snapshot::Snapshot;
use crate::store::{ObjectStatus, Store, StoreError};

/// Errors of the core phase.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Observing Secrets failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Keeping the bootstrap administrator failed.
    #[error(transparent)]
    Bootstrap(#[from] crate::bootstrap::BootstrapError),
    /// The blocking task running the core panicked or was cancelled.
    #[error("reconcile task failed: {0}")]
    Task(String),
}

/// What one pass of the core produced.
#[derive(Debug)]
pub struct Applied {
    /// How many changes to the store data the applied plan held (the plan itself is
    /// dropped once applied: at 77,000 changes it is not kept through the report phase).
    pub changes: usize,
    /// Every stored outcome after apply, as status to report.
    pub statuses: Vec<ObjectStatus>,
    /// When the same inputs would next plan differently by the clock alone (a token key
    /// or invitation expiring; see [`crate::store::StoreState::next_expiry`]), as of the
    /// state this plan was made from.
    pub next_expiry: Option<jiff::Timestamp>,
    /// How long each step took, for the round's phase log.
    pub timings: Timings,
}

/// How long each step of the core took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    /// Reading the whole store state.
    pub load_state: std::time::Duration,
    /// Observing the wanted Secrets and planning.
    pub plan: std::time::Duration,
    /// Applying the plan (one store transaction, Secrets delivered).
    pub apply: std::time::Duration,
    /// The bootstrap step and reading every stored status back.
    pub statuses: std::time::Duration,
}

/// Plans and applies a validated snapshot, delivering secrets through `sink`, then keeps the
/// bootstrap administrator (issue 8) as directory mode does. `ctx` is what apply needs (the
/// clock, server key, argon2id cost and the public URL invitation Secrets point at); the
/// plan is made with the same clock and key. The snapshot, the store state and the
/// observed Secrets are dropped once the plan is made, so apply's peak does not hold
/// them too.
pub fn run(
    snap: Snapshot,
    store: &mut dyn Store,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
    bootstrap: Option<&BootstrapConfig>,
) -> Result<Applied, PipelineError> {
    let (now, key, password_params) = (ctx.now, ctx.server_key, ctx.password_params);
    let mut timings = Timings::default();
    let started = std::time::Instant::now();
    let state = store.load_state()?;
    timings.load_state = started.elapsed();
    let started = std::time::Instant::now();
    let wanted = wanted_secrets(&snap, &state);
    let inventory = observe(sink, wanted.iter());
    let plan = plan(
        &snap,
        &state,
        &PlanContext {
            now,
            server_key: key,
            secrets: &inventory,
            password_policy: password_params.policy,
        },
    );
    timings.plan = started.elapsed();
    let next_expiry = state.next_expiry(now);
    drop(inventory);
    drop(wanted);
    drop(snap);
    let mut changes = 0;
    for c in plan.data_changes() {
        changes += 1;
        tracing::info!(object = %c.object, source = %c.source, op = c.op.name(), change = %crate::plan::describe(&c.op), "change");
    }
    // Apply works from the state the plan was made from (as directory mode's does): no
    // second read of every row.
    let started = std::time::Instant::now();
    apply_from(&plan, &state, store, sink, ctx)?;
    drop(state);
    drop(plan);
    timings.apply = started.elapsed();
    let started = std::time::Instant::now();
    if let Some(cfg) = bootstrap {
        ensure_bootstrap_admin(store, sink, cfg, password_params, now)?;
    }
    let statuses = store.statuses()?;
    timings.statuses = started.elapsed();
    Ok(Applied {
        next_expiry,
        changes,
        statuses,
        timings,
    })
}
