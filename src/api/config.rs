//! Settings of the HTTP API, with defaults for production and knobs that let
//! tests shrink the throttling windows.

use crate::secrets::PasswordParams;
use std::net::SocketAddr;
use std::time::Duration;

/// The failed-login back-off policy; counted in the store, so shared by every process using it.
pub use crate::store::BackoffPolicy;

/// A request rate limit: a token bucket per key (a client address, or an authenticated caller).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second per key.
    pub per_second: f64,
    /// Bucket size: requests a key may send at once.
    pub burst: u32,
}

/// Everything the API server can be told.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Address to listen on (`stagegate run --listen`).
    pub listen: SocketAddr,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// argon2id parameters of the dummy hash unknown users are verified against (match the store's).
    pub password_params: PasswordParams,
    /// Password verifications running at once on the blocking pool.
    pub login_concurrency: usize,
    /// How long a login waits for a verification slot before a 429.
    pub login_queue_timeout: Duration,
    /// Back-off per (account, client address): the strict limit a single attacker hits.
    pub login_backoff_per_client: BackoffPolicy,
    /// Back-off per account from all clients: bounds distributed guessing with a short cap.
    pub login_backoff_per_account: BackoffPolicy,
    /// Lifetime of a device token (a known client's separate failed-login budget).
    pub device_ttl: Duration,
    /// Longest wait for a request head, from the connection's start or the end of the previous
    /// response: closes half-open and idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// Longest time to answer one request, reading its body included (then 408).
    pub request_timeout: Duration,
    /// Most connections open at once; past it new ones wait to be accepted.
    pub max_connections: usize,
    /// Most request header fields (then 431).
    pub max_headers: usize,
    /// Most bytes of request header names and values together (then 431).
    pub max_header_bytes: usize,
    /// Request rate limit per client address for everything but an authenticated caller on a
    /// decision route: login, logout, audit, and any request without a valid credential.
    /// `None` disables it (tests).
    pub rate_limit: Option<RateLimitConfig>,
    /// Request rate limit per authenticated caller (API token, or user over all its sessions) on
    /// the decision routes (`/v1/authorize`, `/v1/models`, `/v1/whoami`); `None`: unlimited.
    pub caller_rate_limit: Option<RateLimitConfig>,
    /// How often to look for applies made by other processes (store revision); `None` = never.
    pub poll_interval: Option<Duration>,
    /// The URL people reach the API and console at (`stagegate run --public-url`), when set.
    pub public_url: Option<String>,
}

impl ApiConfig {
    /// Whether cookies get `Secure`: the public URL is https (TLS ends at a proxy in front).
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            session_ttl: Duration::from_secs(12 * 3600),
            body_limit: 16 * 1024,
            password_params: PasswordParams::default(),
            login_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            login_queue_timeout: Duration::from_secs(5),
            // OWASP: after 5 failures the delay doubles from 1 s up to 15 min; reset on success.
            login_backoff_per_client: BackoffPolicy {
                free_failures: 5,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(15 * 60),
                forget_after: Duration::from_secs(24 * 3600),
            },
            login_backoff_per_account: BackoffPolicy {
                free_failures: 50,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(60),
                forget_after: Duration::from_secs(3600),
            },
            device_ttl: Duration::from_secs(90 * 24 * 3600),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_headers: 100,
            max_header_bytes: 16 * 1024,
            // Anonymous and login traffic: a person or a script, never a platform component.
            rate_limit: Some(RateLimitConfig {
                per_second: 50.0,
                burst: 100,
            }),
            // A model gateway asks for every request it serves: its rate is the platform's.
            caller_rate_limit: None,
            poll_interval: Some(Duration::from_secs(5)),
            public_url: None,
        }
    }
}
