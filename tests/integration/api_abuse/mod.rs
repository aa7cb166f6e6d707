//! Issue 12 ("Fail isolated") on the HTTP side, through the real binary
//! (`stagegate run --dir` serving the API): privilege reductions end
//! sessions, login throttling holds under concurrency and against attacks
//! from other addresses, and the server itself holds under abuse.

mod http;
mod sessions;
mod throttle;

use crate::api::client::ApiClient;
use crate::daemon::harness::{wait_for, Running, Workspace};
use crate::firstrun::{api_base, ready_client, secret_value};
use std::net::IpAddr;

/// Namespace of every declaration here.
pub const NS: &str = "team";

/// A User with a generated password.
pub fn user(name: &str) -> String {
    format!("apiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec: {{}}\n")
}

/// An AccessBinding; `scope` is flow YAML such as `{}` or `{customer: acme}`.
pub fn binding(name: &str, user: &str, role: &str, scope: &str) -> String {
    format!("apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  user: {user}\n  role: {role}\n  scope: {scope}\n")
}

/// A running daemon over its own workspace, and a client for its API.
pub struct Daemon {
    pub ws: Workspace,
    pub r: Running,
    pub api: ApiClient,
}

impl Daemon {
    /// Writes `files` into the manifests directory and starts `stagegate run --dir` with `extra` flags.
    pub fn start(files: &[(&str, String)], extra: &[&str]) -> Daemon {
        let ws = Workspace::new();
        for (name, text) in files {
            ws.write(name, text);
        }
        let r = ws.start(extra);
        let api = ready_client(&r);
        Daemon { ws, r, api }
    }

    /// A client of this daemon connecting from the local address `from`.
    pub fn client_from(&self, from: &str) -> ApiClient {
        ApiClient::from_address(&api_base(&self.r), from.parse::<IpAddr>().unwrap())
    }

    /// The generated password of `user`, once delivered.
    pub fn password(&self, user: &str) -> String {
        let file = self
            .ws
            .secrets()
            .join(NS)
            .join(format!("{user}-password.yaml"));
        secret_value(&self.r, &file, "password")
    }

    /// Polls `check` until it returns Some (panics with the daemon log after 60 s).
    pub fn until<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        wait_for(&self.r, 60, what, check)
    }

    /// The audit rows with `action`, as (object name, new value).
    pub fn audit(&self, action: &str) -> Vec<(String, serde_json::Value)> {
        use stagegate::store::Store;
        self.ws
            .store()
            .audit(0)
            .unwrap()
            .into_iter()
            .filter(|a| a.action == action)
            .map(|a| (a.object.name, a.new.unwrap_or_default()))
            .collect()
    }
}
