//! The directory daemon: a loop of refresh → merge → validate → reconcile.
//!
//! ```text
//!  notify (debounced) ─┐
//!  resync timer ───────┼─► DirCache::refresh ─► snapshot + secrets ─► validate ─► Reconciler ─► Report
//!  retry (backoff) ────┘        (per-file last good parse)                        (plan + apply)   │
//!                                                                          watch channel + hooks ◄─┘
//! ```
//!
//! The daemon knows nothing of planning: a [`Reconciler`] (in production the
//! store's `plan` + `apply`) turns a validated snapshot into changes. Blocking
//! work runs on a blocking thread; a stop request is honoured between
//! reconciles, so the current apply always finishes.

use super::cache::{DirCache, Edits, Refresh};
use super::fs_events::{self, Batch, WatchError};
use super::secrets_cache::{SecretKey, SecretsCache};
use crate::apply::Outcome;
use crate::snapshot::{Diagnostic, Reason};
use crate::snapshot::{ObjectKey, Snapshot, FILE_KIND};
use crate::sources::scoped::Kept;
use crate::validate::{validate, validate_part};
use jiff::Timestamp;
use kube::ResourceExt;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The status reason of an object left out for its diagnostics (see `plan`).
const INVALID: &str = "Invalid";

/// One change an apply made, for the log (never holds a secret).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppliedChange {
    /// The declaration it comes from.
    pub object: ObjectKey,
    /// What was done (`createUser`, `bind`, `issueToken`, ...).
    pub action: String,
    /// `file:line` of the declaration.
    pub source: String,
}

/// What one reconcile did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Reconciled {
    /// Changes of identity data, in order.
    pub changes: Vec<AppliedChange>,
    /// The outcome of every declared object, sorted by key (shared with the reconciler,
    /// which keeps it for the next round's scoped plan).
    #[serde(serialize_with = "serialize_shared")]
    pub objects: Arc<Vec<Outcome>>,
    /// Secrets it wrote or removed in the secrets directory: the daemon reads them back at
    /// once, so the file-system events of its own writes are not taken for news.
    pub written: BTreeSet<SecretKey>,
}

/// Serializes shared outcomes as the list they hold.
fn serialize_shared<S: serde::Serializer>(
    objects: &Arc<Vec<Outcome>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(objects.as_slice(), s)
}

/// A reconcile that could not run at all (the store or the manifests failed; nothing was
/// half-applied). A fault of one object's Secret is never one: it is that object's outcome.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ReconcileError {
    /// Machine reason, a bounded set used as a metrics label (`StoreError`, `ManifestsUnreadable`, ...).
    pub reason: &'static str,
    /// What failed, for logs, `/readyz` and `status` (never a secret).
    pub message: String,
}

impl ReconcileError {
    /// An error with its machine reason.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError {
            reason,
            message: message.into(),
        }
    }
}

/// Turns a validated snapshot into store changes: `plan` + `apply`.
pub trait Reconciler: Send + 'static {
    /// Plans and applies `snapshot` (already validated). `secrets` is the secrets directory
    /// as read at the start of this round (when the daemon watches one): what Secrets exist
    /// and whose they are is answered from it rather than read again.
    fn reconcile(
        &mut self,
        snapshot: Snapshot,
        secrets: Option<&SecretsCache>,
    ) -> Result<Reconciled, ReconcileError>;

    /// Told when a reconcile could not run (including when the manifests could not be read),
    /// so it can record that where `stagegate status` looks. Best effort.
    fn failed(&mut self, _error: &ReconcileError) {}

    /// Whether reconciling the same inputs as the last successful round would change
    /// nothing at `now`: nothing wrote to the store since, and no time-based change (a
    /// token key's expiry) has come due. A resync whose files and Secrets did not
    /// change is then skipped. `false` (always reconcile) unless the reconciler knows.
    fn settled(&mut self, _now: Timestamp) -> bool {
        false
    }

    /// Told before each reconcile which manifest files (by label, as declarations' sources
    /// name them) changed since the last round, when that is all that changed; `None`
    /// when unknown (the first round, after a failed one, or when Secret files changed).
    /// A reconciler may then plan only what those files' declarations touch.
    fn changed_files(&mut self, _files: Option<BTreeSet<String>>) {}

    /// Plans and applies a small change from `part`, a part of the declarations (already
    /// validated, with `validate::validate_part`): the changed files told by
    /// [`Reconciler::changed_files`], of whose declarations only `edits.objects` changed,
    /// `edits.moved` changed their line alone and `edits.removed` are gone, and every User,
    /// AccessBinding and owned ApiToken of the usernames `edits.usernames`. None when that is not enough to plan the change as a
    /// round of every declaration would: the daemon then runs one.
    fn reconcile_part(
        &mut self,
        _part: Snapshot,
        _edits: &Edits,
        _secrets: Option<&SecretsCache>,
    ) -> Option<Result<Reconciled, ReconcileError>> {
        None
    }
}

/// The result of a reconcile, as given to hooks, and published without its lists of
/// changes and written Secrets (see [`Daemon::reports`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// 1 for the first reconcile, then +1 each time.
    pub generation: u64,
    /// When it finished.
    pub finished_at: Timestamp,
    /// How long plan + apply took.
    pub elapsed: std::time::Duration,
    /// What it did, or why it failed.
    pub result: Result<Reconciled, String>,
    /// The machine reason of a failure (a metrics label), `None` when it succeeded.
    pub reason: Option<&'static str>,
    /// Files broken as a whole (their last good declarations were used).
    pub broken_files: Vec<String>,
}

impl Report {
    /// The report as published ([`Daemon::reports`]): without the list of changes and of
    /// written Secrets, which the daemon has logged and absorbed and the hooks have seen.
    /// The published report lives until the next round; a first apply's lists (77,000
    /// changes and 15,000 Secrets at 10,000 users, ~20 MiB of small blocks allocated at
    /// the end of the round among its freed temporaries) kept the idle daemon's pages
    /// resident although nothing reads them.
    fn published(mut self) -> Self {
        if let Ok(r) = &mut self.result {
            r.changes = Vec::new();
            r.written = BTreeSet::new();
        }
        self
    }
}

/// What the daemon has done since it started: rounds (each file-system batch, resync or
/// retry) and how many of them reconciled. A round that finds no change reconciles nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Activity {
    /// Rounds run.
    pub rounds: u64,
    /// Rounds that reconciled (planned and applied, or failed trying).
    pub reconciles: u64,
    /// Manifest files parsed (a file whose content did not change is never parsed again).
    pub files_parsed: u64,
    /// Secret files read from the secrets directory (one whose stamp did not change is never read again).
    pub secret_files_read: u64,
}

/// A callback run after each reconcile (e.g. refresh the API's index).
pub type Hook = Box<dyn Fn(&Report) + Send + Sync>;

/// Settings of the directory daemon.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The watched directory of manifests.
    pub dir: PathBuf,
    /// The secrets directory (read for `passwordSecretRef`, watched too).
    pub secrets_dir: Option<PathBuf>,
    /// Full re-read and reconcile period.
    pub resync: Duration,
    /// Quiet period before a burst of file events is handled.
    pub debounce: Duration,
    /// Refuse declarations outside every pinned access domain (`--require-access-domain`).
    pub require_access_domain: bool,
}

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The directory could not be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// A blocking task panicked.
    #[error("reconcile task failed: {0}")]
    Task(String),
}

struct Worker<R> {
    cache: DirCache,
    secrets: Option<SecretsCache>,
    require_access_domain: bool,
    reconciler: R,
    activity: Activity,
    last_diagnostics: BTreeSet<String>,
    /// Not-ready objects (key, reason) logged last time, so a resync does not repeat them.
    last_not_ready: Option<BTreeSet<(String, String)>>,
    /// The last reconcile could not run: the next round reconciles even if nothing changed since.
    failed: bool,
    /// What the last valid validation of every declaration leaves for validating a part.
    kept: Option<Kept>,
}

/// The directory daemon: owns the cache and the reconciler.
pub struct Daemon<R: Reconciler> {
    config: DaemonConfig,
    worker: Option<Worker<R>>,
    generation: u64,
    tx: watch::Sender<Option<Arc<Report>>>,
    activity: watch::Sender<Activity>,
    hooks: Vec<Hook>,
}

impl<R: Reconciler> Daemon<R> {
    /// A daemon for `config` reconciling through `reconciler`.
    pub fn new(config: DaemonConfig, reconciler: R) -> Self {
        let worker = Worker {
            cache: DirCache::new(&config.dir),
            secrets: config.secrets_dir.as_ref().map(SecretsCache::new),
            require_access_domain: config.require_access_domain,
            reconciler,
            activity: Activity::default(),
            last_diagnostics: BTreeSet::new(),
            last_not_ready: None,
            failed: false,
            kept: None,
        };
        Daemon {
            config,
            worker: Some(worker),
            generation: 0,
            tx: watch::channel(None).0,
            activity: watch::channel(Activity::default()).0,
            hooks: Vec::new(),
        }
    }

    /// The latest outcome, updated after every reconcile (None before the first). Its
    /// [`Reconciled::changes`] and [`Reconciled::written`] are empty: only hooks
    /// ([`Daemon::on_applied`]) see them.
    pub fn reports(&self) -> watch::Receiver<Option<Arc<Report>>> {
        self.tx.subscribe()
    }

    /// What the daemon has done so far, updated after every round.
    pub fn activity(&self) -> watch::Receiver<Activity> {
        self.activity.subscribe()
    }

    /// Runs `hook` after every reconcile, before the outcome is published (on the round's
    /// blocking thread, with the round's whole report).
    pub fn on_applied(&mut self, hook: impl Fn(&Report) + Send + Sync + 'static) {
        self.hooks.push(Box::new(hook));
    }

    /// Watches, reconciles at start, on each change and each resync, until `shutdown` resolves;
    /// returns the reconciler once the current reconcile has finished.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<R, DaemonError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        let mut paths = vec![self.config.dir.as_path()];
        if let Some(s) = &self.config.secrets_dir {
            paths.push(s.as_path());
        }
        let _watch = fs_events::watch(&paths, self.config.debounce, tx)?;
        tokio::pin!(shutdown);
        let mut resync = tokio::time::interval(self.config.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A failed reconcile or a file still being written is retried sooner than the resync;
        // a reconcile that keeps failing is retried less and less often (resync ticks wait too).
        let mut retry: Option<Instant> = None;
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            // What the watcher says changed (None: re-read everything, comparing stamps).
            let (force, paths) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(batch) = rx.recv() => {
                    let mut relevant = self.relevant(&batch);
                    let mut paths = batch.ok();
                    while let Ok(more) = rx.try_recv() {
                        relevant |= self.relevant(&more);
                        paths = match (paths, more) {
                            (Some(mut p), Ok(m)) => {
                                p.extend(m);
                                Some(p)
                            }
                            _ => None,
                        };
                    }
                    if !relevant {
                        continue;
                    }
                    (false, paths)
                }
                _ = resync.tick() => {
                    if failing && retry.is_some() {
                        continue; // the back-off decides when the next attempt is
                    }
                    (true, None)
                }
                () = sleep_until(retry) => { retry = None; (false, None) }
            };
            let step = self.reconcile(force, paths).await?;
            failing = matches!(step, Step::Failed);
            match step {
                Step::Done => backoff = MIN_BACKOFF,
                Step::Unsettled => retry = Some(Instant::now() + self.config.debounce),
                Step::Failed => {
                    tracing::warn!(retry_in = %humantime::format_duration(backoff), "reconcile will be retried");
                    retry = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::info!("stopping: no reconcile in progress");
        let worker = self
            .worker
            .take()
            .ok_or_else(|| DaemonError::Task("worker lost".into()))?;
        Ok(worker.reconciler)
    }

    fn relevant(&self, batch: &Batch) -> bool {
        match batch {
            Err(e) => {
                // A lost event (e.g. queue overflow): a full re-read is the safe answer.
                tracing::warn!(error = %e, "file watcher error; re-reading the directory");
                true
            }
            // Which file changed matters little: refresh compares stamps and contents.
            Ok(paths) => paths.iter().any(|p| !hidden(p)),
        }
    }

    async fn reconcile(
        &mut self,
        force: bool,
        paths: Option<Vec<PathBuf>>,
    ) -> Result<Step, DaemonError> {
        let mut worker = self
            .worker
            .take()
            .ok_or_else(|| DaemonError::Task("worker lost".into()))?;
        let generation = self.generation + 1;
        // The hooks run on the round's thread, so what only they read of the report is
        // dropped there too, before that thread gives its freed pages back.
        let hooks = std::mem::take(&mut self.hooks);
        let (worker, hooks, step) = tokio::task::spawn_blocking(move || {
            let step = worker.step(force, paths, generation, &hooks);
            (worker, hooks, step)
        })
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))?;
        self.hooks = hooks;
        self.activity.send_replace(worker.activity);
        self.worker = Some(worker);
        let (step, outcome) = step;
        if let Some(outcome) = outcome {
            self.generation = generation;
            self.tx.send_replace(Some(Arc::new(outcome)));
        }
        Ok(step)
    }
}

/// First retry delay after a failed reconcile; doubled at each failure in a row.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between attempts while reconciles keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

enum Step {
    Done,
    Unsettled,
    Failed,
}

impl<R: Reconciler> Worker<R> {
    /// One round: refresh the cache; reconcile when forced, first, or something changed.
    /// `paths`: what the file watcher reported changed, when that is all that needs reading.
    /// Runs `hooks` on a round's report, then keeps only what is published of it (see
    /// [`Report::published`]).
    fn step(
        &mut self,
        force: bool,
        paths: Option<Vec<PathBuf>>,
        generation: u64,
        hooks: &[Hook],
    ) -> (Step, Option<Report>) {
        let started = std::time::Instant::now();
        self.activity.rounds += 1;
        let (step, report) = self.round(force, paths, generation, started);
        self.activity.files_parsed = self.cache.parsed();
        self.activity.secret_files_read = self.secrets.as_ref().map_or(0, SecretsCache::reads);
        let report = report.map(|report| {
            self.activity.reconciles += 1;
            for hook in hooks {
                hook(&report);
            }
            let report = report.published();
            // The round's merged snapshot, store state, plan and change list are dropped
            // by now: give their pages back before going idle (see `sources::memory`).
            crate::sources::memory::release_freed();
            report
        });
        (step, report)
    }

    /// Re-reads only what the watcher reported (see [`DirCache::refresh_paths`]); None when
    /// the manifests need a full refresh. Returns the manifests' refresh and the Secrets
    /// that changed (a full refresh of the secrets directory when its paths need one).
    fn refresh_paths(&mut self, paths: &[PathBuf]) -> Option<(Refresh, BTreeSet<SecretKey>)> {
        let (secret_paths, manifest_paths): (Vec<PathBuf>, Vec<PathBuf>) = paths
            .iter()
            .cloned()
            .partition(|p| self.secrets.as_ref().is_some_and(|s| within(p, s.root())));
        let refresh = self.cache.refresh_paths(&manifest_paths)?;
        let secrets = match &mut self.secrets {
            Some(_) if secret_paths.is_empty() => BTreeSet::new(),
            Some(s) => s
                .refresh_paths(&secret_paths)
                .unwrap_or_else(|| s.refresh()),
            None => BTreeSet::new(),
        };
        Some((refresh, secrets))
    }

    /// What a change of the Secret files `secrets` amounts to for a part: each Secret's
    /// claimant (the one declaration that reads it through `passwordSecretRef` or writes
    /// it), as an edited declaration of its file with the username it names, so the part
    /// plans it with what it depends on, as a round of every declaration would; and
    /// those files. None (a round of every declaration) when nothing is kept from the last
    /// whole validation, or a Secret has no single claimant, or the listing itself
    /// changed (a linked namespace directory).
    fn secret_edits(&self, secrets: &BTreeSet<SecretKey>) -> Option<(BTreeSet<String>, Edits)> {
        let kept = self.kept.as_ref()?;
        let files = secrets
            .iter()
            .map(|(ns, name)| kept.claimant_of_secret(ns, name).map(str::to_string))
            .collect::<Option<BTreeSet<String>>>()?;
        let snap = self.cache.snapshot_of(&files, &files);
        let claims = crate::validate::secret_claims(&snap);
        // The index keeps hashes: the files' declarations must confirm each claim.
        let claimants = secrets
            .iter()
            .map(|(ns, name)| {
                let c = claims
                    .iter()
                    .find(|c| c.namespace == *ns && c.secret == *name)?;
                Some(c.key.clone())
            })
            .collect::<Option<BTreeSet<ObjectKey>>>()?;
        // Each claimant as a new declaration: edited, with the usernames it names (the
        // same rule a refresh's edits follow).
        let claimed = Snapshot {
            users: (snap.users.iter())
                .filter(|u| claimants.contains(&u.key()))
                .cloned()
                .collect(),
            tokens: (snap.tokens.iter())
                .filter(|t| claimants.contains(&t.key()))
                .cloned()
                .collect(),
            ..Snapshot::default()
        };
        let mut edits = Edits::default();
        edits.add(None, &claimed);
        Some((files, edits))
    }

    fn round(
        &mut self,
        force: bool,
        paths: Option<Vec<PathBuf>>,
        generation: u64,
        round_started: std::time::Instant,
    ) -> (Step, Option<Report>) {
        let targeted = match &paths {
            Some(p) if !force => self.refresh_paths(p),
            _ => None,
        };
        let (mut refresh, secrets_changed) = match targeted {
            Some(t) => t,
            None => match self.cache.refresh(force) {
                // Any Secret file that changed and that this process did not write is news: it
                // may be a passwordSecretRef's new content, or a delivered Secret somebody deleted.
                Ok(r) => (
                    r,
                    self.secrets
                        .as_mut()
                        .map_or_else(BTreeSet::new, SecretsCache::refresh),
                ),
                Err(e) => {
                    // Loud: readiness, metrics and status say so, not only the log.
                    let e = ReconcileError::new(
                        "ManifestsUnreadable",
                        format!("cannot read the watched directory: {e}"),
                    );
                    tracing::error!(generation, error = %e, "reconcile failed; will retry");
                    self.reconciler.failed(&e);
                    let report = Report {
                        generation,
                        finished_at: Timestamp::now(),
                        elapsed: Duration::ZERO,
                        reason: Some(e.reason),
                        result: Err(e.message),
                        broken_files: Vec::new(),
                    };
                    self.failed = true;
                    return (Step::Failed, Some(report));
                }
            },
        };
        for (file, event) in &refresh.changed {
            tracing::info!(file = %file, event = event.as_str(), "manifest file changed");
        }
        for file in &refresh.unsettled {
            tracing::debug!(file = %file, "file still being written; will re-read");
        }
        let refreshed = round_started.elapsed();
        let first = self.activity.reconciles == 0;
        // A resync re-reads everything; when that found nothing new, the store did not
        // change and no expiry came due, planning again would find nothing to do.
        let unchanged = !first && !self.failed && refresh.is_empty() && secrets_changed.is_empty();
        if unchanged && (!force || self.reconciler.settled(crate::snapshot::now())) {
            tracing::debug!(
                generation = generation - 1,
                forced = force,
                elapsed_ms = round_started.elapsed().as_millis() as u64,
                "nothing changed; not reconciling"
            );
            let step = if refresh.unsettled.is_empty() {
                Step::Done
            } else {
                Step::Unsettled
            };
            return (step, None);
        }
        // A Secret file that changed is a change of the declaration that reads or writes it.
        let secret_edits = if secrets_changed.is_empty() {
            Some(None)
        } else {
            tracing::info!(secrets = secrets_changed.len(), "secret files changed");
            self.secret_edits(&secrets_changed).map(Some)
        };
        let known = !first && !self.failed && secret_edits.is_some();
        let mut changed: BTreeSet<String> =
            refresh.changed.iter().map(|(f, _)| f.clone()).collect();
        if let Some(Some((files, more))) = secret_edits {
            changed.extend(files);
            if let Some(edits) = refresh.edits.as_mut() {
                edits.objects.extend(more.objects);
                edits.usernames.extend(more.usernames);
            }
        }
        self.reconciler
            .changed_files(known.then(|| changed.clone()));
        // A small change: validate and plan a part of the declarations, when it is enough.
        let part = match (&refresh.edits, known && refresh.unsettled.is_empty()) {
            (Some(edits), true) if !changed.is_empty() => self.part(&changed, edits),
            _ => None,
        };
        let mut timed = (Duration::ZERO, Duration::ZERO);
        let mut broken_files = Vec::new();
        let mut result = None;
        if let Some((part, merged, validated)) = part {
            timed = (merged, validated);
            let edits = refresh
                .edits
                .as_ref()
                .expect("a part is made from the edits");
            let diagnostics = part.diagnostics.clone();
            let started = std::time::Instant::now();
            result = self
                .reconciler
                .reconcile_part(part, edits, self.secrets.as_ref())
                .map(|r| (r, started.elapsed()));
            if result.is_some() {
                self.log_diagnostics(&diagnostics, false);
            }
        }
        let (result, elapsed) = match result {
            Some(done) => done,
            None => {
                // A round of every declaration (what a part validated stays as the whole's).
                let started = std::time::Instant::now();
                let mut snapshot = self.cache.snapshot();
                snapshot.domains.required = self.require_access_domain;
                // Only the Secrets a passwordSecretRef names are data the plan reads.
                add_referenced_secrets(&mut self.secrets, &mut snapshot, false);
                let merged = started.elapsed();
                let started = std::time::Instant::now();
                validate(&mut snapshot);
                let validated = started.elapsed();
                timed = (timed.0 + merged, timed.1 + validated);
                self.kept = Kept::new(&snapshot);
                self.log_diagnostics(&snapshot.diagnostics, true);
                broken_files = snapshot.broken_files.iter().cloned().collect();
                let started = std::time::Instant::now();
                let result = self.reconciler.reconcile(snapshot, self.secrets.as_ref());
                (result, started.elapsed())
            }
        };
        let (merged, validated) = timed;
        if let (Ok(r), Some(cache)) = (&result, &mut self.secrets) {
            cache.absorb(&r.written);
        }
        let elapsed_ms = elapsed.as_millis() as u64;
        self.failed = result.is_err();
        let step = match &result {
            Ok(r) => {
                let not_ready = r.objects.iter().filter(|o| !o.ready).count();
                tracing::info!(
                    generation,
                    changes = r.changes.len(),
                    objects = r.objects.len(),
                    not_ready,
                    elapsed_ms,
                    forced = force,
                    round_ms = round_started.elapsed().as_millis() as u64,
                    refresh_ms = refreshed.as_millis() as u64,
                    merge_ms = merged.as_millis() as u64,
                    validate_ms = validated.as_millis() as u64,
                    "reconciled"
                );
                self.log_readiness(&r.objects);
                if refresh.unsettled.is_empty() {
                    Step::Done
                } else {
                    Step::Unsettled
                }
            }
            Err(e) => {
                tracing::error!(generation, reason = e.reason, error = %e, "reconcile failed; will retry");
                self.reconciler.failed(e);
                Step::Failed
            }
        };
        let outcome = Report {
            generation,
            finished_at: Timestamp::now(),
            elapsed,
            reason: result.as_ref().err().map(|e| e.reason),
            result: result.map_err(|e| e.message),
            broken_files,
        };
        (step, Some(outcome))
    }

    /// Says which objects are not ready (one line each), or that all are, when that changed.
    ///
    /// Each problem is logged once: an `Invalid` object and a broken `File` were logged
    /// with their diagnostic (file:line, reason), so they are not named again here.
    fn log_readiness(&mut self, objects: &[Outcome]) {
        let now: BTreeSet<(String, String)> = objects
            .iter()
            .filter(|o| !o.ready)
            .map(|o| {
                (
                    format!("{} {}/{}", o.kind, o.namespace, o.name),
                    o.reason.clone(),
                )
            })
            .collect();
        if self.last_not_ready.as_ref() == Some(&now) {
            return;
        }
        if now.is_empty() {
            tracing::info!(objects = objects.len(), "all objects ready");
        }
        for o in objects.iter().filter(|o| !o.ready) {
            if o.kind == FILE_KIND || o.reason == INVALID {
                continue;
            }
            let object = ObjectKey::new(&o.kind, &o.namespace, &o.name).to_string();
            // Status messages name Secrets and reasons, never their values.
            tracing::warn!(reason = %o.reason, "object not ready: {object}: {}", o.message);
        }
        self.last_not_ready = Some(now);
    }

    /// A part of the declarations for a small change, validated, with the time its merge
    /// and its validation took; None when the change needs a round of every declaration:
    /// nothing kept from the last whole validation, or a rule's answer for the part
    /// depends on declarations outside it, or the part has an error (the whole is then
    /// validated, so the error is reported as it always is).
    ///
    /// The part holds the changed files and every file declaring a User, an
    /// AccessBinding or an owned ApiToken of a username their edited or removed
    /// declarations name (before or after the edit), which is what the reconciler's
    /// scope widens the change to.
    fn part(
        &mut self,
        changed: &BTreeSet<String>,
        edits: &Edits,
    ) -> Option<(Snapshot, Duration, Duration)> {
        let kept = self.kept.as_mut()?;
        let started = std::time::Instant::now();
        let mut files = kept.files_of(&edits.usernames);
        files.extend(changed.iter().cloned());
        let mut part = self.cache.snapshot_of(&files, changed);
        // The part holds every request of a model the changed files' requests name (before
        // or now): the rule on requests of one model at one instant reads them all.
        let with_requests = kept.with_requests(
            part.requests
                .iter()
                .map(|r| (r.object.spec.scope(), r.object.spec.model.as_str())),
            changed,
        );
        if with_requests != *changed {
            files.extend(with_requests.iter().cloned());
            part = self.cache.snapshot_of(&files, &with_requests);
        }
        part.domains.required = self.require_access_domain;
        add_referenced_secrets(&mut self.secrets, &mut part, true);
        let merged = started.elapsed();
        let started = std::time::Instant::now();
        // A User claiming or giving up a username a stage request names changes that
        // request's warning, and a part holds only the changed files' requests.
        let closed = !kept.moves_a_requester_claim(&part, changed)
            && validate_part(&mut part, &kept.outside(&files, &with_requests));
        let validated = started.elapsed();
        if !closed || part.has_errors() || !part.broken_files.is_empty() {
            tracing::debug!(
                closed,
                "a part cannot be validated alone; validating everything"
            );
            return None;
        }
        // Whatever the reconciler does with the part, the changed files now declare this.
        kept.update(&part, changed);
        Some((part, merged, validated))
    }

    /// Logs diagnostics that are new since the last reconcile (not every resync); `all`:
    /// `diags` are every declaration's (else a part's, which adds to those logged).
    ///
    /// A username clash is left to the readiness log: only planning knows which
    /// claimant the store holds, and its `UsernameConflict` line names the right one.
    fn log_diagnostics(&mut self, diags: &[Diagnostic], all: bool) {
        let mut now: BTreeSet<String> = diags.iter().map(ToString::to_string).collect();
        if !all {
            now.extend(self.last_diagnostics.iter().cloned());
        }
        for d in diags {
            let line = d.to_string();
            if self.last_diagnostics.contains(&line) || d.reason == Reason::DuplicateUsername {
                continue;
            }
            if d.is_error() {
                tracing::warn!(reason = %d.reason, diagnostic = %line, "invalid declaration");
            } else {
                tracing::info!(reason = %d.reason, diagnostic = %line, "declaration warning");
            }
        }
        self.last_diagnostics = now;
    }
}

/// Adds to `snapshot` the data of the Secrets its declarations reference, read through
/// `cache`, and the problems reading them. A `part` round adds to what the cache keeps
/// wanted ([`SecretsCache::loaded_also`]); a whole round replaces it
/// ([`SecretsCache::loaded`]).
fn add_referenced_secrets(cache: &mut Option<SecretsCache>, snapshot: &mut Snapshot, part: bool) {
    if let Some(cache) = cache {
        let wanted = referenced_secrets(snapshot);
        let (secrets, diags) = if part {
            cache.loaded_also(&wanted)
        } else {
            cache.loaded(&wanted)
        };
        snapshot.secrets.extend(secrets);
        snapshot.diagnostics.extend(diags);
    }
}

/// The Secrets the declarations' `passwordSecretRef`s name, as `plan` looks them up.
fn referenced_secrets(snapshot: &Snapshot) -> BTreeSet<SecretKey> {
    snapshot
        .users
        .iter()
        .filter_map(|u| {
            let r = u.object.spec.password_secret_ref.as_ref()?;
            Some((u.object.namespace().unwrap_or_default(), r.name.clone()))
        })
        .collect()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether `p` lies in `root` (as given, or as the file system resolves it).
fn within(p: &std::path::Path, root: &std::path::Path) -> bool {
    p.starts_with(root) || root.canonicalize().is_ok_and(|r| p.starts_with(r))
}

fn hidden(p: &std::path::Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

#[cfg(test)]
#[path = "daemon_tests.rs"]
mod tests;
