//! Invitation acceptance and self-service account routes: a person chooses
//! their own password (accepting an invitation, or changing it), and sees and
//! ends their own sessions.
//!
//! The password a person chooses passes the same policy as declared ones and
//! is written with [`Store::set_chosen_password`]: only if the row still holds
//! what it replaces (the invitation, or the password the caller proved it
//! knows), so a declared reset or re-invitation committed meanwhile wins.
//! Every failed code or current password counts against the login throttle.

use super::auth::Caller;
use super::error::{ApiError, JsonBody};
use super::handlers::{client_ip, LoginResponse, RoleGrant};
use super::state::ApiState;
use super::throttle::LoginClient;
use crate::policy::{Grant, PrincipalKind};
use crate::resources::UserState;
use crate::secrets::{
    hash_password, parse_invitation, verify_invitation, verify_password, HashValue, SecretValue,
    MAX_PASSWORD_BYTES,
};
use crate::snapshot::ObjectKey;
use crate::store::{AuditRow, ChosenPassword, PasswordSource, Replaces, Store, UserRow};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

/// Longest accepted invitation code (ours are 89 bytes).
const MAX_CODE: usize = 256;
/// Hex characters of a session's public handle (a prefix of its stored hash).
const HANDLE_LEN: usize = 16;

/// `POST /v1/invitations/accept` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    code: String,
    password: String,
}

/// `POST /v1/account/password` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `GET /v1/account` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Login name.
    pub username: String,
    /// Name shown in UIs.
    pub display_name: Option<String>,
    /// Roles this session holds (those in force at login).
    pub roles: Vec<RoleGrant>,
    /// Roles the next login will hold (declared now).
    pub roles_at_next_login: Vec<RoleGrant>,
    /// Last successful login (this session's, or a later one).
    pub last_login: Option<Timestamp>,
    /// `chosen` (by the person), `declared` (passwordSecretRef), `generated` or `bootstrap`.
    pub password_source: String,
    /// When the person chose the password in force, when they did.
    pub password_chosen_at: Option<Timestamp>,
}

/// One session in `GET /v1/account/sessions`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Public handle of the session (not the session id, which is never shown again).
    pub id: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
    /// True for the session making this request.
    pub current: bool,
}

/// `GET /v1/account/sessions` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionList {
    /// The caller's live sessions, oldest first.
    pub sessions: Vec<SessionView>,
}

fn roles(grants: &[Grant]) -> Vec<RoleGrant> {
    grants
        .iter()
        .map(|g| RoleGrant {
            role: g.role,
            scope: g.scope.clone(),
        })
        .collect()
}

/// The caller as a person with a session: API tokens cannot use the account routes.
fn person(caller: &Caller) -> Result<HashValue, ApiError> {
    match (&caller.session_hash, caller.kind()) {
        (Some(h), PrincipalKind::User) => Ok(h.clone()),
        _ => Err(ApiError::Forbidden(
            "account routes are for people logged in with a session; an API token has no account"
                .into(),
        )),
    }
}

fn check_password(state: &ApiState, field: &str, password: &str) -> Result<(), ApiError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{field} must be 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    state
        .config()
        .password_params
        .policy
        .check(password.as_bytes())
        .map_err(|rule| ApiError::BadRequest(format!("{field} is refused: {rule}")))
}

/// The declaration a user row belongs to, for its audit rows.
fn audit_row(row: &UserRow, action: &str, now: Timestamp, new: serde_json::Value) -> AuditRow {
    let (object, source) = match &row.owner {
        Some(o) => (o.key.clone(), o.source.clone()),
        None => (
            ObjectKey {
                kind: "User".into(),
                namespace: String::new(),
                name: row.username.clone(),
            },
            "bootstrap".into(),
        ),
    };
    AuditRow {
        id: 0,
        at: now,
        action: action.into(),
        object,
        source,
        old: None,
        new: Some(new),
    }
}

/// Runs a blocking store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    f: impl FnOnce(&ApiState) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Hashes a chosen password on the blocking pool, in one of the login slots (argon2id is costly).
async fn hash_chosen(state: &ApiState, password: SecretValue) -> Result<HashValue, ApiError> {
    let inner = &state.inner;
    let slot = tokio::time::timeout(
        inner.config.login_queue_timeout,
        inner.login_slots.clone().acquire_owned(),
    )
    .await
    .map_err(|_| ApiError::TooManyRequests {
        message: "too many password checks in progress; try again".into(),
        retry_after: std::time::Duration::from_secs(1),
    })?
    .map_err(ApiError::internal)?;
    let params = inner.config.password_params;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        hash_password(params, &password)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// `POST /v1/invitations/accept`: no session needed; the code is the credential.
pub async fn accept(
    State(state): State<ApiState>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(req): JsonBody<AcceptRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    if req.code.is_empty() || req.code.len() > MAX_CODE {
        return Err(ApiError::BadRequest(format!(
            "code must be 1 to {MAX_CODE} bytes"
        )));
    }
    let parsed =
        parse_invitation(&req.code).map_err(|e| ApiError::BadRequest(format!("code: {e}")))?;
    let code = parsed.clone();
    // Throttled like a login, per invitation and client: a wrong code is a guess.
    let account = format!("invitation {}", parsed.key_id);
    let client = LoginClient::Address(client_ip(info));
    state
        .reserve_attempt(
            &account,
            &client,
            "too many failed attempts for this invitation; try again later",
        )
        .await?;
    let id = parsed.key_id.clone();
    let row = blocking(&state, move |s| s.store().user_by_invitation(&id)).await?;
    let key = &state.inner.key;
    // Verified (constant time) before anything about the row is told.
    let found = row.filter(|r| {
        r.invitation
            .as_ref()
            .is_some_and(|i| verify_invitation(&code, &i.code_hmac, key))
    });
    let Some(row) = found else {
        state.inner.metrics.login_failed();
        return Err(ApiError::Unauthorized("invalid invitation code".into()));
    };
    state.give_back_attempt(&account, &client).await;
    let now = Timestamp::now();
    let Some(inv) = row.invitation.clone() else {
        return Err(ApiError::Unauthorized("invalid invitation code".into()));
    };
    if inv.state == crate::store::InvitationState::Accepted {
        return Err(ApiError::Conflict(
            "this invitation was already accepted: log in with the password chosen then".into(),
        ));
    }
    if !inv.acceptable_at(now) || row.state != UserState::Active {
        return Err(ApiError::Unauthorized(format!(
            "this invitation is no longer valid (it expired at {}, or was replaced or revoked); ask an administrator to invite you again",
            inv.expires_at
        )));
    }
    check_password(&state, "password", &req.password)?;
    let hash = hash_chosen(&state, SecretValue::from_string(req.password)).await?;
    let username = row.username.clone();
    let change = ChosenPassword {
        username: username.clone(),
        replaces: Replaces::Invitation(inv.id.clone()),
        hash,
        at: now,
        keep_session: None,
        audit: audit_row(
            &row,
            "user.invitation.accept",
            now,
            json!({"invitationId": inv.id}),
        ),
    };
    let done = blocking(&state, move |s| {
        let done = s.store().set_chosen_password(&change)?;
        if done {
            s.refresh()?;
        }
        Ok(done)
    })
    .await?;
    if !done {
        return Err(ApiError::Conflict(
            "this invitation was used, replaced or revoked meanwhile".into(),
        ));
    }
    tracing::info!(user = %username, invitation = %inv.id, "invitation accepted");
    let Some((session, expires_at)) = state.open_session(&username).await? else {
        return Err(ApiError::Unauthorized(
            "the user was revoked meanwhile".into(),
        ));
    };
    let device_ttl =
        jiff::SignedDuration::try_from(state.config().device_ttl).map_err(ApiError::internal)?;
    let device_until = now.checked_add(device_ttl).map_err(ApiError::internal)?;
    let device_token = super::devices::issue(&state.inner.key, &username, None, device_until);
    Ok(Json(LoginResponse {
        session: session.expose_str().unwrap_or_default().to_string(),
        expires_at,
        device_token,
    }))
}

/// `GET /v1/invitations/accept`: the page an acceptance URL opens, the web console's
/// invitation page. The code rides in the URL fragment (never sent to a server, so never in an
/// access log); the page's script posts it with the chosen password to this same path.
pub async fn accept_page() -> Response {
    super::console::invitation_page()
}

/// `GET /v1/account`.
pub async fn account(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Account>, ApiError> {
    person(&caller)?;
    let name = caller.principal.name.clone();
    let row = blocking(&state, move |s| s.store().user(&name))
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let next = state
        .index()
        .user(&row.username)
        .map(|u| roles(&u.grants))
        .unwrap_or_default();
    let source = match (row.password_chosen_at, row.password_source, row.bootstrap) {
        (Some(_), _, _) => "chosen",
        (None, _, true) => "bootstrap",
        (None, Some(PasswordSource::Ref), _) => "declared",
        (None, Some(PasswordSource::Generated), _) => "generated",
        (None, None, _) => "none",
    };
    Ok(Json(Account {
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        roles: roles(caller.principal.grants()),
        roles_at_next_login: next,
        last_login: row.last_login,
        password_source: source.into(),
        password_chosen_at: row.password_chosen_at,
    }))
}

/// `POST /v1/account/password`: the caller's own password; every other session of theirs ends.
pub async fn change_password(
    State(state): State<ApiState>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    caller: Caller,
    JsonBody(req): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    change_own_password(
        &state,
        &caller,
        client_ip(info),
        req.current_password,
        req.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller changes their own password (the API route and the console's form): the current
/// one is checked under the login throttle, the new one against the policy; every other
/// session of the caller ends, the calling session stays.
pub(crate) async fn change_own_password(
    state: &ApiState,
    caller: &Caller,
    address: IpAddr,
    current_password: String,
    new_password: String,
) -> Result<(), ApiError> {
    let session = person(caller)?;
    if caller.bootstrap {
        return Err(ApiError::Forbidden(
            "the bootstrap administrator's password comes from its Secret; declare a User instead"
                .into(),
        ));
    }
    let username = caller.principal.name.clone();
    if current_password.is_empty() || current_password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "currentPassword must be 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    check_password(state, "newPassword", &new_password)?;
    let client = LoginClient::Address(address);
    state
        .reserve_attempt(
            &username,
            &client,
            "too many failed password checks for this account; try again later",
        )
        .await?;
    let Some(old) = state
        .index()
        .user(&username)
        .and_then(|u| u.password_hash.clone())
    else {
        return Err(ApiError::Forbidden(
            "this account has no password to change".into(),
        ));
    };
    let (check, current) = (old.clone(), SecretValue::from_string(current_password));
    let ok = tokio::task::spawn_blocking(move || verify_password(&check, current.expose()))
        .await
        .map_err(ApiError::internal)?;
    if !ok {
        state.inner.metrics.login_failed();
        return Err(ApiError::Forbidden(
            "currentPassword is not the password in force".into(),
        ));
    }
    state.give_back_attempt(&username, &client).await;
    let hash = hash_chosen(state, SecretValue::from_string(new_password)).await?;
    let name = username.clone();
    let done = blocking(state, move |s| {
        let mut store = s.store();
        let Some(row) = store.user(&name)? else {
            return Ok(false);
        };
        let now = Timestamp::now();
        let change = ChosenPassword {
            username: name.clone(),
            replaces: Replaces::Password(old),
            hash,
            at: now,
            keep_session: Some(session.clone()),
            audit: audit_row(&row, "user.password.change", now, json!({"by": "self"})),
        };
        let done = store.set_chosen_password(&change)?;
        drop(store);
        if done {
            s.refresh()?;
        }
        Ok(done)
    })
    .await?;
    if !done {
        return Err(ApiError::Conflict(
            "the password changed meanwhile (a declared reset wins); log in again".into(),
        ));
    }
    tracing::info!(user = %username, "password changed by its user; other sessions ended");
    Ok(())
}

/// `GET /v1/account/sessions`.
pub async fn sessions(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<SessionList>, ApiError> {
    let current = person(&caller)?;
    let name = caller.principal.name.clone();
    let rows = blocking(&state, move |s| s.store().user_sessions(&name)).await?;
    let now = Timestamp::now();
    let sessions = rows
        .into_iter()
        .filter(|r| r.expires_at > now)
        .map(|r| SessionView {
            id: handle(&r.id_hash),
            created_at: r.created_at,
            expires_at: r.expires_at,
            current: r.id_hash == current,
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// `DELETE /v1/account/sessions/{id}`: ends one of the caller's own sessions.
pub async fn end_session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    end_own_session(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's own session whose public handle is `id` (the API route and the console's
/// button); a session of someone else is not found.
pub(crate) async fn end_own_session(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<(), ApiError> {
    person(caller)?;
    let name = caller.principal.name.clone();
    let rows = blocking(state, move |s| s.store().user_sessions(&name)).await?;
    let Some(row) = rows.into_iter().find(|r| handle(&r.id_hash) == id) else {
        return Err(ApiError::NotFound("no session of yours has this id".into()));
    };
    state.logout(row.id_hash).await
}

/// The public handle of a session: a prefix of its stored hash (the id itself is a bearer
/// credential shown once; the hash cannot be turned back into it).
pub(crate) fn handle(hash: &HashValue) -> String {
    hash.expose().chars().take(HANDLE_LEN).collect()
}
