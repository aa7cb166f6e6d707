//! `stagegate audit`: the store's audit log, newest last, filtered — who
//! (which declaration) changed what, without `sqlite3`.

use super::apply::out;
use crate::sources::directory::DEFAULT_STORE;
use crate::store::{audit_page, parse_object, parse_since, AuditFilter, AuditRow};
use anyhow::anyhow;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `stagegate audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SQLite identity store (never created).
    #[arg(long, default_value = DEFAULT_STORE, env = "STAGEGATE_STORE")]
    pub store: PathBuf,
    /// Only entries since a duration ago (90m, 24h, 7d) or a time (2025-03-01T12:00:00Z, 2025-03-01).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Only entries about this username: its User, and bindings, tokens, requests and models naming it.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only entries about one object, e.g. User/ml-platform/ada.
    #[arg(long, value_name = "KIND/NS/NAME", value_parser = parse_object)]
    pub object: Option<crate::snapshot::ObjectKey>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    pub output: super::ReportFormat,
}

/// Prints the matching entries, oldest first; exit 0 (also when none match).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, crate::snapshot::now()))
        .transpose()
        .map_err(|e| anyhow!(e))?;
    let filter = AuditFilter {
        since,
        user: args.user,
        object: args.object,
    };
    let store = super::open_existing_store(&args.store)?;
    let entries = audit_page(&store, &filter, 0, usize::MAX)?.entries;
    match args.output {
        super::ReportFormat::Json => out(&format!("{}\n", serde_json::to_string_pretty(&entries)?)),
        super::ReportFormat::Text if entries.is_empty() => eprintln!("no audit entries match"),
        super::ReportFormat::Text => {
            let rows: Vec<Vec<String>> = entries.iter().map(text_row).collect();
            out(&crate::render::text_table(
                &["TIME", "ACTION", "OBJECT", "SOURCE", "CHANGE"],
                &rows,
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text_row(a: &AuditRow) -> Vec<String> {
    vec![
        a.at.to_string(),
        a.action.clone(),
        a.object.to_string(),
        a.source.clone(),
        change(a.old.as_ref(), a.new.as_ref()),
    ]
}

/// One line for an entry's values: the fields that changed (`role: Developer → Admin`)
/// for an update, every set field (`role=Admin`) for a creation or a removal.
fn change(old: Option<&Value>, new: Option<&Value>) -> String {
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let fields = |v: &Value| -> Vec<(String, Value)> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    match (old, new) {
        (Some(o), Some(n)) => fields(n)
            .into_iter()
            .filter(|(k, v)| o.get(k) != Some(v))
            .map(|(k, v)| format!("{k}: {} → {}", o.get(&k).map_or("-".into(), show), show(&v)))
            .collect::<Vec<_>>()
            .join(", "),
        (None, Some(v)) | (Some(v), None) => fields(v)
            .into_iter()
            .map(|(k, v)| format!("{k}={}", show(&v)))
            .collect::<Vec<_>>()
            .join(" "),
        (None, None) => String::new(),
    }
}
