//! The `stagegate` binary: everything lives in the library's `cli` module.

/// mimalloc instead of glibc's allocator: a reconcile at scale builds and drops
/// hundreds of MiB (a merged snapshot, the plan, apply's working copies); glibc
/// kept those pages in its per-thread arenas, so the daemon's resident size stayed
/// near the first apply's peak, while mimalloc gives freed pages back to the
/// operating system (issue 19: 714-735 MiB resident after the first apply before).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Purges mimalloc's freed pages now. mimalloc itself purges them only a second
/// after they were freed and only when it is next called, which an idle daemon
/// never does: the daemon calls this after each round
/// (`stagegate::sources::memory::release_freed`).
fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers; it only walks the allocator's own state.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    stagegate::sources::memory::set_release(release_freed);
    stagegate::cli::main()
}
