//! Giving a finished round's memory back to the operating system.
//!
//! The binary allocates with mimalloc (see `src/main.rs`). mimalloc returns freed
//! pages to the system only after a delay (`purge_delay`, 1 s) and only when the
//! allocator is next called: a daemon that goes idle right after a reconcile that
//! built and dropped a few hundred MiB (merged snapshot, store state, plan) keeps
//! those pages resident until its next round. After a round the daemon asks the
//! allocator to purge now.
//!
//! The library forbids `unsafe`, and only the binary knows which allocator it
//! runs on: it registers the purge here ([`set_release`]); without one (tests,
//! other programs linking the library) [`release_freed`] does nothing.

use std::sync::OnceLock;

static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Registers how the global allocator returns freed pages (once; later calls are ignored).
pub fn set_release(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Returns the pages freed by the work just finished to the operating system.
pub fn release_freed() {
    if let Some(release) = RELEASE.get() {
        release();
    }
}
