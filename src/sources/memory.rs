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
//! The library forbids `unsafe`, and only the binary knows which allocator it
//! runs on: it registers the purge here ([`set_release`]); without one (tests,
//! other programs linking the library) [`release_freed`] does nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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

#[cfg(test)]
mod tests {
    use super::*;

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
