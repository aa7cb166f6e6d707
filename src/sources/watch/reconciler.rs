//! The production [`Reconciler`]: directory mode's `reconcile_with` (the same
//! plan + apply `stagegate apply` runs) against an open SQLite store, then the
//! bootstrap-administrator step.

use super::daemon::{AppliedChange, ReconcileError, Reconciled, Reconciler};
use crate::bootstrap::{ensure_bootstrap_admin, BootstrapConfig};
use crate::secrets::{DirSecretSink, PasswordParams, ServerKey};
use crate::snapshot::Snapshot;
use crate::sources::directory::reconcile_with;
use crate::store::SqliteStore;
use std::path::PathBuf;

/// Plans and applies into an owned store, delivering secrets to a directory.
pub struct StoreReconciler {
    store: SqliteStore,
    secrets_dir: PathBuf,
    server_key: ServerKey,
    password_params: PasswordParams,
    bootstrap: Option<BootstrapConfig>,
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
        .map_err(|e| ReconcileError(e.to_string()))?;
        // Only after a successful apply: the store now reflects the declarations.
        if let Some(cfg) = &self.bootstrap {
            let sink = DirSecretSink::new(&self.secrets_dir);
            ensure_bootstrap_admin(&mut self.store, &sink, cfg, self.password_params, now)
                .map_err(|e| ReconcileError(format!("bootstrap administrator: {e}")))?;
        }
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
}
