//! Directory mode: one reconcile of a manifest directory into a SQLite store,
//! delivering secrets to a secrets directory. Shared by `stagegate apply`,
//! `stagegate plan` and the directory watcher, so front ends only parse flags.

use crate::apply::{apply_from, ApplyContext, ApplyError, Outcome};
use crate::plan::{plan, wanted_secrets, Plan, PlanContext};
use crate::secrets::{
    check_secrets_dir, load_secrets_dir, observe, DirSecretSink, PasswordParams, PasswordPolicy,
    SecretSink, ServerKey, ServerKeyError, SinkError,
};
use crate::snapshot::Snapshot;
use crate::sources::files::{load_paths_with, LoadError};
use crate::store::{AnyStore, Store, StoreError, StoreState};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// Default store path, relative to the working directory.
pub const DEFAULT_STORE: &str = ".stagegate/store.db";
/// Default secrets directory, relative to the working directory.
pub const DEFAULT_SECRETS_DIR: &str = ".stagegate/secrets";

/// Where directory mode reads and writes.
#[derive(Clone, Debug)]
pub struct DirOptions {
    /// Manifest directory (or files).
    pub dir: PathBuf,
    /// SQLite store file.
    pub store: PathBuf,
    /// Where Secrets are delivered and `passwordSecretRef` Secrets are read.
    pub secrets_dir: PathBuf,
    /// Server key file; `<store dir>/server.key` when unset.
    pub server_key_file: Option<PathBuf>,
    /// argon2id cost.
    pub password_params: PasswordParams,
    /// Refuse declarations outside every pinned access domain (`--require-access-domain`).
    pub require_access_domain: bool,
}

impl DirOptions {
    /// Options with the defaults that work from a fresh clone.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirOptions {
            dir: dir.into(),
            store: PathBuf::from(DEFAULT_STORE),
            secrets_dir: PathBuf::from(DEFAULT_SECRETS_DIR),
            server_key_file: None,
            password_params: PasswordParams::default(),
            require_access_domain: false,
        }
    }

    /// The server key file path.
    pub fn key_file(&self) -> PathBuf {
        key_file_for(&self.store, self.server_key_file.as_deref())
    }
}

/// The server key file: `explicit`, or `server.key` next to the store.
pub fn key_file_for(store: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit.map(Path::to_path_buf).unwrap_or_else(|| {
        store
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("server.key")
    })
}

/// Errors of directory mode (never carry secrets).
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Manifests could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server key could not be loaded or created.
    #[error(transparent)]
    ServerKey(#[from] ServerKeyError),
    /// The secrets directory is unsafe or unreadable.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// The validated snapshot of `dir`, with the Secrets of `secrets_dir` available to `passwordSecretRef`.
pub fn load_snapshot(opts: &DirOptions) -> Result<Snapshot, DirError> {
    let (dir, secrets_dir) = (opts.dir.as_path(), opts.secrets_dir.as_path());
    check_secrets_dir(dir, secrets_dir)?;
    let mut snap = load_paths_with(&[dir.to_path_buf()], opts.require_access_domain)?;
    let (secrets, diags) = load_secrets_dir(secrets_dir);
    snap.secrets.extend(secrets);
    snap.diagnostics.extend(diags);
    Ok(snap)
}

/// What a directory reconcile produced.
#[derive(Debug)]
pub struct Reconciled {
    /// The snapshot (diagnostics included).
    pub snapshot: Snapshot,
    /// The plan that was applied.
    pub plan: Plan,
    /// Per-object outcomes.
    pub outcomes: Vec<Outcome>,
}

/// Plans `snap` against `store`, observing the secrets directory.
pub fn plan_against(
    snap: &Snapshot,
    state: &StoreState,
    sink: &dyn SecretSink,
    key: &ServerKey,
    password_policy: PasswordPolicy,
    now: Timestamp,
) -> Result<Plan, DirError> {
    let wanted = wanted_secrets(snap, state);
    let inventory = observe(sink, wanted.iter());
    Ok(plan(
        snap,
        state,
        &PlanContext {
            now,
            server_key: key,
            secrets: &inventory,
            password_policy,
        },
    ))
}

/// One reconcile: load, plan, apply. Creates the store and server key when absent.
pub fn reconcile(opts: &DirOptions, now: Timestamp) -> Result<Reconciled, DirError> {
    let snapshot = load_snapshot(opts)?;
    let key = ServerKey::load_or_create(&opts.key_file())?;
    let mut store = AnyStore::open(&opts.store)?;
    reconcile_with(
        &snapshot,
        &mut store,
        &opts.secrets_dir,
        &key,
        opts.password_params,
        now,
    )
    .map(|(plan, outcomes)| Reconciled {
        snapshot,
        plan,
        outcomes,
    })
}

/// Plans and applies a loaded snapshot against an open store (the watcher keeps both open).
pub fn reconcile_with(
    snap: &Snapshot,
    store: &mut dyn Store,
    secrets_dir: &Path,
    key: &ServerKey,
    password_params: PasswordParams,
    now: Timestamp,
) -> Result<(Plan, Vec<Outcome>), DirError> {
    let state = store.load_state()?;
    let sink = DirSecretSink::new(secrets_dir);
    reconcile_with_state(
        snap,
        store,
        &state,
        &sink,
        secrets_dir,
        key,
        password_params,
        now,
        None,
    )
    .map(|(plan, outcomes, _)| (plan, outcomes))
}

/// How long the phases of one reconcile took (for the daemon's log and benchmarks).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Observing the delivered Secrets and planning.
    pub plan: std::time::Duration,
    /// Applying the plan (store transaction, Secret delivery).
    pub apply: std::time::Duration,
}

/// Plans `snap` against `state` (the store's current state, which the caller may have
/// cached while the store did not change) and applies the plan, delivering through `sink`
/// (the directory sink, or one answering from a cache of `secrets_dir`); says how long
/// planning and applying took. With `public_url` (`run --public-url`), delivered
/// invitations also hold a ready-to-open acceptance URL.
#[allow(clippy::too_many_arguments)]
pub fn reconcile_with_state(
    snap: &Snapshot,
    store: &mut dyn Store,
    state: &StoreState,
    sink: &dyn SecretSink,
    secrets_dir: &Path,
    key: &ServerKey,
    password_params: PasswordParams,
    now: Timestamp,
    public_url: Option<&str>,
) -> Result<(Plan, Vec<Outcome>, Timings), DirError> {
    crate::secrets::tighten_secrets_dir(secrets_dir);
    let started = std::time::Instant::now();
    let plan = plan_against(snap, state, sink, key, password_params.policy, now)?;
    let planned = started.elapsed();
    for c in plan.data_changes() {
        tracing::info!(kind = %c.object.kind, namespace = %c.object.namespace, name = %c.object.name, action = c.op.name(), source = %c.source, change = %crate::plan::describe(&c.op), "change");
    }
    let started = std::time::Instant::now();
    let outcomes = apply_from(
        &plan,
        state,
        store,
        sink,
        &ApplyContext {
            now,
            server_key: key,
            password_params,
            public_url,
        },
    )?;
    let timings = Timings {
        plan: planned,
        apply: started.elapsed(),
    };
    Ok((plan, outcomes, timings))
}

/// The plan apply would perform, changing nothing: no store or key file is created.
pub fn plan_dir(opts: &DirOptions, now: Timestamp) -> Result<(Snapshot, Plan), DirError> {
    let snapshot = load_snapshot(opts)?;
    let state = if crate::store::pg::is_url(&opts.store) || opts.store.exists() {
        AnyStore::open(&opts.store)?.load_state()?
    } else {
        StoreState::default()
    };
    // Without a key file yet, any key gives the same plan: there are no stored fingerprints to compare.
    let key_file = opts.key_file();
    let key = if key_file.exists() {
        ServerKey::load_or_create(&key_file)?
    } else {
        ServerKey::generate()
    };
    let sink = DirSecretSink::new(&opts.secrets_dir);
    let plan = plan_against(
        &snapshot,
        &state,
        &sink,
        &key,
        opts.password_params.policy,
        now,
    )?;
    Ok((snapshot, plan))
}
