//! API errors in the Kubernetes `Status` shape clients decode.

use serde_json::{json, Value};

use super::registry::ResourceType;

/// A failed API call: HTTP code, Kubernetes `reason`, message and details.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code, repeated as `Status.code`.
    pub code: u16,
    /// Machine-readable reason such as `NotFound` or `Conflict`.
    pub reason: &'static str,
    /// Human-readable message, worded like kube-apiserver's.
    pub message: String,
    /// `Status.details` (name, group, kind), when an object is concerned.
    pub details: Option<Value>,
}

impl ApiError {
    fn about(
        code: u16,
        reason: &'static str,
        message: String,
        rt: &ResourceType,
        name: &str,
    ) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: Some(json!({"name": name, "group": rt.group, "kind": rt.plural})),
        }
    }

    /// 404: the named object does not exist.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        let msg = format!("{} \"{name}\" not found", rt.qualified());
        Self::about(404, "NotFound", msg, rt, name)
    }

    /// 409: create of a name that is taken.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let msg = format!("{} \"{name}\" already exists", rt.qualified());
        Self::about(409, "AlreadyExists", msg, rt, name)
    }

    /// 409: a write based on a stale resourceVersion (or failed precondition).
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            rt.qualified()
        );
        Self::about(409, "Conflict", msg, rt, name)
    }

    /// 422: the object or patch is not acceptable.
    pub fn invalid(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self::invalid_fields(rt, name, &[(String::new(), why.to_string())])
    }

    /// 422 with one cause per field; kubectl prints
    /// `The <Kind> "<name>" is invalid: <field>: <message>` from the causes.
    pub fn invalid_fields(rt: &ResourceType, name: &str, causes: &[(String, String)]) -> Self {
        let kind = if rt.group.is_empty() {
            rt.kind.clone()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        let text: Vec<String> = causes
            .iter()
            .map(|(f, m)| {
                if f.is_empty() {
                    m.clone()
                } else {
                    format!("{f}: {m}")
                }
            })
            .collect();
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {}", text.join(", ")),
            details: Some(
                json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
            ),
        }
    }

    /// 409: a server-side apply would change fields other managers own
    /// (worded as kube-apiserver's, which kubectl follows with its
    /// `--force-conflicts` advice).
    pub fn apply_conflict(
        rt: &ResourceType,
        name: &str,
        managers: &[String],
        fields: &[String],
    ) -> Self {
        let n = fields.len();
        let plural = if n == 1 { "" } else { "s" };
        let who: Vec<String> = managers
            .iter()
            .map(|m| format!("\"{m}\" using {}", rt.api_version()))
            .collect();
        let listed = if n == 1 {
            format!(" {}", fields[0])
        } else {
            fields.iter().map(|f| format!("\n- {f}")).collect()
        };
        let message = format!(
            "Apply failed with {n} conflict{plural}: conflict{plural} with {}:{listed}",
            who.join(", ")
        );
        let causes: Vec<Value> = fields
            .iter()
            .map(|f| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", who.join(", ")), "field": f}))
            .collect();
        ApiError {
            code: 409,
            reason: "Conflict",
            message,
            details: Some(
                json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
            ),
        }
    }

    /// A failure that concerns no particular object.
    pub fn plain(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 410: the watch asked for history the server no longer keeps.
    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::plain(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The `Status` object sent as the response body (or in an ERROR watch event).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}
