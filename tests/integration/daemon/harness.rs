//! A running `stagegate run --dir` on temp directories, and polling with a deadline.

use crate::stores::StoreKind;
use crate::support;
use stagegate::store::{AnyStore, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Copies `examples/` (the YAML files) into `to`.
pub fn copy_examples(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(support::root().join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// A temp workspace: `manifests/`, `state/secrets/`, and the store: `state/store.db`, or a
/// database of its own on the PostgreSQL test server.
pub struct Workspace {
    pub tmp: tempfile::TempDir,
    kind: StoreKind,
    store: PathBuf,
}

impl Workspace {
    /// An empty workspace on SQLite.
    pub fn new() -> Self {
        Self::on(StoreKind::Sqlite)
    }
    /// An empty workspace whose store is `kind`.
    pub fn on(kind: StoreKind) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("manifests")).unwrap();
        let store = kind.location(&tmp.path().join("state/store.db"));
        Workspace { tmp, kind, store }
    }
    pub fn manifests(&self) -> PathBuf {
        self.tmp.path().join("manifests")
    }
    /// The store location `--store` takes: the SQLite file, or the PostgreSQL URL.
    pub fn store_path(&self) -> PathBuf {
        self.store.clone()
    }
    pub fn secrets(&self) -> PathBuf {
        self.tmp.path().join("state/secrets")
    }
    /// Opens the store (SQLite's WAL lets it read while the daemon writes).
    pub fn store(&self) -> AnyStore {
        AnyStore::open(&self.store).unwrap()
    }
    /// `--store` and, on PostgreSQL, `--server-key-file`: the product requires one there
    /// (processes sharing a store must share the key), while on SQLite the tests keep
    /// exercising the default, `server.key` beside the store file.
    fn store_args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["--store".into(), self.store.clone().into()];
        if self.kind == StoreKind::Postgres {
            let key = self.tmp.path().join("state/server.key");
            a.extend(["--server-key-file".into(), key.into()]);
        }
        a
    }
    /// Writes a manifest file atomically (temp file + rename), as editors and git do.
    pub fn write(&self, name: &str, text: &str) {
        let tmp = self.manifests().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.manifests().join(name)).unwrap();
    }
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.manifests().join(name)).unwrap()
    }
    /// `--dir`, `--store`, `--secrets-dir` of this workspace and cheap password hashing.
    pub fn dir_args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["--dir".into(), self.manifests().into()];
        a.extend(self.store_args());
        a.extend(["--secrets-dir".into(), self.secrets().into()]);
        a.extend(["--argon2-memory-kib", "8", "--argon2-iterations", "1"].map(Into::into));
        a
    }
    /// `stagegate apply` of this workspace, run to the end.
    pub fn apply(&self) -> std::process::Output {
        support::stagegate()
            .arg("apply")
            .args(self.dir_args())
            .output()
            .unwrap()
    }
    /// `stagegate status` of this workspace's store.
    pub fn status(&self) -> std::process::Output {
        support::stagegate()
            .args(["status", "--store"])
            .arg(&self.store)
            .output()
            .unwrap()
    }
    /// Starts the daemon with cheap password hashing and a long resync.
    pub fn start(&self, extra: &[&str]) -> Running {
        self.start_logging(extra, "info")
    }

    /// [`Workspace::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(&self, extra: &[&str], filter: &str) -> Running {
        self.start_resyncing("1h", extra, filter)
    }

    /// [`Workspace::start_logging`] with `--resync resync`.
    pub fn start_resyncing(&self, resync: &str, extra: &[&str], filter: &str) -> Running {
        let mut cmd = support::stagegate();
        cmd.env("RUST_LOG", filter);
        cmd.args(["run", "--dir"])
            .arg(self.manifests())
            .args(self.store_args())
            .arg("--secrets-dir")
            .arg(self.secrets())
            .args(["--resync", resync])
            .args(["--argon2-memory-kib", "8", "--argon2-iterations", "1"])
            .args(extra);
        Running::spawn(cmd, self.tmp.path())
    }
}

fn rand_suffix() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A daemon child process; killed on drop if still running.
pub struct Running {
    child: Option<Child>,
    pub log: PathBuf,
    pub out: PathBuf,
}

impl Running {
    /// Spawns `cmd` (a `stagegate run`) at `info` level, its stdout and stderr in files under `logs`.
    pub fn spawn(mut cmd: std::process::Command, logs: &Path) -> Running {
        let log = logs.join(format!("daemon-{}.log", rand_suffix()));
        let out = logs.join(format!("daemon-{}.out", rand_suffix()));
        // A test that counts debug lines sets its own filter.
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("stagegate run starts");
        Running {
            child: Some(child),
            log,
            out,
        }
    }

    /// Its process id (None once terminated or killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
    /// Its stderr so far: every line logged before this call (the process writes its log
    /// in batches, each within `BATCH_WINDOW` of its first line; the wait leaves a loaded
    /// machine room to schedule the writer).
    pub fn log(&self) -> String {
        std::thread::sleep(20 * stagegate::cli::logging::BATCH_WINDOW);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Its stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
    /// Sends SIGTERM and waits (with a deadline) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("daemon did not stop after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Running {
    /// Kills the process at once (SIGKILL: no cleanup, as a crash) and reaps it.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `check` until it returns Some, or panics after `secs` with `what` and the daemon log.
pub fn wait_for<T>(r: &Running, secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; daemon log:\n{}", r.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stored status of an object, if any: (ready, reason).
pub fn status_of(store: &impl Store, kind: &str, ns: &str, name: &str) -> Option<(bool, String)> {
    store
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.kind == kind && s.key.namespace == ns && s.key.name == name)
        .map(|s| (s.ready, s.reason))
}

/// A declared global Admin (`root`): enough to disable the bootstrap administrator.
pub const ROOT_ADMIN: &str = "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: root
  namespace: platform
spec: {}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata:
  name: root-admin
  namespace: platform
spec:
  user: root
  role: Admin
";

/// Where the bootstrap administrator's password is delivered in `ws`.
pub fn bootstrap_secret_file(ws: &Workspace) -> std::path::PathBuf {
    ws.secrets()
        .join("stagegate-system/stagegate-bootstrap-admin.yaml")
}
