//! Layer (a): each object against its generated CRD's OpenAPI schema.
//!
//! The schema is the one `stagegate crds` prints, made strict for manifests:
//! every object schema rejects unknown fields (the API server would silently
//! prune them, which hides typos in review).

use crate::resources::names::{self, NameError, NameKind};
use crate::resources::{crds, GROUP};
use crate::snapshot::Reason;
use jsonschema::error::ValidationErrorKind;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One schema problem: field path, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaIssue {
    /// Dotted field path (`spec.scope.project`).
    pub field: String,
    /// UnknownField, UnknownRole or SchemaViolation.
    pub reason: Reason,
    /// What is wrong.
    pub message: String,
}

fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static V: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        crds()
            .into_iter()
            .map(|crd| {
                let version = &crd.spec.versions[0];
                let schema = version
                    .schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .expect("derived CRDs have a schema");
                let mut schema = serde_json::to_value(schema).expect("schema serializes");
                strict(&mut schema);
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert("apiVersion".into(), json!({"type": "string"}));
                    props.insert("kind".into(), json!({"type": "string"}));
                    props.insert("metadata".into(), json!({"type": "object"}));
                }
                let validator = jsonschema::options()
                    .should_validate_formats(false)
                    .build(&schema)
                    .expect("generated CRD schemas are valid JSON schemas");
                (crd.spec.names.kind.clone(), validator)
            })
            .collect()
    })
}

/// Rejects unknown fields everywhere the schema lists properties.
fn strict(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
        && !obj.contains_key("x-kubernetes-preserve-unknown-fields")
    {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (_, v) in obj.iter_mut() {
        match v {
            Value::Object(_) => strict(v),
            Value::Array(items) => items.iter_mut().for_each(strict),
            _ => {}
        }
    }
}

/// Drops `null` values: `nullable: true` fields accept them, as the API server does.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Checks one object of `kind` (its `status` is ignored, as `kubectl apply` ignores it).
pub fn check(kind: &str, object: &Value) -> Vec<SchemaIssue> {
    let Some(validator) = validators().get(kind) else {
        return vec![SchemaIssue {
            field: "kind".into(),
            reason: Reason::SchemaViolation,
            message: format!("{GROUP} has no kind {kind:?} (expected User, AccessBinding, ApiToken or ModelStageRequest)"),
        }];
    };
    let mut instance = without_nulls(object);
    if let Some(m) = instance.as_object_mut() {
        m.remove("status");
    }
    let mut issues: Vec<SchemaIssue> = validator
        .iter_errors(&instance)
        .flat_map(|e| describe(&e))
        .map(with_field_reason)
        .collect();
    issues.sort_by(|a, b| a.field.cmp(&b.field).then(a.message.cmp(&b.message)));
    issues.dedup();
    // An empty value breaks both the length and the pattern rule: "must not be empty" says it all.
    let empty: Vec<String> = issues
        .iter()
        .filter(|i| i.message == EMPTY)
        .map(|i| i.field.clone())
        .collect();
    issues.retain(|i| i.message == EMPTY || !empty.contains(&i.field));
    issues
}

const EMPTY: &str = "must not be empty";

/// Fields that hold a username (or a reference to one): any problem there is `InvalidUsername`.
const USERNAME_FIELDS: [&str; 4] = [
    "spec.username",
    "spec.user",
    "spec.owner",
    "spec.requestedBy",
];

/// Gives problems with a username or a scope part their own reason: such a reference can
/// never resolve, which a reviewer should read as more than a generic schema problem.
fn with_field_reason(mut issue: SchemaIssue) -> SchemaIssue {
    if issue.reason == Reason::SchemaViolation {
        if USERNAME_FIELDS.contains(&issue.field.as_str()) {
            issue.reason = Reason::InvalidUsername;
        } else if issue.field.ends_with("scope.customer") || issue.field.ends_with("scope.project")
        {
            issue.reason = Reason::InvalidScope;
        }
    }
    issue
}

/// The rule a pattern of `names` states, in words.
fn pattern_rule(pattern: &str) -> String {
    let kind = match pattern {
        names::DNS_LABEL_PATTERN => NameKind::DnsLabel,
        names::DNS_SUBDOMAIN_PATTERN => NameKind::DnsSubdomain,
        names::USERNAME_PATTERN => NameKind::Username,
        names::SECRET_KEY_PATTERN => NameKind::SecretKey,
        other => return format!("does not match the pattern {other}"),
    };
    NameError::Syntax(kind).to_string()
}

fn describe(e: &jsonschema::ValidationError<'_>) -> Vec<SchemaIssue> {
    let path = e
        .instance_path()
        .to_string()
        .trim_start_matches('/')
        .replace('/', ".");
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let issue = |reason, message: String| {
        vec![SchemaIssue {
            field: path.clone(),
            reason,
            message,
        }]
    };
    // Messages name the field and the rule, never the value: a password pasted into the
    // wrong field must not reach a log line, a diagnostic or an Event.
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| SchemaIssue {
                field: join(name),
                reason: Reason::UnknownField,
                message: format!("unknown field {name:?}"),
            })
            .collect(),
        ValidationErrorKind::Enum { options } if path.ends_with("role") => issue(
            Reason::UnknownRole,
            format!("unknown role (expected one of {})", list(options)),
        ),
        ValidationErrorKind::Enum { options } => issue(
            Reason::SchemaViolation,
            format!("must be one of {}", list(options)),
        ),
        ValidationErrorKind::MinLength { limit: 1 } => issue(Reason::SchemaViolation, EMPTY.into()),
        ValidationErrorKind::Pattern { .. } if e.instance().as_str() == Some("") => {
            issue(Reason::SchemaViolation, EMPTY.into())
        }
        ValidationErrorKind::MinLength { limit } => issue(
            Reason::SchemaViolation,
            format!("must be at least {limit} characters long"),
        ),
        ValidationErrorKind::MaxLength { limit } => issue(
            Reason::SchemaViolation,
            format!("must be at most {limit} characters long"),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            issue(Reason::SchemaViolation, pattern_rule(pattern))
        }
        ValidationErrorKind::Type { kind } => issue(
            Reason::SchemaViolation,
            format!("must be of type {}", type_name(kind)),
        ),
        ValidationErrorKind::Minimum { limit } => issue(
            Reason::SchemaViolation,
            format!("must be at least {}", number(limit)),
        ),
        ValidationErrorKind::Maximum { limit } => issue(
            Reason::SchemaViolation,
            format!("must be at most {}", number(limit)),
        ),
        ValidationErrorKind::Required { property } => vec![SchemaIssue {
            field: join(property.as_str().unwrap_or_default()),
            reason: Reason::SchemaViolation,
            message: "required field is missing".into(),
        }],
        _ => issue(
            Reason::SchemaViolation,
            format!("does not satisfy the schema rule at {}", e.schema_path()),
        ),
    }
}

/// A schema bound as written for people: `1000000`, not `1000000.0`.
fn number(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
            names.join(" or ")
        }
    }
}

fn list(options: &Value) -> String {
    options
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
