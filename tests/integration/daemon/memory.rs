//! Issue 19, goal 1: the daemon's memory settings that only the process itself can show.
//! Transparent huge pages are off for `stagegate run` (README "The daemon itself", step
//! F): the kernel folded the allocator's purged pages back into resident 2 MiB pages.

use super::harness::{copy_examples, wait_for, Running, Workspace};
use crate::support;

/// The `THP_enabled` line of `/proc/PID/status` (Linux 5.0 and later): "1", or "0" once
/// the process has turned transparent huge pages off for itself.
fn thp_enabled(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// `stagegate run --dir` on the examples, with `env` added to its environment.
fn start(ws: &Workspace, env: &[(&str, &str)]) -> Running {
    copy_examples(&ws.manifests());
    let mut cmd = support::stagegate();
    cmd.arg("run")
        .args(ws.dir_args())
        .args(["--listen", "127.0.0.1:0", "--log-json"])
        .envs(env.iter().copied());
    Running::spawn(cmd, ws.tmp.path())
}

/// Waits for the daemon's first reconcile, then reads its `THP_enabled`.
fn thp_after_first_round(r: &Running) -> String {
    wait_for(r, 60, "the first reconcile", || {
        r.log().contains("\"message\":\"reconciled\"").then_some(())
    });
    thp_enabled(r.pid().unwrap()).expect("the daemon's /proc status")
}

#[test]
fn the_daemon_runs_without_transparent_huge_pages_unless_its_environment_asks_for_them() {
    let own = thp_enabled(std::process::id())
        .expect("this kernel reports THP_enabled in /proc/PID/status (Linux 5.0 and later)");
    // Both the daemon and any allocator setting in its environment that is not THP's.
    for env in [vec![], vec![("MIMALLOC_PURGE_DELAY", "0")]] {
        let ws = Workspace::new();
        let r = start(&ws, &env);
        assert_eq!(thp_after_first_round(&r), "0", "THP left on with {env:?}");
        r.kill();
    }
    // `MIMALLOC_ALLOW_THP` in the environment wins (mimalloc's own option): the daemon
    // leaves the flag as it inherited it.
    let ws = Workspace::new();
    let r = start(&ws, &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_after_first_round(&r), own);
    r.kill();
}
