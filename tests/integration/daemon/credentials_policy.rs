//! Issue 11, credentials policy: a password from a referenced Secret passes one
//! policy before it is hashed (not empty or blank, at least the configured
//! number of characters, at most what login accepts, not a most-common one);
//! a refused password never replaces the one in force, and the User says which
//! rule it broke, never the value. Through the real daemon and its HTTP API.

use super::harness::{wait_for, Running, Workspace};
use crate::firstrun::ready_client;
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use base64::Engine;
use stagegate::store::{ObjectStatus, Store};

/// A global Admin and four more users, each reading its password from a Secret `<name>-pw`.
fn manifests() -> String {
    let mut text = String::from(
        "apiVersion: stagegate.dev/v1alpha1\nkind: AccessBinding\nmetadata: {name: root-admin, namespace: team}\nspec: {user: root, role: Admin}\n",
    );
    for name in ["root", "eve", "carl", "dave", "olga", "pete", "quin"] {
        text.push_str(&format!(
            "---\napiVersion: stagegate.dev/v1alpha1\nkind: User\nmetadata: {{name: {name}, namespace: team}}\nspec: {{passwordSecretRef: {{name: {name}-pw, key: password}}}}\n"
        ));
    }
    text
}

/// Provides Secret `team/<name>-pw` holding `value` exactly (base64 `data`, so blanks survive).
fn provide(ws: &Workspace, name: &str, value: &[u8]) {
    let dir = ws.secrets().join("team");
    std::fs::create_dir_all(&dir).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-pw, namespace: team}}\ndata: {{password: {b64}}}\n"
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(format!("{name}-pw.yaml"))).unwrap();
}

fn user_status(ws: &Workspace, name: &str) -> Option<ObjectStatus> {
    ws.store()
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.kind == "User" && s.key.name == name)
}

fn wait_reason(r: &Running, ws: &Workspace, name: &str, reason: &str) -> ObjectStatus {
    wait_for(r, 60, &format!("User {name} with reason {reason}"), || {
        user_status(ws, name).filter(|s| s.reason == reason)
    })
}

on_both_stores!(credentials_policy_refuses_weak_passwords_and_keeps_the_one_in_force);
fn credentials_policy_refuses_weak_passwords_and_keeps_the_one_in_force(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("team.yaml", &manifests());
    let long = vec![b'k'; 1025];
    let zero_width = "\u{200B}".repeat(12);
    let cases: [(&str, &[u8], &str); 7] = [
        ("root", b" \t  \n ", "PasswordBlank"),
        ("eve", &long, "PasswordTooLong"),
        ("carl", b"Password1234", "PasswordTooCommon"),
        // Eleven characters although 22 bytes: counted as Unicode scalar values.
        ("dave", "ñññññññññññ".as_bytes(), "PasswordTooShort"),
        ("olga", b"\xc3\x28 invalid utf-8 bytes", "PasswordNotUtf8"),
        // The `echo secret | base64` mistake: the typed password could never match.
        (
            "pete",
            b"a-long-enough-passphrase\n",
            "PasswordControlCharacter",
        ),
        // Twelve zero-width spaces: as blank as spaces, though not whitespace.
        ("quin", zero_width.as_bytes(), "PasswordBlank"),
    ];
    for (name, value, _) in &cases {
        provide(&ws, name, value);
    }
    let r = ws.start(&[]);
    let api = ready_client(&r);
    for (name, value, reason) in &cases {
        let st = wait_reason(&r, &ws, name, reason);
        assert!(!st.ready, "{st:?}");
        assert!(
            st.message.contains(&format!("team/{name}-pw")) && st.message.contains("cannot log in"),
            "the message names the Secret and what it means: {st:?}"
        );
        if let Ok(text) = std::str::from_utf8(value) {
            if !text.trim().is_empty() {
                assert!(
                    !st.message.contains(text),
                    "the value is never shown: {st:?}"
                );
                assert!(!r.log().contains(text), "the value is never logged");
            }
        }
    }
    // No refused password became a password: the blank one, for a global Admin, does not log in.
    assert_eq!(api.login("root", " \t  \n ").status, 401);
    assert_eq!(api.login("carl", "Password1234").status, 401);
    // An empty password is not even checked.
    let empty = api.login("root", "");
    assert_eq!(empty.status, 400, "{}", empty.text);

    // A good password is taken; a weak replacement is refused and the good one stays in force.
    provide(&ws, "root", b"correct horse battery staple");
    wait_reason(&r, &ws, "root", "Ready");
    // The status row is committed before the API's index is rebuilt: wait for the index.
    let session = wait_for(&r, 60, "root's login with the new password", || {
        let reply = api.login("root", "correct horse battery staple");
        (reply.status == 200).then(|| reply.body["session"].as_str().unwrap().to_string())
    });
    provide(&ws, "root", b"admin12345");
    let st = wait_reason(&r, &ws, "root", "PasswordTooShort");
    assert!(
        st.message.contains("the password in force is kept"),
        "{st:?}"
    );
    assert_eq!(api.login("root", "admin12345").status, 401);
    assert_eq!(
        api.login("root", "correct horse battery staple").status,
        200
    );
    assert_eq!(
        api.whoami(&session).status,
        200,
        "a refused reset ends nothing"
    );
    assert!(!r.log().contains("correct horse battery staple"));
    // `stagegate status` shows the rule too, and exits 1.
    let o = support::run(&["status", "--store", ws.store_path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        support::stdout(&o).contains("PasswordTooCommon"),
        "{}",
        support::stdout(&o)
    );
}

on_both_stores!(credentials_policy_minimum_length_is_configurable_within_bounds);
fn credentials_policy_minimum_length_is_configurable_within_bounds(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("team.yaml", &manifests());
    // 14 characters: enough by default, too few with --password-min-length 16.
    for name in ["root", "eve", "carl", "dave", "olga", "pete", "quin"] {
        provide(&ws, name, format!("{name:x<4}-pass-ab-x").as_bytes());
    }
    let apply = |extra: &[&str]| {
        let mut cmd = support::stagegate();
        cmd.arg("apply").args(ws.dir_args()).args(extra);
        cmd.output().unwrap()
    };
    let o = apply(&["--password-min-length", "16"]);
    assert_eq!(o.status.code(), Some(1), "{}", support::stdout(&o));
    let out = support::stdout(&o);
    assert_eq!(out.matches("PasswordTooShort").count(), 7, "{out}");
    assert!(out.contains("fewer than 16 characters"), "{out}");
    let o = apply(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", support::stdout(&o));
    assert!(user_status(&ws, "eve").unwrap().ready);
    // Below NIST's floor of 8, or above the generated length of 24: a usage error.
    for bad in ["7", "25", "twelve"] {
        let o = apply(&["--password-min-length", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", support::stderr(&o));
        assert!(support::stderr(&o).contains("--password-min-length"));
    }
}
