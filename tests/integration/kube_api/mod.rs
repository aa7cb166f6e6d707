//! An in-process Kubernetes API server for end-to-end tests of the
//! controller and of kubectl workflows, where no kube-apiserver exists.
//! Test-only: the product talks to it through an ordinary kubeconfig.
//!
//! It speaks enough of the HTTP API for the real kubectl and kube-rs:
//! legacy discovery, OpenAPI v3 (field-validation support and CRD schemas),
//! CRD registration with structural-schema pruning, defaulting and
//! validation, list/watch with resourceVersions, bookmarks,
//! `sendInitialEvents` and 410 Gone, label and field selectors, all four
//! patch types, the status subresource, generations, finalizers, owner
//! garbage collection, namespace termination, printer-column Tables and
//! Status errors. Every request is logged so tests can assert what a client
//! did.
//!
//! ```ignore
//! // A synchronous test that runs the product as a child process.
//! let server = KubeApiServer::start();
//! let tmp = tempfile::tempdir()?;
//! server.kubectl(&["apply", "-f", crds_dir]).assert_success();
//! let kubeconfig = server.write_kubeconfig(tmp.path());
//! let mut child = Command::new(env!("CARGO_BIN_EXE_stagegate"))
//!     .args(["run", "--kube"]).env("KUBECONFIG", &kubeconfig).spawn()?;
//! server.kubectl(&["apply", "-f", "examples/"]).assert_success();
//! let ready = server.wait_until(Duration::from_secs(10), |s| {
//!     let user = s.object("stagegate.dev", "users", "default", "alice")?;
//!     (user["status"]["phase"] == "Invited").then_some(user)
//! });
//! assert!(server.take_requests().iter().any(|r| r.resource.as_deref() == Some("users/status")));
//! ```
//!
//! Async tests use `server.client()` for a `kube::Client`. No maintained
//! crate fits: `kube-fake-client` and `tower-test` mocks are in-memory
//! services behind a kube `Client`, which kubectl cannot talk to.

mod auth;
mod defaults;
mod deletion;
mod discovery;
mod events;
mod handlers;
mod limits;
mod patch;
mod protobuf;
mod registry;
mod schema;
mod selectors;
mod status;
mod store;
mod table;
mod watch;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use auth::Tokens;
pub use auth::{Identity, ADMIN_TOKEN};
pub use handlers::RecordedRequest;
use handlers::Shared;
use store::Store;

/// A running fake API server on 127.0.0.1; it stops when dropped.
pub struct KubeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Holds the harness's own kubeconfig and kubectl's cache.
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// What one kubectl run printed and how it exited.
#[derive(Debug)]
pub struct KubectlOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// Whether kubectl exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panic with both streams unless kubectl exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "kubectl failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

impl KubeApiServer {
    /// Start a server on a random port, on its own runtime thread, so that
    /// synchronous tests and async tests alike can use it.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let mut store = Store::new();
        auth::bootstrap_policy(&mut store);
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            log: Mutex::new(Vec::new()),
            address: addr.to_string(),
            tokens: Mutex::new(Tokens::new()),
            lease_delay: Mutex::new(Default::default()),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kube-api-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::spawn(namespace_controller(state.clone()));
                    let app = axum::Router::new()
                        .fallback(handlers::handle)
                        .with_state(state);
                    // Not a graceful shutdown: open watches would keep it waiting.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })
            .expect("spawn server thread");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = KubeApiServer {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
            kubeconfig: PathBuf::new(),
            dir,
        };
        server.kubeconfig = server.write_kubeconfig(server.dir.path());
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig pointing at this server (context namespace
    /// `default`, the administrator's token) as `dir/kubeconfig`, and return its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        self.write_kubeconfig_with_token(dir, "kubeconfig", ADMIN_TOKEN)
    }

    /// Write `dir/<file>`: a kubeconfig for this server that authenticates with `token`.
    pub fn write_kubeconfig_with_token(&self, dir: &Path, file: &str, token: &str) -> PathBuf {
        let path = dir.join(file);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n\
             users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    \
             user: test\n    namespace: default\ncurrent-context: test\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// A new bearer token for `identity` (a ServiceAccount's is refused once
    /// the ServiceAccount is gone, as a real server refuses it).
    pub fn token_for(&self, identity: Identity) -> String {
        self.shared
            .tokens
            .lock()
            .expect("tokens lock")
            .issue(identity)
    }

    /// Makes every Lease request made with `token` wait `delay` before it is
    /// served (`None`: no delay), as a partitioned API server would for one replica.
    pub fn delay_lease_requests(&self, token: &str, delay: Option<std::time::Duration>) {
        let mut delays = self.shared.lease_delay.lock().expect("lease delay lock");
        match delay {
            Some(d) => delays.insert(token.to_string(), d),
            None => delays.remove(token),
        };
    }

    /// A `kubectl` command for this server (private kubeconfig and discovery
    /// cache), for runs in the background such as `get -w`.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG");
        command
    }

    /// Run the real kubectl against this server and wait for it.
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        let out = self
            .kubectl_command(args)
            .output()
            .expect("run kubectl (is it on PATH?)");
        KubectlOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A kube-rs configuration for this server (default namespace `default`), as the administrator.
    pub fn kube_config(&self) -> kube::Config {
        self.kube_config_with_token(ADMIN_TOKEN)
    }

    /// A kube-rs configuration that authenticates with `token`.
    pub fn kube_config_with_token(&self, token: &str) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("server URL is a valid URI"));
        config.auth_info =
            serde_json::from_value(serde_json::json!({ "token": token })).expect("auth info");
        config
    }

    /// A kube-rs client; call it inside a tokio runtime (the client spawns a worker).
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config()).expect("kube client")
    }

    /// Every request logged so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Return the logged requests and start a fresh log.
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut *self.shared.log.lock().expect("log lock"))
    }

    /// Forget the logged requests.
    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// Create an object straight in the store (`group` "" for core), bypassing
    /// HTTP and the log: bulk setup such as benchmarks (benches/kube_secrets.rs).
    #[allow(dead_code)]
    pub fn create_object(&self, group: &str, plural: &str, namespace: &str, body: Value) {
        let mut store = self.shared.store.lock().expect("store lock");
        let rt = store
            .registry
            .storage(group, plural)
            .expect("a served resource")
            .clone();
        store
            .create(&rt, namespace, body, &store::WriteOpts::default())
            .expect("a valid object");
    }

    /// Drop the watch history, so that resuming any earlier resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// Read an object straight from the store (`group` "" for core), bypassing HTTP and the log.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store.lock().expect("store lock");
        let rt = store.registry.storage(group, plural)?.clone();
        store.get(&rt, namespace, name).ok()
    }

    /// Poll `check` every 20 ms until it returns `Some` or `timeout` passes;
    /// for synchronous tests waiting on a controller running as a child process.
    pub fn wait_until<T>(
        &self,
        timeout: std::time::Duration,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(found) = check(self) {
                return Some(found);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stop serving; open connections are dropped.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Empties and removes terminating namespaces shortly after their deletion,
/// asynchronously as in a cluster, so `kubectl delete -f` of a namespace and
/// its contents succeeds.
async fn namespace_controller(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tick.tick().await;
        let grace = std::time::Duration::from_millis(500);
        shared
            .store
            .lock()
            .expect("store lock")
            .finalize_namespaces(grace);
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
