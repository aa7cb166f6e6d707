//! The production [`Reconciler`]: directory mode's `reconcile_with` (the same
//! plan + apply `stagegate apply` runs) against an open store, then the
//! bootstrap-administrator step.
//!
//! The store's state is read once per round (after an apply that wrote a user or a
//! global Admin binding, once more, for the bootstrap step) and dropped with the round: at 10,000 users it
//! is ~77 MiB of live heap the idle daemon need not hold. What it keeps is the
//! store's [`StateToken`] after a round that wrote nothing, and when the same
//! inputs could next plan differently: when a stored token key or an unaccepted
//! invitation expires (the only inputs of `plan` that move with the clock).
//! Until then, or until something (this process or another) writes to the
//! store, the daemon's resync need not plan again (see [`Reconciler::settled`]).

use super::daemon::{AppliedChange, ReconcileError, Reconciled, Reconciler};
use super::secrets_cache::SecretsCache;
use crate::bootstrap::{ensure_bootstrap_admin_in, unaffected_by, BootstrapConfig};
use crate::secrets::{DirSecretSink, PasswordParams, SecretSink, ServerKey};
use crate::snapshot::Snapshot;
use crate::sources::directory::{reconcile_with_state, DirError, Timings};
use crate::sources::scoped::{adds_no_expiry, outcomes_as_planned, Memo, Part, Scope};
use crate::store::{AnyStore, StateToken, Store, StoreError, StoreState};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Plans and applies into an owned store, delivering secrets to a directory.
pub struct StoreReconciler {
    store: AnyStore,
    secrets_dir: PathBuf,
    server_key: ServerKey,
    password_params: PasswordParams,
    bootstrap: Option<BootstrapConfig>,
    /// When a reconcile last succeeded in this process.
    last_success: Option<jiff::Timestamp>,
    /// How many times the whole state was read (a figure for tests).
    state_reads: u64,
    /// After a successful round that wrote nothing: the store's token then, and the
    /// first token-key expiry after it (None: none pending). Cleared by any other round.
    settled: Option<(StateToken, Option<jiff::Timestamp>)>,
    /// `run --public-url`: invitation Secrets also hold an acceptance URL.
    public_url: Option<String>,
    /// What the last successful round leaves for a scoped next round (see `scoped`).
    memo: Option<Memo>,
    /// The manifest files changed since the last round, when that is all that changed.
    changed: Option<BTreeSet<String>>,
    /// How many rounds were scoped (a figure for tests).
    scoped_rounds: u64,
}

/// A scoped round's inputs: the memo it starts from, the changed files, the scope and
/// the partial state read for it.
type Scoped = (Memo, BTreeSet<String>, Scope, StoreState);

/// The machine reason of a reconcile that could not run.
fn reason(e: &DirError) -> &'static str {
    match e {
        DirError::Load(_) => "ManifestsUnreadable",
        DirError::Store(_) | DirError::Apply(crate::apply::ApplyError::Store(_)) => "StoreError",
        DirError::ServerKey(_) => "ServerKeyError",
        DirError::Sink(_) => "SecretsDirUnsafe",
        DirError::Apply(_) => "ApplyFailed",
    }
}

impl std::fmt::Debug for StoreReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReconciler")
            .field("store", &self.store)
            .field("secrets_dir", &self.secrets_dir)
            .finish_non_exhaustive()
    }
}

impl StoreReconciler {
    /// A reconciler writing to `store` and delivering to `secrets_dir`; `bootstrap` keeps a bootstrap administrator.
    pub fn new(
        store: AnyStore,
        secrets_dir: PathBuf,
        server_key: ServerKey,
        password_params: PasswordParams,
        bootstrap: Option<BootstrapConfig>,
    ) -> Self {
        StoreReconciler {
            store,
            secrets_dir,
            server_key,
            password_params,
            bootstrap,
            last_success: None,
            state_reads: 0,
            settled: None,
            public_url: None,
            memo: None,
            changed: None,
            scoped_rounds: 0,
        }
    }

    /// Delivered invitations also hold an acceptance URL under this base (`run --public-url`).
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url;
        self
    }

    /// The store (read access for hooks and tests).
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// How many times this reconciler has read the whole store state.
    pub fn state_reads(&self) -> u64 {
        self.state_reads
    }

    /// How many rounds planned only the declarations of the changed files and what they
    /// touch (the rest were full rounds).
    pub fn scoped_rounds(&self) -> u64 {
        self.scoped_rounds
    }

    /// Runs the bootstrap-administrator step (when configured) on `state`: the one call the
    /// full and the scoped round share.
    fn bootstrap_step(
        &mut self,
        state: &StoreState,
        sink: &dyn SecretSink,
        now: jiff::Timestamp,
    ) -> Result<(), ReconcileError> {
        let Some(cfg) = &self.bootstrap else {
            return Ok(());
        };
        ensure_bootstrap_admin_in(&mut self.store, state, sink, cfg, self.password_params, now)
            .map_err(|e| {
                ReconcileError::new("BootstrapFailed", format!("bootstrap administrator: {e}"))
            })?;
        Ok(())
    }

    /// Plans `snapshot` against `state` and applies it with this reconciler's store, secrets
    /// and settings: the one call the full and the scoped round share.
    fn plan_and_apply(
        &mut self,
        snapshot: &Snapshot,
        state: &StoreState,
        sink: &dyn SecretSink,
        now: jiff::Timestamp,
    ) -> Result<(crate::plan::Plan, Vec<crate::apply::Outcome>, Timings), ReconcileError> {
        reconcile_with_state(
            snapshot,
            &mut self.store,
            state,
            sink,
            &self.secrets_dir,
            &self.server_key,
            self.password_params,
            now,
            self.public_url.as_deref(),
        )
        .map_err(|e| ReconcileError::new(reason(&e), e.to_string()))
    }

    /// The store's current state, with the token it was read under.
    fn read_state(&mut self) -> Result<(StateToken, StoreState), StoreError> {
        let token = self.store.state_token()?;
        self.state_reads += 1;
        // Reading changes nothing, so the token taken before the read still holds.
        Ok((token, self.store.load_state()?))
    }

    /// After a successful round whose apply wrote nothing: when nothing (the bootstrap
    /// step included) wrote since `state` was read under `token`, the same inputs plan
    /// the same until the next token-key expiry.
    fn settle(
        &mut self,
        applied: bool,
        token: StateToken,
        state: &StoreState,
        now: jiff::Timestamp,
    ) -> Result<(), StoreError> {
        if !applied && self.store.state_token()? == token {
            self.settled = Some((token, state.next_expiry(now)));
        }
        Ok(())
    }

    /// Gives the store back (dropping it closes the database).
    pub fn into_store(self) -> AnyStore {
        self.store
    }
}

impl StoreReconciler {
    /// A full round: every declaration against the whole store state.
    fn reconcile_full(
        &mut self,
        snapshot: &Snapshot,
        sink: &dyn SecretSink,
        now: jiff::Timestamp,
    ) -> Result<(crate::plan::Plan, Arc<Vec<crate::apply::Outcome>>), ReconcileError> {
        let store_error = |e: StoreError| ReconcileError::new("StoreError", e.to_string());
        self.memo = None;
        let started = std::time::Instant::now();
        let (token, state) = self.read_state().map_err(store_error)?;
        let load_state = started.elapsed();
        let (plan, outcomes, timings) = self.plan_and_apply(snapshot, &state, sink, now)?;
        // Only after a successful apply: the store now reflects the declarations.
        let applied = self.store.state_token().map_err(store_error)? != token;
        let started = std::time::Instant::now();
        let mut reread = std::time::Duration::ZERO;
        let mut after: Option<Option<jiff::Timestamp>> = None;
        let state = match &self.bootstrap {
            Some(_) => {
                // The apply wrote: the bootstrap step needs the state it left, unless
                // nothing it wrote is something that step reads.
                let state = if applied && !unaffected_by(&plan.changes, &state) {
                    drop(state);
                    self.state_reads += 1;
                    let s = self.store.load_state().map_err(store_error)?;
                    after = Some(s.next_expiry(now));
                    s
                } else {
                    state
                };
                reread = started.elapsed();
                self.bootstrap_step(&state, sink, now)?;
                state
            }
            None => state,
        };
        // The next round may be scoped when this one ended as planned and its next expiry
        // is known: from the state it left, or the one before when it wrote nothing that
        // adds an expiry.
        let until = match after {
            Some(until) => Some(until),
            None if !applied || adds_no_expiry(&plan.changes) => Some(state.next_expiry(now)),
            None => None,
        };
        self.settle(applied, token, &state, now)
            .map_err(store_error)?;
        drop(state);
        let bootstrap = started.elapsed() - reread;
        tracing::info!(
            load_state_ms = (load_state + reread).as_millis() as u64,
            plan_ms = timings.plan.as_millis() as u64,
            apply_ms = timings.apply.as_millis() as u64,
            bootstrap_ms = bootstrap.as_millis() as u64,
            scoped = false,
            "reconcile phases"
        );
        let outcomes = Arc::new(outcomes);
        if let (Some(until), true) = (until, outcomes_as_planned(&plan, &outcomes)) {
            let token = self.store.state_token().map_err(store_error)?;
            self.memo = Memo::new(snapshot, outcomes.clone(), token, until);
        }
        Ok((plan, outcomes))
    }
}

impl StoreReconciler {
    /// The scope of this round, when the last round left a memo that still holds
    /// (nothing wrote since, nothing expired) and only manifest files changed.
    ///
    /// For a snapshot of a part of the declarations (`part`), a memo and changed files the
    /// part cannot scope with stay for the full round that follows.
    fn scope(
        &mut self,
        snapshot: &Snapshot,
        part: Option<Part>,
        now: jiff::Timestamp,
    ) -> Result<Option<Scoped>, StoreError> {
        let (Some(memo), Some(changed)) = (&self.memo, &self.changed) else {
            return Ok(None);
        };
        let found =
            if self.store.state_token()? != memo.token || memo.until.is_some_and(|u| now >= u) {
                None
            } else {
                memo.scope(snapshot, changed, part, &self.store)?
            };
        let Some((scope, state)) = found else {
            if part.is_none() {
                self.memo = None;
                self.changed = None;
            }
            return Ok(None);
        };
        let (Some(memo), Some(changed)) = (self.memo.take(), self.changed.take()) else {
            return Ok(None);
        };
        Ok(Some((memo, changed, scope, state)))
    }

    /// A scoped round: the same plan + apply on the scope's declarations and rows.
    fn reconcile_scoped(
        &mut self,
        snapshot: &Snapshot,
        (memo, changed, scope, state): Scoped,
        sink: &dyn SecretSink,
        now: jiff::Timestamp,
        load_state: std::time::Duration,
    ) -> Result<(crate::plan::Plan, Arc<Vec<crate::apply::Outcome>>), ReconcileError> {
        let store_error = |e: StoreError| ReconcileError::new("StoreError", e.to_string());
        self.scoped_rounds += 1;
        let (plan, outcomes, timings) = self.plan_and_apply(&scope.snapshot, &state, sink, now)?;
        let applied = self.store.state_token().map_err(store_error)? != memo.token;
        let started = std::time::Instant::now();
        let mut until = memo
            .until_after(applied, &scope.keys, &self.store, now)
            .map_err(store_error)?;
        // The bootstrap step ran in the memo's round; it needs running again only when this
        // apply wrote something it reads, and then on the whole state.
        if self.bootstrap.is_some() && applied && !unaffected_by(&plan.changes, &state) {
            self.state_reads += 1;
            let full = self.store.load_state().map_err(store_error)?;
            self.bootstrap_step(&full, sink, now)?;
            until = full.next_expiry(now);
        }
        let token = self.store.state_token().map_err(store_error)?;
        if !applied && token == memo.token {
            self.settled = Some((token.clone(), until));
        }
        tracing::info!(
            scoped_objects = scope.keys.objects.len(),
            load_state_ms = (load_state + started.elapsed()).as_millis() as u64,
            plan_ms = timings.plan.as_millis() as u64,
            apply_ms = timings.apply.as_millis() as u64,
            bootstrap_ms = 0u64,
            scoped = true,
            "reconcile phases"
        );
        let as_planned = outcomes_as_planned(&plan, &outcomes);
        let memo = memo.advance(snapshot, &changed, &scope.removed, &outcomes, token, until);
        let all = memo.outcomes.clone();
        self.memo = as_planned.then_some(memo);
        Ok((plan, all))
    }
}

impl StoreReconciler {
    /// One round: scoped when the memo allows, else (for a snapshot of every declaration)
    /// full; None when `part` holds a part of the declarations and cannot be scoped.
    fn round(
        &mut self,
        snapshot: &Snapshot,
        part: Option<Part>,
        secrets: Option<&SecretsCache>,
    ) -> Option<Result<Reconciled, ReconcileError>> {
        let now = crate::snapshot::now();
        let store_error = |e: StoreError| ReconcileError::new("StoreError", e.to_string());
        let cached = secrets.map(SecretsCache::sink);
        let plain = DirSecretSink::new(&self.secrets_dir);
        let sink: &dyn SecretSink = match &cached {
            Some(c) => c,
            None => &plain,
        };
        let started = std::time::Instant::now();
        let scoped = match self.scope(snapshot, part, now) {
            Ok(s) => s,
            Err(e) => return Some(Err(store_error(e))),
        };
        if scoped.is_none() && part.is_some() {
            return None;
        }
        self.settled = None;
        let done = match scoped {
            Some(scoped) => {
                let load_state = started.elapsed();
                self.reconcile_scoped(snapshot, scoped, sink, now, load_state)
            }
            None => self.reconcile_full(snapshot, sink, now),
        };
        let (plan, objects) = match done {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        self.last_success = Some(now);
        let changes = plan
            .data_changes()
            .map(|c| AppliedChange {
                object: c.object.clone(),
                action: c.op.name().to_string(),
                source: c.source.clone(),
            })
            .collect();
        Some(Ok(Reconciled {
            changes,
            objects,
            written: cached.map(|c| c.written()).unwrap_or_default(),
        }))
    }
}

impl Reconciler for StoreReconciler {
    fn changed_files(&mut self, files: Option<BTreeSet<String>>) {
        self.changed = files;
    }

    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        self.round(&snapshot, None, secrets)
            .expect("a round of every declaration always runs")
    }

    fn reconcile_part(
        &mut self,
        part: Snapshot,
        edits: &super::cache::Edits,
        secrets: Option<&SecretsCache>,
    ) -> Option<Result<Reconciled, ReconcileError>> {
        self.round(&part, Some(Part::of(edits)), secrets)
    }

    fn settled(&mut self, now: jiff::Timestamp) -> bool {
        let Some((token, until)) = &self.settled else {
            return false;
        };
        let until = *until;
        let unchanged = self.store.state_token().is_ok_and(|t| t == *token);
        unchanged && until.is_none_or(|u| now < u)
    }

    fn failed(&mut self, error: &ReconcileError) {
        self.settled = None;
        crate::sources::health::record_failure(
            &mut self.store,
            error.reason,
            &error.message,
            self.last_success,
            crate::snapshot::now(),
        );
    }
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
