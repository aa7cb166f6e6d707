//! Directory mode: watch a directory of manifests and keep the store in step with it.
//!
//! [`DirCache`] keeps each file's last good parse, [`SecretsCache`] each Secret
//! file's last read; [`Daemon`] runs the
//! refresh → validate → reconcile loop on file events, on a resync period and
//! after failures, and publishes each [`Report`].

mod cache;
mod daemon;
mod fs_events;
mod packed;
mod reconciler;
mod secrets_cache;

pub use cache::{DirCache, Edits, FileEvent, Refresh};
pub use daemon::{
    Activity, AppliedChange, Daemon, DaemonConfig, DaemonError, Hook, ReconcileError, Reconciled,
    Reconciler, Report,
};
pub use fs_events::WatchError;
pub use reconciler::StoreReconciler;
pub use secrets_cache::{CachedSink, SecretKey, SecretsCache};
