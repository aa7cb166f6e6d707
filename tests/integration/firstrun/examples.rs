//! Issue 4's acceptance through the real binary: `stagegate run --dir` on a
//! copy of `examples/`, every endpoint, DESIGN §3 as it applies to the example
//! organization, and session and token semantics through file edits while the
//! daemon runs. One daemon for the whole story (the machine has 2 cores).
//!
//! The daemon keeps its per-client request limit (burst 100, then 50/s): the
//! story makes about 90 requests, so more checks belong in another test.

use super::{provide_secret, ready_client, secret_value};
use crate::api::client::ApiClient;
use crate::daemon::harness::{copy_examples, status_of, wait_for, Running, Workspace};
use serde_json::{json, Value};
use stagegate::store::Store;

const NS: &str = "ml-platform";
const MARIA_PASSWORD: &str = "maria-set-by-an-admin";
const FRAUD: fn() -> Value = || json!({"customer": "acme", "project": "fraud"});

/// New stage requests, decided after those of `examples/`.
const MORE_REQUESTS: &str = r#"apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata:
  name: fraud-ranker-001-deploy
  namespace: ml-platform
  annotations:
    stagegate.dev/requested-at: "2026-11-20T09:00:00Z"
spec:
  model: fraud-ranker
  scope: {customer: acme, project: fraud}
  from: None
  to: Dev
  requestedBy: alan
  reason: a second model
---
apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata:
  name: fraud-ranker-002-staging
  namespace: ml-platform
  annotations:
    stagegate.dev/requested-at: "2026-11-21T09:00:00Z"
spec:
  model: fraud-ranker
  scope: {customer: acme, project: fraud}
  from: Dev
  to: Staging
  requestedBy: alan
  reason: good enough for Staging
---
apiVersion: stagegate.dev/v1alpha1
kind: ModelStageRequest
metadata:
  name: churn-features-001-deploy
  namespace: ml-platform
  annotations:
    stagegate.dev/requested-at: "2026-11-22T09:00:00Z"
spec:
  model: churn-features
  scope: {customer: acme, project: churn}
  from: None
  to: Dev
  requestedBy: dan
  reason: features for the churn model
"#;

/// The running organization: daemon, client, and where its Secrets are.
struct Org {
    ws: Workspace,
    r: Running,
    api: ApiClient,
}

impl Org {
    fn start() -> Org {
        let ws = Workspace::new();
        copy_examples(&ws.manifests());
        // The one deliberate exception of examples/: maria's password, provided by an administrator.
        provide_secret(
            &ws.secrets(),
            NS,
            "maria-password",
            "password",
            MARIA_PASSWORD,
        );
        let r = ws.start(&[]);
        let api = ready_client(&r);
        Org { ws, r, api }
    }

    /// A value of a delivered Secret of ml-platform.
    fn secret(&self, name: &str, key: &str) -> String {
        let file = self.ws.secrets().join(NS).join(format!("{name}.yaml"));
        secret_value(&self.r, &file, key)
    }

    /// A session for a user of examples/: maria's referenced password, or the generated one.
    fn login(&self, user: &str) -> String {
        let password = match user {
            "maria" => MARIA_PASSWORD.to_string(),
            _ => self.secret(&format!("{user}-password"), "password"),
        };
        self.api.session(user, &password)
    }

    /// Polls `check` with the daemon's log on timeout.
    fn until<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        wait_for(&self.r, 60, what, check)
    }

    fn allowed(&self, bearer: &str, q: Value) -> bool {
        self.api.allowed(bearer, &q).0
    }

    fn edit(&self, file: &str, from: &str, to: &str) {
        let text = self.ws.read(file);
        assert!(text.contains(from), "{file} holds {from:?}");
        self.ws.write(file, &text.replacen(from, to, 1));
    }
}

fn view(model: &str) -> Value {
    json!({"action": "models:view", "model": model})
}

fn transition(model: &str, to: &str) -> Value {
    json!({"action": "models:transition", "model": model, "to": to})
}

#[test]
fn the_example_organization_through_the_real_binary() {
    let org = Org::start();
    every_object_ready_and_every_endpoint(&org);
    design_rules_on_the_examples(&org);
    stage_rules_on_new_requests(&org);
    role_change_waits_for_the_next_login_and_revocation_is_immediate(&org);
    a_delivered_token_authenticates_until_rotated(&org);
    assert_eq!(org.r.terminate().code(), Some(0));
}

fn every_object_ready_and_every_endpoint(org: &Org) {
    let store = org.ws.store();
    org.until("maria Ready (her Secret was provided)", || {
        status_of(&store, "User", NS, "maria").filter(|s| s.0)
    });
    let not_ready: Vec<_> = store
        .statuses()
        .unwrap()
        .into_iter()
        .filter(|s| !s.ready)
        .map(|s| s.key.to_string())
        .collect();
    assert!(not_ready.is_empty(), "{not_ready:?}");
    org.until("the log line saying all objects are ready", || {
        org.r.log().contains("all objects ready").then_some(())
    });
    let api = &org.api;
    assert_eq!(api.get("/healthz", None).status, 200);
    assert_eq!(api.get("/readyz", None).body["status"], "ready");

    // A generated password (ada) and a referenced one (maria).
    let ada = org.login("ada");
    let who = api.whoami(&ada);
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(who.body["kind"], "user");
    assert_eq!(who.body["name"], "ada");
    assert_eq!(who.body["roles"], json!([{"role": "Admin", "scope": {}}]));
    assert_eq!(who.body["bootstrap"], false);
    assert!(who.body["expiresAt"].is_string());
    let maria = org.login("maria");
    assert_eq!(
        api.whoami(&maria).body["roles"],
        json!([{"role": "Manager", "scope": {"customer": "acme"}}])
    );
    assert_eq!(api.login("maria", "not-her-password").status, 401);

    let models = api.get("/v1/models", Some(&ada));
    assert_eq!(models.status, 200, "{}", models.text);
    assert_eq!(
        models.body["models"],
        json!([
            {"name": "churn-model", "scope": {"customer": "acme", "project": "churn"}, "owner": "anna", "stage": "Dev"},
            {"name": "fraud-detector", "scope": {"customer": "acme", "project": "fraud"}, "owner": "alan", "stage": "Production"},
        ])
    );
    let r = api.authorize(&ada, &view("fraud-detector"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allowed"], true);
    assert!(r.body["reason"].as_str().unwrap().contains("Admin"));

    let metrics = api.get("/metrics", None);
    assert_eq!(metrics.status, 200);
    for m in [
        "stagegate_http_requests_total",
        "stagegate_reconciles_total",
        "stagegate_objects",
    ] {
        assert!(metrics.text.contains(m), "{m} in /metrics");
    }

    // Logout ends that session only.
    let second = org.login("ada");
    assert_eq!(api.logout(&second).status, 204);
    assert_eq!(api.whoami(&second).status, 401);
    assert_eq!(api.whoami(&ada).status, 200);
}

fn design_rules_on_the_examples(org: &Org) {
    let api = &org.api;
    let [ada, maria, alan, anna, dan, dora] =
        ["ada", "maria", "alan", "anna", "dan", "dora"].map(|u| org.login(u));

    // An Analyst never sees a Production model, even its own (alan deployed fraud-detector).
    assert!(api.model_names(&alan).is_empty());
    assert!(!org.allowed(&alan, view("fraud-detector")));
    // ... and sees its own Dev model (anna's churn-model).
    assert_eq!(api.model_names(&anna), ["churn-model"]);
    // A Manager sees Staging and Production of its scope, but not someone else's Dev model.
    assert_eq!(api.model_names(&maria), ["fraud-detector"]);
    assert!(org.allowed(&maria, view("fraud-detector")));
    assert!(!org.allowed(&maria, view("churn-model")));
    // A Developer sees Dev and Staging, never Production; a Deployer Staging and Production.
    assert_eq!(api.model_names(&dan), ["churn-model"]);
    assert_eq!(api.model_names(&dora), ["fraud-detector"]);
    assert_eq!(api.model_names(&ada), ["churn-model", "fraud-detector"]);

    // Only an Admin-level role manages users and tokens; a Manager cannot.
    let acme = json!({"customer": "acme"});
    for (who, s) in [
        ("ada", &ada),
        ("maria", &maria),
        ("dan", &dan),
        ("dora", &dora),
    ] {
        let q = json!({"action": "users:manage", "scope": acme});
        assert_eq!(org.allowed(s, q), who == "ada", "{who} users:manage");
        let q = json!({"action": "tokens:manage", "scope": acme});
        assert_eq!(org.allowed(s, q), who == "ada", "{who} tokens:manage");
    }
    // Production → Staging (a rollback) is not in the table: Admin only.
    assert!(org.allowed(&ada, transition("fraud-detector", "Staging")));
    let r = api.authorize(&maria, &transition("fraud-detector", "Staging"));
    assert_eq!(r.body["allowed"], false, "{}", r.text);
    assert!(!org.allowed(&dora, transition("fraud-detector", "Staging")));
    // Deploying a new model to Dev: not for a Deployer.
    let deploy = json!({"action": "models:deploy", "model": "new-model", "scope": FRAUD()});
    assert!(org.allowed(&alan, deploy.clone()));
    assert!(org.allowed(&maria, deploy.clone()));
    assert!(!org.allowed(&dora, deploy));

    // The delivered API tokens are principals of their own.
    let ci = org.secret("fraud-ci-deployer-token", "token");
    let who = api.whoami(&ci);
    assert_eq!(who.body["kind"], "token", "{}", who.text);
    assert_eq!(who.body["name"], "fraud-ci-deployer");
    assert_eq!(api.model_names(&ci), ["fraud-detector"]);
    let monitor = org.secret("acme-model-monitor-credentials", "token");
    assert_eq!(
        api.whoami(&monitor).body["roles"],
        json!([{"role": "Manager", "scope": {"customer": "acme"}}])
    );
    assert!(!org.allowed(&monitor, view("churn-model")));
}

fn stage_rules_on_new_requests(org: &Org) {
    let api = &org.api;
    org.ws.write("more-requests.yaml", MORE_REQUESTS);
    let dora = org.login("dora");
    org.until("fraud-ranker in Staging", || {
        api.model_names(&dora)
            .contains(&"fraud-ranker".to_string())
            .then_some(())
    });
    let [maria, alan, anna, dan] = ["maria", "alan", "anna", "dan"].map(|u| org.login(u));
    // The Deployer of acme/fraud moves Staging → Production; an Analyst and a Developer never.
    assert!(org.allowed(&dora, transition("fraud-ranker", "Production")));
    assert!(org.allowed(&maria, transition("fraud-ranker", "Production")));
    assert!(!org.allowed(&alan, transition("fraud-ranker", "Production")));
    assert!(!org.allowed(&dan, transition("fraud-ranker", "Production")));
    // Staging → Dev (reject): Manager and Deployer yes, Analyst no.
    assert!(org.allowed(&dora, transition("fraud-ranker", "Dev")));
    assert!(!org.allowed(&alan, transition("fraud-ranker", "Dev")));
    // An Analyst sees its own Staging model, still not its Production one.
    assert_eq!(api.model_names(&alan), ["fraud-ranker"]);
    assert_eq!(api.model_names(&maria), ["fraud-detector", "fraud-ranker"]);
    // An Analyst promotes only its own models to Staging; a Developer any model.
    org.until("churn-features in Dev", || {
        api.model_names(&dan)
            .contains(&"churn-features".to_string())
            .then_some(())
    });
    assert!(org.allowed(&anna, transition("churn-model", "Staging")));
    assert!(!org.allowed(&anna, transition("churn-features", "Staging")));
    assert!(org.allowed(&dan, transition("churn-model", "Staging")));
    // Managers see only their own Dev models: not dan's churn-features.
    assert!(!org.allowed(&maria, view("churn-features")));
    assert!(!api
        .model_names(&anna)
        .contains(&"churn-features".to_string()));
}

fn role_change_waits_for_the_next_login_and_revocation_is_immediate(org: &Org) {
    let api = &org.api;
    let before = org.login("alan");
    let analyst = json!([{"role": "Analyst", "scope": FRAUD()}]);
    assert_eq!(api.whoami(&before).body["roles"], analyst);

    // alan becomes Manager of acme/fraud in the directory.
    org.edit(
        "bindings.yaml",
        "  user: alan\n  role: Analyst",
        "  user: alan\n  role: Manager",
    );
    let manager = json!([{"role": "Manager", "scope": FRAUD()}]);
    let after = org.until("a new login with the new role", || {
        let s = org.login("alan");
        (api.whoami(&s).body["roles"] == manager).then_some(s)
    });
    // The existing session keeps the roles held at login; the new one has the new role.
    assert_eq!(api.whoami(&before).body["roles"], analyst);
    assert!(!org.allowed(&before, view("fraud-detector")));
    assert!(org.allowed(&after, view("fraud-detector")));
    assert!(api
        .model_names(&after)
        .contains(&"fraud-detector".to_string()));

    // Revoking alan ends both sessions at once, and his login fails.
    let password = org.secret("alan-password", "password");
    org.edit(
        "users.yaml",
        "  displayName: Alan Turing\n",
        "  displayName: Alan Turing\n  state: Revoked\n",
    );
    org.until("alan's sessions rejected", || {
        (api.whoami(&after).status == 401).then_some(())
    });
    assert_eq!(api.whoami(&before).status, 401);
    assert_eq!(api.get("/v1/models", Some(&before)).status, 401);
    assert_eq!(api.login("alan", &password).status, 401);
}

fn a_delivered_token_authenticates_until_rotated(org: &Org) {
    let api = &org.api;
    let old = org.secret("fraud-ci-deployer-token", "token");
    assert_eq!(api.whoami(&old).status, 200);
    org.edit(
        "tokens.yaml",
        "  owner: dora\n  validity: 30d\n",
        "  owner: dora\n  validity: 30d\n  rotation: 1\n",
    );
    let new = org.until("a new key delivered", || {
        let t = org.secret("fraud-ci-deployer-token", "token");
        (t != old).then_some(t)
    });
    let who = org.until("the new token accepted", || {
        let r = api.whoami(&new);
        (r.status == 200).then_some(r)
    });
    assert_eq!(who.body["name"], "fraud-ci-deployer");
    let r = api.whoami(&old);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.error(), "unauthorized");
    // A typo in the new one is refused by its checksum.
    let mut typo = new.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    assert_eq!(api.whoami(&typo).status, 401);
}
