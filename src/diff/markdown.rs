//! The pull-request comment rendering of a [`PermissionDiff`].

use super::text::{gained_lost, request_row, stage_change};
use super::types::*;
use crate::render::{details, escape_inline, markdown_table};

/// The hidden marker a CI job uses to find and update its own comment.
pub const COMMENT_MARKER: &str = "<!-- stagegate-diff -->";

/// Lists longer than this go into a collapsed `<details>` section.
const LONG_LIST: usize = 10;

/// Markdown for a PR comment: marker, summary, errors, escalations at the top, then per-principal tables.
pub fn render_markdown(d: &PermissionDiff) -> String {
    let mut out = format!("{COMMENT_MARKER}\n### stagegate diff\n\n");
    let icon = if d.has_errors() {
        "❌ "
    } else if d.has_escalations() {
        "⚠️ "
    } else {
        ""
    };
    out.push_str(&format!("{icon}**{}**\n", escape_inline(&d.summary)));
    if d.is_empty() {
        out.push_str("\nNo change in effective permissions.\n");
        return out;
    }
    if !d.head_errors.is_empty() {
        out.push_str(&format!(
            "\n#### ❌ Errors in head ({})\n\nInvalid objects are left out of this diff; fix them first.\n\n",
            d.head_errors.len()
        ));
        out.push_str(&problems(&d.head_errors));
    }
    if !d.escalations.is_empty() {
        out.push_str(&format!(
            "\n#### ⚠️ Escalations ({})\n\nThese changes widen what someone may do. They need an explicit approval.\n\n",
            d.escalations.len()
        ));
        let rows: Vec<Vec<String>> = d
            .escalations
            .iter()
            .map(|e| {
                vec![
                    e.kind.to_string(),
                    e.principal.to_string(),
                    e.message.clone(),
                ]
            })
            .collect();
        out.push_str(&markdown_table(&["Kind", "Principal", "What"], &rows));
    }
    if !d.principals.is_empty() {
        let rows: Vec<Vec<String>> = d
            .principals
            .iter()
            .map(|p| {
                let lines = |items: Vec<String>| {
                    if items.is_empty() {
                        "-".to_string()
                    } else {
                        items.join("\n")
                    }
                };
                let mut gained: Vec<String> =
                    p.roles_gained.iter().map(|r| format!("role {r}")).collect();
                gained.extend(p.permissions_gained.iter().map(|c| c.to_string()));
                let mut lost: Vec<String> =
                    p.roles_lost.iter().map(|r| format!("role {r}")).collect();
                lost.extend(p.permissions_lost.iter().map(|c| c.to_string()));
                vec![
                    p.principal.to_string(),
                    p.change.to_string(),
                    lines(gained),
                    lines(lost),
                    lines(p.notes.clone()),
                ]
            })
            .collect();
        let table = markdown_table(&["Principal", "Change", "Gains", "Loses", "Notes"], &rows);
        section(&mut out, "Principals", rows.len(), &table);
    }
    if !d.tokens.is_empty() {
        let rows = super::token_rows(d);
        let table = markdown_table(
            &["Token", "Key", "Role", "Owner", "Validity", "Secret", "Why"],
            &rows,
        );
        section(&mut out, "Tokens", rows.len(), &table);
    }
    if !d.requests.is_empty() {
        let rows: Vec<Vec<String>> = d.requests.iter().map(request_row).collect();
        let table = markdown_table(&["Request", "Model", "Move", "By", "Result", "Why"], &rows);
        section(&mut out, "Stage requests", rows.len(), &table);
    }
    if !d.models.is_empty() {
        let rows: Vec<Vec<String>> = d
            .models
            .iter()
            .map(|m| {
                let movers: Vec<String> = m
                    .movers
                    .iter()
                    .map(|c| format!("to {}: {}", c.to, gained_lost(&c.gained, &c.lost)))
                    .collect();
                vec![
                    format!("{} ({})", m.name, m.scope),
                    stage_change(m),
                    gained_lost(&m.viewers_gained, &m.viewers_lost),
                    if movers.is_empty() {
                        "-".into()
                    } else {
                        movers.join("\n")
                    },
                ]
            })
            .collect();
        let table = markdown_table(&["Model", "Stage", "Viewers", "Movers"], &rows);
        out.push('\n');
        out.push_str(&details(
            &format!("Models: stages and access ({})", rows.len()),
            &table,
        ));
    }
    if !d.warnings.is_empty() {
        let body = problems(&d.warnings);
        out.push('\n');
        out.push_str(&details(&format!("Warnings ({})", d.warnings.len()), &body));
    }
    out
}

fn problems(ps: &[Problem]) -> String {
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            let at = match (&p.file, p.line) {
                (Some(f), Some(l)) => format!("{f}:{l}"),
                (Some(f), None) => f.clone(),
                _ => "-".into(),
            };
            let what = match &p.field {
                Some(f) => format!("{f}: {}", p.message),
                None => p.message.clone(),
            };
            vec![
                at,
                p.object.clone().unwrap_or_else(|| "-".into()),
                p.reason.clone(),
                what,
            ]
        })
        .collect();
    markdown_table(&["Where", "Object", "Reason", "Message"], &rows)
}

/// A titled section; collapsed when the list is long.
fn section(out: &mut String, title: &str, n: usize, table: &str) {
    if n > LONG_LIST {
        out.push('\n');
        out.push_str(&details(&format!("{title} ({n})"), table));
    } else {
        out.push_str(&format!("\n#### {title} ({n})\n\n{table}"));
    }
}
