//! `stagegate plan --dir DIR`: what apply would change, without changing anything.

use super::apply::{out, StoreArgs};
use crate::sources::directory::plan_dir;
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;

/// How to print a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// One line per change.
    #[default]
    Text,
    /// A Markdown table for a pull-request comment.
    Markdown,
    /// The plan as JSON.
    Json,
}

/// Arguments of `stagegate plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of manifests.
    #[arg(long)]
    pub dir: PathBuf,
    /// Store, secrets and key locations.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: PlanFormat,
}

/// Prints the plan; exit 0 (a plan is not a verdict; validation errors are listed on stderr).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.store.options(args.dir);
    let (snap, plan) = plan_dir(&opts, crate::snapshot::now())?;
    for d in &snap.diagnostics {
        eprintln!("{d}");
    }
    match args.output {
        PlanFormat::Text => out(&plan.render_text()),
        PlanFormat::Markdown => out(&plan.render_markdown()),
        PlanFormat::Json => out(&format!("{}\n", plan.to_json())),
    }
    Ok(ExitCode::SUCCESS)
}
