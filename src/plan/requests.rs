//! Stage requests in the plan: new requests are replayed in request order
//! from the store's model states; decided ones are records and never change.

use super::build::{status, Builder};
use super::change::Op;
use super::{replay, ModelId, Models};
use crate::resources::{ModelStageRequestSpec, RequestPhase};
use crate::snapshot::ObjectKey;
use crate::store::{phase_str, DecidedRequest, StoreState};
use std::collections::{BTreeMap, BTreeSet};

/// The model states the store recorded and the requests it already decided.
///
/// Decided requests are records: their order and outcome are the store's
/// history, and only the others are replayed after them. `plan` and
/// `can-i --dir` with a store both start here, so they agree.
pub fn recorded_history(state: &StoreState) -> (Models, BTreeSet<ObjectKey>) {
    let models = state
        .models
        .values()
        .map(|m| {
            (
                ModelId {
                    scope: m.scope.clone(),
                    name: m.name.clone(),
                },
                m.state(),
            )
        })
        .collect();
    let decided = state
        .requests
        .keys()
        .map(|(ns, n)| ObjectKey::new("ModelStageRequest", ns, n))
        .collect();
    (models, decided)
}

/// Decides the snapshot's new requests and sets every declared request's status.
pub(super) fn plan_requests(b: &mut Builder) {
    let (mut models, decided) = recorded_history(b.state);
    let before = models.clone();
    let decisions = replay(b.snap, &mut models, &decided);
    let sources: BTreeMap<
        ObjectKey,
        &crate::snapshot::Declared<crate::resources::ModelStageRequest>,
    > = b.snap.requests.iter().map(|r| (r.key(), r)).collect();
    let now = b.ctx.now.to_string();
    let mut seen_models = before;
    for d in decisions {
        let Some(r) = sources.get(&d.key) else {
            continue;
        };
        // First deploy: the requester becomes the owner.
        let new_owner = (d.phase == RequestPhase::Applied
            && seen_models
                .get(&d.model)
                .and_then(|m| m.owner.clone())
                .is_none())
        .then(|| d.requested_by.clone());
        if d.phase == RequestPhase::Applied {
            if let Some(m) = models.get(&d.model) {
                seen_models.insert(d.model.clone(), m.clone());
            }
        }
        b.push(
            &d.key,
            &r.source.to_string(),
            Op::DecideRequest {
                model: d.model.name.clone(),
                scope: d.model.scope.clone(),
                from: d.from,
                to: d.to,
                requested_by: d.requested_by.clone(),
                phase: d.phase,
                message: d.message.clone(),
                new_owner,
            },
        );
        let (ready, reason) = outcome(d.phase);
        let mut st = status(
            r,
            ready,
            reason,
            d.message.clone(),
            Some(phase_str(d.phase)),
        );
        st.extra.insert("decidedAt".into(), now.clone());
        b.set_status(st);
    }
    // Requests decided before keep their recorded outcome, whatever their file says now.
    for r in &b.snap.requests {
        let key = r.key();
        let Some(rec) = b
            .state
            .requests
            .get(&(key.namespace.clone(), key.name.clone()))
        else {
            continue;
        };
        let (ready, reason) = outcome(rec.phase);
        let mut st = match edited(rec, &r.object.spec) {
            // The record stands; the edit is reported on the request until it is reverted.
            Some(what) => status(
                r,
                false,
                "Immutable",
                format!("spec changed after the request was decided ({what}); the recorded decision stands ({}: {}); revert the edit, or create a new request", phase_str(rec.phase), rec.message),
                Some(phase_str(rec.phase)),
            ),
            None => status(
                r,
                ready,
                reason,
                rec.message.clone(),
                Some(phase_str(rec.phase)),
            ),
        };
        st.extra
            .insert("decidedAt".into(), rec.decided_at.to_string());
        b.set_status(st);
    }
}

/// What a declared spec changed against the decided record, if anything (`reason` is free text and not recorded).
fn edited(rec: &DecidedRequest, spec: &ModelStageRequestSpec) -> Option<String> {
    let mut changed = Vec::new();
    if spec.model != rec.model {
        changed.push(format!("spec.model {:?} was {:?}", spec.model, rec.model));
    }
    if spec.scope() != rec.scope {
        changed.push("spec.scope".to_string());
    }
    if spec.from != rec.from {
        changed.push(format!("spec.from {} was {}", spec.from, rec.from));
    }
    if spec.to != rec.to {
        changed.push(format!("spec.to {} was {}", spec.to, rec.to));
    }
    if spec.requested_by != rec.requested_by {
        changed.push(format!(
            "spec.requestedBy {:?} was {:?}",
            spec.requested_by, rec.requested_by
        ));
    }
    (!changed.is_empty()).then(|| changed.join(", "))
}

fn outcome(p: RequestPhase) -> (bool, &'static str) {
    match p {
        RequestPhase::Applied | RequestPhase::Pending => (true, "Ready"),
        RequestPhase::Denied => (false, "Denied"),
        RequestPhase::Conflict => (false, "Conflict"),
    }
}
