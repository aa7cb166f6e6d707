//! Domain types shared by resources, store and policy.

use crate::resources::names::{self, NameError};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role from the two source products (DESIGN §3).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Role {
    /// Manages users, bindings and tokens within its scope; may do anything with models.
    Admin,
    /// Sees all Staging and Production models and its own Dev models; promotes to Production.
    Manager,
    /// Works on its own models in Dev and Staging; never sees Production.
    Analyst,
    /// Sees all Dev and Staging models; promotes any model to Staging. Customer or project scope only.
    Developer,
    /// Sees Staging and Production; promotes to Production and rejects to Dev. Customer or project scope only.
    Deployer,
}

impl Role {
    /// All roles, most privileged first.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Manager,
        Role::Analyst,
        Role::Developer,
        Role::Deployer,
    ];

    /// The role's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Manager => "Manager",
            Role::Analyst => "Analyst",
            Role::Developer => "Developer",
            Role::Deployer => "Deployer",
        }
    }

    /// Whether the role may be bound at `scope` (Developer and Deployer never globally).
    pub fn allowed_at(self, scope: &Scope) -> bool {
        match self {
            Role::Developer | Role::Deployer => !scope.is_global(),
            _ => true,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // "Administrator" is the data-platform product's name for Admin.
        match s {
            "Admin" | "Administrator" => Ok(Role::Admin),
            "Manager" => Ok(Role::Manager),
            "Analyst" => Ok(Role::Analyst),
            "Developer" => Ok(Role::Developer),
            "Deployer" => Ok(Role::Deployer),
            other => Err(format!(
                "unknown role {other:?} (expected Admin, Manager, Analyst, Developer or Deployer)"
            )),
        }
    }
}

/// A model stage.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Stage {
    /// Development: where every model starts.
    Dev,
    /// Staging: candidate for production.
    Staging,
    /// Production: serving.
    Production,
}

impl Stage {
    /// The stage's name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "Dev",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Dev" => Ok(Stage::Dev),
            "Staging" => Ok(Stage::Staging),
            "Production" => Ok(Stage::Production),
            other => Err(format!(
                "unknown stage {other:?} (expected Dev, Staging or Production)"
            )),
        }
    }
}

/// The stage a request expects the model to be in; `None` for a first deploy.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum FromStage {
    /// The model does not exist yet (first deploy).
    None,
    /// The model is in Dev.
    Dev,
    /// The model is in Staging.
    Staging,
    /// The model is in Production.
    Production,
}

impl FromStage {
    /// As an optional stage (`None` = the model does not exist).
    pub fn stage(self) -> Option<Stage> {
        match self {
            FromStage::None => None,
            FromStage::Dev => Some(Stage::Dev),
            FromStage::Staging => Some(Stage::Staging),
            FromStage::Production => Some(Stage::Production),
        }
    }

    /// The name as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self.stage() {
            None => "None",
            Some(s) => s.as_str(),
        }
    }
}

impl From<Option<Stage>> for FromStage {
    fn from(s: Option<Stage>) -> Self {
        match s {
            None => FromStage::None,
            Some(Stage::Dev) => FromStage::Dev,
            Some(Stage::Staging) => FromStage::Staging,
            Some(Stage::Production) => FromStage::Production,
        }
    }
}

impl fmt::Display for FromStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Every scope that enters from outside (a manifest, an API body, a CLI flag) passes
// `Scope::checked`: customer and project are DNS labels, so a scope can never spell a path
// (`x/../y`) or a second level (`acme/fraud/extra`). (A plain comment: the doc comment
// below is the schema description in the CRDs.)
/// Where a binding applies or a model lives: global ⊃ customer ⊃ project.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "!has(self.project) || has(self.customer)", "message": "scope.project requires scope.customer"}]))]
pub struct Scope {
    /// Customer name; absent means global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = names::DNS_LABEL_MAX),
        regex(pattern = names::DNS_LABEL_PATTERN)
    )]
    pub customer: Option<String>,
    /// Project within the customer; requires `customer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = names::DNS_LABEL_MAX),
        regex(pattern = names::DNS_LABEL_PATTERN)
    )]
    pub project: Option<String>,
}

impl Scope {
    /// The global scope.
    pub fn global() -> Self {
        Scope::default()
    }

    /// A customer scope.
    pub fn customer(c: &str) -> Self {
        Scope {
            customer: Some(c.to_string()),
            project: None,
        }
    }

    /// A project scope within a customer.
    pub fn project(c: &str, p: &str) -> Self {
        Scope {
            customer: Some(c.to_string()),
            project: Some(p.to_string()),
        }
    }

    /// True for the global scope.
    pub fn is_global(&self) -> bool {
        self.customer.is_none() && self.project.is_none()
    }

    /// 0 = global, 1 = customer, 2 = project: larger is narrower.
    pub fn depth(&self) -> u8 {
        match (&self.customer, &self.project) {
            (None, None) => 0,
            (Some(_), None) => 1,
            _ => 2,
        }
    }

    /// Whether a grant at `self` covers `other` (the same scope or anything below it).
    pub fn covers(&self, other: &Scope) -> bool {
        let part = |mine: &Option<String>, theirs: &Option<String>| match mine {
            None => true,
            Some(m) => theirs.as_ref() == Some(m),
        };
        if self.customer.is_none() && self.project.is_some() {
            // A project without customer is invalid and must not act as global.
            return false;
        }
        part(&self.customer, &other.customer) && part(&self.project, &other.project)
    }

    /// A scope from its parts, each checked to be a DNS label. A project without a customer
    /// passes (manifests report it as `ProjectWithoutCustomer`); [`Scope::check`] refuses it.
    pub fn checked(customer: Option<String>, project: Option<String>) -> Result<Scope, ScopeError> {
        for (part, value) in [("customer", &customer), ("project", &project)] {
            if let Some(v) = value {
                names::dns_label(v).map_err(|error| ScopeError::Part { part, error })?;
            }
        }
        Ok(Scope { customer, project })
    }

    /// Whether the scope is whole: valid parts, and a project only within a customer.
    pub fn check(&self) -> Result<(), ScopeError> {
        Scope::checked(self.customer.clone(), self.project.clone())?;
        if self.project.is_some() && self.customer.is_none() {
            return Err(ScopeError::ProjectWithoutCustomer);
        }
        Ok(())
    }

    /// Parses `CUSTOMER[/PROJECT]` strictly (each part a DNS label); empty or `*` means global.
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        if s.is_empty() || s == "*" {
            return Ok(Scope::global());
        }
        let parts: Vec<&str> = s.split('/').collect();
        let (customer, project) = match parts.as_slice() {
            [c] => (c.to_string(), None),
            [c, p] => (c.to_string(), Some(p.to_string())),
            _ => return Err(ScopeError::Shape),
        };
        Scope::checked(Some(customer), project)
    }
}

/// Why a scope is refused (the message names the part and the rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A customer or project that is not a DNS label.
    #[error("scope {part} {error}")]
    Part {
        /// `customer` or `project`.
        part: &'static str,
        /// The rule it breaks.
        error: NameError,
    },
    /// More than two levels, or an empty one.
    #[error("a scope is CUSTOMER or CUSTOMER/PROJECT")]
    Shape,
    /// `project` without `customer`.
    #[error("scope.project requires scope.customer")]
    ProjectWithoutCustomer,
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The wire shape; the parts are checked before a `Scope` exists.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            customer: Option<String>,
            #[serde(default)]
            project: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        Scope::checked(raw.customer, raw.project).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.customer, &self.project) {
            (None, None) => f.write_str("global"),
            (Some(c), None) => write!(f, "{c}"),
            (Some(c), Some(p)) => write!(f, "{c}/{p}"),
            (None, Some(p)) => write!(f, "?/{p}"),
        }
    }
}

/// An action a principal may ask to perform.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Action {
    /// Manage users and their bindings (admin dashboard).
    #[serde(rename = "users:manage")]
    UsersManage,
    /// Manage API tokens (admin dashboard).
    #[serde(rename = "tokens:manage")]
    TokensManage,
    /// See a model.
    #[serde(rename = "models:view")]
    ModelsView,
    /// Deploy one's own model to Dev (first deploy).
    #[serde(rename = "models:deploy")]
    ModelsDeploy,
    /// Move a model from its stage to another.
    #[serde(rename = "models:transition")]
    ModelsTransition,
}

impl Action {
    /// All actions.
    pub const ALL: [Action; 5] = [
        Action::UsersManage,
        Action::TokensManage,
        Action::ModelsView,
        Action::ModelsDeploy,
        Action::ModelsTransition,
    ];

    /// The action's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UsersManage => "users:manage",
            Action::TokensManage => "tokens:manage",
            Action::ModelsView => "models:view",
            Action::ModelsDeploy => "models:deploy",
            Action::ModelsTransition => "models:transition",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?} (expected one of users:manage, tokens:manage, models:view, models:deploy, models:transition)"))
    }
}

/// One role at one scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// Where it applies.
    pub scope: Scope,
}

/// Whether a principal is a person or an API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A human user with bindings.
    User,
    /// An API token with its own role.
    Token,
}

/// Who asks: a user with its bindings, or a token with its own role.
///
/// The grants are read through [`Principal::grants`] and replaced through
/// [`Principal::set_grants`], so that the packed copy `decide` reads stays in step with them.
// Laid out (`repr(C)`, aligned to a cache line) so that everything `decide` reads of a packed
// principal, the kind and the packed name and grants, is the first cache line: deciding reads
// one line of the principal, and the grants and name behind it only to say why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C, align(64))]
pub struct Principal {
    /// User or token.
    pub kind: PrincipalKind,
    /// The name and grants packed for deciding (see [`Packed`]).
    #[serde(skip)]
    packed: Packed,
    /// Roles held, each at a scope.
    grants: Vec<Grant>,
    /// Username or token name: what model ownership is recorded against.
    pub name: String,
}

// The kind and the packed copy fill the first cache line and nothing else shares it.
const _: () = assert!(std::mem::offset_of!(Principal, grants) == 64);

impl Principal {
    /// A user principal.
    pub fn user(name: &str, grants: Vec<Grant>) -> Self {
        Principal::new(PrincipalKind::User, name, grants)
    }

    /// A token principal.
    pub fn token(name: &str, grant: Grant) -> Self {
        Principal::new(PrincipalKind::Token, name, vec![grant])
    }

    fn new(kind: PrincipalKind, name: &str, grants: Vec<Grant>) -> Self {
        Principal {
            kind,
            name: name.to_string(),
            packed: Packed::new(name, &grants),
            grants,
        }
    }

    /// Roles held, each at a scope.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// Replaces the roles held.
    pub fn set_grants(&mut self, grants: Vec<Grant>) {
        self.packed = Packed::new(&self.name, &grants);
        self.grants = grants;
    }

    /// The packed grants, in the order of [`Principal::grants`] (`None`: read the grants).
    pub(super) fn packed(&self) -> Option<&[PackedGrant]> {
        self.packed
            .whole
            .then(|| self.packed.grants.get(..usize::from(self.packed.len)))
            .flatten()
    }

    /// Whether `owner` is this principal's name, read from the packed copy when it has one.
    pub(super) fn is_named(&self, owner: &str) -> bool {
        match &self.packed.name {
            Some(n) => n.is(owner),
            None => self.name == owner,
        }
    }
}

/// Most grants a principal holds packed; one with more is decided from its grants.
const PACKED_GRANTS: usize = 6;
/// Longest name or scope part held inline.
const LABEL_INLINE: usize = 16;

/// A short string held inline, so that comparing it follows no pointer and calls nothing:
/// its length and two 8-byte windows, on its first and on its last bytes. For a string of at
/// most [`LABEL_INLINE`] bytes the windows overlap or meet, so together they spell every byte
/// (shorter strings: the first and last 4 bytes, or the first, middle and last byte), and two
/// labels are equal exactly when their strings are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Label {
    len: u8,
    head: [u8; 8],
    tail: [u8; 8],
}

impl Label {
    /// `s` as a label; `None` when it is longer than [`LABEL_INLINE`].
    #[inline]
    pub(crate) fn new(s: &str) -> Option<Label> {
        let b = s.as_bytes();
        let n = b.len();
        // A window of `w` bytes of `b` from `at` (constant widths: plain loads, no call).
        let window = |at: usize, w: usize| {
            let mut out = [0; 8];
            if let (Some(o), Some(i)) = (out.get_mut(..w), b.get(at..at + w)) {
                o.copy_from_slice(i);
            }
            out
        };
        let (head, tail) = match n {
            0 => ([0; 8], [0; 8]),
            1..4 => {
                let (first, mid, last) = (b[0], b[n / 2], b[n - 1]);
                ([first, mid, last, 0, 0, 0, 0, 0], [0; 8])
            }
            4..8 => (window(0, 4), window(n - 4, 4)),
            8..=LABEL_INLINE => (window(0, 8), window(n - 8, 8)),
            _ => return None,
        };
        Some(Label {
            len: n as u8,
            head,
            tail,
        })
    }

    /// Whether the label spells `s`.
    #[inline]
    fn is(&self, s: &str) -> bool {
        Label::new(s).is_some_and(|l| l == *self)
    }
}

/// Scope parts (customer and project names) as small numbers, the same for every packed
/// principal and model of the process: a packed grant is then a few bytes, and matching a
/// grant's scope with a model's compares two numbers. Parts come from the store and manifests
/// only (never from a request), and there are few of them (customers and projects); past
/// [`MAX_PARTS`] nothing more is interned and what would need it is decided unpacked.
mod parts {
    use std::collections::HashMap;
    use std::num::NonZeroU32;
    use std::sync::{LazyLock, Mutex};

    /// Most distinct scope parts numbered (each at most 63 bytes: a few MiB at worst).
    pub(super) const MAX_PARTS: usize = 100_000;

    static PARTS: LazyLock<Mutex<HashMap<Box<str>, NonZeroU32>>> = LazyLock::new(Default::default);

    /// The number of scope part `s`; `None` once [`MAX_PARTS`] are numbered and `s` is not.
    pub(super) fn id(s: &str) -> Option<NonZeroU32> {
        let mut parts = PARTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = parts.get(s) {
            return Some(*id);
        }
        if parts.len() >= MAX_PARTS {
            return None;
        }
        let id = NonZeroU32::new(u32::try_from(parts.len() + 1).ok()?)?;
        parts.insert(s.into(), id);
        Some(id)
    }
}

/// A scope part's number in three bytes (every number up to [`parts::MAX_PARTS`] fits);
/// [`Part::NONE`] in a packed scope means the scope has no such part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Part([u8; 3]);

const _: () = assert!(parts::MAX_PARTS < 1 << 24);

impl Part {
    /// No part (numbers start at 1).
    const NONE: Part = Part([0; 3]);

    fn new(id: std::num::NonZeroU32) -> Option<Part> {
        match id.get().to_le_bytes() {
            [a, b, c, 0] => Some(Part([a, b, c])),
            _ => None,
        }
    }
}

/// A scope's parts as numbers: `None` when a part could not be numbered (see [`parts`]).
fn pack_scope(scope: &Scope) -> Option<(Part, Part)> {
    let part = |p: &Option<String>| match p.as_deref() {
        None => Some(Part::NONE),
        Some(s) => parts::id(s).and_then(Part::new),
    };
    Some((part(&scope.customer)?, part(&scope.project)?))
}

/// What `decide` reads of a principal, held inside it: the name and up to [`PACKED_GRANTS`]
/// grants with their scopes' parts as numbers. A decision on a large organization costs mostly
/// memory reads; reading the principal's grants this way follows no pointer at all (the
/// grants themselves are a list of scopes of strings: three pointers deep), and with the
/// principal's kind it fills one cache line. Packing only copies:
/// [`PackedGrant::applies_to`] answers what [`Role::allowed_at`] and [`Scope::covers`] answer
/// for the grant it was packed from, and a property test holds `decide` to that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Packed {
    /// Every grant is packed (none too long, not too many).
    whole: bool,
    len: u8,
    /// The name, when short enough.
    name: Option<Label>,
    grants: [PackedGrant; PACKED_GRANTS],
}

impl Packed {
    fn new(name: &str, grants: &[Grant]) -> Packed {
        let mut p = Packed {
            name: Label::new(name),
            ..Packed::default()
        };
        if grants.len() > PACKED_GRANTS {
            return p;
        }
        for (slot, g) in p.grants.iter_mut().zip(grants) {
            let Some(packed) = PackedGrant::new(g) else {
                return p;
            };
            *slot = packed;
        }
        p.len = grants.len() as u8;
        p.whole = true;
        p
    }
}

/// One grant as `decide` reads it, in seven bytes: the role, whether it may be held at its
/// scope, and the scope's parts as numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PackedGrant {
    /// The role's place in [`Role::ALL`], plus [`PackedGrant::UNUSABLE`] when the grant never counts.
    role: u8,
    customer: Part,
    project: Part,
}

impl PackedGrant {
    /// Set in `role` when the role may not be held at the scope (or the scope is a project
    /// without a customer): the grant then never applies.
    const UNUSABLE: u8 = 0x80;

    fn new(g: &Grant) -> Option<PackedGrant> {
        let (customer, project) = pack_scope(&g.scope)?;
        let usable = g.role.allowed_at(&g.scope)
            && !(g.scope.customer.is_none() && g.scope.project.is_some());
        let place = Role::ALL.iter().position(|r| *r == g.role)?;
        Some(PackedGrant {
            role: place as u8 | if usable { 0 } else { PackedGrant::UNUSABLE },
            customer,
            project,
        })
    }

    /// The grant's role.
    #[inline]
    pub(super) fn role(&self) -> Role {
        Role::ALL[usize::from(self.role & !PackedGrant::UNUSABLE) % Role::ALL.len()]
    }

    /// Whether the grant counts for the model `target`: its role may be held at its scope, and
    /// its scope covers the model's (the same scope or anything above it). Compares numbers.
    #[inline]
    pub(super) fn applies_to(&self, target: &PackedModel) -> bool {
        let part = |mine: Part, theirs: Part| mine == Part::NONE || mine == theirs;
        self.role & PackedGrant::UNUSABLE == 0
            && part(self.customer, target.customer)
            && part(self.project, target.project)
    }
}

/// A model's scope and owner packed for deciding, as [`Packed`] packs a principal: held next
/// to the model (the API index keeps one per model), so that `decide` compares numbers and
/// inline labels, and follows no pointer into the model's strings or the principal's grants.
/// Built only when every part packs; a property test holds `decide` with it to `decide`
/// without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedModel {
    customer: Part,
    project: Part,
    /// The scope's parts inline, to match a question's scope without reading the model's.
    customer_label: Option<Label>,
    project_label: Option<Label>,
    owner: Option<Label>,
}

impl PackedModel {
    /// Packs `m`'s scope and owner; `None` when a part does not pack.
    pub fn new(m: &ModelState) -> Option<PackedModel> {
        let label = |part: Option<&str>| match part {
            None => Some(None),
            Some(s) => Label::new(s).map(Some),
        };
        let (customer, project) = pack_scope(&m.scope)?;
        Some(PackedModel {
            customer,
            project,
            customer_label: label(m.scope.customer.as_deref())?,
            project_label: label(m.scope.project.as_deref())?,
            owner: label(m.owner.as_deref())?,
        })
    }

    /// Whether the model lives at `scope` (what `==` on the model's scope answers).
    #[inline]
    pub(crate) fn is_at(&self, scope: &Scope) -> bool {
        let part = |mine: &Option<Label>, theirs: &Option<String>| match (mine, theirs) {
            (None, None) => true,
            (Some(m), Some(t)) => m.is(t),
            _ => false,
        };
        part(&self.customer_label, &scope.customer) && part(&self.project_label, &scope.project)
    }

    /// Whether `principal` (by its packed name) owns the model; `None` when its name is not packed.
    #[inline]
    pub(super) fn owned_by(&self, principal: &Principal) -> Option<bool> {
        let name = principal.packed.name.as_ref()?;
        Some(self.owner.as_ref() == Some(name))
    }
}

/// What the policy needs to know about a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelState {
    /// Model name.
    pub name: String,
    /// Where the model lives.
    pub scope: Scope,
    /// Who first deployed it.
    pub owner: Option<String>,
    /// Current stage; `None` when the model does not exist yet.
    pub stage: Option<Stage>,
}
