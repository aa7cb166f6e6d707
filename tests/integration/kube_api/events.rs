//! `events.k8s.io/v1` Events and core `v1` Events are one resource in
//! Kubernetes: an Event recorded by kube-rs' Recorder shows up in
//! `kubectl get events` and `kubectl describe`. They are stored in the core
//! form and converted at the API boundary, field by field as the API server's
//! conversion does.

use serde_json::{Map, Value};

use super::registry::ResourceType;

/// (events.k8s.io/v1 field, core/v1 field) pairs that differ only in name.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedSource", "source"),
];

/// Whether `rt` is the events.k8s.io view of Events.
pub fn is_events_v1(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events"
}

/// The (group, plural) an object of `group`/`plural` is stored under.
pub fn storage_of<'a>(group: &'a str, plural: &'a str) -> (&'a str, &'a str) {
    if group == "events.k8s.io" && plural == "events" {
        ("", "events")
    } else {
        (group, plural)
    }
}

fn rename(obj: &Value, from_new: bool) -> Value {
    let Value::Object(map) = obj else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMED.iter().find_map(|(new, core)| {
            if from_new {
                (k == new).then_some(*core)
            } else {
                (k == core).then_some(*new)
            }
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    Value::Object(out)
}

/// An events.k8s.io/v1 Event in the stored core/v1 form.
pub fn to_core(obj: &Value) -> Value {
    rename(obj, true)
}

/// A stored core/v1 Event as events.k8s.io/v1 serves it.
pub fn from_core(obj: &Value) -> Value {
    rename(obj, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversion_round_trips() {
        let new = json!({"regarding": {"name": "a"}, "note": "hi", "reason": "R", "series": {"count": 2}});
        let core = to_core(&new);
        assert_eq!(core["involvedObject"]["name"], "a");
        assert_eq!(core["message"], "hi");
        assert_eq!(from_core(&core), new);
    }
}
