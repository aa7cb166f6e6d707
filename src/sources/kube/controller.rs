//! The controller's lifecycle: check the CRDs, run leader election, and
//! while leading run the watchers and the debounced reconcile loop. Losing
//! the Lease (or shutdown) stops every write at once; on shutdown the Lease
//! is released so another replica takes over without waiting.

use super::cache::Shared;
use super::config::Settings;
use super::leader::{self, Elector, Fence};
use super::reconcile::{self, Context, Memory};
use super::sink::KubeSecretSink;
use super::{crds, events, watch, FIELD_MANAGER};
use crate::api::Metrics;
use crate::secrets::{PasswordParams, ServerKey};
use crate::store::AnyStore;
use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch as channel;

/// Told why a reconcile failed (e.g. to fail `/readyz` with the reason).
pub type FailureHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything `run` needs from the command line and the process.
pub struct Runtime {
    /// Validated flags.
    pub settings: Settings,
    /// The identity store (the HTTP API reads it too).
    pub store: Arc<Mutex<AnyStore>>,
    /// HMAC key.
    pub server_key: Arc<ServerKey>,
    /// argon2id cost.
    pub password_params: PasswordParams,
    /// `run --public-url`: delivered invitation Secrets also hold an acceptance URL.
    pub public_url: Option<String>,
    /// The process's metrics (shared with the HTTP API).
    pub metrics: Metrics,
    /// Called after every successful apply (e.g. to refresh the API's index).
    pub after_apply: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called with the error when a reconcile fails (e.g. to fail `/readyz` with it).
    pub after_failure: Option<FailureHook>,
    /// The bootstrap administrator to keep (its Secret in the controller's namespace), if enabled.
    pub bootstrap: Option<crate::bootstrap::BootstrapConfig>,
    /// Turns true on SIGTERM/SIGINT.
    pub shutdown: channel::Receiver<bool>,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CRDs are not installed or discovery failed.
    #[error(transparent)]
    Crds(#[from] crds::CrdError),
}

/// Runs the controller until shutdown.
pub async fn run(client: Client, rt: Runtime) -> Result<(), RunError> {
    crds::check(&client).await?;
    let settings = Arc::new(rt.settings.clone());
    tracing::info!(namespaces = ?settings.namespaces, controller_namespace = %settings.controller_namespace, identity = %settings.identity, "controller starting");
    let (leader_tx, mut leader_rx) = channel::channel(false);
    let fence = Fence::new();
    let elector = Elector::new(
        client.clone(),
        &settings.controller_namespace,
        &settings.identity,
        settings.lease_duration,
        fence.clone(),
    );
    let election = tokio::spawn(elector.run(leader_tx, rt.shutdown.clone()));
    let mut shutdown = rt.shutdown.clone();
    loop {
        tokio::select! {
            r = leader_rx.wait_for(|l| *l) => if r.is_err() { break },
            _ = shutdown.wait_for(|s| *s) => break,
        }
        if !fence.holds() {
            // A term that lapsed before the elector's pending attempt reported: wait for its verdict.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            continue;
        }
        rt.metrics.set_leader(true);
        let term = lead(&client, &rt, &settings, &fence);
        tokio::select! {
            _ = term => {}
            _ = leader_rx.wait_for(|l| !*l) => tracing::warn!("lost the Lease: stopped reconciling"),
            _ = leader::lapsed(&fence) => tracing::warn!("the Lease was not renewed in time: stopped reconciling"),
            _ = shutdown.wait_for(|s| *s) => {}
        }
        rt.metrics.set_leader(false);
        if *shutdown.borrow() {
            break;
        }
    }
    // The election task releases the Lease once it sees the shutdown.
    let _ = election.await;
    tracing::info!("controller stopped");
    Ok(())
}

/// One leadership term: watchers plus the reconcile loop. Dropping it stops both.
async fn lead(client: &Client, rt: &Runtime, settings: &Arc<Settings>, fence: &Fence) {
    let shared = Shared::new();
    shared.lock().require_access_domain = settings.require_access_domain;
    let feeds = watch::feeds(settings);
    let tasks = watch::spawn(client, &feeds, &shared);
    let _abort = AbortOnDrop(tasks);
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(settings.identity.clone()),
    };
    let mut ctx = Context {
        client: client.clone(),
        store: rt.store.clone(),
        server_key: rt.server_key.clone(),
        password_params: rt.password_params,
        public_url: rt.public_url.clone(),
        bootstrap: rt.bootstrap.clone(),
        recorder: Recorder::new(client.clone(), reporter.clone()),
        sink: KubeSecretSink::new(
            client.clone(),
            tokio::runtime::Handle::current(),
            shared.clone(),
            settings.clone(),
            fence.clone(),
        ),
    };
    // Wait for every watcher's first list: planning on a partial view would prune.
    while !shared.lock().synced(&feeds) {
        shared.changed.notified().await;
    }
    tracing::info!("caches synced; reconciling");
    let mut memory = Memory::default();
    let mut failures = 0u32;
    let mut last_success = None;
    loop {
        let seen = shared.lock().version;
        let started = Instant::now();
        // A resync after a round that changed nothing, with nothing new since: skip it.
        let settled = match memory.settled() {
            Some(s) => {
                let store = rt.store.clone();
                let now = crate::snapshot::now();
                tokio::task::spawn_blocking(move || {
                    let store = store.lock().unwrap_or_else(|p| p.into_inner());
                    s.holds(seen, &store, now)
                })
                .await
                .unwrap_or(false)
            }
            None => false,
        };
        if settled {
            tracing::debug!("resync: nothing changed since the last reconcile");
            wait_for_change(&shared, settings.resync).await;
            debounce(&shared, settings.debounce).await;
            continue;
        }
        let wait = match reconcile::reconcile(&ctx, &shared, &mut memory).await {
            Ok(summary) => {
                tracing::info!(
                    ?summary,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "reconciled"
                );
                rt.metrics.record_reconcile(started.elapsed(), true);
                last_success = Some(crate::snapshot::now());
                if !events::keeps_recorder(summary.events) {
                    // The recorder keeps every Event it published for six minutes (to
                    // count repeats), dropped only by its next publish: after a first
                    // apply's 7,000 Events, several MiB of the idle process.
                    ctx.recorder = Recorder::new(client.clone(), reporter.clone());
                }
                if let Some(hook) = &rt.after_apply {
                    hook();
                }
                if summary.object_failures > 0 {
                    // Some objects' requests failed (each reported on its object): retry them soon.
                    failures += 1;
                    backoff(failures, settings.resync)
                } else {
                    failures = 0;
                    settings.resync
                }
            }
            Err(e) => {
                failures += 1;
                rt.metrics.record_reconcile(started.elapsed(), false);
                rt.metrics.record_reconcile_error(e.reason());
                tracing::error!(reason = e.reason(), error = %e, "reconcile failed");
                if let Some(hook) = &rt.after_failure {
                    hook(&e.to_string());
                }
                // Where `stagegate status` looks (best effort: the store may be what failed).
                let (store, reason, message) = (rt.store.clone(), e.reason(), e.to_string());
                let _ = tokio::task::spawn_blocking(move || {
                    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
                    crate::sources::health::record_failure(
                        &mut *store,
                        reason,
                        &message,
                        last_success,
                        crate::snapshot::now(),
                    );
                })
                .await;
                backoff(failures, settings.resync)
            }
        };
        // The round's snapshot, state and plan are dropped: hand their pages back before idling.
        crate::sources::memory::release_freed();
        if shared.lock().version == seen {
            wait_for_change(&shared, wait).await;
        }
        debounce(&shared, settings.debounce).await;
    }
}

/// Transient errors retry with bounded exponential backoff, never later than the resync.
fn backoff(failures: u32, resync: Duration) -> Duration {
    Duration::from_millis(500 * 2u64.pow(failures.min(7))).min(resync)
}

/// Waits for a change of the cache, at most `timeout` (the resync period).
async fn wait_for_change(shared: &Shared, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, shared.changed.notified()).await;
}

/// Waits until no change arrived for `quiet`, at most 20 × `quiet`: one reconcile per burst.
async fn debounce(shared: &Shared, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet * 20;
    loop {
        let until = (tokio::time::Instant::now() + quiet).min(deadline);
        match tokio::time::timeout_at(until, shared.changed.notified()).await {
            Ok(()) if tokio::time::Instant::now() < deadline => continue,
            _ => return,
        }
    }
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
