//! `stagegate validate PATH...`: schema and policy diagnostics with file:line.

use super::ReportFormat;
use crate::sources::files::load_paths;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or directories (searched recursively for *.yaml and *.yml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: ReportFormat,
}

/// Exit 0 when there are no errors (warnings allowed), 1 when any error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let snap = load_paths(&args.paths)?;
    let mut diags = snap.diagnostics.clone();
    diags.sort_by(|a, b| (&a.file, a.line, &a.reason).cmp(&(&b.file, b.line, &b.reason)));
    match args.output {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&diags)?),
        ReportFormat::Text => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let objects =
                snap.users.len() + snap.bindings.len() + snap.tokens.len() + snap.requests.len();
            let skipped: usize = snap.skipped.values().sum();
            eprintln!("{objects} objects checked, {skipped} of other kinds skipped: {errors} errors, {} warnings", diags.len() - errors);
        }
    }
    Ok(if snap.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
