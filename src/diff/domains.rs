//! Escalations of access domains: a pin that widens, and a declaration that
//! moves out of its domain into one that admits more.

use super::types::{Escalation, EscalationKind, PrincipalRef};
use crate::snapshot::{within, Declared, Domain, ObjectKey, Snapshot};
use kube::Resource;
use std::collections::BTreeMap;

/// Every domain escalation from `base` to `head` (both validated, so their domains are resolved).
pub(super) fn escalations(base: &Snapshot, head: &Snapshot) -> Vec<Escalation> {
    let mut out = Vec::new();
    for b in &base.domains.resolved {
        let h = head.domains.resolved.iter().find(|h| h.name == b.name);
        let message = match h {
            None => {
                let outer = enclosing(head, &b.name);
                if within(outer, Some(b)) {
                    continue;
                }
                format!(
                    "no longer pinned (was {} by {}): what it declares now reaches {}",
                    b.pin(),
                    b.pinned_by,
                    outer.map_or("everywhere (unpinned)".to_string(), |o| format!(
                        "{} ({})",
                        o.pin(),
                        o.name
                    ))
                )
            }
            Some(h) if !within(Some(h), Some(b)) => {
                format!("pinned to {} → {} (by {})", b.pin(), h.pin(), h.pinned_by)
            }
            Some(_) => continue,
        };
        out.push(Escalation {
            kind: EscalationKind::DomainWidened,
            principal: PrincipalRef::domain(&b.name),
            message,
        });
    }
    let before = domains_by_key(base);
    let invalid = head.invalid_keys();
    for (key, h) in domains_by_key(head) {
        let Some(Some(b)) = before.get(&key) else {
            continue;
        };
        // A domain that widened or lost its pin is one DomainWidened, not a move of each declaration.
        let domain_kept = head
            .domains
            .resolved
            .iter()
            .any(|h| h.name == b.name && within(Some(h), Some(b)));
        if !domain_kept {
            continue;
        }
        let moved = h.as_ref().is_none_or(|h| h.name != b.name);
        if invalid.contains(&key) || !moved || within(h.as_ref(), Some(b)) {
            continue;
        }
        let to = h
            .as_ref()
            .map_or("outside every access domain (global)".to_string(), |h| {
                format!("{} ({})", h.name, h.pin())
            });
        out.push(Escalation {
            kind: EscalationKind::LeavesDomain,
            principal: PrincipalRef::domain(&b.name),
            message: format!("{key} moves out of {} ({}) to {to}", b.name, b.pin()),
        });
    }
    out
}

/// The innermost domain of `head` around the folder domain `name` (`folder a/b` → `folder a`).
fn enclosing<'a>(head: &'a Snapshot, name: &str) -> Option<&'a Domain> {
    let path = name.strip_prefix("folder ")?;
    head.domains
        .resolved
        .iter()
        .filter_map(|d| Some((d, d.name.strip_prefix("folder ")?)))
        .filter(|(_, p)| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|(_, p)| p.len())
        .map(|(d, _)| d)
}

/// The domain of every declaration of the four kinds, by key.
fn domains_by_key(snap: &Snapshot) -> BTreeMap<ObjectKey, Option<Domain>> {
    fn add<K: Resource<DynamicType = ()>>(
        items: &[Declared<K>],
        out: &mut BTreeMap<ObjectKey, Option<Domain>>,
    ) {
        out.extend(items.iter().map(|d| (d.key(), d.domain.clone())));
    }
    let mut out = BTreeMap::new();
    add(&snap.users, &mut out);
    add(&snap.bindings, &mut out);
    add(&snap.tokens, &mut out);
    add(&snap.requests, &mut out);
    out
}
