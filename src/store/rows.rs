//! Row decoding and column encoding between SQLite and the store's types.

use super::model::*;
use super::StoreError;
use crate::policy::{FromStage, Grant, Scope, Stage};
use crate::resources::{RequestPhase, UserState};
use crate::secrets::HashValue;
use crate::snapshot::ObjectKey;
use jiff::Timestamp;
use rusqlite::{Connection, Row};

pub(super) fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

pub(super) fn conv(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

pub(super) fn ts(r: &Row, i: &str) -> rusqlite::Result<Timestamp> {
    r.get::<_, String>(i)?.parse().map_err(conv)
}

pub(super) fn ts_opt(r: &Row, i: &str) -> rusqlite::Result<Option<Timestamp>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| s.parse().map_err(conv))
        .transpose()
}

pub(super) fn scope_cols(s: &Scope) -> (String, String) {
    (
        s.customer.clone().unwrap_or_default(),
        s.project.clone().unwrap_or_default(),
    )
}

pub(super) fn scope(r: &Row) -> rusqlite::Result<Scope> {
    let c: String = r.get("scope_customer")?;
    let p: String = r.get("scope_project")?;
    Ok(Scope {
        customer: (!c.is_empty()).then_some(c),
        project: (!p.is_empty()).then_some(p),
    })
}

pub(super) fn owner(r: &Row) -> rusqlite::Result<Option<Owner>> {
    let kind: Option<String> = r.get("owner_kind")?;
    Ok(match kind {
        None => None,
        Some(kind) => Some(Owner {
            key: ObjectKey {
                kind,
                namespace: r.get("owner_namespace")?,
                name: r.get("owner_name")?,
            },
            source: r
                .get::<_, Option<String>>("owner_source")?
                .unwrap_or_default(),
        }),
    })
}

pub(super) fn owner_cols(o: &Option<Owner>) -> [Option<String>; 4] {
    match o {
        None => [None, None, None, None],
        Some(o) => [
            Some(o.key.kind.clone()),
            Some(o.key.namespace.clone()),
            Some(o.key.name.clone()),
            Some(o.source.clone()),
        ],
    }
}

pub(super) fn user_state(s: &str) -> rusqlite::Result<UserState> {
    match s {
        "Active" => Ok(UserState::Active),
        "Revoked" => Ok(UserState::Revoked),
        o => Err(conv(format!("unknown user state {o}"))),
    }
}

pub(super) fn user_state_str(s: UserState) -> &'static str {
    match s {
        UserState::Active => "Active",
        UserState::Revoked => "Revoked",
    }
}

pub(super) fn from_stage(s: &str) -> rusqlite::Result<FromStage> {
    if s == "None" {
        return Ok(FromStage::None);
    }
    Ok(FromStage::from(Some(s.parse::<Stage>().map_err(conv)?)))
}

/// Name of a request phase as stored and shown.
pub fn phase_str(p: RequestPhase) -> &'static str {
    match p {
        RequestPhase::Pending => "Pending",
        RequestPhase::Applied => "Applied",
        RequestPhase::Denied => "Denied",
        RequestPhase::Conflict => "Conflict",
    }
}

pub(super) fn phase(s: &str) -> rusqlite::Result<RequestPhase> {
    match s {
        "Applied" => Ok(RequestPhase::Applied),
        "Denied" => Ok(RequestPhase::Denied),
        "Conflict" => Ok(RequestPhase::Conflict),
        o => Err(conv(format!("unknown request phase {o}"))),
    }
}

pub(super) fn user_row(r: &Row) -> rusqlite::Result<UserRow> {
    let pending_id: Option<String> = r.get("pending_password_id")?;
    let pending = match pending_id {
        None => None,
        Some(id) => Some(PendingPassword {
            id,
            hash: HashValue::new(
                r.get::<_, Option<String>>("pending_password_hash")?
                    .unwrap_or_default(),
            ),
            rotation: r.get::<_, Option<u32>>("pending_rotation")?.unwrap_or(0),
        }),
    };
    Ok(UserRow {
        username: r.get("username")?,
        display_name: r.get("display_name")?,
        email: r.get("email")?,
        state: user_state(&r.get::<_, String>("state")?)?,
        password_hash: r
            .get::<_, Option<String>>("password_hash")?
            .map(HashValue::new),
        password_source: match r.get::<_, Option<String>>("password_source")?.as_deref() {
            Some("ref") => Some(PasswordSource::Ref),
            Some("generated") => Some(PasswordSource::Generated),
            _ => None,
        },
        password_fingerprint: r
            .get::<_, Option<String>>("password_fingerprint")?
            .map(HashValue::new),
        password_id: r.get("password_id")?,
        password_rotation: r.get("password_rotation")?,
        pending_password: pending,
        password_chosen_at: ts_opt(r, "password_chosen_at")?,
        invitation: invitation(r)?,
        first_login: ts_opt(r, "first_login")?,
        last_login: ts_opt(r, "last_login")?,
        bootstrap: r.get("bootstrap")?,
        owner: owner(r)?,
    })
}

fn invitation(r: &Row) -> rusqlite::Result<Option<InvitationRow>> {
    let Some(id) = r.get::<_, Option<String>>("invitation_id")? else {
        return Ok(None);
    };
    Ok(Some(InvitationRow {
        id,
        code_hmac: HashValue::new(
            r.get::<_, Option<String>>("invitation_hmac")?
                .unwrap_or_default(),
        ),
        rotation: r.get::<_, Option<u32>>("invitation_rotation")?.unwrap_or(0),
        issued_at: ts(r, "invitation_issued_at")?,
        expires_at: ts(r, "invitation_expires_at")?,
        state: match r.get::<_, Option<String>>("invitation_state")?.as_deref() {
            Some("issued") => InvitationState::Issued,
            Some("accepted") => InvitationState::Accepted,
            _ => InvitationState::Pending,
        },
    }))
}

pub(super) fn binding_row(r: &Row) -> rusqlite::Result<BindingRow> {
    Ok(BindingRow {
        username: r.get("username")?,
        role: r.get::<_, String>("role")?.parse().map_err(conv)?,
        scope: scope(r)?,
        owner: owner(r)?,
    })
}

pub(super) fn token_row(r: &Row) -> rusqlite::Result<TokenKeyRow> {
    Ok(TokenKeyRow {
        key_id: r.get("key_id")?,
        token_name: r.get("token_name")?,
        namespace: r.get("namespace")?,
        secret_hmac: HashValue::new(r.get("secret_hmac")?),
        role: r.get::<_, String>("role")?.parse().map_err(conv)?,
        scope: scope(r)?,
        owner_user: r.get("owner_user")?,
        issued_at: ts(r, "issued_at")?,
        expires_at: ts_opt(r, "expires_at")?,
        revoked_at: ts_opt(r, "revoked_at")?,
        revoked_reason: r.get("revoked_reason")?,
        rotation: r.get("rotation")?,
        state: match r.get::<_, String>("state")?.as_str() {
            "pending" => KeyState::Pending,
            _ => KeyState::Issued,
        },
        secret_name: r.get("secret_name")?,
        owner: owner(r)?,
    })
}

pub(super) fn model_row(r: &Row) -> rusqlite::Result<ModelRow> {
    Ok(ModelRow {
        name: r.get("name")?,
        scope: scope(r)?,
        owner: r.get("owner")?,
        stage: r.get::<_, String>("stage")?.parse().map_err(conv)?,
    })
}

pub(super) fn request_row(r: &Row) -> rusqlite::Result<DecidedRequest> {
    Ok(DecidedRequest {
        namespace: r.get("namespace")?,
        name: r.get("name")?,
        model: r.get("model")?,
        scope: scope(r)?,
        from: from_stage(&r.get::<_, String>("from_stage")?)?,
        to: r.get::<_, String>("to_stage")?.parse().map_err(conv)?,
        requested_by: r.get("requested_by")?,
        phase: phase(&r.get::<_, String>("phase")?)?,
        message: r.get("message")?,
        decided_at: ts(r, "decided_at")?,
        source: r.get("source")?,
    })
}

pub(super) fn status_row(r: &Row) -> rusqlite::Result<ObjectStatus> {
    Ok(ObjectStatus {
        key: ObjectKey {
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        ready: r.get("ready")?,
        reason: r.get("reason")?,
        message: r.get("message")?,
        phase: r.get("phase")?,
        observed_generation: r.get("observed_generation")?,
        extra: serde_json::from_str(&r.get::<_, String>("extra_json")?).map_err(conv)?,
        source: r.get("source")?,
    })
}

pub(super) fn audit_row(r: &Row) -> rusqlite::Result<AuditRow> {
    let json = |c: &str| -> rusqlite::Result<Option<serde_json::Value>> {
        r.get::<_, Option<String>>(c)?
            .map(|s| serde_json::from_str(&s).map_err(conv))
            .transpose()
    };
    Ok(AuditRow {
        id: r.get("id")?,
        at: ts(r, "at")?,
        action: r.get("action")?,
        object: ObjectKey {
            kind: r.get("kind")?,
            namespace: r.get("namespace")?,
            name: r.get("name")?,
        },
        source: r.get("source")?,
        old: json("old_json")?,
        new: json("new_json")?,
    })
}

pub(super) fn session_row(r: &Row) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id_hash: HashValue::new(r.get("id_hash")?),
        username: r.get("username")?,
        grants: serde_json::from_str::<Vec<Grant>>(&r.get::<_, String>("grants_json")?)
            .map_err(conv)?,
        created_at: ts(r, "created_at")?,
        expires_at: ts(r, "expires_at")?,
    })
}

pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    f: fn(&Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], f)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
