//! `stagegate can-i`: an authorization question answered from declarations
//! (`--dir`) or from the identity store (`--store`), with the same policy call.

use crate::api::Index;
use crate::plan::{answer, declared_principal, recorded_history, replay, Models, Question};
use crate::policy::{Action, DecisionCode, Principal, Scope, Stage};
use crate::sources::files::load_paths;
use crate::store::Store;
use anyhow::{bail, Context};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `stagegate can-i`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["dir", "store"])))]
pub struct Args {
    /// Directory of manifests to answer from (models come from replaying its stage requests).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// SQLite identity store to answer from (what `apply` or `run` wrote); never created.
    /// With --dir: answer from DIR's declarations, with the stage requests this store
    /// already decided kept in their recorded order and outcome (what apply did).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Username (or ApiToken name) asking.
    #[arg(long = "as", value_name = "USER")]
    pub as_user: String,
    /// users:manage, tokens:manage, models:view, models:deploy or models:transition.
    pub action: Action,
    /// Model name, for models:* actions.
    pub model: Option<String>,
    /// Target stage of models:transition.
    #[arg(long)]
    pub to: Option<Stage>,
    /// CUSTOMER[/PROJECT] (each a DNS label; `*` = global): the model's scope, or the scope of a manage action.
    #[arg(long, value_parser = Scope::parse)]
    pub scope: Option<Scope>,
    /// Print the reason.
    #[arg(long)]
    pub explain: bool,
}

/// Who may be asking and the models, from one source.
struct Source {
    principal: Option<Principal>,
    models: Models,
    /// What the principal was looked up in, for the "unknown" explanation.
    origin: String,
}

/// Prints yes or no; exit 0 yes, 1 no, 2 for an incomplete question (an error).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let source = match (&args.dir, &args.store) {
        (Some(dir), store) => from_dir(dir, store.as_deref(), &args.as_user)?,
        (None, Some(store)) => from_store(store, &args.as_user)?,
        (None, None) => bail!("--dir or --store is required"),
    };
    let q = Question {
        action: Some(args.action),
        model: args.model,
        scope: args.scope,
        to: args.to,
    };
    // An incomplete question is a usage error whoever asks: the policy's own completeness
    // check (asked for a principal with no roles) decides, so the CLI keeps no second list.
    let nobody = Principal::user(&args.as_user, Vec::new());
    let decision = answer(
        source.principal.as_ref().unwrap_or(&nobody),
        &source.models,
        &q,
    )
    .context("cannot answer")?;
    if decision.code == DecisionCode::Incomplete {
        bail!(
            "incomplete question: {} (see stagegate can-i --help)",
            decision.reason()
        );
    }
    if source.principal.is_none() {
        println!("no");
        if args.explain {
            println!(
                "{} is neither an active user nor an API token in {}",
                args.as_user, source.origin
            );
        }
        return Ok(ExitCode::from(1));
    }
    println!("{}", if decision.allowed { "yes" } else { "no" });
    if args.explain {
        println!("{}", decision.reason());
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Principals from the valid declarations; models from replaying the stage requests
/// (after the history `store` recorded, when given).
fn from_dir(dir: &Path, store: Option<&Path>, name: &str) -> anyhow::Result<Source> {
    let snap = load_paths(&[dir.to_path_buf()])?;
    let errors = snap.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("warning: {errors} validation errors in {}; invalid objects are ignored (run stagegate validate)", dir.display());
    }
    let (mut models, decided) = match store {
        Some(path) => recorded_history(&super::open_existing_store(path)?.load_state()?),
        None => (Models::new(), BTreeSet::new()),
    };
    replay(&snap, &mut models, &decided);
    let principal = declared_principal(&snap, name);
    Ok(Source {
        principal,
        models,
        origin: dir.display().to_string(),
    })
}

/// Principals and models as the HTTP API sees them: the index built from one store read.
fn from_store(path: &Path, name: &str) -> anyhow::Result<Source> {
    let store = super::open_existing_store(path)?;
    let index = Index::build(&store.load_state()?);
    Ok(Source {
        principal: index.principal(name, crate::snapshot::now()),
        models: index.models().clone(),
        origin: path.display().to_string(),
    })
}
