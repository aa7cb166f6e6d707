//! `ApiState`: the store handle, the in-memory index and session cache, the
//! throttles and the metrics, shared by every request and by the daemon.
//!
//! The daemon calls [`ApiState::refresh`]
//! after each apply and [`ApiState::set_ready`] after the first reconcile.

use super::config::ApiConfig;
use super::index::Index;
use super::metrics::Metrics;
use super::readiness::{broken, broken_files, BrokenFile};
use super::sessions::{SessionCache, SessionEntry};
use super::throttle::{CallerLimiter, LoginThrottle, RateLimiter};
use crate::policy::capability_lost;
use crate::secrets::{generate_password, hash_password, HashValue, PasswordError, ServerKey};
use crate::snapshot::FILE_KIND;
use crate::store::{
    AnyStore, CommitJournal, SessionsMarker, StatusCounts, Store, StoreError, StoreState, Touched,
};
use jiff::Timestamp;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Tokens expiring within this window are counted by `stagegate_tokens_expiring_within_7d`.
const EXPIRY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// Kinds always present in `stagegate_objects`, so a kind that drops to zero shows 0.
const KINDS: [&str; 4] = ["User", "AccessBinding", "ApiToken", "ModelStageRequest"];

/// Every kind of `stagegate_objects` at zero, ready and not, so a kind that drops to zero shows 0.
fn zero_counts() -> StatusCounts {
    KINDS
        .iter()
        .flat_map(|k| [((k.to_string(), true), 0), ((k.to_string(), false), 0)])
        .collect()
}

/// Why the API state could not be built or refreshed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dummy password hash could not be computed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

pub(crate) struct Inner {
    pub(crate) config: ApiConfig,
    pub(crate) key: ServerKey,
    store: Arc<Mutex<AnyStore>>,
    index: RwLock<Arc<Index>>,
    pub(crate) sessions: RwLock<SessionCache>,
    pub(crate) metrics: Metrics,
    ready: AtomicBool,
    /// Why the last reconcile could not run, while it cannot (`/readyz` fails with it).
    reconcile_failure: RwLock<Option<String>>,
    /// Store revision the index was built from.
    revision: AtomicI64,
    /// The store's sessions as of the last session reload (see [`AnyStore::sessions_marker`]).
    sessions_marker: Mutex<Option<SessionsMarker>>,
    /// The keys each of the daemon's commits wrote, when this process's daemon journals
    /// them (see [`ApiState::follow_commits`]): the index is then patched, not rebuilt.
    journal: RwLock<Option<CommitJournal>>,
    /// How many updates patched the index instead of rebuilding it (a figure for tests).
    patches: AtomicU64,
    /// Object statuses per kind and readiness (all kinds, no zeros) as of the index's
    /// revision: a patch moves them by the journal's counts instead of counting every row.
    status_counts: Mutex<Option<StatusCounts>>,
    pub(crate) dummy_hash: HashValue,
    pub(crate) login_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) login_throttle: LoginThrottle,
    pub(crate) rate_limiter: Option<RateLimiter>,
    pub(crate) caller_limiter: Option<CallerLimiter>,
    /// Manifest files that failed to load, as of the last refresh (for `/readyz`).
    broken_files: RwLock<Vec<BrokenFile>>,
}

/// Shared state of the API server (cheap to clone).
#[derive(Clone)]
pub struct ApiState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("listen", &self.inner.config.listen)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over a store handle (shared with the daemon, or a second connection to the same file), index loaded.
    pub fn new(
        config: ApiConfig,
        store: Arc<Mutex<AnyStore>>,
        key: ServerKey,
    ) -> Result<Self, StateError> {
        // Unknown users are verified against this hash so they cost what real ones do.
        let dummy_hash = hash_password(config.password_params, &generate_password())?;
        let state = ApiState {
            inner: Arc::new(Inner {
                login_slots: Arc::new(tokio::sync::Semaphore::new(config.login_concurrency.max(1))),
                login_throttle: LoginThrottle::new(
                    config.login_backoff_per_client,
                    config.login_backoff_per_account,
                ),
                rate_limiter: config.rate_limit.map(RateLimiter::new),
                caller_limiter: config.caller_rate_limit.map(CallerLimiter::new),
                config,
                key,
                store,
                index: RwLock::new(Arc::new(Index::default())),
                sessions: RwLock::new(SessionCache::default()),
                metrics: Metrics::new(),
                ready: AtomicBool::new(false),
                reconcile_failure: RwLock::new(None),
                revision: AtomicI64::new(-1),
                sessions_marker: Mutex::new(None),
                journal: RwLock::new(None),
                patches: AtomicU64::new(0),
                status_counts: Mutex::new(None),
                dummy_hash,
                broken_files: RwLock::default(),
            }),
        };
        state.refresh()?;
        Ok(state)
    }

    /// State over its own connection to the store file at `path` (WAL: sees the daemon's commits).
    pub fn open(config: ApiConfig, path: &Path, key: ServerKey) -> Result<Self, StateError> {
        let store = AnyStore::open(path)?;
        Self::new(config, Arc::new(Mutex::new(store)), key)
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The metrics registry and the daemon's hooks (`record_reconcile`, `set_objects`, ...).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Marks the API ready (`/readyz` 200): call after each successful reconcile.
    pub fn set_ready(&self) {
        *self
            .inner
            .reconcile_failure
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Marks the API not ready because a reconcile could not run (`/readyz` 503 with `why`).
    pub fn set_reconcile_failed(&self, why: &str) {
        *self
            .inner
            .reconcile_failure
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    }

    /// Why the last reconcile could not run, while reconciles fail.
    pub fn reconcile_failure(&self) -> Option<String> {
        self.inner
            .reconcile_failure
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `set_ready` was called.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The current index (a snapshot: later refreshes do not change it).
    pub fn index(&self) -> Arc<Index> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, AnyStore> {
        self.inner.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads the index and sessions from the store (blocking: call off the async runtime).
    pub fn refresh(&self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut store = self.store();
        let state = store.load_state()?;
        self.rebuild(&mut store, &state)?;
        tracing::info!(
            mode = "full",
            revision = state.revision,
            ms = started.elapsed().as_millis() as u64,
            "api index updated"
        );
        Ok(())
    }

    /// From now on, follows the commits journaled in `journal` (the daemon's store records
    /// them, see [`AnyStore::record_commits`]): when the store moved on only by commits it
    /// names, the index is updated from the rows those commits touched (see
    /// [`ApiState::poll_changes`]).
    pub fn follow_commits(&self, journal: CommitJournal) {
        *self
            .inner
            .journal
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(journal);
    }

    /// Brings the index up to the store's revision `now`: from the rows the commits since
    /// the index's revision touched, when the journal names them all and they are few;
    /// else (another process or connection wrote, a commit too large, no journal) with a
    /// full read.
    fn update(&self, now: i64) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let from = self.inner.revision.load(Ordering::Acquire);
        let touched = self
            .inner
            .journal
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|_| from >= 0)
            .and_then(|j| j.between(from, now));
        if let Some(touched) = touched {
            let mut store = self.store();
            if self.patch(&mut store, now, &touched, started)? {
                self.inner.patches.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.refresh()
    }

    /// Patches the index with the current rows of what `touched` names and publishes it as
    /// of revision `now`; false, and nothing changed, when the store is no longer at `now`
    /// once they are read (another commit came in between: the caller reads everything).
    fn patch(
        &self,
        store: &mut AnyStore,
        now: i64,
        touched: &Touched,
        started: std::time::Instant,
    ) -> Result<bool, StoreError> {
        let mut users = Vec::with_capacity(touched.usernames.len());
        for name in &touched.usernames {
            let row = store.user(name)?;
            let grants = match row {
                Some(_) => store.grants(name)?,
                None => Vec::new(),
            };
            users.push((name.clone(), row, grants));
        }
        let mut tokens = Vec::with_capacity(touched.token_keys.len());
        for id in &touched.token_keys {
            tokens.push((id.clone(), store.token_key(id)?));
        }
        let models = match touched.models {
            true => Some(store.models()?),
            false => None,
        };
        // The object gauges: moved by the counts the journal took from each written status's
        // row before and after, when it has them; else every status is counted again.
        let kept = self.kept_counts().clone();
        let statuses = match (touched.statuses, kept, &touched.status_counts) {
            (false, _, _) => None,
            (true, Some(mut counts), Some(moved)) => {
                for (kind, n) in moved {
                    *counts.entry(kind.clone()).or_default() += n;
                }
                counts.retain(|_, n| *n != 0);
                let files = match touched.files {
                    true => Some(store.statuses_of_kind(FILE_KIND)?),
                    false => None,
                };
                Some((counts, files))
            }
            (true, _, _) => {
                let (rows, files) = store.status_summary(FILE_KIND)?;
                let counts = rows.into_iter().map(|(k, r, n)| ((k, r), n)).collect();
                Some((counts, Some(files)))
            }
        };
        // Every commit bumps the revision: unchanged since `now` was read, nothing was
        // committed while these rows were read, one by one.
        if store.current_revision()? != now {
            return Ok(false);
        }
        let read = started.elapsed();
        let index = self.index().patched(users, tokens, models);
        let patched = started.elapsed();
        self.publish(store, index, now)?;
        if let Some((counts, files)) = statuses {
            self.set_statuses(counts, files.map(|f| broken(f.iter())));
        }
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            mode = "incremental",
            keys = touched.len(),
            revision = now,
            ms = started.elapsed().as_millis() as u64,
            read_ms = ms(read),
            patch_ms = ms(patched - read),
            publish_ms = ms(started.elapsed() - patched),
            "api index updated"
        );
        Ok(true)
    }

    /// Refreshes when another process committed since the last refresh, and reloads the
    /// sessions when another process logged someone in or out (blocking).
    pub fn poll_changes(&self) -> Result<bool, StoreError> {
        let (now, marker) = {
            let store = self.store();
            (store.current_revision()?, store.sessions_marker()?)
        };
        if now != self.inner.revision.load(Ordering::Acquire) {
            self.update(now)?;
            return Ok(true);
        }
        if Some(marker) != *self.marker() {
            self.reload_sessions()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn marker(&self) -> MutexGuard<'_, Option<SessionsMarker>> {
        self.inner
            .sessions_marker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads only the session cache (a login or logout on another replica sharing the store).
    fn reload_sessions(&self) -> Result<(), StoreError> {
        let store = self.store();
        let index = self.index();
        let mut cache = SessionCache::from_rows(&store.sessions()?);
        let gone = |s: &SessionEntry| index.user(&s.username).is_none_or(|u| !u.active());
        for hash in cache.doomed(Timestamp::now(), gone) {
            cache.remove(&hash);
        }
        self.inner.metrics.set_sessions(cache.len());
        *self.marker() = Some(store.sessions_marker()?);
        *self
            .inner
            .sessions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = cache;
        Ok(())
    }

    /// How many index updates patched the rows the journaled commits touched (the rest read
    /// the whole store).
    pub fn index_patches(&self) -> u64 {
        self.inner.patches.load(Ordering::Relaxed)
    }

    /// The store revision the index was built from (0: nothing was ever applied).
    pub fn index_revision(&self) -> i64 {
        self.inner.revision.load(Ordering::Acquire)
    }

    /// Whether the store answers a trivial query (blocking).
    pub fn store_ok(&self) -> bool {
        self.store().current_revision().is_ok()
    }

    /// Swaps in the index built from `state`, with its sessions and gauges.
    fn rebuild(&self, store: &mut AnyStore, state: &StoreState) -> Result<(), StoreError> {
        self.publish(store, Index::build(state), state.revision)?;
        let mut counts = StatusCounts::new();
        for s in state.statuses.values() {
            *counts.entry((s.key.kind.clone(), s.ready)).or_default() += 1;
        }
        self.set_statuses(counts, Some(broken_files(state)));
        Ok(())
    }

    /// Keeps `counts` (statuses per kind and readiness, all kinds) and sets the object
    /// gauges from them, and, when given, the broken files `/readyz` shows.
    fn set_statuses(&self, counts: StatusCounts, broken: Option<Vec<BrokenFile>>) {
        let m = &self.inner.metrics;
        if let Some(broken) = broken {
            m.set_files_broken(broken.len());
            *self
                .inner
                .broken_files
                .write()
                .unwrap_or_else(|p| p.into_inner()) = broken;
        }
        let mut all = zero_counts();
        // A broken file is no declared object: it has its own gauge.
        for (key, n) in counts.iter().filter(|((kind, _), _)| kind != FILE_KIND) {
            all.insert(key.clone(), *n);
        }
        for ((kind, ready), n) in all {
            m.set_objects(&kind, ready, n);
        }
        *self.kept_counts() = Some(counts);
    }

    fn kept_counts(&self) -> MutexGuard<'_, Option<StatusCounts>> {
        self.inner
            .status_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The object statuses per kind and readiness the gauges were last set from (tests
    /// compare them with a count of the store's rows).
    #[cfg(test)]
    pub(crate) fn status_counts(&self) -> Option<StatusCounts> {
        self.kept_counts().clone()
    }

    /// Swaps in `index` (of store revision `revision`) and the session cache. Runs under the
    /// store lock, as logins and logouts do, so a session created or ended concurrently is
    /// never lost or revived by the reload.
    fn publish(&self, store: &mut AnyStore, index: Index, revision: i64) -> Result<(), StoreError> {
        let old = self.index();
        // Sessions end when their user is gone, revoked, or had its password reset, whether or not
        // the apply ended them in the store itself.
        let ended = |name: &str| match (index.user(name), old.user(name)) {
            (None, _) => true,
            (Some(new), _) if !new.active() => true,
            // A password the person chose just now: the API ended their other sessions itself
            // and kept the one they chose it from. Any other change (a declared reset) ends all.
            (Some(new), Some(before)) => {
                new.password_hash != before.password_hash
                    && !(new.password_chosen_at.is_some()
                        && new.password_chosen_at != before.password_chosen_at)
            }
            (Some(_), None) => false,
        };
        // A session never holds a capability its user has lost. Apply ends such sessions in its
        // own transaction; this catches one created from grants read just before that apply.
        let exceeds = |s: &SessionEntry| {
            index
                .user(&s.username)
                .and_then(|u| capability_lost(&s.username, &s.grants, &u.grants))
                .inspect(|lost| tracing::info!(user = %s.username, lost = %lost, "session ended: it held a capability its user no longer has"))
                .is_some()
        };
        let now = Timestamp::now();
        let mut cache = SessionCache::from_rows(&store.sessions()?);
        for hash in cache.doomed(now, |s| ended(&s.username) || exceeds(s)) {
            store.delete_session(hash.expose())?;
            cache.remove(&hash);
        }
        *self.marker() = Some(store.sessions_marker()?);
        let m = &self.inner.metrics;
        m.set_sessions(cache.len());
        m.set_tokens_expiring(index.tokens_expiring_within(now, EXPIRY_WINDOW));
        let (users, tokens, models) = index.counts();
        *self
            .inner
            .sessions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = cache;
        *self.inner.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        self.inner.revision.store(revision, Ordering::Release);
        tracing::debug!(users, tokens, models, "API index rebuilt");
        Ok(())
    }

    /// Manifest files that failed to load, as of the last refresh.
    pub fn broken_files(&self) -> Vec<BrokenFile> {
        self.inner
            .broken_files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refreshes the time-dependent gauges (called when `/metrics` is scraped).
    pub(crate) fn update_gauges(&self) {
        let n = self
            .index()
            .tokens_expiring_within(Timestamp::now(), EXPIRY_WINDOW);
        self.inner.metrics.set_tokens_expiring(n);
        let sessions = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        self.inner.metrics.set_sessions(sessions);
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
