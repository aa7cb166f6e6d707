//! Who is calling: bearer sessions and API tokens checked against the
//! in-memory index, and password login and logout.

use super::devices;
use super::error::ApiError;
use super::index::TokenCheckError;
use super::sessions::{looks_like_session, new_session_id, session_hash, SessionEntry};
use super::state::ApiState;
use super::throttle::LoginClient;
use crate::policy::{Principal, PrincipalKind};
use crate::secrets::{verify_password, HashValue, SecretValue, TOKEN_PREFIX};
use crate::store::{Attempt, SessionRow, Store};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use std::net::IpAddr;
use std::sync::Arc;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who, with the grants that apply to this request (shared with the index or session cache).
    pub principal: Arc<Principal>,
    /// When the credential stops working; none = never (a token with `validity: Never`).
    pub expires_at: Option<Timestamp>,
    /// Hash of the session id, for a session caller.
    pub session_hash: Option<HashValue>,
    /// Whether the caller is the bootstrap administrator.
    pub bootstrap: bool,
}

impl Caller {
    /// `user` or `token`.
    pub fn kind(&self) -> PrincipalKind {
        self.principal.kind
    }
}

/// The bearer credential of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|s| !s.is_empty())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // The rate limit authenticates callers on the decision routes to pick their bucket; the
        // handler takes that caller instead of checking the credential a second time.
        if let Some(caller) = parts.extensions.remove::<Caller>() {
            return Ok(caller);
        }
        let credential = bearer(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        state.authenticate(credential, Timestamp::now())
    }
}

/// A successful password login.
#[derive(Debug)]
pub struct Login {
    /// The new session id (handed to the client once).
    pub session: SecretValue,
    /// When the session ends.
    pub expires_at: Timestamp,
    /// The device token to present at later logins to this account.
    pub device_token: String,
}

impl ApiState {
    /// Checks a bearer credential (session id or API token) against the index; no SQL.
    pub fn authenticate(&self, credential: &str, now: Timestamp) -> Result<Caller, ApiError> {
        if credential.starts_with(TOKEN_PREFIX) {
            let index = self.index();
            return match index.verify_token(&self.inner.key, credential, now) {
                Ok(t) => Ok(Caller {
                    principal: t.principal,
                    expires_at: t.expires_at,
                    session_hash: None,
                    bootstrap: false,
                }),
                Err(TokenCheckError::Format(e)) => Err(ApiError::Unauthorized(e.to_string())),
                Err(TokenCheckError::Rejected) => Err(ApiError::unauthenticated()),
            };
        }
        if !looks_like_session(credential) {
            return Err(ApiError::unauthenticated());
        }
        let hash = session_hash(&self.inner.key, credential);
        let (principal, expires_at) = self
            .inner
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .map(|s| (s.principal.clone(), s.expires_at))
            .ok_or_else(ApiError::unauthenticated)?;
        // Revocation and deletion take effect at once, even before the session cache is reloaded.
        let index = self.index();
        let user = index.user(&principal.name).filter(|u| u.active());
        if expires_at <= now || user.is_none() {
            return Err(ApiError::unauthenticated());
        }
        Ok(Caller {
            bootstrap: user.is_some_and(|u| u.bootstrap),
            principal,
            expires_at: Some(expires_at),
            session_hash: Some(hash),
        })
    }

    /// Password login: throttled (the attempt is reserved before the password is verified),
    /// verified on the blocking pool, the same 401 for every failure. A valid `device` token for
    /// the account gives the client its own failed-login budget (see [`super::devices`]).
    pub async fn login(
        &self,
        username: &str,
        password: SecretValue,
        address: IpAddr,
        device: Option<&str>,
    ) -> Result<Login, ApiError> {
        let inner = &self.inner;
        let device =
            device.and_then(|t| devices::verify(&inner.key, username, t, Timestamp::now()));
        let client = match &device {
            Some(id) => LoginClient::Device(id.clone()),
            None => LoginClient::Address(address),
        };
        self.reserve_attempt(
            username,
            &client,
            "too many failed logins for this account; try again later",
        )
        .await?;
        let index = self.index();
        if index
            .user(username)
            .is_some_and(|u| u.bootstrap && !u.active())
        {
            // The answer stays the generic 401; the operator's log says why.
            tracing::info!(user = %username, "login refused: the bootstrap administrator is disabled because a declared global Admin exists");
        }
        let user = index.user(username).filter(|u| u.active());
        // The grants are read again when the session opens (see `open_session`).
        let hash: HashValue = user
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| inner.dummy_hash.clone());
        let real = user.is_some_and(|u| u.password_hash.is_some());
        drop(index);
        let slot = tokio::time::timeout(
            inner.config.login_queue_timeout,
            inner.login_slots.clone().acquire_owned(),
        )
        .await
        .map_err(|_| ApiError::TooManyRequests {
            message: "too many logins in progress; try again".into(),
            retry_after: std::time::Duration::from_secs(1),
        })?
        .map_err(ApiError::internal)?;
        // The slot moves into the blocking task: a client that hangs up does not free it early.
        let ok = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            verify_password(&hash, password.expose())
        })
        .await
        .map_err(ApiError::internal)?;
        if !(ok && real) {
            // Already counted by the reservation.
            inner.metrics.login_failed();
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ));
        }
        self.give_back_attempt(username, &client).await;
        let Some((id, expires_at)) = self.open_session(username).await? else {
            // Revoked or deleted while the password was being verified.
            return Err(ApiError::Unauthorized(
                "invalid username or password".into(),
            ));
        };
        let now = Timestamp::now();
        tracing::info!(user = %username, known_device = device.is_some(), "login");
        let device_ttl =
            SignedDuration::try_from(inner.config.device_ttl).map_err(ApiError::internal)?;
        let device_until = now.checked_add(device_ttl).map_err(ApiError::internal)?;
        Ok(Login {
            session: id,
            expires_at,
            device_token: devices::issue(&inner.key, username, device.as_deref(), device_until),
        })
    }

    /// Reserves one password check for `account` from `client` in the store's login throttle
    /// (shared by every process using the store): a 429 saying `locked` while a counter that
    /// applies is locked, and a 503 when the store cannot be asked, since a password check that
    /// skipped the throttle would hand out guesses nobody counts.
    pub(crate) async fn reserve_attempt(
        &self,
        account: &str,
        client: &LoginClient,
        locked: &str,
    ) -> Result<(), ApiError> {
        let (state, account, client) = (self.clone(), account.to_string(), client.clone());
        let inner = &self.inner;
        let attempt = tokio::task::spawn_blocking(move || {
            let i = &state.inner;
            let mut store = state.store();
            i.login_throttle
                .reserve(&mut *store, &i.key, &account, &client, Timestamp::now())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            tracing::warn!(error = %e, "login refused: the throttle's counters cannot be read");
            ApiError::Unavailable("the store is unavailable; try again later".into())
        })?;
        match attempt {
            Attempt::Reserved { .. } => Ok(()),
            Attempt::Locked { wait } => {
                inner.metrics.login_throttled();
                Err(ApiError::TooManyRequests {
                    message: locked.into(),
                    retry_after: wait,
                })
            }
        }
    }

    /// Gives back the attempt a successful check reserved (that client's counter resets). A
    /// store failure here only leaves one failure counted: logged, not fatal.
    pub(crate) async fn give_back_attempt(&self, account: &str, client: &LoginClient) {
        let (state, account, client) = (self.clone(), account.to_string(), client.clone());
        let done = tokio::task::spawn_blocking(move || {
            let i = &state.inner;
            let mut store = state.store();
            i.login_throttle
                .succeed(&mut *store, &i.key, &account, &client)
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a successful login's throttle counter was not reset");
        }
    }

    /// Opens a session for `username` (whose password was just verified or chosen) with the
    /// grants in force now, and records the login. None when the user is no longer active.
    pub(crate) async fn open_session(
        &self,
        username: &str,
    ) -> Result<Option<(SecretValue, Timestamp)>, ApiError> {
        let inner = &self.inner;
        let id = new_session_id();
        let now = Timestamp::now();
        let ttl = SignedDuration::try_from(inner.config.session_ttl).map_err(ApiError::internal)?;
        let expires_at = now.checked_add(ttl).map_err(ApiError::internal)?;
        let mut row = SessionRow {
            id_hash: session_hash(&inner.key, id.expose_str().unwrap_or_default()),
            username: username.to_string(),
            grants: Vec::new(),
            created_at: now,
            expires_at,
        };
        let state = self.clone();
        let created = tokio::task::spawn_blocking(move || {
            let mut store = state.store();
            // The grants in force now, under the store lock that refreshes take: an apply that
            // lowered them while the password was being verified is not undone by this session.
            let Some(current) = state
                .index()
                .user(&row.username)
                .filter(|u| u.active())
                .map(|u| u.grants.clone())
            else {
                return Ok(false);
            };
            row.grants = current;
            store.create_session(&row)?;
            store.record_login(&row.username, now)?;
            // Under the store lock, so a concurrent refresh cannot drop it (see `rebuild`).
            state
                .inner
                .sessions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(&row.id_hash, SessionEntry::from(&row));
            Ok::<_, crate::store::StoreError>(true)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        Ok(created.then_some((id, expires_at)))
    }

    /// Ends one session in the store and the cache.
    pub async fn logout(&self, hash: HashValue) -> Result<(), ApiError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = state.store();
            store.delete_session(hash.expose())?;
            state
                .inner
                .sessions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&hash);
            Ok::<_, crate::store::StoreError>(())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }
}
