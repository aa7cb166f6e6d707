//! One owner per Secret: every Secret stagegate writes or reads belongs to one
//! declaration in its namespace.
//!
//! A User without `passwordSecretRef` writes `<name>-password`; an ApiToken
//! writes `spec.secretName` (default `<name>-token`); a User with
//! `passwordSecretRef` reads one key of the Secret it names. A writer shares
//! its Secret with nobody: a token delivered over a user's generated password
//! would lock that user out, two tokens in one Secret leave a key nobody holds,
//! and a User reading another declaration's written Secret would log in with
//! someone else's password. Two Users may read *different keys* of one Secret
//! (a common way to hand out several passwords); two Users reading the *same
//! key* would share one credential between two identities, so that is a
//! conflict too.
//!
//! Claims are granted in order: the declaration that holds the Secret (the
//! store for plan and apply, the base branch for diff; see
//! `plan::with_store_holders`), then the oldest (creation time), then source
//! and key. A claim that conflicts with one granted before is refused on its
//! declaration with `SecretNameConflict`; the holder keeps the Secret and
//! nothing already delivered is touched.

use super::rules::diagnostic;
use crate::snapshot::{
    Declared, Diagnostic, ObjectKey, Reason, Severity, Snapshot, Source, BOOTSTRAP_SECRET,
};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// How a declaration uses a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretUse {
    /// stagegate writes it: a generated password or a token key.
    Writes,
    /// stagegate reads this key of it (`passwordSecretRef`).
    Reads(String),
}

/// One declaration's claim on a Secret of its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretClaim {
    /// The claiming declaration.
    pub key: ObjectKey,
    /// Where it is declared.
    pub source: Source,
    /// The field that names the Secret (or `metadata.name` for a derived name).
    pub field: &'static str,
    /// Namespace of the Secret (the declaration's).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Written or read.
    pub usage: SecretUse,
    /// Creation time, when the front end knows it.
    created: Option<jiff::Timestamp>,
}

impl SecretClaim {
    fn new<K: Resource<DynamicType = ()>>(
        d: &Declared<K>,
        field: &'static str,
        secret: String,
        usage: SecretUse,
    ) -> Self {
        SecretClaim {
            key: d.key(),
            source: d.source.clone(),
            field,
            namespace: d.object.namespace().unwrap_or_default(),
            secret,
            usage,
            created: d.object.meta().creation_timestamp.as_ref().map(|t| t.0),
        }
    }

    /// Whether `self` and `other` cannot both hold: the same Secret, written by either, or
    /// read at the same key by both.
    pub fn conflicts_with(&self, other: &SecretClaim) -> bool {
        self.key != other.key
            && self.namespace == other.namespace
            && self.secret == other.secret
            && match (&self.usage, &other.usage) {
                (SecretUse::Reads(a), SecretUse::Reads(b)) => a == b,
                _ => true,
            }
    }

    /// Whether `self` claims the same Secret the same way as `other` (ignoring where it is declared).
    pub fn same_as(&self, other: &SecretClaim) -> bool {
        self.key == other.key
            && self.namespace == other.namespace
            && self.secret == other.secret
            && self.usage == other.usage
    }

    /// What the claim does with the Secret, for messages.
    fn verb(&self) -> String {
        match (&self.usage, self.key.kind.as_str()) {
            (SecretUse::Writes, "User") if self.field == "spec.invitation" => {
                "delivers its invitation to".into()
            }
            (SecretUse::Writes, "User") => "writes its generated password to".into(),
            (SecretUse::Writes, _) => "delivers its key to".into(),
            (SecretUse::Reads(k), _) => format!("reads its password from key {k:?} of"),
        }
    }
}

/// Every Secret claim of the snapshot, in declaration order.
pub fn secret_claims(snap: &Snapshot) -> Vec<SecretClaim> {
    let mut out = Vec::new();
    for d in &snap.users {
        out.push(
            match (
                &d.object.spec.invitation,
                &d.object.spec.password_secret_ref,
            ) {
                (None, Some(r)) => SecretClaim::new(
                    d,
                    "spec.passwordSecretRef.name",
                    r.name.clone(),
                    SecretUse::Reads(r.key.clone()),
                ),
                (Some(_), _) => SecretClaim::new(
                    d,
                    "spec.invitation",
                    d.object.invitation_secret_name(),
                    SecretUse::Writes,
                ),
                (None, None) => SecretClaim::new(
                    d,
                    "metadata.name",
                    d.object.password_secret_name(),
                    SecretUse::Writes,
                ),
            },
        );
    }
    for d in &snap.tokens {
        let field = if d.object.spec.secret_name.is_some() {
            "spec.secretName"
        } else {
            "metadata.name"
        };
        out.push(SecretClaim::new(
            d,
            field,
            d.object.secret_name(),
            SecretUse::Writes,
        ));
    }
    out
}

/// `SecretNameConflict` errors for `snap`: claims are granted holders first (`holds`), then
/// by creation time, source and key; each claim that conflicts with one granted before is
/// refused on its declaration, naming the holder.
pub fn secret_conflicts(snap: &Snapshot, holds: impl Fn(&SecretClaim) -> bool) -> Vec<Diagnostic> {
    let mut claims = secret_claims(snap);
    claims.sort_by_cached_key(|c| (!holds(c), c.created, c.source.clone(), c.key.clone()));
    // Granted claims by (namespace, Secret), in the order granted: only claims on the same
    // Secret can conflict, so each claim is checked against those alone, not every claim
    // granted before (15,000 claims made that 10^8 comparisons).
    let mut granted: BTreeMap<(&str, &str), Vec<&SecretClaim>> = BTreeMap::new();
    let mut out = Vec::new();
    for c in &claims {
        // The bootstrap administrator's Secret is written by the daemon in the controller's
        // namespace (unknown here): reserved in every namespace, never a declaration's.
        let message = if c.secret == BOOTSTRAP_SECRET {
            format!(
                "Secret {}/{BOOTSTRAP_SECRET} is reserved for the bootstrap administrator's password; this {} is refused (choose another Secret)",
                c.namespace, c.key.kind
            )
        } else if let Some(holder) = granted
            .get(&(c.namespace.as_str(), c.secret.as_str()))
            .and_then(|g| g.iter().find(|g| g.conflicts_with(c)))
        {
            format!(
                "Secret {}/{} is taken: {} ({}) {} it; a Secret has one declaring object, so this {} is refused (choose another Secret)",
                c.namespace,
                c.secret,
                holder.key,
                holder.source,
                holder.verb(),
                c.key.kind
            )
        } else {
            granted
                .entry((c.namespace.as_str(), c.secret.as_str()))
                .or_default()
                .push(c);
            continue;
        };
        out.push(diagnostic(
            snap,
            &c.key,
            &c.source,
            c.field,
            Reason::SecretNameConflict,
            Severity::Error,
            message,
        ));
    }
    out.sort();
    out
}
