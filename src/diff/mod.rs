//! The effective-permission diff of a pull request (`stagegate diff`).
//!
//! Pure: two validated snapshots in, a [`PermissionDiff`] out; no I/O.
//!
//! ```text
//!  base Snapshot ─┐                      ┌─► principals: roles and capabilities gained/lost
//!                 ├─► effective state ──►├─► escalations (stable kinds)
//!  head Snapshot ─┘   (policy::decide,   ├─► tokens issued / rotated / revoked
//!                      plan::replay)     ├─► stage requests decided, models' stages
//!                                        └─► who sees / moves each model
//! ```
//!
//! Everything is compared by meaning (usernames, token names, object keys,
//! grants, capabilities), never by text or by the file an object came from,
//! so renaming a file or reordering YAML keys is "no changes".

mod capability;
mod compute;
mod domains;
mod escalation;
mod markdown;
mod state;
mod text;
mod types;

pub use capability::{capabilities, scope_universe, Capability};
pub use compute::diff;
pub use markdown::render_markdown;
pub use text::render_text;
pub use types::*;

/// The JSON Schema of [`PermissionDiff`] as checked in at `docs/diff.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(PermissionDiff);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The diff as pretty JSON (the document `docs/diff.schema.json` describes).
pub fn render_json(d: &PermissionDiff) -> String {
    let mut s = serde_json::to_string_pretty(d).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;

/// One row per token change (name, key action, role, owner, validity, secret, why), for both renderers.
fn token_rows(d: &PermissionDiff) -> Vec<Vec<String>> {
    d.tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.action.to_string(),
                format!("{} at {}", t.role, t.scope),
                t.owner.clone().unwrap_or_else(|| "-".into()),
                t.validity.clone(),
                t.secret_name.clone(),
                t.reason.clone(),
            ]
        })
        .collect()
}
