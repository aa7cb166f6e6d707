//! Statuses of manifest files that failed to load as a whole (an editor's
//! half-written save, a merge conflict): one `File` row each, not ready, with
//! the line and reason of the failure. Their declarations are kept meanwhile
//! (see `Builder::protected`); the row goes when the file loads or is deleted.

use super::build::Builder;
use crate::snapshot::{Diagnostic, ObjectKey};
use crate::snapshot::{Source, FILE_KIND};
use crate::store::ObjectStatus;
use std::collections::BTreeMap;

/// Adds a `File` status for each broken file of the snapshot.
pub(super) fn broken_file_statuses(b: &mut Builder) {
    for file in &b.snap.broken_files {
        // The diagnostic that broke the file: an error about no object, in that file.
        let cause: Option<&Diagnostic> = b
            .snap
            .diagnostics
            .iter()
            .find(|d| d.is_error() && d.kind.is_none() && d.file.as_deref() == Some(file));
        let line = cause.and_then(|d| d.line);
        let (reason, message) = cause.map_or_else(
            || {
                (
                    "InvalidYaml".to_string(),
                    "the file failed to load".to_string(),
                )
            },
            |d| (d.reason.to_string(), d.message.clone()),
        );
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        b.set_status(ObjectStatus {
            key: ObjectKey::new(FILE_KIND, "", file),
            ready: false,
            reason,
            message: format!("{at}{message}"),
            phase: None,
            observed_generation: None,
            extra: BTreeMap::new(),
            source: Source {
                file: Some(file.clone()),
                line,
            }
            .to_string(),
        });
    }
}
