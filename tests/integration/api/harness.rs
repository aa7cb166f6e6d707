//! An in-process API server on an ephemeral port over a fresh store (a temporary SQLite
//! file or a new PostgreSQL database, see [`StoreKind`]), with helpers that write store
//! rows the way an apply would, then refresh.

use super::client::ApiClient;
use crate::stores::StoreKind;
use jiff::Timestamp;
use stagegate::api::{serve, ApiConfig, ApiState, BackoffPolicy};
use stagegate::policy::{Role, Scope, Stage};
use stagegate::resources::UserState;
use stagegate::secrets::{generate_key, hash_password, PasswordParams, SecretValue, ServerKey};
use stagegate::snapshot::ObjectKey;
use stagegate::store::{
    AnyStore, BindingRow, KeyState, ModelRow, Owner, PasswordSource, Store, StoreOp, TokenKeyRow,
    UserRow,
};
use std::sync::Mutex;
use std::time::Duration;

const NS: &str = "ml-platform";

/// A config for tests: cheap password hashes, no rate limit, no polling.
pub fn test_config() -> ApiConfig {
    ApiConfig {
        password_params: PasswordParams::insecure_fast_for_tests(),
        rate_limit: None,
        poll_interval: None,
        ..ApiConfig::default()
    }
}

/// A back-off policy with short windows.
pub fn fast_backoff(free: u32, base_ms: u64, cap_ms: u64) -> BackoffPolicy {
    BackoffPolicy {
        free_failures: free,
        base: Duration::from_millis(base_ms),
        cap: Duration::from_millis(cap_ms),
        forget_after: Duration::from_secs(3600),
    }
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub client: ApiClient,
    pub state: ApiState,
    pub key: ServerKey,
    writer: Mutex<AnyStore>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server with `config` over an empty store of `kind` (ready).
    pub fn start(kind: StoreKind, config: ApiConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let location = kind.location(&dir.path().join("store.db"));
        Self::start_at(config, &location, ServerKey::generate(), Some(dir))
    }

    /// Starts a server over the store at `path` (a SQLite file or a PostgreSQL URL) with
    /// `key` (ready); `dir` is kept alive with it.
    pub fn start_at(
        config: ApiConfig,
        path: &std::path::Path,
        key: ServerKey,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        super::logs::capture();
        let writer = AnyStore::open(path).expect("store");
        let state = ApiState::open(config, path, key.clone()).expect("api state");
        state.set_ready();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let serving = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).ok();
                serve(listener, serving, async {
                    rx.await.ok();
                })
                .await
                .expect("serve");
            });
        });
        let addr = addr_rx.recv().expect("server address");
        TestServer {
            client: ApiClient::new(&format!("http://{addr}")),
            state,
            key,
            writer: Mutex::new(writer),
            shutdown: Some(tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// Commits `ops` through a second store handle (as the daemon does), then refreshes the API.
    pub fn apply(&self, ops: Vec<StoreOp>) {
        self.writer.lock().unwrap().commit(&ops).expect("commit");
        self.state.refresh().expect("refresh");
    }

    /// Commits without refreshing the API (a change the API has not heard of yet).
    pub fn commit_only(&self, ops: Vec<StoreOp>) {
        self.writer.lock().unwrap().commit(&ops).expect("commit");
    }

    /// Reads a user row.
    pub fn user_row(&self, name: &str) -> UserRow {
        self.writer
            .lock()
            .unwrap()
            .user(name)
            .expect("read")
            .expect("user exists")
    }

    /// Issues a token key for `name`; returns the op and the token string.
    pub fn token(
        &self,
        name: &str,
        role: Role,
        scope: Scope,
        expires_at: Option<Timestamp>,
    ) -> (StoreOp, String, String) {
        let nk = generate_key(&self.key);
        let row = TokenKeyRow {
            key_id: nk.key_id.clone(),
            token_name: name.into(),
            namespace: NS.into(),
            secret_hmac: nk.secret_hmac.clone(),
            role,
            scope,
            owner_user: None,
            issued_at: Timestamp::now(),
            expires_at,
            revoked_at: None,
            revoked_reason: None,
            rotation: 0,
            state: KeyState::Issued,
            secret_name: format!("{name}-token"),
            owner: owner("ApiToken", name),
        };
        let token = nk.token.expose_str().unwrap().to_string();
        (StoreOp::UpsertTokenKey(Box::new(row)), token, nk.key_id)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

/// The declaration owning a row.
pub fn owner(kind: &str, name: &str) -> Option<Owner> {
    Some(Owner {
        key: ObjectKey::new(kind, NS, name),
        source: format!("{kind}.yaml:1"),
    })
}

/// An active user with `password`.
pub fn user(name: &str, password: &str) -> UserRow {
    let mut u = UserRow::new(name, owner("User", name));
    u.password_hash = Some(
        hash_password(
            PasswordParams::insecure_fast_for_tests(),
            &SecretValue::from_string(password.into()),
        )
        .expect("hash"),
    );
    u.password_source = Some(PasswordSource::Ref);
    u
}

/// Upserts an active user with `password`.
pub fn upsert_user(name: &str, password: &str) -> StoreOp {
    StoreOp::UpsertUser(Box::new(user(name, password)))
}

/// Upserts a revoked user (password kept, as apply does).
pub fn revoked_user(name: &str, password: &str) -> StoreOp {
    let mut u = user(name, password);
    u.state = UserState::Revoked;
    StoreOp::UpsertUser(Box::new(u))
}

/// Upserts the binding `binding` of `user`.
pub fn bind(binding: &str, user: &str, role: Role, scope: Scope) -> StoreOp {
    StoreOp::UpsertBinding(BindingRow {
        username: user.into(),
        role,
        scope,
        owner: owner("AccessBinding", binding),
    })
}

/// Deletes the binding `binding`.
pub fn unbind(binding: &str) -> StoreOp {
    StoreOp::DeleteBinding(ObjectKey::new("AccessBinding", NS, binding))
}

/// Upserts a model.
pub fn model(name: &str, scope: Scope, owner: &str, stage: Stage) -> StoreOp {
    StoreOp::UpsertModel(ModelRow {
        name: name.into(),
        scope,
        owner: Some(owner.into()),
        stage,
    })
}

/// The organization of DESIGN §3's cases: one user per role, models in every stage.
pub fn org() -> Vec<StoreOp> {
    let fraud = Scope::project("acme", "fraud");
    let churn = Scope::project("acme", "churn");
    let acme = Scope::customer("acme");
    let mut ops: Vec<StoreOp> = ["ada", "maria", "alan", "anna", "dan", "dora", "greg"]
        .iter()
        .map(|u| upsert_user(u, &format!("{u}-password")))
        .collect();
    ops.extend([
        bind("ada-admin", "ada", Role::Admin, Scope::global()),
        bind("maria-manager", "maria", Role::Manager, acme.clone()),
        bind("alan-analyst", "alan", Role::Analyst, fraud.clone()),
        bind("anna-analyst", "anna", Role::Analyst, churn.clone()),
        bind("dan-developer", "dan", Role::Developer, acme.clone()),
        bind("dora-deployer", "dora", Role::Deployer, acme.clone()),
        // Not allowed globally: the policy ignores it.
        bind("greg-developer", "greg", Role::Developer, Scope::global()),
        model("fraud-dev", fraud.clone(), "alan", Stage::Dev),
        model("fraud-staging", fraud.clone(), "alan", Stage::Staging),
        model("fraud-prod", fraud.clone(), "alan", Stage::Production),
        model("other-dev", fraud.clone(), "dan", Stage::Dev),
        model("maria-dev", fraud.clone(), "maria", Stage::Dev),
        model("churn-staging", churn, "anna", Stage::Staging),
        model(
            "globex-prod",
            Scope::customer("globex"),
            "gina",
            Stage::Production,
        ),
    ]);
    ops
}

/// A server over the organization, on a store of `kind`.
pub fn org_server(kind: StoreKind, config: ApiConfig) -> TestServer {
    let srv = TestServer::start(kind, config);
    srv.apply(org());
    srv
}
