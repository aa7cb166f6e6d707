//! JSON errors `{error, message}` and the JSON body extractor that maps every
//! rejection (syntax, schema, content type, size) to one of them.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// An error answered to the client. Messages never hold secrets or internals.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, a field of the wrong type, an unknown action.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing, malformed, unknown, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists with other methods.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the request is ambiguous or conflicts with the store (e.g. a model name at several scopes).
    #[error("{0}")]
    Conflict(String),
    /// 408: the request was not answered in time (reading its body included).
    #[error("{0}")]
    RequestTimeout(String),
    /// 413: body over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 431: too many request header fields, or too large.
    #[error("{0}")]
    HeaderFieldsTooLarge(String),
    /// 429: throttled; retry after the given time.
    #[error("{message}")]
    TooManyRequests {
        /// What was throttled.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 503: not ready yet.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `unauthorized`.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeaderFieldsTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::HeaderFieldsTooLarge(_) => "request_header_fields_too_large",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The error for a bare status a lower layer answered (body limit, timeout, routing):
    /// 400 for an unknown 4xx, 500 for an unknown 5xx, `None` for anything else.
    pub fn from_status(status: StatusCode) -> Option<Self> {
        let why = status.canonical_reason().unwrap_or("error").to_lowercase();
        Some(match status {
            StatusCode::NOT_FOUND => {
                ApiError::NotFound("no such route; see docs/openapi.yaml".into())
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                ApiError::MethodNotAllowed("method not allowed on this route".into())
            }
            StatusCode::REQUEST_TIMEOUT => {
                ApiError::RequestTimeout("the request was not completed in time".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge("request body is too large".into())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(why),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                ApiError::HeaderFieldsTooLarge("request headers are too large".into())
            }
            StatusCode::UNAUTHORIZED => ApiError::unauthenticated(),
            StatusCode::FORBIDDEN => ApiError::Forbidden(why),
            StatusCode::CONFLICT => ApiError::Conflict(why),
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable(why),
            s if s.is_client_error() => ApiError::BadRequest(why),
            s if s.is_server_error() => ApiError::Internal(why),
            _ => return None,
        })
    }

    /// A 401 with the one message every credential failure shares.
    pub fn unauthenticated() -> Self {
        ApiError::Unauthorized("missing, invalid, expired or revoked credentials".into())
    }

    /// A 500 whose cause is logged here and not sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        ApiError::Internal(cause.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(_) => "internal error; see the server log".to_string(),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: self.code(),
            message,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        match &self {
            ApiError::TooManyRequests { retry_after, .. } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"stagegate\""),
                );
            }
            _ => {}
        }
        resp
    }
}

/// A JSON request body whose rejections are [`ApiError`]s (400, 413, 415).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !plain_json(req.headers()) {
            // Any other content type (`application/json; charset=utf-8`, `+json`, none) is
            // judged by axum, as before.
            return match axum::Json::<T>::from_request(req, state).await {
                Ok(axum::Json(v)) => Ok(JsonBody(v)),
                Err(rejection) => Err(map_rejection(&rejection)),
            };
        }
        // The common case without axum's MIME parsing and path-tracking deserializer: the body
        // limit still applies (the `Bytes` extractor reads through it).
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body is too large".into())
            } else {
                ApiError::BadRequest("request body could not be read".into())
            }
        })?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(JsonBody(v)),
            // A bad body is parsed again by axum, for the same messages as before.
            Err(_) => match axum::Json::<T>::from_bytes(&bytes) {
                Ok(axum::Json(v)) => Ok(JsonBody(v)),
                Err(rejection) => Err(map_rejection(&rejection)),
            },
        }
    }
}

/// Whether the content type is exactly `application/json`, the type nearly every client sends.
fn plain_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"application/json"))
}

fn map_rejection(r: &JsonRejection) -> ApiError {
    match r {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("request body must be application/json".into())
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::BadRequest("request body is not valid JSON".into())
        }
        // serde's text names the field and the expected type; it is sent only to the caller, never logged.
        JsonRejection::JsonDataError(e) => ApiError::BadRequest(format!(
            "request body does not match the schema: {}",
            e.body_text()
                .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        )),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("request body is too large".into())
        }
        _ => ApiError::BadRequest("request body could not be read".into()),
    }
}
