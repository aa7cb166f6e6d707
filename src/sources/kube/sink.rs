//! The Kubernetes [`SecretSink`]: token and generated-password Secrets are
//! created (never applied or replaced), owned by their object, labelled
//! `app.kubernetes.io/managed-by: stagegate` and annotated with key id and
//! expiry. A Secret stagegate did not write is never touched.
//!
//! The sink is synchronous because apply is: it must be called from a
//! blocking thread (the controller runs the core in `spawn_blocking`) and
//! drives each request with the runtime's `Handle::block_on`. Reads come from
//! the watch cache for watched namespaces (written through on every create,
//! so the next plan sees what was just delivered) and from a GET elsewhere
//! (the bootstrap admin Secret in the controller's namespace).

use super::cache::{SecretMeta, Shared};
use super::config::Settings;
use super::leader::Fence;
use super::{failpoint, MANAGED_BY, MANAGED_BY_LABEL};
use crate::resources::API_VERSION;
use crate::secrets::{
    Delivery, OutgoingSecret, SecretSink, SecretState, SinkError, EXPIRES_AT_ANNOTATION,
    KEY_ID_ANNOTATION, MANAGED_BY_ANNOTATION, OWNER_ANNOTATION,
};
use crate::snapshot::ObjectKey;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Delivers Secrets through the Kubernetes API.
#[derive(Clone)]
pub struct KubeSecretSink {
    client: Client,
    handle: tokio::runtime::Handle,
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    fence: Fence,
}

/// Whether a Secret (by what the cache keeps of its metadata, [`SecretMeta::of`]) was
/// written by stagegate, and with which key id.
pub fn classify(meta: &SecretMeta) -> SecretState {
    if meta.ours {
        SecretState::Ours {
            key_id: meta.key_id.as_deref().map(str::to_string),
        }
    } else {
        SecretState::Foreign
    }
}

fn io_err(namespace: &str, name: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Io {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl KubeSecretSink {
    /// A sink using `client`, reading watched namespaces from `shared`; `handle` runs its requests.
    pub fn new(
        client: Client,
        handle: tokio::runtime::Handle,
        shared: Arc<Shared>,
        settings: Arc<Settings>,
        fence: Fence,
    ) -> Self {
        KubeSecretSink {
            client,
            handle,
            shared,
            settings,
            fence,
        }
    }

    /// Refuses a write unless this replica is still sure it holds the Lease:
    /// an apply that outlives the leadership delivers nothing more.
    fn fenced(&self, namespace: &str, name: &str) -> Result<(), SinkError> {
        if self.fence.holds() {
            Ok(())
        } else {
            tracing::warn!(
                namespace,
                name,
                "not writing the Secret: leadership is no longer certain"
            );
            Err(io_err(
                namespace,
                name,
                "not written: this replica is no longer sure it holds the Lease",
            ))
        }
    }

    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The metadata of the Secret under `namespace/name`, from the cache when watched.
    fn current(&self, namespace: &str, name: &str) -> Result<Option<SecretMeta>, SinkError> {
        if self.settings.watches(namespace) {
            return Ok(self.shared.lock().secret(namespace, name).cloned());
        }
        self.get_metadata(namespace, name)
    }

    /// The metadata of the Secret under `namespace/name`, read from the API server.
    fn get_metadata(&self, namespace: &str, name: &str) -> Result<Option<SecretMeta>, SinkError> {
        self.handle
            .block_on(self.api(namespace).get_metadata_opt(name))
            .map(|m| m.map(|m| SecretMeta::of(m.metadata).2))
            .map_err(|e| io_err(namespace, name, e))
    }

    fn owner_reference(&self, owner: &ObjectKey) -> Option<OwnerReference> {
        let uid = self.shared.lock().uid(owner)?;
        Some(OwnerReference {
            api_version: API_VERSION.into(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid,
            controller: Some(true),
            // Blocking the owner's deletion would need update on <kind>/finalizers.
            block_owner_deletion: None,
        })
    }

    fn manifest(&self, s: &OutgoingSecret) -> Secret {
        let mut annotations = BTreeMap::new();
        annotations.insert(MANAGED_BY_ANNOTATION.to_string(), MANAGED_BY.to_string());
        annotations.insert(KEY_ID_ANNOTATION.to_string(), s.key_id.clone());
        annotations.insert(OWNER_ANNOTATION.to_string(), s.owner.to_string());
        if let Some(e) = &s.expires_at {
            annotations.insert(EXPIRES_AT_ANNOTATION.to_string(), e.clone());
        }
        let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string())]);
        let data = s
            .data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
            .collect();
        Secret {
            metadata: ObjectMeta {
                name: Some(s.name.clone()),
                namespace: Some(s.namespace.clone()),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: self.owner_reference(&s.owner).map(|o| vec![o]),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(data),
            ..Default::default()
        }
    }

    /// Deletes our previous Secret `ns/name` (rotation), only if it is still the one we saw.
    fn delete_ours(&self, ns: &str, name: &str, old: &SecretMeta) -> Result<(), SinkError> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: old.uid.as_deref().map(str::to_string),
                resource_version: old.resource_version.as_deref().map(str::to_string),
            }),
            ..Default::default()
        };
        self.fenced(ns, name)?;
        self.shared.lock().announce_own_secret(ns, name, None);
        match self.handle.block_on(self.api(ns).delete(name, &dp)) {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                self.shared.lock().withdraw_own_secret(ns, name);
                return Err(io_err(ns, name, e));
            }
        }
        self.shared.update(|c| c.remove_own_secret(ns, name));
        Ok(())
    }

    fn create(&self, s: &OutgoingSecret) -> Result<Delivery, SinkError> {
        failpoint::hit("before-secret-create");
        let pp = PostParams {
            field_manager: Some(super::FIELD_MANAGER.into()),
            ..Default::default()
        };
        let manifest = self.manifest(s);
        self.fenced(&s.namespace, &s.name)?;
        self.shared
            .lock()
            .announce_own_secret(&s.namespace, &s.name, Some(s.key_id.as_str()));
        let created = self
            .handle
            .block_on(self.api(&s.namespace).create(&pp, &manifest));
        if created.is_err() {
            self.shared
                .lock()
                .withdraw_own_secret(&s.namespace, &s.name);
        }
        match created {
            Ok(created) => {
                self.shared.update(|c| c.put_own_secret(created.metadata));
                failpoint::hit("after-secret-create");
                tracing::info!(namespace = %s.namespace, name = %s.name, key_id = %s.key_id, "secret created");
                Ok(Delivery::Delivered)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Somebody created it since we looked: see whose it is.
                let now = self.get_metadata(&s.namespace, &s.name)?;
                match now.as_ref().map(classify) {
                    Some(SecretState::Ours { key_id }) if key_id.as_deref() == Some(&s.key_id) => {
                        Ok(Delivery::Delivered)
                    }
                    _ => Ok(Delivery::Conflict),
                }
            }
            Err(e) => Err(io_err(&s.namespace, &s.name, e)),
        }
    }
}

impl SecretSink for KubeSecretSink {
    fn state(&self, namespace: &str, name: &str) -> Result<SecretState, SinkError> {
        Ok(self
            .current(namespace, name)?
            .as_ref()
            .map_or(SecretState::Absent, classify))
    }

    fn deliver(&self, s: &OutgoingSecret) -> Result<Delivery, SinkError> {
        let existing = self.current(&s.namespace, &s.name)?;
        match existing.as_ref().map(classify) {
            None => self.create(s),
            Some(SecretState::Foreign) => {
                tracing::warn!(namespace = %s.namespace, name = %s.name, "a Secret stagegate did not write is in the way; left untouched");
                Ok(Delivery::Conflict)
            }
            Some(SecretState::Ours { key_id }) if key_id.as_deref() == Some(&s.key_id) => {
                Ok(Delivery::Delivered)
            }
            Some(_) => {
                if let Some(old) = &existing {
                    self.delete_ours(&s.namespace, &s.name, old)?;
                }
                self.create(s)
            }
        }
    }
}
