//! The YAML to commit for the common changes the console shows but never makes:
//! change a role, revoke a user, reset a password, rotate a token, request a
//! stage move. Each snippet names the declaration's `file:line` when known.

use crate::policy::{Scope, Stage};
use crate::store::{BindingRow, Owner, PasswordSource, TokenKeyRow, UserRow};
use jiff::Timestamp;

const API_VERSION: &str = "apiVersion: stagegate.dev/v1alpha1";

/// A change to commit: what it does, where it goes, the YAML.
pub struct Change {
    /// Short title, e.g. "Revoke ada".
    pub title: String,
    /// Where to commit it: the declaration's `file:line`, or a hint.
    pub place: String,
    /// The manifest (or the part of it to edit).
    pub yaml: String,
}

fn place(owner: Option<&Owner>) -> String {
    owner.map_or_else(
        || "a new file in the watched directory (or kubectl apply)".to_string(),
        |o| format!("edit {} ({})", o.source, o.key),
    )
}

fn metadata(owner: Option<&Owner>, fallback: &str) -> String {
    let (name, ns) = owner.map_or((fallback, "<namespace>"), |o| {
        (o.key.name.as_str(), o.key.namespace.as_str())
    });
    format!("metadata:\n  name: {name}\n  namespace: {ns}\n")
}

fn scope_yaml(scope: &Scope) -> String {
    match (&scope.customer, &scope.project) {
        (Some(c), Some(p)) => format!("  scope:\n    customer: {c}\n    project: {p}\n"),
        (Some(c), None) => format!("  scope:\n    customer: {c}\n"),
        _ => String::new(),
    }
}

/// Change the role of one binding (the new role is a placeholder to fill in).
pub fn change_role(b: &BindingRow) -> Change {
    Change {
        title: format!("Change {}'s {} role at {}", b.username, b.role, b.scope),
        place: place(b.owner.as_ref()),
        yaml: format!(
            "{API_VERSION}\nkind: AccessBinding\n{}spec:\n  user: {}\n  role: {}  # Admin, Manager, Analyst, Developer or Deployer\n{}",
            metadata(b.owner.as_ref(), &format!("{}-binding", b.username)),
            b.username,
            b.role,
            scope_yaml(&b.scope)
        ),
    }
}

/// A change of one spec field of an existing declaration (`fallback`: its name when unknown).
fn edit_spec(
    title: String,
    kind: &str,
    owner: Option<&Owner>,
    fallback: &str,
    field: &str,
) -> Change {
    Change {
        title,
        place: place(owner),
        yaml: format!(
            "{API_VERSION}\nkind: {kind}\n{}spec:\n  # keep the other fields as they are\n  {field}\n",
            metadata(owner, fallback)
        ),
    }
}

/// Revoke a user: its sessions and owned tokens stop working.
pub fn revoke_user(u: &UserRow) -> Change {
    edit_spec(
        format!("Revoke {}", u.username),
        "User",
        u.owner.as_ref(),
        &u.username,
        "state: Revoked",
    )
}

/// Reset a password: a new generated one, or a new value in the referenced Secret.
pub fn reset_password(u: &UserRow) -> Change {
    let title = format!("Reset {}'s password", u.username);
    if u.password_source != Some(PasswordSource::Ref) {
        return edit_spec(
            title,
            "User",
            u.owner.as_ref(),
            &u.username,
            &format!(
                "passwordRotation: {}  # a new password is generated and delivered once",
                u.password_rotation + 1
            ),
        );
    }
    Change {
        title,
        place: place(u.owner.as_ref()),
        yaml: format!(
            "# {} sets its password through spec.passwordSecretRef: write a new value there\nkubectl -n {} create secret generic <secret-named-in-passwordSecretRef> \\\n  --from-literal=password=<new password> --dry-run=client -o yaml | kubectl apply -f -\n",
            u.username,
            u.owner.as_ref().map_or("<namespace>", |o| o.key.namespace.as_str())
        ),
    }
}

/// Rotate a token: a new key is issued and delivered, the old one stops working.
pub fn rotate_token(k: &TokenKeyRow) -> Change {
    edit_spec(
        format!("Rotate {}", k.token_name),
        "ApiToken",
        k.owner.as_ref(),
        &k.token_name,
        &format!("rotation: {}", k.rotation + 1),
    )
}

/// Request a stage move for a model, as `who`.
pub fn stage_move(
    model: &str,
    scope: &Scope,
    from: Stage,
    to: Stage,
    who: &str,
    namespace: Option<&str>,
    now: Timestamp,
) -> Change {
    let name = format!("{model}-to-{}", to.as_str().to_lowercase());
    Change {
        title: format!("Move {model} from {from} to {to}"),
        place: "a new file next to the model's other stage requests".into(),
        yaml: format!(
            "{API_VERSION}\nkind: ModelStageRequest\nmetadata:\n  name: {name}\n  namespace: {}\n  annotations:\n    stagegate.dev/requested-at: \"{}\"\nspec:\n  model: {model}\n{}  from: {from}\n  to: {to}\n  requestedBy: {who}\n  reason: <why>\n",
            namespace.unwrap_or("<namespace>"),
            now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            scope_yaml(scope)
        ),
    }
}
