//! Self-tests of the fake API server: kubectl workflows and kube-rs clients.

mod kube_client;
mod kubectl;
mod rbac;

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use stagegate::resources::{crd_file_name, crd_yaml, crds, User};

/// Write the crate's CRDs into `dir/crds`, one file each, as `stagegate crds` will.
fn write_crds(dir: &Path) -> PathBuf {
    let crds_dir = dir.join("crds");
    std::fs::create_dir_all(&crds_dir).unwrap();
    for crd in crds() {
        std::fs::write(crds_dir.join(crd_file_name(&crd)), crd_yaml(&crd)).unwrap();
    }
    crds_dir
}

/// A namespace, a Secret and three stagegate objects, as a user would apply them.
const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Secret
metadata:
  name: alice-password
  namespace: team-a
data:
  password: Y29ycmVjdC1ob3JzZQ==
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata:
  name: alice
  namespace: team-a
spec:
  email: alice@example.com
  passwordSecretRef: {name: alice-password, key: password}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata:
  name: alice-admin
  namespace: team-a
spec:
  user: alice
  role: Admin
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata:
  name: deploy-bot
  namespace: team-a
spec:
  role: Deployer
  scope: {customer: acme}
  validity: 30d
"#;

/// Parse kubectl's JSON output, showing it on failure.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Install the crate's CRDs through a kube-rs client.
async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        api.create(&PostParams::default(), &crd).await.unwrap();
    }
}

/// A minimal valid User.
fn user(name: &str) -> User {
    serde_json::from_value(json!({
        "apiVersion": "stagegate.dev/v1alpha1", "kind": "User",
        "metadata": {"name": name}, "spec": {"email": format!("{name}@example.com")},
    }))
    .unwrap()
}

/// The code and reason of an API error, or a panic for any other error.
fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}
