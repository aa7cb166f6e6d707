//! What `/readyz` says besides "ready": the manifest files that failed to load
//! as a whole. They do not make the process unready — it serves, and keeps
//! what those files declared before — but an operator (or a probe's log)
//! sees them here, in `stagegate status` and in `stagegate_manifest_files_broken`.

use crate::snapshot::FILE_KIND;
use crate::store::{ObjectStatus, StoreState};
use serde::{Deserialize, Serialize};

/// A manifest file that failed to load as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenFile {
    /// The file, as the daemon names it.
    pub file: String,
    /// The line of the failure, when known.
    pub line: Option<usize>,
    /// Machine reason, e.g. `InvalidYaml`.
    pub reason: String,
    /// What went wrong.
    pub message: String,
}

/// `GET /readyz` answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// Files that failed to load (empty when every file loads).
    pub broken_files: Vec<BrokenFile>,
}

/// The broken files recorded in the store (their `File` status rows).
pub(crate) fn broken_files(state: &StoreState) -> Vec<BrokenFile> {
    broken(state.statuses.values())
}

/// The broken files among some status rows (those of kind `File`).
pub(crate) fn broken<'a>(statuses: impl Iterator<Item = &'a ObjectStatus>) -> Vec<BrokenFile> {
    statuses
        .filter(|s| s.key.kind == FILE_KIND)
        .map(|s| BrokenFile {
            file: s.key.name.clone(),
            line: s.source.rsplit_once(':').and_then(|(_, l)| l.parse().ok()),
            reason: s.reason.clone(),
            message: s.message.clone(),
        })
        .collect()
}
