//! Watch streams: newline-delimited `{"type", "object"}` events, replayed
//! from a resourceVersion, with bookmarks, `sendInitialEvents` and `410 Gone`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures::channel::mpsc;
use futures::SinkExt as _;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::handlers::Shared;
use super::registry::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Event, Store};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

/// What one watch request asked for.
pub struct WatchRequest {
    /// The type watched, at the version the client asked for.
    pub rt: ResourceType,
    /// Namespace, or `None` for all namespaces.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// Send objects as one-row Tables (`kubectl get -w`), with this `includeObject`.
    pub table: Option<Option<String>>,
    /// Send metadata only (`as=PartialObjectMetadata`).
    pub metadata_only: bool,
}

impl WatchRequest {
    /// The object as sent: itself, or a one-row Table whose column
    /// definitions only the stream's first Table carries, as kube-apiserver does.
    fn shape(&self, obj: Value, first: &mut bool) -> Value {
        let Some(include) = &self.table else {
            return if self.metadata_only {
                super::table::partial(&obj)
            } else {
                obj
            };
        };
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok());
        let mut table = super::table::render(&self.rt, &[obj], rv.unwrap_or(0), include.as_deref());
        if !std::mem::take(first) {
            if let Some(map) = table.as_object_mut() {
                map.remove("columnDefinitions");
            }
        }
        table
    }

    fn selects(&self, e: &Event) -> bool {
        super::events::storage_of(&self.rt.group, &self.rt.plural) == (&e.group, &e.plural)
            && self.namespace.as_deref().is_none_or(|ns| e.namespace == ns)
    }

    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The event type this watch sees for `e`, taking selector leavers and joiners into account.
    fn translate(&self, e: &Event) -> Option<(&'static str, Value)> {
        if !self.selects(e) {
            return None;
        }
        let obj = Store::present(&self.rt, &e.object);
        let now = self.matches(&obj);
        let before = e
            .old
            .as_ref()
            .is_some_and(|o| self.matches(&Store::present(&self.rt, o)));
        let kind = match (e.kind, before, now) {
            ("MODIFIED", true, true) => "MODIFIED",
            ("MODIFIED", false, true) => "ADDED",
            ("MODIFIED", true, false) => "DELETED",
            ("MODIFIED", false, false) => return None,
            (kind, _, true) => kind,
            _ => return None,
        };
        Some((kind, obj))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta})
    }
}

fn line(kind: &str, object: Value) -> Result<Bytes, Infallible> {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

/// Start a watch and return its streaming body (errors come as ERROR events).
pub fn start(shared: Arc<Shared>, w: WatchRequest, query: &HashMap<String, String>) -> Body {
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true" || v == "1");
    let bookmarks = flag("allowWatchBookmarks");
    let send_initial = flag("sendInitialEvents");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let requested = query.get("resourceVersion").cloned().unwrap_or_default();
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);

    // Everything read from the store is read under one lock with the subscription.
    let setup = {
        let store = shared.store.lock().expect("store lock");
        let start_from_now = send_initial || requested.is_empty() || requested == "0";
        let since = if start_from_now {
            Ok(store.resource_version())
        } else {
            requested.parse::<u64>().map_err(|_| {
                ApiError::plain(
                    400,
                    "BadRequest",
                    format!("invalid resource version: {requested}"),
                )
            })
        };
        since.and_then(|since| {
            let initial = if start_from_now {
                store.list(&w.rt, w.namespace.as_deref(), &w.labels, &w.fields)
            } else {
                Vec::new()
            };
            store
                .subscribe(since)
                .map(|(past, live)| (since, initial, past, live))
        })
    };

    tokio::spawn(async move {
        let (since, initial, past, mut live) = match setup {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(line("ERROR", e.to_status())).await;
                return;
            }
        };
        let mut latest = since;
        let mut first = true;
        for obj in initial {
            if tx
                .send(line("ADDED", w.shape(obj, &mut first)))
                .await
                .is_err()
            {
                return;
            }
        }
        if send_initial
            && tx
                .send(line("BOOKMARK", w.bookmark(since, true)))
                .await
                .is_err()
        {
            return;
        }
        for e in past {
            latest = latest.max(e.rv);
            if let Some((kind, obj)) = w.translate(&e) {
                if tx.send(line(kind, w.shape(obj, &mut first))).await.is_err() {
                    return;
                }
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            let out = tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick() => {
                    if !bookmarks { continue; }
                    line("BOOKMARK", w.bookmark(latest, false))
                }
                received = live.recv() => match received {
                    Ok(e) => {
                        latest = latest.max(e.rv);
                        match w.translate(&e) {
                            Some((kind, obj)) => line(kind, w.shape(obj, &mut first)),
                            None => continue,
                        }
                    }
                    // A watcher that fell behind is closed, as the real cache does; clients re-watch.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(rx)
}
