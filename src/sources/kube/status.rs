//! From a stored outcome ([`ObjectStatus`]) to the object's `status`: pure.
//!
//! The `Ready` condition has the KEP-1623 shape; its `lastTransitionTime`
//! stays as it was while its status does not change, so reconciling an
//! unchanged object produces an identical status and no write.

use crate::store::ObjectStatus;
use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// Kind-specific status fields copied from the outcome's extras.
fn extra_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "ApiToken" => &["keyId", "issuedAt", "expiresAt", "secretName"],
        "ModelStageRequest" => &["decidedAt"],
        _ => &[],
    }
}

/// Whether a kind's status has a `phase`.
fn has_phase(kind: &str) -> bool {
    matches!(kind, "User" | "ApiToken" | "ModelStageRequest")
}

/// Kubernetes `Time`: RFC 3339 in UTC with whole seconds.
pub fn k8s_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The `Ready` condition in `status`, if any.
pub fn ready_condition(status: Option<&Value>) -> Option<&Value> {
    status?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

/// The status an object should have for outcome `st`, given its current `status`.
pub fn desired(current: Option<&Value>, st: &ObjectStatus, now: Timestamp) -> Value {
    let cond_status = if st.ready { "True" } else { "False" };
    let previous = ready_condition(current);
    let transition = previous
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(cond_status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(k8s_time(now)));
    let mut condition = json!({
        "type": "Ready",
        "status": cond_status,
        "reason": st.reason,
        "message": st.message,
        "lastTransitionTime": transition,
    });
    let mut out = Map::new();
    if let Some(g) = st.observed_generation {
        out.insert("observedGeneration".into(), json!(g));
        condition["observedGeneration"] = json!(g);
    }
    // Other controllers' conditions are kept as they are.
    let mut conditions: Vec<Value> = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) != Some("Ready"))
        .cloned()
        .collect();
    conditions.insert(0, condition);
    out.insert("conditions".into(), Value::Array(conditions));
    let kind = st.key.kind.as_str();
    if has_phase(kind) {
        if let Some(p) = &st.phase {
            out.insert("phase".into(), json!(p));
        }
    }
    for f in extra_fields(kind) {
        if let Some(v) = st.extra.get(*f) {
            out.insert((*f).into(), json!(v));
        }
    }
    if kind == "ModelStageRequest" && !st.message.is_empty() {
        out.insert("message".into(), json!(st.message));
    }
    Value::Object(out)
}

/// The merge patch turning `current` into `desired` (null removes a field), or `None` when equal.
pub fn patch(current: Option<&Value>, desired: &Value) -> Option<Value> {
    if current == Some(desired) {
        return None;
    }
    let mut body = desired.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(cur)) = current {
        for k in cur.keys() {
            body.entry(k.clone()).or_insert(Value::Null);
        }
    }
    Some(json!({ "status": body }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ObjectKey;
    use std::collections::BTreeMap;

    fn token_status(ready: bool, reason: &str) -> ObjectStatus {
        let mut extra = BTreeMap::new();
        extra.insert("keyId".to_string(), "k1".to_string());
        extra.insert("secretName".to_string(), "ci-token".to_string());
        extra.insert("unrelated".to_string(), "x".to_string());
        ObjectStatus {
            key: ObjectKey::new("ApiToken", "t", "ci"),
            ready,
            reason: reason.into(),
            message: "m".into(),
            phase: Some("Active".into()),
            observed_generation: Some(3),
            extra,
            source: "ApiToken t/ci".into(),
        }
    }

    #[test]
    fn unchanged_outcome_gives_no_patch_and_keeps_transition_time() {
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let first = desired(None, &token_status(true, "Ready"), t1);
        assert_eq!(first["keyId"], "k1");
        assert!(first.get("unrelated").is_none());
        assert_eq!(first["conditions"][0]["observedGeneration"], 3);
        assert_eq!(
            first["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        let again = desired(Some(&first), &token_status(true, "Ready"), t2);
        assert_eq!(patch(Some(&first), &again), None);
        // A new reason with the same status keeps the time; a new status moves it.
        let other = desired(Some(&first), &token_status(true, "Other"), t2);
        assert_eq!(
            other["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        let down = desired(Some(&first), &token_status(false, "SecretMissing"), t2);
        assert_eq!(
            down["conditions"][0]["lastTransitionTime"],
            "2026-01-02T00:00:00Z"
        );
        assert!(patch(Some(&first), &down).is_some());
    }

    #[test]
    fn removed_fields_become_null_in_the_patch() {
        let cur = json!({"keyId": "old", "phase": "Active"});
        let want = json!({"phase": "Revoked"});
        assert_eq!(
            patch(Some(&cur), &want),
            Some(json!({"status": {"keyId": null, "phase": "Revoked"}}))
        );
    }
}
