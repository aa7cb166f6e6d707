//! The API over a store filled by the real `stagegate apply` from a copy of
//! `examples/`: generated and referenced passwords, delivered tokens, role
//! changes, revocation and rotation through manifest edits.

use super::harness::{test_config, TestServer};
use crate::store::Env;
use crate::stores::{on_both_stores, StoreKind};
use serde_json::json;
use stagegate::api::ApiConfig;
use stagegate::secrets::PasswordParams;

const NS: &str = "ml-platform";

struct Org {
    env: Env,
    srv: TestServer,
}

impl Org {
    fn start(store: StoreKind) -> Org {
        let env = Env::from_examples().on(store);
        env.write_secret(NS, "maria-password", "password", "maria-set-by-admin");
        apply(&env);
        let config = ApiConfig {
            // The parameters `Env` passes to the binary, so unknown users cost the same.
            password_params: PasswordParams {
                m_cost: 64,
                t_cost: 1,
                p_cost: 1,
                ..PasswordParams::default()
            },
            ..test_config()
        };
        let srv = TestServer::start_at(config, &env.store, env.server_key(), None);
        Org { env, srv }
    }

    /// A value of a delivered Secret.
    fn secret(&self, name: &str, key: &str) -> String {
        let s = self
            .env
            .secret(NS, name)
            .unwrap_or_else(|| panic!("{name} delivered"));
        s["stringData"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{name}.{key}"))
            .to_string()
    }

    /// Re-applies the edited manifests and refreshes the API, as the daemon does.
    fn reapply(&self) {
        apply(&self.env);
        self.srv.state.refresh().unwrap();
    }
}

fn apply(env: &Env) {
    let (code, outcomes, out) = env.apply();
    assert!(
        code == 0 || code == 1,
        "apply failed: {outcomes:?} {}",
        crate::support::stderr(&out)
    );
}

on_both_stores!(generated_and_referenced_passwords_and_delivered_tokens_work);
fn generated_and_referenced_passwords_and_delivered_tokens_work(store: StoreKind) {
    let org = Org::start(store);
    let c = &org.srv.client;
    let ada = c.session("ada", &org.secret("ada-password", "password"));
    let maria = c.session("maria", "maria-set-by-admin");
    assert_eq!(c.whoami(&ada).body["roles"][0]["role"], "Admin");
    assert_eq!(c.model_names(&ada), ["churn-model", "fraud-detector"]);
    // Manager: Production yes, someone else's Dev model no.
    assert_eq!(c.model_names(&maria), ["fraud-detector"]);
    let alan = c.session("alan", &org.secret("alan-password", "password"));
    // Analyst: its own fraud-detector is in Production, so it sees nothing.
    assert!(c.model_names(&alan).is_empty());
    let anna = c.session("anna", &org.secret("anna-password", "password"));
    assert_eq!(c.model_names(&anna), ["churn-model"]);

    let token = org.secret("fraud-ci-deployer-token", "token");
    let w = c.whoami(&token);
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(w.body["kind"], "token");
    assert_eq!(w.body["name"], "fraud-ci-deployer");
    assert!(w.body["expiresAt"].is_string());
    let rollback =
        json!({"action": "models:transition", "model": "fraud-detector", "to": "Staging"});
    assert_eq!(c.allowed(&token, &rollback), (false, "AdminOnly".into()));
    let monitor = org.secret("acme-model-monitor-credentials", "token");
    assert_eq!(c.model_names(&monitor), ["fraud-detector"]);
}

on_both_stores!(role_change_revocation_and_rotation_through_manifests);
fn role_change_revocation_and_rotation_through_manifests(store: StoreKind) {
    let org = Org::start(store);
    let c = &org.srv.client;
    let alan_pw = org.secret("alan-password", "password");
    let old = c.session("alan", &alan_pw);
    org.env
        .edit("bindings.yaml", "role: Analyst", "role: Manager");
    org.reapply();
    assert_eq!(c.whoami(&old).body["roles"][0]["role"], "Analyst");
    assert!(c.model_names(&old).is_empty());
    let new = c.session("alan", &alan_pw);
    assert_eq!(c.whoami(&new).body["roles"][0]["role"], "Manager");
    assert_eq!(c.model_names(&new), ["fraud-detector"]);

    let token = org.secret("fraud-ci-deployer-token", "token");
    assert_eq!(c.whoami(&token).status, 200);
    org.env.edit(
        "tokens.yaml",
        "  owner: dora\n",
        "  owner: dora\n  rotation: 1\n",
    );
    org.reapply();
    let rotated = org.secret("fraud-ci-deployer-token", "token");
    assert_ne!(rotated, token);
    assert_eq!(c.whoami(&token).status, 401);
    assert_eq!(c.whoami(&rotated).status, 200);

    org.env.edit(
        "users.yaml",
        "  email: alan@example.com\n",
        "  email: alan@example.com\n  state: Revoked\n",
    );
    org.reapply();
    assert_eq!(c.whoami(&new).status, 401);
    assert_eq!(c.whoami(&old).status, 401);
    assert_eq!(c.login("alan", &alan_pw).status, 401);
}
