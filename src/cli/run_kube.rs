//! `stagegate run --kube`: builds the client, store and key, installs signal
//! handlers, and runs the controller until SIGTERM or SIGINT.

use super::apply::StoreArgs;
use crate::bootstrap::BootstrapConfig;
use crate::secrets::{PasswordParams, ServerKey};
use crate::sources::kube::{self, Health, KubeArgs, Metrics, Runtime};
use crate::store::SqliteStore;
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs the controller; exit 0 after a graceful shutdown. `bootstrap` names the bootstrap administrator, if enabled.
pub fn run(
    store: &StoreArgs,
    args: &KubeArgs,
    resync: Duration,
    bootstrap: Option<String>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(store, args, resync, bootstrap))
}

async fn run_async(
    store_args: &StoreArgs,
    args: &KubeArgs,
    resync: Duration,
    bootstrap: Option<String>,
) -> anyhow::Result<ExitCode> {
    let client = ::kube::Client::try_default()
        .await
        .context("cannot configure a Kubernetes client (in-cluster or KUBECONFIG)")?;
    let settings = args.settings(client.default_namespace(), resync)?;
    // Its Secret goes to the controller's namespace, as `stagegate-bootstrap-admin`.
    let bootstrap = bootstrap.map(|username| BootstrapConfig {
        username,
        namespace: settings.controller_namespace.clone(),
    });
    let key_file = store_args.server_key_file.clone().unwrap_or_else(|| {
        store_args
            .store
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("server.key")
    });
    let server_key = ServerKey::load_or_create(&key_file)?;
    let store = SqliteStore::open(&store_args.store)?;
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        shutdown_tx.send_replace(true);
    });
    let (health, _) = tokio::sync::watch::channel(Health::default());
    let rt = Runtime {
        settings,
        store: Arc::new(Mutex::new(store)),
        server_key: Arc::new(server_key),
        password_params: PasswordParams {
            m_cost: store_args.argon2_memory_kib,
            t_cost: store_args.argon2_iterations,
            p_cost: store_args.argon2_lanes,
        },
        metrics: Metrics::default(),
        health,
        after_apply: None,
        bootstrap,
        shutdown,
    };
    kube::run(client, rt).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
