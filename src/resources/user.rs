//! The `User` kind: a person who logs in.

use super::common::{Condition, SecretKeyRef, MAX_ROTATION};
use super::names;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A person who can log in to the platform.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stagegate.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    status = "UserStatus",
    shortname = "sgu",
    category = "stagegate",
    doc = "A person who can log in to the model deployment platform.",
    printcolumn = r#"{"name":"Username","type":"string","jsonPath":".spec.username"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    /// Login name, unique in the identity store; defaults to metadata.name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = names::USERNAME_MAX),
        regex(pattern = names::USERNAME_PATTERN)
    )]
    pub username: Option<String>,
    /// Name shown in the platform's UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: Option<String>,
    /// Active (default) or Revoked: a revoked user cannot log in and its sessions and tokens stop working at once.
    #[serde(default)]
    pub state: UserState,
    /// Secret key holding a password set by an administrator; a change of its content is a password reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Without passwordSecretRef, increasing this number issues a new generated password (written once to Secret <name>-password), or for an invited user a new invitation; either replaces a password the user chose.
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_ROTATION))]
    pub password_rotation: u32,
    /// Instead of a password: a one-time invitation code, delivered once to Secret <name>-invitation; the person chooses their own password when accepting it. Increasing passwordRotation issues a new invitation (and ends the user's sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationSpec>,
}

/// How an invited user is invited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvitationSpec {
    /// How long the invitation code can be accepted, counted from issue: a duration such as 7d, 48h or 30m (default 7d; Never is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
}

impl InvitationSpec {
    /// Validity when `validity` is unset.
    pub const DEFAULT_VALIDITY: &'static str = "7d";

    /// The declared validity, or the default.
    pub fn validity(&self) -> &str {
        self.validity.as_deref().unwrap_or(Self::DEFAULT_VALIDITY)
    }
}

/// Whether a user may log in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UserState {
    /// May log in.
    #[default]
    Active,
    /// Cannot log in; sessions and owned tokens stop working.
    Revoked,
}

/// Lifecycle phase of a user as seen by the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UserPhase {
    /// Invitation not accepted yet, or never logged in.
    Invited,
    /// Has logged in.
    Active,
    /// Revoked.
    Revoked,
}

/// Observed state of a User.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and other conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Invited, Active or Revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<UserPhase>,
}

impl User {
    /// The login name: spec.username or metadata.name.
    pub fn username(&self) -> String {
        self.spec
            .username
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// The Secret a generated password is delivered to: `<name>-password`.
    pub fn password_secret_name(&self) -> String {
        names::password_secret_name(self.metadata.name.as_deref().unwrap_or_default())
    }

    /// The Secret an invitation is delivered to: `<name>-invitation`.
    pub fn invitation_secret_name(&self) -> String {
        names::invitation_secret_name(self.metadata.name.as_deref().unwrap_or_default())
    }

    /// The Secret stagegate writes for this user, if any: the invitation's, or the generated password's.
    pub fn written_secret_name(&self) -> Option<String> {
        match (&self.spec.invitation, &self.spec.password_secret_ref) {
            (Some(_), _) => Some(self.invitation_secret_name()),
            (None, Some(_)) => None,
            (None, None) => Some(self.password_secret_name()),
        }
    }
}
