//! Watch tasks: one kube-runtime watcher per kind (and for Secrets) per
//! watched namespace (or one cluster-wide), with the default backoff, feeding
//! the [`Cache`](super::cache::Cache).
//!
//! The four kinds are watched as `DynamicObject`, so an object that does not
//! match our types still arrives and is reported by the snapshot phase
//! instead of breaking the stream. Secrets are watched in the watched
//! namespaces: the owned ones tell us whether a delivered Secret still exists
//! (SecretMissing) and whose a Secret is (SecretConflict), the referenced ones
//! carry passwords; a label selector could not narrow the RBAC needed (list
//! and watch on Secrets either way), and referenced Secrets carry no label.

use super::cache::{key_of, Feed, Shared};
use super::config::Settings;
use crate::resources::{API_VERSION, DOMAIN_KINDS, KINDS};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
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
            Ok(Event::InitApply(o)) => buffer.extend(raw(feed.kind, o)),
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
    let api: Api<Secret> = match &feed.namespace {
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
            Ok(Event::InitApply(s)) => buffer.push(s),
            Ok(Event::InitDone) => {
                let items = std::mem::take(&mut buffer);
                shared.update(|c| c.replace_secrets(&feed, items));
            }
            Ok(Event::Apply(s)) => shared.update(|c| c.put_secret(s)),
            Ok(Event::Delete(s)) => {
                let ns = s.metadata.namespace.unwrap_or_default();
                let name = s.metadata.name.unwrap_or_default();
                shared.update(|c| c.remove_secret(&ns, &name));
            }
            Err(e) => {
                tracing::warn!(namespace = ?feed.namespace, error = %e, "Secret watch failed; retrying with backoff")
            }
        }
    }
}
