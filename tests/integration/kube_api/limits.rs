//! Limits kube-apiserver enforces on built-in kinds that have no schema
//! here: object names (DNS-1123 subdomains of at most 253 characters for
//! Secrets, ConfigMaps, ServiceAccounts and Leases; labels of at most 63 for
//! Namespaces; RBAC objects only need to be path segments, as
//! `system:discovery` shows) and the 1,024-byte `note` of an
//! events.k8s.io/v1 Event. Messages are worded as the real server's.

use serde_json::Value;

use super::events;
use super::registry::ResourceType;
use super::status::ApiError;

/// events.k8s.io/v1 `note` limit, in bytes.
pub const NOTE_LIMIT: usize = 1024;
const SUBDOMAIN_MAX: usize = 253;
const LABEL_MAX: usize = 63;

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

const SUBDOMAIN_HELP: &str =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', \
regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const LABEL_HELP: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric \
characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or \
'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn name_errors(rt: &ResourceType, name: &str) -> Vec<(String, String)> {
    let field = "metadata.name".to_string();
    let mut out = Vec::new();
    if rt.group.is_empty() && rt.plural == "namespaces" {
        if name.len() > LABEL_MAX {
            out.push((
                field.clone(),
                format!("Invalid value: \"{name}\": must be no more than {LABEL_MAX} characters"),
            ));
        }
        if !label_ok(name) {
            out.push((field, format!("Invalid value: \"{name}\": {LABEL_HELP}")));
        }
        return out;
    }
    let subdomain = matches!(
        (rt.group.as_str(), rt.plural.as_str()),
        ("", "secrets" | "configmaps" | "serviceaccounts") | ("coordination.k8s.io", "leases")
    );
    if !subdomain {
        return out;
    }
    if name.len() > SUBDOMAIN_MAX {
        out.push((
            field.clone(),
            format!("Invalid value: \"{name}\": must be no more than {SUBDOMAIN_MAX} characters"),
        ));
    }
    if !name.split('.').all(label_ok) {
        out.push((
            field,
            format!("Invalid value: \"{name}\": {SUBDOMAIN_HELP}"),
        ));
    }
    out
}

/// Checks a built-in object about to be stored (core form for Events).
pub fn admit(rt: &ResourceType, name: &str, obj: &Value) -> Result<(), ApiError> {
    let mut errors = name_errors(rt, name);
    if events::is_events_v1(rt) {
        let note = obj["message"].as_str().unwrap_or_default();
        if note.len() > NOTE_LIMIT {
            errors.push((
                "note".into(),
                format!("Too long: may not be more than {NOTE_LIMIT} bytes"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(rt, name, &errors))
    }
}
