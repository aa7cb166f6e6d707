//! Middleware: request ids, one access-log line and the request metrics per
//! request (with bounded label values), header limits, the per-client rate
//! limit, a JSON 500 for panics, and the JSON error body on every error
//! response whatever layer produced it.

use super::auth::bearer;
use super::error::ApiError;
use super::state::ApiState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::LazyLock;
use std::time::Instant;

/// The request id header, taken from the client when well-formed and echoed in the response.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes never rate limited: probes and scrapes must not be refused under load.
const UNLIMITED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
/// Routes that read only the in-memory index: an authenticated caller there is limited per
/// caller (`ApiConfig::caller_rate_limit`, unlimited by default), never per address.
const DECISION_ROUTES: [&str; 3] = ["/v1/authorize", "/v1/models", "/v1/whoami"];

fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// 128 random bits as 32 lowercase hex digits, encoded on the stack: one allocation (the value).
fn new_request_id() -> HeaderValue {
    let bytes: [u8; 16] = rand::random();
    let mut hex = [0u8; 32];
    for (pair, b) in hex.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("unknown"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Methods that are their own metric label; any other method name is `other`, so clients
/// cannot grow the metrics by inventing methods.
const KNOWN_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

/// The metric label of a method: its name when standard, else `other`.
fn method_label(m: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|k| *k == m)
        .map_or("other", |k| k.as_str())
}

/// Every route template, as registered: the metric label of a matched request.
static ROUTES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| super::route_table().into_iter().map(|(_, p)| p).collect());

/// The metric label of a request's route: its template when matched, else `unmatched`.
fn route_of(req: &Request) -> &'static str {
    req.extensions()
        .get::<MatchedPath>()
        .and_then(|p| ROUTES.iter().find(|r| **r == p.as_str()))
        .copied()
        .unwrap_or("unmatched")
}

/// The client address (peer IP), or 0.0.0.0 when served without connect info.
pub fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Assigns the request id, answers 431 for too large a head (see [`too_large_head`]), then
/// logs and measures the request once it is answered. One middleware for both: each layer of
/// middleware costs every request allocations of its own.
pub async fn observe(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| valid_request_id(v))
        .cloned()
        .unwrap_or_else(new_request_id);
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let method = method_label(req.method());
    let route = route_of(&req);
    let client = peer_ip(&req);
    let mut resp = match too_large_head(&state, &req) {
        Some(refusal) => refusal.into_response(),
        None => next.run(req).await,
    };
    let latency = start.elapsed();
    let status = resp.status().as_u16();
    state
        .metrics()
        .observe_request(method, route, status, latency);
    // Only these fields: never headers, bodies, query strings or credentials.
    tracing::info!(
        target: "stagegate::access",
        method = %method,
        route = %route,
        status,
        latency_us = latency.as_micros() as u64,
        request_id = %id.to_str().unwrap_or_default(),
        client = %client,
        "request"
    );
    resp.headers_mut().insert(REQUEST_ID.clone(), id);
    resp
}

/// The 431 (JSON) for more header fields, or more header bytes, than the configuration
/// allows. hyper's own limits are set above these, so only absurd heads get its bare 431.
fn too_large_head(state: &ApiState, req: &Request) -> Option<ApiError> {
    let c = state.config();
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    (headers.len() > c.max_headers || bytes > c.max_header_bytes).then(|| {
        ApiError::HeaderFieldsTooLarge(format!(
            "request headers are too large (at most {} fields and {} bytes)",
            c.max_headers, c.max_header_bytes
        ))
    })
}

/// Gives every error response without a JSON body (axum's and tower-http's rejections, the
/// body limit, the request timeout) the JSON error body, keeping its status and headers.
/// A plain function, for `tower::util::MapResponseLayer`: no future to box per request.
pub fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        // The console's own HTML error pages keep their body.
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let Some(err) = ApiError::from_status(status) else {
        return resp;
    };
    let (mut parts, _) = resp.into_parts();
    let (fresh, body) = err.into_response().into_parts();
    for (name, value) in &fresh.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// Refuses requests over their rate with 429 and `Retry-After`.
///
/// An authenticated caller on a decision route is counted per caller, when a caller limit is
/// configured; the caller is handed on to the handler, so the credential is checked once.
/// Everything else but probes (login, logout, audit, and any request without a valid
/// credential) is counted per client address with the strict limit.
pub async fn rate_limit(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    if UNLIMITED.contains(&route) {
        return next.run(req).await;
    }
    let now = Instant::now();
    let caller = DECISION_ROUTES
        .contains(&route)
        .then(|| bearer(req.headers()))
        .flatten()
        .and_then(|credential| state.authenticate(credential, Timestamp::now()).ok());
    let verdict = match &caller {
        Some(c) => state
            .inner
            .caller_limiter
            .as_ref()
            .map_or(Ok(()), |l| l.take(c.kind(), &c.principal.name, now)),
        None => state
            .inner
            .rate_limiter
            .as_ref()
            .map_or(Ok(()), |l| l.take(&peer_ip(&req), now)),
    };
    if let Err(wait) = verdict {
        state.metrics().request_throttled();
        return ApiError::TooManyRequests {
            message: "request rate limit exceeded".into(),
            retry_after: wait,
        }
        .into_response();
    }
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    next.run(req).await
}

/// The response to a panic in a handler: a plain 500, the panic logged without request data.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal("panic".into()).into_response()
}
