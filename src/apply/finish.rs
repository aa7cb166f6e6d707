//! The second half of apply: recording deliveries (issued, conflict, failed), and the final statuses.

use super::ops::{PendingDelivery, Target, Work};
use super::Outcome;
use crate::plan::{Change, Op, Plan};
use crate::secrets::{Delivery, SecretSink, SinkError};
use crate::snapshot::ObjectKey;
use crate::store::{InvitationState, KeyState, PasswordSource, StoreOp, StoreState, UserRow};
use serde_json::json;

impl Work<'_> {
    /// Records the result of one delivery in transaction 2.
    pub fn delivered(
        &mut self,
        d: &PendingDelivery,
        result: Result<Delivery, SinkError>,
        out: &mut Vec<StoreOp>,
    ) {
        let c = Change {
            object: d.object.clone(),
            source: d.source.clone(),
            op: Op::DeleteStatus,
        };
        let where_ = format!("Secret {}/{}", d.secret.namespace, d.secret.name);
        match (&d.target, result) {
            (Target::Token { key_id }, Ok(Delivery::Delivered)) => {
                if let Some(k) = self.keys.get_mut(key_id) {
                    k.state = KeyState::Issued;
                    out.push(StoreOp::UpsertTokenKey(Box::new(k.clone())));
                }
                out.push(self.audit(
                    &c,
                    "token.deliver",
                    None,
                    Some(json!({"keyId": key_id, "secret": where_})),
                ));
            }
            (Target::Password { username, id }, Ok(Delivery::Delivered)) => {
                let had = self
                    .users
                    .get(username)
                    .is_some_and(|u| u.password_hash.is_some());
                if let Some(u) = self.users.get_mut(username) {
                    complete_password(u);
                    out.push(StoreOp::UpsertUser(Box::new(u.clone())));
                }
                if had {
                    out.push(StoreOp::EndSessions(username.clone()));
                }
                out.push(self.audit(
                    &c,
                    "user.password.deliver",
                    None,
                    Some(json!({"passwordId": id, "secret": where_})),
                ));
            }
            (Target::Invitation { username, id }, Ok(Delivery::Delivered)) => {
                let had = self
                    .users
                    .get(username)
                    .is_some_and(|u| u.password_hash.is_some());
                if let Some(u) = self.users.get_mut(username) {
                    complete_invitation(u);
                    out.push(StoreOp::UpsertUser(Box::new(u.clone())));
                }
                if had {
                    out.push(StoreOp::EndSessions(username.clone()));
                }
                out.push(self.audit(
                    &c,
                    "user.invitation.deliver",
                    None,
                    Some(json!({"invitationId": id, "secret": where_})),
                ));
            }
            (target, Ok(Delivery::Conflict)) => {
                self.discard(target, out);
                out.push(self.audit(&c, "secret.conflict", None, Some(json!({"secret": where_}))));
                self.not_ready(
                    &d.object,
                    "SecretConflict",
                    format!(
                        "{where_} exists and was not written by stagegate: it is never overwritten"
                    ),
                );
            }
            (_, Err(e)) => {
                // Left pending: the next apply completes it if the Secret turns out written, else re-issues.
                tracing::warn!(object = %d.object, error = %e, "secret delivery failed");
                self.not_ready(
                    &d.object,
                    "DeliveryFailed",
                    format!(
                        "delivery to {where_} failed: {}; the new secret is not in force; retried at the next reconcile",
                        e.brief()
                    ),
                );
            }
        }
    }

    fn discard(&mut self, target: &Target, out: &mut Vec<StoreOp>) {
        match target {
            Target::Token { key_id } => {
                self.keys.remove(key_id);
                out.push(StoreOp::DeleteTokenKey(key_id.clone()));
            }
            Target::Password { username, .. } => {
                if let Some(u) = self.users.get_mut(username) {
                    u.pending_password = None;
                    out.push(StoreOp::UpsertUser(Box::new(u.clone())));
                }
            }
            Target::Invitation { username, id } => {
                if let Some(u) = self.users.get_mut(username) {
                    if u.invitation.as_ref().is_some_and(|i| &i.id == id) {
                        u.invitation = None;
                    }
                    out.push(StoreOp::UpsertUser(Box::new(u.clone())));
                }
            }
        }
    }

    fn not_ready(&mut self, key: &ObjectKey, reason: &str, message: String) {
        if let Some(st) = self.statuses.get_mut(key) {
            st.ready = false;
            st.reason = reason.to_string();
            st.message = message;
            if key.kind == "ApiToken" {
                st.phase = Some(
                    if reason == "SecretConflict" {
                        "Revoked"
                    } else {
                        "SecretMissing"
                    }
                    .into(),
                );
                for f in ["keyId", "issuedAt", "expiresAt"] {
                    st.extra.remove(f);
                }
            }
        }
    }

    /// Status writes: every final status that differs from the stored one, and the plan's deletions.
    pub fn status_ops(&self, plan: &Plan, state: &StoreState) -> Vec<StoreOp> {
        let mut out: Vec<StoreOp> = self
            .statuses
            .values()
            .filter(|s| state.statuses.get(&s.key) != Some(*s))
            .map(|s| StoreOp::SetStatus(Box::new(s.clone())))
            .collect();
        out.extend(
            plan.changes
                .iter()
                .filter(|c| matches!(c.op, Op::DeleteStatus))
                .map(|c| StoreOp::DeleteStatus(c.object.clone())),
        );
        out
    }

    /// Final outcomes, in the plan's object order.
    /// Removes the delivered Secrets of deleted token keys (directory mode; in a cluster
    /// they go with their ApiToken). Runs after the commit: the keys are already gone from
    /// the store, so a file left behind by a failure here holds a dead key, and is logged.
    pub fn retire_secrets(&self, sink: &dyn SecretSink) {
        for (ns, name, key_id) in &self.retired {
            if let Err(e) = sink.retire(ns, name, key_id) {
                tracing::warn!(namespace = %ns, %name, error = %e, "could not remove the Secret of a deleted token key");
            }
        }
    }

    pub fn outcomes(&self, plan: &Plan) -> Vec<Outcome> {
        plan.objects
            .iter()
            .map(|o| Outcome::from(self.statuses.get(&o.key).unwrap_or(o)))
            .collect()
    }
}

/// Makes a delivered pending invitation the one in force: the password in force (declared
/// or chosen) stops working, so the invitation is the one way in.
pub(super) fn complete_invitation(u: &mut UserRow) {
    if let Some(i) = u
        .invitation
        .as_mut()
        .filter(|i| i.state == InvitationState::Pending)
    {
        i.state = InvitationState::Issued;
        u.password_rotation = i.rotation;
        u.password_hash = None;
        u.password_source = None;
        u.password_fingerprint = None;
        u.password_id = None;
        u.password_chosen_at = None;
        u.pending_password = None;
    }
}

/// Makes a delivered pending password the current one.
pub(super) fn complete_password(u: &mut UserRow) {
    if let Some(p) = u.pending_password.take() {
        u.password_chosen_at = None;
        u.invitation = None;
        u.password_hash = Some(p.hash);
        u.password_id = Some(p.id);
        u.password_rotation = p.rotation;
        u.password_source = Some(PasswordSource::Generated);
        u.password_fingerprint = None;
    }
}
