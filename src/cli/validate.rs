//! `stagegate validate PATH...`: schema and policy diagnostics with file:line.

use super::ReportFormat;
use crate::render::plural;
use crate::resources::KINDS;
use crate::snapshot::Snapshot;
use crate::sources::files::load_paths_with;
use std::collections::BTreeSet;
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
    /// Report every declaration outside a pinned access domain as an error (as `run --require-access-domain` refuses it).
    #[arg(long)]
    pub require_access_domain: bool,
}

/// Objects of the four kinds that were checked: the typed ones, and those whose
/// errors kept them from becoming typed (a User failing the schema is still a
/// User that was checked).
fn checked_objects(snap: &Snapshot) -> usize {
    let typed = snap
        .users
        .iter()
        .map(|d| d.key())
        .chain(snap.bindings.iter().map(|d| d.key()))
        .chain(snap.tokens.iter().map(|d| d.key()))
        .chain(snap.requests.iter().map(|d| d.key()));
    let failed = snap
        .invalid_keys()
        .into_iter()
        .filter(|k| KINDS.contains(&k.kind.as_str()));
    typed.chain(failed).collect::<BTreeSet<_>>().len()
}

/// Exit 0 when there are no errors (warnings allowed), 1 when any error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let snap = load_paths_with(&args.paths, args.require_access_domain)?;
    let mut diags = snap.diagnostics.clone();
    diags.sort_by(|a, b| (&a.file, a.line, &a.reason).cmp(&(&b.file, b.line, &b.reason)));
    match args.output {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&diags)?),
        ReportFormat::Text => {
            for d in &diags {
                println!("{d}");
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let skipped: usize = snap.skipped.values().sum();
            eprintln!(
                "{} checked, {skipped} of other kinds skipped: {}, {}",
                plural(checked_objects(&snap), "object", "objects"),
                plural(errors, "error", "errors"),
                plural(diags.len() - errors, "warning", "warnings"),
            );
        }
    }
    Ok(if snap.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
