//! `stagegate run`: the daemon. `--kube` runs the Kubernetes controller
//! ([`super::run_kube`]); `--dir` (directory mode) is mutually exclusive with it.

use super::apply::StoreArgs;
use crate::sources::kube::KubeArgs;
use std::process::ExitCode;

/// Arguments of `stagegate run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run the Kubernetes controller (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub kube: bool,
    /// Kubernetes controller flags.
    #[command(flatten)]
    pub kube_args: KubeArgs,
    /// Store, secrets and key locations.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs the daemon.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.kube {
        return super::run_kube::run(&args.store, &args.kube_args);
    }
    anyhow::bail!("choose a mode: --kube (or --dir DIR)")
}
