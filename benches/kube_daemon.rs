//! Whole-daemon benchmark in Kubernetes mode (issue 19, goal 7): the benchmark
//! organization (`benches/common/org.rs`: 10,000 users, 50,000 bindings, 5,000
//! tokens, 2,000 models via stage requests) created as custom resources in the
//! in-process test API server (`tests/integration/kube_api/`), and the real
//! release `stagegate run --kube` process reconciling them, with hashing made
//! cheap (`--argon2-memory-kib 8 --argon2-iterations 1`) so only the data counts.
//!
//! Prints first-apply time, peak and steady resident memory (from `/proc`),
//! idle CPU averaged over 60 s (from `/proc/PID/stat`), single-change latency
//! (one AccessBinding patched → reconcile logged; one ApiToken revoked → the
//! API answers 401; one delivered Secret deleted → its token's round logged), and a restart on the filled store with the cost of each
//! resync; then the live heap of the controller's watch cache, of a round's
//! snapshot and of the Secrets' metadata, built in this process (`heap:` rows).
//!
//! `cargo bench --bench kube_daemon`. Environment: `STAGEGATE_BENCH_USERS`,
//! `_BINDINGS`, `_TOKENS`, `_MODELS` scale the organization down;
//! `STAGEGATE_BENCH_IDLE_SECS` the idle window (60); `STAGEGATE_BENCH_RESYNC_SECS`
//! the resync period of the restarted controller (5); `STAGEGATE_BENCH_BIN`
//! another `stagegate` binary; `STAGEGATE_BENCH_LOG` the controller's
//! `RUST_LOG` (`info`).

// The integration tests' API server; clippy builds this target with
// cfg(test), where its self-tests' imports go unused outside their harness.
#[path = "common/counting.rs"]
mod counting;
#[path = "../tests/integration/kube_api/mod.rs"]
#[allow(dead_code, unused_imports)]
mod kube_api;
#[path = "common/org.rs"]
mod org;
#[path = "common/procfs.rs"]
mod procfs;

use base64::Engine as _;
use kube_api::{Identity, KubeApiServer};
use org::{env, Scale, NS};
use procfs::{cpu_secs, free_port, mem_mib};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Live heap bytes of the controller's watch cache and of a round's snapshot, built
/// in this process from the objects the test server holds (as the watchers receive
/// them) with the library's own functions.
fn breakdown(server: &KubeApiServer, admin: &str) -> Vec<(String, String)> {
    use counting::live_mib;
    use stagegate::sources::kube::cache::{key_of, lean_object, Cache};
    let http = reqwest::blocking::Client::new();
    let list = |path: &str| -> Vec<Value> {
        let body: Value = http
            .get(format!("{}{path}", server.url()))
            .bearer_auth(admin)
            .send()
            .and_then(|r| r.json())
            .expect("list");
        match body.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    };
    let mut objects = Vec::new();
    for kind in ["User", "AccessBinding", "ApiToken", "ModelStageRequest"] {
        for mut o in list(&format!(
            "/apis/stagegate.dev/v1alpha1/namespaces/{NS}/{}",
            plural(kind)
        )) {
            lean_object(&mut o);
            if let Some(m) = o.as_object_mut() {
                m.entry("kind").or_insert_with(|| kind.into());
                m.entry("apiVersion")
                    .or_insert_with(|| "stagegate.dev/v1alpha1".into());
            }
            if let Some(k) = key_of(kind, &o) {
                objects.push((k, o));
            }
        }
    }
    let mut rows = Vec::new();
    let mut push =
        |what: &str, mib: f64| rows.push((format!("heap: {what}"), format!("{mib:.1} MiB")));
    let t = live_mib();
    let trees: Vec<std::sync::Arc<Value>> = objects
        .iter()
        .map(|(_, v)| std::sync::Arc::new(v.clone()))
        .collect();
    push(
        &format!(
            "{} lean objects as Value trees (the cache before the compact form)",
            trees.len()
        ),
        live_mib() - t,
    );
    drop(trees);
    let t = live_mib();
    let mut cache = Cache::default();
    for (k, v) in &objects {
        cache.put_object(k.clone(), v.clone());
    }
    push(
        "watch cache of the four kinds, compact (keys included)",
        live_mib() - t,
    );
    let t = live_mib();
    let built = stagegate::sources::kube::snapshot::build(&cache);
    push("snapshot a round builds from it", live_mib() - t);
    // What the controller keeps for scoped rounds, by how objects are grouped.
    {
        use stagegate::sources::kube::scoped::bucket_in;
        use stagegate::sources::scoped::{by_file, Kept, Label, Memo};
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = stagegate::store::AnyStore::open(&tmp.path().join("s.db")).expect("store");
        let token = store.state_token().expect("token");
        let groupings: [(&str, Label); 4] = [
            ("256 buckets per kind and namespace", bucket_in::<256>),
            ("1024 buckets (the controller's)", bucket_in::<1024>),
            ("4096 buckets", bucket_in::<4096>),
            ("one entry per object", by_file),
        ];
        for (what, label) in groupings {
            let t = live_mib();
            let kept = Kept::labelled(&built.snapshot, label);
            let memo = Memo::labelled(
                &built.snapshot,
                Default::default(),
                token.clone(),
                None,
                label,
            );
            push(
                &format!("scoped rounds' index and memo (`Kept`, `Memo`), {what}"),
                live_mib() - t,
            );
            assert!(
                kept.is_some() && memo.is_some(),
                "the organization is valid"
            );
            drop((kept, memo));
        }
    }
    drop(built);
    let secrets = list(&format!("/api/v1/namespaces/{NS}/secrets"));
    let t = live_mib();
    for s in &secrets {
        if let Ok(meta) = serde_json::from_value(s["metadata"].clone()) {
            cache.put_secret(meta);
        }
    }
    push(
        &format!(
            "metadata of {} Secrets (what the cache keeps: `SecretMeta`)",
            secrets.len()
        ),
        live_mib() - t,
    );
    rows
}

/// One `reconciled` log line of the controller.
#[derive(Debug, Clone)]
struct Round {
    at: Instant,
    changes: u64,
    status_patches: u64,
    elapsed_ms: u64,
}

/// The running controller and its JSON log.
struct Controller {
    child: Child,
    log: PathBuf,
    offset: u64,
}

/// A number in the `summary` field's Debug text (`Summary { changes: 3, ... }`).
fn summary_field(summary: &str, name: &str) -> u64 {
    summary
        .split_once(&format!("{name}: "))
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

impl Controller {
    fn start(bin: &Path, dir: &Path, kubeconfig: &Path, port: u16, resync: &str) -> Controller {
        let log = dir.join(format!("controller-{port}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(["run", "--kube", "--store"])
            .arg(dir.join("store.db"))
            .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"])
            // The test server serves lists of this size under one lock: a long Lease.
            .args(["--lease-duration", "60s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--resync", resync, "--log-json"])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", "stagegate-system")
            .env("POD_NAME", format!("bench-{port}"))
            .env("STAGEGATE_METRICS_LISTEN", "127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("STAGEGATE_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start stagegate run --kube");
        Controller {
            child,
            log,
            offset: 0,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `reconciled` lines logged since the last call.
    fn rounds(&mut self) -> Vec<Round> {
        let mut f = std::fs::File::open(&self.log).expect("open log");
        f.seek(SeekFrom::Start(self.offset)).expect("seek");
        let mut reader = BufReader::new(f);
        let mut out = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read log");
            if n == 0 || !line.ends_with('\n') {
                break; // a partial line is read next time
            }
            self.offset += n as u64;
            if !line.contains("\"reconciled\"") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k)));
            let summary = field("summary").and_then(Value::as_str).unwrap_or_default();
            out.push(Round {
                at: Instant::now(),
                changes: summary_field(summary, "changes"),
                status_patches: summary_field(summary, "status_patches"),
                elapsed_ms: field("elapsed_ms").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        out
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            panic!("stagegate exited ({status}); last log lines: {tail:#?}");
        }
    }

    /// Waits for the next `reconciled` line that `pick` accepts (at most `limit`).
    fn wait_round(&mut self, limit: Duration, pick: impl Fn(&Round) -> bool) -> Option<Round> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(r) = self.rounds().into_iter().find(|r| pick(r)) {
                return Some(r);
            }
            self.check_alive();
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// Waits until no reconcile has been logged for `quiet` (at most `limit`).
    fn settle(&mut self, quiet: Duration, limit: Duration) -> (Vec<Round>, bool) {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < limit {
            let rs = self.rounds();
            if !rs.is_empty() {
                last = Instant::now();
                seen.extend(rs);
            }
            if last.elapsed() >= quiet {
                return (seen, true);
            }
            self.check_alive();
            std::thread::sleep(Duration::from_millis(50));
        }
        (seen, false)
    }

    /// SIGTERM, then wait for the clean stop.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let _ = self.child.wait();
    }
}

fn rounds_text(rs: &[Round]) -> String {
    if rs.is_empty() {
        return "0 reconciles".into();
    }
    let mut el: Vec<u64> = rs.iter().map(|r| r.elapsed_ms).collect();
    el.sort_unstable();
    format!(
        "{} reconciles (median {} ms, {} status patches)",
        rs.len(),
        el[el.len() / 2],
        rs.iter().map(|r| r.status_patches).sum::<u64>()
    )
}

/// The figure of a single change's row: from the write at `t` to the next round that
/// changed something (waited for up to 300 s).
fn applied(c: &mut Controller, t: Instant) -> String {
    match c.wait_round(Duration::from_secs(300), |r| r.changes > 0) {
        Some(r) => format!(
            "{} (debounce 300 ms; reconcile {} ms, {} changes)",
            ms(r.at - t),
            r.elapsed_ms,
            r.changes
        ),
        None => "not applied within 300 s".into(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// CPU seconds and reconciles during `window`.
fn cost_of(c: &mut Controller, window: Duration) -> (f64, Vec<Round>) {
    c.rounds();
    let before = cpu_secs(c.pid());
    std::thread::sleep(window);
    (cpu_secs(c.pid()) - before, c.rounds())
}

/// The plural of a kind's resource.
fn plural(kind: &str) -> &'static str {
    match kind {
        "User" => "users",
        "AccessBinding" => "accessbindings",
        "ApiToken" => "apitokens",
        _ => "modelstagerequests",
    }
}

fn main() {
    let s = Scale::from_env();
    let idle = Duration::from_secs(env("STAGEGATE_BENCH_IDLE_SECS", 60) as u64);
    let resync_secs = env("STAGEGATE_BENCH_RESYNC_SECS", 5).max(1);
    let bin = std::env::var_os("STAGEGATE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stagegate")));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();

    let server = KubeApiServer::start();
    server
        .kubectl(&[
            "apply",
            "-f",
            root.join("crds").to_str().unwrap_or_default(),
        ])
        .assert_success();
    for ns in ["stagegate-system", NS] {
        server.create_object("", "namespaces", "", json!({"metadata": {"name": ns}}));
    }
    server.create_object(
        "",
        "serviceaccounts",
        "stagegate-system",
        json!({"metadata": {"name": "stagegate"}}),
    );
    let created = Instant::now();
    let mut count = 0usize;
    for objects in org::organization(&s) {
        for o in objects {
            let kind = o["kind"].as_str().unwrap_or_default().to_string();
            server.create_object("stagegate.dev", plural(&kind), NS, o);
            count += 1;
        }
    }
    eprintln!(
        "kube_daemon: {count} objects created in the test API server in {:.1?}; binary {}",
        created.elapsed(),
        bin.display()
    );
    let admin = server.token_for(Identity::admin());
    let kubeconfig = server.write_kubeconfig_with_token(dir, "controller.kubeconfig", &admin);
    let mut rows: Vec<(String, String)> = vec![(
        "organization (custom resources in the test API server)".into(),
        format!(
            "{} users, {} bindings, {} tokens, {} models",
            s.users, s.bindings, s.tokens, s.models
        ),
    )];

    // 1. First apply on an empty store (resync far away, so the idle window is idle).
    let port = free_port();
    let started = Instant::now();
    let mut c = Controller::start(&bin, dir, &kubeconfig, port, "1h");
    let first = c
        .wait_round(Duration::from_secs(3600), |_| true)
        .expect("first reconcile");
    rows.push((
        "first apply (start → first reconcile logged)".into(),
        format!(
            "{:.1} s ({} changes, {} status patches)",
            (first.at - started).as_secs_f64(),
            first.changes,
            first.status_patches
        ),
    ));
    rows.push((
        "peak RSS during the first apply (VmHWM)".into(),
        format!("{:.0} MiB", mem_mib(c.pid(), "VmHWM:")),
    ));
    let (after, settled) = c.settle(Duration::from_secs(10), Duration::from_secs(300));
    rows.push((
        "reconciles after the first apply, before settling".into(),
        format!(
            "{}{}",
            rounds_text(&after),
            if settled {
                ""
            } else {
                "; never quiet for 10 s in 300 s"
            }
        ),
    ));

    // 2. Idle.
    let (cpu, rs) = cost_of(&mut c, idle);
    rows.push((
        format!("idle CPU over {} s", idle.as_secs()),
        format!(
            "{:.2} % of a core ({})",
            cpu / idle.as_secs_f64() * 100.0,
            rounds_text(&rs)
        ),
    ));
    rows.push((
        "steady RSS after the first apply (VmRSS)".into(),
        format!("{:.0} MiB", mem_mib(c.pid(), "VmRSS:")),
    ));

    // 3. One patched binding reaches the store.
    let http = reqwest::blocking::Client::new();
    let patch = |plural: &str, name: &str, body: Value| {
        let url = format!(
            "{}/apis/stagegate.dev/v1alpha1/namespaces/{NS}/{plural}/{name}",
            server.url()
        );
        let r = http
            .patch(url)
            .bearer_auth(&admin)
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .expect("patch");
        assert!(r.status().is_success(), "patch {name}: {}", r.status());
    };
    c.rounds();
    let t = Instant::now();
    patch(
        "accessbindings",
        "b000000",
        json!({"spec": {"role": "Analyst"}}),
    );
    rows.push((
        "patch one AccessBinding → applied (reconcile logged)".into(),
        applied(&mut c, t),
    ));
    c.settle(Duration::from_secs(3), Duration::from_secs(120));

    // 3b. One new stage request (a promotion of a deployed model) reaches the store.
    c.rounds();
    let t = Instant::now();
    let r = http
        .post(format!(
            "{}/apis/stagegate.dev/v1alpha1/namespaces/{NS}/modelstagerequests",
            server.url()
        ))
        .bearer_auth(&admin)
        .header("Content-Type", "application/json")
        .body(org::promotion().to_string())
        .send()
        .expect("create");
    assert!(r.status().is_success(), "create request: {}", r.status());
    rows.push((
        "edit one ModelStageRequest (a new promotion) → applied".into(),
        applied(&mut c, t),
    ));
    c.settle(Duration::from_secs(3), Duration::from_secs(120));

    // 4. One revoked token reaches the API index.
    let token = server
        .object("", "secrets", NS, "t00000-token")
        .and_then(|s| {
            s.pointer("/data/token")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let whoami = |tok: &str| {
        http.get(format!("http://127.0.0.1:{port}/v1/whoami"))
            .bearer_auth(tok)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let line = match token {
        Some(tok) if whoami(&tok) == 200 => {
            let t = Instant::now();
            patch("apitokens", "t00000", json!({"spec": {"revoked": true}}));
            let mut seen = None;
            while t.elapsed() < Duration::from_secs(300) {
                if whoami(&tok) == 401 {
                    seen = Some(t.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen.map_or("still accepted after 300 s".into(), |at| {
                format!("{} (debounce 300 ms)", ms(at))
            })
        }
        _ => "n/a (token t00000 not delivered or not accepted)".into(),
    };
    rows.push(("revoke one ApiToken → API answers 401".into(), line));
    c.settle(Duration::from_secs(3), Duration::from_secs(120));

    // 5. Someone deletes a delivered Secret: the token's round reports it.
    c.rounds();
    let t = Instant::now();
    let r = http
        .delete(format!(
            "{}/api/v1/namespaces/{NS}/secrets/t00001-token",
            server.url()
        ))
        .bearer_auth(&admin)
        .send()
        .expect("delete a Secret");
    assert!(
        r.status().is_success(),
        "delete t00001-token: {}",
        r.status()
    );
    let request = t.elapsed();
    rows.push((
        "delete one delivered Secret → its token's round logged".into(),
        match c.wait_round(Duration::from_secs(300), |r| r.status_patches > 0) {
            Some(r) => format!(
                "{} (DELETE answered in {}; debounce 300 ms; reconcile {} ms, {} status patches)",
                ms(r.at - t),
                ms(request),
                r.elapsed_ms,
                r.status_patches
            ),
            None => "no round within 300 s".into(),
        },
    ));
    c.settle(Duration::from_secs(3), Duration::from_secs(120));
    c.stop();

    // 6. Restart on the filled store, resyncing every few seconds.
    let port = free_port();
    let started = Instant::now();
    let mut c = Controller::start(&bin, dir, &kubeconfig, port, &format!("{resync_secs}s"));
    let first = c
        .wait_round(Duration::from_secs(3600), |_| true)
        .expect("first reconcile after restart");
    rows.push((
        "restart on the filled store → first reconcile".into(),
        format!(
            "{} (reconcile {} ms, {} changes, {} status patches)",
            ms(first.at - started),
            first.elapsed_ms,
            first.changes,
            first.status_patches
        ),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let periods = 4;
    let (cpu, rs) = cost_of(&mut c, Duration::from_secs(resync_secs as u64 * periods));
    rows.push((
        format!("resync with nothing new (every {resync_secs} s): CPU per resync"),
        format!(
            "{:.0} ms ({})",
            cpu * 1000.0 / periods as f64,
            rounds_text(&rs)
        ),
    ));
    rows.push((
        "steady RSS after restart (VmRSS)".into(),
        format!("{:.0} MiB", mem_mib(c.pid(), "VmRSS:")),
    ));
    c.stop();
    rows.extend(breakdown(&server, &admin));

    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("| {:<w$} | figure |", "measure");
    println!("|{}|--------|", "-".repeat(w + 2));
    for (k, v) in rows {
        println!("| {k:<w$} | {v} |");
    }
}
