//! Watch tasks: one kube-runtime watcher per kind (and for Secrets) per
//! watched namespace (or one cluster-wide), with the default backoff, feeding
//! the [`Cache`](super::cache::Cache).
//!
//! The four kinds are watched as `DynamicObject`, so an object that does not
//! match our types still arrives and is reported by the snapshot phase
//! instead of breaking the stream. Secrets are watched in the watched
//! namespaces by metadata only (`metadata_watcher`): whether a delivered
//! Secret still exists (SecretMissing) and whose a Secret is (SecretConflict)
//! need only names and annotations. The data of a Secret a User references
//! for its password is fetched by name when its resourceVersion changes
//! ([`fetch_passwords`]); nothing else's data is ever held. (A label
//! selector would not do: referenced Secrets carry no label of ours, and a
//! foreign Secret in the way must be seen.)

use super::cache::{key_of, Feed, Shared};
use super::config::Settings;
use crate::resources::{API_VERSION, DOMAIN_KINDS, KINDS};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::Value;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Every feed the settings call for.
pub fn feeds(settings: &Settings) -> Vec<Feed> {
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::new();
    // AccessDomains are cluster-scoped: one feed, whatever namespaces are watched.
    out.push(Feed {
        kind: DOMAIN_KINDS[0],
        namespace: None,
    });
    for kind in KINDS.iter().copied().chain([DOMAIN_KINDS[1], "Secret"]) {
        for ns in &scopes {
            out.push(Feed {
                kind,
                namespace: ns.clone(),
            });
        }
    }
    out
}

/// Starts one task per feed.
pub fn spawn(client: &Client, feeds: &[Feed], shared: &Arc<Shared>) -> Vec<JoinHandle<()>> {
    feeds
        .iter()
        .map(|feed| {
            let (client, feed, shared) = (client.clone(), feed.clone(), shared.clone());
            if feed.kind == "Secret" {
                tokio::spawn(watch_secrets(client, feed, shared))
            } else {
                tokio::spawn(watch_kind(client, feed, shared))
            }
        })
        .collect()
}

fn raw(kind: &str, obj: DynamicObject) -> Option<(crate::snapshot::ObjectKey, Value)> {
    let mut v = serde_json::to_value(obj).ok()?;
    super::cache::lean_object(&mut v);
    // List items may come without apiVersion and kind.
    if let Some(m) = v.as_object_mut() {
        m.entry("apiVersion").or_insert_with(|| API_VERSION.into());
        m.entry("kind").or_insert_with(|| kind.into());
    }
    Some((key_of(kind, &v)?, v))
}

async fn watch_kind(client: Client, feed: Feed, shared: Arc<Shared>) {
    let ar = super::api_resource(feed.kind);
    let api: Api<DynamicObject> = match &feed.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => buffer.clear(),
            // Each listed object is compacted as it arrives: the first list of a large
            // cluster is never held as whole objects.
            Ok(Event::InitApply(o)) => buffer.extend(
                raw(feed.kind, o).map(|(k, v)| (k, super::cache::Compact::new(feed.kind, v))),
            ),
            Ok(Event::InitDone) => {
                let items = std::mem::take(&mut buffer);
                shared.update(|c| c.replace_objects(&feed, items));
            }
            Ok(Event::Apply(o)) => {
                if let Some((k, v)) = raw(feed.kind, o) {
                    shared.update(|c| c.put_object(k, v));
                }
            }
            Ok(Event::Delete(o)) => {
                if let Some((k, _)) = raw(feed.kind, o) {
                    shared.update(|c| c.remove_object(&k));
                }
            }
            Err(e) => {
                tracing::warn!(kind = feed.kind, namespace = ?feed.namespace, error = %e, "watch failed; retrying with backoff")
            }
        }
    }
}

async fn watch_secrets(client: Client, feed: Feed, shared: Arc<Shared>) {
    // An Api of PartialObjectMeta lists and watches metadata only.
    let api: Api<PartialObjectMeta<Secret>> = match &feed.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => buffer.clear(),
            Ok(Event::InitApply(s)) => buffer.push(super::cache::SecretMeta::of(s.metadata)),
            Ok(Event::InitDone) => {
                let items = std::mem::take(&mut buffer);
                shared.update(|c| c.replace_secrets(&feed, items));
            }
            Ok(Event::Apply(s)) => shared.update_if_changed(|c| c.put_secret(s.metadata)),
            Ok(Event::Delete(s)) => {
                let ns = s.metadata.namespace.unwrap_or_default();
                let name = s.metadata.name.unwrap_or_default();
                shared.update_if_changed(|c| c.remove_secret(&ns, &name));
            }
            Err(e) => {
                tracing::warn!(namespace = ?feed.namespace, error = %e, "Secret watch failed; retrying with backoff")
            }
        }
    }
}

/// Fetches the data of referenced password Secrets that are new or changed
/// since they were last read (a Secret that is gone is forgotten).
pub async fn fetch_passwords(client: &Client, shared: &Shared) {
    let stale = shared.lock().stale_passwords();
    for (ns, name) in stale {
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        match api.get_opt(&name).await {
            Ok(found) => {
                let mut cache = shared.lock();
                cache.put_password((ns, name), found);
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, name = %name, error = %e, "could not read a referenced password Secret; retried at the next reconcile")
            }
        }
    }
}
