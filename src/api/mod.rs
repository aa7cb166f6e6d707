//! The identity HTTP API: password login and sessions, token and session
//! introspection, authorization decisions and visible models, health,
//! readiness and Prometheus metrics (routes in `docs/openapi.yaml`).
//!
//! ```text
//!  apply ──► store ──► ApiState::poll_changes ──► Index (users, grants, token keys, models) ──┐
//!   (journal: keys each commit wrote; patch) └─► SessionCache                                ├─► handlers ──► policy::decide
//!  request ──► observe (id, log, metrics) ──► rate limit ──► Caller (bearer) ────────────────┘
//! ```
//!
//! The hot path (token check, session check, decision) reads only the
//! in-memory index; SQL runs at login, logout and refresh.

mod account;
mod audit;
mod auth;
mod config;
mod console;
mod devices;
mod error;
mod handlers;
mod index;
mod metrics;
mod middleware;
mod readiness;
mod server;
mod sessions;
mod state;
mod throttle;

pub use account::{Account, SessionList, SessionView};
pub use auth::{Caller, Login};
pub use config::{ApiConfig, BackoffPolicy, RateLimitConfig};
pub use console::SESSION_COOKIE;
pub use devices::DEVICE_PREFIX;
pub use error::{ApiError, ErrorBody};
pub use handlers::{
    AuthorizeResponse, Health, LoginResponse, ModelList, ModelView, RoleGrant, WhoAmI,
};
pub use index::{Index, TokenCheckError, TokenEntry, TokenIdentity, UserEntry};
pub use metrics::Metrics;
pub use middleware::REQUEST_ID;
pub use readiness::{BrokenFile, Readiness};
pub use sessions::{session_hash, SESSION_PREFIX};
pub use state::{ApiState, StateError};
pub use throttle::{CallerLimiter, LoginClient, LoginThrottle, RateLimiter};

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{on, MethodFilter};
use axum::Router;
use std::future::Future;
use tower::util::MapResponseLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

/// Collects routes and remembers each (method, path), so the route table can be checked against the OpenAPI file.
struct Routes {
    router: Router<ApiState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn add<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, ApiState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }
}

fn routes() -> Routes {
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .add(Method::POST, "/v1/login", handlers::login)
    .add(Method::POST, "/v1/logout", handlers::logout)
    .add(Method::GET, "/v1/whoami", handlers::whoami)
    .add(Method::POST, "/v1/authorize", handlers::authorize)
    .add(Method::GET, "/v1/models", handlers::models)
    .add(Method::GET, "/v1/audit", audit::audit)
    .add(Method::POST, "/v1/invitations/accept", account::accept)
    .add(Method::GET, "/v1/invitations/accept", account::accept_page)
    .add(Method::GET, "/v1/account", account::account)
    .add(
        Method::POST,
        "/v1/account/password",
        account::change_password,
    )
    .add(Method::GET, "/v1/account/sessions", account::sessions)
    .add(
        Method::DELETE,
        "/v1/account/sessions/{id}",
        account::end_session,
    )
    .add(Method::GET, "/healthz", handlers::healthz)
    .add(Method::GET, "/readyz", handlers::readyz)
    .add(Method::GET, "/metrics", handlers::metrics)
}

/// Every (method, path) the server answers, as registered.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().table
}

/// The application: routes, JSON fallbacks, body limit, rate limit, request ids and access log.
///
/// Outermost first: every error response the server produces gets the JSON body
/// (`json_errors`); request ids, header limits (431), the access log and metrics (one
/// middleware); panics (500); the request timeout (408); the rate limit (429); the body limit
/// (413).
pub fn router(state: ApiState) -> Router {
    let limit = state.config().body_limit;
    let timeout = state.config().request_timeout;
    routes()
        .router
        .merge(console::router())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::rate_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(MapResponseLayer::new(middleware::json_errors))
        .with_state(state)
}

/// Only `GET /metrics`, for a separate metrics port that Prometheus (and a NetworkPolicy) can target.
pub fn metrics_router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(handlers::metrics))
        .with_state(state)
}

/// Serves only `GET /metrics` on `listener` (the separate metrics port), with the same
/// connection limits and timeouts as the API, until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config().clone();
    let app = metrics_router(state).layer(MapResponseLayer::new(middleware::json_errors));
    server::run(listener, app, &config, shutdown).await
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight requests.
///
/// Also polls the store for applies made by other processes every `poll_interval`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let poller = state.config().poll_interval.map(|every| {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let s = state.clone();
                match tokio::task::spawn_blocking(move || s.poll_changes()).await {
                    Ok(Ok(true)) => {
                        tracing::info!("store changed by another process; index refreshed")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "polling the store failed"),
                    Err(e) => tracing::warn!(error = %e, "store poll task failed"),
                }
            }
        })
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "API listening");
    let config = state.config().clone();
    let result = server::run(listener, router(state), &config, shutdown).await;
    if let Some(p) = poller {
        p.abort();
    }
    tracing::info!("API stopped");
    result
}
