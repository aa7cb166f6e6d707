//! The identity HTTP API: password login and sessions, token and session
//! introspection, authorization decisions and visible models, health,
//! readiness and Prometheus metrics (routes in `docs/openapi.yaml`).
//!
//! ```text
//!  apply ──► store ──► ApiState::poll_changes ──► Index (users, grants, token keys, models) ──┐
//!   (journal: keys each commit wrote; patch) └─► SessionCache                                ├─► handlers ──► policy::decide
//!  request ──► guard (id, log, metrics, rate limit) ──► Caller (bearer) ──────────────────────┘
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
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use std::future::Future;
use tower::util::MapResponseLayer;
use tower::ServiceBuilder;

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
/// (`json_errors`); request ids, header limits (431), the rate limit (429), panics (500), the
/// request timeout (408), the access log and metrics (one layer, `middleware::GuardLayer`);
/// the body limit (413).
pub fn router(state: ApiState) -> Router {
    guarded(
        routes()
            .router
            .merge(console::router())
            .fallback(handlers::not_found)
            .method_not_allowed_fallback(handlers::method_not_allowed),
        state,
    )
}

/// `routes` behind the API's layers (see [`router`]), with `state`.
fn guarded(routes: Router<ApiState>, state: ApiState) -> Router {
    let limit = state.config().body_limit;
    // One `layer` call: axum wraps every route in each layer given to `Router::layer`
    // separately, and clones each wrapped route per request.
    routes
        .layer(
            ServiceBuilder::new()
                .layer(MapResponseLayer::new(middleware::json_errors))
                .layer(middleware::GuardLayer::new(state.clone()))
                .layer(DefaultBodyLimit::max(limit)),
        )
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

#[cfg(test)]
mod guard_tests {
    //! The one guard layer keeps what the five layers it replaced did: panics, timeouts, rate
    //! limits and oversized heads answered in JSON, each with a request id, metrics counted.
    use super::*;
    use crate::secrets::{PasswordParams, ServerKey};
    use crate::store::AnyStore;
    use axum::body::Body;
    use axum::http::{Request, Response, StatusCode};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tower::ServiceExt;

    fn state(config: ApiConfig) -> ApiState {
        let store = Arc::new(Mutex::new(AnyStore::in_memory().unwrap()));
        ApiState::new(config, store, ServerKey::generate()).unwrap()
    }

    fn config() -> ApiConfig {
        ApiConfig {
            password_params: PasswordParams::insecure_fast_for_tests(),
            request_timeout: Duration::from_millis(50),
            rate_limit: None,
            ..ApiConfig::default()
        }
    }

    /// Real route paths (so their metric labels are known) with test handlers.
    fn app(state: ApiState) -> Router {
        async fn panics_later() -> &'static str {
            tokio::task::yield_now().await;
            panic!("handler bug")
        }
        async fn panics_at_once() -> &'static str {
            panic!("at once")
        }
        async fn never() -> &'static str {
            std::future::pending().await
        }
        let routes = Router::new()
            .route("/v1/login", axum::routing::post(panics_later))
            .route("/v1/logout", axum::routing::post(panics_at_once))
            .route("/v1/audit", axum::routing::get(never))
            .route("/healthz", axum::routing::get(|| async { "ok" }));
        guarded(routes, state)
    }

    async fn send(app: &Router, req: Request<Body>) -> (Response<Body>, serde_json::Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, Body::empty()), json)
    }

    fn req(method: &str, path: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    }

    fn request_id(resp: &Response<Body>) -> &str {
        resp.headers()[&REQUEST_ID].to_str().unwrap()
    }

    #[tokio::test]
    async fn panics_before_and_after_the_first_await_are_json_500s_with_a_request_id() {
        let state = state(config());
        let app = app(state.clone());
        for path in ["/v1/login", "/v1/logout"] {
            let (resp, body) = send(&app, req("POST", path)).await;
            assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
            assert_eq!(body["error"], "internal", "{path}");
            assert_eq!(request_id(&resp).len(), 32, "{path}");
        }
        // The server still answers, and counted both.
        let (resp, _) = send(&app, req("GET", "/healthz")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let metrics = state.metrics().encode().unwrap();
        for route in ["/v1/login", "/v1/logout"] {
            assert!(
                metrics
                    .lines()
                    .any(|l| l.contains(&format!("route=\"{route}\""))
                        && l.contains("status=\"500\"")),
                "{route}: {metrics}"
            );
        }
    }

    #[tokio::test]
    async fn a_handler_that_never_answers_gets_a_json_408_and_a_valid_client_id_is_kept() {
        let app = app(state(config()));
        let mut r = req("GET", "/v1/audit");
        r.headers_mut()
            .insert(&REQUEST_ID, "trace-42.a_b".parse().unwrap());
        let (resp, body) = send(&app, r).await;
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body["error"], "request_timeout");
        assert_eq!(request_id(&resp), "trace-42.a_b");
        // An invalid client id is replaced by a fresh one.
        let mut r = req("GET", "/healthz");
        r.headers_mut()
            .insert(&REQUEST_ID, "no spaces".parse().unwrap());
        let (resp, _) = send(&app, r).await;
        assert_eq!(request_id(&resp).len(), 32);
    }

    #[tokio::test]
    async fn rate_limits_and_header_limits_answer_before_the_handler() {
        let app = app(state(ApiConfig {
            rate_limit: Some(RateLimitConfig {
                per_second: 0.001,
                burst: 1,
            }),
            max_headers: 3,
            ..config()
        }));
        // Probes are never limited; anything else without a credential is, per address.
        for _ in 0..3 {
            assert_eq!(
                send(&app, req("GET", "/healthz")).await.0.status(),
                StatusCode::OK
            );
        }
        let (first, _) = send(&app, req("GET", "/v1/audit")).await;
        assert_eq!(first.status(), StatusCode::REQUEST_TIMEOUT);
        let (resp, body) = send(&app, req("POST", "/v1/login")).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"], "too_many_requests");
        assert!(resp.headers().contains_key("retry-after"));
        assert_eq!(request_id(&resp).len(), 32);
        let mut many = req("GET", "/healthz");
        for i in 0..4 {
            many.headers_mut().insert(
                format!("x-h{i}").parse::<axum::http::HeaderName>().unwrap(),
                "v".parse().unwrap(),
            );
        }
        let (resp, body) = send(&app, many).await;
        assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(body["error"], "request_header_fields_too_large");
    }
}
