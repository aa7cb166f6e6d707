//! Route handlers: parse, ask the index and the policy module, answer JSON.
//! No policy logic lives here.

use super::auth::Caller;
use super::error::{ApiError, JsonBody};
use super::readiness::Readiness;
use super::state::ApiState;
use crate::plan::{Question, QuestionError};
use crate::policy::{Action, Decision, DecisionCode, Grant, PrincipalKind, Role, Scope, Stage};
use crate::secrets::{SecretValue, MAX_PASSWORD_BYTES};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Longest accepted username and password, in bytes.
const MAX_USERNAME: usize = 256;
/// Longest accepted device token (ours are about 110 bytes).
const MAX_DEVICE_TOKEN: usize = 256;

/// `POST /v1/login` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// The device token of an earlier successful login to this account, if the client kept it.
    #[serde(default, rename = "deviceToken")]
    device_token: Option<String>,
}

/// `POST /v1/login` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// The session id: send it as `Authorization: Bearer <session>`.
    pub session: String,
    /// When the session ends.
    pub expires_at: Timestamp,
    /// Present it as `deviceToken` at later logins to this account: this client then keeps its
    /// own failed-login budget while others fail.
    pub device_token: String,
}

/// A role at a scope, as `whoami` reports it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleGrant {
    /// The role.
    pub role: Role,
    /// Where it applies (`{}` = global).
    pub scope: Scope,
}

/// `GET /v1/whoami` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `user` or `token`.
    pub kind: PrincipalKind,
    /// Username or token name.
    pub name: String,
    /// Roles in effect for this credential (a session's are those held at login).
    pub roles: Vec<RoleGrant>,
    /// When the credential stops working; null = never.
    pub expires_at: Option<Timestamp>,
    /// True for the bootstrap administrator (issue 8): disabled once a declared global Admin can log in.
    pub bootstrap: bool,
}

/// `POST /v1/authorize` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    action: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    to: Option<String>,
}

/// `POST /v1/authorize` answer (as clients read it; the server writes [`AuthorizeAnswer`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct AuthorizeResponse {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Machine-readable reason.
    pub code: DecisionCode,
    /// Human-readable reason naming the role and scope that decided.
    pub reason: String,
}

/// [`AuthorizeResponse`] as the server writes it: the reason is rendered straight into the
/// body, with no string built first.
#[derive(Serialize)]
struct AuthorizeAnswer<'a> {
    allowed: bool,
    code: DecisionCode,
    #[serde(serialize_with = "reason_of")]
    reason: &'a Decision<'a>,
}

fn reason_of<S: serde::Serializer>(d: &&Decision<'_>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(*d)
}

/// One model in `GET /v1/models`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Where it lives.
    pub scope: Scope,
    /// Who first deployed it.
    pub owner: Option<String>,
    /// Current stage.
    pub stage: Option<Stage>,
}

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelList {
    /// The models the caller may see, by scope and name.
    pub models: Vec<ModelView>,
}

/// `GET /healthz` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

pub(super) fn client_ip(info: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    info.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    )
}

/// `POST /v1/login`.
pub async fn login(
    State(state): State<ApiState>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if req.username.is_empty() || req.username.len() > MAX_USERNAME {
        return Err(ApiError::BadRequest(format!(
            "username must be 1 to {MAX_USERNAME} bytes"
        )));
    }
    // No password the policy accepts is empty or longer than this, so neither
    // is worth a password check (nor a stored hash made before the policy).
    if req.password.is_empty() || req.password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "password must be 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if req
        .device_token
        .as_ref()
        .is_some_and(|t| t.len() > MAX_DEVICE_TOKEN)
    {
        return Err(ApiError::BadRequest(format!(
            "deviceToken must be at most {MAX_DEVICE_TOKEN} bytes"
        )));
    }
    let password = SecretValue::from_string(req.password);
    let login = state
        .login(
            &req.username,
            password,
            client_ip(info),
            req.device_token.as_deref(),
        )
        .await?;
    Ok(Json(LoginResponse {
        session: login.session.expose_str().unwrap_or_default().to_string(),
        expires_at: login.expires_at,
        device_token: login.device_token,
    }))
}

/// `POST /v1/logout`.
pub async fn logout(State(state): State<ApiState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let Some(hash) = caller.session_hash else {
        return Err(ApiError::BadRequest(
            "logout ends a session; API tokens are revoked through their ApiToken".into(),
        ));
    };
    state.logout(hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/whoami`.
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let roles = caller
        .principal
        .grants()
        .iter()
        .map(|Grant { role, scope }| RoleGrant {
            role: *role,
            scope: scope.clone(),
        })
        .collect();
    Json(WhoAmI {
        kind: caller.kind(),
        name: caller.principal.name.clone(),
        roles,
        expires_at: caller.expires_at,
        bootstrap: caller.bootstrap,
    })
}

/// `POST /v1/authorize`.
pub async fn authorize(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<AuthorizeRequest>,
) -> Result<Response, ApiError> {
    let action: Action = req.action.parse().map_err(ApiError::BadRequest)?;
    let to = req
        .to
        .as_deref()
        .map(str::parse::<Stage>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    if let Some(s) = &req.scope {
        s.check().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let question = Question {
        action: Some(action),
        model: req.model,
        scope: req.scope,
        to,
    };
    let index = state.index();
    let decision = index
        .authorize(&caller.principal, &question)
        .map_err(|e| match e {
            QuestionError::Ambiguous { .. } => ApiError::Conflict(e.to_string()),
            QuestionError::NoAction => ApiError::BadRequest(e.to_string()),
        })?;
    Ok(Json(AuthorizeAnswer {
        allowed: decision.allowed,
        code: decision.code,
        reason: &decision,
    })
    .into_response())
}

/// `GET /v1/models`.
pub async fn models(State(state): State<ApiState>, caller: Caller) -> Json<ModelList> {
    let index = state.index();
    let models = index
        .visible_models(&caller.principal)
        .map(|(_, m)| ModelView {
            name: m.name.clone(),
            scope: m.scope.clone(),
            owner: m.owner.clone(),
            stage: m.stage,
        })
        .collect();
    Json(ModelList { models })
}

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`: the store answers, the first reconcile is done and the last one could run; the body lists broken files.
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Readiness>, ApiError> {
    if let Some(why) = state.reconcile_failure() {
        return Err(ApiError::Unavailable(format!(
            "the last reconcile could not run: {why}"
        )));
    }
    if !state.is_ready() {
        return Err(ApiError::Unavailable(
            "waiting for the first reconcile".into(),
        ));
    }
    let probe = state.clone();
    let ok = tokio::task::spawn_blocking(move || probe.store_ok())
        .await
        .unwrap_or(false);
    if !ok {
        return Err(ApiError::Unavailable("the store does not answer".into()));
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        broken_files: state.broken_files(),
    }))
}

/// `GET /metrics`: Prometheus text (OpenMetrics).
pub async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    state.update_gauges();
    let body = state.metrics().encode().map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see docs/openapi.yaml".into())
}

/// Known routes with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("method not allowed on this route".into())
}
