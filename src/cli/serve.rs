//! The identity API as `stagegate run` serves it, in directory and Kubernetes mode alike.

use crate::api::{serve, serve_metrics, ApiConfig, ApiState, BackoffPolicy, RateLimitConfig};
use crate::secrets::{PasswordParams, ServerKey};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// HTTP flags of `stagegate run`.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Address of the identity API and the /healthz, /readyz and /metrics endpoints.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "STAGEGATE_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Also serve /metrics alone on this address (e.g. 0.0.0.0:9090 for Prometheus).
    #[arg(long, value_name = "ADDR", env = "STAGEGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Lifetime of a login session, e.g. 12h, 30m.
    #[arg(long, value_name = "DURATION", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,
    /// Most HTTP connections open at once; keep it well under the file descriptor limit.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,
    /// Longest wait for a request's headers, also after a response on a kept-alive connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// Longest time to answer one request, reading its body included (then 408).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Failed logins an account allows one client (address or known device) before delays start.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub login_free_failures: u32,
    /// First delay after those failures; it doubles with each further failure, up to 15m.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub login_lockout: Duration,
    /// Requests per second per client address for login, logout, audit and any request
    /// without a valid credential; 0 turns the limit off.
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 50.0,
        env = "STAGEGATE_ADDRESS_RATE_LIMIT"
    )]
    pub address_rate_limit: f64,
    /// Requests a client address may send at once before --address-rate-limit applies.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        env = "STAGEGATE_ADDRESS_BURST"
    )]
    pub address_burst: u32,
    /// Requests per second per authenticated caller (API token, or user over all its sessions)
    /// on /v1/authorize, /v1/models and /v1/whoami; 0 (the default) means no limit.
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 0.0,
        env = "STAGEGATE_CALLER_RATE_LIMIT"
    )]
    pub caller_rate_limit: f64,
    /// Requests a caller may send at once before --caller-rate-limit applies (default: twice the rate).
    #[arg(long, value_name = "N", env = "STAGEGATE_CALLER_BURST")]
    pub caller_burst: Option<u32>,
    /// The address people reach this API and web console at, e.g. https://stagegate.example.com
    /// (behind a proxy or ingress): invitation Secrets then also hold a ready-to-open
    /// acceptance URL, and an https URL makes the console's cookies Secure.
    #[arg(long, value_name = "URL", env = "STAGEGATE_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

/// Accepts an absolute http(s) URL without query or fragment; returns it without a trailing `/`.
fn parse_public_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} must be a plain base URL (no query, fragment or spaces)"
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

impl ApiArgs {
    /// The two request rate limits (per address, per caller) these flags ask for.
    pub fn rate_limits(&self) -> (Option<RateLimitConfig>, Option<RateLimitConfig>) {
        let limit = |rate: f64, burst: u32| {
            (rate > 0.0).then_some(RateLimitConfig {
                per_second: rate,
                burst: burst.max(1),
            })
        };
        let caller_burst = self.caller_burst.unwrap_or_else(|| {
            (self.caller_rate_limit * 2.0)
                .ceil()
                .min(f64::from(u32::MAX)) as u32
        });
        (
            limit(self.address_rate_limit, self.address_burst),
            limit(self.caller_rate_limit, caller_burst),
        )
    }
}

/// Resolves once `rx` turns true (SIGTERM/SIGINT).
pub async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// How often the API polls a PostgreSQL store that other processes write to.
const SHARED_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Opens the API's own store connection, binds the listeners and serves until `shutdown`.
/// Returns the state so the daemon can refresh its index after each apply.
pub async fn start(
    args: &ApiArgs,
    store: &Path,
    key: ServerKey,
    password_params: PasswordParams,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<ApiState> {
    let defaults = ApiConfig::default();
    let per_client = BackoffPolicy {
        free_failures: args.login_free_failures.max(1),
        base: args.login_lockout,
        cap: defaults
            .login_backoff_per_client
            .cap
            .max(args.login_lockout),
        ..defaults.login_backoff_per_client
    };
    let (rate_limit, caller_rate_limit) = args.rate_limits();
    let config = ApiConfig {
        listen: args.listen,
        rate_limit,
        caller_rate_limit,
        session_ttl: args.session_ttl,
        password_params,
        max_connections: args.max_connections.max(1),
        header_read_timeout: args.header_read_timeout,
        request_timeout: args.request_timeout,
        login_backoff_per_client: per_client,
        // Processes sharing a PostgreSQL store see each other's applies, logins and logouts by
        // polling it: often enough that a revocation ends sessions everywhere within a second.
        poll_interval: match defaults.poll_interval {
            Some(every) if crate::store::pg::is_url(store) => Some(every.min(SHARED_POLL)),
            other => other,
        },
        public_url: args.public_url.clone(),
        ..defaults
    };
    let path = store.to_path_buf();
    let state = tokio::task::spawn_blocking(move || ApiState::open(config, &path, key))
        .await
        .context("API state task failed")?
        .context("cannot open the store for the API")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("  api:        http://{}", listener.local_addr()?);
    let served = state.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = serve(listener, served, stopped(stop)).await {
            tracing::error!(error = %e, "API server failed");
        }
    });
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!("  metrics:    http://{}/metrics", listener.local_addr()?);
        let served = state.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(listener, served, stopped(shutdown)).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    Ok(state)
}

/// Reloads the API's index after a reconcile when the store's revision moved (every
/// commit bumps it); a reconcile that changed nothing costs one small query, not a
/// reload of every user, binding and token (blocking: runs on the blocking pool).
pub async fn refresh(state: &ApiState) {
    let s = state.clone();
    let poll = move || {
        let reloaded = s.poll_changes();
        if matches!(reloaded, Ok(true)) {
            // The store state the new index was built from is dropped by now.
            crate::sources::memory::release_freed();
        }
        reloaded
    };
    match tokio::task::spawn_blocking(poll).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "refreshing the API index failed"),
        Err(e) => tracing::warn!(error = %e, "API refresh task failed"),
    }
}
