//! `docs/openapi.yaml` against the server's routes, both ways, and its
//! internal references.

use super::harness::{org_server, test_config};
use crate::stores::{on_both_stores, StoreKind};
use serde_yaml::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("docs/openapi.yaml"))
        .expect("valid YAML")
}

fn documented(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_mapping().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path string");
        for (method, op) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method");
            if METHODS.contains(&method) {
                assert!(
                    op["responses"].as_mapping().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no responses"
                );
                out.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                if k.as_str() == Some("$ref") {
                    out.push(v.as_str().expect("ref string").to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Sequence(s) => s.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

on_both_stores!(every_route_is_documented_and_every_documented_route_exists);
fn every_route_is_documented_and_every_documented_route_exists(store: StoreKind) {
    let spec = spec();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let documented = documented(&spec);
    let served: BTreeSet<(String, String)> = stagegate::api::route_table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    // And the running server answers each one (not 404/405).
    let srv = org_server(store, test_config());
    for (method, path) in &documented {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = srv.client.run(srv.client.request(m, path));
        assert!(
            ![404, 405].contains(&r.status),
            "{method} {path}: {}",
            r.status
        );
    }
}

#[test]
fn every_reference_resolves() {
    let spec = spec();
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix("#/").expect("local ref");
        let mut node = &spec;
        for part in pointer.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "unresolved {r}");
    }
}

#[test]
fn the_error_schema_lists_every_code_the_server_sends() {
    let spec = spec();
    let codes: BTreeSet<&str> = spec["components"]["schemas"]["Error"]["properties"]["error"]
        ["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    use stagegate::api::ApiError as E;
    let all = [
        E::BadRequest(String::new()),
        E::Unauthorized(String::new()),
        E::Forbidden(String::new()),
        E::NotFound(String::new()),
        E::MethodNotAllowed(String::new()),
        E::Conflict(String::new()),
        E::RequestTimeout(String::new()),
        E::PayloadTooLarge(String::new()),
        E::HeaderFieldsTooLarge(String::new()),
        E::UnsupportedMediaType(String::new()),
        E::TooManyRequests {
            message: String::new(),
            retry_after: Default::default(),
        },
        E::Unavailable(String::new()),
        E::Internal(String::new()),
    ];
    for e in all {
        assert!(codes.contains(e.code()), "{} missing", e.code());
    }
}

on_both_stores!(whoami_answers_exactly_the_documented_fields);
fn whoami_answers_exactly_the_documented_fields(store: StoreKind) {
    let spec = spec();
    let schema = &spec["components"]["schemas"]["WhoAmI"];
    let documented: BTreeSet<String> = schema["properties"]
        .as_mapping()
        .expect("WhoAmI properties")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let required: BTreeSet<String> = schema["required"]
        .as_sequence()
        .expect("WhoAmI required")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(documented.contains("bootstrap"), "{documented:?}");
    let srv = org_server(store, test_config());
    let session = srv.client.session("ada", "ada-password");
    let r = srv.client.whoami(&session);
    assert_eq!(r.status, 200, "{}", r.text);
    let served: BTreeSet<String> = r.body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(served, documented, "whoami fields vs docs/openapi.yaml");
    assert!(required.is_subset(&served));
    assert_eq!(r.body["bootstrap"], false);
}
