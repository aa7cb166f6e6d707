//! The plan's vocabulary: an ordered list of changes, each naming the declaration it comes from.
//!
//! Secret values ride along only where apply needs them (a referenced
//! password) and are never serialized or printed: the JSON and text of a plan
//! hold no secret and no hash.

use crate::policy::{FromStage, Role, Scope, Stage};
use crate::resources::{RequestPhase, UserState};
use crate::secrets::{HashValue, SecretValue};
use crate::snapshot::ObjectKey;
use crate::store::ObjectStatus;
use serde::Serialize;

/// What `plan` decided: the changes, and the expected outcome of every declared object.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    /// Ordered changes; empty when the store already matches.
    pub changes: Vec<Change>,
    /// Expected status of every declared object once the changes are applied.
    pub objects: Vec<ObjectStatus>,
    /// Store revision the plan was made from: apply refuses it if the store moved on.
    #[serde(skip)]
    pub base_revision: Option<i64>,
}

impl Plan {
    /// True when applying would write nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Changes other than status updates (what the store's data would gain or lose).
    pub fn data_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !c.op.is_status())
    }
}

/// One change, attributed to its declaration.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// The declaration it comes from (or the one that owned a pruned row).
    pub object: ObjectKey,
    /// `file:line` or `cluster`.
    pub source: String,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
}

/// The user fields a declaration controls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFields {
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Active or Revoked.
    pub state: UserState,
}

/// The fields of a token key a declaration controls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenFields {
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// Accountable username.
    pub owner: Option<String>,
    /// `spec.validity` as written.
    pub validity: String,
}

/// A field's old and new value, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Field name.
    pub field: String,
    /// Value before (`-` when unset).
    pub old: String,
    /// Value after.
    pub new: String,
}

/// A Secret by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SecretName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A value apply needs but no rendering may show (Debug and Serialize omit it).
#[derive(Clone, Debug)]
pub struct Hidden<T>(pub T);

impl<T> Serialize for Hidden<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<omitted>")
    }
}

/// The operations of a plan.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Add a user.
    CreateUser {
        /// Its fields.
        user: UserFields,
    },
    /// Change a user's fields (revoking ends its sessions).
    #[serde(rename_all = "camelCase")]
    UpdateUser {
        /// Username.
        username: String,
        /// What changes.
        changes: Vec<FieldChange>,
        /// The fields after.
        user: UserFields,
    },
    /// Remove a user whose declaration is gone: ends its sessions.
    DeleteUser {
        /// Username.
        username: String,
    },
    /// Set the password from `passwordSecretRef` (first set or reset).
    #[serde(rename_all = "camelCase")]
    ResetPassword {
        /// Username.
        username: String,
        /// The referenced Secret.
        secret: SecretName,
        /// True when the user had a password before (a reset ends sessions).
        reset: bool,
        /// True when the password it replaces is one the person chose (a declared reset wins).
        chosen: bool,
        /// The value (never serialized).
        #[serde(skip)]
        value: Hidden<SecretValue>,
        /// Its fingerprint (never serialized).
        #[serde(skip)]
        fingerprint: Hidden<HashValue>,
    },
    /// Generate a random password and deliver it once.
    #[serde(rename_all = "camelCase")]
    GeneratePassword {
        /// Username.
        username: String,
        /// `spec.passwordRotation` it is for.
        rotation: u32,
        /// Where it is delivered.
        secret: SecretName,
        /// Id of a pending, undelivered password it replaces.
        discards: Option<String>,
        /// True when it replaces a password in force (a declared reset: sessions end on delivery).
        reset: bool,
        /// True when the password it replaces is one the person chose.
        chosen: bool,
    },
    /// Issue a one-time invitation code and deliver it once; any earlier code is void at once.
    #[serde(rename_all = "camelCase")]
    IssueInvitation {
        /// Username.
        username: String,
        /// `spec.passwordRotation` it is for.
        rotation: u32,
        /// Where it is delivered.
        secret: SecretName,
        /// `spec.invitation.validity` (or the default), counted from issue.
        validity: String,
        /// Id of a pending, undelivered invitation it replaces.
        discards: Option<String>,
        /// True when it replaces a password in force (a declared reset: on delivery the
        /// password stops working and sessions end).
        reset: bool,
        /// True when the password it replaces is one the person chose.
        chosen: bool,
    },
    /// A pending invitation was delivered before a crash: make it acceptable.
    #[serde(rename_all = "camelCase")]
    CompleteInvitation {
        /// Username.
        username: String,
        /// Id of the delivered invitation.
        invitation_id: String,
    },
    /// Forget a pending invitation that was never delivered.
    #[serde(rename_all = "camelCase")]
    DiscardInvitation {
        /// Username.
        username: String,
        /// Id of the pending invitation.
        invitation_id: String,
    },
    /// A pending generated password was delivered before a crash: make it current.
    #[serde(rename_all = "camelCase")]
    CompletePassword {
        /// Username.
        username: String,
        /// Id of the delivered password.
        password_id: String,
    },
    /// Forget a pending generated password that was never delivered.
    #[serde(rename_all = "camelCase")]
    DiscardPassword {
        /// Username.
        username: String,
        /// Id of the pending password.
        password_id: String,
    },
    /// Add a binding.
    Bind {
        /// Username.
        username: String,
        /// Role.
        role: Role,
        /// Scope.
        scope: Scope,
    },
    /// Change a binding.
    UpdateBinding {
        /// Username.
        username: String,
        /// Role.
        role: Role,
        /// Scope.
        scope: Scope,
        /// What changes.
        changes: Vec<FieldChange>,
    },
    /// Remove a binding whose declaration is gone.
    Unbind {
        /// Username.
        username: String,
        /// Role.
        role: Role,
        /// Scope.
        scope: Scope,
    },
    /// Generate a token key and deliver it once.
    IssueToken {
        /// Token name.
        token: String,
        /// Its fields.
        fields: TokenFields,
        /// `spec.rotation` it is for.
        rotation: u32,
        /// Where it is delivered.
        secret: SecretName,
        /// Pending undelivered key it replaces.
        discards: Option<String>,
    },
    /// A pending key was delivered before a crash: mark it issued.
    #[serde(rename_all = "camelCase")]
    CompleteToken {
        /// Token name.
        token: String,
        /// Key id.
        key_id: String,
    },
    /// Forget a pending key that was never delivered.
    #[serde(rename_all = "camelCase")]
    DiscardToken {
        /// Token name.
        token: String,
        /// Key id.
        key_id: String,
    },
    /// Change role, scope, owner or expiry of the current key.
    #[serde(rename_all = "camelCase")]
    UpdateToken {
        /// Token name.
        token: String,
        /// Key id.
        key_id: String,
        /// What changes.
        changes: Vec<FieldChange>,
        /// The fields after.
        fields: TokenFields,
    },
    /// Revoke a key (`Revoked`, `Rotated`, `OwnerRevoked`, `OwnerDeleted`).
    #[serde(rename_all = "camelCase")]
    RevokeToken {
        /// Token name.
        token: String,
        /// Key id.
        key_id: String,
        /// Why.
        reason: String,
    },
    /// Record that a key passed its expiry.
    #[serde(rename_all = "camelCase")]
    ExpireToken {
        /// Token name.
        token: String,
        /// Key id.
        key_id: String,
    },
    /// Remove the keys of a token whose declaration is gone.
    #[serde(rename_all = "camelCase")]
    DeleteToken {
        /// Token name.
        token: String,
        /// Key ids removed.
        key_ids: Vec<String>,
    },
    /// Record a stage request's decision (final) and move the model when applied.
    #[serde(rename_all = "camelCase")]
    DecideRequest {
        /// Model name.
        model: String,
        /// Model scope.
        scope: Scope,
        /// Expected stage.
        from: FromStage,
        /// Target stage.
        to: Stage,
        /// Requester.
        requested_by: String,
        /// Applied, Denied or Conflict.
        phase: RequestPhase,
        /// Why.
        message: String,
        /// New model owner (first deploy).
        new_owner: Option<String>,
    },
    /// Store a new status for an object.
    SetStatus {
        /// Status before (reason), for display.
        from: Option<String>,
        /// The new status.
        status: ObjectStatus,
    },
    /// Forget the status of an object no longer declared.
    DeleteStatus,
}

impl Op {
    /// True for status bookkeeping (not a change of identity data).
    pub fn is_status(&self) -> bool {
        matches!(self, Op::SetStatus { .. } | Op::DeleteStatus)
    }

    /// The binding a `bind`, `updateBinding` or `unbind` writes: username, role, scope.
    pub fn binding(&self) -> Option<(&str, Role, &Scope)> {
        match self {
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
            }
            | Op::Unbind {
                username,
                role,
                scope,
            } => Some((username, *role, scope)),
            _ => None,
        }
    }

    /// Short name, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateUser { .. } => "createUser",
            Op::UpdateUser { .. } => "updateUser",
            Op::DeleteUser { .. } => "deleteUser",
            Op::ResetPassword { .. } => "resetPassword",
            Op::GeneratePassword { .. } => "generatePassword",
            Op::CompletePassword { .. } => "completePassword",
            Op::DiscardPassword { .. } => "discardPassword",
            Op::IssueInvitation { .. } => "issueInvitation",
            Op::CompleteInvitation { .. } => "completeInvitation",
            Op::DiscardInvitation { .. } => "discardInvitation",
            Op::Bind { .. } => "bind",
            Op::UpdateBinding { .. } => "updateBinding",
            Op::Unbind { .. } => "unbind",
            Op::IssueToken { .. } => "issueToken",
            Op::CompleteToken { .. } => "completeToken",
            Op::DiscardToken { .. } => "discardToken",
            Op::UpdateToken { .. } => "updateToken",
            Op::RevokeToken { .. } => "revokeToken",
            Op::ExpireToken { .. } => "expireToken",
            Op::DeleteToken { .. } => "deleteToken",
            Op::DecideRequest { .. } => "decideRequest",
            Op::SetStatus { .. } => "setStatus",
            Op::DeleteStatus => "deleteStatus",
        }
    }
}
