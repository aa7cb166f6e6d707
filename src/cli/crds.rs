//! `stagegate crds`: print (or write) the generated CustomResourceDefinitions.

use crate::resources::{crd_file_name, crd_yaml, crds, crds_yaml};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate crds`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one file per kind into this directory instead of printing (e.g. crds/).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Prints every CRD as one multi-document YAML, or writes one file each.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.out_dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for crd in crds() {
            let path = dir.join(crd_file_name(&crd));
            std::fs::write(&path, crd_yaml(&crd))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(crds_yaml().as_bytes());
    Ok(ExitCode::SUCCESS)
}
