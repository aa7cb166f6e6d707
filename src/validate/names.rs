//! Names where they enter, for every front end: each declaration's
//! `metadata.namespace` (a DNS label) and `metadata.name` (a DNS subdomain),
//! the Secret names derived from them, and usernames.
//!
//! In directory mode a namespace and a Secret name become a directory and a
//! file name, so a name that is not a Kubernetes name must never reach the
//! plan: it is an error here, on the object, before anything is written.

use super::rules::Ctx;
use crate::resources::names::max_name_with_suffix;
use crate::resources::names::{self, NameError};
use crate::resources::User;
use crate::snapshot::{Declared, Reason, Severity};
use kube::{Resource, ResourceExt};

impl Ctx<'_> {
    /// `InvalidName` for bad namespaces, names and derived Secret names; `InvalidUsername`
    /// for a User whose login name could never be typed.
    pub(super) fn names(&mut self) {
        let snap = self.snap;
        for d in &snap.users {
            let suffix = match (
                &d.object.spec.invitation,
                &d.object.spec.password_secret_ref,
            ) {
                (Some(_), _) => Some(names::INVITATION_SECRET_SUFFIX),
                (None, Some(_)) => None,
                (None, None) => Some(names::PASSWORD_SECRET_SUFFIX),
            };
            self.object_name(d, suffix);
            self.user_name(d);
        }
        for d in &snap.bindings {
            self.object_name(d, None);
        }
        for d in &snap.tokens {
            let default = d.object.spec.secret_name.is_none();
            self.object_name(d, default.then_some(names::TOKEN_SECRET_SUFFIX));
        }
        for d in &snap.requests {
            self.object_name(d, None);
        }
    }

    /// Checks namespace and name; with `suffix`, also that `<name><suffix>` is a valid Secret name.
    fn object_name<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        suffix: Option<&str>,
    ) {
        let namespace = d.object.namespace().unwrap_or_default();
        if let Err(e) = names::dns_label(&namespace) {
            self.push(
                d,
                "metadata.namespace",
                Reason::InvalidName,
                Severity::Error,
                format!("namespace {namespace:?} {e}"),
            );
        }
        let name = d.object.name_any();
        if let Err(e) = names::dns_subdomain(&name) {
            let message = match e {
                NameError::Empty => "metadata.name is required".to_string(),
                e => format!("name {name:?} {e}"),
            };
            self.push(
                d,
                "metadata.name",
                Reason::InvalidName,
                Severity::Error,
                message,
            );
            return;
        }
        if let Some(suffix) = suffix {
            let max = max_name_with_suffix(suffix);
            if name.len() > max {
                let (what, explicit) = match K::kind(&()).as_ref() {
                    "User" if suffix == names::INVITATION_SECRET_SUFFIX => {
                        ("its invitation", "no spec.invitation")
                    }
                    "User" => ("its generated password", "spec.passwordSecretRef"),
                    _ => ("its key", "spec.secretName"),
                };
                self.push(
                    d,
                    "metadata.name",
                    Reason::InvalidName,
                    Severity::Error,
                    format!(
                        "name is {} characters, at most {max} allowed: {what} goes to Secret <name>{suffix}, which must be at most {} characters (or set {explicit})",
                        name.len(),
                        names::DNS_SUBDOMAIN_MAX
                    ),
                );
            }
        }
    }

    /// A User's explicit login name must be a username (a default one is its metadata.name,
    /// a DNS subdomain and so always a username).
    fn user_name(&mut self, d: &Declared<User>) {
        let Some(username) = &d.object.spec.username else {
            return;
        };
        if let Err(e) = names::username(username) {
            self.push(
                d,
                "spec.username",
                Reason::InvalidUsername,
                Severity::Error,
                format!("username {e}"),
            );
        }
    }
}
