//! Issue 13 through the real binary: two `stagegate run --dir` processes sharing one
//! PostgreSQL store (a throw-away server the test harness starts). Only one reconciles;
//! a login on one is accepted by the other; a revocation in the manifests ends the
//! session on both; killing the reconciler hands over to the other process, and leaves
//! no usable key that was never delivered.

use crate::api::client::ApiClient;
use crate::daemon::harness::{copy_examples, wait_for, Running, Workspace};
use crate::firstrun::{api_base, secret_value};
use stagegate::secrets::{authenticate, ServerKey};
use stagegate::store::{AnyStore, KeyState, Store, TokenKeyRow};
use std::path::Path;
use std::time::{Duration, Instant};

const NS: &str = "ml-platform";

/// `stagegate run --dir` on `ws` against the store at `url` (passed in STAGEGATE_STORE,
/// as the chart passes it), with a key file both processes share.
fn start(ws: &Workspace, url: &str, name: &str) -> Running {
    start_with(ws, url, name, &[])
}

/// [`start`] with more flags.
fn start_with(ws: &Workspace, url: &str, name: &str, extra: &[&str]) -> Running {
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
        .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"])
        .args(extra);
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

    // First and last login times live in the store, whichever replica the login reached.
    let store = AnyStore::open(Path::new(&url)).unwrap();
    let first = store.user("ada").unwrap().unwrap();
    assert!(first.first_login.is_some());
    assert_eq!(first.last_login, first.first_login);
    let on_b = cb.session("ada", &password);
    until(&a, "a to accept b's session", || {
        ca.whoami(&on_b).status == 200
    });
    let again = store.user("ada").unwrap().unwrap();
    assert_eq!(again.first_login, first.first_login);
    assert!(again.last_login > first.last_login, "b's login recorded");

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

#[test]
fn failed_logins_are_counted_once_across_replicas() {
    let url = stagegate::store::pg::test_server::database();
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    // Three free failures, then a lock far longer than the test: no timing involved.
    let flags = ["--login-free-failures", "3", "--login-lockout", "10m"];
    let a = start_with(&ws, &url, "a", &flags);
    assert!(leads(&a), "{}", a.log());
    let ca = ready(&a);
    let b = start_with(&ws, &url, "b", &flags);
    assert!(!leads(&b), "{}", b.log());
    let cb = ready(&b);
    let password = secret_value(&a, &file(&ws.secrets(), "ada-password"), "password");

    // Two failures, one on each replica, then a success: per-process counters would have
    // held one failure each; shared ones held two, and the success resets them for both.
    assert_eq!(ca.login("ada", "wrong-1").status, 401);
    assert_eq!(cb.login("ada", "wrong-2").status, 401);
    ca.session("ada", &password);
    // Alternating again: the third failure (not the sixth) starts the lock, as on one process.
    assert_eq!(cb.login("ada", "wrong-3").status, 401);
    assert_eq!(ca.login("ada", "wrong-4").status, 401);
    assert_eq!(cb.login("ada", "wrong-5").status, 401);
    for (name, c) in [("a", &ca), ("b", &cb)] {
        let r = c.login("ada", &password);
        assert_eq!(r.status, 429, "{name} sees the lock: {}", r.text);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=600).contains(&wait), "{name}: retry-after {wait}");
    }
    // Another account is not affected, on either replica.
    let alan = secret_value(&a, &file(&ws.secrets(), "alan-password"), "password");
    cb.session("alan", &alan);
    // The store holds the counters under keyed hashes: no name, address or password in it.
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    for row in pg.query("SELECT key FROM login_failures", &[]).unwrap() {
        let key: String = row.get(0);
        assert!(
            key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
    }
    b.terminate();
    a.terminate();
}

/// Token keys of `name` in the store, by state.
fn keys_of(store: &AnyStore, prefix: &str) -> Vec<TokenKeyRow> {
    let state = store.load_state().unwrap();
    state
        .token_keys
        .into_values()
        .filter(|k| k.token_name.starts_with(prefix))
        .collect()
}

/// The token a Secret file holds, when the file is there.
fn delivered_token(secrets: &Path, secret_name: &str) -> Option<String> {
    let text = std::fs::read_to_string(file(secrets, secret_name)).ok()?;
    let (_, _, data) = stagegate::secrets::parse_secret_manifest(&text).unwrap();
    Some(String::from_utf8(data["token"].clone()).unwrap())
}

/// The key id a token carries (`sgt_` + 12 characters).
fn key_id_of(token: &str) -> &str {
    &token[4..16]
}

#[test]
fn killing_the_reconciler_mid_apply_leaves_no_usable_undelivered_key() {
    const TOKENS: usize = 1500;
    const PREFIX: &str = "bulk-";
    let url = stagegate::store::pg::test_server::database();
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let a = start(&ws, &url, "a");
    assert!(leads(&a), "{}", a.log());
    ready(&a);
    let b = start(&ws, &url, "b");
    assert!(!leads(&b), "{}", b.log());
    let cb = ready(&b);
    let store = AnyStore::open(Path::new(&url)).unwrap();
    let key = ServerKey::load_or_create(&key_file(&ws)).unwrap();

    // The test queues for the reconcile lock itself (a blocking pg_advisory_lock): when the
    // reconciler dies, the server hands the lock to this waiter, not to b (which only tries
    // it now and then), so the store stays exactly as the killed process left it until the
    // checks below are done; then the test lets go and b takes over.
    let (got_lock, have_lock) = std::sync::mpsc::channel();
    let (release, let_go) = std::sync::mpsc::channel::<()>();
    let waiter_url = url.clone();
    let waiter = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&waiter_url, postgres::NoTls).unwrap();
        c.execute(
            "SELECT pg_advisory_lock($1)",
            &[&stagegate::store::pg::RECONCILE_LOCK],
        )
        .unwrap();
        got_lock.send(()).unwrap();
        let _ = let_go.recv();
        // Closing the connection releases the lock.
    });

    // Many tokens, so delivering their Secrets (between the transaction that records the keys
    // pending and the one that marks them issued) takes a while.
    let mut manifest = String::new();
    for i in 0..TOKENS {
        manifest.push_str(&format!(
            "---\napiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {PREFIX}{i}, namespace: {NS}}}\nspec: {{role: Deployer, scope: {{customer: acme, project: fraud}}, owner: dora, validity: 30d}}\n"
        ));
    }
    ws.write("bulk-tokens.yaml", &manifest);
    // Killed (SIGKILL) once the store shows the apply in progress (keys recorded pending) and
    // its first Secrets are written: typically with some keys delivered and others not.
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let ns_dir = ws.secrets().join(NS);
    let bulk_files = || {
        std::fs::read_dir(&ns_dir).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
                .count()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let pending_seen = loop {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM token_keys WHERE state = 'pending'",
                &[],
            )
            .unwrap()
            .get(0);
        if n > 0 && bulk_files() > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no pending keys ever showed; a's log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let a_log = a.log.clone();
    a.kill();
    have_lock
        .recv_timeout(Duration::from_secs(60))
        .expect("the reconcile lock is released when its holder dies");
    assert!(
        !b.stdout().contains("reconciler: this process"),
        "b waits while the test holds the lock"
    );

    // The store as the killed process left it.
    let now = jiff::Timestamp::now();
    let keys = keys_of(&store, PREFIX);
    let pending = keys.iter().filter(|k| k.state == KeyState::Pending).count();
    let delivered = (0..TOKENS)
        .filter(|i| file(&ws.secrets(), &format!("{PREFIX}{i}-token")).exists())
        .count();
    let case = if pending > 0 {
        "between the two transactions (keys pending)"
    } else {
        "after the second transaction (every key issued)"
    };
    eprintln!(
        "killed {case}: {pending_seen} pending keys seen, then {pending} pending and {} issued of {} keys, {delivered} of {TOKENS} Secrets delivered; a's last line: {}",
        keys.len() - pending,
        keys.len(),
        std::fs::read_to_string(&a_log)
            .unwrap_or_default()
            .lines()
            .last()
            .unwrap_or_default()
    );
    let mut probed = 0;
    for k in &keys {
        let token = delivered_token(&ws.secrets(), &k.secret_name);
        let held = token.as_deref().filter(|t| key_id_of(t) == k.key_id);
        if k.state == KeyState::Issued && k.revoked_at.is_none() {
            // Every usable key is held by its Secret, and works.
            let t = held.unwrap_or_else(|| panic!("issued key {} was never delivered", k.key_id));
            assert!(authenticate(&store, &key, t, now).is_ok(), "{}", k.key_id);
        } else if k.state == KeyState::Pending {
            assert!(!k.usable_at(now), "a pending key is never accepted");
            if let Some(t) = held {
                // Delivered but not marked issued: refused by the store and by the API.
                assert!(authenticate(&store, &key, t, now).is_err(), "{}", k.key_id);
                if probed < 20 {
                    assert_eq!(cb.whoami(t).status, 401, "{}", k.key_id);
                    probed += 1;
                }
            }
        }
    }
    // Every delivered Secret's key is known to the store (pending or issued).
    for i in 0..TOKENS {
        if let Some(t) = delivered_token(&ws.secrets(), &format!("{PREFIX}{i}-token")) {
            assert!(
                keys.iter().any(|k| k.key_id == key_id_of(&t)),
                "{PREFIX}{i}: delivered key unknown to the store"
            );
        }
    }

    // b takes over: it completes the delivered pending keys and re-issues the rest.
    release.send(()).unwrap();
    waiter.join().unwrap();
    let took = until(&b, "b to take over", || {
        b.stdout().contains("reconciler: this process")
    });
    eprintln!("b took over {took:?} after the test let go of the lock");
    until(&b, "b to issue every bulk token", || {
        let keys = keys_of(&store, PREFIX);
        keys.len() == TOKENS && keys.iter().all(|k| k.state == KeyState::Issued)
    });
    let now = jiff::Timestamp::now();
    for k in keys_of(&store, PREFIX) {
        let t = delivered_token(&ws.secrets(), &k.secret_name)
            .unwrap_or_else(|| panic!("{}: issued but not delivered", k.token_name));
        assert_eq!(
            key_id_of(&t),
            k.key_id,
            "{}: the Secret holds the issued key",
            k.token_name
        );
        assert!(
            authenticate(&store, &key, &t, now).is_ok(),
            "{}",
            k.token_name
        );
    }
    assert_eq!(
        store
            .load_state()
            .unwrap()
            .token_keys
            .values()
            .filter(|k| k.state == KeyState::Pending)
            .count(),
        0
    );
    // The survivor answers: a bulk token b may not have issued itself, and /readyz.
    let first = delivered_token(&ws.secrets(), &format!("{PREFIX}0-token")).unwrap();
    until(&b, "b to accept a bulk token", || {
        cb.whoami(&first).status == 200
    });
    assert_eq!(cb.get("/readyz", None).status, 200);
    b.terminate();
}

#[test]
fn a_login_fails_closed_while_the_store_is_unreachable() {
    let url = stagegate::store::pg::test_server::database();
    let ws = Workspace::new();
    copy_examples(&ws.manifests());
    let a = start(&ws, &url, "a");
    let ca = ready(&a);
    let password = secret_value(&a, &file(&ws.secrets(), "ada-password"), "password");
    // The database goes away for this process: no new connections, the open ones ended.
    let db = url.rsplit('/').next().unwrap().to_string();
    let admin = url.replace(&format!("/{db}"), "/postgres");
    let mut pg = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    pg.batch_execute(&format!(
        "ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
    ))
    .unwrap();
    // Neither the right password nor a wrong one is checked uncounted: 503 for both.
    for guess in [password.as_str(), "wrong"] {
        let r = ca.login("ada", guess);
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.error(), "unavailable");
    }
    assert!(
        a.log()
            .contains("login refused: the throttle's counters cannot be read"),
        "{}",
        a.log()
    );
    pg.batch_execute(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"))
        .unwrap();
}
