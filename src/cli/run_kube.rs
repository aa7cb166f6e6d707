//! `stagegate run --kube`: builds the client, store and key, serves the API,
//! and runs the controller until SIGTERM or SIGINT.

use super::apply::StoreArgs;
use super::serve::{self, ApiArgs};
use crate::bootstrap::BootstrapConfig;
use crate::secrets::ServerKey;
use crate::sources::kube::{self, KubeArgs, Runtime};
use crate::store::AnyStore;
use anyhow::Context as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Runs the controller until `stop` turns true. `bootstrap` names the bootstrap administrator, if enabled.
pub async fn run(
    store_args: &StoreArgs,
    args: &KubeArgs,
    api: &ApiArgs,
    resync: Duration,
    bootstrap: Option<String>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = ::kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let mut settings = args.settings(client.default_namespace(), resync)?;
    settings.require_access_domain = store_args.require_access_domain;
    // Its Secret goes to the controller's namespace, as `stagegate-bootstrap-admin`.
    let bootstrap = bootstrap.map(|username| BootstrapConfig {
        username,
        namespace: settings.controller_namespace.clone(),
    });
    store_args.check_key_file()?;
    let server_key = ServerKey::load_or_create(&store_args.key_file())?;
    // The PostgreSQL client blocks (and retries a while): off the async workers.
    let store =
        tokio::task::block_in_place(|| AnyStore::open(&store_args.store)).with_context(|| {
            format!(
                "cannot open the store {}",
                crate::store::AnyStore::describe(&store_args.store)
            )
        })?;
    println!(
        "stagegate run --kube: store {}",
        crate::store::AnyStore::describe(&store_args.store)
    );
    let params = store_args.password_params();
    let state = serve::start(
        api,
        &store_args.store,
        server_key.clone(),
        params,
        stop.clone(),
    )
    .await?;
    // Every replica serves the API; one that is not the leader is ready once a leader has
    // reconciled into the store (its index follows the store by polling).
    let follower = state.clone();
    tokio::spawn(async move {
        while !follower.is_ready() {
            let s = follower.clone();
            let reconciled = tokio::task::spawn_blocking(move || {
                s.poll_changes().map(|_| s.index_revision() > 0)
            });
            if let Ok(Ok(true)) = reconciled.await {
                follower.set_ready();
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    // The API patches its index from the rows each of the controller's commits touched.
    let mut store = store;
    let journal = crate::store::CommitJournal::new();
    if store.record_commits(&journal) {
        state.follow_commits(journal);
    }
    let refreshed = state.clone();
    let after_apply: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        // Called on the controller's task: refresh without blocking the runtime's other tasks.
        // Only when the store moved on since the index was read (every commit bumps it).
        tokio::task::block_in_place(|| {
            if let Err(e) = refreshed.poll_changes() {
                tracing::warn!(error = %e, "refreshing the API index failed");
            }
        });
        refreshed.set_ready();
    });
    let failing = state.clone();
    let after_failure: Arc<dyn Fn(&str) + Send + Sync> =
        Arc::new(move |why: &str| failing.set_reconcile_failed(why));
    let rt = Runtime {
        settings,
        store: Arc::new(Mutex::new(store)),
        server_key: Arc::new(server_key),
        password_params: params,
        public_url: api.public_url.clone(),
        metrics: state.metrics().clone(),
        after_apply: Some(after_apply),
        after_failure: Some(after_failure),
        bootstrap,
        shutdown: stop,
    };
    kube::run(client, rt).await?;
    Ok(())
}
