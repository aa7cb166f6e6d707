//! Middleware: request ids, one access-log line and the request metrics per
//! request (with bounded label values), header limits, the per-client rate
//! limit, a JSON 500 for panics, the request timeout (all in one layer,
//! [`Guard`]), and the JSON error body on every error response whatever layer
//! produced it.

use super::auth::bearer;
use super::error::ApiError;
use super::state::ApiState;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};
use std::time::Instant;
use tokio::time::Sleep;
use tower::{Layer, Service};

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

/// The response to a panic in a handler: a plain 500, the panic logged without request data.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal("panic".into()).into_response()
}

/// One layer for everything a request passes before its handler, in this order: the request
/// id, the header limits (431), the rate limit (429), panics (500) and the request timeout
/// (408); then, once answered, the access-log line, the metrics and the id on the response.
///
/// One hand-written layer instead of five (two `from_fn` middlewares, the panic and timeout
/// layers of tower-http, a request-id layer): each layer applied to the router costs every
/// request a clone of its boxed inner route, and a `from_fn` a boxed future and a boxed `Next`
/// besides. The timeout arms its timer only when the handler does not answer on its first
/// poll, so a decision answered at once never touches the timer wheel.
#[derive(Clone)]
pub struct GuardLayer {
    state: ApiState,
}

impl GuardLayer {
    /// The guard for `state`'s configuration, limiters and metrics.
    pub fn new(state: ApiState) -> Self {
        GuardLayer { state }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: ApiState,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
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
        let state = &self.state;
        let answer = match too_large_head(state, &req) {
            Some(refusal) => Answer::Ready {
                response: Some(refusal.into_response()),
            },
            // The rate limit and the handler's synchronous part run under the panic guard too.
            None => catch_unwind(AssertUnwindSafe(|| {
                match admit(state, &mut req, route, start) {
                    Ok(()) => Answer::Running {
                        future: self.inner.call(req),
                    },
                    Err(refusal) => Answer::Ready {
                        response: Some(refusal.into_response()),
                    },
                }
            }))
            .unwrap_or_else(|panic| Answer::Ready {
                response: Some(panic_response(panic)),
            }),
        };
        GuardFuture {
            answer,
            timer: None,
            deadline: start + state.config().request_timeout,
            done: Some(Done {
                state: state.clone(),
                id,
                method,
                route,
                client,
                start,
            }),
        }
    }
}

/// Refuses a request over its rate with 429 and `Retry-After`.
///
/// An authenticated caller on a decision route is counted per caller, when a caller limit is
/// configured; the caller is handed on to the handler, so the credential is checked once.
/// Everything else but probes (login, logout, audit, and any request without a valid
/// credential) is counted per client address with the strict limit.
fn admit(state: &ApiState, req: &mut Request, route: &str, now: Instant) -> Result<(), ApiError> {
    if UNLIMITED.contains(&route) {
        return Ok(());
    }
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
            .map_or(Ok(()), |l| l.take(&peer_ip(req), now)),
    };
    if let Err(wait) = verdict {
        state.metrics().request_throttled();
        return Err(ApiError::TooManyRequests {
            message: "request rate limit exceeded".into(),
            retry_after: wait,
        });
    }
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    Ok(())
}

/// What a request's answer is still owed: the access-log line, the metrics and the id header.
struct Done {
    state: ApiState,
    id: HeaderValue,
    method: &'static str,
    route: &'static str,
    client: IpAddr,
    start: Instant,
}

impl Done {
    fn finish(self, mut resp: Response) -> Response {
        let latency = self.start.elapsed();
        let status = resp.status().as_u16();
        self.state
            .metrics()
            .observe_request(self.method, self.route, status, latency);
        // Only these fields: never headers, bodies, query strings or credentials.
        tracing::info!(
            target: "stagegate::access",
            method = %self.method,
            route = %self.route,
            status,
            latency_us = latency.as_micros() as u64,
            request_id = %self.id.to_str().unwrap_or_default(),
            client = %self.client,
            "request"
        );
        resp.headers_mut().insert(REQUEST_ID.clone(), self.id);
        resp
    }
}

pin_project! {
    #[project = AnswerProj]
    enum Answer<F> {
        // Refused before the handler (431, 429) or a panic in its synchronous part.
        Ready { response: Option<Response> },
        Running { #[pin] future: F },
    }
}

pin_project! {
    /// The future of [`Guard`]: the handler's, with the panic guard, the lazily armed request
    /// timeout and the bookkeeping of the answer.
    pub struct GuardFuture<F> {
        #[pin]
        answer: Answer<F>,
        // Armed at the first poll that leaves the handler pending.
        #[pin]
        timer: Option<Sleep>,
        deadline: Instant,
        done: Option<Done>,
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let resp = ready!(poll_answer(
            this.answer,
            this.timer.as_mut(),
            *this.deadline,
            cx
        ));
        let done = this
            .done
            .take()
            .expect("GuardFuture polled after completion");
        Poll::Ready(Ok(done.finish(resp)))
    }
}

/// The handler's answer; a JSON 500 when it panics, a 408 when the deadline passes first.
fn poll_answer<F>(
    answer: Pin<&mut Answer<F>>,
    mut timer: Pin<&mut Option<Sleep>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<Response>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    let future = match answer.project() {
        AnswerProj::Ready { response } => {
            // Taken once: the guard's future completes with it.
            let resp = response.take();
            return Poll::Ready(
                resp.unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            );
        }
        AnswerProj::Running { future } => future,
    };
    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Ready(Ok(resp))) => return Poll::Ready(resp),
        Ok(Poll::Ready(Err(never))) => match never {},
        Ok(Poll::Pending) => {}
        Err(panic) => return Poll::Ready(panic_response(panic)),
    }
    if timer.is_none() {
        timer.set(Some(tokio::time::sleep_until(deadline.into())));
    }
    match timer.as_pin_mut() {
        Some(sleep) => sleep.poll(cx).map(|()| request_timed_out()),
        None => Poll::Pending,
    }
}

/// The 408 of a request not answered in time (its JSON body comes from `json_errors`).
fn request_timed_out() -> Response {
    StatusCode::REQUEST_TIMEOUT.into_response()
}
