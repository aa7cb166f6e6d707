//! Renderings of a plan: text for terminals, Markdown for pull-request comments, JSON for tools.
//!
//! Shared by `stagegate plan` and `stagegate diff`. Nothing rendered here can
//! hold a secret: secret-bearing fields of [`Op`] are skipped by Serialize and
//! never described.

use super::change::{Change, FieldChange, Op, Plan, SecretName};
use crate::render::{details, escape_inline, markdown_table, plural, Summary};

fn fields(ch: &[FieldChange]) -> String {
    ch.iter()
        .map(|c| format!("{} {} → {}", c.field, c.old, c.new))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The plan line of a one-time secret issued for a user (a generated password or an
/// invitation code): `what` delivered to `secret`, the undelivered one it replaces, and what
/// a declared reset does to the password in force.
fn once_delivered(
    reset: bool,
    what: &str,
    secret: &SecretName,
    discards: Option<&str>,
    chosen: bool,
) -> String {
    let replaces = discards
        .map(|d| format!(" (replaces undelivered {d})"))
        .unwrap_or_default();
    format!(
        "{}{what} to Secret {}/{}{replaces}{}",
        if reset { "declared reset: " } else { "" },
        secret.namespace,
        secret.name,
        reset_effect(reset, chosen)
    )
}

/// What a declared reset does to the password in force, for a plan line.
fn reset_effect(reset: bool, chosen: bool) -> &'static str {
    match (reset, chosen) {
        (true, true) => ", replacing the password the user chose and ending its sessions",
        (true, false) => ", ending its sessions",
        (false, _) => "",
    }
}

/// What the markers of [`marker`] mean, printed under a text plan.
pub const MARKERS: &str =
    "+ adds, ~ changes, - removes, ! decides a stage request (once, for good), · updates a status";

/// A one-character marker: `+` adds, `~` changes, `-` removes, `!` decides, `·` status.
pub fn marker(op: &Op) -> char {
    match op {
        Op::CreateUser { .. }
        | Op::Bind { .. }
        | Op::IssueToken { .. }
        | Op::GeneratePassword { .. }
        | Op::IssueInvitation { .. } => '+',
        Op::DeleteUser { .. }
        | Op::Unbind { .. }
        | Op::RevokeToken { .. }
        | Op::DiscardToken { .. }
        | Op::DiscardPassword { .. }
        | Op::DiscardInvitation { .. }
        | Op::DeleteToken { .. }
        | Op::DeleteStatus => '-',
        Op::DecideRequest { .. } => '!',
        Op::SetStatus { .. } => '·',
        _ => '~',
    }
}

/// One line describing what a change does.
pub fn describe(op: &Op) -> String {
    match op {
        Op::CreateUser { user } => format!("create user {} ({:?})", user.username, user.state),
        Op::UpdateUser {
            username,
            changes,
            user,
        } => format!(
            "update user {username}: {}{}",
            fields(changes),
            if user.state == crate::resources::UserState::Revoked
                && changes.iter().any(|c| c.field == "state")
            {
                ", ending its sessions and revoking tokens it owns"
            } else {
                ""
            }
        ),
        Op::DeleteUser { username } => {
            format!("delete user {username}, end its sessions, revoke tokens it owns")
        }
        Op::ResetPassword {
            username,
            secret,
            reset,
            chosen,
            ..
        } => format!(
            "{} password of {username} from Secret {}/{}{}",
            if *reset { "declared reset of the" } else { "set" },
            secret.namespace,
            secret.name,
            reset_effect(*reset, *chosen)
        ),
        Op::GeneratePassword {
            username,
            rotation,
            secret,
            discards,
            reset,
            chosen,
        } => once_delivered(
            *reset,
            &format!("generate password #{rotation} for {username}, deliver once"),
            secret,
            discards.as_deref(),
            *chosen,
        ),
        Op::IssueInvitation {
            username,
            rotation,
            secret,
            validity,
            discards,
            reset,
            chosen,
        } => once_delivered(
            *reset,
            &format!(
                "invite {username} (invitation #{rotation}, valid {validity}), deliver the code once"
            ),
            secret,
            discards.as_deref(),
            *chosen,
        ),
        Op::CompleteInvitation {
            username,
            invitation_id,
        } => format!("complete delivered invitation {invitation_id} of {username}"),
        Op::DiscardInvitation {
            username,
            invitation_id,
        } => format!("discard undelivered invitation {invitation_id} of {username}"),
        Op::CompletePassword {
            username,
            password_id,
        } => format!("complete delivered password {password_id} of {username}"),
        Op::DiscardPassword {
            username,
            password_id,
        } => format!("discard undelivered password {password_id} of {username}"),
        Op::Bind {
            username,
            role,
            scope,
        } => format!("bind {role} at {scope} to {username}"),
        Op::UpdateBinding {
            username, changes, ..
        } => format!("update binding of {username}: {}", fields(changes)),
        Op::Unbind {
            username,
            role,
            scope,
        } => format!("unbind {role} at {scope} from {username}"),
        Op::IssueToken {
            token,
            fields,
            rotation,
            secret,
            discards,
        } => format!(
            "issue key #{rotation} for token {token} ({} at {}, valid {}), deliver once to Secret {}/{}{}",
            fields.role,
            fields.scope,
            fields.validity,
            secret.namespace,
            secret.name,
            discards
                .as_ref()
                .map(|d| format!(" (replaces undelivered {d})"))
                .unwrap_or_default()
        ),
        Op::CompleteToken { token, key_id } => {
            format!("complete delivered key {key_id} of token {token}")
        }
        Op::DiscardToken { token, key_id } => {
            format!("discard undelivered key {key_id} of token {token}")
        }
        Op::UpdateToken {
            token,
            key_id,
            changes,
            ..
        } => format!("update token {token} key {key_id}: {}", fields(changes)),
        Op::RevokeToken {
            token,
            key_id,
            reason,
        } => format!("revoke key {key_id} of token {token} ({reason})"),
        Op::ExpireToken { token, key_id } => format!("key {key_id} of token {token} expired"),
        Op::DeleteToken { token, key_ids } => {
            format!("delete token {token} (keys {})", key_ids.join(", "))
        }
        Op::DecideRequest {
            model,
            scope,
            from,
            to,
            requested_by,
            phase,
            message,
            ..
        } => format!(
            "decide {model} at {scope} {from} → {to} by {requested_by}: {phase:?} ({message})"
        ),
        Op::SetStatus { from, status } => {
            let not_ready = if status.ready { "" } else { " (not ready)" };
            match from.as_deref() {
                Some(f) if f == status.reason => {
                    format!("status {f}{not_ready}, updated: {}", status.message)
                }
                f => format!("status {} → {}{not_ready}", f.unwrap_or("-"), status.reason),
            }
        }
        Op::DeleteStatus => "forget status".to_string(),
    }
}

fn summary(plan: &Plan) -> String {
    let data = plan.data_changes().count();
    let statuses = plan.changes.len() - data;
    let not_ready = plan.objects.iter().filter(|o| !o.ready).count();
    Summary::new()
        .count(
            data,
            "change to the identity store",
            "changes to the identity store",
        )
        .count(statuses, "status update", "status updates")
        .part(plural(plan.objects.len(), "object", "objects"))
        .count(not_ready, "not ready", "not ready")
        .finish("no changes")
}

impl Plan {
    /// Plain text, one change per line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            out.push_str("No changes: the identity store matches the declarations.\n");
        }
        for c in &self.changes {
            out.push_str(&line(c));
            out.push('\n');
        }
        if !self.changes.is_empty() {
            out.push_str(&format!("Markers: {MARKERS}\n"));
        }
        out.push_str(&format!("Plan: {}\n", summary(self)));
        out
    }

    /// Markdown for a pull-request comment: data changes in a table, status updates folded.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from("### stagegate plan\n\n");
        out.push_str(&format!("{}\n\n", escape_inline(&summary(self))));
        if self.changes.is_empty() {
            out.push_str("No changes: the identity store matches the declarations.\n");
            return out;
        }
        let rows = |status: bool| -> Vec<Vec<String>> {
            self.changes
                .iter()
                .filter(|c| c.op.is_status() == status)
                .map(|c| {
                    vec![
                        marker(&c.op).to_string(),
                        c.object.to_string(),
                        c.source.clone(),
                        describe(&c.op),
                    ]
                })
                .collect()
        };
        let headers = ["", "object", "source", "change"];
        let data = rows(false);
        if !data.is_empty() {
            out.push_str(&markdown_table(&headers, &data));
        }
        let statuses = rows(true);
        if !statuses.is_empty() {
            out.push('\n');
            out.push_str(&details(
                &plural(statuses.len(), "status update", "status updates"),
                &markdown_table(&headers, &statuses),
            ));
        }
        out
    }

    /// Pretty JSON; byte-identical for identical inputs.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }
}

fn line(c: &Change) -> String {
    format!(
        "{} {} ({}): {}",
        marker(&c.op),
        c.object,
        c.source,
        describe(&c.op)
    )
}
