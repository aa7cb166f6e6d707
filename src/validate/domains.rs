//! Access domains: where a declaration is made limits what it may declare.
//!
//! The one place the rule lives, for every front end (`validate`, `plan`,
//! `apply`, the directory daemon, the controller and `diff`): each
//! declaration is placed (its namespace, or the folder of its file), the
//! place's domain is resolved from the platform's pins (AccessDomain) and the
//! customers' delegations (AccessDelegation), the domain is recorded on the
//! declaration, and what the domain may not declare is an
//! `OutsideAccessDomain` error on that object (so nothing of it is granted,
//! and the rest applies).

use super::rules::diagnostic;
use crate::policy::Scope;
use crate::resources::{AccessDelegation, AccessDomain, User, DOMAINS_FILE};
use crate::snapshot::{
    Declared, Diagnostic, Domain, ObjectKey, Places, Reason, Severity, Snapshot,
};
use kube::core::object::HasSpec;
use kube::{Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet};

/// Where declarations are made: a namespace, or a folder below a watched root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// Cluster mode.
    Namespace(String),
    /// Directory mode: `path` relative to `root` (`""` is the root itself).
    Folder { root: String, path: String },
}

impl Place {
    /// `namespace acme` or `folder tenants/acme`.
    fn name(&self) -> String {
        match self {
            Place::Namespace(ns) => format!("namespace {ns}"),
            Place::Folder { path, .. } if path.is_empty() => "the root folder".into(),
            Place::Folder { path, .. } => format!("folder {path}"),
        }
    }

    /// Whether `self` is `other` or (folders) below it.
    fn within(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Folder { root, path }, Place::Folder { root: r, path: p }) => {
                root == r
                    && (p.is_empty()
                        || path == p
                        || path
                            .strip_prefix(p.as_str())
                            .is_some_and(|t| t.starts_with('/')))
            }
            _ => self == other,
        }
    }
}

/// Resolved domains by place: platform pins, delegated sub-domains and closed ones.
#[derive(Default)]
struct Pins(BTreeMap<Place, Domain>, BTreeSet<Place>);

impl Pins {
    /// The domain of `place`: the same namespace, or the innermost pinned folder around it.
    fn lookup(&self, place: &Place) -> Option<(&Place, &Domain)> {
        self.0
            .iter()
            // A closed folder closes the folders below it; its own files (the pin file's) stay unpinned.
            .filter(|(p, _)| place.within(p) && !(self.1.contains(*p) && place == *p))
            .max_by_key(|(p, _)| match p {
                Place::Folder { path, .. } => path.len(),
                Place::Namespace(_) => 0,
            })
    }
}

/// Resolves every declaration's access domain, records it, and appends what
/// the domains may not declare to `out`.
pub(super) fn check(snap: &mut Snapshot, out: &mut Vec<Diagnostic>) {
    let resolved = {
        let mut r = Resolver {
            snap,
            out,
            pins: Pins::default(),
        };
        r.platform_pins();
        r.delegations();
        r.closed_roots();
        r.pins
    };
    snap.domains.resolved = resolved.0.values().cloned().collect();
    let snap_ref: &Snapshot = snap;
    let users = resolve_each(snap_ref, &resolved, &snap_ref.users);
    let bindings = resolve_each(snap_ref, &resolved, &snap_ref.bindings);
    let tokens = resolve_each(snap_ref, &resolved, &snap_ref.tokens);
    let requests = resolve_each(snap_ref, &resolved, &snap_ref.requests);
    let delegations = resolve_each(snap_ref, &resolved, &snap_ref.domains.delegations);
    {
        let mut c = Checker {
            snap: snap_ref,
            out,
        };
        c.scoped_each(&snap_ref.bindings, &bindings, "spec.role", |s| {
            let what = format!("grants {} to {} at {}", s.role, s.user, s.scope());
            (s.scope(), s.scope.is_some(), what)
        });
        c.scoped_each(&snap_ref.tokens, &tokens, "spec.role", |s| {
            let what = format!("is a {} token at {}", s.role, s.scope());
            (s.scope(), s.scope.is_some(), what)
        });
        c.scoped_each(&snap_ref.requests, &requests, "spec.model", |s| {
            let what = format!("moves model {} at {}", s.model, s.scope());
            (s.scope(), s.scope.is_some(), what)
        });
        for (d, (place, dom)) in snap_ref.users.iter().zip(&users) {
            c.placed(d, place, dom);
        }
        c.usernames(&users);
    }
    record(&mut snap.users, users);
    record(&mut snap.bindings, bindings);
    record(&mut snap.tokens, tokens);
    record(&mut snap.requests, requests);
    record(&mut snap.domains.delegations, delegations);
}

/// Each declaration's place and the domain resolved for it, in order.
fn resolve_each<K: Resource<DynamicType = ()>>(
    snap: &Snapshot,
    pins: &Pins,
    items: &[Declared<K>],
) -> Vec<(Option<Place>, Option<Domain>)> {
    items
        .iter()
        .map(|d| {
            let place = place_of(snap, d);
            let domain = place
                .as_ref()
                .and_then(|p| pins.lookup(p))
                .map(|(_, dom)| dom.clone());
            (place, domain)
        })
        .collect()
}

/// Records on each declaration the domain `resolve_each` found for it.
fn record<K>(items: &mut [Declared<K>], resolved: Vec<(Option<Place>, Option<Domain>)>) {
    for (d, (_, dom)) in items.iter_mut().zip(resolved) {
        d.domain = dom;
    }
}

/// Where `d` was declared: its namespace, or the folder of its file below a watched root.
fn place_of<K: Resource<DynamicType = ()>>(snap: &Snapshot, d: &Declared<K>) -> Option<Place> {
    match snap.domains.places {
        Places::Namespaces => Some(Place::Namespace(d.object.namespace().unwrap_or_default())),
        Places::Folders => folder_of(snap, d.source.file.as_deref()?),
    }
}

/// The folder of `file` below the watched root it lies in.
fn folder_of(snap: &Snapshot, file: &str) -> Option<Place> {
    let (root, rel) = snap
        .domains
        .roots
        .iter()
        .filter_map(|r| Some((r, file.strip_prefix(r.as_str())?.strip_prefix('/')?)))
        .max_by_key(|(r, _)| r.len())?;
    let path = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    Some(Place::Folder {
        root: root.clone(),
        path: path.to_string(),
    })
}

/// The folder of an AccessDomain's file when that file is a pin file (named `access-domains.yaml`).
fn pin_file_folder(snap: &Snapshot, d: &Declared<AccessDomain>) -> Option<Place> {
    let file = d.source.file.as_deref()?;
    (file.rsplit('/').next() == Some(DOMAINS_FILE)).then(|| folder_of(snap, file))?
}

/// `dir/rel` as a folder path (`rel` alone when `dir` is the root).
fn join(dir: &str, rel: &str) -> String {
    let rel = rel.trim_end_matches('/');
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// How a pin or delegation names itself in messages: its key, and its file:line when it has one.
fn origin(key: &ObjectKey, source: &crate::snapshot::Source) -> String {
    match source.line {
        Some(_) => format!("{key} at {source}"),
        None => key.to_string(),
    }
}

/// Builds the resolved pins, reporting pins and delegations that cannot count.
struct Resolver<'a> {
    snap: &'a Snapshot,
    out: &'a mut Vec<Diagnostic>,
    pins: Pins,
}

impl Resolver<'_> {
    fn error<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        field: &str,
        reason: Reason,
        message: String,
    ) {
        let key = d.key();
        self.out.push(diagnostic(
            self.snap,
            &key,
            &d.source,
            field,
            reason,
            Severity::Error,
            message,
        ));
    }

    /// The platform's AccessDomains, each where it counts: any in cluster mode
    /// (they are cluster-scoped), only `access-domains.yaml` at a root in directory mode.
    fn platform_pins(&mut self) {
        let snap = self.snap;
        let mut pins: Vec<&Declared<AccessDomain>> = snap.domains.pins.iter().collect();
        // Outer pin files first: one inside a folder they pin is refused.
        pins.sort_by_key(|d| {
            let depth = d
                .source
                .file
                .as_deref()
                .map_or(0, |f| f.matches('/').count());
            (depth, d.source.clone(), d.key())
        });
        let mut subdomains: BTreeMap<String, String> = BTreeMap::new();
        for d in pins {
            let spec = &d.object.spec;
            let place = match snap.domains.places {
                Places::Namespaces => match &spec.namespace {
                    Some(ns) => Place::Namespace(ns.clone()),
                    None => {
                        self.error(d, "spec.folder", Reason::SchemaViolation, "in cluster mode an AccessDomain pins a namespace: set spec.namespace, not spec.folder".into());
                        continue;
                    }
                },
                Places::Folders => {
                    let Some(Place::Folder { root, path: dir }) = pin_file_folder(snap, d) else {
                        self.error(d, "metadata.name", Reason::OutsideAccessDomain, format!("an AccessDomain pins only from a file named {DOMAINS_FILE} (at the root of the watched directory, where a CODEOWNERS entry protects it); this one pins nothing"));
                        continue;
                    };
                    let here = Place::Folder {
                        root: root.clone(),
                        path: dir.clone(),
                    };
                    if snap.domains.required && !dir.is_empty() {
                        let msg = format!("with --require-access-domain, pins are read only from {DOMAINS_FILE} at the root of the watched directory; this one in {} pins nothing", here.name());
                        self.error(d, "metadata.name", Reason::OutsideAccessDomain, msg);
                        continue;
                    }
                    if let Some((_, dom)) = self.pins.lookup(&here) {
                        let msg = format!("{DOMAINS_FILE} in {} lies inside {dom}: pins are made only from outside every access domain; this one pins nothing", here.name());
                        self.error(d, "metadata.name", Reason::OutsideAccessDomain, msg);
                        continue;
                    }
                    if !spec.subdomains.is_empty() {
                        self.error(d, "spec.subdomains", Reason::SchemaViolation, "spec.subdomains lists namespaces (cluster mode); in directory mode the folders inside a customer's folder are its sub-domains".into());
                        continue;
                    }
                    match &spec.folder {
                        Some(f) => Place::Folder {
                            root: root.clone(),
                            path: join(&dir, f),
                        },
                        None => {
                            self.error(d, "spec.namespace", Reason::SchemaViolation, "in directory mode an AccessDomain pins a folder: set spec.folder, not spec.namespace".into());
                            continue;
                        }
                    }
                }
            };
            if let Some(other) = self.pins.0.get(&place) {
                let msg = format!(
                    "{} is already pinned by {}; this pin is ignored",
                    place.name(),
                    other.pinned_by
                );
                self.error(d, "metadata.name", Reason::DuplicateObject, msg);
                continue;
            }
            let by = origin(&d.key(), &d.source);
            let customer_level = spec.scope.customer.is_some() && spec.scope.project.is_none();
            if !spec.subdomains.is_empty() && !customer_level {
                let msg = format!(
                    "only a customer-pinned domain has sub-domains; this one is pinned to {}",
                    spec.scope
                );
                self.error(d, "spec.subdomains", Reason::OutsideAccessDomain, msg);
                continue;
            }
            self.pins.0.insert(
                place.clone(),
                Domain {
                    name: place.name(),
                    scope: Some(spec.scope.clone()),
                    pinned_by: by.clone(),
                },
            );
            for ns in &spec.subdomains {
                if let Some(other) = subdomains.get(ns) {
                    let msg = format!("namespace {ns} is already a sub-domain of {other}");
                    self.error(d, "spec.subdomains", Reason::DuplicateObject, msg);
                } else {
                    subdomains.insert(ns.clone(), by.clone());
                }
            }
        }
        if snap.domains.places == Places::Namespaces {
            self.close_refused_namespaces();
        }
        // A sub-domain nobody has delegated yet admits nothing: its team cannot
        // act with the customer's reach before the customer hands it a project.
        for (ns, by) in subdomains {
            let place = Place::Namespace(ns);
            self.pins.0.entry(place.clone()).or_insert_with(|| Domain {
                name: place.name(),
                scope: None,
                pinned_by: by,
            });
        }
    }

    /// Cluster mode: a namespace whose AccessDomain was refused or could not be
    /// read, and that no other pin covers, admits nothing until the pin is
    /// fixed. A pin's mistake must never widen its namespace to global (in
    /// directory mode `closed_roots` does the same for pin files with errors).
    fn close_refused_namespaces(&mut self) {
        let snap = self.snap;
        let refused = snap.domains.pins.iter().filter_map(|d| {
            let name = d.object.name_any();
            let has_error = self.out.iter().chain(&snap.diagnostics).any(|x| {
                x.is_error()
                    && x.kind.as_deref() == Some("AccessDomain")
                    && x.name.as_deref() == Some(name.as_str())
            });
            let ns = d.object.spec.namespace.clone()?;
            has_error.then(|| (ns, format!("AccessDomain {name}")))
        });
        let unreadable = snap.domains.unreadable.iter().map(|ns| {
            (
                ns.clone(),
                "an AccessDomain that could not be read".to_string(),
            )
        });
        let closed: Vec<(String, String)> = refused.chain(unreadable).collect();
        for (ns, by) in closed {
            let place = Place::Namespace(ns);
            self.pins.0.entry(place.clone()).or_insert_with(|| Domain {
                name: place.name(),
                scope: None,
                pinned_by: format!(
                    "{by}, which has errors (nothing in the namespace applies until it is fixed)"
                ),
            });
        }
    }

    /// The customers' delegations: each from a customer-pinned domain, to one of its sub-domains.
    fn delegations(&mut self) {
        let snap = self.snap;
        let platform = std::mem::take(&mut self.pins);
        let mut delegated: BTreeMap<Place, (Domain, Option<Place>)> = BTreeMap::new();
        let mut items: Vec<&Declared<AccessDelegation>> = snap.domains.delegations.iter().collect();
        items.sort_by_key(|d| d.key());
        for d in items {
            let place = place_of(snap, d);
            let base = place.as_ref().and_then(|p| platform.lookup(p));
            let customer = match base.map(|(_, dom)| &dom.scope) {
                Some(Some(Scope {
                    customer: Some(c),
                    project: None,
                })) => c.clone(),
                _ => {
                    let here = match (&place, base) {
                        (_, Some((_, dom))) => format!("{dom}"),
                        (Some(p), None) => format!("{}, which no AccessDomain pins", p.name()),
                        (None, None) => "no access domain".into(),
                    };
                    let msg = format!("only a customer-pinned domain may hand a project to a sub-domain; this AccessDelegation is declared in {here}");
                    self.error(d, "spec.project", Reason::OutsideAccessDomain, msg);
                    continue;
                }
            };
            let (base_place, base_dom) = base.expect("a customer domain was found");
            let target = match base_place {
                Place::Folder { path, .. } => {
                    let Some(Place::Folder { root, path: from }) = &place else {
                        continue;
                    };
                    let target = Place::Folder {
                        root: root.clone(),
                        path: join(from, &d.object.spec.domain),
                    };
                    let inside = target.within(base_place) && &target != base_place;
                    let innermost = platform.lookup(&target).map(|(p, _)| p) == Some(base_place);
                    if !inside || !innermost {
                        let why = if inside {
                            format!(
                                "it is pinned by {}",
                                platform
                                    .lookup(&target)
                                    .map_or(String::new(), |(_, dom)| dom.pinned_by.clone())
                            )
                        } else {
                            format!("it is not inside the customer's folder {path:?}")
                        };
                        let msg = format!("cannot delegate {}: {why}", target.name());
                        self.error(d, "spec.domain", Reason::OutsideAccessDomain, msg);
                        continue;
                    }
                    target
                }
                Place::Namespace(_) => {
                    let target = Place::Namespace(d.object.spec.domain.clone());
                    let sub = platform.0.get(&target);
                    if sub.is_none_or(|s| s.scope.is_some() || s.pinned_by != base_dom.pinned_by) {
                        let msg = format!("cannot delegate {}: it is not a sub-domain of {} (spec.subdomains of its AccessDomain)", target.name(), base_dom);
                        self.error(d, "spec.domain", Reason::OutsideAccessDomain, msg);
                        continue;
                    }
                    target
                }
            };
            if let Some((other, _)) = delegated.get(&target) {
                let msg = format!(
                    "{} is already delegated by {}",
                    target.name(),
                    other.pinned_by
                );
                self.error(d, "spec.domain", Reason::DuplicateObject, msg);
                continue;
            }
            let scope = Scope::project(&customer, &d.object.spec.project);
            let domain = Domain {
                name: target.name(),
                scope: Some(scope),
                pinned_by: origin(&d.key(), &d.source),
            };
            delegated.insert(target, (domain, place));
        }
        // Only the customer's own domain delegates: not a project sub-domain inside it.
        let targets: Vec<Place> = delegated.keys().cloned().collect();
        let refused: BTreeSet<Place> = delegated
            .iter()
            .filter_map(|(target, (_, from))| {
                let from = from.as_ref()?;
                targets
                    .iter()
                    .find(|t| from.within(t))
                    .map(|_| target.clone())
            })
            .collect();
        self.pins = platform;
        for (target, (domain, from)) in delegated {
            if refused.contains(&target) {
                let d = snap
                    .domains
                    .delegations
                    .iter()
                    .find(|d| origin(&d.key(), &d.source) == domain.pinned_by)
                    .expect("a delegation we resolved");
                let here = from.map_or_else(String::new, |p| p.name());
                let msg = format!("{here} is a delegated project sub-domain: only the customer's own domain delegates");
                self.error(d, "spec.project", Reason::OutsideAccessDomain, msg);
                continue;
            }
            self.pins.0.insert(target, domain);
        }
    }

    /// A pin file that does not load (or has an error) closes every folder
    /// below its own: a lost pin must never read as "global".
    fn closed_roots(&mut self) {
        let snap = self.snap;
        let failing: BTreeSet<&str> = snap
            .broken_files
            .iter()
            .map(String::as_str)
            .chain(
                snap.diagnostics
                    .iter()
                    .chain(self.out.iter())
                    .filter(|d| d.is_error())
                    .filter_map(|d| d.file.as_deref()),
            )
            .filter(|f| f.rsplit('/').next() == Some(DOMAINS_FILE))
            .collect();
        for file in failing {
            let Some(Place::Folder { root, path }) = folder_of(snap, file) else {
                continue;
            };
            let place = Place::Folder { root, path };
            if self.pins.lookup(&place).is_some_and(|(p, _)| p != &place) {
                continue; // inside a domain: it pins nothing anyway, and was reported
            }
            self.pins.0.retain(|p, _| !p.within(&place));
            self.pins.1.insert(place.clone());
            self.pins.0.insert(
                place.clone(),
                Domain {
                    name: format!("{} and below", place.name()),
                    scope: None,
                    pinned_by: format!(
                        "{file}, which has errors (nothing below it applies until it is fixed)"
                    ),
                },
            );
        }
    }
}

/// A User's claim of its username, with the domain it was declared in.
type Claim<'a> = (&'a Declared<User>, Option<&'a Domain>);

/// Reports what each declaration's domain may not declare.
struct Checker<'a> {
    snap: &'a Snapshot,
    out: &'a mut Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        field: &str,
        message: String,
    ) {
        let key = d.key();
        self.out.push(diagnostic(
            self.snap,
            &key,
            &d.source,
            field,
            Reason::OutsideAccessDomain,
            Severity::Error,
            message,
        ));
    }

    /// Unpinned under `--require-access-domain`, or in a domain that admits nothing.
    /// True when the declaration may be checked further.
    fn placed<K: Resource<DynamicType = ()>>(
        &mut self,
        d: &Declared<K>,
        place: &Option<Place>,
        dom: &Option<Domain>,
    ) -> bool {
        match dom {
            None if self.snap.domains.required => {
                let here = place
                    .as_ref()
                    .map_or("a file outside the watched directory".into(), Place::name);
                let msg = format!("declared in {here}, which no AccessDomain pins; pinning is required (--require-access-domain), so it is ignored");
                self.error(d, "metadata.name", msg);
                false
            }
            Some(dom) if dom.scope.is_none() => {
                let msg = format!("declared in {dom}: nothing declared there applies");
                self.error(d, "metadata.name", msg);
                false
            }
            _ => true,
        }
    }

    /// A grant, token or model at its scope must lie inside the domain's pin,
    /// for every declaration of one kind. `describe` gives a spec's scope,
    /// whether the scope was written, and what the declaration does.
    fn scoped_each<K: Resource<DynamicType = ()> + HasSpec>(
        &mut self,
        items: &[Declared<K>],
        resolved: &[(Option<Place>, Option<Domain>)],
        fallback_field: &str,
        describe: impl Fn(&K::Spec) -> (Scope, bool, String),
    ) {
        for (d, (place, dom)) in items.iter().zip(resolved) {
            if !self.placed(d, place, dom) {
                continue;
            }
            let (scope, has_scope, what) = describe(d.object.spec());
            if let Some(dom) = dom.as_ref().filter(|dom| !dom.admits(&scope)) {
                let field = if has_scope {
                    "spec.scope"
                } else {
                    fallback_field
                };
                let msg = format!("{} {what}, outside its access domain: {dom}", d.key().kind);
                self.error(d, field, msg);
            }
        }
    }

    /// A pinned domain cannot change (or, by claiming it, take over) a User declared elsewhere:
    /// a username claimed outside any pin (the platform's) or first by another domain is not its.
    fn usernames(&mut self, domains: &[(Option<Place>, Option<Domain>)]) {
        let snap = self.snap;
        let mut claims: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
        let mut users: Vec<(&Declared<User>, Option<&Domain>)> = snap
            .users
            .iter()
            .zip(domains)
            .map(|(d, (_, dom))| (d, dom.as_ref()))
            .collect();
        users.sort_by_key(|(d, dom)| {
            (
                crate::snapshot::narrowness(*dom),
                d.object.meta().creation_timestamp.as_ref().map(|t| t.0),
                d.source.clone(),
                d.key(),
            )
        });
        for (d, dom) in users {
            claims
                .entry(d.object.username())
                .or_default()
                .push((d, dom));
        }
        for (username, claimants) in claims {
            // Sorted widest domain first: the platform's claim holds against a team's.
            let holder = claimants.first().copied();
            let Some((held_by, held_in)) = holder else {
                continue;
            };
            for (d, dom) in &claimants {
                let Some(dom) = dom else { continue };
                if held_in.is_some_and(|h| h.name == dom.name) {
                    continue;
                }
                let elsewhere = held_in.map_or("outside every access domain".to_string(), |h| {
                    format!("in {}", h.name)
                });
                let msg = format!(
                    "username {username:?} is declared {elsewhere} by {} ({}); a User in {dom} cannot change or take over a User declared elsewhere",
                    held_by.key(),
                    held_by.source
                );
                let field = if d.object.spec.username.is_some() {
                    "spec.username"
                } else {
                    "metadata.name"
                };
                self.error(d, field, msg);
            }
        }
    }
}

#[cfg(test)]
#[path = "domains_tests.rs"]
mod tests;
