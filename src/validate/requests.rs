//! Stage requests made at the same instant for one model: a warning.
//!
//! Requests are decided in time order, and a tie is broken by namespace/name
//! so that the result never depends on file names. Two requests for one
//! model at one instant are still a question only their authors can answer,
//! so `validate` says which one is decided first.

use crate::policy::Scope;
use crate::snapshot::{Diagnostic, Reason, Severity, Snapshot};
use std::collections::BTreeMap;

/// One `SimultaneousRequests` warning on every request that shares its model and time with an earlier-named one.
pub(super) fn simultaneous(snap: &Snapshot) -> Vec<Diagnostic> {
    let mut groups: BTreeMap<(Scope, &str, jiff::Timestamp), Vec<_>> = BTreeMap::new();
    for r in &snap.requests {
        if let Some(t) = r.object.requested_at() {
            let s = &r.object.spec;
            groups
                .entry((s.scope(), s.model.as_str(), t))
                .or_default()
                .push(r);
        }
    }
    let mut out = Vec::new();
    for ((_, model, at), mut reqs) in groups {
        reqs.sort_by_key(|r| r.key());
        let Some((first, rest)) = reqs.split_first() else {
            continue;
        };
        for r in rest {
            let key = r.key();
            let field = "metadata.annotations";
            out.push(Diagnostic {
                file: r.source.file.clone(),
                line: snap.field_line(&r.source, field),
                kind: Some(key.kind.clone()),
                namespace: Some(key.namespace.clone()),
                name: Some(key.name.clone()),
                field: Some(field.into()),
                reason: Reason::SimultaneousRequests,
                severity: Severity::Warning,
                message: format!(
                    "requested at the same instant ({at}) as {} for model {model}: {} is decided first (ties go by namespace/name); give the requests distinct times",
                    first.key(),
                    first.key()
                ),
            });
        }
    }
    out
}
