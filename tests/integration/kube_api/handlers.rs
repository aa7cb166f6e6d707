//! HTTP routing: Kubernetes URL shapes to store operations, Status errors,
//! and the request log tests assert on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::{self, Tokens};
use super::deletion::DeleteOpts;
use super::discovery;
use super::patch::{self, PatchKind};
use super::protobuf;
use super::registry::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Store, Sub, WriteOpts};
use super::table;
use super::watch::{self, WatchRequest};

/// One request as a Kubernetes audit log would describe it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// HTTP method.
    pub method: String,
    /// Request path without the query.
    pub path: String,
    /// Query string, undecoded.
    pub query: String,
    /// API group ("" for core); `None` for non-resource URLs such as discovery.
    pub group: Option<String>,
    /// Resource, with a subresource as in `users/status`; `None` for non-resource URLs.
    pub resource: Option<String>,
    /// Namespace in the URL.
    pub namespace: Option<String>,
    /// Object name in the URL.
    pub name: Option<String>,
    /// `Content-Type` of a request with a body.
    pub content_type: Option<String>,
    /// Body of a write (a patch, a created or replaced object, DeleteOptions).
    pub body: Option<String>,
    /// `Accept`, e.g. kubectl's Table request.
    pub accept: Option<String>,
    /// `User-Agent`, to tell kubectl from the controller.
    pub user_agent: Option<String>,
    /// HTTP status answered (200 for watches, whose errors come in-stream).
    pub status: u16,
    /// The authenticated user name.
    pub user: Option<String>,
    /// The bearer token sent, to tell two clients of one user apart.
    pub token: Option<String>,
}

impl RecordedRequest {
    /// The body parsed as JSON or YAML, for assertions on patches.
    pub fn body_json(&self) -> Option<Value> {
        self.body
            .as_deref()
            .and_then(|b| serde_yaml::from_str(b).ok())
    }
}

/// State shared by all connections.
pub struct Shared {
    /// The objects.
    pub store: Mutex<Store>,
    /// Every request so far.
    pub log: Mutex<Vec<RecordedRequest>>,
    /// `host:port` the server listens on.
    pub address: String,
    /// Bearer tokens and whom they authenticate.
    pub tokens: Mutex<Tokens>,
    /// Lease requests made with these bearer tokens wait this long before
    /// being served (leader-election fencing tests).
    pub lease_delay: Mutex<HashMap<String, std::time::Duration>>,
}

fn json_response(code: u16, body: &Value) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn not_found_path() -> ApiError {
    ApiError::plain(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// What a resource URL names.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Sub,
}

/// The axum fallback handler: every request comes here.
pub async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let header = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let mut record = RecordedRequest {
        verb: String::new(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        group: None,
        resource: None,
        namespace: None,
        name: None,
        content_type: header(header::CONTENT_TYPE),
        body: (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned()),
        accept: header(header::ACCEPT),
        user_agent: header(header::USER_AGENT),
        status: 0,
        user: None,
        token: header(header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string)),
    };
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let attrs = auth::attributes(parts.method.as_str(), parts.uri.path(), &query);
    if attrs.resource_request && attrs.resource == "leases" {
        let token = header(header::AUTHORIZATION).unwrap_or_default();
        let token = token.strip_prefix("Bearer ").unwrap_or_default();
        let delay = shared
            .lease_delay
            .lock()
            .expect("lease delay lock")
            .get(token)
            .copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
    let admitted = {
        let store = shared.store.lock().expect("store lock");
        let tokens = shared.tokens.lock().expect("tokens lock");
        auth::authenticate(&tokens, &store, &parts.headers).and_then(|user| {
            record.user = Some(user.name.clone());
            auth::authorize(&store, &user, &attrs)
        })
    };
    let response = match admitted {
        Ok(()) => route(
            &shared,
            &parts.method,
            &segments,
            &query,
            &bytes,
            &mut record,
        ),
        Err(e) => {
            if attrs.resource_request {
                record.verb = attrs.verb.clone();
                record.group = Some(attrs.group.clone());
                record.resource = Some(if attrs.subresource.is_empty() {
                    attrs.resource.clone()
                } else {
                    format!("{}/{}", attrs.resource, attrs.subresource)
                });
                record.namespace = (!attrs.namespace.is_empty()).then(|| attrs.namespace.clone());
                record.name = (!attrs.name.is_empty()).then(|| attrs.name.clone());
            }
            error_response(&e)
        }
    };
    record.status = response.status().as_u16();
    if record.verb.is_empty() {
        record.verb = parts.method.as_str().to_lowercase();
    }
    shared.log.lock().expect("log lock").push(record);
    response
}

fn route(
    shared: &Arc<Shared>,
    method: &Method,
    segs: &[&str],
    query: &HashMap<String, String>,
    body: &[u8],
    record: &mut RecordedRequest,
) -> Response {
    let discovery_doc = |doc: Option<Value>| match doc {
        Some(d) if method == Method::GET => json_response(200, &d),
        Some(_) => error_response(&ApiError::plain(
            405,
            "MethodNotAllowed",
            "the server does not allow this method",
        )),
        None => error_response(&not_found_path()),
    };
    let store = || shared.store.lock().expect("store lock");
    match segs {
        ["version"] => discovery_doc(Some(discovery::version())),
        ["healthz" | "livez" | "readyz"] => (StatusCode::OK, "ok").into_response(),
        ["api"] => discovery_doc(Some(discovery::core_versions(&shared.address))),
        ["apis"] => discovery_doc(Some(discovery::groups(&store().registry))),
        ["openapi", "v3"] => discovery_doc(Some(discovery::openapi_root(&store().registry))),
        ["openapi", "v3", rest @ ..] => discovery_doc(discovery::openapi_group_version(
            &store().registry,
            &rest.join("/"),
        )),
        ["api", version] => discovery_doc(discovery::resources(&store().registry, "", version)),
        ["apis", group] => discovery_doc(discovery::group(&store().registry, group)),
        ["apis", group, version] => {
            discovery_doc(discovery::resources(&store().registry, group, version))
        }
        ["api", version, rest @ ..] => {
            resource(shared, method, "", version, rest, query, body, record)
        }
        ["apis", group, version, rest @ ..] => {
            resource(shared, method, group, version, rest, query, body, record)
        }
        _ => error_response(&not_found_path()),
    }
}

/// Resolve `rest` (after `/api/v1` or `/apis/g/v`) to a resource type, namespace, name and subresource.
fn target(store: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let reg = &store.registry;
    let namespaced_path = rest.len() >= 3
        && rest[0] == "namespaces"
        && reg
            .find(group, version, rest[2])
            .is_some_and(|t| t.namespaced);
    let (namespace, rest) = if namespaced_path {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let rt = reg
        .find(group, version, rest[0])
        .cloned()
        .ok_or_else(not_found_path)?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = match rest.get(2) {
        None => Sub::Main,
        Some(&"status") if rt.status_subresource => Sub::Status,
        Some(_) => return Err(not_found_path()),
    };
    if rest.len() > 3 || (rt.namespaced && namespace.is_none() && name.is_some()) {
        return Err(not_found_path());
    }
    Ok(Target {
        rt,
        namespace,
        name,
        sub,
    })
}

#[allow(clippy::too_many_arguments)]
fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
    body: &[u8],
    record: &mut RecordedRequest,
) -> Response {
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = |collection: bool| match (method.as_str(), collection) {
        ("GET", true) if watching => "watch",
        ("GET", true) => "list",
        ("GET", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => "unknown",
    };
    record.group = Some(group.into());
    let mut store = shared.store.lock().expect("store lock");
    let t = match target(&store, group, version, rest) {
        Ok(t) => t,
        Err(e) => {
            // Unresolvable: guess from the URL's shape (collections have an odd segment count).
            record.verb = verb(rest.len() % 2 == 1).into();
            return error_response(&e);
        }
    };
    record.verb = verb(t.name.is_none()).into();
    record.resource = Some(match t.sub {
        Sub::Main => t.rt.plural.clone(),
        Sub::Status => format!("{}/status", t.rt.plural),
    });
    record.namespace = t.namespace.clone();
    record.name = t.name.clone();
    let ns = t.namespace.clone().unwrap_or_default();
    let opts = WriteOpts {
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        field_manager: query.get("fieldManager").cloned(),
        strict: query.get("fieldValidation").is_some_and(|v| v == "Strict"),
        force: query.get("force").is_some_and(|v| v == "true"),
    };
    let selectors = || -> Result<(LabelSelector, FieldSelector), ApiError> {
        let bad = |e: String| ApiError::plain(400, "BadRequest", e);
        let labels =
            LabelSelector::parse(query.get("labelSelector").map_or("", |s| s)).map_err(bad)?;
        let fields =
            FieldSelector::parse(query.get("fieldSelector").map_or("", |s| s)).map_err(bad)?;
        Ok((labels, fields))
    };
    let protobuf = record
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("protobuf"));
    let parse_body = || -> Result<Value, ApiError> {
        let bad = |e: String| ApiError::plain(400, "BadRequest", format!("invalid body: {e}"));
        if protobuf {
            return protobuf::decode(body).map_err(bad);
        }
        serde_json::from_slice(body).map_err(|e| bad(e.to_string()))
    };
    let result = match (record.verb.as_str(), &t.name) {
        ("watch", _) => {
            let (labels, fields) = match selectors() {
                Ok(s) => s,
                Err(e) => return error_response(&e),
            };
            let table = (t.rt.custom && table::wanted(record.accept.as_deref()))
                .then(|| query.get("includeObject").cloned());
            let metadata_only = table.is_none() && table::metadata_wanted(record.accept.as_deref());
            let w = WatchRequest { rt: t.rt, namespace: t.namespace, labels, fields, table, metadata_only };
            drop(store);
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(watch::start(shared.clone(), w, query))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        ("list", _) => selectors().map(|(labels, fields)| {
            let items = store.list(&t.rt, t.namespace.as_deref(), &labels, &fields);
            if t.rt.custom && table::wanted(record.accept.as_deref()) {
                let include = query.get("includeObject").map(String::as_str);
                return table::render(&t.rt, &items, store.resource_version(), include);
            }
            if table::metadata_wanted(record.accept.as_deref()) {
                // Metadata only, as kube-apiserver answers `as=PartialObjectMetadataList`.
                let items: Vec<Value> = items.iter().map(table::partial).collect();
                return json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": store.resource_version().to_string()},
                    "items": items,
                });
            }
            json!({
                "kind": t.rt.list_kind,
                "apiVersion": t.rt.api_version(),
                "metadata": {"resourceVersion": store.resource_version().to_string()},
                "items": items,
            })
        }),
        ("get", Some(name)) => store.get(&t.rt, &ns, name).map(|obj| {
            if t.rt.custom && t.sub == Sub::Main && table::wanted(record.accept.as_deref()) {
                let include = query.get("includeObject").map(String::as_str);
                table::render(&t.rt, &[obj], store.resource_version(), include)
            } else if table::metadata_wanted(record.accept.as_deref()) {
                table::partial(&obj)
            } else {
                obj
            }
        }),
        ("create", None) => parse_body().and_then(|b| store.create(&t.rt, &ns, b, &opts)),
        ("update", Some(name)) => parse_body().and_then(|b| store.update(&t.rt, &ns, name, b, t.sub, &opts)),
        ("patch", Some(name)) => {
            let kind = record.content_type.as_deref().and_then(PatchKind::from_content_type);
            match kind {
                None => Err(ApiError::plain(415, "UnsupportedMediaType", "unsupported patch content type")),
                Some(kind) => patch::parse_body(kind, body)
                    .map_err(|e| ApiError::plain(400, "BadRequest", format!("invalid patch: {e}")))
                    .and_then(|p| store.patch(&t.rt, &ns, name, kind, &p, t.sub, &opts)),
            }
        }
        ("delete", Some(name)) => {
            let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let d = DeleteOpts::from_body(&options, opts.dry_run, query.get("propagationPolicy").map(|s| s.as_str()));
            store.delete(&t.rt, &ns, name, &d)
        }
        ("deletecollection", None) => selectors().map(|(labels, fields)| {
            let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let d = DeleteOpts::from_body(&options, opts.dry_run, query.get("propagationPolicy").map(|s| s.as_str()));
            let victims = store.list(&t.rt, t.namespace.as_deref(), &labels, &fields);
            let items: Vec<Value> = victims
                .iter()
                .filter_map(|v| {
                    let vns = v["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
                    let vname = v["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    store.delete(&t.rt, &vns, &vname, &d).ok()
                })
                .collect();
            json!({"kind": t.rt.list_kind, "apiVersion": t.rt.api_version(), "metadata": {}, "items": items})
        }),
        _ => Err(ApiError::plain(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")),
    };
    match result {
        Ok(obj) => json_response(if record.verb == "create" { 201 } else { 200 }, &obj),
        Err(e) => error_response(&e),
    }
}
