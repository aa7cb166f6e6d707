//! The benchmark organization shared by `benches/scale.rs` (in memory) and
//! `benches/daemon.rs` (as manifest files): 10,000 users, 50,000 bindings,
//! 5,000 tokens and 2,000 models created by stage requests, scaled down with
//! `STAGEGATE_BENCH_USERS`, `_BINDINGS`, `_TOKENS` and `_MODELS`.

use serde_json::{json, Value};

/// Reads a count from the environment, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How big the organization is.
pub struct Scale {
    pub users: usize,
    pub bindings: usize,
    pub tokens: usize,
    pub models: usize,
}

impl Scale {
    /// The scale, or what the environment says.
    pub fn from_env() -> Scale {
        Scale {
            users: env("STAGEGATE_BENCH_USERS", 10_000).max(1),
            bindings: env("STAGEGATE_BENCH_BINDINGS", 50_000),
            tokens: env("STAGEGATE_BENCH_TOKENS", 5_000),
            models: env("STAGEGATE_BENCH_MODELS", 2_000),
        }
    }
}

/// The namespace of every object.
pub const NS: &str = "org";
const CUSTOMERS: usize = 100;
const PROJECTS: usize = 5;

/// The customer of user (or model) `i`.
pub fn customer(i: usize) -> String {
    format!("c{:03}", i % CUSTOMERS)
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": NS})
}

/// The organization as manifests, by kind: users, bindings, tokens, stage requests.
/// User i is a Developer on project (c, p1) of its customer and gets further bindings
/// round-robin; every 1,000th binding is a global Admin.
pub fn organization(s: &Scale) -> [Vec<Value>; 4] {
    let users = (0..s.users)
        .map(|i| {
            json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "User", "metadata": meta(&format!("u{i:05}")),
                   "spec": {"displayName": format!("User {i}"), "email": format!("u{i}@example.com")}})
        })
        .collect();
    let bindings = (0..s.bindings)
        .map(|j| {
            let u = j % s.users;
            let c = customer(u);
            let (role, scope) = match j / s.users.max(1) % 5 {
                _ if j % 1000 == 999 => ("Admin", json!({})),
                0 => ("Developer", json!({"customer": c, "project": "p1"})),
                1 => (
                    "Analyst",
                    json!({"customer": c, "project": format!("p{}", j % PROJECTS)}),
                ),
                2 => ("Deployer", json!({"customer": c, "project": "p2"})),
                3 => ("Manager", json!({"customer": c})),
                _ => ("Developer", json!({"customer": c, "project": "p3"})),
            };
            json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "AccessBinding", "metadata": meta(&format!("b{j:06}")),
                   "spec": {"user": format!("u{u:05}"), "role": role, "scope": scope}})
        })
        .collect();
    let tokens = (0..s.tokens)
        .map(|t| {
            let u = (t * 2) % s.users;
            json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "ApiToken", "metadata": meta(&format!("t{t:05}")),
                   "spec": {"role": "Deployer", "scope": {"customer": customer(u), "project": "p2"},
                            "owner": format!("u{u:05}"), "validity": "90d"}})
        })
        .collect();
    let requests = (0..s.models)
        .map(|m| {
            let u = m % s.users;
            let at = jiff::Timestamp::from_second(1_790_000_000 + m as i64).expect("valid time");
            json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "ModelStageRequest",
                   "metadata": {"name": format!("m{m:05}-deploy"), "namespace": NS,
                                "annotations": {"stagegate.dev/requested-at": at.to_string()}},
                   "spec": {"model": format!("m{m:05}"), "scope": {"customer": customer(u), "project": "p1"},
                            "from": "None", "to": "Dev", "requestedBy": format!("u{u:05}"), "reason": "first deploy"}})
        })
        .collect();
    [users, bindings, tokens, requests]
}

/// A new stage request a benchmark adds to the organization: `m00000`, deployed by the
/// first request, promoted from Dev to Staging by its owner (the row "edit one
/// ModelStageRequest").
#[allow(dead_code)] // Not every benchmark that includes this file adds it.
pub fn promotion() -> Value {
    json!({"apiVersion": "stagegate.dev/v1alpha1", "kind": "ModelStageRequest",
           "metadata": {"name": "m00000-staging", "namespace": NS},
           "spec": {"model": "m00000", "scope": {"customer": customer(0), "project": "p1"},
                    "from": "Dev", "to": "Staging", "requestedBy": "u00000"}})
}
