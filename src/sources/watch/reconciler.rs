//! The production [`Reconciler`]: directory mode's `reconcile_with` (the same
//! plan + apply `stagegate apply` runs) against an open SQLite store, then the
//! bootstrap-administrator step.

use super::daemon::{AppliedChange, ReconcileError, Reconciled, Reconciler};
use crate::bootstrap::{ensure_bootstrap_admin, BootstrapConfig};
use crate::secrets::{DirSecretSink, PasswordParams, ServerKey};
use crate::snapshot::Snapshot;
use crate::sources::directory::{reconcile_with, DirError};
use crate::store::SqliteStore;
use std::path::PathBuf;

/// Plans and applies into an owned store, delivering secrets to a directory.
pub struct StoreReconciler {
    store: SqliteStore,
    secrets_dir: PathBuf,
    server_key: ServerKey,
    password_params: PasswordParams,
    bootstrap: Option<BootstrapConfig>,
    /// When a reconcile last succeeded in this process.
    last_success: Option<jiff::Timestamp>,
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
        store: SqliteStore,
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
        }
    }

    /// The store (read access for hooks and tests).
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Gives the store back (dropping it closes the database).
    pub fn into_store(self) -> SqliteStore {
        self.store
    }
}

impl Reconciler for StoreReconciler {
    fn reconcile(&mut self, snapshot: Snapshot) -> Result<Reconciled, ReconcileError> {
        let now = crate::snapshot::now();
        let (plan, outcomes) = reconcile_with(
            &snapshot,
            &mut self.store,
            &self.secrets_dir,
            &self.server_key,
            self.password_params,
            now,
        )
        .map_err(|e| ReconcileError::new(reason(&e), e.to_string()))?;
        // Only after a successful apply: the store now reflects the declarations.
        if let Some(cfg) = &self.bootstrap {
            let sink = DirSecretSink::new(&self.secrets_dir);
            ensure_bootstrap_admin(&mut self.store, &sink, cfg, self.password_params, now)
                .map_err(|e| {
                    ReconcileError::new("BootstrapFailed", format!("bootstrap administrator: {e}"))
                })?;
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
