//! Issues 4 and 8 through the real binary: `stagegate run --dir` on a copy of
//! `examples/`, driven over HTTP; the bootstrap administrator over HTTP; and
//! the README's "try it" block, run literally.

mod api_docs;
mod bootstrap;
mod examples;
mod readme;

use crate::api::client::ApiClient;
use crate::daemon::harness::{wait_for, Running};
use stagegate::secrets::parse_secret_manifest;
use std::path::Path;

/// The API address the daemon printed (`  api:        http://ADDR`), once it is listening.
pub fn api_base(r: &Running) -> String {
    wait_for(r, 60, "the api: line", || {
        r.stdout()
            .lines()
            .find_map(|l| l.trim().strip_prefix("api:"))
            .map(|s| s.trim().to_string())
    })
}

/// A client for the running daemon, once `/readyz` says the first reconcile is done.
pub fn ready_client(r: &Running) -> ApiClient {
    let client = ApiClient::new(&api_base(r));
    wait_for(r, 60, "/readyz 200", || {
        (client.get("/readyz", None).status == 200).then_some(())
    });
    client
}

/// One value of a delivered Secret manifest, once the file exists.
pub fn secret_value(r: &Running, file: &Path, key: &str) -> String {
    let text = wait_for(r, 60, &format!("{}", file.display()), || {
        std::fs::read_to_string(file).ok()
    });
    let (_, _, data) = parse_secret_manifest(&text).expect("a Secret manifest");
    String::from_utf8(data[key].clone()).expect("UTF-8")
}

/// Writes a Secret manifest the way an administrator provides one (`passwordSecretRef`).
pub fn provide_secret(secrets: &Path, ns: &str, name: &str, key: &str, value: &str) {
    let dir = secrets.join(ns);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData: {{{key}: {value}}}\n"
    );
    std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
}
