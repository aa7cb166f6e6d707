//! Issue "Scale", goal 4, directory mode: a new stage request is decided by a scoped
//! round (its model's row, its requester's User and bindings, the other requests of its
//! model read alone), on both stores.

use super::harness::{copy_examples, status_of, wait_for, Running, Workspace};
use crate::stores::{on_both_stores, StoreKind};

/// The "reconcile phases" lines of the daemon's JSON log that say the round was scoped.
fn scoped_rounds(r: &Running) -> usize {
    r.log()
        .lines()
        .filter(|l| l.contains("reconcile phases") && l.contains("\"scoped\":true"))
        .count()
}

/// churn-model was sent back to Dev (examples/stage-requests.yaml): dan asks for Staging
/// again, in a file of its own.
const AGAIN: &str = "apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata:
  name: churn-model-004-staging
  namespace: ml-platform
spec:
  model: churn-model
  scope:
    customer: acme
    project: churn
  from: Dev
  to: Staging
  requestedBy: dan
";

on_both_stores!(a_new_stage_request_is_decided_by_a_scoped_round);
fn a_new_stage_request_is_decided_by_a_scoped_round(store: StoreKind) {
    let ws = Workspace::on(store);
    copy_examples(&ws.manifests());
    let r = ws.start_logging(&["--log-json"], "info,stagegate::sources::watch=debug");
    wait_for(&r, 60, "the first apply", || {
        status_of(
            &ws.store(),
            "ModelStageRequest",
            "ml-platform",
            "churn-model-003-reject",
        )
    });
    // The rounds of the first apply's own deliveries find nothing to do.
    wait_for(&r, 60, "a round that found nothing to do", || {
        r.log()
            .contains("nothing changed; not reconciling")
            .then_some(())
    });
    let before = scoped_rounds(&r);
    ws.write("churn-model-004.yaml", AGAIN);
    let (ready, reason) = wait_for(&r, 60, "the new request decided", || {
        status_of(
            &ws.store(),
            "ModelStageRequest",
            "ml-platform",
            "churn-model-004-staging",
        )
    });
    // dan moved churn-model to Staging once: he may again.
    assert!(ready, "{reason}");
    wait_for(&r, 10, "a scoped round logged", || {
        (scoped_rounds(&r) > before).then_some(())
    });
    assert!(r.terminate().success());
}
