//! Where declarations come from: manifest files (and, later, the Kubernetes API).

pub mod files;
pub mod kube;
pub mod watch;
mod yaml_lines;

pub use yaml_lines::{locate_field, split_documents, Document};
