//! The terminal rendering of a [`PermissionDiff`].

use super::types::*;
use crate::render::{join_or, text_table};
use std::fmt::Write;

/// Plain text: summary, head errors, escalations, then changes per principal, tokens, requests, models.
pub fn render_text(d: &PermissionDiff) -> String {
    let mut out = format!("stagegate diff: {}\n", d.summary);
    if !d.head_errors.is_empty() {
        let _ = writeln!(
            out,
            "\nErrors in head ({}): fix them first; invalid objects are left out of the diff",
            d.head_errors.len()
        );
        for p in &d.head_errors {
            let _ = writeln!(out, "  {p}");
        }
    }
    if !d.escalations.is_empty() {
        let _ = writeln!(out, "\nESCALATIONS ({}):", d.escalations.len());
        let rows: Vec<Vec<String>> = d
            .escalations
            .iter()
            .map(|e| {
                vec![
                    format!("! {}", e.kind),
                    e.principal.to_string(),
                    e.message.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&text_table(
            &["  KIND", "PRINCIPAL", "WHAT"],
            &rows,
        )));
    }
    if !d.principals.is_empty() {
        let _ = writeln!(out, "\nPrincipals ({}):", d.principals.len());
        for p in &d.principals {
            let kind = match p.principal.kind {
                PrincipalType::User => "user",
                PrincipalType::Token => "token",
                PrincipalType::Domain => "domain",
            };
            let _ = writeln!(out, "  {} ({kind}): {}", p.principal.name, p.change);
            for r in &p.roles_gained {
                let _ = writeln!(out, "    + role {r}");
            }
            for r in &p.roles_lost {
                let _ = writeln!(out, "    - role {r}");
            }
            for c in &p.permissions_gained {
                let _ = writeln!(out, "    + {c}");
            }
            for c in &p.permissions_lost {
                let _ = writeln!(out, "    - {c}");
            }
            for n in &p.notes {
                let _ = writeln!(out, "    note: {n}");
            }
        }
    }
    if !d.tokens.is_empty() {
        let _ = writeln!(out, "\nTokens ({}):", d.tokens.len());
        let rows = super::token_rows(d);
        out.push_str(&indent(&text_table(
            &[
                "TOKEN", "ACTION", "ROLE", "OWNER", "VALIDITY", "SECRET", "WHY",
            ],
            &rows,
        )));
    }
    if !d.requests.is_empty() {
        let _ = writeln!(out, "\nStage requests ({}):", d.requests.len());
        let rows: Vec<Vec<String>> = d.requests.iter().map(request_row).collect();
        out.push_str(&indent(&text_table(
            &["REQUEST", "MODEL", "MOVE", "BY", "RESULT", "WHY"],
            &rows,
        )));
    }
    if !d.models.is_empty() {
        let _ = writeln!(out, "\nModels ({}):", d.models.len());
        for m in &d.models {
            let _ = writeln!(out, "  {} ({}): {}", m.name, m.scope, stage_change(m));
            if !m.viewers_gained.is_empty() || !m.viewers_lost.is_empty() {
                let _ = writeln!(
                    out,
                    "    viewers: {}",
                    gained_lost(&m.viewers_gained, &m.viewers_lost)
                );
            }
            for c in &m.movers {
                let _ = writeln!(
                    out,
                    "    movers to {}: {}",
                    c.to,
                    gained_lost(&c.gained, &c.lost)
                );
            }
        }
    }
    if !d.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings ({}):", d.warnings.len());
        for p in &d.warnings {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

fn indent(table: &str) -> String {
    crate::render::indent(table, "  ")
}

/// `Staging → Production (owner alan)`, `new in Dev (owner alan)`, or `Production (unchanged)`.
pub(super) fn stage_change(m: &ModelChange) -> String {
    let at = |a: &ModelAt| match &a.owner {
        Some(o) => format!("{} (owner {o})", a.stage),
        None => a.stage.to_string(),
    };
    match (&m.before, &m.after) {
        (None, Some(a)) => format!("new in {}", at(a)),
        (Some(b), None) => format!("{} → gone", at(b)),
        (Some(b), Some(a)) if b == a => format!("{}, stage unchanged", at(a)),
        (Some(b), Some(a)) => format!("{} → {}", at(b), at(a)),
        (None, None) => "does not exist".into(),
    }
}

/// `+dan, -alan`.
pub(super) fn gained_lost(gained: &[PrincipalRef], lost: &[PrincipalRef]) -> String {
    let g = gained.iter().map(|p| format!("+{p}"));
    let l = lost.iter().map(|p| format!("-{p}"));
    join_or(g.chain(l), ", ", "-")
}

pub(super) fn request_row(r: &RequestOutcome) -> Vec<String> {
    vec![
        r.name.clone(),
        format!("{} ({})", r.model, r.scope),
        format!("{}→{}", r.from, r.to),
        r.requested_by.clone(),
        r.result.to_string(),
        r.reason.clone(),
    ]
}
