//! Issue 12: files holding secrets or hashes get their final mode at creation,
//! whatever the umask, and looser existing ones are tightened. SQLite only: the modes
//! checked are those of the store file, its WAL and shared-memory files.

use super::harness::{wait_for, Running, Workspace};
use crate::support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const USER: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ann, namespace: team}
spec: {}
";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `stagegate ARGS` under `umask`.
fn under_umask(umask: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(support::stagegate().get_program());
    cmd
}

fn check_modes(ws: &Workspace, with_sidecars: bool) {
    let state = ws.store_path().parent().unwrap().to_path_buf();
    assert_eq!(mode(&state), 0o700, "store directory");
    assert_eq!(mode(&ws.store_path()), 0o600, "store");
    if with_sidecars {
        for s in ["store.db-wal", "store.db-shm"] {
            assert_eq!(mode(&state.join(s)), 0o600, "{s}");
        }
    }
    assert_eq!(mode(&state.join("server.key")), 0o600, "server key");
    assert_eq!(mode(&ws.secrets()), 0o700, "secrets directory");
    assert_eq!(
        mode(&ws.secrets().join("team")),
        0o700,
        "namespace directory"
    );
    assert_eq!(
        mode(&ws.secrets().join("team/ann-password.yaml")),
        0o600,
        "delivered Secret"
    );
}

fn daemon_under_umask(umask: &str) {
    let ws = Workspace::new();
    ws.write("a.yaml", USER);
    let mut cmd = under_umask(umask);
    cmd.arg("run").args(ws.dir_args()).args([
        "--resync",
        "1h",
        "--no-bootstrap-admin",
        "--listen",
        "127.0.0.1:0",
    ]);
    let r = Running::spawn(cmd, ws.tmp.path());
    wait_for(&r, 60, "ann's password", || {
        ws.secrets()
            .join("team/ann-password.yaml")
            .exists()
            .then_some(())
    });
    // While it runs, the WAL and shared-memory files exist too.
    check_modes(&ws, true);
    assert_eq!(r.terminate().code(), Some(0));
}

#[test]
fn file_modes_are_final_at_creation_under_umask_000() {
    daemon_under_umask("000");
}

#[test]
fn file_modes_are_final_at_creation_under_umask_022() {
    daemon_under_umask("022");
}

#[test]
fn file_modes_looser_existing_store_and_secrets_dirs_are_tightened() {
    let ws = Workspace::new();
    ws.write("a.yaml", USER);
    let state = ws.store_path().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(ws.secrets().join("team")).unwrap();
    std::fs::write(ws.store_path(), b"").unwrap();
    for (p, m) in [
        (&state, 0o755),
        (&ws.store_path(), 0o644),
        (&ws.secrets(), 0o777),
        (&ws.secrets().join("team"), 0o755),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let o = under_umask("000")
        .arg("apply")
        .args(ws.dir_args())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", support::stderr(&o));
    check_modes(&ws, false);
    assert!(
        support::stderr(&o).contains("tightened permissions"),
        "{}",
        support::stderr(&o)
    );
}
