//! API benchmark at the 10,000-user scale: decisions per second on the
//! in-memory index (one thread), token verifications per second, and
//! `/v1/authorize` requests per second over loopback with N keep-alive
//! connections, with the product's default configuration, side by side with a
//! bare axum handler answering a JSON body of the same size (same run, same
//! load generator, same requests).
//!
//! `cargo bench --bench api` (release). Environment: `BENCH_SECS` per phase
//! (default 3), `BENCH_CONNECTIONS` (default 32), `BENCH_SLICES` (default 6:
//! the HTTP phase alternates between the two servers that many times).

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use stagegate::api::{serve, ApiConfig, ApiState, Index};
use stagegate::cli::logging::{background, log_dispatch};
use stagegate::plan::Question;
use stagegate::policy::{Action, Grant, Principal, Role, Scope, Stage};
use stagegate::secrets::{generate_key, hash_password, PasswordParams, SecretValue, ServerKey};
use stagegate::store::{
    BindingRow, KeyState, ModelRow, SqliteStore, Store, StoreOp, StoreState, TokenKeyRow, UserRow,
};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The allocator of the `stagegate` binary (src/main.rs), for every server in this process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: usize = 10_000;
const BINDINGS: usize = 50_000;
const MODELS: usize = 2_000;
const TOKENS: usize = 1_000;
const CUSTOMERS: usize = 50;
const PROJECTS: usize = 4;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scope(rng: &mut StdRng) -> Scope {
    let c = format!("c{}", rng.random_range(0..CUSTOMERS));
    if rng.random_bool(0.5) {
        Scope::customer(&c)
    } else {
        Scope::project(&c, &format!("p{}", rng.random_range(0..PROJECTS)))
    }
}

/// A synthetic organization; returns the state and the token strings.
fn organization(key: &ServerKey) -> (StoreState, Vec<String>) {
    let mut rng = StdRng::seed_from_u64(7);
    let hash = hash_password(
        PasswordParams::insecure_fast_for_tests(),
        &SecretValue::from_string("pw".into()),
    )
    .expect("hash");
    let mut state = StoreState::default();
    for i in 0..USERS {
        let mut u = UserRow::new(&format!("u{i}"), None);
        u.password_hash = Some(hash.clone());
        state.users.insert(u.username.clone(), u);
    }
    for i in 0..BINDINGS {
        let role = Role::ALL[rng.random_range(0..Role::ALL.len())];
        let scope = if role == Role::Admin && rng.random_bool(0.01) {
            Scope::global()
        } else {
            scope(&mut rng)
        };
        state.bindings.push(BindingRow {
            username: format!("u{}", i % USERS),
            role,
            scope,
            owner: None,
        });
    }
    for i in 0..MODELS {
        let stage = [Stage::Dev, Stage::Staging, Stage::Production][rng.random_range(0..3)];
        let m = ModelRow {
            name: format!("model-{i}"),
            scope: Scope::project(
                &format!("c{}", rng.random_range(0..CUSTOMERS)),
                &format!("p{}", rng.random_range(0..PROJECTS)),
            ),
            owner: Some(format!("u{}", rng.random_range(0..USERS))),
            stage,
        };
        state.models.insert((m.scope.clone(), m.name.clone()), m);
    }
    let mut tokens = Vec::new();
    for i in 0..TOKENS {
        let nk = generate_key(key);
        let role = Role::ALL[rng.random_range(0..Role::ALL.len())];
        state.token_keys.insert(
            nk.key_id.clone(),
            TokenKeyRow {
                key_id: nk.key_id.clone(),
                token_name: format!("t{i}"),
                namespace: "bench".into(),
                secret_hmac: nk.secret_hmac.clone(),
                role,
                scope: scope(&mut rng),
                owner_user: None,
                issued_at: Timestamp::now(),
                expires_at: None,
                revoked_at: None,
                revoked_reason: None,
                rotation: 0,
                state: KeyState::Issued,
                secret_name: format!("t{i}-token"),
                owner: None,
            },
        );
        tokens.push(nk.token.expose_str().expect("utf-8").to_string());
    }
    (state, tokens)
}

fn question(rng: &mut StdRng) -> Question {
    let model = Some(format!("model-{}", rng.random_range(0..MODELS)));
    match rng.random_range(0..10) {
        0 => Question {
            action: Some(Action::UsersManage),
            scope: Some(Scope::customer(&format!(
                "c{}",
                rng.random_range(0..CUSTOMERS)
            ))),
            ..Question::default()
        },
        1..=3 => Question {
            action: Some(Action::ModelsTransition),
            model,
            to: Some([Stage::Dev, Stage::Staging, Stage::Production][rng.random_range(0..3)]),
            ..Question::default()
        },
        _ => Question {
            action: Some(Action::ModelsView),
            model,
            ..Question::default()
        },
    }
}

fn rate(n: u64, d: Duration) -> String {
    let per_sec = n as f64 / d.as_secs_f64();
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else {
        format!("{:.0} k/s", per_sec / 1e3)
    }
}

fn bench_index(index: &Index, state: &StoreState, key: &ServerKey, tokens: &[String], secs: u64) {
    let mut rng = StdRng::seed_from_u64(11);
    let principals: Vec<Principal> = (0..1000)
        .map(|_| {
            let name = format!("u{}", rng.random_range(0..USERS));
            let grants: Vec<Grant> = index.user(&name).expect("user").grants.clone();
            Principal::user(&name, grants)
        })
        .collect();
    let questions: Vec<Question> = (0..4096).map(|_| question(&mut rng)).collect();
    let budget = Duration::from_secs(secs);
    let (mut n, mut allowed, start) = (0u64, 0u64, Instant::now());
    while start.elapsed() < budget {
        for i in 0..1024 {
            let p = &principals[(n as usize + i) % principals.len()];
            let q = &questions[(n as usize * 7 + i) % questions.len()];
            if index.authorize(p, q).map(|d| d.allowed).unwrap_or(false) {
                allowed += 1;
            }
        }
        n += 1024;
    }
    let d = start.elapsed();
    println!(
        "decisions (1 thread, index):        {:>12}  ({n} decisions, {:.1}% allowed, {:.2} µs each)",
        rate(n, d),
        100.0 * allowed as f64 / n as f64,
        d.as_secs_f64() * 1e6 / n as f64
    );

    let (mut n, start) = (0u64, Instant::now());
    let now = Timestamp::now();
    while start.elapsed() < budget {
        for t in tokens.iter().take(1024) {
            assert!(index.verify_token(key, t, now).is_ok());
        }
        n += tokens.len().min(1024) as u64;
    }
    let d = start.elapsed();
    println!(
        "token verifications (1 thread):     {:>12}  ({:.2} µs each: checksum, map lookup, HMAC-SHA-256)",
        rate(n, d),
        d.as_secs_f64() * 1e6 / n as f64
    );

    let start = Instant::now();
    let rebuilt = Index::build(state);
    println!(
        "index rebuild at this scale:        {:>9.1} ms ({} users, {} token keys, {} models)",
        start.elapsed().as_secs_f64() * 1e3,
        rebuilt.counts().0,
        rebuilt.counts().1,
        rebuilt.counts().2
    );
}

fn to_ops(state: &StoreState) -> Vec<StoreOp> {
    let mut ops: Vec<StoreOp> = state
        .users
        .values()
        .map(|u| StoreOp::UpsertUser(Box::new(u.clone())))
        .collect();
    ops.extend(state.bindings.iter().cloned().map(StoreOp::UpsertBinding));
    ops.extend(state.models.values().cloned().map(StoreOp::UpsertModel));
    ops.extend(
        state
            .token_keys
            .values()
            .map(|t| StoreOp::UpsertTokenKey(Box::new(t.clone()))),
    );
    ops
}

/// What one load run (or several, added) measured.
#[derive(Default)]
struct Load {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds another run's counts, time and latencies (sort them again before `percentile`).
    fn add(&mut self, other: Load) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
    }

    /// The `p` quantile of the latencies (sorted).
    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * p) as usize)
            .min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

/// Reads one HTTP/1.1 response (head, then `Content-Length` bytes) into `buf`; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or_default();
            let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                if stream.read_buf(buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok(status);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The load generator, identical for every target: `requests.len()` keep-alive connections,
/// each sending its own pre-built requests in order, one at a time, for `secs`.
fn drive(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    requests: &Arc<Vec<Vec<Vec<u8>>>>,
    secs: f64,
) -> Load {
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..requests.len())
            .map(|c| {
                let requests = requests.clone();
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    let (mut ok, mut failed, mut lat) = (0u64, 0u64, Vec::new());
                    let mut buf = Vec::with_capacity(4096);
                    for req in requests[c].iter().cycle() {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let t = Instant::now();
                        stream.write_all(req).await.expect("write");
                        let status = read_response(&mut stream, &mut buf).await.expect("read");
                        lat.push(t.elapsed());
                        if status == 200 {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (ok, failed, lat)
                })
            })
            .collect();
        let mut load = Load {
            ok: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            latencies: Vec::new(),
        };
        for t in tasks {
            let (ok, failed, lat) = t.await.expect("load task");
            load.ok += ok;
            load.failed += failed;
            load.latencies.extend(lat);
        }
        load.elapsed = start.elapsed();
        load.latencies.sort_unstable();
        load
    })
}

/// The same requests for every target: `POST /v1/authorize` with a token and a `models:view` body.
fn requests(tokens: &[String], connections: usize) -> Arc<Vec<Vec<Vec<u8>>>> {
    Arc::new(
        (0..connections)
            .map(|c| {
                let mut rng = StdRng::seed_from_u64(c as u64);
                (0..2048)
                    .map(|_| {
                        let token = &tokens[rng.random_range(0..tokens.len())];
                        let body = json!({"action": "models:view", "model": format!("model-{}", rng.random_range(0..MODELS))})
                            .to_string();
                        format!(
                            "POST /v1/authorize HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\
                             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    })
                    .collect()
            })
            .collect(),
    )
}

/// A server on its own 2-thread runtime, its threads named `name` (for `perf report --comm`),
/// logging through `log`.
fn spawn_server<F>(
    name: &str,
    log: tracing::Dispatch,
    serve: impl FnOnce(tokio::net::TcpListener) -> F,
) -> (tokio::runtime::Runtime, SocketAddr)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // For the thread's life: the runtime's threads are never reused.
    builder.on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&log)));
    let rt = builder
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(serve(listener));
    (rt, addr)
}

/// Lines written through [`LineCounter`].
static LINES: AtomicU64 = AtomicU64::new(0);

/// An output that counts the lines written through it: the bench checks the access log is written.
struct LineCounter(std::fs::File);

impl Write for LineCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
        LINES.fetch_add(lines as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

fn bench_http(state: &StoreState, key: &ServerKey, tokens: &[String], secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    SqliteStore::open(&path)
        .expect("store")
        .commit(&to_ops(state))
        .expect("commit");
    let start = Instant::now();
    // The product's defaults: the address rate limit on, no limit per authenticated caller.
    let config = ApiConfig::default();
    let api = ApiState::open(config, &path, key.clone()).expect("api state");
    println!(
        "refresh from SQLite (read + build): {:>9.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    api.set_ready();
    // The same server logging as `stagegate run` does by default (text lines at `info`: one
    // access line per request, the product's subscriber and background writer), to /dev/null:
    // the formatting and the writes, not a reader's pace. `BENCH_LOG_SYNC=1`: each line written
    // by the request's thread under a mutex instead (the writer before issue 19 step 3).
    let null = LineCounter(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null"),
    );
    let (log, _log_guard) = if env_or("BENCH_LOG_SYNC", 0) == 1 {
        (
            log_dispatch(false, false, std::sync::Mutex::new(null)),
            None,
        )
    } else {
        let (writer, guard) = background(null);
        (log_dispatch(false, false, writer), Some(guard))
    };
    // The other servers log nowhere, through a dispatcher of their own: with the logging one
    // as the only dispatcher, tracing would take the interest of whichever thread first hit a
    // callsite (an unlogged one: never) for every thread, and the access line would never be
    // written (it was not, before step 3).
    let quiet = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let logged_api = api.clone();
    let (server_rt, addr) = spawn_server("stagegate", quiet.clone(), |listener| async move {
        serve(listener, api, async {
            stopped.await.ok();
        })
        .await
        .ok();
    });
    let (logged_stop, logged_stopped) = tokio::sync::oneshot::channel::<()>();
    let (logged_rt, logged_addr) = spawn_server("stagegate-log", log, |listener| async move {
        serve(listener, logged_api, async {
            logged_stopped.await.ok();
        })
        .await
        .ok();
    });

    let connections = env_or("BENCH_CONNECTIONS", 32) as usize;
    let requests = requests(tokens, connections);
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
        .expect("runtime");
    // The bare handler answers with a body as long as stagegate's answer to the first request.
    let sample = client_rt.block_on(async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&requests[0][0]).await.expect("write");
        let mut buf = Vec::new();
        read_response(&mut stream, &mut buf).await.expect("read");
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
        buf.split_off(end)
    });
    let skeleton = json!({"allowed": true, "code": "Allowed", "reason": ""}).to_string();
    let body = json!({"allowed": true, "code": "Allowed", "reason": "x".repeat(sample.len().saturating_sub(skeleton.len()))});
    let (bare_stop, bare_stopped) = tokio::sync::oneshot::channel::<()>();
    let (bare_rt, bare_addr) = spawn_server("bare-axum", quiet, |listener| async move {
        let app = axum::Router::new().route(
            "/v1/authorize",
            axum::routing::post(move |_body: axum::body::Bytes| {
                let body = body.clone();
                async move { axum::Json(body) }
            }),
        );
        // TCP_NODELAY as stagegate's server sets it: the same socket options on both.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            tcp.set_nodelay(true).ok();
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                bare_stopped.await.ok();
            })
            .await
            .ok();
    });

    // Warm both up, then measure each for the same time with the same load generator, in
    // alternating slices: a build starting on the shared machine then slows both alike.
    drive(&client_rt, bare_addr, &requests, 0.5);
    drive(&client_rt, addr, &requests, 0.5);
    drive(&client_rt, logged_addr, &requests, 0.5);
    let slices = env_or("BENCH_SLICES", 6).max(1);
    let slice = secs as f64 / slices as f64;
    let (mut bare, mut ours, mut logged) = (Load::default(), Load::default(), Load::default());
    for _ in 0..slices {
        bare.add(drive(&client_rt, bare_addr, &requests, slice));
        ours.add(drive(&client_rt, addr, &requests, slice));
        logged.add(drive(&client_rt, logged_addr, &requests, slice));
    }
    for load in [&mut bare, &mut ours, &mut logged] {
        load.latencies.sort_unstable();
    }
    println!(
        "bare axum handler, same JSON size:  {:>12}  ({connections} connections, {} ok, {} failed, {} body bytes, p50 {:?}, p99 {:?})",
        rate(bare.ok, bare.elapsed),
        bare.ok,
        bare.failed,
        sample.len(),
        bare.percentile(0.5),
        bare.percentile(0.99),
    );
    println!(
        "POST /v1/authorize, default config: {:>12}  ({connections} connections, {} ok, {} failed, p50 {:?}, p99 {:?})",
        rate(ours.ok, ours.elapsed),
        ours.ok,
        ours.failed,
        ours.percentile(0.5),
        ours.percentile(0.99),
    );
    println!(
        "stagegate / bare axum:              {:>9.0} %  (goal: at least 70 %)",
        100.0 * ours.per_sec() / bare.per_sec()
    );
    println!(
        "  the same, access log to /dev/null: {:>12}  ({connections} connections, {} ok, {} failed, p50 {:?}, p99 {:?}; {:.0} % of bare)",
        rate(logged.ok, logged.elapsed),
        logged.ok,
        logged.failed,
        logged.percentile(0.5),
        logged.percentile(0.99),
        100.0 * logged.per_sec() / bare.per_sec()
    );
    println!(
        "  access lines written:              {:>12}  (one per request of the logged server)",
        LINES.load(Ordering::Relaxed)
    );
    stop.send(()).ok();
    bare_stop.send(()).ok();
    logged_stop.send(()).ok();
    drop(server_rt);
    drop(bare_rt);
    drop(logged_rt);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run a short pass then too.
    let secs = env_or("BENCH_SECS", 3);
    let key = ServerKey::generate();
    let start = Instant::now();
    let (state, tokens) = organization(&key);
    let index = Index::build(&state);
    println!(
        "stagegate API benchmark: {USERS} users, {BINDINGS} bindings, {MODELS} models, {TOKENS} token keys \
         (built in {:.1} s); {} CPUs",
        start.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    bench_index(&index, &state, &key, &tokens, secs);
    bench_http(&state, &key, &tokens, secs);
}
