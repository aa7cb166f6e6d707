//! Rendered manifests as typed Kubernetes objects, strictly.
//!
//! `k8s-openapi` types ignore fields they do not know, so a misspelt or
//! misplaced field would parse silently and the API server would drop it.
//! Each document is therefore deserialized (with `serde_path_to_error` for a
//! precise location on type errors), serialized back, and compared with the
//! input: any field that did not survive the round trip is reported.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every kind the chart may render. A kind not listed here is an error.
// A test holds a few dozen of these; boxing would only add noise.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    CustomResourceDefinition(CustomResourceDefinition),
    Deployment(Deployment),
    NetworkPolicy(NetworkPolicy),
    PersistentVolumeClaim(PersistentVolumeClaim),
    PodDisruptionBudget(PodDisruptionBudget),
    Role(Role),
    RoleBinding(RoleBinding),
    Secret(Secret),
    Service(Service),
    ServiceAccount(ServiceAccount),
    ServiceMonitor(ServiceMonitor),
}

/// prometheus-operator's ServiceMonitor (monitoring.coreos.com/v1), only
/// the fields the chart uses; anything else is rejected.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitor {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ServiceMonitorSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub endpoints: Vec<ServiceMonitorEndpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceMonitorEndpoint {
    pub port: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::CustomResourceDefinition(_) => "CustomResourceDefinition",
            Object::Deployment(_) => "Deployment",
            Object::NetworkPolicy(_) => "NetworkPolicy",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::Role(_) => "Role",
            Object::RoleBinding(_) => "RoleBinding",
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ServiceMonitor(_) => "ServiceMonitor",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::CustomResourceDefinition(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ServiceMonitor(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }

    /// `Kind namespace/name`, for messages.
    pub fn id(&self) -> String {
        let ns = self.metadata().namespace.as_deref().unwrap_or("");
        format!("{} {ns}/{}", self.kind(), self.name())
    }

    pub fn as_deployment(&self) -> Option<&Deployment> {
        match self {
            Object::Deployment(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_secret(&self) -> Option<&Secret> {
        match self {
            Object::Secret(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses a multi-document YAML stream (render.py's output) strictly.
pub fn parse_stream(yaml: &str) -> Result<Vec<Object>, String> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("document {index}: {e}"))?;
        if value.is_null() {
            continue;
        }
        let object = parse(value).map_err(|e| format!("document {index}: {e}"))?;
        objects.push(object);
    }
    if objects.is_empty() {
        return Err("nothing rendered".into());
    }
    Ok(objects)
}

fn parse(value: Value) -> Result<Object, String> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "PersistentVolumeClaim") => Object::PersistentVolumeClaim(strict(&value)?),
        ("v1", "Secret") => Object::Secret(strict(&value)?),
        ("v1", "Service") => Object::Service(strict(&value)?),
        ("v1", "ServiceAccount") => Object::ServiceAccount(strict(&value)?),
        ("apps/v1", "Deployment") => Object::Deployment(strict(&value)?),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            Object::CustomResourceDefinition(strict(&value)?)
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => Object::ServiceMonitor(strict(&value)?),
        ("networking.k8s.io/v1", "NetworkPolicy") => Object::NetworkPolicy(strict(&value)?),
        ("policy/v1", "PodDisruptionBudget") => Object::PodDisruptionBudget(strict(&value)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => Object::ClusterRole(strict(&value)?),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            Object::ClusterRoleBinding(strict(&value)?)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => Object::Role(strict(&value)?),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => Object::RoleBinding(strict(&value)?),
        _ => return Err(format!("unknown kind {api_version}/{kind} ({name})")),
    };
    Ok(object)
}

/// Deserializes `T` and requires that nothing was ignored on the way.
fn strict<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let id = format!(
        "{} {}",
        value["kind"].as_str().unwrap_or("?"),
        value["metadata"]["name"].as_str().unwrap_or("?")
    );
    let typed: T = serde_path_to_error::deserialize(value)
        .map_err(|e| format!("{id}: at `{}`: {}", e.path(), e.inner()))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("{id}: {e}"))?;
    let mut lost = Vec::new();
    compare(&without_nulls(value), &back, String::new(), &mut lost);
    if lost.is_empty() {
        Ok(typed)
    } else {
        Err(format!(
            "{id}: fields the type does not know or changed: {lost:?}"
        ))
    }
}

/// Kubernetes treats an explicit null like an absent field.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn compare(input: &Value, back: &Value, path: String, lost: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
            for key in keys.keys() {
                let here = format!("{path}.{key}");
                match (a.get(*key), b.get(*key)) {
                    (Some(x), Some(y)) => compare(x, y, here, lost),
                    (Some(_), None) => lost.push(format!("{here} (unknown field)")),
                    (None, Some(_)) => lost.push(format!("{here} (added)")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(x, y, format!("{path}[{i}]"), lost);
            }
        }
        (a, b) if a == b => {}
        (a, b) => lost.push(format!("{path}: {a} became {b}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misplaced_field_is_rejected() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  prots: []\n";
        let err = parse_stream(yaml).expect_err("unknown field");
        assert!(err.contains(".spec.prots (unknown field)"), "{err}");
    }

    #[test]
    fn a_wrong_type_is_located() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports: 80\n";
        let err = parse_stream(yaml).expect_err("wrong type");
        assert!(err.contains("spec.ports"), "{err}");
    }

    #[test]
    fn an_unknown_kind_is_rejected() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n";
        let err = parse_stream(yaml).expect_err("unknown kind");
        assert!(err.contains("unknown kind v1/Pod"), "{err}");
    }
}
