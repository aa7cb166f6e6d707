//! Whole-daemon benchmark (issue 19, goal 7, directory mode): the benchmark
//! organization (`benches/common/org.rs`: 10,000 users, 50,000 bindings, 5,000
//! tokens, 2,000 models via stage requests) written as manifest files, and the
//! real release `stagegate run --dir` process watching them, with hashing made
//! cheap (`--argon2-memory-kib 8 --argon2-iterations 1`) so only the data counts.
//!
//! Prints first-apply time, peak and steady resident memory (from `/proc`),
//! idle CPU averaged over 60 s (from `/proc/PID/stat`), the cost of file events
//! that change nothing, single-change latency (to the store, and to the API
//! index; a delivered Secret file deleted → its token's round), and a restart on the filled store with the cost of a no-op resync.
//!
//! `cargo bench --bench daemon`. Environment: `STAGEGATE_BENCH_USERS`,
//! `_BINDINGS`, `_TOKENS`, `_MODELS` scale the organization down;
//! `STAGEGATE_BENCH_PER_FILE` objects per manifest file (100);
//! `STAGEGATE_BENCH_IDLE_SECS` the idle window (60); `STAGEGATE_BENCH_RESYNC_SECS`
//! the resync period of the restarted daemon (5); `STAGEGATE_BENCH_DIR` where
//! the temp workspace goes; `STAGEGATE_BENCH_BIN` another `stagegate` binary
//! (to measure an older build with this harness); `STAGEGATE_BENCH_LOG` the
//! daemon's `RUST_LOG` (`info`).

#[path = "common/counting.rs"]
mod counting;
#[path = "common/org.rs"]
mod org;
#[path = "common/procfs.rs"]
mod procfs;

use counting::live_mib;
use org::{env, Scale};
use procfs::{cpu_secs, free_port, mem_mib};
use serde_json::Value;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Counts live heap bytes, for the in-process memory breakdown (the daemon is a separate process).
#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Live heap bytes each piece of a reconcile holds, built in this process from the
/// benchmark's own manifests, secrets and filled store with the library's functions.
fn breakdown(ws: &Path) -> Vec<(String, String)> {
    use stagegate::sources::directory::plan_against;
    use stagegate::store::Store;
    let mut rows = Vec::new();
    fn push(rows: &mut Vec<(String, String)>, what: &str, mib: f64) {
        rows.push((format!("heap: {what}"), format!("{mib:.1} MiB")));
    }
    macro_rules! row {
        ($what:expr, $before:expr $(,)?) => {
            push(&mut rows, &$what, live_mib() - $before)
        };
    }
    // What the first parse of the process builds once and keeps (the CRD schemas'
    // validators and their regular expressions' caches), apart from the cache.
    let t = live_mib();
    let one = ws.join("one-file");
    std::fs::create_dir_all(&one).expect("dir");
    let first = std::fs::read_dir(ws.join("manifests"))
        .expect("manifests")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("users-"))
        .expect("a users file");
    std::fs::copy(first.path(), one.join("users.yaml")).expect("copy");
    let mut warm = stagegate::sources::watch::DirCache::new(&one);
    warm.refresh(true).expect("refresh");
    drop(warm.snapshot());
    drop(warm);
    row!("one-time state of the first parse (schema validators)", t);
    let t = live_mib();
    let mut cache = stagegate::sources::watch::DirCache::new(ws.join("manifests"));
    cache.refresh(true).expect("refresh");
    row!("per-file parse cache (DirCache)", t);
    let t = live_mib();
    let mut snap = cache.snapshot();
    row!("merged snapshot (a copy of the cache's objects)", t);
    // Dropped, not moved out: moving frees nothing, so it would measure nothing.
    let t = live_mib();
    drop(std::mem::take(&mut snap.documents));
    let docs_mib = t - live_mib();
    push(
        &mut rows,
        "  of which document texts (for field lines)",
        docs_mib,
    );
    let t = live_mib();
    let mut secrets_cache = stagegate::sources::watch::SecretsCache::new(ws.join("state/secrets"));
    secrets_cache.refresh();
    let referenced: Vec<_> = snap
        .users
        .iter()
        .filter_map(|u| {
            let r = u.object.spec.password_secret_ref.as_ref()?;
            Some((u.object.metadata.namespace.clone()?, r.name.clone()))
        })
        .collect();
    drop(secrets_cache.loaded(&referenced));
    row!(
        "secrets directory cache (SecretsCache: stamps, digests, passwordSecretRef data)",
        t,
    );
    drop(secrets_cache);
    let t = live_mib();
    let (secrets, diags) = stagegate::secrets::load_secrets_dir(&ws.join("state/secrets"));
    row!("every Secret file's data (load_secrets_dir)", t);
    snap.secrets.extend(secrets);
    snap.diagnostics.extend(diags);
    let t = live_mib();
    stagegate::validate::validate(&mut snap);
    row!("validate (diagnostics added)", t);
    let store =
        stagegate::store::SqliteStore::open(&ws.join("state/store.db")).expect("open store");
    let t = live_mib();
    let state = store.load_state().expect("load state");
    row!("store state (load_state)", t);
    let key = stagegate::secrets::ServerKey::load_or_create(&ws.join("state/server.key"))
        .expect("server key");
    let sink = stagegate::secrets::DirSecretSink::new(ws.join("state/secrets"));
    let t = live_mib();
    let plan = plan_against(
        &snap,
        &state,
        &sink,
        &key,
        Default::default(),
        jiff::Timestamp::now(),
    )
    .expect("plan");
    row!(
        &format!("plan ({} data changes)", plan.data_changes().count()),
        t,
    );
    let t = live_mib();
    let index = stagegate::api::Index::build(&state);
    row!("API index (Index::build)", t);
    drop((index, plan, state, snap, cache));
    rows
}

/// Where a process's resident memory is, from `/proc/PID/smaps`: the binary's own
/// mappings, other files (shared libraries), and anonymous memory (heap, the
/// allocator's segments, thread stacks); plus its thread count.
fn resident_parts(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let (mut binary, mut files, mut anon, mut path) = (0u64, 0u64, 0u64, String::new());
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address range, perms, offset, device, inode, path.
            path = words.nth(4).unwrap_or_default().to_string();
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if !path.is_empty() && Path::new(&path) == exe {
                binary += kib;
            } else if path.starts_with('/') {
                files += kib;
            } else {
                anon += kib;
            }
        }
    }
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    format!(
        "anonymous {:.0} MiB, binary {:.0} MiB, other files {:.0} MiB; {threads} threads",
        anon as f64 / 1024.0,
        binary as f64 / 1024.0,
        files as f64 / 1024.0
    )
}

/// The running daemon and its JSON log.
struct Daemon {
    child: Child,
    log: PathBuf,
    /// How far the log has been read.
    offset: u64,
    /// The latest `reconcile phases` line, for the `reconciled` line that follows it.
    phases: String,
    /// The latest `api index updated` line (mode, keys, ms), if one was logged since taken.
    api_index: Option<String>,
}

/// One `reconciled` log line.
#[derive(Debug, Clone)]
struct Round {
    at: Instant,
    changes: u64,
    elapsed_ms: u64,
    forced: bool,
    /// Milliseconds per phase: refresh, merge, validate, load_state, plan, apply, bootstrap.
    phases: String,
}

impl Daemon {
    fn start(bin: &Path, ws: &Path, port: u16, resync: &str) -> Daemon {
        let log = ws.join(format!("daemon-{port}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg("run")
            .arg("--dir")
            .arg(ws.join("manifests"))
            .arg("--store")
            .arg(ws.join("state/store.db"))
            .arg("--secrets-dir")
            .arg(ws.join("state/secrets"))
            .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--resync", resync, "--log-json"])
            .env(
                "RUST_LOG",
                std::env::var("STAGEGATE_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start stagegate run");
        Daemon {
            child,
            log,
            offset: 0,
            phases: String::new(),
            api_index: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `reconciled` lines logged since the last call.
    fn rounds(&mut self) -> Vec<Round> {
        let mut f = std::fs::File::open(&self.log).expect("open log");
        f.seek(SeekFrom::Start(self.offset)).expect("seek");
        let mut out = Vec::new();
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read log");
            if n == 0 || !line.ends_with('\n') {
                break; // a partial line is read next time
            }
            self.offset += n as u64;
            let phases = line.contains("\"reconcile phases\"");
            let api = line.contains("\"api index updated\"");
            if !phases && !api && !line.contains("\"reconciled\"") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            // JSON logs carry fields at the top level or under "fields".
            let field = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k)));
            let num = |k: &str| field(k).and_then(Value::as_u64).unwrap_or(0);
            if api {
                let mode = field("mode").and_then(Value::as_str).unwrap_or("?");
                // Where a patch's time went, when the binary logs it.
                let parts =
                    ["read_ms", "patch_ms", "publish_ms"].map(|k| field(k).and_then(Value::as_f64));
                let parts = match parts {
                    [Some(read), Some(patch), Some(publish)] => {
                        format!(" (read {read:.1}, patch {patch:.1}, publish {publish:.1} ms)")
                    }
                    _ => String::new(),
                };
                self.api_index = Some(match mode {
                    "incremental" => {
                        format!("{mode}, {} keys, {} ms{parts}", num("keys"), num("ms"))
                    }
                    _ => format!("{mode}, {} ms", num("ms")),
                });
                continue;
            }
            if phases {
                self.phases = ["load_state", "plan", "apply", "bootstrap"]
                    .iter()
                    .map(|p| format!("{p} {}", num(&format!("{p}_ms"))))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + " ms";
                // A scoped round says how many objects it planned in full.
                if let Some(n) = field("scoped_objects").and_then(Value::as_u64) {
                    self.phases.push_str(&format!(" ({n} objects in scope)"));
                }
                continue;
            }
            let before: Vec<String> = ["refresh", "merge", "validate"]
                .iter()
                .map(|p| format!("{p} {}", num(&format!("{p}_ms"))))
                .collect();
            out.push(Round {
                at: Instant::now(),
                changes: num("changes"),
                elapsed_ms: num("elapsed_ms"),
                forced: field("forced").and_then(Value::as_bool).unwrap_or(false),
                phases: match std::mem::take(&mut self.phases) {
                    p if p.is_empty() => format!("{} ms", before.join(", ")),
                    p => format!("{}, {p}", before.join(", ")),
                },
            });
        }
        out
    }

    /// The next `api index updated` line, waiting for it at most `limit` (a binary that
    /// does not log it: "not logged").
    fn api_index(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        while self.api_index.is_none() && Instant::now() < deadline {
            self.rounds();
            std::thread::sleep(Duration::from_millis(5));
        }
        self.api_index.take().unwrap_or_else(|| "not logged".into())
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

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            panic!("stagegate exited ({status}); last log lines: {tail:#?}");
        }
    }

    /// Waits until no reconcile has been logged for `quiet` (at most `limit`); returns the rounds seen.
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

/// Writes the organization as manifest files of `per_file` objects each; returns the file names.
fn write_manifests(dir: &Path, s: &Scale, per_file: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("manifests dir");
    let mut names = Vec::new();
    let kinds = ["users", "bindings", "tokens", "requests"];
    for (kind, objects) in kinds.iter().zip(org::organization(s)) {
        for (i, chunk) in objects.chunks(per_file.max(1)).enumerate() {
            let name = format!("{kind}-{i:04}.yaml");
            let text: Vec<String> = chunk
                .iter()
                .map(|v| serde_yaml::to_string(v).expect("yaml"))
                .collect();
            std::fs::write(dir.join(&name), text.join("---\n")).expect("write manifest");
            names.push(name);
        }
    }
    names
}

/// Replaces `name` atomically (temp file + rename), as editors and git do.
fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

/// CPU seconds and reconciles during `window` after `event` ran.
fn cost_of(d: &mut Daemon, window: Duration, event: impl FnOnce()) -> (f64, Vec<Round>) {
    d.rounds();
    let before = cpu_secs(d.pid());
    event();
    std::thread::sleep(window);
    (cpu_secs(d.pid()) - before, d.rounds())
}

/// The figure of a single change's row: from the write at `t` to the round `r` that applied it.
fn applied(r: Option<&Round>, t: Instant) -> String {
    match r {
        Some(r) => format!(
            "{} (debounce 300 ms; plan+apply {} ms, {} changes)",
            ms(r.at - t),
            r.elapsed_ms,
            r.changes
        ),
        None => "not applied within 120 s".into(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn rounds_text(rs: &[Round]) -> String {
    if rs.is_empty() {
        return "0 reconciles".into();
    }
    let mut el: Vec<u64> = rs.iter().map(|r| r.elapsed_ms).collect();
    el.sort_unstable();
    format!(
        "{} reconciles (plan+apply median {} ms)",
        rs.len(),
        el[el.len() / 2]
    )
}

fn main() {
    let s = Scale::from_env();
    let per_file = env("STAGEGATE_BENCH_PER_FILE", 100);
    let idle = Duration::from_secs(env("STAGEGATE_BENCH_IDLE_SECS", 60) as u64);
    let resync_secs = env("STAGEGATE_BENCH_RESYNC_SECS", 5).max(1);
    let bin = std::env::var_os("STAGEGATE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stagegate")));
    let base = std::env::var_os("STAGEGATE_BENCH_DIR").map(PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let ws = tmp.path();
    let manifests = ws.join("manifests");
    let files = write_manifests(&manifests, &s, per_file);
    eprintln!(
        "daemon: {} users, {} bindings, {} tokens, {} models in {} files; binary {}; in {}",
        s.users,
        s.bindings,
        s.tokens,
        s.models,
        files.len(),
        bin.display(),
        ws.display()
    );
    let mut rows: Vec<(String, String)> = vec![(
        "organization".into(),
        format!(
            "{} users, {} bindings, {} tokens, {} models; {} files of {per_file}",
            s.users,
            s.bindings,
            s.tokens,
            s.models,
            files.len()
        ),
    )];

    // 1. First apply on an empty store (resync far away, so the idle window is idle).
    let port = free_port();
    let started = Instant::now();
    let mut d = Daemon::start(&bin, ws, port, "1h");
    let first = d
        .wait_round(Duration::from_secs(3600), |_| true)
        .expect("first reconcile");
    let first_wall = first.at - started;
    rows.push((
        "first apply (start → first reconcile logged)".into(),
        format!(
            "{:.1} s (plan+apply {:.1} s, {} changes)",
            first_wall.as_secs_f64(),
            first.elapsed_ms as f64 / 1000.0,
            first.changes
        ),
    ));
    rows.push(("  first apply: phases (ms)".into(), first.phases.clone()));
    rows.push((
        "peak RSS during the first apply (VmHWM)".into(),
        format!("{:.0} MiB", mem_mib(d.pid(), "VmHWM:")),
    ));
    let (after, settled) = d.settle(Duration::from_secs(10), Duration::from_secs(90));
    rows.push((
        "reconciles after the first apply, before settling".into(),
        format!(
            "{}{}",
            rounds_text(&after),
            if settled {
                ""
            } else {
                "; never quiet for 10 s in 90 s"
            }
        ),
    ));

    // 2. Idle.
    let (idle_cpu, idle_rounds) = cost_of(&mut d, idle, || {});
    rows.push((
        format!("idle CPU over {} s", idle.as_secs()),
        format!(
            "{:.2} % of a core ({})",
            idle_cpu / idle.as_secs_f64() * 100.0,
            rounds_text(&idle_rounds)
        ),
    ));
    rows.push((
        "steady RSS after the first apply (VmRSS)".into(),
        format!("{:.0} MiB", mem_mib(d.pid(), "VmRSS:")),
    ));
    rows.push(("  of which".into(), resident_parts(d.pid())));

    // 3. File events that change nothing.
    let window = Duration::from_secs(3);
    let touched = manifests.join(&files[files.len() / 2]);
    let (cpu, rs) = cost_of(&mut d, window, || {
        let f = std::fs::File::options()
            .write(true)
            .open(&touched)
            .expect("open");
        f.set_modified(std::time::SystemTime::now()).expect("touch");
    });
    rows.push((
        "touch one manifest (mtime only): CPU used".into(),
        format!("{:.0} ms ({})", cpu * 1000.0, rounds_text(&rs)),
    ));
    let name = &files[files.len() / 3];
    let same = std::fs::read_to_string(manifests.join(name)).expect("read");
    let (cpu, rs) = cost_of(&mut d, window, || write_atomic(&manifests, name, &same));
    rows.push((
        "rewrite one manifest, same content: CPU used".into(),
        format!("{:.0} ms ({})", cpu * 1000.0, rounds_text(&rs)),
    ));

    // 4. One edited binding reaches the store.
    let bfile = files
        .iter()
        .find(|f| f.starts_with("bindings-"))
        .expect("a bindings file");
    let text = std::fs::read_to_string(manifests.join(bfile)).expect("read");
    let edited = text.replacen("role: Developer", "role: Analyst", 1);
    d.rounds();
    d.api_index = None;
    let t = Instant::now();
    write_atomic(&manifests, bfile, &edited);
    let r = d.wait_round(Duration::from_secs(120), |r| r.changes > 0);
    if let Some(r) = &r {
        rows.push(("  edit one binding: phases (ms)".into(), r.phases.clone()));
        rows.push((
            "  edit one binding: API index update".into(),
            d.api_index(Duration::from_secs(5)),
        ));
    }
    rows.push((
        "edit one binding → applied (write → reconcile logged)".into(),
        applied(r.as_ref(), t),
    ));

    // 4b. One new stage request (a promotion of a deployed model) reaches the store.
    d.settle(Duration::from_secs(2), Duration::from_secs(30));
    let rfile = files
        .iter()
        .find(|f| f.starts_with("requests-"))
        .expect("a requests file");
    let text = std::fs::read_to_string(manifests.join(rfile)).expect("read");
    let promote = serde_yaml::to_string(&org::promotion()).expect("yaml");
    d.rounds();
    let t = Instant::now();
    write_atomic(&manifests, rfile, &format!("{text}---\n{promote}"));
    let r = d.wait_round(Duration::from_secs(120), |r| r.changes > 0);
    if let Some(r) = &r {
        rows.push((
            "  edit one ModelStageRequest: phases (ms)".into(),
            r.phases.clone(),
        ));
    }
    rows.push((
        "edit one ModelStageRequest (a new promotion) → applied".into(),
        applied(r.as_ref(), t),
    ));

    // 5. One revoked token reaches the API index.
    let token = std::fs::read_to_string(ws.join("state/secrets/org/t00000-token.yaml"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
        });
    let tfile = files
        .iter()
        .find(|f| f.starts_with("tokens-"))
        .expect("a tokens file");
    let http = reqwest::blocking::Client::new();
    let whoami = |tok: &str| {
        http.get(format!("http://127.0.0.1:{port}/v1/whoami"))
            .bearer_auth(tok)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let mut revoke_phases = None;
    let line = match token {
        Some(tok) if whoami(&tok) == 200 => {
            d.settle(Duration::from_secs(2), Duration::from_secs(30));
            d.api_index = None;
            let text = std::fs::read_to_string(manifests.join(tfile)).expect("read");
            let revoked = text.replacen("validity: 90d", "validity: 90d\n  revoked: true", 1);
            let t = Instant::now();
            write_atomic(&manifests, tfile, &revoked);
            let mut seen = None;
            while t.elapsed() < Duration::from_secs(120) {
                if whoami(&tok) == 401 {
                    seen = Some(t.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let r = d.wait_round(Duration::from_secs(5), |r| r.changes > 0);
            if let Some(r) = &r {
                revoke_phases = Some(r.phases.clone());
            }
            match seen {
                Some(at) => format!(
                    "{} (debounce 300 ms; plan+apply {} ms; API index update: {})",
                    ms(at),
                    r.map_or(0, |r| r.elapsed_ms),
                    d.api_index(Duration::from_secs(5))
                ),
                None => "still accepted after 120 s".into(),
            }
        }
        _ => "n/a (token t00000 not delivered or not accepted)".into(),
    };
    if let Some(p) = revoke_phases {
        rows.push(("  revoke one token: phases (ms)".into(), p));
    }
    rows.push(("revoke one token → API answers 401".into(), line));
    d.settle(Duration::from_secs(2), Duration::from_secs(30));

    // 6. Someone deletes a delivered Secret file: its token's round reports it.
    d.rounds();
    let t = Instant::now();
    let deleted = std::fs::remove_file(ws.join("state/secrets/org/t00001-token.yaml"));
    let r = deleted
        .ok()
        .and_then(|()| d.wait_round(Duration::from_secs(120), |_| true));
    if let Some(r) = &r {
        rows.push((
            "  delete one Secret file: phases (ms)".into(),
            r.phases.clone(),
        ));
    }
    rows.push((
        "delete one delivered Secret file → its token's round logged".into(),
        applied(r.as_ref(), t),
    ));
    d.settle(Duration::from_secs(2), Duration::from_secs(30));
    d.stop();

    // 7. Restart on the filled store, resyncing every few seconds.
    let port = free_port();
    let started = Instant::now();
    let mut d = Daemon::start(&bin, ws, port, &format!("{resync_secs}s"));
    let first = d
        .wait_round(Duration::from_secs(3600), |_| true)
        .expect("first reconcile after restart");
    rows.push((
        "restart on the filled store → first reconcile".into(),
        format!(
            "{} (plan+apply {} ms, {} changes)",
            ms(first.at - started),
            first.elapsed_ms,
            first.changes
        ),
    ));
    rows.push(("  restart: phases (ms)".into(), first.phases.clone()));
    rows.push((
        "peak RSS after restart (VmHWM)".into(),
        format!("{:.0} MiB", mem_mib(d.pid(), "VmHWM:")),
    ));
    std::thread::sleep(Duration::from_secs(2));
    let periods = 4;
    let (cpu, rs) = cost_of(
        &mut d,
        Duration::from_secs(resync_secs as u64 * periods),
        || {},
    );
    // A resync that finds nothing new logs no `reconciled` line: count periods, not lines.
    rows.push((
        format!("no-op resync (every {resync_secs} s): CPU per resync"),
        format!(
            "{:.0} ms ({}, {} forced)",
            cpu * 1000.0 / periods as f64,
            rounds_text(&rs),
            rs.iter().filter(|r| r.forced).count()
        ),
    ));
    rows.push((
        "steady RSS after restart (VmRSS)".into(),
        format!("{:.0} MiB", mem_mib(d.pid(), "VmRSS:")),
    ));
    rows.push(("  of which".into(), resident_parts(d.pid())));
    d.stop();
    rows.extend(breakdown(ws));

    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("| {:<w$} | figure |", "measure");
    println!("|{}|--------|", "-".repeat(w + 2));
    for (k, v) in rows {
        println!("| {k:<w$} | {v} |");
    }
}
