//! Giving a finished round's memory back to the operating system.
//!
//! The binary allocates with mimalloc (see `src/main.rs`). mimalloc keeps freed
//! memory in the pages of the thread that allocated it, and returns a page to the
//! system only when that thread (or, for a thread that exited, the thread that frees
//! the page's last block) gives it back: a daemon that goes idle right after a
//! reconcile that built and dropped a few hundred MiB (merged snapshot, store state,
//! plan) keeps those pages resident until its next round. After a round the daemon
//! asks the allocator to give back what the round's thread freed ([`release_freed`]),
//! and every async worker thread does the same for itself the next time it goes idle
//! ([`on_thread_park`], installed on the runtime by `stagegate run`): the old API index,
//! reports and request buffers are dropped on those threads.
//!
//! What outlives a round (the API index after a full reload, the outcomes the report
//! and the memo keep) is copied into the pages of one long-lived thread ([`compacted`]):
//! built among the round's temporaries, its blocks would otherwise keep their pages
//! resident once the temporaries are freed.
//!
//! The library forbids `unsafe`, and only the binary knows which allocator it
//! runs on: it registers the purge here ([`set_release`]); without one (tests,
//! other programs linking the library) [`release_freed`] does nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Bumped by each [`release_freed`]: the worker threads that have not released since
/// do so when they next park.
static EPOCH: Epoch = Epoch(AtomicU64::new(0));

thread_local! {
    /// The last epoch this thread released its freed pages for.
    static RELEASED: Cell<u64> = const { Cell::new(0) };
}

/// A count of releases asked for; each thread remembers the last one it honoured.
struct Epoch(AtomicU64);

impl Epoch {
    /// A release on the thread owning `seen`: the others are now due one.
    fn bump(&self, seen: &Cell<u64>) {
        seen.set(self.0.fetch_add(1, Ordering::Relaxed) + 1);
    }

    /// Whether the thread owning `seen` has a release due (marking it done).
    fn due(&self, seen: &Cell<u64>) -> bool {
        let now = self.0.load(Ordering::Relaxed);
        seen.replace(now) != now
    }
}

/// Registers how the global allocator returns freed pages (once; later calls are ignored).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns the pages freed by the work just finished on this thread to the operating
/// system, and asks every async worker thread to do the same when it next parks.
pub fn release_freed() {
    if let Some(release) = RELEASE.get() {
        RELEASED.with(|seen| EPOCH.bump(seen));
        release();
    }
}

/// For `tokio::runtime::Builder::on_thread_park`: a worker going idle gives back its
/// freed pages once per [`release_freed`] (one relaxed atomic load otherwise, so the
/// API's hot path does not pay for it).
pub fn on_thread_park() {
    if let Some(release) = RELEASE.get() {
        if RELEASED.with(|seen| EPOCH.due(seen)) {
            release();
        }
    }
}

/// Work for the keeper thread: copy one value into the keeper's pages.
type Job = Box<dyn FnOnce() + Send>;

/// The keeper thread's queue (spawned on first use; none if it could not be spawned).
static KEEPER: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();

/// `value` copied by `copy` into fresh pages, for a structure that outlives the round
/// that built it (the API index after a full reload). Built by a round's thread while
/// the round's temporaries (the store state, the merged snapshot) filled the same
/// pages, its blocks pin those pages once the temporaries are freed, and they stay
/// resident (abandoned once the blocking thread exits): README "The daemon itself",
/// step 9b. The copy is made on one long-lived thread that allocates nothing but such
/// copies, so its pages stay dense; the original is dropped here and its pages are given
/// back by the next [`release_freed`]. Without a registered allocator (tests, other
/// programs linking the library) `value` is returned as it is; if the keeper is
/// unavailable, too.
pub fn compacted<T: Send + Sync + 'static>(value: T, copy: fn(&T) -> T) -> T {
    // The lib tests copy too: the callers' tests then check that the copy is the same.
    if RELEASE.get().is_none() && !cfg!(test) {
        return value;
    }
    copy_on_keeper(value, copy)
}

/// [`compacted`]'s copy, made on the keeper thread whatever the allocator.
fn copy_on_keeper<T: Send + Sync + 'static>(value: T, copy: fn(&T) -> T) -> T {
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("stagegate-keeper".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let Some(keeper) = keeper else {
        return value;
    };
    let shared = Arc::new(value);
    let (back, answer) = channel();
    let theirs = Arc::clone(&shared);
    let job: Job = Box::new(move || {
        let copied = copy(&theirs);
        drop(theirs);
        let _ = back.send(copied);
        // The copies this one replaces were freed by other threads into the keeper's pages:
        // give back those that are empty now.
        if let Some(release) = RELEASE.get() {
            release();
        }
    });
    let sent = keeper.lock().unwrap_or_else(|p| p.into_inner()).send(job);
    match sent.ok().and_then(|()| answer.recv().ok()) {
        // The original is freed here, on the caller's thread, into its own pages.
        Some(copied) => copied,
        // The keeper is gone (it panicked): the original, as it is (or copied here if the
        // keeper's share is not dropped yet).
        None => Arc::try_unwrap(shared).unwrap_or_else(|shared| copy(&shared)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keeper_copy_equals_the_original() {
        let value: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
        let copied = copy_on_keeper(value.clone(), Vec::clone);
        assert_eq!(copied, value);
        let again = copy_on_keeper(copied, Vec::clone);
        assert_eq!(again, value, "the keeper serves more than one copy");
    }

    #[test]
    fn each_other_thread_releases_once_per_release_asked_for() {
        let epoch = Epoch(AtomicU64::new(0));
        let (round, worker, other) = (Cell::new(0), Cell::new(0), Cell::new(0));
        assert!(!epoch.due(&worker), "nothing asked for yet");
        epoch.bump(&round);
        assert!(!epoch.due(&round), "the releasing thread has just released");
        assert!(epoch.due(&worker));
        assert!(!epoch.due(&worker), "once per release, not at every park");
        epoch.bump(&round);
        epoch.bump(&round);
        assert!(epoch.due(&worker), "two releases since: one due");
        assert!(!epoch.due(&worker));
        assert!(
            epoch.due(&other),
            "a thread that never parked since the first release"
        );
    }
}
