//! The `stagegate` binary: everything lives in the library's `cli` module.

/// mimalloc instead of glibc's allocator: a reconcile at scale builds and drops
/// hundreds of MiB (a merged snapshot, the plan, apply's working copies); glibc
/// kept those pages in its per-thread arenas, so the daemon's resident size stayed
/// near the first apply's peak, while mimalloc gives freed pages back to the
/// operating system (issue 19: 714-735 MiB resident after the first apply before).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` and `mi_option_page_reclaim_on_free` in mimalloc 3's
/// `mi_option_t` (libmimalloc-sys builds v3; the crate names only the options whose
/// number v2 and v3 share).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_PAGE_RECLAIM_ON_FREE: libmimalloc_sys::mi_option_t = 35;
// The option numbers above are those of this mimalloc: fail the build if it changes.
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47);

/// mimalloc's settings, as defaults: `MIMALLOC_PURGE_DELAY`,
/// `MIMALLOC_PAGE_RECLAIM_ON_FREE` and `MIMALLOC_ALLOW_THP` in the environment still win
/// (how they were measured against mimalloc's own defaults). Figures: README "The daemon
/// itself", steps 9 and F.
fn configure_allocator() {
    // No transparent huge pages for this process. mimalloc marks its arena
    // `MADV_HUGEPAGE` (its `allow_thp` option, read when it starts, before `main`), so the
    // kernel backs it with 2 MiB pages, and khugepaged folds a 2 MiB range back into one
    // resident huge page as long as one of its 512 small pages is in use: the pages
    // mimalloc purged after a round, between the few long-lived blocks left in them,
    // became resident again (45 of the idle daemon's 110 MiB anonymous memory were huge
    // pages at 10,000 users; idle after the first apply 130 -> 107 MiB, after a restart
    // 100 -> 82 MiB). The flag is the process's (inherited by children; the daemon
    // starts none), so it covers a node whose THP setting is `always` too.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // Best effort: a kernel without the call (or a sandbox refusing it) keeps THP.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
    // SAFETY (both calls): sets one of mimalloc's option values; no pointers.
    // Give a freed page back to the system at once, not a second later at the
    // allocator's next call: a thread that exits idle (the blocking pool's, 10 s after a
    // round) frees its last pages with no later call to purge them, and an idle daemon
    // makes none. Idle after a restart at 10,000 users: 109 -> 89 MiB (one run each).
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0) };
    // A page left by a thread that exited (the apply's delivery and hashing threads,
    // the blocking pool's) is taken over by the thread that frees into it, which then
    // gives it back once empty, instead of staying abandoned with free space no thread
    // allocates from. Idle after the first apply: 146 -> 128 MiB (one run each).
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PAGE_RECLAIM_ON_FREE, 1) };
}

/// Purges mimalloc's freed pages of the calling thread now, and the process's freed
/// arena memory (see `stagegate::sources::memory`).
fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers; it only walks the allocator's own state.
    unsafe { libmimalloc_sys::mi_collect(true) }
    if std::env::var_os("STAGEGATE_ALLOC_STATS").is_some() {
        // For measuring where an idle daemon's memory is (README "The daemon itself"):
        // mimalloc's counters (pages in use, abandoned, arena memory committed) to stderr.
        // SAFETY: no output function (mimalloc's default, stderr) and no argument.
        unsafe { libmimalloc_sys::mi_stats_print_out(None, std::ptr::null_mut()) }
    }
}

fn main() -> std::process::ExitCode {
    configure_allocator();
    stagegate::sources::memory::set_release(release_freed);
    stagegate::cli::main()
}
