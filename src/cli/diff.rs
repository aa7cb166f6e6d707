//! `stagegate diff`: a pull request's effective-permission diff, escalations flagged.
//!
//! The base tree comes from a directory (`--base`, e.g. a second work tree
//! of the target branch) or from a git revision (`--base-ref`): then the
//! head directory's path is read at that revision through the `git` command
//! (`git ls-tree` to list manifests, `git show REV:PATH` for each) into a
//! temporary directory, without a second checkout.

use crate::diff::{diff, render_json, render_markdown, render_text, DiffOptions};
use crate::resources::Validity;
use crate::sources::files::{is_manifest, load_paths};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Arguments of `stagegate diff`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("base-tree").required(true).args(["base", "base_ref"])))]
pub struct Args {
    /// Directory of manifests before the change (e.g. a work tree of the target branch).
    #[arg(long, value_name = "PATH")]
    pub base: Option<PathBuf>,
    /// Read the base from this git revision of the repository holding --head (same path), without a checkout.
    #[arg(long, value_name = "REF")]
    pub base_ref: Option<String>,
    /// Directory of manifests after the change.
    #[arg(long, value_name = "PATH")]
    pub head: PathBuf,
    /// Output format: text for terminals, markdown for a PR comment, json for bots (docs/diff.schema.json).
    #[arg(long, short, value_enum, default_value_t)]
    pub output: DiffFormat,
    /// What makes the exit code 1 (errors in head always do).
    #[arg(long, value_enum, default_value_t)]
    pub fail_on: FailOn,
    /// Token validities longer than this (or Never) are escalations.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = parse_max_validity)]
    pub max_validity: std::time::Duration,
}

/// How the diff is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Plain text.
    #[default]
    Text,
    /// Markdown for a pull-request comment.
    Markdown,
    /// JSON described by docs/diff.schema.json.
    Json,
}

/// What fails the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Any escalation (the default).
    #[default]
    Escalation,
    /// Any escalation or warning.
    Warning,
    /// Nothing but errors in head.
    Never,
}

fn parse_max_validity(s: &str) -> Result<std::time::Duration, String> {
    match Validity::parse(s)? {
        Validity::For(d) => Ok(d),
        Validity::Never => Err("--max-validity must be a duration such as 90d".into()),
    }
}

/// Prints the diff; exit 0 when clean, 1 on errors in head or on what --fail-on names, 2 on usage errors.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.head.is_dir() {
        bail!("--head {} is not a directory", args.head.display());
    }
    let _checkout; // keeps the temporary base tree alive until the end
    let base_dir = match (&args.base, &args.base_ref) {
        (Some(dir), _) => dir.clone(),
        (None, Some(rev)) => {
            let (tmp, dir) = base_from_git(&args.head, rev)?;
            _checkout = tmp;
            dir
        }
        (None, None) => bail!("one of --base or --base-ref is required"),
    };
    let base = load_paths(std::slice::from_ref(&base_dir))?;
    let head = load_paths(std::slice::from_ref(&args.head))?;
    let base_errors = base.diagnostics.iter().filter(|d| d.is_error()).count();
    if base_errors > 0 {
        eprintln!("warning: the base has {base_errors} validation errors; its invalid objects are left out");
    }
    let opts = DiffOptions {
        max_validity: args.max_validity,
    };
    let d = diff(&base, &head, &opts);
    let text = match args.output {
        DiffFormat::Text => render_text(&d),
        DiffFormat::Markdown => render_markdown(&d),
        DiffFormat::Json => render_json(&d),
    };
    use std::io::Write;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    let fail = d.has_errors()
        || match args.fail_on {
            FailOn::Escalation => d.has_escalations(),
            FailOn::Warning => d.has_escalations() || !d.warnings.is_empty(),
            FailOn::Never => false,
        };
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the manifests under `head`'s repository path at `rev` into a temporary directory.
fn base_from_git(head: &Path, rev: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let top = git(head, &["rev-parse", "--show-toplevel"]).with_context(|| {
        format!(
            "--base-ref needs {} to be inside a git repository",
            head.display()
        )
    })?;
    let prefix = git(head, &["rev-parse", "--show-prefix"])?;
    let (top, prefix) = (PathBuf::from(top.trim()), prefix.trim().to_string());
    git(
        &top,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .with_context(|| format!("--base-ref {rev:?} is not a commit of {}", top.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("stagegate-base-")
        .tempdir()?;
    let mut args = vec!["ls-tree", "-r", "-z", "--full-name", "--name-only", rev];
    if !prefix.is_empty() {
        args.extend(["--", prefix.as_str()]);
    }
    for path in git(&top, &args)?.split('\0').filter(|p| !p.is_empty()) {
        let hidden = path.split('/').any(|part| part.starts_with('.'));
        if hidden || !is_manifest(Path::new(path)) {
            continue;
        }
        let content = git_bytes(&top, &["show", &format!("{rev}:{path}")])?;
        let dest = tmp.path().join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, content)
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    let dir = tmp.path().join(prefix.trim_end_matches('/'));
    std::fs::create_dir_all(&dir)?;
    Ok((tmp, dir))
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(String::from_utf8(git_bytes(dir, args)?)?)
}

fn git_bytes(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        // `--quiet` checks say nothing on stderr: then the exit status is all there is.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = match stderr.trim() {
            "" => out.status.to_string(),
            said => said.to_string(),
        };
        bail!("git {} failed: {why}", args.join(" "));
    }
    Ok(out.stdout)
}
