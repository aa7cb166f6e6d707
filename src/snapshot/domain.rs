//! Access domains as the pipeline sees them: the pins and delegations a
//! source read, how its declarations are placed, and the domain validation
//! resolved for each declaration.

use super::Declared;
use crate::policy::Scope;
use crate::resources::{AccessDelegation, AccessDomain};
use serde::Serialize;
use std::fmt;

/// How a source places its declarations in access domains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Places {
    /// Directory mode: by the folder of the declaring file, below one of these
    /// roots (as file labels start: `examples/tenants`). Pins are read only
    /// from the roots' `access-domains.yaml`.
    #[default]
    Folders,
    /// Cluster mode: by namespace; every AccessDomain is a pin (it is cluster-scoped).
    Namespaces,
}

/// The access-domain declarations a source read.
#[derive(Clone, Debug, Default)]
pub struct DomainDeclarations {
    /// How declarations are placed.
    pub places: Places,
    /// Directory mode: the watched roots (file-label prefixes) whose `access-domains.yaml` pins.
    pub roots: Vec<String>,
    /// Whether a declaration outside every pinned domain is refused (`--require-access-domain`).
    pub required: bool,
    /// AccessDomain objects (pins, when declared where pins are read).
    pub pins: Vec<Declared<AccessDomain>>,
    /// AccessDelegation objects.
    pub delegations: Vec<Declared<AccessDelegation>>,
    /// Cluster mode: namespaces named by AccessDomain objects the source could
    /// not read (schema errors). Each is closed until its pin is fixed: a lost
    /// pin must never read as "global".
    pub unreadable: Vec<String>,
    /// Every pinned domain as `validate` resolved it (platform pins, delegated
    /// and closed sub-domains), by name: what `diff` compares.
    pub resolved: Vec<Domain>,
}

/// The access domain a declaration was made in, as validation resolved it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Domain {
    /// `namespace NAME` or `folder PATH` (relative to the watched directory).
    pub name: String,
    /// The widest scope declarations there may reach; `None` for a sub-domain
    /// not delegated yet, where nothing is applied.
    pub scope: Option<Scope>,
    /// What pinned it: `AccessDomain NAME` or `AccessDelegation NS/NAME`, with its source.
    pub pinned_by: String,
}

impl Domain {
    /// Whether a grant or model at `scope` lies inside the domain.
    pub fn admits(&self, scope: &Scope) -> bool {
        self.scope.as_ref().is_some_and(|s| s.covers(scope))
    }

    /// The pin as words: `acme/fraud`, `global`, or `nothing` (a sub-domain not
    /// delegated yet, or a place whose pin has errors; `pinned_by` says which).
    pub fn pin(&self) -> String {
        match &self.scope {
            Some(s) => s.to_string(),
            None => "nothing".into(),
        }
    }
}

impl fmt::Display for Domain {
    /// `folder tenants/acme (pinned to acme by AccessDomain acme, access-domains.yaml:3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pinned to {} by {})",
            self.name,
            self.pin(),
            self.pinned_by
        )
    }
}

/// How narrow the domain `d` is, for precedence: 0 unpinned or pinned global,
/// 1 a customer's, 2 a project's, 3 one that admits nothing. When two domains
/// claim one username, the wider keeps it, whatever the file or creation order.
pub fn narrowness(d: Option<&Domain>) -> u8 {
    match d.map(|d| &d.scope) {
        None => 0,
        Some(Some(s)) => s.depth(),
        Some(None) => 3,
    }
}

/// Whether a declaration in `inner` stays within what `outer` admits: `None` is unpinned (global).
pub fn within(inner: Option<&Domain>, outer: Option<&Domain>) -> bool {
    match (inner, outer) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(i), Some(o)) => match (&i.scope, &o.scope) {
            (_, None) => i.scope.is_none(),
            (None, Some(_)) => true,
            (Some(i), Some(o)) => o.covers(i),
        },
    }
}
