//! Layer (b): the role policy and cross-object rules.

use crate::policy::{transition_possible, Role, Scope};
use crate::resources::names;
use crate::resources::{ApiToken, User, Validity, REQUESTED_AT};
use crate::snapshot::{Declared, ObjectKey, Snapshot, Source};
use crate::snapshot::{Diagnostic, Reason, Severity};
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};

/// Appends policy and cross-object diagnostics to `snap`, and drops duplicate declarations
/// (the first of each kind/namespace/name stays, both are reported invalid).
pub fn validate(snap: &mut Snapshot) {
    rules(snap, &Nowhere);
}

/// What the declarations *not* in a snapshot declare, as far as the cross-object
/// rules ask: a part of an organization (the directory daemon's changed files and
/// what they touch) is validated with the answers the rest would give.
///
/// `declares`, `names_token`, `claims_secret` and `requests_of` may answer `true`
/// when unsure (the part is then not validated alone); `claims_username` must be exact.
pub trait Elsewhere {
    /// Whether a declaration elsewhere has this kind/namespace/name.
    fn declares(&self, key: &ObjectKey) -> bool;
    /// Whether a User elsewhere claims this username.
    fn claims_username(&self, username: &str) -> bool;
    /// Whether an ApiToken elsewhere has this name.
    fn names_token(&self, name: &str) -> bool;
    /// Whether a declaration elsewhere writes or reads Secret `namespace/name`.
    fn claims_secret(&self, namespace: &str, name: &str) -> bool;
    /// Whether a stage request elsewhere names this model (requests of one model at one
    /// instant warn: that rule reads every request of the model).
    fn requests_of(&self, scope: &crate::policy::Scope, model: &str) -> bool;
}

/// The whole organization is in the snapshot: nothing elsewhere.
struct Nowhere;

impl Elsewhere for Nowhere {
    fn declares(&self, _: &ObjectKey) -> bool {
        false
    }
    fn claims_username(&self, _: &str) -> bool {
        false
    }
    fn names_token(&self, _: &str) -> bool {
        false
    }
    fn claims_secret(&self, _: &str, _: &str) -> bool {
        false
    }
    fn requests_of(&self, _: &crate::policy::Scope, _: &str) -> bool {
        false
    }
}

/// Validates `part`, a part of an organization whose other declarations `elsewhere`
/// describes, with the very rules [`validate`] runs, when every cross-object rule's
/// group lies within the part: no key, username, token name or Secret of the part is
/// declared elsewhere, and no model has a stage request both here and elsewhere. Then
/// the part's diagnostics are those `validate` gives its objects in the whole
/// organization (the one rule that reads across groups, a reference to a username,
/// asks `elsewhere`), and this returns true. Otherwise it returns false and leaves
/// `part` untouched: validate the whole organization instead.
pub fn validate_part(part: &mut Snapshot, elsewhere: &dyn Elsewhere) -> bool {
    let keys = part
        .users
        .iter()
        .map(Declared::key)
        .chain(part.bindings.iter().map(Declared::key))
        .chain(part.tokens.iter().map(Declared::key))
        .chain(part.requests.iter().map(Declared::key));
    let closed = !keys.into_iter().any(|k| elsewhere.declares(&k))
        && !part
            .users
            .iter()
            .any(|u| elsewhere.claims_username(&u.object.username()))
        && !part
            .tokens
            .iter()
            .any(|t| elsewhere.names_token(&t.object.name_any()))
        && !super::claims::secret_claims(part)
            .iter()
            .any(|c| elsewhere.claims_secret(&c.namespace, &c.secret))
        && !part.requests.iter().any(|r| {
            let spec = &r.object.spec;
            elsewhere.requests_of(&spec.scope(), &spec.model)
        });
    if closed {
        rules(part, elsewhere);
    }
    closed
}

/// Every rule of layer (b), on `snap`; usernames declared `elsewhere` count as known.
fn rules(snap: &mut Snapshot, elsewhere: &dyn Elsewhere) {
    let mut out = Vec::new();
    dedup(snap, &mut out);
    // First: the checks below may read each declaration's resolved access domain.
    super::domains::check(snap, &mut out);
    let snap_ref: &Snapshot = snap;
    let mut ctx = Ctx {
        snap: snap_ref,
        out: &mut out,
    };
    for d in &ctx.snap.bindings {
        ctx.scoped(d, d.object.spec.role, d.object.spec.scope.as_ref(), true);
    }
    for d in &ctx.snap.tokens {
        ctx.scoped(d, d.object.spec.role, d.object.spec.scope.as_ref(), true);
        if let Err(e) = Validity::parse(&d.object.spec.validity) {
            ctx.push(
                d,
                "spec.validity",
                Reason::InvalidDuration,
                Severity::Error,
                e,
            );
        }
    }
    for d in &ctx.snap.users {
        let Some(inv) = &d.object.spec.invitation else {
            continue;
        };
        if d.object.spec.password_secret_ref.is_some() {
            ctx.push(
                d,
                "spec.invitation",
                Reason::PasswordSourceConflict,
                Severity::Error,
                "spec.invitation and spec.passwordSecretRef both say where the password comes from: an invited user chooses their own, so remove one".into(),
            );
        }
        if let Err(e) = Validity::parse_invitation(inv.validity()) {
            ctx.push(
                d,
                "spec.invitation.validity",
                Reason::InvalidDuration,
                Severity::Error,
                e,
            );
        }
    }
    for d in &ctx.snap.requests {
        ctx.scoped(d, Role::Admin, d.object.spec.scope.as_ref(), false);
        let s = &d.object.spec;
        if !transition_possible(s.from.stage(), s.to) {
            let why = if s.from.stage().is_none() {
                "a first deploy (from None) must go to Dev"
            } else {
                "a model cannot move to the stage it is in"
            };
            ctx.push(
                d,
                "spec.to",
                Reason::TransitionNeverAllowed,
                Severity::Error,
                format!("{}→{} is never allowed: {why}", s.from, s.to),
            );
        }
        if let Some(at) = d.object.annotations().get(REQUESTED_AT) {
            if at.parse::<jiff::Timestamp>().is_err() {
                ctx.push(
                    d,
                    "metadata.annotations",
                    Reason::InvalidAnnotation,
                    Severity::Error,
                    format!("{REQUESTED_AT} {at:?} is not an RFC 3339 time"),
                );
            }
        }
    }
    ctx.names();
    ctx.usernames();
    ctx.token_names();
    ctx.references(elsewhere);
    out.extend(super::claims::secret_conflicts(snap_ref, |_| false));
    out.extend(super::requests::simultaneous(snap_ref));
    out.sort();
    snap.diagnostics.extend(out);
}

/// What the checks share: the snapshot and the diagnostics found so far.
pub(super) struct Ctx<'a> {
    pub(super) snap: &'a Snapshot,
    out: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(super) fn push<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        field: &str,
        reason: Reason,
        severity: Severity,
        message: String,
    ) {
        let key = d.key();
        self.out.push(diagnostic(
            self.snap, &key, &d.source, field, reason, severity, message,
        ));
    }

    fn scoped<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        role: Role,
        scope: Option<&Scope>,
        check_role: bool,
    ) {
        let scope = scope.cloned().unwrap_or_default();
        if scope.project.is_some() && scope.customer.is_none() {
            self.push(
                d,
                "spec.scope.project",
                Reason::ProjectWithoutCustomer,
                Severity::Error,
                "scope.project requires scope.customer".into(),
            );
        } else if check_role && !role.allowed_at(&scope) {
            self.push(
                d,
                "spec.role",
                Reason::RoleNotAllowedAtScope,
                Severity::Error,
                format!("{role} cannot be bound globally; set spec.scope.customer"),
            );
        }
    }

    /// Two Users claiming one username: one declared outside every access domain (the
    /// platform's) keeps it, else the older (creation time, then file order).
    fn usernames(&mut self) {
        let snap = self.snap;
        let mut users: Vec<&Declared<User>> = snap.users.iter().collect();
        users.sort_by_key(|d| {
            (
                crate::snapshot::narrowness(d.domain.as_ref()),
                d.object.meta().creation_timestamp.as_ref().map(|t| t.0),
                d.source.clone(),
                d.key(),
            )
        });
        let mut seen: BTreeMap<String, &Declared<User>> = BTreeMap::new();
        for d in users {
            let username = d.object.username();
            if let Some(first) = seen.get(&username) {
                let field = if d.object.spec.username.is_some() {
                    "spec.username"
                } else {
                    "metadata.name"
                };
                let msg = format!(
                    "username {username:?} is already claimed by User {}/{} ({})",
                    first.object.namespace().unwrap_or_default(),
                    first.object.name_any(),
                    first.source
                );
                self.push(d, field, Reason::DuplicateUsername, Severity::Error, msg);
            } else {
                seen.insert(username, d);
            }
        }
    }

    /// An ApiToken's name is its API identifier, unique across namespaces: the older keeps it.
    fn token_names(&mut self) {
        let snap = self.snap;
        let mut tokens: Vec<&Declared<ApiToken>> = snap.tokens.iter().collect();
        tokens.sort_by_key(|d| {
            (
                d.object.meta().creation_timestamp.as_ref().map(|t| t.0),
                d.source.clone(),
                d.key(),
            )
        });
        let mut seen: BTreeMap<String, &Declared<ApiToken>> = BTreeMap::new();
        for d in tokens {
            let name = d.object.name_any();
            if let Some(first) = seen.get(&name) {
                let msg = format!(
                    "token name {name:?} is already used by ApiToken {}/{} ({}); token names are API identifiers, unique across namespaces",
                    first.object.namespace().unwrap_or_default(),
                    name,
                    first.source
                );
                self.push(
                    d,
                    "metadata.name",
                    Reason::DuplicateTokenName,
                    Severity::Error,
                    msg,
                );
            } else {
                seen.insert(name, d);
            }
        }
    }

    /// References to usernames: one that is not a username can never resolve (an error);
    /// one no User declares is kept and takes effect when the user appears (a warning).
    fn references(&mut self, elsewhere: &dyn Elsewhere) {
        let here: BTreeSet<String> = self
            .snap
            .users
            .iter()
            .map(|u| u.object.username())
            .collect();
        let known = |u: &str| here.contains(u) || elsewhere.claims_username(u);
        let mut warn = Vec::new();
        for d in &self.snap.bindings {
            if !known(&d.object.spec.user) {
                warn.push((
                    d.key(),
                    d.source.clone(),
                    "spec.user",
                    d.object.spec.user.clone(),
                    "takes effect when the user appears",
                ));
            }
        }
        for d in &self.snap.tokens {
            if let Some(owner) = d.object.spec.owner.as_ref().filter(|o| !known(o)) {
                warn.push((
                    d.key(),
                    d.source.clone(),
                    "spec.owner",
                    owner.clone(),
                    "the token has no accountable owner",
                ));
            }
        }
        for d in &self.snap.requests {
            if !known(&d.object.spec.requested_by) {
                warn.push((
                    d.key(),
                    d.source.clone(),
                    "spec.requestedBy",
                    d.object.spec.requested_by.clone(),
                    "the request will be denied",
                ));
            }
        }
        for (key, source, field, user, effect) in warn {
            let (reason, severity, msg) = match names::username(&user) {
                Ok(()) => (
                    Reason::UnknownUser,
                    Severity::Warning,
                    format!("no User declares username {user:?}; {effect}"),
                ),
                Err(e) => (
                    Reason::InvalidUsername,
                    Severity::Error,
                    format!("no User can ever match it: it {e}"),
                ),
            };
            self.out.push(diagnostic(
                self.snap, &key, &source, field, reason, severity, msg,
            ));
        }
    }
}

/// A diagnostic on the object `key`, at the line of `field` in its document.
pub(super) fn diagnostic(
    snap: &Snapshot,
    key: &ObjectKey,
    source: &Source,
    field: &str,
    reason: Reason,
    severity: Severity,
    message: String,
) -> Diagnostic {
    Diagnostic {
        file: source.file.clone(),
        line: snap.field_line(source, field),
        kind: Some(key.kind.clone()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        field: Some(field.to_string()),
        reason,
        severity,
        message,
    }
}

fn dedup(snap: &mut Snapshot, out: &mut Vec<Diagnostic>) {
    fn one<K: Resource<DynamicType = ()>>(
        snap: &Snapshot,
        items: &mut Vec<Declared<K>>,
        out: &mut Vec<Diagnostic>,
    ) {
        let mut first: BTreeMap<ObjectKey, Source> = BTreeMap::new();
        items.retain(|d| {
            let key = d.key();
            match first.get(&key) {
                Some(src) => {
                    let msg = format!("{key} is declared twice (first at {src}); neither copy is applied until one is removed");
                    out.push(diagnostic(snap, &key, &d.source, "metadata.name", Reason::DuplicateObject, Severity::Error, msg));
                    false
                }
                None => {
                    first.insert(key, d.source.clone());
                    true
                }
            }
        });
    }
    let mut users = std::mem::take(&mut snap.users);
    one(snap, &mut users, out);
    snap.users = users;
    let mut bindings = std::mem::take(&mut snap.bindings);
    one(snap, &mut bindings, out);
    snap.bindings = bindings;
    let mut tokens = std::mem::take(&mut snap.tokens);
    one(snap, &mut tokens, out);
    snap.tokens = tokens;
    let mut requests = std::mem::take(&mut snap.requests);
    one(snap, &mut requests, out);
    snap.requests = requests;
}
