//! The `stagegate` command line: one file per command, parsed with clap.
//!
//! Exit codes: 0 success (or "yes"), 1 a negative result (errors found, "no",
//! objects not ready), 2 usage or I/O problems.

mod can_i;
mod crds;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

/// Access control as code for a model deployment platform.
#[derive(Debug, Parser)]
#[command(name = "stagegate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate manifests against the CRD schema and the role policy.
    #[command(
        after_help = "Example:\n  stagegate validate examples/\n  stagegate validate examples/users.yaml --output json"
    )]
    Validate(validate::Args),
    /// Answer an authorization question from declarations (exit 0 yes, 1 no).
    #[command(
        name = "can-i",
        after_help = "Examples:\n  stagegate can-i --dir examples --as alan models:view fraud-detector\n  stagegate can-i --dir examples --as maria models:transition churn-model --to Dev --explain\n  stagegate can-i --dir examples --as ada users:manage --scope acme"
    )]
    CanI(can_i::Args),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    #[command(
        after_help = "Examples:\n  stagegate crds | kubectl apply -f -\n  stagegate crds --out-dir crds/"
    )]
    Crds(crds::Args),
}

/// Text for people or JSON for tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One line per item.
    #[default]
    Text,
    /// A JSON array.
    Json,
}

/// Parses the command line and runs it; errors are printed once with their chain.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::CanI(args) => can_i::run(args),
        Command::Crds(args) => crds::run(args),
    }
}
