//! `stagegate store copy --from STORE --to STORE`: moves every row of one store into
//! another, empty one (SQLite → PostgreSQL when an install outgrows one pod).

use crate::store::{copy_store, AnyStore};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do with a store.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The store commands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy everything (users with their passwords, token keys, sessions, statuses, the
    /// audit log) into an empty store; a non-empty target is refused. Keep the server key:
    /// tokens are checked with it.
    Copy(CopyArgs),
}

/// Arguments of `stagegate store copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The store to read: a SQLite file or a `postgres://` URL (it must exist).
    #[arg(long, value_name = "STORE")]
    pub from: PathBuf,
    /// The empty store to write: a SQLite file or a `postgres://` URL (password from
    /// STAGEGATE_STORE_PASSWORD or STAGEGATE_STORE_PASSWORD_FILE, never in the argument).
    #[arg(long, value_name = "STORE")]
    pub to: PathBuf,
}

/// Runs `stagegate store ...`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        StoreCommand::Copy(a) => {
            let from = super::open_existing_store(&a.from)?;
            let mut to = AnyStore::open(&a.to)
                .with_context(|| format!("cannot open the store {}", AnyStore::describe(&a.to)))?;
            let copied = copy_store(&from, &mut to).with_context(|| {
                format!(
                    "cannot copy {} into {}",
                    AnyStore::describe(&a.from),
                    AnyStore::describe(&a.to)
                )
            })?;
            for (table, n) in copied.rows {
                println!("{table:<16} {n}");
            }
            eprintln!(
                "copied {} into {}",
                AnyStore::describe(&a.from),
                AnyStore::describe(&a.to)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
