//! The resource types the server serves: the built-in kinds the controller
//! needs and whatever CustomResourceDefinitions register at run time.

use serde_json::Value;

/// One servable resource at one group/version, as discovery describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// Version this entry is served at.
    pub version: String,
    /// Lower-case plural, the URL segment.
    pub plural: String,
    /// Lower-case singular name.
    pub singular: String,
    /// Kind of one object.
    pub kind: String,
    /// Kind of a list of them.
    pub list_kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts.
    pub short_names: Vec<String>,
    /// Categories such as `all` or `stagegate`.
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then main writes ignore status).
    pub status_subresource: bool,
    /// Custom resources get generations and refuse strategic merge patches.
    pub custom: bool,
    /// A CRD version's `additionalPrinterColumns`, for Table responses.
    pub printer_columns: Vec<Value>,
    /// A CRD version's `openAPIV3Schema`, applied on writes.
    pub schema: Option<Value>,
}

impl ResourceType {
    /// `apiVersion` of objects served at this entry.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for core), as Kubernetes error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `metadata.generation` is maintained: custom resources and CRDs.
    pub fn tracks_generation(&self) -> bool {
        self.custom || self.kind == "CustomResourceDefinition"
    }
}

/// A built-in type from its parts; none of them are custom.
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short_names: &[&str],
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        status_subresource: status,
        custom: false,
        printer_columns: Vec::new(),
        schema: None,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

/// The built-in kinds: what the controller and kubectl touch besides CRs.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        builtin("", "v1", "secrets", "Secret", true, &[], false),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        builtin(RBAC, "v1", "roles", "Role", true, &[], false),
        builtin(RBAC, "v1", "rolebindings", "RoleBinding", true, &[], false),
        builtin(RBAC, "v1", "clusterroles", "ClusterRole", false, &[], false),
        builtin(
            RBAC,
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        builtin("", "v1", "events", "Event", true, &["ev"], false),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

/// The resource types a CustomResourceDefinition object declares (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let strings = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kind = text(&names["kind"]);
    let list_kind = names["listKind"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .map(|v| ResourceType {
            group: text(&spec["group"]),
            version: text(&v["name"]),
            plural: text(&names["plural"]),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            status_subresource: v["subresources"]["status"].is_object(),
            custom: true,
            printer_columns: v["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            schema: v["schema"]["openAPIV3Schema"]
                .as_object()
                .map(|s| Value::Object(s.clone())),
        })
        .collect()
}

/// Every resource type currently served.
#[derive(Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// A registry with only the built-in kinds.
    pub fn new() -> Self {
        Registry { types: builtins() }
    }

    /// All types, built-ins first, in registration order.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group/version/plural`, if any.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Whether anything is served at `group/version`.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    /// The storage type for a group and plural: the first registered version.
    pub fn storage(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// Replace the types registered for the custom resource `plural.group`.
    pub fn set_crd(&mut self, group: &str, plural: &str, types: Vec<ResourceType>) {
        self.remove_crd(group, plural);
        self.types.extend(types);
    }

    /// Forget every version of a custom resource.
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }

    /// Group names in first-seen order; the core group is not among them.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for t in &self.types {
            if !t.group.is_empty() && !groups.contains(&t.group) {
                groups.push(t.group.clone());
            }
        }
        groups
    }

    /// Versions served for a group, in first-seen order.
    pub fn versions(&self, group: &str) -> Vec<String> {
        let mut versions: Vec<String> = Vec::new();
        for t in self.types.iter().filter(|t| t.group == group) {
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        versions
    }
}
