//! The `stagegate.dev/cleanup` finalizer on User, ApiToken and AccessBinding:
//! added with a JSON patch guarded by a `test`, removed the same way once the
//! store entry is gone, so a concurrent change to the list makes the patch fail
//! rather than drop someone else's finalizer.

use super::{api_for, ReportError, FINALIZER};
use crate::snapshot::ObjectKey;
use json_patch::{
    jsonptr::PointerBuf, AddOperation, PatchOperation, RemoveOperation, TestOperation,
};
use kube::api::Patch;
use kube::Client;
use serde_json::Value;

/// Kinds that carry the finalizer (stage requests are records: deleting one undoes nothing).
pub fn finalized(kind: &str) -> bool {
    matches!(kind, "User" | "ApiToken" | "AccessBinding")
}

fn finalizers(value: &Value) -> Vec<String> {
    value
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Whether the object carries our finalizer.
pub fn has(value: &Value) -> bool {
    finalizers(value).iter().any(|f| f == FINALIZER)
}

fn ptr(s: &str) -> PointerBuf {
    PointerBuf::parse(s).unwrap_or_default()
}

/// The patch adding the finalizer to an object whose finalizers are `current`.
pub fn add_patch(value: &Value) -> json_patch::Patch {
    let current = finalizers(value);
    json_patch::Patch(if current.is_empty() {
        vec![
            PatchOperation::Test(TestOperation {
                path: ptr("/metadata/finalizers"),
                value: Value::Null,
            }),
            PatchOperation::Add(AddOperation {
                path: ptr("/metadata/finalizers"),
                value: serde_json::json!([FINALIZER]),
            }),
        ]
    } else {
        vec![
            PatchOperation::Test(TestOperation {
                path: ptr("/metadata/finalizers"),
                value: serde_json::json!(current),
            }),
            PatchOperation::Add(AddOperation {
                path: ptr("/metadata/finalizers/-"),
                value: Value::String(FINALIZER.into()),
            }),
        ]
    })
}

/// The patch removing our finalizer, or `None` when it is not there.
pub fn remove_patch(value: &Value) -> Option<json_patch::Patch> {
    let i = finalizers(value).iter().position(|f| f == FINALIZER)?;
    let path = ptr(&format!("/metadata/finalizers/{i}"));
    Some(json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: path.clone(),
            value: Value::String(FINALIZER.into()),
        }),
        PatchOperation::Remove(RemoveOperation { path }),
    ]))
}

/// Sends a finalizer patch for `key`.
pub async fn send(
    client: &Client,
    key: &ObjectKey,
    patch: json_patch::Patch,
    verb: &'static str,
) -> Result<(), ReportError> {
    let api = api_for(client, &key.kind, &key.namespace);
    match api
        .patch(&key.name, &super::patch_params(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing to release.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(ReportError::Api {
            verb,
            kind: key.kind.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn add_and_remove_are_guarded() {
        let bare = json!({"metadata": {"name": "a"}});
        let p = serde_json::to_value(add_patch(&bare)).unwrap();
        assert_eq!(
            p[0],
            json!({"op": "test", "path": "/metadata/finalizers", "value": null})
        );
        assert!(remove_patch(&bare).is_none());
        let other = json!({"metadata": {"finalizers": ["x", FINALIZER]}});
        assert!(has(&other));
        let p = serde_json::to_value(remove_patch(&other).unwrap()).unwrap();
        assert_eq!(
            p[1],
            json!({"op": "remove", "path": "/metadata/finalizers/1"})
        );
    }
}
