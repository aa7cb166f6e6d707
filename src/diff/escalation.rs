//! Escalations: changes that widen what someone may do, each with a stable kind.

use super::capability::not_implied;
use super::compute::CapMap;
use super::state::Tree;
use super::types::{DiffOptions, Escalation, EscalationKind, PrincipalRef};
use crate::policy::{Action, Role};
use crate::render::join_or;
use crate::resources::Validity;
use std::collections::BTreeSet;

/// Every escalation from `base` to `head`, sorted by kind, then principal.
pub(super) fn find(
    base: &Tree,
    head: &Tree,
    base_caps: &CapMap,
    head_caps: &CapMap,
    opts: &DiffOptions,
) -> Vec<Escalation> {
    let mut out = BTreeSet::new();
    let empty = BTreeSet::new();
    for (who, caps) in head_caps {
        let gained = not_implied(caps, base_caps.get(who).unwrap_or(&empty));
        let scopes = |pred: &dyn Fn(&super::Capability) -> bool| {
            join_or(
                gained
                    .iter()
                    .filter(|c| pred(c))
                    .map(|c| c.scope.to_string())
                    .collect::<BTreeSet<_>>(),
                ", ",
                "",
            )
        };
        for (action, kind) in [
            (Action::UsersManage, EscalationKind::GainsUserManagement),
            (Action::TokensManage, EscalationKind::GainsTokenManagement),
        ] {
            let at = scopes(&|c| c.action == action);
            if !at.is_empty() {
                out.insert(esc(kind, who, format!("gains {action} at {at}")));
            }
        }
        let moves: Vec<String> = gained
            .iter()
            .filter(|c| c.moves_to_production())
            .map(|c| c.to_string())
            .collect();
        if !moves.is_empty() {
            out.insert(esc(
                EscalationKind::GainsProductionMoves,
                who,
                format!("gains moving models to Production: {}", moves.join("; ")),
            ));
        }
        wider_scope(base, head, who, &mut out);
    }
    for (name, h) in head.tokens.iter().filter(|(_, t)| t.active()) {
        let who = PrincipalRef::token(name);
        let b = base.tokens.get(name).filter(|b| b.active());
        let issued = b.is_none() || b.is_some_and(|b| h.spec.rotation > b.spec.rotation);
        if h.spec.role == Role::Admin && b.is_none_or(|b| b.spec.role != Role::Admin) {
            let what = if b.is_none() { "new" } else { "now" };
            out.insert(esc(
                EscalationKind::NewAdminToken,
                &who,
                format!("{what} Admin token at {}", h.spec.scope()),
            ));
        }
        let too_long = match Validity::parse(&h.spec.validity) {
            Ok(Validity::Never) => Some("never expires".to_string()),
            Ok(Validity::For(d)) if d > opts.max_validity => Some(format!(
                "validity {} exceeds the maximum of {}",
                h.spec.validity,
                short_duration(opts.max_validity)
            )),
            _ => None,
        };
        let validity_changed = b.is_some_and(|b| b.spec.validity != h.spec.validity);
        if let Some(why) = too_long.filter(|_| issued || validity_changed) {
            out.insert(esc(
                EscalationKind::LongValidity,
                &who,
                format!("key {why} (validity: {})", h.spec.validity),
            ));
        }
        let newly_unowned = b.is_none_or(|b| !b.owner_missing || b.spec.owner != h.spec.owner);
        if h.owner_missing && newly_unowned {
            let why = match &h.spec.owner {
                None => "has no owner".to_string(),
                Some(o) => format!("owner {o} is not a declared user"),
            };
            out.insert(esc(
                EscalationKind::OwnerMissing,
                &who,
                format!("{why}: nobody is accountable for it"),
            ));
        }
    }
    out.into_iter().collect()
}

fn esc(kind: EscalationKind, who: &PrincipalRef, message: String) -> Escalation {
    Escalation {
        kind,
        principal: who.clone(),
        message,
    }
}

/// A role now held at a scope strictly wider than where the principal held the same role before.
fn wider_scope(base: &Tree, head: &Tree, who: &PrincipalRef, out: &mut BTreeSet<Escalation>) {
    let before = base.grants(who);
    for g in head.grants(who) {
        let same_role = || before.iter().filter(|b| b.role == g.role);
        if same_role().any(|b| b.scope.covers(&g.scope)) {
            continue;
        }
        let narrower: Vec<String> = same_role()
            .filter(|b| g.scope.covers(&b.scope))
            .map(|b| b.scope.to_string())
            .collect();
        if !narrower.is_empty() {
            out.insert(esc(
                EscalationKind::WiderScope,
                who,
                format!("{} at {} → {}", g.role, narrower.join(", "), g.scope),
            ));
        }
    }
}

/// `90d`, `36h`, or humantime's form when neither divides evenly.
fn short_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else {
        humantime::format_duration(d).to_string()
    }
}
