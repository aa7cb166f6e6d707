//! [`diff`]: base and head snapshots to a [`PermissionDiff`].

use super::capability::{capabilities, not_implied, scope_universe, Capability};
use super::escalation;
use super::state::{mentioned_scopes, Tree};
use super::types::*;
use crate::plan::{replay, ModelId, Models, RequestDecision};
use crate::policy::{decide, transition_possible, Action, ModelState, Request, Stage};
use crate::render::Summary;
use crate::resources::{RequestPhase, UserState};
use crate::snapshot::Diagnostic;
use crate::snapshot::{ObjectKey, Snapshot};
use std::collections::{BTreeMap, BTreeSet};

/// Capabilities of every active principal of a tree.
pub(super) type CapMap = BTreeMap<PrincipalRef, BTreeSet<Capability>>;

/// The effective-permission diff from `base` to `head` (both loaded and validated).
pub fn diff(base: &Snapshot, head: &Snapshot, opts: &DiffOptions) -> PermissionDiff {
    // A head User claiming a username a base User holds is the one in conflict, whatever the file order.
    let head = &*crate::plan::with_base_holders(head, base);
    let base_tree = Tree::new(base, None);
    let base_users: BTreeSet<String> = base_tree.users.keys().cloned().collect();
    let head_tree = Tree::new(head, Some(&base_users));
    let universe = scope_universe(mentioned_scopes(&[base, head]).iter());
    let caps = |t: &Tree| -> CapMap {
        t.principals
            .iter()
            .map(|(who, p)| (who.clone(), capabilities(p, &universe)))
            .collect()
    };
    let (base_caps, head_caps) = (caps(&base_tree), caps(&head_tree));

    let principals = principal_changes(&base_tree, &head_tree, &base_caps, &head_caps);
    let tokens = token_changes(&base_tree, &head_tree);
    let mut escalations = escalation::find(&base_tree, &head_tree, &base_caps, &head_caps, opts);
    escalations.extend(super::domains::escalations(base, head));
    escalations.sort();
    let (requests, request_warnings, models_before, models_after) = requests(base, head);
    let models = model_changes(&base_tree, &head_tree, &models_before, &models_after);

    let head_errors: Vec<Problem> =
        sorted_problems(head.diagnostics.iter().filter(|d| d.is_error()));
    let known: BTreeSet<_> = base.diagnostics.iter().map(identity).collect();
    let mut warnings = sorted_problems(
        head.diagnostics
            .iter()
            .filter(|d| !d.is_error() && !known.contains(&identity(d))),
    );
    warnings.extend(request_warnings);

    let users = |k| {
        principals
            .iter()
            .filter(|p| p.principal.kind == PrincipalType::User && p.change == k)
            .count()
    };
    let token_count = |a| tokens.iter().filter(|t| t.action == a).count();
    let request_count = |r| requests.iter().filter(|q| q.result == r).count();
    let counts = Counts {
        users_added: users(ChangeKind::Added),
        users_removed: users(ChangeKind::Removed),
        users_revoked: users(ChangeKind::Revoked),
        users_reinstated: users(ChangeKind::Reinstated),
        users_changed: users(ChangeKind::Changed),
        escalations: escalations.len(),
        tokens_issued: token_count(TokenAction::Issued),
        tokens_rotated: token_count(TokenAction::Rotated),
        tokens_revoked: token_count(TokenAction::Revoked),
        tokens_updated: token_count(TokenAction::Updated),
        requests_applied: request_count(RequestResult::Applied),
        requests_denied: request_count(RequestResult::Denied),
        requests_conflict: request_count(RequestResult::Conflict),
        models_changed: models.len(),
        head_errors: head_errors.len(),
        warnings: warnings.len(),
    };
    PermissionDiff {
        format_version: FORMAT_VERSION,
        summary: summary(&counts),
        counts,
        head_errors,
        warnings,
        escalations,
        principals,
        tokens,
        requests,
        models,
    }
}

/// The one-line summary: `+2 users, 1 escalation, 3 tokens issued`.
pub(super) fn summary(c: &Counts) -> String {
    Summary::new()
        .count(c.head_errors, "error in head", "errors in head")
        .added(c.users_added, "user", "users")
        .removed(c.users_removed, "user", "users")
        .count(c.users_revoked, "user revoked", "users revoked")
        .count(c.users_reinstated, "user reinstated", "users reinstated")
        .count(c.users_changed, "user changed", "users changed")
        .count(c.escalations, "escalation", "escalations")
        .count(c.tokens_issued, "token issued", "tokens issued")
        .count(c.tokens_rotated, "token rotated", "tokens rotated")
        .count(c.tokens_revoked, "token revoked", "tokens revoked")
        .count(c.tokens_updated, "token updated", "tokens updated")
        .count(c.requests_applied, "request applied", "requests applied")
        .count(c.requests_denied, "request denied", "requests denied")
        .count(
            c.requests_conflict,
            "request in conflict",
            "requests in conflict",
        )
        .count(c.warnings, "warning", "warnings")
        .finish("no changes")
}

/// A diagnostic without its location: the same problem in a renamed file is the same problem.
fn identity(
    d: &Diagnostic,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
) {
    (
        d.kind.clone(),
        d.namespace.clone(),
        d.name.clone(),
        d.field.clone(),
        d.reason.to_string(),
        d.message.clone(),
    )
}

fn sorted_problems<'a>(diags: impl Iterator<Item = &'a Diagnostic>) -> Vec<Problem> {
    let mut out: Vec<Problem> = diags
        .map(|d| Problem {
            file: d.file.clone(),
            line: d.line,
            object: match (&d.kind, &d.namespace, &d.name) {
                (Some(k), Some(ns), Some(n)) => Some(format!("{k} {ns}/{n}")),
                (Some(k), None, Some(n)) => Some(format!("{k} {n}")),
                _ => None,
            },
            field: d.field.clone(),
            reason: d.reason.to_string(),
            message: d.message.clone(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn set_diff<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> Vec<T> {
    a.difference(b).cloned().collect()
}

fn principal_changes(
    base: &Tree,
    head: &Tree,
    base_caps: &CapMap,
    head_caps: &CapMap,
) -> Vec<PrincipalChange> {
    let empty = BTreeSet::new();
    let mut out = Vec::new();
    let mut push = |who: PrincipalRef, change: ChangeKind, notes: Vec<String>| {
        let (bg, hg) = (base.grants(&who), head.grants(&who));
        let (bc, hc) = (
            base_caps.get(&who).unwrap_or(&empty),
            head_caps.get(&who).unwrap_or(&empty),
        );
        let role = |g: crate::policy::Grant| RoleAt {
            role: g.role,
            scope: g.scope,
        };
        let c = PrincipalChange {
            roles_gained: set_diff(&hg, &bg).into_iter().map(role).collect(),
            roles_lost: set_diff(&bg, &hg).into_iter().map(role).collect(),
            permissions_gained: not_implied(hc, bc),
            permissions_lost: not_implied(bc, hc),
            principal: who,
            change,
            notes,
        };
        let changed = !(c.roles_gained.is_empty()
            && c.roles_lost.is_empty()
            && c.permissions_gained.is_empty()
            && c.permissions_lost.is_empty()
            && c.notes.is_empty());
        if change != ChangeKind::Changed || changed {
            out.push(c);
        }
    };
    let names: BTreeSet<&String> = base.users.keys().chain(head.users.keys()).collect();
    for name in names {
        let (b, h) = (base.users.get(name), head.users.get(name));
        let mut notes = Vec::new();
        let change = match (b, h) {
            (None, _) => {
                if h.is_some_and(|h| h.state == UserState::Revoked) {
                    notes.push("declared Revoked: cannot log in".to_string());
                }
                ChangeKind::Added
            }
            (_, None) => ChangeKind::Removed,
            (Some(b), Some(h)) => {
                if b.password_ref != h.password_ref {
                    notes.push("password reset (passwordSecretRef changed)".to_string());
                }
                if h.password_rotation > b.password_rotation {
                    let what = if h.invited { ": a new invitation" } else { "" };
                    notes.push(format!(
                        "password reset (passwordRotation {} → {}){what}",
                        b.password_rotation, h.password_rotation
                    ));
                } else if h.invited && !b.invited {
                    notes.push("password reset: invited to choose a new password".to_string());
                }
                match (b.state, h.state) {
                    (UserState::Active, UserState::Revoked) => ChangeKind::Revoked,
                    (UserState::Revoked, UserState::Active) => ChangeKind::Reinstated,
                    _ => ChangeKind::Changed,
                }
            }
        };
        push(PrincipalRef::user(name), change, notes);
    }
    let names: BTreeSet<&String> = base.tokens.keys().chain(head.tokens.keys()).collect();
    for name in names {
        let (b, h) = (base.tokens.get(name), head.tokens.get(name));
        let mut notes = Vec::new();
        let change = match (b, h) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            (Some(b), Some(h)) if b.active() && !h.active() => ChangeKind::Revoked,
            (Some(b), Some(h)) if !b.active() && h.active() => ChangeKind::Reinstated,
            _ => ChangeKind::Changed,
        };
        if let Some(why) = h.and_then(|h| h.revoked_because.as_ref()) {
            if b.is_none_or(|b| b.active()) {
                notes.push(format!("not active: {why}"));
            }
        }
        push(PrincipalRef::token(name), change, notes);
    }
    out
}

fn token_changes(base: &Tree, head: &Tree) -> Vec<TokenChange> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = base.tokens.keys().chain(head.tokens.keys()).collect();
    for name in names {
        let (b, h) = (base.tokens.get(name), head.tokens.get(name));
        let (action, reason) = match (b, h) {
            (None, Some(h)) if h.active() => (TokenAction::Issued, "new token".to_string()),
            (Some(b), None) if b.active() => (TokenAction::Revoked, "ApiToken deleted".to_string()),
            (Some(b), Some(h)) if !b.active() && h.active() => (
                TokenAction::Issued,
                format!(
                    "reinstated (was revoked: {})",
                    b.revoked_because.as_deref().unwrap_or("")
                ),
            ),
            (Some(b), Some(h)) if b.active() && !h.active() => (
                TokenAction::Revoked,
                h.revoked_because.clone().unwrap_or_default(),
            ),
            (Some(b), Some(h)) if b.active() && h.active() => {
                let mut fields = Vec::new();
                let mut field = |what: &str, before: String, after: String| {
                    if before != after {
                        fields.push(format!("{what} {before} → {after}"));
                    }
                };
                field("role", b.spec.role.to_string(), h.spec.role.to_string());
                field(
                    "scope",
                    b.spec.scope().to_string(),
                    h.spec.scope().to_string(),
                );
                let owner = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".into());
                field("owner", owner(&b.spec.owner), owner(&h.spec.owner));
                field("validity", b.spec.validity.clone(), h.spec.validity.clone());
                field("secret", b.secret_name.clone(), h.secret_name.clone());
                if h.spec.rotation > b.spec.rotation {
                    let mut why = format!("rotation {} → {}", b.spec.rotation, h.spec.rotation);
                    for f in fields {
                        why.push_str(", ");
                        why.push_str(&f);
                    }
                    (TokenAction::Rotated, why)
                } else if !fields.is_empty() {
                    (TokenAction::Updated, fields.join(", "))
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        let Some(t) = h.or(b) else { continue };
        out.push(TokenChange {
            name: name.clone(),
            namespace: t.key.namespace.clone(),
            action,
            role: t.spec.role,
            scope: t.spec.scope(),
            owner: t.spec.owner.clone(),
            validity: t.spec.validity.clone(),
            secret_name: t.secret_name.clone(),
            reason,
        });
    }
    out
}

/// Replays base fully, then head's new requests from base's model states.
fn requests(
    base: &Snapshot,
    head: &Snapshot,
) -> (Vec<RequestOutcome>, Vec<Problem>, Models, Models) {
    let mut before = Models::new();
    replay(base, &mut before, &BTreeSet::new());
    let base_invalid = base.invalid_keys();
    let base_reqs: BTreeMap<ObjectKey, _> = base
        .requests
        .iter()
        .filter(|r| !base_invalid.contains(&r.key()))
        .map(|r| (r.key(), r))
        .collect();
    let decided: BTreeSet<ObjectKey> = base_reqs.keys().cloned().collect();
    let mut after = before.clone();
    let new = replay(head, &mut after, &decided);
    let head_reqs: BTreeMap<ObjectKey, _> = head.requests.iter().map(|r| (r.key(), r)).collect();
    let mut warnings = Vec::new();
    let mut out: Vec<RequestOutcome> = Vec::new();
    for d in new {
        let result = match d.phase {
            RequestPhase::Applied | RequestPhase::Pending => RequestResult::Applied,
            RequestPhase::Denied => RequestResult::Denied,
            RequestPhase::Conflict => RequestResult::Conflict,
        };
        if result != RequestResult::Applied {
            let source = head_reqs
                .get(&d.key)
                .map(|r| r.source.clone())
                .unwrap_or_default();
            warnings.push(Problem {
                file: source.file,
                line: source.line,
                object: Some(d.key.to_string()),
                field: None,
                reason: format!("Request{result}"),
                message: format!(
                    "{} {}→{} by {} would be {}: {}",
                    d.model.name,
                    d.from,
                    d.to,
                    d.requested_by,
                    if result == RequestResult::Denied {
                        "denied"
                    } else {
                        "in conflict"
                    },
                    d.message
                ),
            });
        }
        out.push(outcome(&d, result));
    }
    for (key, h) in &head_reqs {
        if let Some(b) = base_reqs.get(key) {
            if b.object.spec != h.object.spec {
                warnings.push(Problem {
                    file: h.source.file.clone(),
                    line: h.source.line,
                    object: Some(key.to_string()),
                    field: Some("spec".into()),
                    reason: "DecidedRequestChanged".into(),
                    message: "the spec of a decided stage request is immutable; the change is ignored (create a new request instead)".into(),
                });
            }
        }
    }
    for (key, b) in base_reqs
        .iter()
        .filter(|(k, _)| !head_reqs.contains_key(*k))
    {
        let s = &b.object.spec;
        out.push(RequestOutcome {
            name: key.name.clone(),
            namespace: key.namespace.clone(),
            model: s.model.clone(),
            scope: s.scope(),
            from: s.from,
            to: s.to,
            requested_by: s.requested_by.clone(),
            result: RequestResult::Deleted,
            reason: "the record is deleted; deleting a request does not move the model back".into(),
        });
    }
    (out, warnings, before, after)
}

fn outcome(d: &RequestDecision, result: RequestResult) -> RequestOutcome {
    RequestOutcome {
        name: d.key.name.clone(),
        namespace: d.key.namespace.clone(),
        model: d.model.name.clone(),
        scope: d.model.scope.clone(),
        from: d.from,
        to: d.to,
        requested_by: d.requested_by.clone(),
        result,
        reason: d.message.clone(),
    }
}

const STAGES: [Stage; 3] = [Stage::Dev, Stage::Staging, Stage::Production];

/// Who may see the model and who may move it to each stage, in one tree.
fn access(
    tree: &Tree,
    m: Option<&ModelState>,
) -> (
    BTreeSet<PrincipalRef>,
    BTreeMap<Stage, BTreeSet<PrincipalRef>>,
) {
    let mut viewers = BTreeSet::new();
    let mut movers: BTreeMap<Stage, BTreeSet<PrincipalRef>> = BTreeMap::new();
    let Some(m) = m.filter(|m| m.stage.is_some()) else {
        return (viewers, movers);
    };
    for (who, p) in &tree.principals {
        let ask = |action, to| {
            decide(
                p,
                &Request {
                    action,
                    scope: None,
                    model: Some(m.into()),
                    to,
                },
            )
            .allowed
        };
        if ask(Action::ModelsView, None) {
            viewers.insert(who.clone());
        }
        for to in STAGES
            .into_iter()
            .filter(|t| transition_possible(m.stage, *t))
        {
            if ask(Action::ModelsTransition, Some(to)) {
                movers.entry(to).or_default().insert(who.clone());
            }
        }
    }
    (viewers, movers)
}

fn model_changes(base: &Tree, head: &Tree, before: &Models, after: &Models) -> Vec<ModelChange> {
    let ids: BTreeSet<&ModelId> = before.keys().chain(after.keys()).collect();
    let at = |m: Option<&ModelState>| {
        m.and_then(|m| {
            m.stage.map(|stage| ModelAt {
                stage,
                owner: m.owner.clone(),
            })
        })
    };
    let mut out = Vec::new();
    for id in ids {
        let (b, h) = (before.get(id), after.get(id));
        let (bv, bm) = access(base, b);
        let (hv, hm) = access(head, h);
        let empty = BTreeSet::new();
        let movers: Vec<MoverChange> = STAGES
            .into_iter()
            .map(|to| {
                let (x, y) = (bm.get(&to).unwrap_or(&empty), hm.get(&to).unwrap_or(&empty));
                MoverChange {
                    to,
                    gained: set_diff(y, x),
                    lost: set_diff(x, y),
                }
            })
            .filter(|c| !c.gained.is_empty() || !c.lost.is_empty())
            .collect();
        let c = ModelChange {
            name: id.name.clone(),
            scope: id.scope.clone(),
            before: at(b),
            after: at(h),
            viewers_gained: set_diff(&hv, &bv),
            viewers_lost: set_diff(&bv, &hv),
            movers,
        };
        if c.before != c.after
            || !c.viewers_gained.is_empty()
            || !c.viewers_lost.is_empty()
            || !c.movers.is_empty()
        {
            out.push(c);
        }
    }
    out
}
