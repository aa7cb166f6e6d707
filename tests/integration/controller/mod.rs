//! End-to-end tests of `stagegate run --kube`: the real binary and the real
//! kubectl against the in-process API server (`kube_api`).
//!
//! The server enforces RBAC: each test cluster holds the ServiceAccount,
//! Roles and bindings rendered from the Helm chart (cluster-wide, or
//! namespaced with `ci/namespaced-values.yaml`), and the controller runs with
//! that ServiceAccount's token, so a rule the chart lacks is a 403 here as
//! in a real cluster. kubectl runs as the cluster administrator. Every test
//! also records the (verb, resource) pairs the controller used and checks
//! them against `tests/fixtures/rbac/controller-api-calls.txt`.

mod e2e;
mod edge;
mod leader;
mod namespaced;
mod quiet;
mod restart;
mod scoped;

use crate::kube_api::{Identity, KubeApiServer, RecordedRequest};
use crate::support;
use serde_json::Value;
use stagegate::store::{SqliteStore, Store, StoreState};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The four kinds as kubectl resource names.
pub const ALL_KINDS: &str =
    "users.stagegate.dev,accessbindings.stagegate.dev,apitokens.stagegate.dev,modelstagerequests.stagegate.dev";

/// The controller's (and the Helm release's) namespace.
pub const CONTROLLER_NAMESPACE: &str = "stagegate-system";

/// How the chart is installed.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Default values: one ClusterRole, every namespace watched.
    ClusterWide,
    /// `ci/namespaced-values.yaml` with `watchNamespaces` set to these (the
    /// release namespace not among them): Roles only.
    Namespaced(Vec<String>),
}

/// A test API server with the CRDs and the chart's RBAC installed, and a private temp directory.
pub struct Cluster {
    /// The server.
    pub server: KubeApiServer,
    /// Temp dir: kubeconfigs, store, logs.
    pub dir: tempfile::TempDir,
    /// How the chart's RBAC was rendered.
    pub mode: Mode,
    /// The rendered ServiceAccount, Roles and bindings (applied with kubectl).
    pub rbac: PathBuf,
    /// The chart's ServiceAccount the controller runs as.
    pub service_account: String,
    /// Requests taken out of the server's log by [`Cluster::clear_log`], kept for the RBAC check.
    seen: std::cell::RefCell<Vec<RecordedRequest>>,
}

impl Cluster {
    /// A cluster-wide install: [`Cluster::start_with`] with [`Mode::ClusterWide`].
    pub fn start() -> Self {
        Self::start_with(Mode::ClusterWide)
    }

    /// Starts a server, installs the CRDs with `kubectl apply -f crds/`, creates
    /// the controller's namespace (and the watched ones) and applies the RBAC
    /// rendered from the chart for `mode`.
    pub fn start_with(mode: Mode) -> Self {
        let server = KubeApiServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let crds = support::root().join("crds");
        server
            .kubectl(&["apply", "-f", crds.to_str().unwrap_or_default()])
            .assert_success();
        let mut namespaces = vec![CONTROLLER_NAMESPACE.to_string()];
        let mut values = Vec::new();
        if let Mode::Namespaced(watched) = &mode {
            namespaces.extend(watched.iter().cloned());
            let own = dir.path().join("watched-values.yaml");
            std::fs::write(&own, format!("watchNamespaces: {watched:?}\n")).expect("write values");
            values = vec![
                support::root().join("charts/stagegate/ci/namespaced-values.yaml"),
                own,
            ];
        }
        let ns = dir.path().join("namespaces.yaml");
        let docs: Vec<String> = namespaces
            .iter()
            .map(|n| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n"))
            .collect();
        std::fs::write(&ns, docs.join("---\n")).expect("write namespace manifest");
        server.kubectl(&["apply", "-f", s(&ns)]).assert_success();
        let values: Vec<&Path> = values.iter().map(PathBuf::as_path).collect();
        let rendered = crate::helm::render_rbac(CONTROLLER_NAMESPACE, &values);
        let rbac = dir.path().join("rbac.yaml");
        std::fs::write(&rbac, &rendered).expect("write rendered RBAC");
        server.kubectl(&["apply", "-f", s(&rbac)]).assert_success();
        let service_account = serde_yaml::Deserializer::from_str(&rendered)
            .filter_map(|d| <Value as serde::Deserialize>::deserialize(d).ok())
            .find(|v| v["kind"] == "ServiceAccount")
            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
            .expect("the chart renders a ServiceAccount");
        Cluster {
            server,
            dir,
            mode,
            rbac,
            service_account,
            seen: Default::default(),
        }
    }

    /// Changes the applied chart RBAC with `edit` (on its parsed documents) and
    /// applies the result; returns what `edit` returns.
    pub fn edit_rbac<T>(&self, edit: impl FnOnce(&mut Vec<Value>) -> T) -> T {
        let text = std::fs::read_to_string(&self.rbac).expect("read rendered RBAC");
        let mut docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .filter_map(|d| <Value as serde::Deserialize>::deserialize(d).ok())
            .collect();
        let out = edit(&mut docs);
        let yaml: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).expect("YAML"))
            .collect();
        std::fs::write(&self.rbac, yaml.join("---\n")).expect("write edited RBAC");
        self.kubectl(&["apply", "-f", s(&self.rbac)]);
        out
    }

    /// A kubeconfig with a fresh token of the chart's ServiceAccount, and the token.
    pub fn service_account_kubeconfig(&self, file: &str) -> (PathBuf, String) {
        let token = self.server.token_for(Identity::service_account(
            CONTROLLER_NAMESPACE,
            &self.service_account,
        ));
        let path = self
            .server
            .write_kubeconfig_with_token(self.dir.path(), file, &token);
        (path, token)
    }

    /// Starts a fresh request log (the old one still counts for the RBAC check).
    pub fn clear_log(&self) {
        let old = self.server.take_requests();
        self.seen.borrow_mut().extend(old);
    }

    /// Runs kubectl and panics unless it succeeds; returns stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.server.kubectl(args).assert_success().stdout.clone()
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl output is not JSON ({e}): {out}"))
    }

    /// The store file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }

    /// The store's current state, read through the library.
    pub fn store(&self) -> StoreState {
        SqliteStore::open(&self.store_path())
            .and_then(|s| s.load_state())
            .expect("read the store")
    }

    /// Starts `stagegate run --kube` with `identity` and extra environment,
    /// as the chart's ServiceAccount (its own token), watching what the mode watches.
    pub fn controller(&self, identity: &str, env: &[(&str, &str)]) -> Controller {
        self.controller_on(identity, &self.store_path(), env)
    }

    /// [`Cluster::controller`] on the store `store` (a SQLite path or a `postgres://` URL),
    /// with a server key file every controller of this cluster shares.
    pub fn controller_on(&self, identity: &str, store: &Path, env: &[(&str, &str)]) -> Controller {
        self.controller_with(identity, store, &["--resync", "60s"], env)
    }

    /// [`Cluster::controller_on`] with `args` after the common flags (which leave
    /// `--resync` to them).
    pub fn controller_with(
        &self,
        identity: &str,
        store: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Controller {
        let started = now_ms();
        let (kubeconfig, token) =
            self.service_account_kubeconfig(&format!("{identity}-{started}.kubeconfig"));
        let log = self.dir.path().join(format!("{identity}-{started}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        // stdout (where the listeners are announced) and stderr share the log: one offset, one order.
        let out = file.try_clone().expect("log file");
        let mut cmd = crate::support::stagegate();
        cmd.args(["run", "--kube", "--store"])
            .arg(store)
            .arg("--server-key-file")
            .arg(self.dir.path().join("server.key"))
            .args([
                "--argon2-memory-kib",
                "8",
                "--argon2-iterations",
                "1",
                "--lease-duration",
                "3s",
                "--debounce",
                "100ms",
            ])
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAMESPACE", CONTROLLER_NAMESPACE)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info,kube=warn")
            .env("STAGEGATE_METRICS_LISTEN", "127.0.0.1:0")
            .env_remove("STAGEGATE_FAILPOINT")
            .stdout(out)
            .stderr(file);
        if let Mode::Namespaced(watched) = &self.mode {
            for n in watched {
                cmd.args(["--namespace", n]);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start stagegate run --kube");
        Controller { child, log, token }
    }

    /// The controller's requests the server refused with 403.
    pub fn forbidden(&self) -> Vec<RecordedRequest> {
        self.controller_requests()
            .into_iter()
            .filter(|r| r.status == 403)
            .collect()
    }

    /// The controller's requests logged so far (the ServiceAccount's; kubectl's left out).
    pub fn controller_requests(&self) -> Vec<RecordedRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| self.is_controller(r))
            .collect()
    }

    fn is_controller(&self, r: &RecordedRequest) -> bool {
        let sa = format!(
            "system:serviceaccount:{CONTROLLER_NAMESPACE}:{}",
            self.service_account
        );
        r.user.as_deref() == Some(sa.as_str())
    }

    /// Fails when the controller used a (verb, resource) not in the RBAC list,
    /// or when the server refused one of its requests (403).
    pub fn check_rbac(&self) {
        let allowed = rbac_list();
        let mut all = self.seen.borrow().clone();
        all.extend(self.server.requests());
        // Every request the controller sent carried the ServiceAccount's token.
        let anonymous: Vec<String> = all
            .iter()
            .filter(|r| !r.user_agent.as_deref().unwrap_or("").starts_with("kubectl"))
            .filter(|r| !self.is_controller(r))
            .map(|r| format!("{} {} as {:?}", r.verb, r.path, r.user))
            .collect();
        assert!(
            anonymous.is_empty(),
            "requests not made as the chart's ServiceAccount: {anonymous:#?}"
        );
        all.retain(|r| self.is_controller(r));
        assert!(!all.is_empty(), "the controller sent no request");
        let refused: Vec<String> = all
            .iter()
            .filter(|r| r.status == 403)
            .map(|r| format!("{} {} {}", r.verb, r.path, r.query))
            .collect();
        assert!(
            refused.is_empty(),
            "the rendered chart RBAC refused the controller: {refused:#?}"
        );
        let used = used_calls(&all);
        eprintln!("controller API calls: {used:#?}");
        let missing: Vec<&String> = used.difference(&allowed).collect();
        assert!(
            missing.is_empty(),
            "the controller used API calls not in tests/fixtures/rbac/controller-api-calls.txt \
             (add them there and to the chart's RBAC): {missing:#?}"
        );
    }
}

/// A running controller process; killed when dropped.
pub struct Controller {
    /// The process.
    pub child: Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Its bearer token (the chart's ServiceAccount).
    pub token: String,
}

impl Controller {
    /// `http://ADDR` of the identity API (`--listen`), once the process has announced it.
    pub fn api_url(&self) -> String {
        self.announced("  api:        http://")
    }

    /// `http://ADDR` of the metrics listener (`--metrics-listen`), once announced.
    pub fn metrics_url(&self) -> String {
        let url = self.announced("  metrics:    http://");
        url.strip_suffix("/metrics").unwrap_or(&url).to_string()
    }

    /// `http://` and the rest of the first log line starting with `prefix` (waits for it).
    fn announced(&self, prefix: &str) -> String {
        wait_for(30, prefix.trim(), Some(self), || {
            self.log()
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|rest| format!("http://{}", rest.trim()))
        })
    }

    /// Its log so far: every line logged before this call (the process writes its log
    /// in batches, each within `BATCH_WINDOW` of its first line; the wait leaves a loaded
    /// machine room to schedule the writer).
    pub fn log(&self) -> String {
        std::thread::sleep(20 * stagegate::cli::logging::BATCH_WINDOW);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of its log.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// How many reconciles it completed.
    pub fn reconciles(&self) -> usize {
        self.log().matches("reconciled").count()
    }

    /// Sends SIGTERM and waits for a graceful exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "controller did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself (e.g. an injected crash).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "controller did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds; panics with `what` and the log.
pub fn wait_for<T>(
    secs: u64,
    what: &str,
    ctl: Option<&Controller>,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\ncontroller log:\n{}",
                ctl.map(Controller::log_tail).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// `GET url` with an optional bearer token: status and body, or `None` when nothing answers.
pub fn http_get(url: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut request = client.get(url);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let reply = request.send().ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.text().unwrap_or_default()))
}

/// Polls `GET url` until it answers `status`; returns the body.
pub fn wait_status(ctl: &Controller, url: &str, bearer: Option<&str>, status: u16) -> String {
    wait_for(30, &format!("{status} from {url}"), Some(ctl), || {
        http_get(url, bearer)
            .filter(|(s, _)| *s == status)
            .map(|(_, body)| body)
    })
}

/// The allowed `<group> <resource> <verb>` lines.
pub fn rbac_list() -> BTreeSet<String> {
    let path = support::root().join("tests/fixtures/rbac/controller-api-calls.txt");
    std::fs::read_to_string(&path)
        .expect("read the RBAC list")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The `<group> <resource> <verb>` of every resource request not made by kubectl.
pub fn used_calls(log: &[RecordedRequest]) -> BTreeSet<String> {
    log.iter()
        .filter(|r| !r.user_agent.as_deref().unwrap_or("").starts_with("kubectl"))
        .filter_map(|r| {
            let resource = r.resource.as_ref()?;
            let group = match r.group.as_deref() {
                Some("") | None => "core",
                Some(g) => g,
            };
            Some(format!("{group} {resource} {}", r.verb))
        })
        .collect()
}

/// Writes requests that change something (everything but get/list/watch), Lease renewals left out.
pub fn writes(log: &[RecordedRequest]) -> Vec<String> {
    log.iter()
        .filter(|r| !matches!(r.verb.as_str(), "get" | "list" | "watch"))
        .filter(|r| r.resource.as_deref() != Some("leases"))
        .map(|r| format!("{} {} {}", r.verb, r.path, r.body.as_deref().unwrap_or("")))
        .collect()
}

/// The Ready condition of an object.
pub fn ready(obj: &Value) -> Option<&Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Whether an object's status describes its current generation.
pub fn observed(obj: &Value) -> bool {
    let g = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    g.is_some()
        && obj
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            == g
        && ready(obj).is_some()
}

/// Writes the `ml-platform` namespace, maria's password Secret and the examples.
pub fn apply_examples(c: &Cluster) {
    let ex = support::root().join("examples");
    c.kubectl(&[
        "apply",
        "-f",
        ex.join("00-namespace.yaml").to_str().unwrap_or_default(),
    ]);
    // The Secret an administrator provides for maria (kubectl create secret sends protobuf, which the test server does not speak).
    let pw = c.dir.path().join("maria-password.yaml");
    std::fs::write(
        &pw,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: maria-password, namespace: ml-platform}\nstringData: {password: correct-horse-battery}\n",
    )
    .expect("write maria-password.yaml");
    c.kubectl(&["apply", "-f", s(&pw)]);
    c.kubectl(&["apply", "-f", ex.to_str().unwrap_or_default()]);
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}
