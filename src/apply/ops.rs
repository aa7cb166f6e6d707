//! Translation of plan changes into store writes, audit rows and deliveries.

use super::{ApplyContext, ApplyError};
use crate::plan::{Change, Op, Plan, SecretName, TokenFields, UserFields};
use crate::policy::{Role, Scope};
use crate::resources::{RequestPhase, Validity};
use crate::secrets::{
    generate_invitation, generate_key, generate_password, hash_many, new_key_id, HashValue, NewKey,
    OutgoingSecret, SecretValue,
};
use crate::snapshot::ObjectKey;
use crate::store::{
    AuditRow, BindingRow, DecidedRequest, InvitationRow, InvitationState, KeyState, ModelRow,
    ObjectStatus, Owner, PasswordSource, PendingPassword, StoreOp, StoreState, TokenKeyRow,
    UserRow,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a delivered Secret completes.
pub(super) enum Target {
    Token { key_id: String },
    Password { username: String, id: String },
    Invitation { username: String, id: String },
}

/// One Secret to deliver after transaction 1.
pub(super) struct PendingDelivery {
    pub secret: OutgoingSecret,
    pub target: Target,
    pub object: ObjectKey,
    pub source: String,
}

/// Working copies of the rows apply changes, plus generated material.
pub(super) struct Work<'a> {
    pub(super) ctx: &'a ApplyContext<'a>,
    pub(super) users: BTreeMap<String, UserRow>,
    pub(super) dirty_users: BTreeSet<String>,
    pub(super) keys: BTreeMap<String, TokenKeyRow>,
    pub(super) models: BTreeMap<(Scope, String), ModelRow>,
    pub(super) hashes: BTreeMap<String, HashValue>,
    pub(super) generated: BTreeMap<String, (String, SecretValue)>,
    pub(super) new_keys: BTreeMap<ObjectKey, NewKey>,
    /// Invitation codes generated for this apply, by username.
    pub(super) invitations: BTreeMap<String, NewKey>,
    pub(super) statuses: BTreeMap<ObjectKey, ObjectStatus>,
    pub deliveries: Vec<PendingDelivery>,
    /// Secrets (namespace, name, key id) of deleted token keys, removed after the commit.
    pub(super) retired: Vec<(String, String, String)>,
}

fn owner(c: &Change) -> Option<Owner> {
    Some(Owner {
        key: c.object.clone(),
        source: c.source.clone(),
    })
}

fn user_json(u: &UserRow) -> Value {
    // Never the hash, fingerprint or pending password: only what a reviewer needs.
    json!({
        "username": u.username,
        "displayName": u.display_name,
        "email": u.email,
        "state": format!("{:?}", u.state),
    })
}

fn key_json(k: &TokenKeyRow) -> Value {
    json!({
        "keyId": k.key_id,
        "role": k.role,
        "scope": k.scope.to_string(),
        "owner": k.owner_user,
        "expiresAt": k.expires_at.map(|t| t.to_string()),
        "rotation": k.rotation,
        "state": k.state.as_str(),
        "revoked": k.revoked_reason,
    })
}

impl<'a> Work<'a> {
    pub fn new(state: &StoreState, ctx: &'a ApplyContext<'a>) -> Self {
        Work {
            ctx,
            users: state.users.clone(),
            dirty_users: BTreeSet::new(),
            keys: state.token_keys.clone(),
            models: state.models.clone(),
            hashes: BTreeMap::new(),
            generated: BTreeMap::new(),
            new_keys: BTreeMap::new(),
            invitations: BTreeMap::new(),
            statuses: BTreeMap::new(),
            deliveries: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Generates passwords and keys, and hashes every password over all cores before any transaction.
    pub fn prepare(&mut self, plan: &Plan) -> Result<(), ApplyError> {
        let mut to_hash: Vec<(String, SecretValue)> = Vec::new();
        for c in &plan.changes {
            match &c.op {
                Op::ResetPassword {
                    username, value, ..
                } => to_hash.push((username.clone(), value.0.clone())),
                Op::GeneratePassword { username, .. } => {
                    let pw = generate_password();
                    self.generated
                        .insert(username.clone(), (new_key_id(), pw.clone()));
                    to_hash.push((username.clone(), pw));
                }
                Op::IssueToken { .. } => {
                    self.new_keys
                        .insert(c.object.clone(), generate_key(self.ctx.server_key));
                }
                Op::IssueInvitation { username, .. } => {
                    self.invitations
                        .insert(username.clone(), generate_invitation(self.ctx.server_key));
                }
                _ => {}
            }
        }
        let refs: Vec<&SecretValue> = to_hash.iter().map(|(_, v)| v).collect();
        let started = std::time::Instant::now();
        let hashes = hash_many(self.ctx.password_params, &refs)?;
        if !refs.is_empty() {
            tracing::debug!(
                count = refs.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "passwords hashed"
            );
        }
        for ((u, _), h) in to_hash.into_iter().zip(hashes) {
            self.hashes.insert(u, h);
        }
        Ok(())
    }

    pub(super) fn audit(
        &self,
        c: &Change,
        action: &str,
        old: Option<Value>,
        new: Option<Value>,
    ) -> StoreOp {
        StoreOp::Audit(Box::new(AuditRow {
            id: 0,
            at: self.ctx.now,
            action: action.to_string(),
            object: c.object.clone(),
            source: c.source.clone(),
            old,
            new,
        }))
    }

    fn user(&mut self, name: &str) -> &mut UserRow {
        self.dirty_users.insert(name.to_string());
        self.users
            .entry(name.to_string())
            .or_insert_with(|| UserRow::new(name, None))
    }

    fn expiry(&self, issued: jiff::Timestamp, f: &TokenFields) -> Option<jiff::Timestamp> {
        match Validity::parse(&f.validity) {
            Ok(v) => v.duration().and_then(|d| issued.checked_add(d).ok()),
            Err(_) => Some(issued),
        }
    }

    /// Transaction 1: every data change, with new secrets recorded pending.
    pub fn translate(&mut self, plan: &Plan) -> Vec<StoreOp> {
        let mut out: Vec<StoreOp> = plan
            .base_revision
            .map(StoreOp::ExpectRevision)
            .into_iter()
            .collect();
        for st in &plan.objects {
            self.statuses.insert(st.key.clone(), st.clone());
        }
        for c in &plan.changes {
            self.translate_one(c, &mut out);
        }
        for name in std::mem::take(&mut self.dirty_users) {
            if let Some(u) = self.users.get(&name) {
                out.push(StoreOp::UpsertUser(Box::new(u.clone())));
            }
        }
        out
    }

    /// Dispatches one change to the function that translates its kind.
    fn translate_one(&mut self, c: &Change, out: &mut Vec<StoreOp>) {
        match &c.op {
            Op::CreateUser { user } => self.create_user(c, user, out),
            Op::UpdateUser { username, user, .. } => self.update_user(c, username, user, out),
            Op::DeleteUser { username } => self.delete_user(c, username, out),
            Op::ResetPassword {
                username,
                secret,
                reset,
                fingerprint,
                ..
            } => self.reset_password(c, username, secret, *reset, &fingerprint.0, out),
            Op::GeneratePassword {
                username,
                rotation,
                secret,
                ..
            } => self.generate_password(c, username, *rotation, secret, out),
            Op::CompletePassword {
                username,
                password_id,
            } => self.complete_password(c, username, password_id, out),
            Op::DiscardPassword {
                username,
                password_id,
            } => self.discard_password(c, username, password_id, out),
            Op::IssueInvitation { .. } => self.issue_invitation(c, out),
            Op::CompleteInvitation {
                username,
                invitation_id,
            } => self.complete_invitation(c, username, invitation_id, out),
            Op::DiscardInvitation {
                username,
                invitation_id,
            } => self.discard_invitation(c, username, invitation_id, out),
            Op::Bind {
                username,
                role,
                scope,
            }
            | Op::UpdateBinding {
                username,
                role,
                scope,
                ..
            } => self.upsert_binding(c, username, *role, scope, out),
            Op::Unbind {
                username,
                role,
                scope,
            } => self.unbind(c, username, *role, scope, out),
            Op::IssueToken { .. } => self.issue_token(c, out),
            Op::CompleteToken { key_id, .. } => self.complete_token(c, key_id, out),
            Op::DiscardToken { key_id, .. } => self.discard_token(c, key_id, out),
            Op::UpdateToken { key_id, fields, .. } => self.update_token(c, key_id, fields, out),
            Op::RevokeToken { key_id, reason, .. } => self.revoke_token(c, key_id, reason, out),
            Op::ExpireToken { key_id, .. } => {
                out.push(self.audit(c, "token.expire", None, Some(json!({"keyId": key_id}))));
            }
            Op::DeleteToken { key_ids, .. } => self.delete_token(c, key_ids, out),
            Op::DecideRequest { .. } => self.decide_request(c, out),
            Op::SetStatus { .. } | Op::DeleteStatus => {}
        }
    }
}

/// Users and their passwords.
impl Work<'_> {
    fn create_user(&mut self, c: &Change, user: &UserFields, out: &mut Vec<StoreOp>) {
        if let Some(old) = self.users.get(&user.username) {
            // Replacing a row another (gone) declaration left: start clean.
            out.push(self.audit(c, "user.replace", Some(user_json(old)), None));
            out.push(StoreOp::EndSessions(user.username.clone()));
        }
        let mut row = UserRow::new(&user.username, owner(c));
        row.display_name = user.display_name.clone();
        row.email = user.email.clone();
        row.state = user.state;
        out.push(self.audit(c, "user.create", None, Some(user_json(&row))));
        self.users.insert(user.username.clone(), row);
        self.dirty_users.insert(user.username.clone());
    }

    fn update_user(
        &mut self,
        c: &Change,
        username: &str,
        user: &UserFields,
        out: &mut Vec<StoreOp>,
    ) {
        let o = owner(c);
        let row = self.user(username);
        let old = user_json(row);
        let revoking =
            row.state != user.state && user.state == crate::resources::UserState::Revoked;
        row.display_name = user.display_name.clone();
        row.email = user.email.clone();
        row.state = user.state;
        row.owner = o;
        let new = user_json(row);
        if revoking {
            out.push(StoreOp::EndSessions(username.to_string()));
        }
        out.push(self.audit(c, "user.update", Some(old), Some(new)));
    }

    fn delete_user(&mut self, c: &Change, username: &str, out: &mut Vec<StoreOp>) {
        if let Some(old) = self.users.remove(username) {
            out.push(self.audit(c, "user.delete", Some(user_json(&old)), None));
        }
        self.dirty_users.remove(username);
        out.push(StoreOp::EndSessions(username.to_string()));
        out.push(StoreOp::DeleteUser(username.to_string()));
    }

    fn reset_password(
        &mut self,
        c: &Change,
        username: &str,
        secret: &SecretName,
        reset: bool,
        fingerprint: &HashValue,
        out: &mut Vec<StoreOp>,
    ) {
        let hash = self.hashes.get(username).cloned();
        let row = self.user(username);
        let chosen = row.password_chosen_at.take().is_some();
        row.password_hash = hash;
        row.invitation = None;
        row.password_source = Some(PasswordSource::Ref);
        row.password_fingerprint = Some(fingerprint.clone());
        row.password_id = None;
        row.pending_password = None;
        if reset {
            out.push(StoreOp::EndSessions(username.to_string()));
        }
        let action = if reset {
            "user.password.reset"
        } else {
            "user.password.set"
        };
        let mut new = json!({"secret": format!("{}/{}", secret.namespace, secret.name)});
        if chosen {
            // A declared reset wins over the password the person chose: say so in the record.
            new["replacesChosenPassword"] = json!(true);
        }
        out.push(self.audit(c, action, None, Some(new)));
    }

    fn generate_password(
        &mut self,
        c: &Change,
        username: &str,
        rotation: u32,
        secret: &SecretName,
        out: &mut Vec<StoreOp>,
    ) {
        let Some((id, pw)) = self.generated.get(username).cloned() else {
            return;
        };
        let hash = self
            .hashes
            .get(username)
            .cloned()
            .unwrap_or_else(|| HashValue::new(String::new()));
        self.user(username).pending_password = Some(PendingPassword {
            id: id.clone(),
            hash,
            rotation,
        });
        let new = json!({"passwordId": id, "rotation": rotation, "secret": format!("{}/{}", secret.namespace, secret.name), "state": "pending"});
        out.push(self.audit(c, "user.password.generate", None, Some(new)));
        let mut data = BTreeMap::new();
        data.insert(
            "username".to_string(),
            SecretValue::from_string(username.to_string()),
        );
        data.insert("password".to_string(), pw);
        self.deliveries.push(PendingDelivery {
            secret: outgoing(secret, data, &id, None, &c.object),
            target: Target::Password {
                username: username.to_string(),
                id,
            },
            object: c.object.clone(),
            source: c.source.clone(),
        });
    }

    fn complete_password(
        &mut self,
        c: &Change,
        username: &str,
        password_id: &str,
        out: &mut Vec<StoreOp>,
    ) {
        let had = self
            .users
            .get(username)
            .is_some_and(|u| u.password_hash.is_some());
        super::finish::complete_password(self.user(username));
        if had {
            out.push(StoreOp::EndSessions(username.to_string()));
        }
        out.push(self.audit(
            c,
            "user.password.complete",
            None,
            Some(json!({"passwordId": password_id})),
        ));
    }

    fn discard_password(
        &mut self,
        c: &Change,
        username: &str,
        password_id: &str,
        out: &mut Vec<StoreOp>,
    ) {
        self.user(username).pending_password = None;
        out.push(self.audit(
            c,
            "user.password.discard",
            Some(json!({"passwordId": password_id})),
            None,
        ));
    }
}

/// Invitations.
impl Work<'_> {
    /// Records a new pending invitation (voiding any earlier code at once) and queues its Secret.
    fn issue_invitation(&mut self, c: &Change, out: &mut Vec<StoreOp>) {
        // Seven fields: destructured here rather than passed one by one.
        let Op::IssueInvitation {
            username,
            rotation,
            secret,
            validity,
            discards,
            reset,
            ..
        } = &c.op
        else {
            return;
        };
        let Some(code) = self.invitations.remove(username) else {
            return;
        };
        let now = self.ctx.now;
        // Validation refuses a bad validity; should one slip through, the code expires at once (fail closed).
        let expires_at = Validity::parse_invitation(validity)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(now);
        if let Some(d) = discards {
            out.push(self.audit(
                c,
                "user.invitation.discard",
                Some(json!({"invitationId": d})),
                None,
            ));
        }
        let row = self.user(username);
        let voids = row
            .invitation
            .as_ref()
            .filter(|i| i.state == InvitationState::Issued)
            .map(|i| i.id.clone());
        row.invitation = Some(InvitationRow {
            id: code.key_id.clone(),
            code_hmac: code.secret_hmac.clone(),
            rotation: *rotation,
            issued_at: now,
            expires_at,
            state: InvitationState::Pending,
        });
        let new = json!({"invitationId": code.key_id, "rotation": rotation, "expiresAt": expires_at.to_string(), "secret": format!("{}/{}", secret.namespace, secret.name), "state": "pending", "reset": reset});
        out.push(self.audit(
            c,
            "user.invitation.issue",
            voids.map(|v| json!({"invitationId": v})),
            Some(new),
        ));
        if let Some(st) = self.statuses.get_mut(&c.object) {
            st.message = format!(
                "invitation {} delivered to Secret {}/{}; it expires at {expires_at}",
                code.key_id, secret.namespace, secret.name
            );
        }
        let mut data = BTreeMap::new();
        data.insert(
            "username".to_string(),
            SecretValue::from_string(username.to_string()),
        );
        data.insert("invitation".to_string(), code.token.clone());
        if let Some(base) = self.ctx.public_url {
            data.insert(
                "acceptUrl".to_string(),
                SecretValue::from_string(format!(
                    "{}{ACCEPT_PATH}#code={}",
                    base.trim_end_matches('/'),
                    code.token.expose_str().unwrap_or_default()
                )),
            );
        }
        self.deliveries.push(PendingDelivery {
            secret: outgoing(
                secret,
                data,
                &code.key_id,
                Some(expires_at.to_string()),
                &c.object,
            ),
            target: Target::Invitation {
                username: username.to_string(),
                id: code.key_id.clone(),
            },
            object: c.object.clone(),
            source: c.source.clone(),
        });
    }

    fn complete_invitation(
        &mut self,
        c: &Change,
        username: &str,
        id: &str,
        out: &mut Vec<StoreOp>,
    ) {
        let had = self
            .users
            .get(username)
            .is_some_and(|u| u.password_hash.is_some());
        super::finish::complete_invitation(self.user(username));
        if had {
            out.push(StoreOp::EndSessions(username.to_string()));
        }
        out.push(self.audit(
            c,
            "user.invitation.complete",
            None,
            Some(json!({"invitationId": id})),
        ));
    }

    fn discard_invitation(&mut self, c: &Change, username: &str, id: &str, out: &mut Vec<StoreOp>) {
        let row = self.user(username);
        if row.invitation.as_ref().is_some_and(|i| i.id == id) {
            row.invitation = None;
        }
        out.push(self.audit(
            c,
            "user.invitation.discard",
            Some(json!({"invitationId": id})),
            None,
        ));
    }
}

/// The path of the page a delivered acceptance URL opens (the code rides in the fragment,
/// which browsers never send to a server, so it stays out of every access log).
pub const ACCEPT_PATH: &str = "/v1/invitations/accept";

/// Bindings.
impl Work<'_> {
    fn upsert_binding(
        &mut self,
        c: &Change,
        username: &str,
        role: Role,
        scope: &Scope,
        out: &mut Vec<StoreOp>,
    ) {
        let row = BindingRow {
            username: username.to_string(),
            role,
            scope: scope.clone(),
            owner: owner(c),
        };
        let action = if matches!(c.op, Op::Bind { .. }) {
            "binding.create"
        } else {
            "binding.update"
        };
        out.push(self.audit(
            c,
            action,
            None,
            Some(json!({"user": username, "role": role, "scope": scope.to_string()})),
        ));
        out.push(StoreOp::UpsertBinding(row));
    }

    fn unbind(
        &mut self,
        c: &Change,
        username: &str,
        role: Role,
        scope: &Scope,
        out: &mut Vec<StoreOp>,
    ) {
        out.push(self.audit(
            c,
            "binding.delete",
            Some(json!({"user": username, "role": role, "scope": scope.to_string()})),
            None,
        ));
        out.push(StoreOp::DeleteBinding(c.object.clone()));
    }
}

/// API token keys.
impl Work<'_> {
    /// Records a new pending key (replacing an undelivered one) and queues its Secret.
    fn issue_token(&mut self, c: &Change, out: &mut Vec<StoreOp>) {
        // Five fields: destructured here rather than passed one by one.
        let Op::IssueToken {
            token,
            fields,
            rotation,
            secret,
            discards,
        } = &c.op
        else {
            return;
        };
        let now = self.ctx.now;
        if let Some(d) = discards {
            // Never delivered (its Secret does not hold it): dropped, with a trace.
            self.keys.remove(d);
            out.push(StoreOp::DeleteTokenKey(d.clone()));
            out.push(self.audit(c, "token.discard", Some(json!({"keyId": d})), None));
        }
        let Some(nk) = self.new_keys.remove(&c.object) else {
            return;
        };
        let row = TokenKeyRow {
            key_id: nk.key_id.clone(),
            token_name: token.clone(),
            namespace: c.object.namespace.clone(),
            secret_hmac: nk.secret_hmac.clone(),
            role: fields.role,
            scope: fields.scope.clone(),
            owner_user: fields.owner.clone(),
            issued_at: now,
            expires_at: self.expiry(now, fields),
            revoked_at: None,
            revoked_reason: None,
            rotation: *rotation,
            state: KeyState::Pending,
            secret_name: secret.name.clone(),
            owner: owner(c),
        };
        out.push(self.audit(c, "token.issue", None, Some(key_json(&row))));
        out.push(StoreOp::UpsertTokenKey(Box::new(row.clone())));
        if let Some(st) = self.statuses.get_mut(&c.object) {
            st.extra.insert("keyId".into(), row.key_id.clone());
            st.extra.insert("issuedAt".into(), now.to_string());
            match row.expires_at {
                Some(e) => st.extra.insert("expiresAt".into(), e.to_string()),
                None => st.extra.remove("expiresAt"),
            };
            st.message = format!("key {} delivered to Secret {}", row.key_id, secret.name);
        }
        let mut data = BTreeMap::new();
        data.insert("apiKey".to_string(), nk.secret.clone());
        data.insert("password".to_string(), nk.secret.clone());
        data.insert("token".to_string(), nk.token.clone());
        let exp = row.expires_at.map(|e| e.to_string());
        self.deliveries.push(PendingDelivery {
            secret: outgoing(secret, data, &row.key_id, exp, &c.object),
            target: Target::Token {
                key_id: row.key_id.clone(),
            },
            object: c.object.clone(),
            source: c.source.clone(),
        });
        self.keys.insert(row.key_id.clone(), row);
    }

    fn complete_token(&mut self, c: &Change, key_id: &str, out: &mut Vec<StoreOp>) {
        if let Some(k) = self.keys.get_mut(key_id) {
            k.state = KeyState::Issued;
            let (op, new) = (StoreOp::UpsertTokenKey(Box::new(k.clone())), key_json(k));
            out.push(op);
            out.push(self.audit(c, "token.complete", None, Some(new)));
        }
    }

    fn discard_token(&mut self, c: &Change, key_id: &str, out: &mut Vec<StoreOp>) {
        self.keys.remove(key_id);
        out.push(StoreOp::DeleteTokenKey(key_id.to_string()));
        out.push(self.audit(c, "token.discard", Some(json!({"keyId": key_id})), None));
    }

    fn update_token(
        &mut self,
        c: &Change,
        key_id: &str,
        fields: &TokenFields,
        out: &mut Vec<StoreOp>,
    ) {
        let Some(mut k) = self.keys.get(key_id).cloned() else {
            return;
        };
        let old = key_json(&k);
        k.role = fields.role;
        k.scope = fields.scope.clone();
        k.owner_user = fields.owner.clone();
        k.expires_at = self.expiry(k.issued_at, fields);
        out.push(self.audit(c, "token.update", Some(old), Some(key_json(&k))));
        out.push(StoreOp::UpsertTokenKey(Box::new(k.clone())));
        self.keys.insert(key_id.to_string(), k);
    }

    fn revoke_token(&mut self, c: &Change, key_id: &str, reason: &str, out: &mut Vec<StoreOp>) {
        let now = self.ctx.now;
        if let Some(k) = self.keys.get_mut(key_id) {
            let old = key_json(k);
            k.revoked_at = Some(now);
            k.revoked_reason = Some(reason.to_string());
            let (op, new) = (StoreOp::UpsertTokenKey(Box::new(k.clone())), key_json(k));
            out.push(op);
            out.push(self.audit(c, "token.revoke", Some(old), Some(new)));
        }
    }

    fn delete_token(&mut self, c: &Change, key_ids: &[String], out: &mut Vec<StoreOp>) {
        for id in key_ids {
            if let Some(k) = self.keys.remove(id) {
                out.push(self.audit(c, "token.delete", Some(key_json(&k)), None));
                self.retired
                    .push((k.namespace.clone(), k.secret_name.clone(), k.key_id.clone()));
            }
            out.push(StoreOp::DeleteTokenKey(id.clone()));
        }
    }
}

/// Model stage requests.
impl Work<'_> {
    /// Records a decided request and, when applied, the model's new stage.
    fn decide_request(&mut self, c: &Change, out: &mut Vec<StoreOp>) {
        // Eight fields: destructured here rather than passed one by one.
        let Op::DecideRequest {
            model,
            scope,
            from,
            to,
            requested_by,
            phase,
            message,
            new_owner,
        } = &c.op
        else {
            return;
        };
        let rec = DecidedRequest {
            namespace: c.object.namespace.clone(),
            name: c.object.name.clone(),
            model: model.clone(),
            scope: scope.clone(),
            from: *from,
            to: *to,
            requested_by: requested_by.clone(),
            phase: *phase,
            message: message.clone(),
            decided_at: self.ctx.now,
            source: c.source.clone(),
        };
        out.push(self.audit(
            c,
            "request.decide",
            None,
            Some(serde_json::to_value(&rec).unwrap_or(Value::Null)),
        ));
        out.push(StoreOp::InsertRequest(Box::new(rec)));
        if *phase == RequestPhase::Applied {
            let id = (scope.clone(), model.clone());
            let old = self.models.get(&id).cloned();
            let m = ModelRow {
                name: model.clone(),
                scope: scope.clone(),
                owner: old
                    .as_ref()
                    .and_then(|m| m.owner.clone())
                    .or(new_owner.clone()),
                stage: *to,
            };
            out.push(self.audit(c, "model.stage", old.map(|m| json!(m)), Some(json!(m))));
            out.push(StoreOp::UpsertModel(m.clone()));
            self.models.insert(id, m);
        }
    }
}

pub(super) fn outgoing(
    s: &SecretName,
    data: BTreeMap<String, SecretValue>,
    key_id: &str,
    expires_at: Option<String>,
    owner: &ObjectKey,
) -> OutgoingSecret {
    OutgoingSecret {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        data,
        key_id: key_id.to_string(),
        expires_at,
        owner: owner.clone(),
    }
}
