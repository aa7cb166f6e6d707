//! `stagegate status`: every declared object's last outcome, like `kubectl get stagegate`.

use super::apply::print_outcomes;
use crate::apply::Outcome;
use crate::sources::directory::DEFAULT_STORE;
use crate::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SQLite identity store.
    #[arg(long, default_value = DEFAULT_STORE, env = "STAGEGATE_STORE")]
    pub store: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: super::ReportFormat,
}

/// Prints the stored outcomes; exit 0 when all are ready, 1 when any is not.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(&args.store)?;
    let outcomes: Vec<Outcome> = store.statuses()?.iter().map(Outcome::from).collect();
    print_outcomes(&outcomes, args.output)?;
    Ok(if outcomes.iter().all(|o| o.ready) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
