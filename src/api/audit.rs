//! `GET /v1/audit`: the audit log for global Admins, oldest first, in pages —
//! the same filters as `stagegate audit` (`crate::store::AuditFilter`).

use super::auth::Caller;
use super::error::ApiError;
use super::state::ApiState;
use crate::plan::Question;
use crate::policy::{Action, Scope};
use crate::store::{audit_page, parse_object, parse_since, AuditFilter, AuditPage};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

/// Entries per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// The largest page a client may ask for.
const MAX_LIMIT: usize = 1000;

/// `GET /v1/audit` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    since: Option<String>,
    user: Option<String>,
    object: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/audit`: only a caller who may manage users globally (a global Admin) reads the log,
/// because it spans every scope.
pub async fn audit(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let global_admin = Question {
        action: Some(Action::UsersManage),
        model: None,
        scope: Some(Scope::global()),
        to: None,
    };
    let allowed = state
        .index()
        .authorize(&caller.principal, &global_admin)
        .is_ok_and(|d| d.allowed);
    if !allowed {
        return Err(ApiError::Forbidden(
            "the audit log is for global Admins".into(),
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!("cursor {c:?} is not one this API gave"))
        })?,
    };
    let filter = AuditFilter {
        since: q
            .since
            .as_deref()
            .map(|s| parse_since(s, jiff::Timestamp::now()))
            .transpose()
            .map_err(ApiError::BadRequest)?,
        user: q.user,
        object: q
            .object
            .as_deref()
            .map(parse_object)
            .transpose()
            .map_err(ApiError::BadRequest)?,
    };
    let page =
        tokio::task::spawn_blocking(move || audit_page(&*state.store(), &filter, after, limit))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    Ok(Json(page))
}
