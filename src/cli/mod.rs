//! The `stagegate` command line: one file per command, parsed with clap.
//!
//! Exit codes: 0 success (or "yes"), 1 a negative result (errors found, "no",
//! objects not ready), 2 usage or I/O problems.

pub mod apply;
mod audit;
mod can_i;
mod crds;
mod diff;
mod help;
pub mod logging;
mod plan;
pub mod run;
mod run_kube;
pub mod serve;
mod status;
mod store_cmd;
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
    #[command(after_help = help::VALIDATE)]
    Validate(validate::Args),
    /// Answer an authorization question from declarations or the store (exit 0 yes, 1 no).
    #[command(name = "can-i", after_help = help::CAN_I)]
    CanI(can_i::Args),
    /// Reconcile a directory of manifests into the identity store once, then exit.
    #[command(after_help = help::APPLY)]
    Apply(apply::Args),
    /// Show what apply would change in the store, without changing it.
    #[command(after_help = help::PLAN)]
    Plan(plan::Args),
    /// Run the daemon: watch a directory (--dir) or the cluster (--kube) and keep the store in step.
    #[command(after_help = help::RUN)]
    Run(Box<run::Args>),
    /// Every declared object's last outcome, from the store.
    #[command(after_help = help::STATUS)]
    Status(status::Args),
    /// Print the CustomResourceDefinitions as multi-document YAML.
    #[command(after_help = help::CRDS)]
    Crds(crds::Args),
    /// Show a change's effective-permission diff, escalations flagged (exit 1 on escalation).
    #[command(after_help = help::DIFF)]
    Diff(diff::Args),
    /// Show the store's audit log, newest last: what changed, from which declaration, when.
    #[command(after_help = help::AUDIT)]
    Audit(audit::Args),
    /// Manage the identity store itself (`store copy --from SQLITE --to postgres://...`).
    Store(store_cmd::Args),
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
    // The one TLS crypto provider (for the Kubernetes client). Left to rustls, the choice
    // depends on which of its provider features Cargo unified into this build: the shipped
    // binary (`cargo build --bin stagegate`) had none and panicked at its first TLS client,
    // while every test build had one. An error only means one was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // The daemon sets up its own logging (info level, optional JSON).
    if !matches!(cli.command, Command::Run(_)) {
        init_tracing();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Opens an existing store for a command that only reads it (`status`, `audit`,
/// `can-i --store`); a missing one is an error, never created (opening creates a
/// missing file, and a typo must not leave an empty store behind).
pub(crate) fn open_existing_store(
    path: &std::path::Path,
) -> anyhow::Result<crate::store::AnyStore> {
    use anyhow::Context;
    if !crate::store::pg::is_url(path) && !path.is_file() {
        anyhow::bail!(
            "no store at {} (run stagegate apply --dir DIR first, or pass --store)",
            path.display()
        );
    }
    crate::store::AnyStore::open(path)
        .with_context(|| format!("cannot open the store {}", path.display()))
}

/// `RUST_LOG`, or `default`, with the PostgreSQL client never below `info`: at debug it logs
/// every statement it sends, and a commit's batches quote the rows they write (password
/// hashes, token HMACs). Added last, the cap replaces any `RUST_LOG` directive for it.
pub(crate) fn log_filter(default: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        .add_directive("tokio_postgres=info".parse().expect("a valid directive"))
}

/// Structured logs on stderr; `RUST_LOG` picks the level (default: warnings).
fn init_tracing() {
    let filter = log_filter("warn");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::CanI(args) => can_i::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Status(args) => status::run(args),
        Command::Run(args) => run::run(*args),
        Command::Diff(args) => diff::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Store(args) => store_cmd::run(args),
    }
}
