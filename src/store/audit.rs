//! Reading the audit log: filters and pages shared by `stagegate audit` and
//! `GET /v1/audit`, so both answer the same question the same way.
//!
//! Entries come oldest first (newest last), by their sequence number. The
//! log's `old`/`new` values never hold a secret or a hash (apply writes only
//! what a reviewer needs), so showing them whole is safe.

use super::{AuditRow, Store, StoreError};
use crate::snapshot::ObjectKey;
use jiff::Timestamp;
use serde::Serialize;

/// Fields of an entry's values that name a user: `username` (users,
/// bootstrap), `user` (bindings), `owner` (tokens, models), `requestedBy`.
const USER_FIELDS: [&str; 4] = ["username", "user", "owner", "requestedBy"];

/// Which entries to show; every filter that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries about this username: its User object, or values naming it.
    pub user: Option<String>,
    /// Only entries about this object (kind compared case-insensitively).
    pub object: Option<ObjectKey>,
}

impl AuditFilter {
    /// Whether `row` passes every filter that is set.
    pub fn matches(&self, row: &AuditRow) -> bool {
        self.since.is_none_or(|t| row.at >= t)
            && self.user.as_deref().is_none_or(|u| about_user(row, u))
            && self.object.as_ref().is_none_or(|k| {
                row.object.kind.eq_ignore_ascii_case(&k.kind)
                    && row.object.namespace == k.namespace
                    && row.object.name == k.name
            })
    }
}

fn about_user(row: &AuditRow, user: &str) -> bool {
    let named = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .is_some_and(|v| USER_FIELDS.iter().any(|f| v[f].as_str() == Some(user)))
    };
    (row.object.kind == "User" && row.object.name == user) || named(&row.old) || named(&row.new)
}

/// One page of matching entries, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditRow>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Up to `limit` entries after sequence number `after` that match `filter`.
pub fn audit_page(
    store: &dyn Store,
    filter: &AuditFilter,
    after: i64,
    limit: usize,
) -> Result<AuditPage, StoreError> {
    let mut matching = store
        .audit(after)?
        .into_iter()
        .filter(|r| filter.matches(r));
    let entries: Vec<AuditRow> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let next_cursor = match entries.last() {
        Some(last) if more => Some(last.id.to_string()),
        _ => None,
    };
    Ok(AuditPage {
        entries,
        next_cursor,
    })
}

/// Parses `--since`: a duration back from `now` (`90m`, `24h`, `7d`), an
/// RFC 3339 time (`2025-03-01T12:00:00Z`) or a date (`2025-03-01`, midnight UTC).
pub fn parse_since(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| format!("since {s:?}: {e}"));
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!("since {s:?} is neither a duration (90m, 24h, 7d) nor a time (2025-03-01T12:00:00Z, 2025-03-01)")
    })?;
    jiff::SignedDuration::try_from(ago)
        .ok()
        .and_then(|d| now.checked_sub(d).ok())
        .ok_or_else(|| format!("since {s:?} reaches before the earliest representable time"))
}

/// Parses `--object KIND/NAMESPACE/NAME`.
pub fn parse_object(s: &str) -> Result<ObjectKey, String> {
    match s.split('/').collect::<Vec<_>>()[..] {
        [kind, ns, name] if !kind.is_empty() && !ns.is_empty() && !name.is_empty() => {
            Ok(ObjectKey::new(kind, ns, name))
        }
        _ => Err(format!(
            "object {s:?} is not KIND/NAMESPACE/NAME, e.g. User/ml-platform/ada"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: i64, at: &str, kind: &str, name: &str, new: serde_json::Value) -> AuditRow {
        AuditRow {
            id,
            at: at.parse().unwrap(),
            action: "x".into(),
            object: ObjectKey::new(kind, "ns", name),
            source: "f.yaml:1".into(),
            old: None,
            new: Some(new),
        }
    }

    #[test]
    fn user_filter_matches_the_user_object_and_values_naming_it() {
        let f = AuditFilter {
            user: Some("ada".into()),
            ..Default::default()
        };
        let t = "2025-01-01T00:00:00Z";
        assert!(f.matches(&row(1, t, "User", "ada", json!({}))));
        assert!(f.matches(&row(2, t, "AccessBinding", "b", json!({"user": "ada"}))));
        assert!(f.matches(&row(3, t, "ApiToken", "t", json!({"owner": "ada"}))));
        assert!(!f.matches(&row(4, t, "ApiToken", "t", json!({"owner": "adam"}))));
        assert!(!f.matches(&row(5, t, "AccessBinding", "ada", json!({"user": "bob"}))));
    }

    #[test]
    fn since_accepts_durations_times_and_dates() {
        let now: Timestamp = "2025-03-10T00:00:00Z".parse().unwrap();
        assert_eq!(
            parse_since("2d", now).unwrap().to_string(),
            "2025-03-08T00:00:00Z"
        );
        assert_eq!(
            parse_since("2025-03-01", now).unwrap().to_string(),
            "2025-03-01T00:00:00Z"
        );
        assert_eq!(
            parse_since("2025-03-01T12:30:00+01:00", now)
                .unwrap()
                .to_string(),
            "2025-03-01T11:30:00Z"
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_object("User/ml-platform").is_err());
        assert_eq!(
            parse_object("User/ml-platform/ada").unwrap(),
            ObjectKey::new("User", "ml-platform", "ada")
        );
    }
}
