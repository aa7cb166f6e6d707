//! Issue 13 through the real binary: two `stagegate run --dir` processes sharing one
//! PostgreSQL store (a throw-away server the test harness starts). Only one reconciles;
//! a login on one is accepted by the other; a revocation in the manifests ends the
//! session on both; killing the reconciler hands over to the other process, and leaves
//! no usable key that was never delivered.

use crate::api::client::ApiClient;
use crate::daemon::harness::{copy_examples, wait_for, Running, Workspace};
use crate::firstrun::{api_base, secret_value};
use stagegate::secrets::{authenticate, ServerKey};
use stagegate::store::{AnyStore, KeyState, Store};
use std::path::Path;
use std::time::{Duration, Instant};

const NS: &str = "ml-platform";

/// `stagegate run --dir` on `ws` against the store at `url` (passed in STAGEGATE_STORE,
/// as the chart passes it), with a key file both processes share.
fn start(ws: &Workspace, url: &str, name: &str) -> Running {
    let logs = ws.tmp.path().join(name);
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = crate::support::stagegate();
    cmd.env("RUST_LOG", "info")
        .env("STAGEGATE_STORE", url)
        .args(["run", "--dir"])
        .arg(ws.manifests())
        .arg("--secrets-dir")
        .arg(ws.secrets())
        .arg("--server-key-file")
        .arg(key_file(ws))
        .args(["--resync", "1h", "--listen", "127.0.0.1:0"])
        .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"]);
    Running::spawn(cmd, &logs)
}

/// The server key `stagegate apply` created beside the workspace's SQLite store; the
/// processes on PostgreSQL use the same file.
fn key_file(ws: &Workspace) -> std::path::PathBuf {
    ws.store_path().with_file_name("server.key")
}

/// Which role the process announced: true = it reconciles.
fn leads(r: &Running) -> bool {
    wait_for(r, 90, "the reconciler: line", || {
        r.stdout()
            .lines()
            .find_map(|l| l.trim().strip_prefix("reconciler:"))
            .map(|s| s.trim().starts_with("this process"))
    })
}

/// A client once `/readyz` answers 200.
fn ready(r: &Running) -> ApiClient {
    let c = ApiClient::new(&api_base(r));
    wait_for(r, 90, "/readyz 200", || {
        (c.get("/readyz", None).status == 200).then_some(())
    });
    c
}

/// Polls until `check` holds, or panics after a generous deadline; returns how long it took.
fn until(r: &Running, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    wait_for(r, 60, what, || check().then_some(()));
    t.elapsed()
}

fn file(secrets: &Path, name: &str) -> std::path::PathBuf {
    secrets.join(NS).join(format!("{name}.yaml"))
}

#[test]
fn two_daemons_share_one_postgres_store() {
    let url = stagegate::store::pg::test_server::database();
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let a = start(&ws, &url, "a");
    assert!(leads(&a), "the first process reconciles:\n{}", a.log());
    let ca = ready(&a);
    let b = start(&ws, &url, "b");
    assert!(
        !leads(&b),
        "the second process only serves the API:\n{}",
        b.log()
    );
    let cb = ready(&b);

    // A login on one replica is accepted by the other.
    let password = secret_value(&a, &file(&ws.secrets(), "ada-password"), "password");
    let session = ca.session("ada", &password);
    let took = until(&b, "b to accept a's session", || {
        cb.whoami(&session).status == 200
    });
    eprintln!("session from a accepted by b after {took:?}");
    let token = secret_value(&a, &file(&ws.secrets(), "fraud-ci-deployer-token"), "token");
    assert_eq!(cb.whoami(&token).status, 200, "b accepts a token a issued");

    // A revocation in the manifests ends the session and the owner's use on both replicas.
    let users = ws.read("users.yaml");
    let revoked = users.replacen(
        "  displayName: Ada Lovelace\n",
        "  displayName: Ada Lovelace\n  state: Revoked\n",
        1,
    );
    assert_ne!(users, revoked);
    let t = Instant::now();
    ws.write("users.yaml", &revoked);
    until(&a, "a to end ada's session", || {
        ca.whoami(&session).status == 401
    });
    until(&b, "b to end ada's session", || {
        cb.whoami(&session).status == 401
    });
    eprintln!(
        "revocation ended the session on both replicas {:?} after the edit",
        t.elapsed()
    );
    assert_eq!(ca.login("ada", &password).status, 401);
    assert_eq!(cb.login("ada", &password).status, 401);

    // The reconciler dies in the middle of issuing a token; the other process takes over.
    ws.write(
        "late-token.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: late-bot, namespace: ml-platform}\nspec: {role: Deployer, scope: {customer: acme, project: fraud}, owner: dora, validity: 30d}\n",
    );
    // Killed as soon as it has seen the new file: typically while it plans or applies it.
    wait_for(&a, 60, "a to see the new token file", || {
        a.log().contains("late-token.yaml").then_some(())
    });
    a.kill();
    let store = AnyStore::open(Path::new(&url)).unwrap();
    let key = ServerKey::load_or_create(&key_file(&ws)).unwrap();
    // Whatever a left behind: a pending key is never accepted, and a usable key of the new
    // token has its Secret delivered.
    let now = jiff::Timestamp::now();
    for k in store.load_state().unwrap().token_keys.values() {
        if k.state == KeyState::Pending {
            assert!(!k.usable_at(now), "a pending key is never accepted");
        }
        if k.token_name == "late-bot" && k.usable_at(now) {
            assert!(
                file(&ws.secrets(), "late-bot-token").exists(),
                "{}",
                k.key_id
            );
        }
    }
    let took = until(&b, "b to take over", || {
        b.stdout().contains("reconciler: this process")
    });
    eprintln!("b took over {took:?} after a was killed");
    let late = secret_value(&b, &file(&ws.secrets(), "late-bot-token"), "token");
    until(&b, "b to accept the token it issued", || {
        cb.whoami(&late).status == 200
    });
    assert!(authenticate(&store, &key, &late, jiff::Timestamp::now()).is_ok());
    b.terminate();
}

#[test]
fn store_copy_moves_sqlite_into_postgres_and_credentials_keep_working() {
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let applied = ws.apply();
    assert!(
        applied.status.code().is_some_and(|c| c <= 1),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let password = std::fs::read_to_string(file(&ws.secrets(), "ada-password")).unwrap();
    let (_, _, data) = stagegate::secrets::parse_secret_manifest(&password).unwrap();
    let password = String::from_utf8(data["password"].clone()).unwrap();
    let token = std::fs::read_to_string(file(&ws.secrets(), "fraud-ci-deployer-token")).unwrap();
    let (_, _, data) = stagegate::secrets::parse_secret_manifest(&token).unwrap();
    let token = String::from_utf8(data["token"].clone()).unwrap();
    let sqlite = AnyStore::open(&ws.store_path()).unwrap();
    let before = (sqlite.load_state().unwrap(), sqlite.audit(0).unwrap());
    drop(sqlite);

    let url = stagegate::store::pg::test_server::database();
    let copy = || {
        crate::support::stagegate()
            .args(["store", "copy", "--from"])
            .arg(ws.store_path())
            .args(["--to", &url])
            .output()
            .unwrap()
    };
    let o = copy();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pg = AnyStore::open(Path::new(&url)).unwrap();
    let after = (pg.load_state().unwrap(), pg.audit(0).unwrap());
    assert_eq!(after.0.users, before.0.users);
    assert_eq!(after.0.bindings, before.0.bindings);
    assert_eq!(after.0.token_keys, before.0.token_keys);
    assert_eq!(after.0.statuses, before.0.statuses);
    assert_eq!(after.0.requests, before.0.requests);
    assert_eq!(after.1, before.1, "the audit log, in order, ids kept");
    // A second copy into the now non-empty database is refused, naming the reason.
    let again = copy();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A daemon on the copy: the password and the token set before the copy both work.
    let r = start(&ws, &url, "after-copy");
    let c = ready(&r);
    c.session("ada", &password);
    assert_eq!(c.whoami(&token).status, 200);
    r.terminate();
}
