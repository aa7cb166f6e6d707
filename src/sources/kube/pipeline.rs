//! The shared core, called the way directory mode calls it: observe the
//! Secrets the plan needs, plan, apply (which delivers through the sink),
//! then read back every object's stored outcome for the report phase.
//! Synchronous: run it on a blocking thread.

use crate::apply::{apply_from, ApplyContext, ApplyError};
use crate::bootstrap::BootstrapConfig;
use crate::bootstrap::{ensure_bootstrap_admin, ensure_bootstrap_admin_in, unaffected_by};
use crate::plan::{plan, wanted_secrets, PlanContext};
use crate::secrets::{observe, SecretSink, SinkError};
use crate::snapshot::{ObjectKey, Snapshot};
use crate::sources::scoped::{adds_no_expiry, outcomes_as_planned, Label, Memo, Part};
use crate::store::{AnyStore, ObjectStatus, StateKeys, Store, StoreError, StoreState};
use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// store after the round's apply (the state the plan was made from, when the apply
    /// added no expiry or the store cannot read its expiries alone).
    pub next_expiry: Option<jiff::Timestamp>,
    /// How long each step took, for the round's phase log.
    pub timings: Timings,
    /// What the round leaves for a scoped next round, when it may be one: it ended as
    /// planned, nothing but its apply wrote, and the next expiry is known (see
    /// [`Memo`]). None: the next round reads everything.
    pub memo: Option<Memo>,
    /// How many declarations a scoped round planned (None: a whole round).
    pub scoped: Option<usize>,
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
///
/// With `label`, the round also leaves a [`Memo`] of `snap` (its declarations kept under
/// that label of their source) when the next round may be scoped.
pub fn run(
    snap: Snapshot,
    store: &mut AnyStore,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
    bootstrap: Option<&BootstrapConfig>,
    label: Option<Label>,
) -> Result<Applied, PipelineError> {
    let now = ctx.now;
    let mut timings = Timings::default();
    let before = store.state_token().ok();
    let started = std::time::Instant::now();
    let state = store.load_state()?;
    timings.load_state = started.elapsed();
    let started = std::time::Instant::now();
    let plan = plan_with(&snap, &state, sink, ctx);
    timings.plan = started.elapsed();
    let next_expiry = state.next_expiry(now);
    // The memo's keys are taken now: the snapshot goes before apply. Its token and next
    // expiry are set once the round is done.
    let seed = match (label, &before) {
        (Some(label), Some(token)) => {
            Memo::labelled(&snap, Arc::default(), token.clone(), None, label)
        }
        _ => None,
    };
    drop(snap);
    let changes = log_changes(&plan);
    // Apply works from the state the plan was made from (as directory mode's does): no
    // second read of every row.
    let started = std::time::Instant::now();
    let outcomes = apply_from(&plan, &state, store, sink, ctx)?;
    drop(state);
    let as_planned = outcomes_as_planned(&plan, &outcomes);
    drop(outcomes);
    let after_apply = store.state_token().ok();
    // The expiry known before still bounds when apply wrote nothing that adds one; else
    // the store reads it again from its expiry columns (a first apply issues keys and
    // invitations: without it, the next round would read everything again).
    let until = if after_apply == before || adds_no_expiry(&plan.changes) {
        Some(next_expiry)
    } else {
        store.next_expiry(now)?
    };
    drop(plan);
    timings.apply = started.elapsed();
    let started = std::time::Instant::now();
    if let Some(cfg) = bootstrap {
        ensure_bootstrap_admin(store, sink, cfg, ctx.password_params, now)?;
    }
    let statuses = store.statuses()?;
    timings.statuses = started.elapsed();
    let end = store.state_token().ok();
    // The bootstrap step wrote: what it wrote is not in the memo's bounds.
    let memo = seed
        .filter(|_| as_planned && until.is_some() && end.is_some() && end == after_apply)
        .map(|mut m| {
            m.token = end.clone().unwrap_or(m.token);
            m.until = until.flatten();
            m
        });
    Ok(Applied {
        next_expiry: until.unwrap_or(next_expiry),
        changes,
        statuses,
        timings,
        memo,
        scoped: None,
    })
}

/// Observes the Secrets `snap` needs (as `state` stands) and plans.
fn plan_with(
    snap: &Snapshot,
    state: &StoreState,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
) -> crate::plan::Plan {
    let wanted = wanted_secrets(snap, state);
    let inventory = observe(sink, wanted.iter());
    plan(
        snap,
        state,
        &PlanContext {
            now: ctx.now,
            server_key: ctx.server_key,
            secrets: &inventory,
            password_policy: ctx.password_params.policy,
        },
    )
}

/// Logs each change to the store's data; how many there are.
fn log_changes(plan: &crate::plan::Plan) -> usize {
    let mut changes = 0;
    for c in plan.data_changes() {
        changes += 1;
        tracing::info!(object = %c.object, source = %c.source, op = c.op.name(), change = %crate::plan::describe(&c.op), "change");
    }
    changes
}

/// What a scoped round reads: the part of the declarations it validated and what the
/// cache says changed.
#[derive(Debug)]
pub struct PartInput<'a> {
    /// The part's declarations (validated alone).
    pub snapshot: &'a Snapshot,
    /// The labels (buckets) whose objects changed.
    pub changed: &'a BTreeSet<String>,
    /// The objects that changed, gone, and the usernames the part covers.
    pub part: Part<'a>,
    /// Objects whose status is reported as well (someone else rewrote it).
    pub restatus: &'a BTreeSet<ObjectKey>,
}

/// A scoped round: the very plan and apply of [`run`], on the scope [`Memo::scope`]
/// widens the part's changes to and the rows it touches; the statuses read back are the
/// scope's (and `input.restatus`'s). `Ok(None)`: the change is not provably local (or
/// the memo no longer holds), nothing was done, and the round must read everything.
pub fn run_scoped(
    input: &PartInput<'_>,
    memo: Memo,
    store: &mut AnyStore,
    sink: &dyn SecretSink,
    ctx: &ApplyContext<'_>,
    bootstrap: Option<&BootstrapConfig>,
) -> Result<Option<Applied>, PipelineError> {
    let now = ctx.now;
    let mut timings = Timings::default();
    let started = std::time::Instant::now();
    if store.state_token()? != memo.token || memo.until.is_some_and(|u| now >= u) {
        return Ok(None);
    }
    let Some((scope, state)) =
        memo.scope(input.snapshot, input.changed, Some(input.part), &*store)?
    else {
        return Ok(None);
    };
    timings.load_state = started.elapsed();
    let started = std::time::Instant::now();
    let plan = plan_with(&scope.snapshot, &state, sink, ctx);
    timings.plan = started.elapsed();
    let changes = log_changes(&plan);
    let started = std::time::Instant::now();
    let outcomes = apply_from(&plan, &state, store, sink, ctx)?;
    timings.apply = started.elapsed();
    let started = std::time::Instant::now();
    let applied = store.state_token()? != memo.token;
    let mut until = memo.until_after(applied, &scope.keys, &*store, now)?;
    // The bootstrap step ran in the memo's round; it needs running again only when this
    // apply wrote something it reads, and then on the whole state.
    if let Some(cfg) = bootstrap {
        if applied && !unaffected_by(&plan.changes, &state) {
            let full = store.load_state()?;
            ensure_bootstrap_admin_in(store, &full, sink, cfg, ctx.password_params, now)?;
            until = full.next_expiry(now);
        }
    }
    drop(state);
    let as_planned = outcomes_as_planned(&plan, &outcomes);
    drop(outcomes);
    drop(plan);
    let mut report = scope.keys.objects.clone();
    report.extend(input.restatus.iter().cloned());
    let read = store.load_partial(&StateKeys {
        statuses: report,
        ..StateKeys::default()
    })?;
    let statuses: Vec<ObjectStatus> = read.statuses.into_values().collect();
    timings.statuses = started.elapsed();
    let token = store.state_token()?;
    let planned = scope.keys.objects.len();
    // The memo keeps no outcomes here: the report phase reads statuses from the store.
    let memo = memo.advance(
        input.snapshot,
        input.changed,
        &scope.removed,
        &[],
        token,
        until,
    );
    Ok(Some(Applied {
        next_expiry: until,
        changes,
        statuses,
        timings,
        memo: as_planned.then_some(memo),
        scoped: Some(planned),
    }))
}
