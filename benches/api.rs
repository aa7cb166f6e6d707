//! API benchmark at the 10,000-user scale: decisions per second on the
//! in-memory index (one thread), token verifications per second, and
//! `/v1/authorize` requests per second over loopback with N connections.
//!
//! `cargo bench --bench api` (release). Environment: `BENCH_SECS` per phase
//! (default 3), `BENCH_CONNECTIONS` (default 32).

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use stagegate::api::{serve, ApiConfig, ApiState, Index};
use stagegate::plan::Question;
use stagegate::policy::{Action, Grant, Principal, Role, Scope, Stage};
use stagegate::secrets::{generate_key, hash_password, PasswordParams, SecretValue, ServerKey};
use stagegate::store::{
    BindingRow, KeyState, ModelRow, SqliteStore, Store, StoreOp, StoreState, TokenKeyRow, UserRow,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn bench_http(state: &StoreState, key: &ServerKey, tokens: &[String], secs: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    SqliteStore::open(&path)
        .expect("store")
        .commit(&to_ops(state))
        .expect("commit");
    let start = Instant::now();
    let config = ApiConfig {
        password_params: PasswordParams::insecure_fast_for_tests(),
        rate_limit: None,
        poll_interval: None,
        ..ApiConfig::default()
    };
    let api = ApiState::open(config, &path, key.clone()).expect("api state");
    println!(
        "refresh from SQLite (read + build): {:>9.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    api.set_ready();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(serve(listener, api, async {
        stopped.await.ok();
    }));

    let connections = env_or("BENCH_CONNECTIONS", 32) as usize;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies = client_rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let url = format!("http://{addr}/v1/authorize");
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (client, url, done, failed) =
                (client.clone(), url.clone(), done.clone(), failed.clone());
            let tokens: Vec<String> = tokens.iter().skip(c).step_by(connections).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(c as u64);
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let token = &tokens[rng.random_range(0..tokens.len())];
                    let body = json!({"action": "models:view", "model": format!("model-{}", rng.random_range(0..MODELS))});
                    let t = Instant::now();
                    let ok = client
                        .post(&url)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    lat.push(t.elapsed());
                    let counter = if ok { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("load task"));
        }
        all
    });
    let n = done.load(Ordering::Relaxed);
    let mut lat = latencies;
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    println!(
        "POST /v1/authorize over loopback:   {:>12}  ({connections} connections, {n} ok, {} failed, p50 {:?}, p99 {:?})",
        rate(n, Duration::from_secs(secs)),
        failed.load(Ordering::Relaxed),
        pct(0.5).copied().unwrap_or_default(),
        pct(0.99).copied().unwrap_or_default(),
    );
    stop.send(()).ok();
    server_rt.block_on(server).ok();
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
