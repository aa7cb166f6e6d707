//! Issue 14: invited users choose their own password, through the real `stagegate run --dir`
//! over HTTP: the invitation Secret is delivered once, accepted once (the password policy
//! applies), the person changes their password (other sessions end), a declared re-invitation
//! wins over the chosen password, and an invitation nobody accepts expires.

use super::fail_isolated::{secret, start_ready_with};
use super::harness::{wait_for, Running, Workspace};
use crate::api::client::ApiClient;
use crate::stores::{on_both_stores, StoreKind};
use crate::support;
use serde_json::json;
use stagegate::store::{ObjectStatus, Store};

const PUBLIC_URL: &str = "https://sg.example.com/";

fn org(rotation: u32) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {{name: ivy, namespace: team}}
spec:
  displayName: Ivy Invited
  passwordRotation: {rotation}
  invitation: {{validity: 1h}}
---
apiVersion: stagegate.dev/v1alpha1
kind: AccessBinding
metadata: {{name: ivy-analyst, namespace: team}}
spec: {{user: ivy, role: Analyst, scope: {{customer: acme}}}}
---
apiVersion: stagegate.dev/v1alpha1
kind: ApiToken
metadata: {{name: ivy-bot, namespace: team}}
spec: {{role: Analyst, scope: {{customer: acme}}, owner: ivy, validity: Never}}
"
    )
}

/// An unrelated file: writing it (with a new display name) makes the daemon reconcile.
fn other(n: u32) -> String {
    format!(
        "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {{name: otto, namespace: team}}
spec: {{displayName: Otto {n}}}
"
    )
}

fn status(ws: &Workspace, name: &str) -> Option<ObjectStatus> {
    ws.store()
        .statuses()
        .unwrap()
        .into_iter()
        .find(|s| s.key.kind == "User" && s.key.name == name)
}

/// Makes the daemon reconcile (an unrelated edit) and waits until it has.
fn poke(r: &Running, ws: &Workspace, n: u32) {
    ws.write("other.yaml", &other(n));
    let want = format!("Otto {n}");
    wait_for(r, 60, "the unrelated edit to be applied", || {
        let u = ws.store().user("otto").unwrap()?;
        (u.display_name.as_deref() == Some(want.as_str())).then_some(())
    });
}

fn invitation_file(ws: &Workspace) -> Option<String> {
    std::fs::read_to_string(ws.secrets().join("team/ivy-invitation.yaml")).ok()
}

fn accept(api: &ApiClient, code: &str, password: &str) -> crate::api::client::Reply {
    api.post(
        "/v1/invitations/accept",
        None,
        &json!({"code": code, "password": password}),
    )
}

fn ivy_audit(ws: &Workspace) -> Vec<String> {
    ws.store()
        .audit(0)
        .unwrap()
        .into_iter()
        .filter(|a| a.object.name == "ivy")
        .map(|a| a.action)
        .collect()
}

on_both_stores!(invited_user_accepts_changes_password_and_a_declared_reinvitation_wins);
fn invited_user_accepts_changes_password_and_a_declared_reinvitation_wins(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write("org.yaml", &org(0));
    ws.write("other.yaml", &other(0));
    let (r, api) = start_ready_with(&ws, &["--public-url", PUBLIC_URL]);

    // Delivered once, with the code and a ready-to-open URL (code in the fragment).
    let file = wait_for(&r, 60, "the invitation Secret", || invitation_file(&ws));
    let code = secret(&ws.secrets(), "team", "ivy-invitation", "invitation");
    assert!(code.starts_with("sgi_"), "{code}");
    assert_eq!(
        secret(&ws.secrets(), "team", "ivy-invitation", "acceptUrl"),
        format!("https://sg.example.com/v1/invitations/accept#code={code}")
    );
    assert_eq!(
        secret(&ws.secrets(), "team", "ivy-invitation", "username"),
        "ivy"
    );
    let st = status(&ws, "ivy").unwrap();
    assert_eq!(
        (st.ready, st.reason.as_str(), st.phase.as_deref()),
        (true, "Invited", Some("Invited")),
        "{st:?}"
    );
    poke(&r, &ws, 1);
    assert_eq!(
        invitation_file(&ws).as_deref(),
        Some(file.as_str()),
        "written once"
    );
    // Nobody can log in yet: there is no password.
    assert_eq!(api.login("ivy", "anything-at-all-1").status, 401);

    // A code of the right shape that was never issued; then a weak password.
    let forged =
        stagegate::secrets::generate_invitation(&stagegate::secrets::ServerKey::generate());
    let r1 = accept(
        &api,
        forged.token.expose_str().unwrap(),
        "a-fine-password-1",
    );
    assert_eq!(r1.status, 401, "{}", r1.text);
    let weak = accept(&api, &code, "short");
    assert_eq!(weak.status, 400, "{}", weak.text);
    assert!(weak.text.contains("refused"), "{}", weak.text);
    let typo = accept(
        &api,
        &code.replacen("sgi_", "sgi_x", 1),
        "a-fine-password-1",
    );
    assert_eq!(typo.status, 400, "{}", typo.text);

    // A good one: a session at once, then ordinary logins.
    let chosen = "ivy's own pass phrase";
    let ok = accept(&api, &code, chosen);
    assert_eq!(ok.status, 200, "{}", ok.text);
    let first = ok.body["session"].as_str().unwrap().to_string();
    assert_eq!(api.whoami(&first).body["name"], "ivy");
    let second = api.session("ivy", chosen);
    let again = accept(&api, &code, "another-good-password");
    assert_eq!(again.status, 409, "a code works once: {}", again.text);
    assert_eq!(api.login("ivy", "another-good-password").status, 401);
    let st = status(&ws, "ivy").unwrap();
    assert_eq!(st.phase.as_deref(), Some("Active"), "{st:?}");
    let audit = ivy_audit(&ws);
    assert!(
        audit.contains(&"user.invitation.accept".to_string()),
        "{audit:?}"
    );
    let log = r.log();
    assert!(!log.contains(&code[4..]), "the code is never logged");
    assert!(!log.contains(chosen));

    // Self-service: the account, one's own sessions; tokens have no account.
    let acct = api.get("/v1/account", Some(&second));
    assert_eq!(acct.status, 200, "{}", acct.text);
    assert_eq!(acct.body["username"], "ivy");
    assert_eq!(acct.body["displayName"], "Ivy Invited");
    assert_eq!(acct.body["passwordSource"], "chosen");
    assert_eq!(acct.body["roles"][0]["role"], "Analyst");
    assert_eq!(acct.body["rolesAtNextLogin"][0]["role"], "Analyst");
    let token = secret(&ws.secrets(), "team", "ivy-bot-token", "token");
    assert_eq!(api.get("/v1/account", Some(&token)).status, 403);
    assert_eq!(api.get("/v1/account/sessions", Some(&token)).status, 403);
    let list = api.get("/v1/account/sessions", Some(&second));
    let sessions = list.body["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{}", list.text);
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{}",
        list.text
    );

    // Changing the password: policy applies, the current one must be known, others end.
    let change = |bearer: &str, current: &str, new: &str| {
        api.post(
            "/v1/account/password",
            Some(bearer),
            &json!({"currentPassword": current, "newPassword": new}),
        )
    };
    assert_eq!(change(&second, chosen, "tiny").status, 400);
    assert_eq!(
        change(&second, "not-the-password", "a-new-long-one-2").status,
        403
    );
    assert_eq!(change(&token, chosen, "a-new-long-one-2").status, 403);
    let changed = change(&second, chosen, "a-new-long-one-2");
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(api.whoami(&first).status, 401, "the other session ended");
    assert_eq!(api.whoami(&second).status, 200, "this one stays");
    assert_eq!(api.login("ivy", chosen).status, 401);
    let third = api.session("ivy", "a-new-long-one-2");
    // Ending one of one's own sessions by its handle.
    let list = api.get("/v1/account/sessions", Some(&second));
    let other_id = list.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap();
    let del = api.run(
        api.request(
            reqwest::Method::DELETE,
            &format!("/v1/account/sessions/{other_id}"),
        )
        .bearer_auth(&second),
    );
    assert_eq!(del.status, 204, "{}", del.text);
    assert_eq!(api.whoami(&third).status, 401);
    assert_eq!(api.whoami(&second).status, 200);
    let gone = api.run(
        api.request(
            reqwest::Method::DELETE,
            &format!("/v1/account/sessions/{other_id}"),
        )
        .bearer_auth(&second),
    );
    assert_eq!(gone.status, 404);

    // The chosen password survives a resync, an unrelated edit and a restart: no re-hash, no audit row.
    let hash = ws.store().user("ivy").unwrap().unwrap().password_hash;
    let audit = ivy_audit(&ws);
    poke(&r, &ws, 2);
    assert_eq!(r.terminate().code(), Some(0));
    let (r, api) = start_ready_with(&ws, &["--public-url", PUBLIC_URL]);
    poke(&r, &ws, 3);
    assert_eq!(ws.store().user("ivy").unwrap().unwrap().password_hash, hash);
    assert_eq!(ivy_audit(&ws), audit, "nothing recorded for ivy");
    assert_eq!(invitation_file(&ws).as_deref(), Some(file.as_str()));
    let session = api.session("ivy", "a-new-long-one-2");
    assert_eq!(r.terminate().code(), Some(0));

    // The administrator raises passwordRotation: the plan says it is a declared reset ...
    ws.write("org.yaml", &org(1));
    let plan = support::stagegate()
        .arg("plan")
        .args(ws.dir_args())
        .output()
        .unwrap();
    let text = support::stdout(&plan);
    assert!(
        text.contains("declared reset: invite ivy")
            && text.contains("replacing the password the user chose"),
        "{text}"
    );
    // ... and applying it ends her sessions and delivers a new invitation; the old code is void.
    let (r, api) = start_ready_with(&ws, &["--public-url", PUBLIC_URL]);
    wait_for(&r, 60, "the new invitation", || {
        invitation_file(&ws).filter(|f| f != &file)
    });
    let fresh = secret(&ws.secrets(), "team", "ivy-invitation", "invitation");
    assert_ne!(fresh, code);
    assert_eq!(api.whoami(&session).status, 401, "her sessions ended");
    assert_eq!(api.login("ivy", "a-new-long-one-2").status, 401);
    assert_eq!(accept(&api, &code, "yet-another-password").status, 401);
    let st = status(&ws, "ivy").unwrap();
    assert_eq!(st.phase.as_deref(), Some("Invited"), "{st:?}");
    let ok = accept(&api, &fresh, "yet-another-password");
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(api.session("ivy", "yet-another-password").len(), 68);
}

on_both_stores!(an_invitation_nobody_accepts_expires_and_says_how_to_invite_again);
fn an_invitation_nobody_accepts_expires_and_says_how_to_invite_again(store: StoreKind) {
    let ws = Workspace::on(store);
    ws.write(
        "org.yaml",
        "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {name: ike, namespace: team}
spec:
  invitation: {validity: 2s}
",
    );
    ws.write("other.yaml", &other(0));
    let (r, api) = start_ready_with(&ws, &[]);
    wait_for(&r, 60, "the invitation Secret", || {
        std::fs::read_to_string(ws.secrets().join("team/ike-invitation.yaml")).ok()
    });
    let code = secret(&ws.secrets(), "team", "ike-invitation", "invitation");
    // Without --public-url there is no URL to open.
    let text = std::fs::read_to_string(ws.secrets().join("team/ike-invitation.yaml")).unwrap();
    assert!(!text.contains("acceptUrl"), "{text}");
    let expires = ws
        .store()
        .user("ike")
        .unwrap()
        .unwrap()
        .invitation
        .unwrap()
        .expires_at;
    // Wait past the expiry (the clock is the subject here), then let the daemon look again.
    while jiff::Timestamp::now() <= expires {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let late = accept(&api, &code, "a-fine-password-1");
    assert_eq!(late.status, 401, "{}", late.text);
    assert!(late.text.contains("expired"), "{}", late.text);
    poke(&r, &ws, 1);
    let st = status(&ws, "ike").unwrap();
    assert_eq!(
        (st.ready, st.reason.as_str(), st.phase.as_deref()),
        (false, "InvitationExpired", Some("Invited")),
        "{st:?}"
    );
    assert!(
        st.message.contains("increase spec.passwordRotation to 1"),
        "{}",
        st.message
    );
    let out = support::stdout(&ws.status());
    assert!(out.contains("InvitationExpired"), "{out}");
}

/// Provides Secret `team/rex-pw` holding `value` (the password an administrator declares).
fn provide_rex(ws: &Workspace, value: &str) {
    let dir = ws.secrets().join("team");
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: rex-pw, namespace: team}}\nstringData: {{password: {value}}}\n"
    );
    std::fs::write(dir.join(".rex.tmp"), text).unwrap();
    std::fs::rename(dir.join(".rex.tmp"), dir.join("rex-pw.yaml")).unwrap();
}

on_both_stores!(declared_passwords_changed_by_their_users_until_a_declared_reset);
/// The other two password sources: a person who changed a referenced or a generated password
/// keeps it through resyncs and unrelated edits; a new referenced value (a declared reset)
/// replaces it and ends the sessions, and so does a raised rotation of a generated one.
fn declared_passwords_changed_by_their_users_until_a_declared_reset(store: StoreKind) {
    let ws = Workspace::on(store);
    let users = |rotation: u32| {
        format!(
            "apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {{name: rex, namespace: team}}
spec: {{passwordSecretRef: {{name: rex-pw, key: password}}}}
---
apiVersion: stagegate.dev/v1alpha1
kind: User
metadata: {{name: gen, namespace: team}}
spec: {{passwordRotation: {rotation}}}
"
        )
    };
    ws.write("org.yaml", &users(0));
    ws.write("other.yaml", &other(0));
    provide_rex(&ws, "declared-by-the-admin-1");
    let (r, api) = start_ready_with(&ws, &[]);
    let generated = wait_for(&r, 60, "gen's password", || {
        std::fs::read_to_string(ws.secrets().join("team/gen-password.yaml"))
            .ok()
            .map(|_| secret(&ws.secrets(), "team", "gen-password", "password"))
    });
    let change = |bearer: &str, current: &str, new: &str| {
        api.post(
            "/v1/account/password",
            Some(bearer),
            &json!({"currentPassword": current, "newPassword": new}),
        )
        .status
    };
    let rex = wait_for(&r, 60, "rex's login", || {
        let l = api.login("rex", "declared-by-the-admin-1");
        (l.status == 200).then(|| l.body["session"].as_str().unwrap().to_string())
    });
    let gen = api.session("gen", &generated);
    assert_eq!(
        change(&rex, "declared-by-the-admin-1", "rex-chose-this-one"),
        204
    );
    assert_eq!(change(&gen, &generated, "gen-chose-this-one"), 204);
    let ours = || {
        ws.store()
            .audit(0)
            .unwrap()
            .into_iter()
            .filter(|a| a.object.name == "rex" || a.object.name == "gen")
            .count()
    };
    let audit = ours();
    poke(&r, &ws, 1);
    assert_eq!(ours(), audit, "no audit row");
    assert_eq!(api.whoami(&rex).status, 200);
    assert_eq!(api.login("rex", "rex-chose-this-one").status, 200);
    assert_eq!(api.login("rex", "declared-by-the-admin-1").status, 401);
    assert_eq!(api.login("gen", "gen-chose-this-one").status, 200);
    for name in ["rex", "gen"] {
        let st = status(&ws, name).unwrap();
        assert!(st.ready, "{st:?}");
    }

    // A new value in the referenced Secret wins over rex's own, and ends his sessions.
    provide_rex(&ws, "declared-by-the-admin-2");
    wait_for(&r, 60, "rex's declared reset", || {
        (api.login("rex", "declared-by-the-admin-2").status == 200).then_some(())
    });
    assert_eq!(api.whoami(&rex).status, 401);
    assert_eq!(api.login("rex", "rex-chose-this-one").status, 401);
    let reset = ws
        .store()
        .audit(0)
        .unwrap()
        .into_iter()
        .rfind(|a| a.action == "user.password.reset" && a.object.name == "rex")
        .expect("the reset is audited");
    assert_eq!(reset.new.unwrap()["replacesChosenPassword"], true);
    // A raised passwordRotation wins over gen's own.
    ws.write("org.yaml", &users(1));
    let fresh = wait_for(&r, 60, "gen's new password", || {
        let p = secret(&ws.secrets(), "team", "gen-password", "password");
        (p != generated).then_some(p)
    });
    wait_for(&r, 60, "gen's login with the new password", || {
        (api.login("gen", &fresh).status == 200).then_some(())
    });
    assert_eq!(api.whoami(&gen).status, 401);
    assert_eq!(api.login("gen", "gen-chose-this-one").status, 401);
}
