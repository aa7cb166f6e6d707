//! `stagegate can-i`: an authorization question answered from declarations.

use crate::plan::{answer, replay, user_principals, Models, Question};
use crate::policy::{Action, Grant, Principal, Scope, Stage};
use crate::sources::files::load_paths;
use anyhow::Context;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate can-i`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of manifests to answer from (models come from replaying its stage requests).
    #[arg(long)]
    pub dir: PathBuf,
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
    /// CUSTOMER[/PROJECT]: the model's scope, or the scope of a manage action.
    #[arg(long, value_parser = Scope::parse)]
    pub scope: Option<Scope>,
    /// Print the reason.
    #[arg(long)]
    pub explain: bool,
}

/// Prints yes or no; exit 0 yes, 1 no.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let snap = load_paths(std::slice::from_ref(&args.dir))?;
    let errors = snap.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!("warning: {errors} validation errors in {}; invalid objects are ignored (run stagegate validate)", args.dir.display());
    }
    let mut models = Models::new();
    replay(&snap, &mut models, &BTreeSet::new());
    let principal = user_principals(&snap).remove(&args.as_user).or_else(|| {
        snap.tokens
            .iter()
            .filter(|t| {
                t.object.metadata.name.as_deref() == Some(args.as_user.as_str())
                    && !t.object.spec.revoked
            })
            .filter(|t| !snap.invalid_keys().contains(&t.key()))
            .map(|t| {
                Principal::token(
                    &args.as_user,
                    Grant {
                        role: t.object.spec.role,
                        scope: t.object.spec.scope(),
                    },
                )
            })
            .next()
    });
    let Some(principal) = principal else {
        println!("no");
        if args.explain {
            println!(
                "{} is neither an active user nor an API token in {}",
                args.as_user,
                args.dir.display()
            );
        }
        return Ok(ExitCode::from(1));
    };
    let q = Question {
        action: Some(args.action),
        model: args.model,
        scope: args.scope,
        to: args.to,
    };
    let decision = answer(&principal, &models, &q).context("cannot answer")?;
    println!("{}", if decision.allowed { "yes" } else { "no" });
    if args.explain {
        println!("{}", decision.reason);
    }
    Ok(if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
