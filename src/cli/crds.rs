//! `stagegate crds`: print the generated CustomResourceDefinitions.

use std::io::Write;
use std::process::ExitCode;

/// Prints every CRD as one multi-document YAML.
pub fn run() -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = out.write_all(crate::resources::crds_yaml().as_bytes());
    Ok(ExitCode::SUCCESS)
}
