//! Where declarations come from: manifest files (and, later, the Kubernetes API).

pub mod directory;
pub mod files;
pub mod health;
pub mod kube;
pub mod memory;
pub mod scoped;
pub mod watch;
