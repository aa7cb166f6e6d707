//! `stagegate run`: the daemon. `--dir` watches a directory of manifests;
//! `--kube` (the cluster controller) is the other mode of the same command.
//!
//! Arguments are checked whole (the directory exists, the secrets directory
//! is outside it, the resync period is sane) before anything starts.

use super::apply::StoreArgs;
use crate::api::ApiState;
use crate::bootstrap::{BootstrapConfig, BOOTSTRAP_SECRET, DIR_MODE_NAMESPACE};
use crate::secrets::{check_secrets_dir, ServerKey};
use crate::sources::watch::{Daemon, DaemonConfig, StoreReconciler};
use crate::store::{AnyStore, ReconcileLock};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `stagegate run`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["dir", "kube"])))]
pub struct Args {
    /// Watch this directory of manifests (a git checkout) and reconcile it into the store.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Run as the Kubernetes controller (in-cluster config or kubeconfig).
    #[arg(long)]
    pub kube: bool,
    /// Kubernetes controller flags (with --kube).
    #[command(flatten)]
    pub kube_args: crate::sources::kube::KubeArgs,
    /// Store, secrets and key locations.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Full re-read and reconcile period, e.g. 30s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// Username of the bootstrap administrator, created while the store has no global Admin.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub bootstrap_admin: String,
    /// Never create a bootstrap administrator.
    #[arg(long)]
    pub no_bootstrap_admin: bool,
    /// Log lines as JSON objects instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// HTTP API flags.
    #[command(flatten)]
    pub api: super::serve::ApiArgs,
}

/// Logging to stderr: `RUST_LOG`, or `info` (each change is one line), as text or JSON,
/// written by a background thread (see [`super::logging`]); keep the guard until the end.
pub fn init_logging(json: bool) -> Option<super::logging::LogGuard> {
    super::logging::init(json)
}

/// The checked configuration of directory mode.
struct DirMode {
    opts: crate::sources::directory::DirOptions,
    resync: Duration,
    bootstrap: Option<BootstrapConfig>,
}

fn configure(args: &Args, dir: &Path) -> anyhow::Result<DirMode> {
    if !dir.is_dir() {
        bail!("--dir {}: not a directory", dir.display());
    }
    check_secrets_dir(dir, &args.store.secrets_dir)?;
    args.store.check_key_file()?;
    if args.resync < Duration::from_secs(1) {
        bail!("--resync must be at least 1s");
    }
    let bootstrap = (!args.no_bootstrap_admin).then(|| BootstrapConfig {
        username: args.bootstrap_admin.clone(),
        namespace: DIR_MODE_NAMESPACE.to_string(),
    });
    Ok(DirMode {
        opts: args.store.options(dir.to_path_buf()),
        resync: args.resync,
        bootstrap,
    })
}

/// Runs the daemon until SIGTERM or SIGINT; exit 0 after a clean stop.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = init_logging(args.log_json);
    let mode = args
        .dir
        .as_deref()
        .map(|dir| configure(&args, dir))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A worker going idle after a round gives back the pages it freed (the old API
        // index, the last report): see `sources::memory`.
        .on_thread_park(crate::sources::memory::on_thread_park)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            stop_tx.send_replace(true);
        });
        match mode {
            Some(mode) => run_dir(mode, &args.api, stop).await,
            None => {
                let bootstrap = (!args.no_bootstrap_admin).then(|| args.bootstrap_admin.clone());
                super::run_kube::run(
                    &args.store,
                    &args.kube_args,
                    &args.api,
                    args.resync,
                    bootstrap,
                    stop,
                )
                .await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn run_dir(
    mode: DirMode,
    api: &super::serve::ApiArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let o = &mode.opts;
    // The PostgreSQL client blocks (and retries a while): off the async workers.
    let store = tokio::task::block_in_place(|| AnyStore::open(&o.store)).with_context(|| {
        format!(
            "cannot open the store {}",
            crate::store::AnyStore::describe(&o.store)
        )
    })?;
    let server_key = ServerKey::load_or_create(&o.key_file())?;
    crate::secrets::private_dir(&o.secrets_dir)
        .with_context(|| format!("cannot create {}", o.secrets_dir.display()))?;
    println!("stagegate run: watching {}", o.dir.display());
    println!(
        "  store:      {}",
        crate::store::AnyStore::describe(&o.store)
    );
    println!(
        "  secrets:    {}  (generated passwords: <namespace>/<user>-password.yaml; tokens: <namespace>/<token>-token.yaml)",
        o.secrets_dir.display()
    );
    if let Some(b) = &mode.bootstrap {
        println!(
            "  bootstrap:  {}  (user {:?}, while no declared global Admin can log in)",
            o.secrets_dir
                .join(&b.namespace)
                .join(format!("{BOOTSTRAP_SECRET}.yaml"))
                .display(),
            b.username
        );
    }
    println!("  server key: {}", o.key_file().display());
    if let Some(url) = &api.public_url {
        println!(
            "  public url: {url}  (invitation Secrets hold <url>/v1/invitations/accept#code=...)"
        );
    }
    tracing::info!(
        dir = %o.dir.display(),
        store = %crate::store::AnyStore::describe(&o.store),
        secrets_dir = %o.secrets_dir.display(),
        resync = %humantime::format_duration(mode.resync),
        "starting directory daemon"
    );
    let public_url = api.public_url.clone();
    let api = super::serve::start(
        api,
        &o.store,
        server_key.clone(),
        o.password_params,
        stop.clone(),
    )
    .await?;
    // A shared PostgreSQL store has one reconciler: the holder of its advisory lock. Until this
    // process holds it, it only serves the API (its index follows the store by polling).
    let _lock = match &store {
        AnyStore::Postgres(pg) => {
            match follow_until_leader(ReconcileLock::new(pg.target().clone()), &api, stop.clone())
                .await?
            {
                Some(lock) => Some(lock),
                None => return Ok(()),
            }
        }
        AnyStore::Sqlite(_) => None,
    };
    // The API patches its index from the rows each of this process's commits touched.
    let mut store = store;
    let journal = crate::store::CommitJournal::new();
    if store.record_commits(&journal) {
        api.follow_commits(journal);
    }
    let reconciler = StoreReconciler::new(
        store,
        o.secrets_dir.clone(),
        server_key,
        o.password_params,
        mode.bootstrap.clone(),
    )
    .with_public_url(public_url);
    let daemon = Daemon::new(
        DaemonConfig {
            dir: o.dir.clone(),
            secrets_dir: Some(o.secrets_dir.clone()),
            resync: mode.resync,
            debounce: Duration::from_millis(300),
            require_access_domain: o.require_access_domain,
        },
        reconciler,
    );
    // The API reads its own connection: refresh its index after each reconcile, off the runtime.
    let mut reports = daemon.reports();
    tokio::spawn(async move {
        while reports.changed().await.is_ok() {
            let Some(report) = reports.borrow_and_update().clone() else {
                continue;
            };
            super::serve::refresh(&api).await;
            match &report.result {
                Ok(_) => api.set_ready(),
                Err(why) => {
                    api.set_reconcile_failed(why);
                    api.metrics()
                        .record_reconcile_error(report.reason.unwrap_or("ReconcileFailed"));
                }
            }
            api.metrics()
                .record_reconcile(report.elapsed, report.result.is_ok());
        }
    });
    let reconciler = daemon.run(super::serve::stopped(stop)).await?;
    // Dropping the store closes the database (checkpointing the WAL).
    drop(reconciler.into_store());
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How often a follower tries to take the reconcile lock, and the leader checks it still holds it.
const LEADER_CHECK: Duration = Duration::from_secs(1);

/// Serves the API as a follower until this process takes the reconcile lock (`Some`), or is
/// stopped (`None`). Once it leads, a watchdog ends the process if the lock is ever lost
/// (its connection broke): another process may already be reconciling, and a restart
/// rejoins as a follower. Commits stay safe meanwhile: each checks the store revision.
async fn follow_until_leader(
    lock: ReconcileLock,
    api: &ApiState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<ReconcileLock>>> {
    let lock = Arc::new(lock);
    let mut told = false;
    loop {
        let l = lock.clone();
        match tokio::task::spawn_blocking(move || l.try_acquire()).await? {
            Ok(true) => break,
            Ok(false) if !told => {
                println!("  reconciler: another process holds the store's reconcile lock; serving the API only until it is free");
                tracing::info!("another process reconciles into this store; following");
                told = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the reconcile lock"),
        }
        // Ready once some process has reconciled into the store (the index follows by polling).
        if api.index_revision() > 0 {
            api.set_ready();
        }
        tokio::select! {
            _ = tokio::time::sleep(LEADER_CHECK) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
    }
    println!("  reconciler: this process (it holds the store's reconcile lock)");
    tracing::info!("holding the store's reconcile lock: reconciling");
    let watched = lock.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEADER_CHECK).await;
            let l = watched.clone();
            if let Ok(Ok(false)) = tokio::task::spawn_blocking(move || l.held()).await {
                tracing::error!("lost the store's reconcile lock (connection lost); exiting so another process reconciles");
                super::logging::flush();
                std::process::exit(3);
            }
        }
    });
    Ok(Some(lock))
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "stop requested; finishing the current reconcile"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "stop requested; finishing the current reconcile"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
