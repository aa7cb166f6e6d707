//! No issued secret (token, generated or referenced password) and no stored hash appears in
//! any log line (RUST_LOG=debug), error, status, plan output or audit row.

use super::Env;
use crate::stores::{on_both_stores, StoreKind};
use stagegate::store::Store;

on_both_stores!(secrets_and_hashes_appear_nowhere_but_their_secret_files);
fn secrets_and_hashes_appear_nowhere_but_their_secret_files(store: StoreKind) {
    let env = Env::from_examples().on(store);
    let referenced = "ReferencedPassw0rd-for-maria";
    env.write_secret("ml-platform", "maria-password", "password", referenced);
    let mut outputs = Vec::new();
    outputs.push(env.run("plan", &[]));
    outputs.push(env.run("apply", &[]));
    outputs.push(env.run("apply", &["--output", "json"]));
    // Rotate, reset and revoke so that more secrets are issued and more rows written.
    env.edit(
        "tokens.yaml",
        "validity: 30d",
        "validity: 30d\n  rotation: 1",
    );
    env.write_secret(
        "ml-platform",
        "maria-password",
        "password",
        "SecondPassw0rd-for-maria",
    );
    for fmt in ["text", "markdown", "json"] {
        outputs.push(env.run("plan", &["--output", fmt]));
    }
    outputs.push(env.run("apply", &["--output", "json"]));
    env.edit(
        "users.yaml",
        "email: alan@example.com",
        "email: alan@example.com\n  passwordRotation: 1",
    );
    outputs.push(env.run("apply", &[]));
    outputs.push(env.run("status", &[]));
    outputs.push(env.run("status", &["--output", "json"]));
    // Errors: a broken manifest and a foreign Secret in the way.
    env.write("broken.yaml", "kind: User\nmetadata: [\n");
    env.write_secret("ml-platform", "new-bot-token", "apiKey", "foreign");
    env.write(
        "new-bot.yaml",
        "apiVersion: stagegate.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: new-bot, namespace: ml-platform}\nspec: {role: Admin, validity: 1d}\n",
    );
    outputs.push(env.run("apply", &[]));

    let mut secrets = env.all_secret_values();
    secrets.retain(|s| s != "foreign");
    secrets.push(referenced.into());
    secrets.push("SecondPassw0rd-for-maria".into());
    assert!(secrets.len() >= 12, "{}", secrets.len());
    let store = env.open();
    let state = store.load_state().unwrap();
    let mut hashes: Vec<String> = state
        .token_keys
        .values()
        .map(|k| k.secret_hmac.expose().to_string())
        .collect();
    for u in state.users.values() {
        hashes.extend(u.password_hash.iter().map(|h| h.expose().to_string()));
        hashes.extend(
            u.password_fingerprint
                .iter()
                .map(|h| h.expose().to_string()),
        );
    }
    let mut haystack = String::new();
    for o in &outputs {
        haystack.push_str(&crate::support::stdout(o));
        haystack.push_str(&crate::support::stderr(o));
    }
    assert!(
        haystack.contains("DEBUG") || haystack.contains("INFO"),
        "logs were captured"
    );
    for a in store.audit(0).unwrap() {
        haystack.push_str(&serde_json::to_string(&a).unwrap());
    }
    for s in store.statuses().unwrap() {
        haystack.push_str(&serde_json::to_string(&s).unwrap());
        haystack.push_str(&format!("{s:?}"));
    }
    haystack.push_str(&format!("{state:?}"));
    for s in &secrets {
        assert!(
            !haystack.contains(s.as_str()),
            "a secret leaked: {}…",
            &s[..6]
        );
        // The secret part of a token on its own, too.
        if let Some(rest) = s.strip_prefix("sgt_") {
            assert!(!haystack.contains(&rest[13..77]));
        }
    }
    for h in &hashes {
        assert!(!haystack.contains(h.as_str()), "a stored hash leaked");
    }
}
