//! Row decoding and column encoding between the databases and the store's types.
//!
//! Decoders read columns by name through [`Cols`], which SQLite rows and
//! PostgreSQL rows both implement, so one decoder serves both stores.

use super::model::*;
use super::StoreError;
use crate::policy::{FromStage, Grant, Scope, Stage};
use crate::resources::{RequestPhase, UserState};
use crate::secrets::HashValue;
use crate::snapshot::ObjectKey;
use jiff::Timestamp;
use std::borrow::Cow;

/// A decoding failure (never holds a column's value when the column is secret).
pub(super) type ColResult<T> = Result<T, String>;

/// Named-column access a row of either database offers.
pub(super) trait Cols {
    /// A TEXT column that may be NULL.
    fn opt_text(&self, c: &str) -> ColResult<Option<String>>;
    /// An integer column that may be NULL.
    fn opt_int(&self, c: &str) -> ColResult<Option<i64>>;
    /// A flag (SQLite: INTEGER 0/1, PostgreSQL: BOOLEAN).
    fn flag(&self, c: &str) -> ColResult<bool>;

    /// A NOT NULL TEXT column.
    fn text(&self, c: &str) -> ColResult<String> {
        self.opt_text(c)?.ok_or_else(|| format!("{c} is NULL"))
    }
    /// A NOT NULL integer column.
    fn int(&self, c: &str) -> ColResult<i64> {
        self.opt_int(c)?.ok_or_else(|| format!("{c} is NULL"))
    }
}

/// A value bound to a statement parameter; both databases accept these three shapes.
///
/// Text borrows from the row it comes from where it can: a first apply binds millions of
/// values, and a copy of each one cost more than the database's own work on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Val<'a> {
    /// TEXT (NULL when none).
    Text(Option<Cow<'a, str>>),
    /// 64-bit integer (NULL when none).
    Int(Option<i64>),
    /// Flag.
    Bool(bool),
}

/// Conversion of a borrowed Rust value into a statement parameter.
pub(super) trait ToVal {
    /// The parameter, borrowing from `self`.
    fn to_val(&self) -> Val<'_>;
}

impl<T: ToVal + ?Sized> ToVal for &T {
    fn to_val(&self) -> Val<'_> {
        (**self).to_val()
    }
}
impl ToVal for str {
    fn to_val(&self) -> Val<'_> {
        Val::Text(Some(Cow::Borrowed(self)))
    }
}
impl ToVal for String {
    fn to_val(&self) -> Val<'_> {
        Val::Text(Some(Cow::Borrowed(self)))
    }
}
impl ToVal for Option<String> {
    fn to_val(&self) -> Val<'_> {
        Val::Text(self.as_deref().map(Cow::Borrowed))
    }
}
impl ToVal for Option<&str> {
    fn to_val(&self) -> Val<'_> {
        Val::Text(self.map(Cow::Borrowed))
    }
}
impl ToVal for i64 {
    fn to_val(&self) -> Val<'_> {
        Val::Int(Some(*self))
    }
}
impl ToVal for u32 {
    fn to_val(&self) -> Val<'_> {
        Val::Int(Some(i64::from(*self)))
    }
}
impl ToVal for Option<i64> {
    fn to_val(&self) -> Val<'_> {
        Val::Int(*self)
    }
}
impl ToVal for Option<u32> {
    fn to_val(&self) -> Val<'_> {
        Val::Int(self.map(i64::from))
    }
}
impl ToVal for bool {
    fn to_val(&self) -> Val<'_> {
        Val::Bool(*self)
    }
}

/// Statement parameters: `vals![a, b, ...]`.
macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$($crate::store::rows::ToVal::to_val(&$v)),*] };
}
pub(super) use vals;

pub(super) fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

fn ts(r: &impl Cols, c: &str) -> ColResult<Timestamp> {
    r.text(c)?.parse().map_err(|e| format!("{c}: {e}"))
}

fn ts_opt(r: &impl Cols, c: &str) -> ColResult<Option<Timestamp>> {
    r.opt_text(c)?
        .map(|s| s.parse().map_err(|e| format!("{c}: {e}")))
        .transpose()
}

fn small(r: &impl Cols, c: &str) -> ColResult<u32> {
    u32::try_from(r.int(c)?).map_err(|e| format!("{c}: {e}"))
}

fn parsed<T: std::str::FromStr>(r: &impl Cols, c: &str) -> ColResult<T>
where
    T::Err: std::fmt::Display,
{
    r.text(c)?.parse().map_err(|e| format!("{c}: {e}"))
}

pub(super) fn scope_cols(s: &Scope) -> (&str, &str) {
    (
        s.customer.as_deref().unwrap_or_default(),
        s.project.as_deref().unwrap_or_default(),
    )
}

fn scope(r: &impl Cols) -> ColResult<Scope> {
    let c = r.text("scope_customer")?;
    let p = r.text("scope_project")?;
    Ok(Scope {
        customer: (!c.is_empty()).then_some(c),
        project: (!p.is_empty()).then_some(p),
    })
}

fn owner(r: &impl Cols) -> ColResult<Option<Owner>> {
    Ok(match r.opt_text("owner_kind")? {
        None => None,
        Some(kind) => Some(Owner {
            key: ObjectKey {
                kind,
                namespace: r.text("owner_namespace")?,
                name: r.text("owner_name")?,
            },
            source: r.opt_text("owner_source")?.unwrap_or_default(),
        }),
    })
}

pub(super) fn owner_cols(o: &Option<Owner>) -> [Option<&str>; 4] {
    match o {
        None => [None, None, None, None],
        Some(o) => [
            Some(o.key.kind.as_str()),
            Some(o.key.namespace.as_str()),
            Some(o.key.name.as_str()),
            Some(o.source.as_str()),
        ],
    }
}

fn user_state(s: &str) -> ColResult<UserState> {
    match s {
        "Active" => Ok(UserState::Active),
        "Revoked" => Ok(UserState::Revoked),
        o => Err(format!("unknown user state {o}")),
    }
}

pub(super) fn user_state_str(s: UserState) -> &'static str {
    match s {
        UserState::Active => "Active",
        UserState::Revoked => "Revoked",
    }
}

fn from_stage(s: &str) -> ColResult<FromStage> {
    if s == "None" {
        return Ok(FromStage::None);
    }
    Ok(FromStage::from(Some(
        s.parse::<Stage>().map_err(|e| e.to_string())?,
    )))
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

fn phase(s: &str) -> ColResult<RequestPhase> {
    match s {
        "Applied" => Ok(RequestPhase::Applied),
        "Denied" => Ok(RequestPhase::Denied),
        "Conflict" => Ok(RequestPhase::Conflict),
        o => Err(format!("unknown request phase {o}")),
    }
}

pub(super) fn user_row(r: &impl Cols) -> ColResult<UserRow> {
    let pending = match r.opt_text("pending_password_id")? {
        None => None,
        Some(id) => Some(PendingPassword {
            id,
            hash: HashValue::new(r.opt_text("pending_password_hash")?.unwrap_or_default()),
            rotation: match r.opt_int("pending_rotation")? {
                Some(n) => u32::try_from(n).map_err(|e| format!("pending_rotation: {e}"))?,
                None => 0,
            },
        }),
    };
    Ok(UserRow {
        username: r.text("username")?,
        display_name: r.opt_text("display_name")?,
        email: r.opt_text("email")?,
        state: user_state(&r.text("state")?)?,
        password_hash: r.opt_text("password_hash")?.map(HashValue::new),
        password_source: match r.opt_text("password_source")?.as_deref() {
            Some("ref") => Some(PasswordSource::Ref),
            Some("generated") => Some(PasswordSource::Generated),
            _ => None,
        },
        password_fingerprint: r.opt_text("password_fingerprint")?.map(HashValue::new),
        password_id: r.opt_text("password_id")?,
        password_rotation: small(r, "password_rotation")?,
        pending_password: pending,
        password_chosen_at: ts_opt(r, "password_chosen_at")?,
        invitation: invitation(r)?,
        first_login: ts_opt(r, "first_login")?,
        last_login: ts_opt(r, "last_login")?,
        bootstrap: r.flag("bootstrap")?,
        owner: owner(r)?,
    })
}

fn invitation(r: &impl Cols) -> ColResult<Option<InvitationRow>> {
    let Some(id) = r.opt_text("invitation_id")? else {
        return Ok(None);
    };
    let rotation = r.opt_int("invitation_rotation")?.unwrap_or(0);
    Ok(Some(InvitationRow {
        id,
        code_hmac: HashValue::new(r.opt_text("invitation_hmac")?.unwrap_or_default()),
        rotation: u32::try_from(rotation).map_err(|e| format!("invitation_rotation: {e}"))?,
        issued_at: ts(r, "invitation_issued_at")?,
        expires_at: ts(r, "invitation_expires_at")?,
        state: match r.opt_text("invitation_state")?.as_deref() {
            Some("issued") => InvitationState::Issued,
            Some("accepted") => InvitationState::Accepted,
            _ => InvitationState::Pending,
        },
    }))
}

pub(super) fn binding_row(r: &impl Cols) -> ColResult<BindingRow> {
    Ok(BindingRow {
        username: r.text("username")?,
        role: parsed(r, "role")?,
        scope: scope(r)?,
        owner: owner(r)?,
    })
}

pub(super) fn token_row(r: &impl Cols) -> ColResult<TokenKeyRow> {
    Ok(TokenKeyRow {
        key_id: r.text("key_id")?,
        token_name: r.text("token_name")?,
        namespace: r.text("namespace")?,
        secret_hmac: HashValue::new(r.text("secret_hmac")?),
        role: parsed(r, "role")?,
        scope: scope(r)?,
        owner_user: r.opt_text("owner_user")?,
        issued_at: ts(r, "issued_at")?,
        expires_at: ts_opt(r, "expires_at")?,
        revoked_at: ts_opt(r, "revoked_at")?,
        revoked_reason: r.opt_text("revoked_reason")?,
        rotation: small(r, "rotation")?,
        state: match r.text("state")?.as_str() {
            "pending" => KeyState::Pending,
            _ => KeyState::Issued,
        },
        secret_name: r.text("secret_name")?,
        owner: owner(r)?,
    })
}

pub(super) fn model_row(r: &impl Cols) -> ColResult<ModelRow> {
    Ok(ModelRow {
        name: r.text("name")?,
        scope: scope(r)?,
        owner: r.opt_text("owner")?,
        stage: parsed(r, "stage")?,
    })
}

pub(super) fn request_row(r: &impl Cols) -> ColResult<DecidedRequest> {
    Ok(DecidedRequest {
        namespace: r.text("namespace")?,
        name: r.text("name")?,
        model: r.text("model")?,
        scope: scope(r)?,
        from: from_stage(&r.text("from_stage")?)?,
        to: parsed(r, "to_stage")?,
        requested_by: r.text("requested_by")?,
        phase: phase(&r.text("phase")?)?,
        message: r.text("message")?,
        decided_at: ts(r, "decided_at")?,
        source: r.text("source")?,
    })
}

pub(super) fn status_row(r: &impl Cols) -> ColResult<ObjectStatus> {
    Ok(ObjectStatus {
        key: ObjectKey {
            kind: r.text("kind")?,
            namespace: r.text("namespace")?,
            name: r.text("name")?,
        },
        ready: r.flag("ready")?,
        reason: r.text("reason")?,
        message: r.text("message")?,
        phase: r.opt_text("phase")?,
        observed_generation: r.opt_int("observed_generation")?,
        extra: serde_json::from_str(&r.text("extra_json")?).map_err(|e| e.to_string())?,
        source: r.text("source")?,
    })
}

pub(super) fn audit_row(r: &impl Cols) -> ColResult<AuditRow> {
    let json = |c: &str| -> ColResult<Option<serde_json::Value>> {
        r.opt_text(c)?
            .map(|s| serde_json::from_str(&s).map_err(|e| format!("{c}: {e}")))
            .transpose()
    };
    Ok(AuditRow {
        id: r.int("id")?,
        at: ts(r, "at")?,
        action: r.text("action")?,
        object: ObjectKey {
            kind: r.text("kind")?,
            namespace: r.text("namespace")?,
            name: r.text("name")?,
        },
        source: r.text("source")?,
        old: json("old_json")?,
        new: json("new_json")?,
    })
}

pub(super) fn session_row(r: &impl Cols) -> ColResult<SessionRow> {
    Ok(SessionRow {
        id_hash: HashValue::new(r.text("id_hash")?),
        username: r.text("username")?,
        grants: serde_json::from_str::<Vec<Grant>>(&r.text("grants_json")?)
            .map_err(|e| e.to_string())?,
        created_at: ts(r, "created_at")?,
        expires_at: ts(r, "expires_at")?,
    })
}
