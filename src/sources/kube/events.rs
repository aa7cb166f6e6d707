//! Kubernetes Events from status transitions: pure derivation, then
//! publication with kube-runtime's `Recorder` (events.k8s.io/v1).
//!
//! An Event is derived only when an object's outcome changes, so a
//! reconcile that changes nothing records nothing. Notes never hold secrets:
//! outcomes carry none.

use crate::store::ObjectStatus;
use kube::runtime::events::{Event, EventType};
use serde_json::Value;

/// One Event to publish about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub warning: bool,
    /// Machine reason (`Issued`, `Rotated`, `Revoked`, `Denied`, `SecretConflict`, ...).
    pub reason: String,
    /// What the controller did (`Issue`, `Rotate`, `Revoke`, `Decide`, `Reconcile`).
    pub action: &'static str,
    /// Human note.
    pub note: String,
}

impl Notice {
    /// As a kube-runtime Event.
    pub fn event(&self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason.clone(),
            note: Some(truncate(&self.note)),
            action: self.action.to_string(),
            secondary: None,
        }
    }
}

/// The most Events a round may publish for the controller to keep its `Recorder`.
///
/// kube-runtime's `Recorder` keeps each Event it published for six minutes, to patch a
/// repeat into a series instead of creating another Event, and forgets old ones only
/// when it next publishes. A round that published more (a first apply: 7,000 Events at
/// 10,000 users) would leave all of them in the idle process; the controller then takes
/// a fresh recorder (see [`keeps_recorder`]): a repeat of one of those Events within six
/// minutes becomes an Event of its own. Repeats of a few (a failed request reported on
/// every retry) still form series.
pub const RECORDER_KEEPS_AFTER: usize = 100;

/// Whether the controller keeps its `Recorder` after a round that published `events`
/// Events (see [`RECORDER_KEEPS_AFTER`]).
pub fn keeps_recorder(events: usize) -> bool {
    events <= RECORDER_KEEPS_AFTER
}

/// events.k8s.io rejects a note longer than 1,024 bytes (bytes of UTF-8, not characters).
pub const NOTE_LIMIT: usize = 1024;

/// `s` cut to at most [`NOTE_LIMIT`] bytes at a character boundary, with `…` marking the cut.
pub fn truncate(s: &str) -> String {
    if s.len() <= NOTE_LIMIT {
        return s.to_string();
    }
    let mut end = NOTE_LIMIT - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn field<'a>(status: Option<&'a Value>, name: &str) -> Option<&'a str> {
    status?.get(name)?.as_str()
}

/// The Events for an object whose status goes from `current` to the outcome `st`.
pub fn derive(current: Option<&Value>, st: &ObjectStatus) -> Vec<Notice> {
    let mut out = Vec::new();
    let old_phase = field(current, "phase");
    let new_phase = st.phase.as_deref();
    let old_reason = super::status::ready_condition(current)
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str);
    if st.key.kind == "ApiToken" {
        let (old_key, new_key) = (field(current, "keyId"), st.extra.get("keyId"));
        if let Some(k) = new_key.filter(|k| Some(k.as_str()) != old_key) {
            let secret = st.extra.get("secretName").map_or("", String::as_str);
            let (reason, action) = match old_key {
                None => ("Issued", "Issue"),
                Some(_) => ("Rotated", "Rotate"),
            };
            out.push(Notice {
                warning: false,
                reason: reason.into(),
                action,
                note: format!("key {k} delivered to Secret {secret}"),
            });
        }
    }
    if new_phase != old_phase {
        match new_phase {
            // Revoked by its spec or its owner; other reasons (SecretConflict) get their own Event below.
            Some("Revoked") if st.reason == "Revoked" => out.push(Notice {
                warning: false,
                reason: "Revoked".into(),
                action: "Revoke",
                note: st.message.clone(),
            }),
            Some(p @ ("Applied" | "Denied" | "Conflict")) => out.push(Notice {
                warning: p != "Applied",
                reason: p.into(),
                action: "Decide",
                note: st.message.clone(),
            }),
            _ => {}
        }
    }
    let said = out.iter().any(|n| n.reason == st.reason);
    if !st.ready && !said && old_reason != Some(st.reason.as_str()) {
        out.push(Notice {
            warning: true,
            reason: st.reason.clone(),
            action: "Reconcile",
            note: st.message.clone(),
        });
    }
    out
}

/// The Event for an object that failed to convert (reported once per change of its reason).
pub fn malformed(why: &str) -> Notice {
    Notice {
        warning: true,
        reason: "SchemaViolation".into(),
        action: "Validate",
        note: format!("skipped: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ObjectKey;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn a_round_of_many_events_leaves_a_fresh_recorder_a_few_keep_it() {
        assert!(keeps_recorder(0));
        assert!(
            keeps_recorder(1),
            "a failed request's Warning on every retry forms a series"
        );
        assert!(keeps_recorder(RECORDER_KEEPS_AFTER));
        assert!(!keeps_recorder(RECORDER_KEEPS_AFTER + 1));
        assert!(!keeps_recorder(7000), "a first apply's Events are not kept");
    }

    fn st(
        kind: &str,
        ready: bool,
        reason: &str,
        phase: Option<&str>,
        key: Option<&str>,
    ) -> ObjectStatus {
        let mut extra = BTreeMap::new();
        if let Some(k) = key {
            extra.insert("keyId".to_string(), k.to_string());
            extra.insert("secretName".to_string(), "s".to_string());
        }
        ObjectStatus {
            key: ObjectKey::new(kind, "t", "o"),
            ready,
            reason: reason.into(),
            message: "why".into(),
            phase: phase.map(str::to_string),
            observed_generation: Some(1),
            extra,
            source: String::new(),
        }
    }

    fn reasons(n: Vec<Notice>) -> Vec<String> {
        n.into_iter().map(|n| n.reason).collect()
    }

    #[test]
    fn token_issue_rotation_and_revocation() {
        let active = st("ApiToken", true, "Ready", Some("Active"), Some("k1"));
        assert_eq!(reasons(derive(None, &active)), ["Issued"]);
        let cur = json!({"keyId": "k1", "phase": "Active", "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]});
        assert!(derive(Some(&cur), &active).is_empty());
        let rotated = st("ApiToken", true, "Ready", Some("Active"), Some("k2"));
        assert_eq!(reasons(derive(Some(&cur), &rotated)), ["Rotated"]);
        let revoked = st("ApiToken", false, "Revoked", Some("Revoked"), Some("k1"));
        assert_eq!(reasons(derive(Some(&cur), &revoked)), ["Revoked"]);
        let conflict = st("ApiToken", false, "SecretConflict", Some("Revoked"), None);
        assert_eq!(reasons(derive(None, &conflict)), ["SecretConflict"]);
        let missing = st(
            "ApiToken",
            false,
            "SecretMissing",
            Some("SecretMissing"),
            Some("k1"),
        );
        let n = derive(Some(&cur), &missing);
        assert_eq!(reasons(n.clone()), ["SecretMissing"]);
        assert!(n[0].warning);
    }

    #[test]
    fn notes_are_cut_on_bytes_at_a_character_boundary() {
        for text in [
            "é".repeat(700),
            "🙂".repeat(300),
            format!("a{}", "日本".repeat(400)),
        ] {
            let cut = truncate(&text);
            assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
            assert!(cut.ends_with('…'));
            assert!(text.starts_with(cut.trim_end_matches('…')));
        }
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(truncate(&exact), exact);
    }

    #[test]
    fn requests_and_conflicts() {
        let denied = st("ModelStageRequest", false, "Denied", Some("Denied"), None);
        assert_eq!(reasons(derive(None, &denied)), ["Denied"]);
        let conflict = st("User", false, "UsernameConflict", Some("Invited"), None);
        assert_eq!(reasons(derive(None, &conflict)), ["UsernameConflict"]);
    }
}
