//! The read-only web console, served by `stagegate run` on the API listener:
//! login and logout, models by stage, and for Admins users, API tokens, the
//! audit log and the objects that are not Ready, each with the YAML to commit
//! for common changes. The console never writes the store.
//!
//! It reuses the API's pieces rather than having its own: password login with
//! the same throttle and device tokens ([`ApiState::login`]), the same session
//! store and checks ([`ApiState::authenticate`]), the same policy calls
//! (`Index::authorize`, `Index::visible_models`) and the same audit reader
//! (`store::audit_page`).
//!
//! The session id travels in an HttpOnly, SameSite=Strict cookie (Secure when
//! `--public-url` is https). Every form that posts carries a CSRF token: per
//! session an HMAC of the session id under the server key; for the login form
//! an HMAC of a random nonce held in a short-lived cookie. A post without a
//! valid token is refused with 403 and changes nothing.

mod pages;
mod view;
mod yaml;

use super::auth::{Caller, Login};
use super::error::ApiError;
use super::state::ApiState;
use crate::secrets::{SecretValue, MAX_PASSWORD_BYTES};
use crate::store::{audit_page, parse_object, AuditFilter, AuditPage, Store};
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use jiff::Timestamp;
use maud::Markup;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use subtle::ConstantTimeEq;

/// Cookie holding the session id.
pub const SESSION_COOKIE: &str = "stagegate_session";
/// Cookie holding the device token of the last login from this browser (its own failed-login budget).
const DEVICE_COOKIE: &str = "stagegate_device";
/// Cookie holding the login form's CSRF nonce.
const LOGIN_COOKIE: &str = "stagegate_login";
const CSRF_DOMAIN: &str = "stagegate console csrf v1";
const LOGIN_CSRF_DOMAIN: &str = "stagegate console login csrf v1";
/// Longest accepted username, as the API's login.
const MAX_USERNAME: usize = 256;
/// Entries per audit page.
const AUDIT_PAGE: usize = 50;

/// Every response of the console gets these: nothing but the process's own stylesheet
/// may load, no script runs, no other site may frame it or receive the forms.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The invitation page's policy: [`CSP`] plus its one same-origin script and the one call it makes.
const INVITATION_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The invitation page's script (no inline script anywhere: the CSP forbids it).
const ACCEPT_SCRIPT: &str = include_str!("accept.js");

/// The console's routes (merged into the API router; its middleware applies).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", axum::routing::post(logout))
        .route("/users", get(users))
        .route("/tokens", get(tokens))
        .route("/problems", get(problems))
        .route("/audit", get(audit))
        .route("/account", get(account))
        .route("/account/password", axum::routing::post(change_password))
        .route("/account/sessions/end", axum::routing::post(end_session))
        .route("/console/style.css", get(style))
        .route("/console/accept.js", get(accept_script))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(resp: Response) -> Response {
    with_security_headers(resp, CSP)
}

fn with_security_headers(mut resp: Response, csp: &'static str) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    // Pages hold personal data: never cached. The stylesheet sets its own.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The value of cookie `name` in the request, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// A `Set-Cookie` value with the console's attributes.
fn set_cookie(state: &ApiState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config().secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A logged-in person looking at the console.
struct Viewer {
    caller: Caller,
    csrf: String,
}

impl Viewer {
    fn nav(&self, state: &ApiState, current: &'static str) -> pages::Nav<'_> {
        let index = state.index();
        let who = &self.caller.principal;
        pages::Nav {
            username: &who.name,
            admin: view::is_admin(&index, who),
            global_admin: view::is_global_admin(&index, who),
            csrf: &self.csrf,
            current,
        }
    }

    /// A valid CSRF token for this session was posted.
    fn checks(&self, posted: Option<&str>) -> bool {
        posted.is_some_and(|p| tokens_equal(p, &self.csrf))
    }

    /// The posted form of a signed-in page, if it parsed and carries this session's CSRF
    /// token (otherwise answer [`Viewer::refused`]: nothing is changed).
    fn posted<F: CsrfField>(&self, form: Result<Form<F>, FormRejection>) -> Option<F> {
        form.ok().map(|Form(f)| f).filter(|f| self.checks(f.csrf()))
    }

    /// The "form refused" page for a post [`Viewer::posted`] did not accept.
    fn refused(&self, state: &ApiState) -> Response {
        refused_form(Some(&self.nav(state, "")))
    }
}

/// A posted form's CSRF token field.
trait CsrfField {
    /// The token as posted, if any.
    fn csrf(&self) -> Option<&str>;
}

/// Implements [`CsrfField`] for form structs with a `csrf: Option<String>` field.
macro_rules! csrf_field {
    ($($form:ty),*) => {$(
        impl CsrfField for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    )*};
}
csrf_field!(CsrfForm, PasswordForm, EndSessionForm);

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = Response;

    /// The session cookie checked as a bearer session is; without a valid one, the login page.
    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let id = cookie(&parts.headers, SESSION_COOKIE)
            .filter(|id| id.starts_with(super::SESSION_PREFIX))
            .ok_or_else(|| Redirect::to("/login").into_response())?;
        let caller = state
            .authenticate(id, Timestamp::now())
            .map_err(|_| Redirect::to("/login").into_response())?;
        let csrf = state.inner.key.mac_hex(CSRF_DOMAIN, id.as_bytes());
        Ok(Viewer { caller, csrf })
    }
}

/// The whole store read a page is built from (blocking read off the runtime).
async fn load(state: &ApiState) -> Result<crate::store::StoreState, Response> {
    let s = state.clone();
    tokio::task::spawn_blocking(move || s.store().load_state())
        .await
        .map_err(ApiError::internal)
        .and_then(|r| r.map_err(ApiError::internal))
        .map_err(|e| failure(&e))
}

fn failure(e: &ApiError) -> Response {
    html(
        e.status(),
        pages::error(
            "Error",
            "The console could not read the store; see the server log.",
            None,
        ),
    )
}

fn forbidden(nav: &pages::Nav, what: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::error("Forbidden", &format!("{what}."), Some(nav)),
    )
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::STYLE,
    )
        .into_response()
}

async fn accept_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        ACCEPT_SCRIPT,
    )
        .into_response()
}

/// `GET /v1/invitations/accept` (an API route; the API's handler answers with this): the
/// console's invitation page under the console's headers, its policy allowing its one script.
pub(crate) fn invitation_page() -> Response {
    with_security_headers(html(StatusCode::OK, pages::invitation()), INVITATION_CSP)
}

/// `GET /login`: the form, with a fresh CSRF nonce in a cookie scoped to `/login`.
async fn login_form(State(state): State<ApiState>) -> Response {
    login_page(&state, StatusCode::OK, None, "")
}

fn login_page(
    state: &ApiState,
    status: StatusCode,
    error: Option<&str>,
    username: &str,
) -> Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let token = state.inner.key.mac_hex(LOGIN_CSRF_DOMAIN, nonce.as_bytes());
    let mut resp = html(status, pages::login(error, &token, username));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &nonce, "/login", 3600),
    );
    resp
}

/// The login form's fields.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: Option<String>,
}

fn refused_form(nav: Option<&pages::Nav>) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::error(
            "Form refused",
            "This form was not sent from a page of this console (missing or invalid CSRF token). Reload the page and try again.",
            nav,
        ),
    )
}

/// `POST /login`: the API's password login (same throttle, same answers), then the session cookie.
async fn login_submit(
    State(state): State<ApiState>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return refused_form(None);
    };
    let expected = cookie(&headers, LOGIN_COOKIE)
        .map(|nonce| state.inner.key.mac_hex(LOGIN_CSRF_DOMAIN, nonce.as_bytes()));
    let valid = match (expected, form.csrf.as_deref()) {
        (Some(e), Some(p)) => tokens_equal(&e, p),
        _ => false,
    };
    if !valid {
        return refused_form(None);
    }
    let username = form.username.trim();
    if username.is_empty()
        || username.len() > MAX_USERNAME
        || form.password.is_empty()
        || form.password.len() > MAX_PASSWORD_BYTES
    {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            Some("Enter your username and password."),
            username,
        );
    }
    let address = info.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    let device = cookie(&headers, DEVICE_COOKIE);
    match state
        .login(
            username,
            SecretValue::from_string(form.password),
            address,
            device,
        )
        .await
    {
        Ok(login) => start_session(&state, &login, "/"),
        Err(ApiError::Unauthorized(_)) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Invalid username or password."),
            username,
        ),
        Err(ApiError::TooManyRequests {
            message,
            retry_after,
        }) => {
            let mut resp = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&message),
                username,
            );
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => html(
            e.status(),
            pages::error("Login failed", &e.to_string(), None),
        ),
    }
}

/// Sets the session and device cookies of a successful login and redirects to `to`.
pub(crate) fn start_session(state: &ApiState, login: &Login, to: &str) -> Response {
    let ttl = state.config().session_ttl.as_secs();
    let device_ttl = state.config().device_ttl.as_secs();
    let mut resp = Redirect::to(to).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            state,
            SESSION_COOKIE,
            login.session.expose_str().unwrap_or_default(),
            "/",
            ttl,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(
            state,
            DEVICE_COOKIE,
            &login.device_token,
            "/login",
            device_ttl,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, "", "/login", 0),
    );
    resp
}

/// Forms that carry only the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /logout`: ends the session (store and cache), clears the cookie.
async fn logout(
    State(state): State<ApiState>,
    viewer: Viewer,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if viewer.posted(form).is_none() {
        return viewer.refused(&state);
    }
    if let Some(hash) = viewer.caller.session_hash.clone() {
        if let Err(e) = state.logout(hash).await {
            return failure(&e);
        }
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", "/", 0),
    );
    resp
}

/// `GET /`: the models the person may see, by stage.
async fn home(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let store = match load(&state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let index = state.index();
    let columns = view::models_by_stage(&index, &viewer.caller.principal, &store);
    let nav = viewer.nav(&state, "/");
    html(
        StatusCode::OK,
        pages::models(&nav, &columns, Timestamp::now()),
    )
}

/// The store read of an Admin page, or the 403 page (`what` says why) for anyone else.
async fn admin_load(
    state: &ApiState,
    nav: &pages::Nav<'_>,
    what: &str,
) -> Result<crate::store::StoreState, Response> {
    if !nav.admin {
        return Err(forbidden(nav, what));
    }
    load(state).await
}

/// `GET /users`: Admins only, the users within their scope.
async fn users(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let nav = viewer.nav(&state, "/users");
    let store = match admin_load(&state, &nav, "The Users page is for Admins").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lines = view::users(&state.index(), &viewer.caller.principal, &store);
    html(StatusCode::OK, pages::users(&nav, &lines))
}

/// `GET /tokens`: Admins only, the tokens within their scope.
async fn tokens(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let nav = viewer.nav(&state, "/tokens");
    let store = match admin_load(&state, &nav, "The API tokens page is for Admins").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lines = view::tokens(
        &state.index(),
        &viewer.caller.principal,
        &store,
        Timestamp::now(),
    );
    html(StatusCode::OK, pages::tokens(&nav, &lines))
}

/// `GET /problems`: Admins only, declared objects that are not Ready within their scope.
async fn problems(State(state): State<ApiState>, viewer: Viewer) -> Response {
    let nav = viewer.nav(&state, "/problems");
    let store = match admin_load(&state, &nav, "The Not ready page is for Admins").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let index = state.index();
    let who = &viewer.caller.principal;
    let users = view::users(&index, who, &store);
    let tokens = view::tokens(&index, who, &store, Timestamp::now());
    let failing = view::problems(&index, who, &store, &users, &tokens);
    html(StatusCode::OK, pages::problems(&nav, &failing))
}

/// `GET /audit` query: the filters of `GET /v1/audit` a person types.
#[derive(Deserialize, Default)]
struct AuditParams {
    #[serde(default)]
    user: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /audit`: global Admins only (as `GET /v1/audit`), paged, filtered by user and object.
async fn audit(
    State(state): State<ApiState>,
    viewer: Viewer,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Response {
    let nav = viewer.nav(&state, "/audit");
    if !nav.global_admin {
        return forbidden(
            &nav,
            "The audit log spans every scope: it is for global Admins",
        );
    }
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let object = Some(q.object.trim())
        .filter(|o| !o.is_empty())
        .map(parse_object)
        .transpose();
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or("a cursor this console did not give")
        })
        .transpose();
    let (filter, after, error) = match (object, after) {
        (Ok(object), Ok(after)) => (
            Some(AuditFilter {
                since: None,
                user: Some(q.user.trim().to_string()).filter(|u| !u.is_empty()),
                object,
            }),
            after.unwrap_or(0),
            None,
        ),
        (Err(e), _) => (None, 0, Some(e)),
        (_, Err(e)) => (None, 0, Some(e.to_string())),
    };
    let page = match filter {
        Some(filter) => {
            let s = state.clone();
            match tokio::task::spawn_blocking(move || {
                audit_page(&*s.store() as &dyn Store, &filter, after, AUDIT_PAGE)
            })
            .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return failure(&ApiError::internal(e)),
                Err(e) => return failure(&ApiError::internal(e)),
            }
        }
        None => AuditPage {
            entries: Vec::new(),
            next_cursor: None,
        },
    };
    let shown = pages::AuditQueryView {
        user: &q.user,
        object: &q.object,
        error: error.as_deref(),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html(status, pages::audit(&nav, &page, &shown))
}

/// `GET /account`: own roles and sessions, the password form.
async fn account(State(state): State<ApiState>, viewer: Viewer) -> Response {
    account_page(&state, &viewer, StatusCode::OK, None).await
}

/// The account page with the outcome of a posted form, if any.
async fn account_page(
    state: &ApiState,
    viewer: &Viewer,
    status: StatusCode,
    notice: Option<pages::Notice<'_>>,
) -> Response {
    let name = viewer.caller.principal.name.clone();
    let s = state.clone();
    let who = name.clone();
    let read = tokio::task::spawn_blocking(move || {
        let store = s.store();
        let sessions: Vec<_> = store
            .user_sessions(&who)?
            .into_iter()
            .map(|r| {
                let handle = super::account::handle(&r.id_hash);
                (r, handle)
            })
            .collect();
        let user = store.user(&who)?;
        Ok::<_, crate::store::StoreError>((sessions, user))
    })
    .await;
    let (mut sessions, user) = match read {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return failure(&ApiError::internal(e)),
        Err(e) => return failure(&ApiError::internal(e)),
    };
    let now = Timestamp::now();
    sessions.retain(|(r, _)| r.expires_at > now);
    let current = viewer
        .caller
        .session_hash
        .as_ref()
        .map(|h| h.expose().to_string())
        .unwrap_or_default();
    let nav = viewer.nav(state, "/account");
    let a = pages::AccountView {
        grants: viewer.caller.principal.grants(),
        sessions: &sessions,
        current: &current,
        display_name: user.as_ref().and_then(|u| u.display_name.as_deref()),
        bootstrap: viewer.caller.bootstrap,
        notice,
    };
    html(status, pages::account(&nav, &a))
}

/// The account page showing why a self-service call was refused (an internal error's
/// detail stays in the log).
async fn account_refused(state: &ApiState, viewer: &Viewer, e: &ApiError) -> Response {
    if matches!(e, ApiError::Internal(_)) {
        return failure(e);
    }
    let text = e.to_string();
    let notice = pages::Notice {
        error: true,
        text: &text,
    };
    account_page(state, viewer, e.status(), Some(notice)).await
}

/// The password form's fields.
#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /account/password`: the same change as `POST /v1/account/password` (policy,
/// throttle, other sessions ended); this browser's session stays.
async fn change_password(
    State(state): State<ApiState>,
    info: Option<Extension<ConnectInfo<SocketAddr>>>,
    viewer: Viewer,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    let Some(form) = viewer.posted(form) else {
        return viewer.refused(&state);
    };
    let address = info.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    match super::account::change_own_password(
        &state,
        &viewer.caller,
        address,
        form.current_password,
        form.new_password,
    )
    .await
    {
        Ok(()) => {
            let notice = pages::Notice {
                error: false,
                text: "Your password is changed; your other sessions have ended.",
            };
            account_page(&state, &viewer, StatusCode::OK, Some(notice)).await
        }
        Err(e) => account_refused(&state, &viewer, &e).await,
    }
}

/// The end-session button's fields.
#[derive(Deserialize)]
struct EndSessionForm {
    #[serde(default)]
    session: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /account/sessions/end`: the same as `DELETE /v1/account/sessions/{id}`; ending this
/// browser's own session logs it out.
async fn end_session(
    State(state): State<ApiState>,
    viewer: Viewer,
    form: Result<Form<EndSessionForm>, FormRejection>,
) -> Response {
    let Some(form) = viewer.posted(form) else {
        return viewer.refused(&state);
    };
    if let Err(e) = super::account::end_own_session(&state, &viewer.caller, &form.session).await {
        return account_refused(&state, &viewer, &e).await;
    }
    let own = viewer
        .caller
        .session_hash
        .as_ref()
        .is_some_and(|h| super::account::handle(h) == form.session);
    if own {
        let mut resp = Redirect::to("/login").into_response();
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, "", "/", 0),
        );
        return resp;
    }
    Redirect::to("/account").into_response()
}
