//! The production [`Reconciler`]: directory mode's `reconcile_with` (the same
//! plan + apply `stagegate apply` runs) against an open SQLite store, then the
//! bootstrap-administrator step.
//!
//! The store's state is kept between reconciles while the store does not change
//! (see [`AnyStore::state_token`]): a round with nothing to apply reads no
//! table. It is an input cache, never a second model: any write, by this
//! process or another, makes the next round read the state again.

use super::daemon::{AppliedChange, ReconcileError, Reconciled, Reconciler};
use super::secrets_cache::SecretsCache;
use crate::bootstrap::{ensure_bootstrap_admin, ensure_bootstrap_admin_in, BootstrapConfig};
use crate::secrets::{DirSecretSink, PasswordParams, SecretSink, ServerKey};
use crate::snapshot::Snapshot;
use crate::sources::directory::{reconcile_with_state, DirError};
use crate::store::{AnyStore, StateToken, Store, StoreError, StoreState};
use std::path::PathBuf;

/// Plans and applies into an owned store, delivering secrets to a directory.
pub struct StoreReconciler {
    store: AnyStore,
    secrets_dir: PathBuf,
    server_key: ServerKey,
    password_params: PasswordParams,
    bootstrap: Option<BootstrapConfig>,
    /// When a reconcile last succeeded in this process.
    last_success: Option<jiff::Timestamp>,
    /// The store's state as last read, with the token it was read under.
    state: Option<(StateToken, StoreState)>,
    /// How many times the whole state was read (a figure for tests).
    state_reads: u64,
}

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
            state: None,
            state_reads: 0,
        }
    }

    /// The store (read access for hooks and tests).
    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// How many times this reconciler has read the whole store state.
    pub fn state_reads(&self) -> u64 {
        self.state_reads
    }

    /// The store's current state: the cached one while nothing wrote to the store since.
    fn take_state(&mut self) -> Result<(StateToken, StoreState), StoreError> {
        let token = self.store.state_token()?;
        match self.state.take() {
            Some((t, state)) if t == token => Ok((t, state)),
            _ => {
                self.state_reads += 1;
                // Reading changes nothing, so the token taken before the read still holds.
                Ok((token, self.store.load_state()?))
            }
        }
    }

    /// Keeps `state` for the next round when nothing wrote to the store since `token`.
    fn keep_state(&mut self, token: StateToken, state: StoreState) -> Result<(), StoreError> {
        if self.store.state_token()? == token {
            self.state = Some((token, state));
        }
        Ok(())
    }

    /// Gives the store back (dropping it closes the database).
    pub fn into_store(self) -> AnyStore {
        self.store
    }
}

impl Reconciler for StoreReconciler {
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError> {
        let now = crate::snapshot::now();
        let store_error = |e: StoreError| ReconcileError::new("StoreError", e.to_string());
        let cached = secrets.map(SecretsCache::sink);
        let plain = DirSecretSink::new(&self.secrets_dir);
        let sink: &dyn SecretSink = match &cached {
            Some(c) => c,
            None => &plain,
        };
        let (token, state) = self.take_state().map_err(store_error)?;
        let (plan, outcomes) = reconcile_with_state(
            &snapshot,
            &mut self.store,
            &state,
            sink,
            &self.secrets_dir,
            &self.server_key,
            self.password_params,
            now,
        )
        .map_err(|e| ReconcileError::new(reason(&e), e.to_string()))?;
        // Only after a successful apply: the store now reflects the declarations.
        // The apply wrote (a new token): the bootstrap step reads the state it left.
        let applied = self.store.state_token().map_err(store_error)? != token;
        if let Some(cfg) = &self.bootstrap {
            let done = if applied {
                ensure_bootstrap_admin(&mut self.store, sink, cfg, self.password_params, now)
            } else {
                ensure_bootstrap_admin_in(
                    &mut self.store,
                    &state,
                    sink,
                    cfg,
                    self.password_params,
                    now,
                )
            };
            done.map_err(|e| {
                ReconcileError::new("BootstrapFailed", format!("bootstrap administrator: {e}"))
            })?;
        }
        if !applied {
            self.keep_state(token, state).map_err(store_error)?;
        }
        self.last_success = Some(now);
        let changes = plan
            .data_changes()
            .map(|c| AppliedChange {
                object: c.object.clone(),
                action: c.op.name().to_string(),
                source: c.source.clone(),
            })
            .collect();
        Ok(Reconciled {
            changes,
            objects: outcomes,
            written: cached.map(|c| c.written()).unwrap_or_default(),
        })
    }

    fn failed(&mut self, error: &ReconcileError) {
        crate::sources::health::record_failure(
            &mut self.store,
            error.reason,
            &error.message,
            self.last_success,
            crate::snapshot::now(),
        );
    }
}
