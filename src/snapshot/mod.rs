//! The pipeline's shared vocabulary: what every layer above speaks.
//!
//! Declarations and where they came from ([`ObjectKey`], [`Source`],
//! [`Declared`], [`Snapshot`], [`SecretData`], and the access [`Domain`]
//! each declaration was made in), the problems found in them
//! ([`Diagnostic`], [`Reason`], [`Severity`]), the line arithmetic that points
//! a problem at its field ([`locate_field`]) and the clock ([`now`]).
//!
//! It sits below `validate`, `store`, `secrets` and `plan` and imports only
//! from `resources` and `policy`, so the layers read in one direction:
//! `resources`/`policy` → `snapshot` → `validate`, `store`, `secrets` →
//! `plan` → `apply` → `sources`, `api`, `diff` → `cli`.

mod declared;
mod diagnostic;
mod domain;
mod yaml_guard;
mod yaml_lines;

pub use declared::{Declared, ObjectKey, SecretData, Snapshot, Source};
pub use diagnostic::{Diagnostic, Reason, Severity};
pub use domain::{narrowness, within, Domain, DomainDeclarations, Places};
pub use yaml_guard::{check_nesting, decode_text, strip_bom, TextProblem, MAX_NESTING};
pub use yaml_lines::{locate_field, split_documents, Document};

/// `source` of the bootstrap administrator's status and audit rows: what
/// planning must never prune although no manifest declares it.
pub const BOOTSTRAP_SOURCE: &str = "bootstrap";

/// The pseudo-kind of a manifest file that failed to load as a whole: its
/// status row (namespace empty, name the file) shows it in `stagegate status`,
/// `/readyz` and the `stagegate_manifest_files_broken` gauge until it loads.
pub const FILE_KIND: &str = "File";

/// Name of the Secret the bootstrap administrator's password is delivered to.
/// Reserved: no declaration may write or read a Secret of this name.
pub const BOOTSTRAP_SECRET: &str = "stagegate-bootstrap-admin";

/// The current time to whole seconds: stored times and Secret annotations stay readable.
pub fn now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now)
}
