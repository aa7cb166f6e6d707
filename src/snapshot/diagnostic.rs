//! Diagnostics: one problem, attached to the object and field it concerns.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable machine-readable reason of a diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// The file is not valid YAML.
    InvalidYaml,
    /// An object of our group with an apiVersion we do not serve.
    UnknownApiVersion,
    /// A field the schema does not define.
    UnknownField,
    /// The object does not match the CRD's OpenAPI schema.
    SchemaViolation,
    /// `metadata.name` or `metadata.namespace` missing or not a valid Kubernetes name, or a
    /// name derived from it (`<name>-password`, `<name>-token`) too long.
    InvalidName,
    /// `role` is not one of the five roles.
    UnknownRole,
    /// Developer and Deployer bound globally.
    RoleNotAllowedAtScope,
    /// `scope.project` without `scope.customer`.
    ProjectWithoutCustomer,
    /// Two User objects claim one username.
    DuplicateUsername,
    /// Two declarations of the same kind, namespace and name.
    DuplicateObject,
    /// Two ApiTokens with one name in different namespaces: the name is the API identifier.
    DuplicateTokenName,
    /// `validity` is not a duration or `Never`.
    InvalidDuration,
    /// A reference to a username no User declares (a warning).
    UnknownUser,
    /// A stage move no role may ever make.
    TransitionNeverAllowed,
    /// `stagegate.dev/requested-at` is not an RFC 3339 time.
    InvalidAnnotation,
    /// A username, or a reference to one, that no User can ever have (bad syntax).
    InvalidUsername,
    /// A Secret another declaration already writes or reads (the holder keeps it).
    SecretNameConflict,
    /// A scope customer or project that is not a DNS label.
    InvalidScope,
    /// Two stage requests for one model at one instant (a warning: namespace/name decides).
    SimultaneousRequests,
    /// A declaration its access domain may not make (a grant, token or model outside the
    /// domain's pin, a User claimed elsewhere, a pin or delegation where none may be made).
    OutsideAccessDomain,
    /// A User declares two ways of getting a password (`invitation` and `passwordSecretRef`).
    PasswordSourceConflict,
}

impl Reason {
    /// The reason as printed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidYaml => "InvalidYaml",
            Reason::UnknownApiVersion => "UnknownApiVersion",
            Reason::UnknownField => "UnknownField",
            Reason::SchemaViolation => "SchemaViolation",
            Reason::InvalidName => "InvalidName",
            Reason::UnknownRole => "UnknownRole",
            Reason::RoleNotAllowedAtScope => "RoleNotAllowedAtScope",
            Reason::ProjectWithoutCustomer => "ProjectWithoutCustomer",
            Reason::DuplicateUsername => "DuplicateUsername",
            Reason::DuplicateObject => "DuplicateObject",
            Reason::DuplicateTokenName => "DuplicateTokenName",
            Reason::InvalidDuration => "InvalidDuration",
            Reason::UnknownUser => "UnknownUser",
            Reason::TransitionNeverAllowed => "TransitionNeverAllowed",
            Reason::InvalidAnnotation => "InvalidAnnotation",
            Reason::InvalidUsername => "InvalidUsername",
            Reason::SecretNameConflict => "SecretNameConflict",
            Reason::InvalidScope => "InvalidScope",
            Reason::SimultaneousRequests => "SimultaneousRequests",
            Reason::OutsideAccessDomain => "OutsideAccessDomain",
            Reason::PasswordSourceConflict => "PasswordSourceConflict",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a diagnostic blocks the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The object is invalid and left out of the plan.
    Error,
    /// Reported; the object still takes part.
    Warning,
}

/// One problem found while loading or validating declarations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Diagnostic {
    /// File the object came from, when it came from a file.
    pub file: Option<String>,
    /// 1-based line of the object's document (or of the error).
    pub line: Option<usize>,
    /// Kind of the object, when known.
    pub kind: Option<String>,
    /// Namespace of the object, when known.
    pub namespace: Option<String>,
    /// Name of the object, when known.
    pub name: Option<String>,
    /// Field path such as `spec.scope.project`.
    pub field: Option<String>,
    /// Stable machine reason.
    pub reason: Reason,
    /// Error or warning.
    pub severity: Severity,
    /// Human explanation.
    pub message: String,
}

impl Diagnostic {
    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line: Kind ns/name: field: message (Reason)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(kind) = &self.kind {
            write!(f, "{kind} ")?;
            match (&self.namespace, &self.name) {
                (Some(ns), Some(n)) => write!(f, "{ns}/{n}: ")?,
                (None, Some(n)) => write!(f, "{n}: ")?,
                _ => f.write_str(": ")?,
            }
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{} ({})", self.message, self.reason)
    }
}
