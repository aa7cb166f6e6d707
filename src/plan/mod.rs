//! Snapshot, diff and plan: from declarations and store state to ordered changes.

mod snapshot;

pub use snapshot::{Declared, ObjectKey, SecretData, Snapshot, Source};
