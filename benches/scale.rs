//! Scale benchmark (issue 3, item 9): an organization of 10,000 users, 50,000
//! bindings, 5,000 tokens and 2,000 models (created by 2,000 stage requests),
//! built in memory, planned and applied into a SQLite store on disk with
//! secrets delivered to a directory; compared with a raw SQLite bulk insert of
//! the same rows.
//!
//! `cargo bench --bench scale` (release). Scale down for a quick run:
//! `STAGEGATE_BENCH_USERS=500 STAGEGATE_BENCH_BINDINGS=2500 STAGEGATE_BENCH_TOKENS=250
//! STAGEGATE_BENCH_MODELS=100 cargo bench --bench scale`.
//! `STAGEGATE_BENCH_DIR` picks where the store and secrets go (default: a temp dir).
//! `STAGEGATE_BENCH_POSTGRES=1` also runs the first apply and the no-op reconcile against
//! PostgreSQL (a throw-away server from the distribution's binaries, as the tests start it),
//! commits the rows that apply left into an empty database (the store's writes alone), and
//! bulk-loads the very same rows (exported from the first database) with `COPY` into a third
//! (and, for comparison, in `COPY`'s binary format into a fourth).

use rusqlite::params;
use stagegate::apply::{apply, ApplyContext};
use stagegate::secrets::{
    generate_password, hash_password, DirSecretSink, PasswordParams, ServerKey,
};
use stagegate::snapshot::{Declared, Snapshot, Source};
use stagegate::sources::directory::plan_against;
use stagegate::store::{copy_ops, AnyStore, SqliteStore, Store};
use stagegate::validate::validate;
use std::time::{Duration, Instant};

#[path = "common/org.rs"]
mod org;

use org::{customer, Scale, NS};

fn declared<K: serde::de::DeserializeOwned>(v: serde_json::Value, line: usize) -> Declared<K> {
    Declared::new(
        serde_json::from_value(v).expect("generated object deserializes"),
        Source {
            file: Some("generated.yaml".into()),
            line: Some(line),
        },
    )
}

/// The shared organization (`benches/common/org.rs`) as in-memory declarations.
fn organization(s: &Scale) -> Snapshot {
    let mut snap = Snapshot::default();
    let [users, bindings, tokens, requests] = org::organization(s);
    let mut line = 1;
    let mut next = || {
        line += 1;
        line
    };
    snap.users = users.into_iter().map(|v| declared(v, next())).collect();
    snap.bindings = bindings.into_iter().map(|v| declared(v, next())).collect();
    snap.tokens = tokens.into_iter().map(|v| declared(v, next())).collect();
    snap.requests = requests.into_iter().map(|v| declared(v, next())).collect();
    snap
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// One reconcile's figures.
struct Round {
    plan: Duration,
    apply: Duration,
    changes: usize,
    not_ready: usize,
}

/// One reconcile: load state, plan (observing Secrets), apply.
fn reconcile(
    snap: &Snapshot,
    store: &mut AnyStore,
    sink: &DirSecretSink,
    key: &ServerKey,
    params: PasswordParams,
) -> Round {
    let now = jiff::Timestamp::now();
    let t = Instant::now();
    let state = store.load_state().expect("load state");
    let plan = plan_against(snap, &state, sink, key, Default::default(), now).expect("plan");
    let planned = t.elapsed();
    let changes = plan.data_changes().count();
    let t = Instant::now();
    let ctx = ApplyContext {
        now,
        server_key: key,
        password_params: params,
        public_url: None,
    };
    let outcomes = apply(&plan, store, sink, &ctx).expect("apply");
    let applied = t.elapsed();
    Round {
        plan: planned,
        apply: applied,
        changes,
        not_ready: outcomes.iter().filter(|o| !o.ready).count(),
    }
}

/// Every row `store` holds (sessions aside) committed into `to`, empty, in one commit: the
/// store's own writes alone, timed without the reads that gather the rows.
fn recommit(store: &AnyStore, to: &mut AnyStore) -> Duration {
    let ops = copy_ops(
        &store.load_state().expect("state"),
        store.audit(0).expect("audit"),
    );
    let t = Instant::now();
    to.commit(&ops).expect("commit rows");
    t.elapsed()
}

/// The same rows written with plain prepared INSERTs in one transaction (hashes precomputed).
fn raw_insert(path: &std::path::Path, s: &Scale) -> Duration {
    drop(SqliteStore::open(path).expect("schema"));
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    let t = Instant::now();
    let tx = conn.transaction().expect("tx");
    {
        let mut st = tx.prepare("INSERT INTO users (username, display_name, email, state, password_hash, password_source, password_id, owner_kind, owner_namespace, owner_name, owner_source) VALUES (?1, ?2, ?3, 'Active', ?4, 'generated', ?5, 'User', ?6, ?1, 'generated.yaml')").expect("prep");
        for i in 0..s.users {
            let u = format!("u{i:05}");
            st.execute(params![
                u,
                format!("User {i}"),
                format!("u{i}@example.com"),
                hash,
                format!("id{i}"),
                NS
            ])
            .expect("user");
        }
        let mut st = tx.prepare("INSERT INTO bindings (username, role, scope_customer, scope_project, owner_kind, owner_namespace, owner_name, owner_source) VALUES (?1, 'Developer', ?2, 'p1', 'AccessBinding', ?3, ?4, 'generated.yaml')").expect("prep");
        for j in 0..s.bindings {
            let u = j % s.users;
            st.execute(params![
                format!("u{u:05}"),
                customer(u),
                NS,
                format!("b{j:06}")
            ])
            .expect("binding");
        }
        let mut st = tx.prepare("INSERT INTO token_keys (key_id, token_name, namespace, secret_hmac, role, scope_customer, scope_project, owner_user, issued_at, expires_at, rotation, state, secret_name, owner_kind, owner_namespace, owner_name, owner_source) VALUES (?1, ?2, ?3, ?4, 'Deployer', ?5, 'p2', ?6, '2026-11-01T00:00:00Z', '2027-01-30T00:00:00Z', 0, 'issued', ?7, 'ApiToken', ?3, ?2, 'generated.yaml')").expect("prep");
        for k in 0..s.tokens {
            let u = (k * 2) % s.users;
            st.execute(params![
                format!("key{k:08}"),
                format!("t{k:05}"),
                NS,
                "0".repeat(64),
                customer(u),
                format!("u{u:05}"),
                format!("t{k:05}-token")
            ])
            .expect("token");
        }
        let mut st = tx.prepare("INSERT INTO models (name, scope_customer, scope_project, owner, stage) VALUES (?1, ?2, 'p1', ?3, 'Dev')").expect("prep");
        for m in 0..s.models {
            let u = m % s.users;
            st.execute(params![format!("m{m:05}"), customer(u), format!("u{u:05}")])
                .expect("model");
        }
    }
    tx.commit().expect("commit");
    t.elapsed()
}

fn main() {
    // `STAGEGATE_BENCH_LOG=stagegate::store=debug` shows each set write of the PostgreSQL store.
    if let Ok(filter) = std::env::var("STAGEGATE_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let s = Scale::from_env();
    // `STAGEGATE_BENCH_ARGON2_MEMORY_KIB` / `_ITERATIONS` make hashing cheap for quick runs.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let params = PasswordParams {
        m_cost: env("STAGEGATE_BENCH_ARGON2_MEMORY_KIB")
            .unwrap_or(PasswordParams::default().m_cost),
        t_cost: env("STAGEGATE_BENCH_ARGON2_ITERATIONS")
            .unwrap_or(PasswordParams::default().t_cost),
        ..PasswordParams::default()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let base = std::env::var_os("STAGEGATE_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    eprintln!(
        "scale: {} users, {} bindings, {} tokens, {} models; {} cores; argon2id m={} t={} p={}; in {}",
        s.users, s.bindings, s.tokens, s.models, cores, params.m_cost, params.t_cost, params.p_cost,
        tmp.path().display()
    );

    // One argon2id hash at the configured parameters (median of 5).
    let pw = generate_password();
    let mut hashes: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            hash_password(params, &pw).expect("hash");
            t.elapsed()
        })
        .collect();
    hashes.sort();
    let one_hash = hashes[2];
    let t = Instant::now();
    let mut snap = organization(&s);
    validate(&mut snap);
    let build = t.elapsed();
    let errors: Vec<_> = snap
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .take(3)
        .collect();
    assert!(
        errors.is_empty(),
        "generated organization is invalid: {errors:?}"
    );

    let key = ServerKey::from_bytes([7; 32]);
    let sink = DirSecretSink::new(tmp.path().join("secrets"));
    let mut store = AnyStore::open(&tmp.path().join("store.db")).expect("store");

    let first = reconcile(&snap, &mut store, &sink, &key, params);
    let (plan1, apply1, changes1, not_ready1) =
        (first.plan, first.apply, first.changes, first.not_ready);
    let ideal = one_hash.mul_f64(s.users as f64 / cores as f64);
    let noop = reconcile(&snap, &mut store, &sink, &key, params);
    let (plan2, apply2, changes2) = (noop.plan, noop.apply, noop.changes);
    assert_eq!(changes2, 0, "a second reconcile must change nothing");
    let rows_sqlite = recommit(
        &store,
        &mut AnyStore::open(&tmp.path().join("rows.db")).expect("store"),
    );

    // One user changes (display name) and one is revoked (ends sessions, revokes owned tokens).
    let mut changed = snap.clone();
    changed.users[1].object.spec.display_name = Some("Renamed".into());
    let one = reconcile(&changed, &mut store, &sink, &key, params);
    let (plan3, apply3, changes3) = (one.plan, one.apply, one.changes);
    changed.users[2].object.spec.state = stagegate::resources::UserState::Revoked;
    let revoke = reconcile(&changed, &mut store, &sink, &key, params);
    let (plan4, apply4, changes4) = (revoke.plan, revoke.apply, revoke.changes);

    let raw = raw_insert(&tmp.path().join("raw.db"), &s);
    let postgres = std::env::var_os("STAGEGATE_BENCH_POSTGRES")
        .is_some()
        .then(|| on_postgres(&snap, &key, params, tmp.path()));
    let peak = peak_rss_mib();

    let rows: Vec<(String, String)> = vec![
        (
            "organization".into(),
            format!(
                "{} users, {} bindings, {} tokens, {} models (stage requests)",
                s.users, s.bindings, s.tokens, s.models
            ),
        ),
        ("build + validate snapshot".into(), secs(build)),
        (
            format!(
                "one argon2id hash (m={},t={},p={})",
                params.m_cost, params.t_cost, params.p_cost
            ),
            secs(one_hash),
        ),
        (
            "plan, empty store".into(),
            format!("{} ({changes1} changes)", secs(plan1)),
        ),
        (
            "first apply (hashing, 15k secret files, 2 commits)".into(),
            format!("{} ({not_ready1} not ready)", secs(apply1)),
        ),
        (
            "  ideal hashing: users x hash / cores".into(),
            format!("{} ({cores} cores)", secs(ideal)),
        ),
        (
            "  first apply / ideal hashing".into(),
            format!("{:.2}", apply1.as_secs_f64() / ideal.as_secs_f64()),
        ),
        (
            "no-op re-plan".into(),
            format!("{} ({changes2} changes)", secs(plan2)),
        ),
        ("no-op re-apply".into(), secs(apply2)),
        (
            "single-user change: plan + apply".into(),
            format!("{} + {} ({changes3} change)", secs(plan3), secs(apply3)),
        ),
        (
            "single-user revoke: plan + apply".into(),
            format!("{} + {} ({changes4} changes)", secs(plan4), secs(apply4)),
        ),
        (
            "the first apply's rows (+ statuses, audit), one commit".into(),
            secs(rows_sqlite),
        ),
        (
            "raw SQLite bulk insert (users, bindings, tokens, models)".into(),
            secs(raw),
        ),
    ];
    let mut rows = rows;
    if let Some(pg) = postgres {
        rows.extend([
            (
                "PostgreSQL: first apply (same work)".into(),
                format!("{} ({} changes)", secs(pg.apply1), pg.changes1),
            ),
            (
                "PostgreSQL: no-op re-plan + re-apply".into(),
                format!("{} + {}", secs(pg.plan2), secs(pg.apply2)),
            ),
            (
                "PostgreSQL: the first apply's rows (+ statuses, audit), one commit".into(),
                format!("{} ({} rows)", secs(pg.writes), pg.rows),
            ),
            (
                "PostgreSQL: raw COPY of the same rows (all tables)".into(),
                secs(pg.copy),
            ),
            (
                "  of which users, bindings, tokens, models".into(),
                secs(pg.copy_data),
            ),
            (
                "  row writes / raw COPY".into(),
                format!("{:.2}", pg.writes.as_secs_f64() / pg.copy.as_secs_f64()),
            ),
            (
                "PostgreSQL: the same raw COPY in binary format".into(),
                secs(pg.copy_binary),
            ),
            (
                "  row writes / raw binary COPY".into(),
                format!(
                    "{:.2}",
                    pg.writes.as_secs_f64() / pg.copy_binary.as_secs_f64()
                ),
            ),
        ]);
    }
    rows.extend([(
        "peak memory (VmHWM)".into(),
        peak.map_or("n/a".into(), |m| format!("{m:.0} MiB")),
    )]);
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("| {:<w$} | figure |", "measure");
    println!("|{}|--------|", "-".repeat(w + 2));
    for (k, v) in rows {
        println!("| {k:<w$} | {v} |");
    }
}

/// Figures of the PostgreSQL run.
struct PgFigures {
    apply1: Duration,
    changes1: usize,
    plan2: Duration,
    apply2: Duration,
    /// Every row the first apply left, committed again into an empty database (store writes alone).
    writes: Duration,
    rows: u64,
    /// The same rows loaded with `COPY`, all tables; and the users, bindings, tokens, models alone.
    copy: Duration,
    copy_data: Duration,
    /// The same load in `COPY`'s binary format.
    copy_binary: Duration,
}

/// The first apply and a no-op reconcile into a fresh PostgreSQL database; the same rows
/// committed again into a second database (store writes alone); the same rows, exported from
/// the first database, loaded with `COPY` into a third.
fn on_postgres(
    snap: &Snapshot,
    key: &ServerKey,
    params: PasswordParams,
    dir: &std::path::Path,
) -> PgFigures {
    let open = |url: &str| AnyStore::open(std::path::Path::new(url)).expect("PostgreSQL store");
    let sink = DirSecretSink::new(dir.join("pg-secrets"));
    let url = stagegate::store::pg::test_server::database();
    let mut store = open(&url);
    let first = reconcile(snap, &mut store, &sink, key, params);
    let noop = reconcile(snap, &mut store, &sink, key, params);
    assert_eq!(noop.changes, 0, "a second reconcile must change nothing");
    let writes = recommit(
        &store,
        &mut open(&stagegate::store::pg::test_server::database()),
    );
    let into = stagegate::store::pg::test_server::database();
    drop(open(&into));
    let (copy, copy_data, rows) = raw_copy(&url, &into, "");
    // The same load in COPY's binary format, the format the store's own COPY sends: shown
    // beside the baseline so the comparison does not credit the store with the format alone.
    let into = stagegate::store::pg::test_server::database();
    drop(open(&into));
    let (copy_binary, _, binary_rows) = raw_copy(&url, &into, " (FORMAT binary)");
    assert_eq!(binary_rows, rows, "both loads carry the same rows");
    PgFigures {
        apply1: first.apply,
        changes1: first.changes,
        plan2: noop.plan,
        apply2: noop.apply,
        writes,
        rows,
        copy,
        copy_data,
        copy_binary,
    }
}

/// The tables a commit writes and their columns (generated ids aside: the load generates
/// them too, as the store's inserts do).
const COPIED: [(&str, &str); 7] = [
    ("users", "*"),
    ("bindings", "username, role, scope_customer, scope_project, owner_kind, owner_namespace, owner_name, owner_source"),
    ("token_keys", "*"),
    ("models", "*"),
    ("stage_requests", "*"),
    ("object_status", "*"),
    ("audit_log", "at, action, kind, namespace, name, source, old_json, new_json"),
];

/// Every row of `from` (sessions aside) exported with `COPY ... TO STDOUT`, then loaded into
/// the empty database `into` with `COPY ... FROM STDIN` in one transaction: the raw bulk load
/// of exactly the rows the store wrote. `format` is empty (text format) or ` (FORMAT binary)`. Returns the load's time, the time of its users,
/// bindings, tokens and models alone, and the number of rows.
fn raw_copy(from: &str, into: &str, format: &str) -> (Duration, Duration, u64) {
    use std::io::{Read, Write};
    let mut c = postgres::Client::connect(from, postgres::NoTls).expect("connect");
    let mut dumps = Vec::new();
    for (table, cols) in COPIED {
        let cols = if cols == "*" {
            String::new()
        } else {
            format!("({cols})")
        };
        let select = format!("COPY {table} {cols} TO STDOUT{format}");
        let mut data = Vec::new();
        c.copy_out(select.as_str())
            .expect("copy out")
            .read_to_end(&mut data)
            .expect("read");
        dumps.push((table, cols, data));
    }
    let mut c = postgres::Client::connect(into, postgres::NoTls).expect("connect");
    let (mut data_tables, mut rows) = (Duration::ZERO, 0);
    let t = Instant::now();
    let mut tx = c.transaction().expect("tx");
    for (table, cols, data) in &dumps {
        let one = Instant::now();
        let mut w = tx
            .copy_in(format!("COPY {table} {cols} FROM STDIN{format}").as_str())
            .expect("copy in");
        w.write_all(data).expect("rows");
        rows += w.finish().expect("copy");
        if std::env::var_os("STAGEGATE_BENCH_LOG").is_some() {
            eprintln!("raw COPY{format} into {table}: {}", secs(one.elapsed()));
        }
        if ["users", "bindings", "token_keys", "models"].contains(table) {
            data_tables += one.elapsed();
        }
    }
    tx.commit().expect("commit");
    (t.elapsed(), data_tables, rows)
}
